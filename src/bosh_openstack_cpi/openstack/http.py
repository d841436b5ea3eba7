"""HTTP errors of the OpenStack APIs, transport failures, and microversion checks.

The service adapters send REST requests through an adapter (openstack/transport.py's
stdlib one, or keystoneauth's behind openstack/connection.py) that returns error answers
instead of raising, and turn an error answer into one of these exceptions with
`raise_from_response`. A request that got no usable answer raises a `TransportError`:
both transports raise only these classes (keystoneauth's exceptions are translated in
openstack/connection.py), so that retry.py and errors.py know one hierarchy. This module
imports nothing heavy: a call with a cached token never loads requests or keystoneauth.

`details` is the service's own message, unwrapped from the fault body each service wraps
it in (Nova/Cinder `{"itemNotFound": {"message": ...}}`, Neutron `{"NeutronError":
{"message": ...}}`, Keystone `{"error": {"message": ...}}`, Glance's HTML page).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Protocol

REQUEST_ID_HEADERS = ("x-openstack-request-id", "x-compute-request-id")
# The redirects keystoneauth follows (and the stdlib transport, on the same host).
REDIRECT_STATUSES = frozenset({301, 302, 303, 305, 307, 308})


class Headers(Protocol):
    """Case-insensitive response headers."""

    def get(self, name: str, default: Any = None, /) -> Any: ...

    def __getitem__(self, name: str, /) -> Any: ...


class SentRequest(Protocol):
    method: Any
    url: Any


class Response(Protocol):
    """What the adapters read of an answer (a requests.Response, or transport.Response)."""

    status_code: int
    reason: Any
    headers: Any
    request: Any

    @property
    def content(self) -> bytes: ...

    @property
    def text(self) -> str: ...

    def json(self, **kwargs: Any) -> Any: ...


class Adapter(Protocol):
    """One service's endpoint: the subset of keystoneauth's Adapter the CPI uses."""

    def request(self, url: str, method: str, **kwargs: Any) -> Response: ...

    def get(self, url: str, **kwargs: Any) -> Response: ...

    def put(self, url: str, **kwargs: Any) -> Response: ...

    def microversion_range(self) -> tuple[str, str] | None:
        """(oldest, newest) microversion of the service, None when it has none."""
        ...


class Services(Protocol):
    """One adapter per service, and the token's project (either transport)."""

    @property
    def compute(self) -> Adapter: ...

    @property
    def image(self) -> Adapter: ...

    @property
    def network(self) -> Adapter: ...

    @property
    def block_storage(self) -> Adapter: ...

    @property
    def load_balancer(self) -> Adapter: ...

    @property
    def current_project_id(self) -> str | None: ...


# --- transport failures: no usable answer ----------------------------------------------


class TransportError(Exception):
    """A request got no usable HTTP answer."""


class NotSent(TransportError):
    """No connection was made (refused, unreachable, name not resolved): the request never
    reached the cloud, so sending it again cannot duplicate anything."""


class ConnectTimedOut(NotSent):
    """The connection could not be made in time: the request was not sent."""


class AnswerLost(TransportError):
    """The connection broke after the request was (perhaps) sent: reset, closed, or an
    answer cut off. The request's fate is unknown."""


class ReadTimedOut(TransportError):
    """The request was sent and no answer came in time: its fate is unknown."""


class TlsFailure(TransportError):
    """TLS negotiation or certificate verification failed (does not go away by itself)."""


class EndpointNotFound(Exception):
    """The token's catalog has no endpoint for a service (region, interface)."""


class ClientFailure(Exception):
    """Anything else the client side could not do (e.g. no usable API version found)."""


class HttpException(Exception):
    """An OpenStack API answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        details: str | None = None,
        request_id: str | None = None,
        response: Response | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.details = details
        self.request_id = request_id
        self.response = response

    def __str__(self) -> str:
        if self.details and self.details not in self.message:
            return f"{self.message}: {self.details}"
        return self.message


class BadRequestException(HttpException):
    """HTTP 400."""


class ForbiddenException(HttpException):
    """HTTP 403."""


class NotFoundException(HttpException):
    """HTTP 404."""


class ConflictException(HttpException):
    """HTTP 409."""


_BY_STATUS: dict[int, type[HttpException]] = {
    400: BadRequestException,
    403: ForbiddenException,
    404: NotFoundException,
    409: ConflictException,
}


def raise_from_response(response: Response) -> None:
    """Raise the HttpException matching an error answer: status 400 and above, and a
    redirect the transport did not follow, which did not do what was asked. (300 Multiple
    Choices is a version document's answer, not a redirect.)"""
    status = response.status_code
    if status < 400 and status not in REDIRECT_STATUSES:
        return
    request = response.request
    where = f" for {request.method} {request.url}" if request is not None else ""
    if status < 400:
        location = response.headers.get("location") or "none given"
        raise HttpException(
            f"Redirect HTTP {status}{where} not followed (Location: {location}); the request "
            "was not carried out: check the endpoint URLs in the Keystone catalog",
            status_code=status,
            details=service_message(response),
            request_id=None,
            response=response,
        )
    kind = "Client Error" if status < 500 else "Server Error"
    request_id = next(
        (response.headers[h] for h in REQUEST_ID_HEADERS if response.headers.get(h)), None
    )
    raise _BY_STATUS.get(status, HttpException)(
        f"{kind} HTTP {status}{where}",
        status_code=status,
        details=service_message(response),
        request_id=request_id,
        response=response,
    )


def service_message(response: Response) -> str:
    """The service's own words about an error answer (its reason phrase when it gave none)."""
    content_type = response.headers.get("content-type", "")
    details = ""
    if response.content and "json" in content_type:
        try:
            details = _json_message(response.json())
        except ValueError:
            details = response.text
    elif response.content and "text/html" in content_type:
        lines = (re.sub(r"<.+?>", "", line.strip()) for line in response.text.splitlines())
        details = ": ".join(line for line in dict.fromkeys(lines) if line)
    return details or response.reason or response.text or ""


def _json_message(body: Any) -> str:
    """Every "message" of a fault body: first one level down (the usual wrapped fault),
    then at the top (a bare {"message": ...})."""
    if not isinstance(body, dict):
        return ""
    messages = [_message(value) for value in body.values()]
    found = [m for m in messages if m]
    if not found and _message(body):
        found = [_message(body)]
    return "\n".join(found)


def _message(value: Any) -> str:
    if isinstance(value, str):  # double-encoded JSON, as some services send
        try:
            value = json.loads(value)
        except ValueError:
            return ""
    if isinstance(value, dict):
        for key in ("message", "faultstring"):
            if value.get(key):
                return str(value[key])
    return ""


def supports_microversion(adapter: Adapter, version: str) -> bool:
    """The service behind the adapter accepts this microversion (from version discovery,
    which the session cache keeps across calls)."""
    found = adapter.microversion_range()
    if found is None:
        return False
    oldest, newest = (version_number(v) for v in found)
    return oldest <= version_number(version) <= newest


def best_microversion(adapter: Adapter, wanted: str) -> str | None:
    """`wanted`, or the service's newest microversion when it is older; None when the
    service has no microversions."""
    found = adapter.microversion_range()
    if found is None:
        return None
    if version_number(wanted) <= version_number(found[1]):
        return wanted
    return ".".join(str(part) for part in version_number(found[1]))


def version_number(text: str) -> tuple[int, ...]:
    """ "v2.1", "2.93", "3" -> (2, 1), (2, 93), (3, 0). ValueError when it is none."""
    parts = tuple(int(part) for part in text.strip().lstrip("vV").split("."))
    if not parts:
        raise ValueError(f"not a version: {text!r}")
    return parts if len(parts) > 1 else (*parts, 0)


def microversion_range(version: Mapping[str, Any]) -> tuple[str, str] | None:
    """(min_version, version) of a version-discovery entry; None without microversions."""
    oldest, newest = version.get("min_version"), version.get("version")
    if not oldest or not newest:
        return None
    return str(oldest), str(newest)
