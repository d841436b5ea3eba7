import json

import pytest

from bosh_openstack_cpi import config
from bosh_openstack_cpi.protocol.errors import ConfigError


def _document(**openstack):
    base = {
        "auth_url": "https://keystone.example:5000/v3",
        "username": "bosh",
        "api_key": "pw-123456",
        "project": "bosh",
        "domain": "Default",
        "default_key_name": "bosh",
        "default_security_groups": ["bosh"],
    }
    for key, value in openstack.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return {
        "cloud": {
            "plugin": "openstack",
            "properties": {"openstack": base, "agent": {"mbus": "nats://a:b@c:1"}},
        }
    }


def _problems(document, context=None):
    with pytest.raises(ConfigError) as raised:
        config.load(document, context or {})
    return raised.value.message


def test_reference_rendered_cpi_json_is_accepted_with_its_defaults():
    rendered = _document(
        default_volume_type=None,
        wait_resource_poll_interval=5,
        ignore_server_availability_zone=False,
        use_nova_networking=False,
        endpoint_type="publicURL",
        state_timeout=300,
        stemcell_public_visibility=False,
        boot_from_volume=False,
        use_dhcp=True,
        human_readable_vm_names=False,
    )
    rendered["cloud"]["properties"]["registry"] = {
        "endpoint": "http://r",
        "user": "u",
        "password": "p",
    }
    loaded = config.load(rendered, {"director_uuid": "d", "request_id": "r"})
    openstack = loaded.openstack
    assert openstack.endpoint_type == "public"
    assert openstack.state_timeout == 300
    assert openstack.use_dhcp is True
    assert openstack.user_domain_name == openstack.project_domain_name == "Default"
    assert openstack.default_security_groups == ("bosh",)
    assert loaded.agent == {"mbus": "nats://a:b@c:1"}
    assert loaded.ignored_keys == ()


def test_defaults_when_optional_keys_are_absent():
    openstack = config.load(_document(default_security_groups=None), {}).openstack
    assert openstack.wait_resource_poll_interval == 5
    assert openstack.config_drive is None
    assert openstack.connection.http_timeout == config.DEFAULT_HTTP_TIMEOUT
    assert openstack.default_security_groups == ()


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://k:5000/v3", "https://k:5000/v3"),
        ("https://k:5000/v3/", "https://k:5000/v3"),
        ("https://k:5000/v3/auth/tokens", "https://k:5000/v3"),
        ("https://k:5000", "https://k:5000/v3"),
        ("https://k/identity", "https://k/identity/v3"),
    ],
)
def test_auth_url_is_normalised_to_the_v3_endpoint(url, normalised):
    assert config.load(_document(auth_url=url), {}).openstack.auth_url == normalised


def test_keystone_v2_is_refused_with_a_pointer_to_v3():
    message = _problems(_document(auth_url="https://k:5000/v2.0", tenant="t", project=None))
    assert "Keystone v2" in message
    assert "removed" in message


def test_tenant_without_project_explains_the_v3_name():
    message = _problems(_document(project=None, tenant="t"))
    assert "openstack.tenant" in message
    assert "openstack.project" in message


def test_nova_networking_is_refused():
    message = _problems(_document(use_nova_networking=True))
    assert "openstack.use_nova_networking" in message
    assert "removed" in message


def test_all_problems_are_reported_together():
    message = _problems(_document(state_timeout="300", use_dhcp="yes", config_drive="usb"))
    assert "openstack.state_timeout must be a positive number of seconds, got a string" in message
    assert "openstack.use_dhcp must be true or false, got a string" in message
    assert "openstack.config_drive must be 'cdrom' or 'disk'" in message


def test_password_and_application_credential_are_exclusive():
    message = _problems(_document(application_credential_id="i", application_credential_secret="s"))
    assert "not both" in message


def test_application_credential_needs_no_project_or_domain():
    loaded = config.load(
        _document(
            username=None,
            api_key=None,
            project=None,
            domain=None,
            application_credential_id="cred-id",
            application_credential_secret="cred-secret",
        ),
        {},
    )
    assert loaded.openstack.uses_application_credential
    assert loaded.openstack.application_credential_secret == "cred-secret"


def test_half_an_application_credential_names_the_missing_key():
    message = _problems(_document(username=None, api_key=None, application_credential_id="i"))
    assert "openstack.application_credential_secret is required" in message


def test_user_domain_without_project_domain_is_refused():
    message = _problems(_document(domain=None, user_domain_name="users"))
    assert "openstack.project_domain_name is required too" in message


def test_project_id_is_enough_to_scope():
    openstack = config.load(_document(project=None, project_id="abc123"), {}).openstack
    assert openstack.project_id == "abc123"


def test_missing_credentials_are_explained():
    message = _problems(_document(username=None, api_key=None))
    assert "needs credentials" in message


def test_secret_values_never_appear_in_config_errors():
    message = _problems(_document(api_key=12345678, state_timeout=-1))
    assert "12345678" not in message
    assert "openstack.api_key must be a non-empty string, got a number" in message
    assert "api_key is required" not in message


def test_multi_cpi_context_is_merged_over_openstack():
    context = {
        "director_uuid": "d",
        "request_id": "cpi-1",
        "vm": {"stemcell": {"api_version": 2}},
        "auth_url": "https://other:5000/v3",
        "api_key": "other-pw",
        "region": "Two",
    }
    openstack = config.load(_document(), context).openstack
    assert openstack.auth_url == "https://other:5000/v3"
    assert openstack.api_key == "other-pw"
    assert openstack.region == "Two"


def test_context_connection_options_replace_the_whole_hash():
    document = _document(connection_options={"ssl_verify_peer": False, "read_timeout": 5})
    context = {"connection_options": {"connect_timeout": 9}}
    connection = config.load(document, context).openstack.connection
    assert connection.ssl_verify_peer is True
    assert connection.http_timeout == 9


def test_ca_cert_must_be_pem():
    message = _problems(_document(connection_options={"ca_cert": "not a cert"}))
    assert "openstack.connection_options.ca_cert must hold one or more PEM certificates" in message


def test_unknown_openstack_keys_are_reported_as_ignored():
    assert config.load(_document(flux_capacitor=1), {}).ignored_keys == ("flux_capacitor",)


def test_removed_auto_anti_affinity_is_explained():
    message = _problems(_document(enable_auto_anti_affinity=True))
    assert "scheduler_hints" in message


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({}, 'the "cloud" object is missing'),
        ({"cloud": {"plugin": "aws", "properties": {}}}, "cloud.plugin must be 'openstack'"),
        ({"cloud": {"properties": {}}}, "cloud.properties.openstack must be an object"),
    ],
)
def test_wrong_document_shapes(document, expected):
    assert expected in _problems(document)


def test_read_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "cpi.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        config.read_config_file(str(bad))
    with pytest.raises(ConfigError, match="does not exist"):
        config.read_config_file(str(tmp_path / "missing.json"))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_document()))
    assert config.read_config_file(str(good))["cloud"]["plugin"] == "openstack"


def test_token_cache_is_on_by_default_and_can_be_switched_off():
    assert config.load(_document(), {}).openstack.token_cache is True
    assert config.load(_document(token_cache=False), {}).openstack.token_cache is False
    assert "openstack.token_cache must be true or false" in _problems(_document(token_cache=1))


def test_empty_optional_strings_are_unset_with_a_warning():
    loaded = config.load(_document(region="", default_volume_type=" "), {})
    assert loaded.openstack.region is None
    assert loaded.openstack.default_volume_type is None
    assert "openstack.region is an empty string: read as unset" in loaded.warnings
    assert "openstack.default_volume_type is an empty string: read as unset" in loaded.warnings


def test_empty_required_strings_are_still_refused_by_name():
    message = _problems(_document(auth_url="", username=""))
    assert "openstack.auth_url is required" in message
    assert "openstack.username is required with password authentication" in message


def test_zero_poll_interval_means_the_shortest_pause():
    openstack = config.load(_document(wait_resource_poll_interval=0), {}).openstack
    assert openstack.wait_resource_poll_interval == 0.1


def test_negative_poll_interval_is_refused():
    message = _problems(_document(wait_resource_poll_interval=-1))
    assert "openstack.wait_resource_poll_interval must be a positive number" in message


def test_boolean_strings_are_read_as_booleans_with_a_warning():
    loaded = config.load(
        _document(use_dhcp="false", connection_options={"ssl_verify_peer": "false"}), {}
    )
    assert loaded.openstack.use_dhcp is False
    assert loaded.openstack.connection.ssl_verify_peer is False
    assert "openstack.use_dhcp is the string 'false': read as the boolean false" in loaded.warnings


def test_other_boolean_strings_stay_refused():
    assert "openstack.use_dhcp must be true or false, got a string" in _problems(
        _document(use_dhcp="no")
    )


def test_excon_tls_options_are_read_and_the_others_named_in_a_warning():
    options = {
        "ssl_ca_file": "/etc/ssl/ca.pem",
        "ssl_ca_path": "/etc/ssl/certs",
        "client_cert": "/var/vcap/client.pem",
        "client_key": "/var/vcap/client.key",
        "ssl_verify_hostname": False,
        "ciphers": "HIGH",
        "ssl_version": "TLSv1_2",
    }
    loaded = config.load(_document(connection_options=options), {})
    connection = loaded.openstack.connection
    assert connection.ssl_ca_file == "/etc/ssl/ca.pem"
    assert connection.ssl_ca_path == "/etc/ssl/certs"
    assert (connection.client_cert, connection.client_key) == (
        "/var/vcap/client.pem",
        "/var/vcap/client.key",
    )
    assert connection.ssl_verify_hostname is False
    (warning,) = loaded.warnings
    assert warning.startswith(
        "Ignoring openstack.connection_options this CPI does not read: ciphers, ssl_version"
    )


def test_a_client_key_needs_its_certificate():
    message = _problems(_document(connection_options={"client_key": "/k.pem"}))
    assert "openstack.connection_options.client_key needs client_cert" in message
