"""HTTP errors of the OpenStack APIs, and microversion checks, on plain keystoneauth.

The service adapters send REST requests through keystoneauth Adapters built with
`raise_exc=False` and turn an error answer into one of these exceptions with
`raise_from_response`. `details` is the service's own message, unwrapped from the fault
body each service wraps it in (Nova/Cinder `{"itemNotFound": {"message": ...}}`, Neutron
`{"NeutronError": {"message": ...}}`, Keystone `{"error": {"message": ...}}`, Glance's
HTML page).
"""

from __future__ import annotations

import json
import re
from typing import Any

import requests
from keystoneauth1 import adapter as ksa_adapter
from keystoneauth1 import discover

REQUEST_ID_HEADERS = ("x-openstack-request-id", "x-compute-request-id")


class HttpException(Exception):
    """An OpenStack API answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        details: str | None = None,
        request_id: str | None = None,
        response: requests.Response | None = None,
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


def raise_from_response(response: requests.Response) -> None:
    """Raise the HttpException matching an error answer (status 400 and above)."""
    status = response.status_code
    if status < 400:
        return
    request = response.request
    where = f" for {request.method} {request.url}" if request is not None else ""
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


def service_message(response: requests.Response) -> str:
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


def supports_microversion(adapter: ksa_adapter.Adapter, version: str) -> bool:
    """The service behind the adapter accepts this microversion (from keystoneauth's
    version discovery, which the session cache keeps across calls)."""
    data = adapter.get_endpoint_data()
    if data is None or not data.min_microversion or not data.max_microversion:
        return False
    return bool(discover.version_between(data.min_microversion, data.max_microversion, version))


def best_microversion(adapter: ksa_adapter.Adapter, wanted: str) -> str | None:
    """`wanted`, or the service's newest microversion when it is older; None when the
    service has no microversions."""
    data = adapter.get_endpoint_data()
    if data is None or not data.max_microversion:
        return None
    newest = discover.normalize_version_number(data.max_microversion)
    if discover.normalize_version_number(wanted) <= newest:
        return wanted
    return discover.version_to_string(newest)
