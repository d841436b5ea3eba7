import io

from bosh_openstack_cpi.operator.checks import (
    FAILED,
    CheckFailed,
    Runner,
    passed,
    remedy_for,
    warning,
)
from bosh_openstack_cpi.operator.session import Printer
from bosh_openstack_cpi.protocol.errors import CloudError
from bosh_openstack_cpi.protocol.redaction import forget_secrets, register_secret


def runner():
    out = io.StringIO()
    return Runner(Printer(out)), out


def test_a_line_per_check_and_a_remedy_per_failure():
    checks, out = runner()
    checks.run("g", "fine", lambda: passed("all there"))
    checks.run("g", "meh", lambda: warning("odd", "look"))

    def broken():
        raise CheckFailed("missing", "add it")

    checks.run("g", "broken", broken)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[ok  ] g: fine (") and lines[0].endswith("all there")
    assert lines[1].startswith("[WARN] g: meh") and lines[2] == "       remedy: look"
    assert lines[3].startswith("[FAIL] g: broken") and lines[4] == "       remedy: add it"
    assert not checks.all_passed


def test_warnings_do_not_fail_but_skips_do():
    checks, _ = runner()
    checks.run("g", "meh", lambda: warning("odd"))
    assert checks.all_passed
    checks.skip("g", "later", "an earlier step failed")
    assert not checks.all_passed


def test_an_unexpected_error_is_a_failure_with_a_remedy_and_no_secret():
    register_secret("s3cr3t-value")
    try:
        checks, out = runner()

        def broken():
            raise CloudError("Cannot connect to Keystone with s3cr3t-value")

        result = checks.run("identity", "auth", broken)
    finally:
        forget_secrets()
    assert result.status == FAILED
    assert "auth_url" in result.remedy
    assert "s3cr3t-value" not in out.getvalue()
    assert remedy_for("something new").startswith("read the message")
