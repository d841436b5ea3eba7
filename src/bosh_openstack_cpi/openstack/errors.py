"""Translate HTTP errors and transport failures into CPI errors that say what to fix."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from bosh_openstack_cpi.openstack import http
from bosh_openstack_cpi.openstack.http import HttpException
from bosh_openstack_cpi.protocol.errors import CloudError

TLS_HINT = (
    "Set openstack.connection_options.ca_cert to the PEM of the CA that signed the endpoint's "
    "certificate (or add that CA to the operating system's store, e.g. with the director's "
    "env.bosh.trusted_certs), or ssl_verify_peer: false to skip verification (insecure)."
)


class ServiceNotInCatalog(CloudError):
    """The token's catalog lacks a service: the cached token must not be used again."""


class EndpointUnreachable(CloudError):
    """No connection could be made to an endpoint of the catalog. The cached token and
    catalog are dropped too: if the cloud moved the endpoint, the next call authenticates
    and reads the new catalog (as the reference CPI, which authenticates every call)."""


def connection_problem(error: Exception) -> str:
    """The innermost reason of a connection failure ("[Errno 111] Connection refused"),
    instead of urllib3's three nested wrappers."""
    text = str(error)
    reasons = re.findall(r"\[Errno -?\d+\] [^'\")]+", text)
    return reasons[-1].strip() if reasons else text


def describe_http_error(error: HttpException) -> str:
    details = (error.details or "").strip() or str(error.message or "").strip()
    text = f"HTTP {error.status_code}"
    if details:
        text += f": {details}"
    if error.request_id:
        text += f" (request id {error.request_id})"
    return text


@contextlib.contextmanager
def api_errors(service: str, action: str) -> Iterator[None]:
    """Errors of one OpenStack request → CloudError naming the service and the action.

    Callers catch the specific conditions they handle (404 on a lookup, 409 on a
    port) inside this block; whatever is left is an error the operator must see.
    """
    try:
        yield
    except HttpException as error:
        raise CloudError(
            f"OpenStack {service} API: {action} failed, {describe_http_error(error)}"
        ) from None
    except http.TlsFailure as error:
        raise CloudError(f"TLS error talking to OpenStack {service}: {error}. {TLS_HINT}") from None
    except http.EndpointNotFound as error:
        raise ServiceNotInCatalog(
            f"The Keystone catalog has no {service} endpoint ({error}); check openstack.region "
            "and openstack.endpoint_type"
        ) from None
    except ValueError as error:
        # keystoneauth's answer when a service is in the catalog under two types (Cinder's
        # block-storage and volumev3) and neither has an endpoint that matches the filters.
        if "choosing an endpoint" not in str(error):
            raise
        raise ServiceNotInCatalog(
            f"The Keystone catalog has no {service} endpoint for this region and interface; "
            "check openstack.region and openstack.endpoint_type"
        ) from None
    except http.NotSent as error:  # refused, or no connection in time
        raise EndpointUnreachable(
            f"Cannot reach OpenStack {service} to {action}: {connection_problem(error)}"
        ) from None
    except http.TransportError as error:  # reset, cut off, timed out
        raise CloudError(
            f"Cannot reach OpenStack {service} to {action}: {connection_problem(error)}"
        ) from None
    except http.ClientFailure as error:  # e.g. version discovery found no usable API
        raise CloudError(f"OpenStack {service}: {action} failed: {error}") from None
