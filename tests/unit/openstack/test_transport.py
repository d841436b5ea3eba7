"""The stdlib transport against a local HTTP server: answers, failures, TLS options,
timeouts, the 401 fallback to keystoneauth, and endpoint choice from the cached catalog."""

from __future__ import annotations

import http.server
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from bosh_openstack_cpi.openstack import http as os_http
from bosh_openstack_cpi.openstack import transport
from bosh_openstack_cpi.openstack.tls import TlsSettings
from tools.request_log import requests_in


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        if self.path.startswith("/v2.1/redirect"):
            self._redirect()
            return
        if self.path.startswith("/v2.1/slow"):
            time.sleep(1.0)
        if self.path.startswith("/v2.1/reset"):
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        status = 401 if self.path.startswith("/v2.1/unauthorized") else 404
        answer: dict[str, Any] = {"itemNotFound": {"message": "Instance not found"}}
        if self.path.startswith("/v2.1/ok"):
            status = 200
        if self.path == "/v3/":  # Cinder's version discovery (Nova's is left out: 404)
            status = 200
            base = f"http://{self.headers['Host']}"
            answer = {"versions": [_version("v3.0", f"{base}/v3/", "3.0", "3.70")]}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Openstack-Request-Id", "req-1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self) -> None:
        """/v2.1/redirect-<to>: 307 to /v2.1/ok (same host), to another host, to itself,
        or without a Location."""
        port = self.headers["Host"].rsplit(":", 1)[1]
        target = {
            "/v2.1/redirect-same": "/v2.1/ok-moved",
            "/v2.1/redirect-away": f"http://127.0.0.2:{port}/v2.1/ok",
            "/v2.1/redirect-loop": "/v2.1/redirect-loop",
        }.get(self.path)
        self.send_response(307 if target else 302)
        if target:
            self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _version(vid: str, href: str, low: str | None, high: str | None) -> dict[str, Any]:
    links = [{"rel": "self", "href": href}]
    return {"id": vid, "status": "CURRENT", "links": links, "min_version": low, "version": high}


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


_SESSIONS: list[transport.Session] = []
KEYSTONEAUTH_ANSWER: Any = object()


@pytest.fixture(autouse=True)
def _close_sessions() -> Iterator[None]:
    yield
    while _SESSIONS:
        _SESSIONS.pop().close()


class _FallbackAdapter:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls

    def request(self, url: str, method: str, **kwargs: Any) -> Any:
        self.calls.append((url, method, kwargs))
        return KEYSTONEAUTH_ANSWER

    def microversion_range(self) -> tuple[str, str] | None:
        self.calls.append(("discovery",))
        return ("2.1", "2.90")


class _FallbackServices:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.compute = self.image = self.network = self.block_storage = _FallbackAdapter(calls)
        self.load_balancer = self.compute
        self.current_project_id = "p"


def _services(
    base: str,
    *,
    catalog: list[dict[str, Any]] | None = None,
    discovery: dict[str, Any] | None = None,
    timeout: float = 5.0,
) -> tuple[transport.FastServices, list[tuple[Any, ...]], list[bool]]:
    calls: list[tuple[Any, ...]] = []
    built: list[bool] = []

    def keystoneauth(reuse: bool) -> Any:
        built.append(reuse)
        return _FallbackServices(calls)

    endpoint = {"interface": "public", "region": "RegionOne", "region_id": "RegionOne"}
    body = {
        "token": {
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "project": {"id": "project-1"},
            "catalog": catalog
            if catalog is not None
            else [
                {"type": "compute", "endpoints": [{**endpoint, "url": f"{base}/v2.1"}]},
                {"type": "network", "endpoints": [{**endpoint, "url": base}]},
                {"type": "image", "endpoints": [{**endpoint, "url": base}]},
                {
                    "type": "volumev3",
                    "endpoints": [{**endpoint, "url": f"{base}/v3/project-1"}],
                },
                {
                    "type": "block-storage",
                    "endpoints": [{**endpoint, "url": f"{base}/v3/project-1"}],
                },
            ],
        }
    }
    session = transport.Session("secret-token", tls=TlsSettings(), timeout=timeout)
    _SESSIONS.append(session)
    services = transport.FastServices(
        "secret-token",
        body,
        discovery or {},
        region_name="RegionOne",
        interface="public",
        session=session,
        keystoneauth=keystoneauth,
    )
    return services, calls, built


def test_an_error_answer_is_returned_with_what_the_adapters_read(server):
    services, calls, _ = _services(server)
    response = services.compute.request("/servers/x", "GET", params={"name": "^a$", "x": None})
    assert response.status_code == 404
    assert response.headers.get("x-openstack-request-id") == "req-1"
    assert response.json() == {"itemNotFound": {"message": "Instance not found"}}
    with pytest.raises(os_http.NotFoundException) as raised:
        os_http.raise_from_response(response)
    assert raised.value.details == "Instance not found"
    assert raised.value.request_id == "req-1"
    assert str(raised.value).startswith(f"Client Error HTTP 404 for GET {server}/v2.1/servers/x")
    sent = _Handler.seen[-1]
    assert sent["path"] == "/v2.1/servers/x?name=%5Ea%24"
    assert sent["headers"]["X-Auth-Token"] == "secret-token"
    assert calls == []


def test_json_bodies_and_microversion_headers(server):
    services, _, _ = _services(server)
    services.compute.request("/ok", "POST", json={"a": 1}, microversion="2.67")
    services.block_storage.request("/ok", "POST", json={"b": 2}, microversion="3.60")
    nova, cinder = _Handler.seen[-2:]
    assert nova["body"] == b'{"a": 1}'
    assert nova["headers"]["Content-Type"] == "application/json"
    assert nova["headers"]["OpenStack-API-Version"] == "compute 2.67"
    assert nova["headers"]["X-OpenStack-Nova-API-Version"] == "2.67"
    assert cinder["path"] == "/v3/project-1/ok"
    assert cinder["headers"]["OpenStack-API-Version"] == "volume 3.60"


def test_neutron_gets_v2_0_and_the_project_comes_from_the_token(server):
    services, _, _ = _services(server)
    services.network.request("/ports", "GET")
    assert _Handler.seen[-1]["path"] == "/v2.0/ports"
    assert services.current_project_id == "project-1"


def test_octavia_gets_v2_from_the_catalog_with_the_region_and_interface(server):
    endpoint = {"interface": "public", "region_id": "RegionOne"}
    catalog = [
        {
            "type": "load-balancer",
            "endpoints": [
                {**endpoint, "url": f"{server}/"},
                {**endpoint, "interface": "internal", "url": "http://elsewhere:1/"},
                {**endpoint, "region_id": "RegionTwo", "url": "http://elsewhere:2/"},
            ],
        }
    ]
    services, calls, _ = _services(server, catalog=catalog)
    services.load_balancer.request("/lbaas/pools", "GET", params=[("name", "web")])
    assert _Handler.seen[-1]["path"] == "/v2/lbaas/pools?name=web"
    assert calls == []


def test_a_catalog_without_octavia_is_left_to_keystoneauth_which_reports_it(server):
    services, calls, _ = _services(server)
    assert services.load_balancer.request("/lbaas/pools", "GET") is KEYSTONEAUTH_ANSWER
    assert calls == [("/lbaas/pools", "GET", {})]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h:9876", "http://h:9876/v2"),
        ("http://h:9876/", "http://h:9876/v2"),
        ("https://api/load-balancer", "https://api/load-balancer/v2"),
        ("http://h:9876/v2", "http://h:9876/v2"),
        ("http://h:9876/v2.0/", "http://h:9876/v2.0"),
    ],
)
def test_the_octavia_url_of_a_catalog_url(url, expected):
    assert transport.octavia_url(url) == expected


def test_a_401_authenticates_again_with_keystoneauth_and_sends_once_more(server):
    services, calls, built = _services(server)
    answer = services.compute.request("/unauthorized", "GET")
    assert answer is KEYSTONEAUTH_ANSWER
    assert built == [False]  # a new token, not the cached one
    assert calls == [("/unauthorized", "GET", {"allow_reauth": False})]
    assert services.compute.request("/ok", "GET") is KEYSTONEAUTH_ANSWER
    assert built == [False]
    assert len([s for s in _Handler.seen if s["path"].startswith("/v2.1/")]) == 1


def test_a_streamed_body_goes_through_keystoneauth(server):
    services, calls, built = _services(server)
    body = iter([b"data"])
    services.image.request("/images/x/file", "PUT", data=body, redirect=False)
    assert built == [True]
    assert calls == [("/images/x/file", "PUT", {"data": body, "redirect": False})]


def test_a_refused_connection_was_not_sent():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    services, _, _ = _services(f"http://127.0.0.1:{port}")
    with pytest.raises(os_http.NotSent) as raised:
        services.compute.request("/servers/x", "GET")
    assert "Connection refused" in str(raised.value)


def test_a_connect_timeout_was_not_sent(server, monkeypatch):
    def slow(*args: Any, **kwargs: Any) -> Any:
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", slow)
    services, _, _ = _services(server)
    with pytest.raises(os_http.ConnectTimedOut):
        services.compute.request("/servers/x", "GET")


def test_a_read_timeout_is_an_unknown_fate(server):
    services, _, _ = _services(server, timeout=0.2)
    with pytest.raises(os_http.ReadTimedOut):
        services.compute.request("/slow", "GET")


def test_a_connection_closed_without_answer_is_an_unknown_fate(server):
    services, _, _ = _services(server)
    with pytest.raises(os_http.AnswerLost):
        services.compute.request("/reset", "POST", json={})


def test_tls_to_a_plain_http_server_is_a_tls_failure(server):
    services, _, _ = _services(server.replace("http://", "https://"))
    with pytest.raises(os_http.TlsFailure) as raised:
        services.compute.request("/servers/x", "GET")
    assert str(raised.value).startswith("SSL exception connecting to https://127.0.0.1:")


def test_a_kept_alive_connection_is_reused(server):
    services, _, _ = _services(server)
    services.compute.request("/ok", "GET")
    services.compute.request("/ok", "GET")
    assert len(services.session._connections) == 1


def test_each_request_is_logged_for_request_log_without_secrets(server, caplog):
    services, _, _ = _services(server)
    with caplog.at_level(logging.DEBUG, logger="bosh_openstack_cpi.openstack.transport"):
        services.compute.request("/servers/x", "GET", params={"name": "vm-1"})
    assert requests_in(caplog.text) == [
        ("127.0.0.1:" + server.rsplit(":", 1)[1], "GET", "/v2.1/servers/x?name=vm-1", 404)
    ]
    assert "secret-token" not in caplog.text


def test_an_ambiguous_or_unversioned_endpoint_is_left_to_keystoneauth(server):
    endpoint = {"interface": "public", "region": "RegionOne"}
    catalog = [
        {"type": "compute", "endpoints": [{**endpoint, "url": server}]},  # unversioned
        {"type": "volumev3", "endpoints": [{**endpoint, "url": f"{server}/v3/a"}]},
        {"type": "block-storage", "endpoints": [{**endpoint, "url": f"{server}/v3/b"}]},
    ]
    services, _, built = _services(server, catalog=catalog)
    assert services.compute.request("/servers/x", "GET") is KEYSTONEAUTH_ANSWER
    assert services.block_storage.request("/volumes", "GET") is KEYSTONEAUTH_ANSWER
    assert services.image.request("/images", "GET") is KEYSTONEAUTH_ANSWER  # no discovery
    assert built == [True]
    assert _Handler.seen == []


def test_glance_and_microversions_from_the_cached_discovery(server):
    discovery = {
        server: [_version("v2.15", f"{server}/v2/", None, None)],
        f"{server}/v3/": [_version("v3.0", f"{server}/v3/", "3.0", "3.70")],
    }
    services, calls, built = _services(server, discovery=discovery)
    services.image.request("/images", "GET")
    assert _Handler.seen[-1]["path"] == "/v2/images"
    assert os_http.best_microversion(services.block_storage, "3.71") == "3.70"
    assert os_http.supports_microversion(services.block_storage, "3.42")
    assert [r["path"] for r in _Handler.seen] == ["/v2/images"]  # no discovery request
    # Nova's discovery is neither cached nor answered (404 here): keystoneauth's turn
    assert os_http.supports_microversion(services.compute, "2.47")
    assert _Handler.seen[-1]["path"] == "/v2.1/"
    assert calls == [("discovery",)]
    assert built == [True]
    assert services.learned_discovery == {}


def test_discovery_not_in_the_cache_is_one_get_with_the_token(server):
    services, calls, built = _services(server)
    assert os_http.best_microversion(services.block_storage, "3.71") == "3.70"
    assert os_http.supports_microversion(services.block_storage, "3.42")  # asked once
    [discovery] = _Handler.seen
    assert discovery["method"] == "GET" and discovery["path"] == "/v3/"
    assert discovery["headers"]["X-Auth-Token"] == "secret-token"
    assert list(services.learned_discovery) == [f"{server}/v3/"]
    assert calls == [] and built == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h:8776/v3/p", "http://h:8776/v3/"),
        ("http://h/volume/v3/p/", "http://h/volume/v3/"),
        ("http://h:8774/v2.1", "http://h:8774/v2.1/"),
    ],
)
def test_the_version_root_that_is_discovered(url, expected, monkeypatch):
    services, _, _ = _services("http://h")
    sent: list[str] = []

    def send(method: str, target: str, **_: Any) -> Any:
        sent.append(target)
        raise os_http.NotSent("refused")  # falls back to keystoneauth

    monkeypatch.setattr(services.session, "send", send)
    service = "compute" if "v2.1" in url else "block-storage"
    assert services._microversions(service, url) == ("2.1", "2.90")  # keystoneauth's
    assert sent == [expected]


def test_a_catalog_url_without_the_version_is_left_to_keystoneauth():
    services, calls, _ = _services("http://h")
    assert services._microversions("block-storage", "http://h:8776/v30/p") == ("2.1", "2.90")
    assert calls == [("discovery",)]


def test_when_the_cached_token_may_be_used(monkeypatch):
    body = {"token": {"expires_at": "2030-01-01T00:00:00Z"}}
    expiry = transport.token_expiry(body)
    assert expiry is not None
    assert transport.usable_token({"auth_token": "t", "body": body}, now=expiry - 3600)
    assert not transport.usable_token({"auth_token": "t", "body": body}, now=expiry - 60)
    assert not transport.usable_token({"auth_token": None, "body": body}, now=0)
    assert not transport.usable_token({"auth_token": "t", "body": {}}, now=0)
    for name in transport.CA_BUNDLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert transport.environment_allows()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/other-ca.pem")
    assert not transport.environment_allows()


def _no_proxy_variables(monkeypatch):
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("variables", "url", "proxied"),
    [
        ({}, "http://127.0.0.1:8774/v2.1", False),
        ({"https_proxy": "http://proxy:3128"}, "http://127.0.0.1:8774/v2.1", False),
        ({"http_proxy": "http://proxy:3128"}, "http://127.0.0.1:8774/v2.1", True),
        ({"HTTP_PROXY": "http://proxy:3128"}, "http://nova.example:8774/v2.1", True),
        ({"all_proxy": "http://proxy:3128"}, "https://nova.example/compute/v2.1", True),
        (
            {"https_proxy": "http://proxy:3128", "no_proxy": "127.0.0.1,.example"},
            "https://nova.example/compute/v2.1",
            False,
        ),
        (
            {"https_proxy": "http://proxy:3128", "NO_PROXY": "cinder.example"},
            "https://nova.example/compute/v2.1",
            True,
        ),
        ({"http_proxy": "http://proxy:3128", "no_proxy": "*"}, "http://10.0.0.5:8774", False),
    ],
)
def test_which_endpoints_a_proxy_applies_to(monkeypatch, variables, url, proxied):
    _no_proxy_variables(monkeypatch)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert (transport.proxy_for(url) is not None) is proxied


def test_endpoints_a_proxy_applies_to_are_left_to_keystoneauth(server, monkeypatch):
    _no_proxy_variables(monkeypatch)
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "localhost")  # not the server's 127.0.0.1
    services, _, built = _services(server)
    assert services.compute.request("/servers/x", "GET") is KEYSTONEAUTH_ANSWER
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    services, _, built = _services(server)
    assert services.compute.request("/servers/x", "GET").status_code == 404
    assert built == []


def test_query_parameters_as_requests_encodes_them(server):
    """Neutron's lookups pass a list of pairs (repeated `fields`); mappings may hold lists."""
    services, _, _ = _services(server)
    services.network.request(
        "/ports",
        "GET",
        params=[("fixed_ips", "ip_address=10.0.0.5"), ("fields", "id"), ("fields", "name")],
    )
    assert _Handler.seen[-1]["path"] == (
        "/v2.0/ports?fixed_ips=ip_address%3D10.0.0.5&fields=id&fields=name"
    )
    services.compute.request("/servers/detail", "GET", params={"a": ["1", "2"], "b": None})
    assert _Handler.seen[-1]["path"] == "/v2.1/servers/detail?a=1&a=2"


def test_a_redirect_on_the_same_host_is_followed_with_the_same_method_and_body(server):
    services, _, _ = _services(server)
    response = services.compute.request("/redirect-same", "PUT", json={"server": {"name": "n"}})
    assert response.status_code == 200
    assert [(r["method"], r["path"], r["body"]) for r in _Handler.seen] == [
        ("PUT", "/v2.1/redirect-same", b'{"server": {"name": "n"}}'),
        ("PUT", "/v2.1/ok-moved", b'{"server": {"name": "n"}}'),
    ]


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        ("/redirect-none", 1),  # no Location: nothing to follow
        ("/redirect-away", 1),  # another host: the token stays here
        ("/redirect-loop", transport.MAX_REDIRECTS + 1),
    ],
)
def test_a_redirect_not_followed_is_an_error_not_a_success(server, path, sent):
    services, _, _ = _services(server)
    response = services.compute.request(path, "POST", json={"metadata": {"k": "v"}})
    assert response.status_code in (302, 307)
    with pytest.raises(os_http.HttpException, match="not followed") as raised:
        os_http.raise_from_response(response)
    assert raised.value.status_code == response.status_code
    assert len(_Handler.seen) == sent
    assert all(r["headers"]["Host"].startswith("127.0.0.1") for r in _Handler.seen)


def test_path_prefixed_endpoints_take_the_stdlib_transport(server):
    """Clouds behind one front end publish `https://api/compute/v2.1`,
    `https://api/volume/v3/<project>`, `https://api/network`: the version is a segment
    of the path, wherever it is mounted."""
    endpoint = {"interface": "public", "region": "RegionOne"}
    catalog = [
        {"type": "compute", "endpoints": [{**endpoint, "url": f"{server}/compute/v2.1"}]},
        {"type": "block-storage", "endpoints": [{**endpoint, "url": f"{server}/volume/v3/p"}]},
        {"type": "network", "endpoints": [{**endpoint, "url": f"{server}/network"}]},
    ]
    services, _, built = _services(server, catalog=catalog)
    for adapter, path in (
        (services.compute, "/servers/x"),
        (services.block_storage, "/volumes/x"),
        (services.network, "/ports/x"),
    ):
        assert adapter.request(path, "GET").status_code == 404
    assert [r["path"] for r in _Handler.seen] == [
        "/compute/v2.1/servers/x",
        "/volume/v3/p/volumes/x",
        "/network/v2.0/ports/x",
    ]
    assert built == []  # keystoneauth never needed
