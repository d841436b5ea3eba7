import pytest

from bosh_openstack_cpi.protocol import redaction


@pytest.fixture(autouse=True)
def _fresh_secrets():
    redaction.forget_secrets()
    yield
    redaction.forget_secrets()


def test_registered_secret_is_masked_everywhere():
    redaction.register_secret("s3cr3t-value")
    assert "s3cr3t" not in redaction.redact("password s3cr3t-value and again s3cr3t-value")


def test_json_escaped_form_of_a_secret_is_masked_too():
    redaction.register_secret('pa"ss\\word')
    assert "pa" not in redaction.redact('{"x": "pa\\"ss\\\\word"}')


def test_short_values_are_not_treated_as_secrets():
    redaction.register_secret("ab")
    assert redaction.redact("ab cd") == "ab cd"


@pytest.mark.parametrize(
    "text",
    [
        "X-Auth-Token: gAAAAABtoken123",
        '{"password": "hunter22"}',
        "nats://nats:natspass@10.0.0.6:4222",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----",
        '"user_data": "eyJhZ2VudF9pZCI6ICJhIn0="',
    ],
)
def test_patterns_catch_unregistered_secrets(text):
    masked = redaction.redact(text)
    for secret in ("gAAAAABtoken123", "hunter22", "natspass", "MIIEabc", "eyJhZ2VudF9pZCI6"):
        assert secret not in masked


def test_secrets_found_under_sensitive_keys_at_any_depth():
    arguments = [
        "agent",
        {"bosh": {"password": "crypted-pw", "mbus": {"cert": {"private_key": "KEYDATA-1234"}}}},
    ]
    redaction.register_secrets_in(arguments, frozenset({"password", "private_key"}))
    masked = redaction.redact("crypted-pw KEYDATA-1234 agent")
    assert "crypted-pw" not in masked
    assert "KEYDATA-1234" not in masked
    assert "agent" in masked
