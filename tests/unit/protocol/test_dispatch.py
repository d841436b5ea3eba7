import io
import json

import pytest

from bosh_openstack_cpi.protocol import dispatch
from bosh_openstack_cpi.protocol.errors import BOSH_ERROR_TYPES, InvalidRequest


def _call(method, arguments, config_path="/nonexistent/cpi.json", **context):
    raw = json.dumps(
        {"method": method, "arguments": arguments, "context": {"director_uuid": "d", **context}}
    ).encode()
    stderr = io.StringIO()
    response = json.loads(dispatch.handle(raw, config_path, None, stderr))
    return response, stderr.getvalue()


def test_info_answers_without_config():
    response, _ = _call("info", [])
    assert response == {
        "result": {
            "api_version": 3,
            "stemcell_formats": ["openstack-raw", "openstack-qcow2", "openstack-light"],
        },
        "error": None,
        "log": "",
    }


def test_unknown_method_is_not_implemented_with_the_directors_message():
    response, _ = _call("make_coffee", [])
    assert response["error"] == {
        "type": "Bosh::Clouds::NotImplemented",
        "message": "Method is not known, got: 'make_coffee'",
        "ok_to_retry": False,
    }


@pytest.mark.parametrize("method", ["create_network", "delete_network", "current_vm_id", "ping"])
def test_methods_the_openstack_cpi_never_offers_are_not_implemented(method):
    response, _ = _call(method, [])
    assert response["error"]["type"] == "Bosh::Clouds::NotImplemented"
    assert method in response["error"]["message"]


def test_wrong_argument_type_names_method_position_and_types():
    response, _ = _call("has_vm", [42])
    assert response["error"]["type"] == "Bosh::Clouds::CpiError"
    assert response["error"]["message"] == (
        "'has_vm' argument 1 (vm_cid) must be a string, got integer"
    )


def test_wrong_arity_lists_the_expected_arguments():
    response, _ = _call("has_vm", [])
    assert response["error"]["message"] == "'has_vm' takes 1 argument(s) (vm_cid), got 0"


def test_missing_config_is_a_cloud_error_naming_the_file():
    response, stderr = _call(
        "has_vm", ["9f1c3a52-5d0e-4b8e-9a8c-2f4b6d7e8a10"], request_id="cpi-42"
    )
    assert response["error"]["type"] == "Bosh::Clouds::CloudError"
    assert "/nonexistent/cpi.json" in response["error"]["message"]
    assert "[cpi-42]" in stderr
    assert "/nonexistent/cpi.json" in stderr
    assert response["log"] == ""  # each line once: the director copies stderr to the CPI log


def test_null_object_arguments_become_empty_objects():
    method = dispatch.METHODS["create_disk"]
    assert dispatch.check_arguments("create_disk", method, [1024, None]) == [1024, {}]


def test_optional_arguments_may_be_left_out_but_not_exceeded():
    method = dispatch.METHODS["create_stemcell"]
    assert dispatch.check_arguments("create_stemcell", method, ["/p", {}]) == ["/p", {}]
    with pytest.raises(InvalidRequest, match="takes 2 to 3 argument"):
        dispatch.check_arguments("create_stemcell", method, ["/p", {}, {}, {}])


def test_every_declared_error_type_is_one_the_director_knows():
    from bosh_openstack_cpi.protocol import errors

    classes = [getattr(errors, name) for name in dir(errors)]
    for cls in classes:
        if isinstance(cls, type) and issubclass(cls, errors.CpiError):
            assert cls.bosh_type in BOSH_ERROR_TYPES, cls


def test_the_agents_nats_settings_in_create_vms_env_are_secrets():
    """env.bosh.mbus: the NATS URLs carry credentials, the certificate a private key."""
    from bosh_openstack_cpi.protocol import redaction

    url = "nats://director:urls-canary-e19b@10.0.0.9:4222"
    env = {"bosh": {"mbus": {"urls": [url], "cert": {"ca": "CA-PEM-canary"}}}}
    try:
        _call("create_vm", ["agent", "stemcell", {}, {}, [], env])
        assert redaction.redact(f"{url} CA-PEM-canary") == "<redacted> <redacted>"
    finally:
        redaction.forget_secrets()
