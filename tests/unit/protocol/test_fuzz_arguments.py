"""Random arguments for every CPI method, with a valid config whose Keystone rejects us:
whatever the input, the answer is one well-formed response and never an unexpected
exception (which would mean some input escaped validation).

Examples per test: BOSH_CPI_FUZZ_EXAMPLES (default 150; the long run in docs/testing.md
uses 10000).
"""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bosh_openstack_cpi import cids
from bosh_openstack_cpi.protocol import dispatch, redaction
from bosh_openstack_cpi.protocol.errors import BOSH_ERROR_TYPES

EXAMPLES = int(os.environ.get("BOSH_CPI_FUZZ_EXAMPLES", "150"))
CANARY = "canary-fuzz-password-3c1d"

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=15,
)
# Plausible shapes for each argument kind, mixed with arbitrary values.
plausible = {
    "string": st.text(max_size=40) | st.uuids().map(str),
    "integer": st.integers(-(2**40), 2**40),
    "object?": st.dictionaries(
        st.sampled_from(
            [
                "instance_type",
                "availability_zone",
                "availability_zones",
                "type",
                "image_id",
                "name",
                "version",
                "disk_format",
                "root_disk",
                "security_groups",
                "cpu",
                "ram",
                "ephemeral_disk_size",
                "default",
                "net_id",
                "ip",
                "tags",
                "bosh",
                "key_name",
            ]
        )
        | st.text(max_size=10),
        json_values,
        max_size=6,
    ),
    "array?": st.lists(json_values, max_size=3),
    "string?": st.none() | st.text(max_size=40),
}


class RejectingKeystone(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests_seen: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        RejectingKeystone.requests_seen.append(f"{self.command} {self.path}")
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"error": {"code": 401, "title": "Unauthorized", "message": "nope"}}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RejectingKeystone)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = tmp_path_factory.mktemp("fuzz") / "cpi.json"
    openstack = {
        "auth_url": f"http://127.0.0.1:{server.server_address[1]}/v3",
        "username": "fuzz",
        "api_key": CANARY,
        "project": "fuzz",
        "domain": "Default",
        "default_key_name": "k",
        "default_security_groups": ["default"],
        "token_cache": False,
        "state_timeout": 5,
    }
    path.write_text(
        json.dumps(
            {
                "cloud": {
                    "plugin": "openstack",
                    "properties": {
                        "openstack": openstack,
                        "agent": {"mbus": "nats://n:p4ssword@127.0.0.1:4222"},
                    },
                }
            }
        )
    )
    yield path
    server.shutdown()
    server.server_close()
    redaction.forget_secrets()


def _arguments(method: dispatch.Method) -> st.SearchStrategy[list[Any]]:
    typed = st.tuples(*(plausible[kind] for _, kind, _ in method.args)).map(list)
    return typed | st.lists(json_values, max_size=len(method.args) + 1)


@pytest.mark.parametrize(
    "name", sorted(n for n, m in dispatch.METHODS.items() if not m.unavailable)
)
def test_random_arguments_never_escape_validation(name: str, config_path: Path) -> None:
    method = dispatch.METHODS[name]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(_arguments(method), st.sampled_from([None, 1, 2, 3]))
    def check(arguments: list[Any], api_version: int | None) -> None:
        request: dict[str, Any] = {
            "method": name,
            "arguments": arguments,
            "context": {"director_uuid": "fuzz"},
        }
        if api_version is not None:
            request["api_version"] = api_version
        stderr = io.StringIO()
        raw = dispatch.handle(json.dumps(request).encode(), str(config_path), None, stderr)
        response = json.loads(raw)
        assert set(response) == {"result", "error", "log"}
        error = response["error"]
        if error is not None:
            assert error["type"] in BOSH_ERROR_TYPES
            assert isinstance(error["ok_to_retry"], bool)
            assert "failed unexpectedly" not in error["message"], (arguments, error["message"])
        assert CANARY not in raw.decode() + stderr.getvalue()

    check()


# Crafted cids (issue 11): an id, or anything, wrapped in what once reached other resources.
crafted_cids = st.builds(
    lambda before, core, after: before + core + after,
    st.sampled_from(["", "../", "../../", "/", "%2e%2e/", "./", " ", "..%2F"]),
    st.uuids().map(str) | st.text(max_size=20),
    st.sampled_from(
        ["", "/metadata/k", "?all_tenants=1", "#x", " ", "\n", "/", "/os-interface/p", "/.."]
    ),
)
CID_POSITIONS = [
    (name, position, arg)
    for name, method in sorted(dispatch.METHODS.items())
    if not method.unavailable
    for position, (arg, _, _) in enumerate(method.args)
    if arg in cids.KINDS
]


@pytest.mark.parametrize(("name", "position", "arg"), CID_POSITIONS)
def test_crafted_cids_send_no_request(
    name: str, position: int, arg: str, config_path: Path
) -> None:
    """Whatever the other arguments, a malformed cid is answered before any request (the
    fake Keystone would see the token request of a call that went on)."""
    method = dispatch.METHODS[name]

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.tuples(*(plausible[kind] for _, kind, _ in method.args)).map(list), crafted_cids)
    def check(arguments: list[Any], cid: str) -> None:
        assume(not cids.is_valid(arg, cid))
        arguments[position] = cid
        request = {"method": name, "arguments": arguments, "context": {"director_uuid": "f"}}
        RejectingKeystone.requests_seen.clear()
        raw = dispatch.handle(json.dumps(request).encode(), str(config_path), None, io.StringIO())
        response = json.loads(raw)
        assert RejectingKeystone.requests_seen == [], (arguments, response)
        if method.absent_when_malformed:
            assert response["result"] is False, (arguments, response)
        else:
            assert response["error"] is not None, (arguments, response)

    check()
