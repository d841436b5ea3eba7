"""The keystoneauth transport: one keystoneauth Adapter per OpenStack service, on one
authenticated session. It is used whenever the stdlib transport (openstack/transport.py)
is not: to authenticate, behind an HTTP proxy, for uploads, and on the first call.

Each adapter finds its endpoint in the token's catalog and, where the catalog URL may be
unversioned (Glance) or carries a project id (Cinder), lets keystoneauth's version
discovery pick the versioned endpoint when it is needed (a versioned catalog URL is used
as it is until a microversion must be checked). The discovery answers are kept across
calls by the session cache. Neutron has only ever had API v2.0: its catalog URL gets
"/v2.0" appended, as openstacksdk did, instead of a discovery request. Adapters are built
on first use, so a call pays discovery only for the services it talks to.

keystoneauth's exceptions never leave this module: `translated` turns them into
openstack/http.py's classes, the only ones the rest of the package catches.

When a version document cannot be read (a 5xx, a dropped connection), keystoneauth
quietly falls back to the unversioned catalog URL, and the next request would go to a
path the service does not serve as meant (Glance even creates an image for POST /images
and answers in a shape the CPI cannot read). So a discovered endpoint is resolved before
the service's first request and must carry a version; discovery is retried like a read.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import requests
from keystoneauth1 import adapter as ksa_adapter
from keystoneauth1 import exceptions as ksa
from keystoneauth1 import session as ksa_session

from bosh_openstack_cpi.openstack import http, retry
from bosh_openstack_cpi.openstack.errors import api_errors
from bosh_openstack_cpi.openstack.transport import (
    Unsupported,
    neutron_url,
    octavia_url,
    version_root,
)

log = logging.getLogger(__name__)

# service type -> (oldest, newest) major API version the CPI speaks.
API_VERSIONS = {
    "compute": ("2.1", "2.latest"),
    "image": ("2", "2.latest"),
    "block-storage": ("3", "3.latest"),
}
SERVICE_NAMES = {"compute": "Compute", "image": "Image", "block-storage": "Block Storage"}
VERSIONED_PATH = re.compile(r"/v\d+(\.\d+)?(/|$)")


class DiscoveryFellBack(http.AnswerLost):
    """keystoneauth could not read a version document and fell back to the unversioned
    catalog URL (a transient failure: retried as a read)."""


def translate(error: Exception) -> Exception:
    """keystoneauth's exception -> ours (openstack/http.py), same text."""
    text = str(error)
    if isinstance(error, ksa.SSLError):
        return http.TlsFailure(text)
    if isinstance(error, ksa.ConnectTimeout):
        # keystoneauth reports connect AND read timeouts as ConnectTimeout: only requests'
        # own exception (the context) says the connection was never made.
        if isinstance(error.__context__, requests.exceptions.ConnectTimeout):
            return http.ConnectTimedOut(text)
        return http.ReadTimedOut(text)
    if isinstance(error, ksa.ConnectFailure) and (
        "NewConnectionError" in text or "refused" in text.lower()
    ):
        return http.NotSent(text)
    if isinstance(error, ksa.ConnectionError):  # reset, closed, cut-off answer
        return http.AnswerLost(text)
    if isinstance(error, ksa.EndpointNotFound):
        return http.EndpointNotFound(text)
    if isinstance(error, ksa.HttpError):  # from a token request (raise_exc)
        return http.HttpException(
            str(error.message),
            status_code=error.http_status,
            request_id=error.request_id,
            response=error.response,
        )
    return http.ClientFailure(text)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """The one place where keystoneauth's exceptions become ours."""
    try:
        yield
    except ksa.ClientException as error:
        raise translate(error) from error


def get_token(session: ksa_session.Session) -> str | None:
    with translated():
        token: str | None = session.get_token()
    return token


class KeystoneauthAdapter:
    """A keystoneauth Adapter that raises only openstack/http.py's exceptions."""

    def __init__(self, adapter: ksa_adapter.Adapter) -> None:
        self.adapter = adapter

    def request(self, url: str, method: str, **kwargs: Any) -> http.Response:
        with translated():
            response: http.Response = self.adapter.request(url, method, **kwargs)
        return response

    def get(self, url: str, **kwargs: Any) -> http.Response:
        return self.request(url, "GET", **kwargs)

    def put(self, url: str, **kwargs: Any) -> http.Response:
        return self.request(url, "PUT", **kwargs)

    def microversion_range(self) -> tuple[str, str] | None:
        with translated():
            data = self.adapter.get_endpoint_data()
        if data is None or not data.min_microversion or not data.max_microversion:
            return None
        return _version_text(data.min_microversion), _version_text(data.max_microversion)


def _version_text(version: Any) -> str:
    return ".".join(str(part) for part in version)


class Connection:
    """The session and the per-service adapters (`compute`, `image`, `network`,
    `block_storage`). Requests return error answers instead of raising (`raise_exc=False`):
    adapters call openstack/http.py's `raise_from_response`. keystoneauth repeats nothing
    on its own (connect and status retries 0): openstack/retry.py decides per request."""

    def __init__(
        self,
        session: ksa_session.Session,
        *,
        region_name: str | None,
        interface: str,
        endpoint_overrides: dict[str, str] | None = None,
        discovery_cache: dict[str, Any] | None = None,
    ) -> None:
        self.session = session
        self._region_name = region_name
        self._interface = interface
        self._endpoint_overrides = endpoint_overrides or {}
        # The dict given to the session as its `discovery_cache`: keystoneauth looks there
        # for a version document before it asks the service.
        self._discovery_cache = discovery_cache

    @property
    def discovery_cache(self) -> dict[str, Any]:
        """Version documents keystoneauth read or was given (URL -> `Discover`)."""
        return self._discovery_cache if self._discovery_cache is not None else {}

    def adapter(self, service_type: str, endpoint: str | None = None) -> KeystoneauthAdapter:
        """An adapter for one service: at `endpoint` as it is, or found in the catalog
        within the API versions the CPI speaks."""
        oldest, newest = API_VERSIONS.get(service_type, (None, None))
        return KeystoneauthAdapter(
            ksa_adapter.Adapter(
                self.session,
                service_type=service_type,
                interface=self._interface,
                region_name=self._region_name,
                endpoint_override=endpoint or self._endpoint_overrides.get(service_type),
                min_version=None if endpoint else oldest,
                max_version=None if endpoint else newest,
                raise_exc=False,
                connect_retries=0,
                status_code_retries=0,
            )
        )

    def discovered(self, service_type: str) -> KeystoneauthAdapter:
        """The adapter of a service whose endpoint version discovery may pick, resolved
        to a versioned endpoint (requests only when the catalog URL has no version)."""
        adapter = self.adapter(service_type)
        if self._endpoint_overrides.get(service_type):
            return adapter  # the operator's URL, used as it is
        name = SERVICE_NAMES[service_type]
        if service_type == "block-storage":
            self._discover_with_the_token(service_type)

        def resolve() -> None:
            with translated():
                url = str(adapter.adapter.get_endpoint() or "")
            if url and not VERSIONED_PATH.search(urlsplit(url).path):
                raise DiscoveryFellBack(
                    f"its version document at {url} could not be read (see the log)"
                )

        with api_errors(name, "find its API version"):
            retry.idempotent(resolve, f"find the {name} API version")
        return adapter

    def _discover_with_the_token(self, service_type: str) -> None:
        """keystoneauth asks a version root without the token first; Cinder's refuses (401)
        and it asks again. Ask once, with the token, and leave the answer where keystoneauth
        looks. Any problem leaves discovery to keystoneauth, as before."""
        from keystoneauth1 import discover

        if self._discovery_cache is None:
            return
        try:
            with translated():
                url = self.session.get_endpoint(
                    service_type=service_type,
                    interface=self._interface,
                    region_name=self._region_name,
                    skip_discovery=True,
                )
            root = version_root(service_type, str(url or ""))
            if root not in self._discovery_cache:
                with translated():
                    found = discover.Discover(self.session, root, authenticated=True)
                self._discovery_cache[root] = found
        except (Unsupported, http.HttpException, http.TransportError, ksa.ClientException) as e:
            log.debug("keystoneauth discovers %s itself: %s", service_type, e)

    @cached_property
    def compute(self) -> KeystoneauthAdapter:
        return self.discovered("compute")

    @cached_property
    def image(self) -> KeystoneauthAdapter:
        return self.discovered("image")

    @cached_property
    def network(self) -> KeystoneauthAdapter:
        return self.adapter("network", self._neutron_endpoint())

    @cached_property
    def block_storage(self) -> KeystoneauthAdapter:
        return self.discovered("block-storage")

    @cached_property
    def load_balancer(self) -> KeystoneauthAdapter:
        return self.adapter("load-balancer", octavia_url(self._catalog_endpoint("load-balancer")))

    def _neutron_endpoint(self) -> str:
        return neutron_url(self._catalog_endpoint("network"))

    def _catalog_endpoint(self, service_type: str) -> str:
        """The catalog URL of a service with one API version (used as it is, plus that
        version: no discovery request)."""
        with translated():
            url = self._endpoint_overrides.get(service_type) or self.session.get_endpoint(
                service_type=service_type,
                interface=self._interface,
                region_name=self._region_name,
            )
        if not url:
            raise http.EndpointNotFound(
                f"no {service_type} endpoint of interface '{self._interface}'"
                + (f" in region '{self._region_name}'" if self._region_name else "")
            )
        return str(url)

    @property
    def current_project_id(self) -> str | None:
        """The token's project (from the token already held: no request)."""
        with translated():
            project: str | None = self.session.get_project_id()
        return project

    # --- for the operator tools (bosh_openstack_cpi/operator) --------------------------
    def catalog_service_types(self) -> list[str]:
        """The service types in the token's catalog (from the token already held)."""
        from keystoneauth1.identity import base as identity_base

        auth = self.session.auth
        if not isinstance(auth, identity_base.BaseIdentityPlugin):
            return []
        with translated():
            catalog = auth.get_access(self.session).service_catalog.catalog
        return sorted({str(entry.get("type")) for entry in catalog or []})

    def server_date(self, url: str) -> str | None:
        """The Date header of an unauthenticated GET of `url` (Keystone's version document):
        the cloud's clock, to measure this machine's skew against."""
        with translated():
            response = self.session.get(url, authenticated=False, raise_exc=False)
        date: str | None = response.headers.get("Date")
        return date

    def token_issued_at(self) -> float | None:
        """When Keystone issued the token held (Keystone's clock, as a Unix time)."""
        from keystoneauth1.identity import base as identity_base

        auth = self.session.auth
        if not isinstance(auth, identity_base.BaseIdentityPlugin):
            return None
        with translated():
            issued = auth.get_access(self.session).issued
        return issued.timestamp() if issued is not None else None
