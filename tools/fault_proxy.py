"""A fault-injecting HTTP proxy between the CPI and a real OpenStack.

One listener on 127.0.0.1 per upstream service. The Keystone listener rewrites the
service catalog in token responses so that the CPI sends every later request through
the proxy too. Each request gets a sequence number; a `FaultPlan` decides per request
whether to pass it through or to inject a fault:

    error(status, retry_after=None)   an HTTP error without forwarding (5xx, 429, 413 overLimit)
    error_after(status)               forward, then replace the cloud's answer with an error
    reset()                           close the connection without any answer
    reset_after()                     forward, then close without answering (the cloud did it)
    slow(seconds)                     forward after a delay
    truncate()                        forward, answer with half the body
    kill(pid_getter)                  SIGKILL the CPI when this request arrives (then reset)
    kill_after(pid_getter)            forward, then SIGKILL the CPI before it gets the answer
    term(pid_getter, delay)           SIGTERM the CPI when this request arrives, then forward
                                      it after `delay` (the signal lands while the CPI waits)
    echo(status, style)               an answer quoting the request, as validation errors of
                                      OpenStack APIs quote their input (secrets included):
                                      style "body" (the whole body), "fields" (each field's
                                      value, bare, as Nova's "Value: ..."), "html" (not even
                                      JSON: a broken proxy in the way)

Every request is recorded (service, method, path, fault, status) for the reports.
With `tls=(certificate, key)` the listeners speak HTTPS: the whole cloud behind TLS.
Loopback only: upstreams must be 127.0.0.0/8 addresses.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# How long `records` waits for requests still in flight (an answer sent, not yet recorded;
# a slow fault still sleeping is not worth waiting for).
SETTLE_SECONDS = 2.0
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
        "content-length",
    }
)


@dataclass(frozen=True)
class Fault:
    kind: str  # error, error_after, reset, reset_after, slow, truncate, kill, kill_after,
    # term, echo
    status: int = 0
    retry_after: float | None = None
    seconds: float = 0.0
    pid: Callable[[], int | None] | None = None
    style: str = ""

    def describe(self) -> str:
        if self.kind == "echo":
            return f"echo {self.status} ({self.style})"
        if self.kind in ("error", "error_after"):
            return f"{self.kind} {self.status}"
        if self.kind == "slow":
            return f"slow {self.seconds:g}s"
        return self.kind


def error(status: int, retry_after: float | None = None) -> Fault:
    return Fault("error", status=status, retry_after=retry_after)


def error_after(status: int) -> Fault:
    return Fault("error_after", status=status)


def reset() -> Fault:
    return Fault("reset")


def reset_after() -> Fault:
    return Fault("reset_after")


def echo(status: int = 400, style: str = "body") -> Fault:
    return Fault("echo", status=status, style=style)


def slow(seconds: float) -> Fault:
    return Fault("slow", seconds=seconds)


def truncate() -> Fault:
    return Fault("truncate")


def kill(pid: Callable[[], int | None]) -> Fault:
    return Fault("kill", pid=pid)


def kill_after(pid: Callable[[], int | None]) -> Fault:
    return Fault("kill_after", pid=pid)


def term(pid: Callable[[], int | None], delay: float = 0.3) -> Fault:
    return Fault("term", pid=pid, seconds=delay)


@dataclass
class Record:
    sequence: int
    service: str
    method: str
    path: str
    fault: str | None
    status: int | None


Rule = Callable[[int, str, str, str], Fault | None]


@dataclass
class FaultPlan:
    """Rules are (sequence, service, method, path) -> Fault | None; the first match wins."""

    rules: list[Rule] = field(default_factory=list)

    def at(self, sequence: int, fault: Fault) -> FaultPlan:
        self.rules.append(lambda n, _s, _m, _p: fault if n == sequence else None)
        return self

    def when(
        self,
        fault: Fault,
        *,
        service: str | None = None,
        method: str | None = None,
        path_contains: str | None = None,
        times: int = 1,
    ) -> FaultPlan:
        remaining = [times]

        def rule(_n: int, s: str, m: str, p: str) -> Fault | None:
            if remaining[0] <= 0:
                return None
            if (service and s != service) or (method and m != method):
                return None
            if path_contains and path_contains not in p:
                return None
            remaining[0] -= 1
            return fault

        self.rules.append(rule)
        return self

    def decide(self, sequence: int, service: str, method: str, path: str) -> Fault | None:
        for rule in self.rules:
            fault = rule(sequence, service, method, path)
            if fault is not None:
                return fault
        return None


class FaultProxy:
    def __init__(
        self,
        upstreams: dict[str, str],
        plan: FaultPlan | None = None,
        tls: tuple[Path, Path] | None = None,
        client_ca: Path | None = None,
        *,
        path_prefixes: bool = False,
        rewrite_links: bool | None = None,
    ) -> None:
        """`upstreams`: service name -> base URL, e.g. {"identity": "http://127.0.0.1:5000"};
        `tls`: certificate and key files for HTTPS listeners (None: plain HTTP);
        `client_ca`: with `tls`, clients must present a certificate this CA signed;
        `path_prefixes`: publish each service under `/<service name>` of its listener, as
        clouds behind one front end do (`https://api/compute/v2.1`): the catalog and every
        answer's links say so, and a request without the prefix gets 404;
        `rewrite_links`: every answer's links name the proxy, as a front end's services
        configured with their public URLs answer (default: only with `path_prefixes`;
        otherwise only Keystone's catalog is rewritten, as behind a front whose services
        do not know their public URL)."""
        self.path_prefixes = path_prefixes
        self.rewrite_links = path_prefixes if rewrite_links is None else rewrite_links
        for url in upstreams.values():
            host = urlsplit(url).hostname or ""
            if not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
                raise ValueError(f"refusing a non-loopback upstream: {url}")
        self.upstreams = {name: url.rstrip("/") for name, url in upstreams.items()}
        self.plan = plan or FaultPlan()
        self._records: list[Record] = []
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._in_flight = 0
        self._sequence = 0
        self._servers: dict[str, ThreadingHTTPServer] = {}
        self._threads: list[threading.Thread] = []
        self._tls: ssl.SSLContext | None = None
        if tls is not None:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(*tls)
            if client_ca is not None:
                self._tls.verify_mode = ssl.CERT_REQUIRED
                self._tls.load_verify_locations(client_ca)

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> FaultProxy:
        for name in self.upstreams:
            server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_for(name))
            server.daemon_threads = True
            if self._tls is not None:
                # the handshake happens in the request's thread, not in the accept loop
                server.socket = self._tls.wrap_socket(
                    server.socket, server_side=True, do_handshake_on_connect=False
                )
            self._servers[name] = server
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: Any) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()

    def url(self, service: str) -> str:
        """Where the service is published (with its path prefix, if any)."""
        scheme = "https" if self._tls is not None else "http"
        base = f"{scheme}://127.0.0.1:{self._servers[service].server_address[1]}"
        return f"{base}{self.prefix(service)}"

    def prefix(self, service: str) -> str:
        return f"/{service}" if self.path_prefixes else ""

    def restart(self, plan: FaultPlan) -> None:
        """Forget the requests seen so far and follow `plan` from now on (after requests
        that only prepare the run, e.g. filling the CPI's token cache)."""
        with self._settled:
            self._settled.wait_for(lambda: self._in_flight == 0, timeout=SETTLE_SECONDS)
            self.plan = plan
            self._records = []
            self._sequence = 0

    @property
    def records(self) -> list[Record]:
        """The requests seen so far. A request is recorded just after its answer went out,
        so a client that has its answer may get here first: wait (briefly) for the requests
        still in flight."""
        with self._settled:
            self._settled.wait_for(lambda: self._in_flight == 0, timeout=SETTLE_SECONDS)
            return list(self._records)

    def injected(self) -> list[Record]:
        return [r for r in self.records if r.fault]

    # -- the catalog rewrite -----------------------------------------------------
    def rewrite(self, text: str) -> str:
        for name, upstream in self.upstreams.items():
            text = text.replace(upstream, self.url(name))
        return text

    # -- request handling --------------------------------------------------------
    def _next(self, service: str, method: str, path: str) -> tuple[int, Fault | None]:
        with self._lock:
            self._sequence += 1
            self._in_flight += 1
            sequence = self._sequence
        return sequence, self.plan.decide(sequence, service, method, path)

    def _record(self, record: Record) -> None:
        with self._settled:
            self._records.append(record)
            self._in_flight -= 1
            self._settled.notify_all()

    def _handler_for(self, service: str) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle(self) -> None:
                # a client that refuses our certificate ends the handshake: nothing to log
                with contextlib.suppress(ssl.SSLError, ConnectionResetError):
                    super().handle()

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                body = self._body()
                sequence, fault = proxy._next(service, self.command, self.path)
                status: int | None = None
                try:
                    if fault is None or fault.kind in (
                        "error_after",
                        "reset_after",
                        "slow",
                        "truncate",
                        "kill_after",
                        "term",
                    ):
                        if fault is not None and fault.kind == "term":
                            _signal(fault, signal.SIGTERM)
                        if fault is not None and fault.kind in ("slow", "term"):
                            time.sleep(fault.seconds)
                        status = self._forward_and_answer(body, fault)
                    elif fault.kind == "error":
                        status = self._send_error(fault)
                    elif fault.kind == "echo":
                        status = self._send_error(fault, quoting=body)
                    elif fault.kind == "kill":
                        _signal(fault, signal.SIGKILL)
                        self._reset()
                    else:
                        self._reset()
                except (BrokenPipeError, ConnectionResetError):
                    # the CPI gave up (its read timeout) or was killed: nobody to answer
                    self.close_connection = True
                finally:
                    proxy._record(
                        Record(
                            sequence,
                            service,
                            self.command,
                            self.path,
                            fault.describe() if fault else None,
                            status,
                        )
                    )

            def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
                path = self.path
                prefix = proxy.prefix(service)
                if prefix:
                    if not (path == prefix or path.startswith(f"{prefix}/")):
                        return (
                            404,
                            [("Content-Type", "text/plain")],
                            b"not under " + prefix.encode(),
                        )
                    path = path[len(prefix) :] or "/"
                upstream = urlsplit(proxy.upstreams[service])
                connection = http.client.HTTPConnection(
                    upstream.hostname or "127.0.0.1", upstream.port, timeout=300
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                headers["Host"] = upstream.netloc
                headers["Content-Length"] = str(len(body))
                connection.request(self.command, path, body=body or None, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                connection.close()
                return response.status, response.getheaders(), payload

            def _forward_and_answer(self, body: bytes, fault: Fault | None) -> int:
                status, headers, payload = self._forward(body)
                if fault is not None and fault.kind in ("reset_after", "kill_after"):
                    if fault.kind == "kill_after":
                        _signal(fault, signal.SIGKILL)
                    self._reset()
                    return status
                if fault is not None and fault.kind == "error_after":
                    return self._send_error(fault)
                if (service == "identity" or proxy.rewrite_links) and payload:
                    # Keystone's catalog; with rewrite_links, every answer's links too
                    payload = proxy.rewrite(payload.decode("utf-8", "replace")).encode("utf-8")
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in HOP_BY_HOP:
                        if key.lower() == "location":
                            value = proxy.rewrite(value)
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                if fault is not None and fault.kind == "truncate":
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True  # a clean close, short of Content-Length
                    return status
                self.end_headers()
                self.wfile.write(payload)
                return status

            def _send_error(self, fault: Fault, quoting: bytes | None = None) -> int:
                if quoting is not None:
                    message = _quoted(quoting, fault.style)
                    wrapper = "error" if service == "identity" else "badRequest"
                    content: dict[str, Any] = {wrapper: {"code": fault.status, "message": message}}
                elif fault.status == 413:
                    content = {
                        "overLimit": {
                            "code": 413,
                            "message": "injected rate limit",
                            "retryAfter": str(int(fault.retry_after or 1)),
                        }
                    }
                else:
                    content = {"error": {"code": fault.status, "message": "injected fault"}}
                payload = json.dumps(content).encode()
                html = fault.style == "html"
                if html:
                    payload = b"<html>request was: " + (quoting or b"") + b"</html>"
                self.send_response(fault.status)
                self.send_header("Content-Type", "text/html" if html else "application/json")
                if fault.retry_after is not None:
                    self.send_header("Retry-After", str(int(fault.retry_after)))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return fault.status

            def _reset(self) -> None:
                self.close_connection = True
                try:
                    # SO_LINGER 0: the client sees a connection reset, not a clean close
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.connection.close()
                except OSError:
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        return Handler


def _quoted(body: bytes, style: str) -> str:
    """What a validation error says about the request: the body, or each field's value."""
    text = body.decode("utf-8", "replace")
    if style != "fields":
        return f"Invalid input for this request: {text}"
    leaves: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}/{key}" if path else str(key))
        elif isinstance(value, list):
            for item in value:
                walk(item, path)
        else:
            leaves.append(f"Invalid input for field/attribute {path}. Value: {value}.")

    try:
        walk(json.loads(text or "null"), "")
    except ValueError:
        return f"Invalid input: {text}"
    return " ".join(leaves)


def _signal(fault: Fault, number: int) -> None:
    pid = fault.pid() if fault.pid else None
    if pid:
        with contextlib.suppress(ProcessLookupError):  # it has already finished
            os.kill(pid, number)


def upstreams_from_catalog(
    catalog: list[dict[str, Any]], interface: str = "public"
) -> dict[str, str]:
    """Service type -> scheme://host:port of its endpoint, from a Keystone catalog."""
    found: dict[str, str] = {}
    for entry in catalog:
        for endpoint in entry.get("endpoints", []):
            if endpoint.get("interface") == interface:
                parts = urlsplit(endpoint["url"])
                found.setdefault(entry["type"], f"{parts.scheme}://{parts.netloc}")
    return found
