"""Malformed requests of every shape: always exactly one JSON response, an allowed type.

Examples per test: BOSH_CPI_FUZZ_EXAMPLES when set (the long run in docs/testing.md), else
300 envelopes and 200 byte strings.
"""

import io
import json
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from bosh_openstack_cpi.protocol import dispatch
from bosh_openstack_cpi.protocol.errors import BOSH_ERROR_TYPES

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
LONG_RUN = os.environ.get("BOSH_CPI_FUZZ_EXAMPLES")
method_names = st.sampled_from(sorted(dispatch.METHODS)) | st.text(max_size=12)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "method": method_names | json_values,
        "arguments": st.lists(json_values, max_size=7) | json_values,
        "context": st.fixed_dictionaries({"director_uuid": st.text(max_size=8)}) | json_values,
        "api_version": st.integers(-2, 5) | json_values,
    },
)


def _check(raw: bytes) -> None:
    response = json.loads(dispatch.handle(raw, "/nonexistent/cpi.json", None, io.StringIO()))
    assert set(response) == {"result", "error", "log"}
    assert isinstance(response["log"], str)
    if response["error"] is not None:
        assert response["result"] is None
        assert response["error"]["type"] in BOSH_ERROR_TYPES
        assert isinstance(response["error"]["message"], str)
        assert isinstance(response["error"]["ok_to_retry"], bool)
        assert "Traceback" not in response["error"]["message"]


@settings(max_examples=int(LONG_RUN or 300), deadline=None)
@given(envelopes)
def test_any_envelope_gets_one_well_formed_response(document):
    _check(json.dumps(document).encode())


@settings(max_examples=int(LONG_RUN or 200), deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_get_one_well_formed_response(raw):
    _check(raw)
