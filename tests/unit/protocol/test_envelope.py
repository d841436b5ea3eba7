import json

import pytest

from bosh_openstack_cpi.protocol import envelope
from bosh_openstack_cpi.protocol.errors import InvalidRequest, VMCreationFailed


def _raw(**fields):
    document = {"method": "info", "arguments": [], "context": {"director_uuid": "d"}}
    document.update(fields)
    return json.dumps(document).encode()


def test_request_without_api_version_is_v1():
    assert envelope.parse_request(_raw()).api_version == 1


def test_api_version_above_what_we_know_is_capped_at_3():
    assert envelope.parse_request(_raw(api_version=7)).api_version == 3


def test_stemcell_api_version_comes_from_context_vm():
    request = envelope.parse_request(
        _raw(context={"director_uuid": "d", "vm": {"stemcell": {"api_version": 3}}})
    )
    assert request.stemcell_api_version == 3
    assert envelope.parse_request(_raw()).stemcell_api_version == 1


def test_request_id_defaults_to_dash():
    assert envelope.parse_request(_raw()).request_id == "-"
    request = envelope.parse_request(_raw(context={"director_uuid": "d", "request_id": "cpi-1"}))
    assert request.request_id == "cpi-1"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "Request is empty"),
        (b"{", "not valid JSON"),
        (b"[]", "must be a JSON object, got array"),
        (_raw(method=3), "'method' must be a non-empty string, got integer"),
        (_raw(arguments={}), "'arguments' must be an array, got object"),
        (_raw(context=None), "'context' must be an object, got null"),
        (_raw(context={}), "'context.director_uuid' must be a string, got null"),
        (_raw(api_version="2"), "'api_version' must be a positive integer"),
        (_raw(api_version=True), "'api_version' must be a positive integer"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_invalid_envelopes_name_the_problem(raw, expected):
    with pytest.raises(InvalidRequest, match=expected.replace("(", r"\(").replace(")", r"\)")):
        envelope.parse_request(raw)


def test_failure_response_has_every_required_field():
    response = envelope.failure(VMCreationFailed("no", ok_to_retry=True), "a log")
    assert response == {
        "result": None,
        "error": {"type": "Bosh::Clouds::VMCreationFailed", "message": "no", "ok_to_retry": True},
        "log": "a log",
    }


def test_encoded_response_is_ascii_json():
    encoded = envelope.encode(envelope.success({"name": "ünïcode"}, ""))
    assert json.loads(encoded.decode("ascii"))["result"]["name"] == "ünïcode"
