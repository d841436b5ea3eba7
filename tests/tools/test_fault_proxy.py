"""The fault proxy against a small local upstream (no cloud needed)."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tools import fault_proxy


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        port = self.server.server_address[1]  # type: ignore[index]
        body = json.dumps({"url": f"http://127.0.0.1:{port}/v2.1", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _get(url: str, path: str = "/x") -> tuple[int, bytes, dict[str, str]]:
    parts = url.split(":")
    connection = http.client.HTTPConnection("127.0.0.1", int(parts[-1]), timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body, dict(response.getheaders())


def test_passes_through_and_rewrites_identity_catalogs(upstream: str):
    with fault_proxy.FaultProxy({"identity": upstream}) as proxy:
        status, body, _ = _get(proxy.url("identity"), "/v3/auth/tokens")
        assert status == 200
        assert json.loads(body)["url"] == proxy.url("identity") + "/v2.1"
        assert [(r.method, r.path, r.fault, r.status) for r in proxy.records] == [
            ("GET", "/v3/auth/tokens", None, 200)
        ]


def test_injects_errors_with_retry_after(upstream: str):
    plan = fault_proxy.FaultPlan().at(1, fault_proxy.error(429, retry_after=2))
    with fault_proxy.FaultProxy({"compute": upstream}, plan) as proxy:
        status, _, headers = _get(proxy.url("compute"))
        assert status == 429
        assert headers["Retry-After"] == "2"
        assert _get(proxy.url("compute"))[0] == 200
        assert [r.fault for r in proxy.records] == ["error 429", None]


def test_over_limit_413_carries_retry_after_in_the_body(upstream: str):
    plan = fault_proxy.FaultPlan().when(fault_proxy.error(413, retry_after=3), method="GET")
    with fault_proxy.FaultProxy({"compute": upstream}, plan) as proxy:
        status, body, _ = _get(proxy.url("compute"))
        assert status == 413
        assert json.loads(body)["overLimit"]["retryAfter"] == "3"


def test_reset_and_truncate_break_the_connection(upstream: str):
    plan = fault_proxy.FaultPlan().at(1, fault_proxy.reset()).at(2, fault_proxy.truncate())
    with fault_proxy.FaultProxy({"compute": upstream}, plan) as proxy:
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            _get(proxy.url("compute"))
        with pytest.raises(http.client.IncompleteRead):
            _get(proxy.url("compute"))


def test_rules_match_service_method_and_path_a_limited_number_of_times(upstream: str):
    plan = fault_proxy.FaultPlan().when(
        fault_proxy.error(503), service="compute", path_contains="/servers", times=2
    )
    with fault_proxy.FaultProxy({"compute": upstream}, plan) as proxy:
        statuses = [_get(proxy.url("compute"), "/servers/1")[0] for _ in range(3)]
        assert statuses == [503, 503, 200]
        assert _get(proxy.url("compute"), "/flavors")[0] == 200


def test_refuses_non_loopback_upstreams():
    with pytest.raises(ValueError, match="non-loopback"):
        fault_proxy.FaultProxy({"compute": "http://10.1.2.3:8774"})


def _sleeper() -> Any:
    import subprocess

    return subprocess.Popen(["sleep", "30"])


def test_kill_after_forwards_then_kills(upstream: str):
    process = _sleeper()
    plan = fault_proxy.FaultPlan().at(1, fault_proxy.kill_after(lambda: process.pid))
    with fault_proxy.FaultProxy({"compute": upstream}, plan) as proxy:
        port = int(proxy.url("compute").split(":")[-1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/x")
            with pytest.raises((ConnectionError, http.client.HTTPException)):
                connection.getresponse().read()
        finally:
            connection.close()
    assert process.wait(timeout=10) == -9
    assert proxy.records[0].status == 200  # the upstream did answer
    assert proxy.records[0].fault == "kill_after"


def test_term_signals_then_forwards(upstream: str):
    process = _sleeper()
    plan = fault_proxy.FaultPlan().at(1, fault_proxy.term(lambda: process.pid, delay=0.1))
    with fault_proxy.FaultProxy({"compute": upstream}, plan) as proxy:
        assert _get(proxy.url("compute"))[0] == 200
    assert process.wait(timeout=10) == -15


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("body", 'Invalid input for this request: {"auth": {"password": "s3cret"}}'),
        ("fields", "Invalid input for field/attribute auth/password. Value: s3cret."),
    ],
)
def test_echo_quotes_the_request(upstream: str, style: str, expected: str):
    plan = fault_proxy.FaultPlan().at(1, fault_proxy.echo(400, style))
    with fault_proxy.FaultProxy({"identity": upstream}, plan) as proxy:
        parts = proxy.url("identity").split(":")
        connection = http.client.HTTPConnection("127.0.0.1", int(parts[-1]), timeout=10)
        connection.request("POST", "/v3/auth/tokens", body=b'{"auth": {"password": "s3cret"}}')
        response = connection.getresponse()
        body = json.loads(response.read())
        connection.close()
    assert response.status == 400
    assert body["error"]["message"] == expected
