"""The stdlib transport: REST requests with a cached token over http.client and ssl.

Importing requests and keystoneauth costs about 0.15 s of CPU, more than the rest of a
short CPI call. A call that finds a valid token in the session cache (with the catalog
and the version discovery it needs) sends its requests through this module instead and
never imports them. keystoneauth stays the only way to authenticate, and the transport
for everything this one does not do (openstack/connection.py):

- no usable cached token, or one about to expire;
- proxy variables in the environment (keystoneauth honours them, this module does not),
  or a CA bundle chosen through requests' own variables;
- a service whose endpoint the catalog and the cached discovery do not settle (two
  candidate URLs, an unversioned URL without discovery data): that service's adapter is
  keystoneauth's;
- a microversion range neither cached nor found by this module's own version discovery
  (one GET of the version's root, e.g. /v3/ for Cinder, kept in the session cache as
  keystoneauth keeps its own);
- streamed request bodies (the stemcell upload);
- a 401: the cached token is dropped, keystoneauth authenticates and the request is sent
  once more, as keystoneauth itself does; the rest of the call then uses keystoneauth.

Failures raise openstack/http.py's classes, as the keystoneauth transport does. At DEBUG
each request is logged in urllib3's format ('http://host:port "GET /path HTTP/1.1" 200
123'), which tools/request_log.py counts; headers and bodies are never logged.
"""

from __future__ import annotations

import json as jsonlib
import logging
import os
import select
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from http import client as httpclient
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from bosh_openstack_cpi import __version__
from bosh_openstack_cpi.openstack import http
from bosh_openstack_cpi.openstack.tls import TlsSettings
from bosh_openstack_cpi.openstack.tls import context as tls_context

log = logging.getLogger(__name__)

# With either set, requests trusts another CA bundle than the CPI's: keystoneauth.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
# A token closer than this to its expiry is not used (keystoneauth's own margin is 120 s).
MIN_TOKEN_LIFETIME = 300.0
NEUTRON_VERSION = "v2.0"
OCTAVIA_VERSION = "v2"
# Catalog service types of each service (Cinder is listed under several).
SERVICE_TYPES = {
    "compute": ("compute",),
    "image": ("image",),
    "network": ("network",),
    "block-storage": ("block-storage", "volumev3", "volume", "block-store"),
    "load-balancer": ("load-balancer",),
}
# The path of a versioned catalog URL used as it is (a project id may follow).
VERSION_PREFIXES = {"compute": "/v2.1", "block-storage": "/v3"}
MICROVERSION_SERVICE = {"compute": "compute", "block-storage": "volume", "image": "image"}
_OWN_OPTIONS = frozenset({"json", "params", "headers", "microversion", "data"})


class Unsupported(Exception):
    """This transport cannot serve something: keystoneauth must."""


def environment_allows() -> bool:
    return not any(os.environ.get(name) for name in CA_BUNDLE_VARIABLES)


def proxy_for(url: str) -> str | None:
    """The proxy requests (so keystoneauth) would send `url` through, None when it goes
    straight: the `*_proxy` variables in any case, `no_proxy` as urllib reads it (requests
    goes straight whenever urllib does; where only requests would, e.g. a CIDR in
    no_proxy, keystoneauth serves, which is only slower)."""
    if not any(name.lower().endswith("_proxy") and value for name, value in os.environ.items()):
        return None  # the usual case, without importing urllib.request
    import urllib.request

    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme.lower()) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


def neutron_url(url: str) -> str:
    """Neutron's only API version, appended to its catalog URL."""
    url = url.rstrip("/")
    return url if url.endswith(f"/{NEUTRON_VERSION}") else f"{url}/{NEUTRON_VERSION}"


def octavia_url(url: str) -> str:
    """Octavia's API v2 URL for its catalog URL, which is usually unversioned (Octavia
    serves the same API under /v2 and /v2.0; no discovery request is needed)."""
    url = url.rstrip("/")
    return url if url.endswith((f"/{OCTAVIA_VERSION}", "/v2.0")) else f"{url}/{OCTAVIA_VERSION}"


def token_expiry(body: Mapping[str, Any]) -> float | None:
    """The token's expiry (epoch seconds) from a Keystone v3 token body."""
    try:
        text = str(body["token"]["expires_at"])
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


class Response:
    """An answer, read completely: what the service adapters read of requests' Response."""

    def __init__(
        self,
        method: str,
        url: str,
        status: int,
        reason: str,
        headers: httpclient.HTTPMessage,
        content: bytes,
    ) -> None:
        self.status_code = status
        self.reason = reason
        self.headers = headers
        self.content = content
        self.request = _SentRequest(method, url)

    @property
    def text(self) -> str:
        charset = self.headers.get_content_charset() or "utf-8"
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self, **kwargs: Any) -> Any:
        return jsonlib.loads(self.content, **kwargs)


class _SentRequest:
    def __init__(self, method: str, url: str) -> None:
        self.method = method
        self.url = url


# keystoneauth's default limit of redirects followed.
MAX_REDIRECTS = 30


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


class Session:
    """Sends requests with one token; one kept-alive connection per host."""

    def __init__(
        self,
        token: str,
        *,
        tls: TlsSettings,
        timeout: float,
        connect_timeout: float | None = None,
    ) -> None:
        self._token = token
        self._tls = tls
        self._context: ssl.SSLContext | None = None
        self._timeout = timeout
        self._connect_timeout = connect_timeout or timeout
        self._connections: dict[tuple[str, str, int], httpclient.HTTPConnection] = {}

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def send(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None
    ) -> Response:
        """One request, following redirects as keystoneauth does (the same method and body
        at the new Location, up to 30 times), but only within the same scheme, host and
        port: the token is not sent elsewhere. A redirect not followed is returned as it
        is, and http.raise_from_response makes it an error."""
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send_once(method, url, headers=headers, body=body)
            location = response.headers.get("location")
            if response.status_code not in http.REDIRECT_STATUSES or not location:
                return response
            target = urljoin(url, location)
            if _origin(target) != _origin(url):
                log.warning("Not following a redirect from %s to another host: %s", url, target)
                return response
            log.debug("Following HTTP %s from %s to %s", response.status_code, url, target)
            url = target
        return response

    def _send_once(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None
    ) -> Response:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise Unsupported(f"not an http(s) URL: {url}")
        port = parts.port or (443 if scheme == "https" else 80)
        target = parts.path or "/"
        if parts.query:
            target += f"?{parts.query}"
        connection = self._connection(scheme, parts.hostname, port, url)
        all_headers = {
            "User-Agent": f"bosh-openstack-cpi/{__version__}",
            "Accept": "*/*",
            "Accept-Encoding": "identity",
            **headers,
            "X-Auth-Token": self._token,
        }
        if body is not None:
            all_headers["Content-Length"] = str(len(body))
        try:
            connection.sock.settimeout(self._timeout)
            connection.request(method, target, body=body, headers=all_headers)
            answer = connection.getresponse()
            content = answer.read()
        except TimeoutError as error:
            connection.close()
            raise http.ReadTimedOut(f"Request to {url} timed out: {error}") from None
        except ssl.SSLError as error:
            connection.close()
            raise http.TlsFailure(f"SSL exception connecting to {url}: {error}") from None
        except (OSError, httpclient.HTTPException) as error:
            connection.close()
            raise http.AnswerLost(
                f"Connection to {url} broke: {type(error).__name__}({error})"
            ) from None
        if answer.will_close:
            connection.close()
        log.debug(
            '%s://%s:%s "%s %s HTTP/1.1" %s %s',
            scheme,
            parts.hostname,
            port,
            method,
            target,
            answer.status,
            len(content),
        )
        return Response(method, url, answer.status, answer.reason, answer.headers, content)

    def _connection(self, scheme: str, host: str, port: int, url: str) -> httpclient.HTTPConnection:
        key = (scheme, host, port)
        connection = self._connections.get(key)
        if connection is not None and connection.sock is not None and not _dropped(connection):
            return connection
        if connection is not None:
            connection.close()
        if scheme == "https":
            if self._context is None:
                self._context = tls_context(self._tls)
            connection = httpclient.HTTPSConnection(
                host, port, timeout=self._connect_timeout, context=self._context
            )
        else:
            connection = httpclient.HTTPConnection(host, port, timeout=self._connect_timeout)
        try:
            connection.connect()
        except TimeoutError as error:
            connection.close()
            raise http.ConnectTimedOut(
                f"Unable to establish connection to {url}: connect timed out ({error})"
            ) from None
        except ssl.SSLError as error:
            connection.close()
            raise http.TlsFailure(f"SSL exception connecting to {url}: {error}") from None
        except OSError as error:  # refused, unreachable, name not resolved
            connection.close()
            raise http.NotSent(f"Unable to establish connection to {url}: {error}") from None
        self._connections[key] = connection
        return connection


def _query(params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> str:
    """requests' encoding of `params`: a mapping (a list value repeats the key) or a
    sequence of pairs (Neutron's repeated `fields`); None values are left out."""
    if not params:
        return ""
    pairs = params.items() if isinstance(params, Mapping) else params
    flat: list[tuple[str, Any]] = []
    for key, value in pairs:
        if isinstance(value, list | tuple):
            flat.extend((key, item) for item in value if item is not None)
        elif value is not None:
            flat.append((key, value))
    return urlencode(flat)


def _dropped(connection: httpclient.HTTPConnection) -> bool:
    """The server closed an idle kept-alive connection (it is readable: EOF)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class Adapter:
    """One service at one endpoint: keystoneauth Adapter's `request` as the CPI uses it."""

    def __init__(
        self,
        services: FastServices,
        service_type: str,
        endpoint: str,
        microversions: tuple[str, str] | Callable[[], tuple[str, str] | None] | None,
    ) -> None:
        self._services = services
        self.service_type = service_type
        self.endpoint = endpoint.rstrip("/")
        self._microversions = microversions

    def microversion_range(self) -> tuple[str, str] | None:
        if callable(self._microversions):
            self._microversions = self._microversions()
        return self._microversions

    def get(self, url: str, **kwargs: Any) -> http.Response:
        return self.request(url, "GET", **kwargs)

    def put(self, url: str, **kwargs: Any) -> http.Response:
        return self.request(url, "PUT", **kwargs)

    def request(self, url: str, method: str, **kwargs: Any) -> http.Response:
        fallback = self._services.after_reauthentication(self.service_type)
        if fallback is not None:
            return fallback.request(url, method, **kwargs)
        data = kwargs.get("data")
        if set(kwargs) - _OWN_OPTIONS or not (data is None or isinstance(data, bytes)):
            # keystoneauth's own options, or a streamed body (the stemcell upload)
            return self._services.keystoneauth_adapter(self.service_type).request(
                url, method, **kwargs
            )
        response = self._send(url, method, **kwargs)
        if response.status_code != 401:
            return response
        log.info("The cached token was refused (HTTP 401): authenticating again")
        reauthenticated = self._services.reauthenticate(self.service_type)
        return reauthenticated.request(url, method, allow_reauth=False, **kwargs)

    def _send(
        self,
        url: str,
        method: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        microversion: str | None = None,
        data: bytes | None = None,
    ) -> Response:
        all_headers = dict(headers or {})
        body = data
        if json is not None:
            all_headers.setdefault("Content-Type", "application/json")
            body = jsonlib.dumps(json).encode()
        if microversion is not None:
            service = MICROVERSION_SERVICE.get(self.service_type, self.service_type)
            all_headers.setdefault("OpenStack-API-Version", f"{service} {microversion}")
            if service == "compute":
                all_headers.setdefault("X-OpenStack-Nova-API-Version", microversion)
        full = f"{self.endpoint}/{url.lstrip('/')}"
        query = _query(params)
        if query:
            full += ("&" if "?" in full else "?") + query
        return self._services.session.send(method, full, headers=all_headers, body=body)


class FastServices:
    """The per-service adapters of a call with a cached token (openstack/http.py's
    Services), falling back to keystoneauth service by service."""

    def __init__(
        self,
        token: str,
        body: Mapping[str, Any],
        discovery: Mapping[str, Any],
        *,
        region_name: str | None,
        interface: str,
        session: Session,
        keystoneauth: Callable[[bool], http.Services],
    ) -> None:
        self._token = token
        self._body = body
        self._discovery = discovery
        self._region_name = region_name
        self._interface = interface.removesuffix("URL")
        self.session = session
        self._keystoneauth_factory = keystoneauth
        self.keystoneauth: http.Services | None = None
        self.reauthenticated = False
        self._adapters: dict[str, http.Adapter] = {}
        # Version discovery done here, for the session cache: {root URL: [versions]}.
        self.learned_discovery: dict[str, list[dict[str, Any]]] = {}

    # --- falling back ----------------------------------------------------------------
    def _keystoneauth(self, *, fresh: bool = False) -> http.Services:
        if self.keystoneauth is None or fresh:
            self.keystoneauth = self._keystoneauth_factory(not fresh)  # reuse the cached token?
        return self.keystoneauth

    def keystoneauth_adapter(self, service_type: str) -> http.Adapter:
        return _service(self._keystoneauth(), service_type)

    def reauthenticate(self, service_type: str) -> http.Adapter:
        """After a 401: a new token through keystoneauth (the cached one is dropped)."""
        if not self.reauthenticated:
            self.reauthenticated = True
            self.session.close()
            self._keystoneauth(fresh=True)
        return self.keystoneauth_adapter(service_type)

    def after_reauthentication(self, service_type: str) -> http.Adapter | None:
        return self.keystoneauth_adapter(service_type) if self.reauthenticated else None

    # --- http.Services ---------------------------------------------------------------
    @property
    def compute(self) -> http.Adapter:
        return self._adapter("compute")

    @property
    def image(self) -> http.Adapter:
        return self._adapter("image")

    @property
    def network(self) -> http.Adapter:
        return self._adapter("network")

    @property
    def block_storage(self) -> http.Adapter:
        return self._adapter("block-storage")

    @property
    def load_balancer(self) -> http.Adapter:
        return self._adapter("load-balancer")

    @property
    def current_project_id(self) -> str | None:
        project = self._body.get("token", {}).get("project") or {}
        return str(project["id"]) if "id" in project else None

    def _adapter(self, service_type: str) -> http.Adapter:
        if service_type not in self._adapters:
            try:
                self._adapters[service_type] = self._fast_adapter(service_type)
            except Unsupported as reason:
                log.debug("keystoneauth serves %s: %s", service_type, reason)
                self._adapters[service_type] = self.keystoneauth_adapter(service_type)
        return self._adapters[service_type]

    def _fast_adapter(self, service_type: str) -> Adapter:
        url = self._catalog_url(service_type)
        if proxy_for(url) is not None:
            raise Unsupported(f"{url} is reached through a proxy (*_proxy, no_proxy)")
        if service_type == "network":
            return Adapter(self, service_type, neutron_url(url), None)
        if service_type == "load-balancer":
            return Adapter(self, service_type, octavia_url(url), None)
        if service_type == "image":
            url = self._image_endpoint(url)
            return Adapter(self, service_type, url, lambda: self._microversions(service_type, url))
        # The version is a segment of the path, wherever a front end mounts the service:
        # `http://h:8774/v2.1`, `https://api/compute/v2.1`, `https://api/volume/v3/<project>`.
        segments = urlsplit(url).path.split("/")
        if VERSION_PREFIXES[service_type].lstrip("/") not in segments:
            raise Unsupported(f"catalog URL {url} is not the versioned one")
        return Adapter(self, service_type, url, lambda: self._microversions(service_type, url))

    def _catalog_url(self, service_type: str) -> str:
        """The one URL of the service for this interface and region (else keystoneauth
        decides, and reports what is wrong)."""
        urls: set[str] = set()
        for service in self._body.get("token", {}).get("catalog") or []:
            if service.get("type") not in SERVICE_TYPES[service_type]:
                continue
            for endpoint in service.get("endpoints") or []:
                if endpoint.get("interface") != self._interface:
                    continue
                region = endpoint.get("region_id") or endpoint.get("region")
                if self._region_name and region != self._region_name:
                    continue
                urls.add(str(endpoint.get("url") or "").rstrip("/"))
        if len(urls) != 1 or not next(iter(urls)):
            raise Unsupported(f"{len(urls)} catalog URLs")
        return urls.pop()

    def _versions(self) -> list[Mapping[str, Any]]:
        found: list[Mapping[str, Any]] = []
        for versions in self._discovery.values():
            if isinstance(versions, list):
                found.extend(v for v in versions if isinstance(v, dict))
        return found

    def _image_endpoint(self, url: str) -> str:
        """Glance's catalog URL is usually unversioned: its v2 URL from cached discovery."""
        if urlsplit(url).path.rstrip("/").endswith("/v2"):
            return url
        versions = self._discovery.get(url) or self._discovery.get(f"{url}/")
        best: tuple[tuple[int, ...], str] | None = None
        for version in versions if isinstance(versions, list) else []:
            try:
                number = http.version_number(str(version.get("id")))
            except ValueError:
                continue
            if number[0] != 2 or str(version.get("status")).upper() not in (
                "CURRENT",
                "SUPPORTED",
                "STABLE",
            ):
                continue
            link = _self_link(version)
            if link and (best is None or number > best[0]):
                best = (number, link)
        if best is None:
            raise Unsupported("no cached version discovery for the image service")
        return best[1].rstrip("/")

    def _microversions(self, service_type: str, url: str) -> tuple[str, str] | None:
        """The microversion range of the version whose self link the URL starts with;
        without cached discovery for it, discovered here (else by keystoneauth)."""
        found = _matching_version(self._versions(), url)
        if found is not None:
            return http.microversion_range(found)
        try:
            return self._discover(service_type, url)
        except Unsupported as reason:
            log.debug("keystoneauth discovers %s: %s", service_type, reason)
            return self.keystoneauth_adapter(service_type).microversion_range()

    def _discover(self, service_type: str, url: str) -> tuple[str, str] | None:
        """GET the version's root with the token (keystoneauth asks without it first, is
        refused, and asks again) and read its one version document."""
        root = version_root(service_type, url)
        try:
            response = self.session.send(
                "GET", root, headers={"Accept": "application/json"}, body=None
            )
            document = response.json() if response.status_code == 200 else None
        except (http.TransportError, ValueError) as error:
            raise Unsupported(f"version discovery at {root} failed: {error}") from None
        versions = _version_documents(document)
        found = _matching_version(versions, url)
        if found is None:
            raise Unsupported(f"no version at {root} matches {url}")
        self.learned_discovery[root] = versions
        return http.microversion_range(found)


def version_root(service_type: str, url: str) -> str:
    """The version document's URL for a catalog URL: `http://h:8776/v3/` for
    `http://h:8776/v3/<project>` (the URL keystoneauth discovers, and caches under)."""
    prefix = VERSION_PREFIXES.get(service_type)
    if prefix is None:
        raise Unsupported("no versioned root known")
    parts = urlsplit(url)
    segments = parts.path.split("/")
    if prefix.lstrip("/") not in segments:
        raise Unsupported(f"catalog URL {url} has no {prefix}")
    root_path = "/".join(segments[: segments.index(prefix.lstrip("/")) + 1])
    return f"{parts.scheme}://{parts.netloc}{root_path}/"


def _service(services: http.Services, service_type: str) -> http.Adapter:
    if service_type == "compute":
        return services.compute
    if service_type == "image":
        return services.image
    if service_type == "network":
        return services.network
    if service_type == "load-balancer":
        return services.load_balancer
    return services.block_storage


def _matching_version(versions: Iterable[Mapping[str, Any]], url: str) -> Mapping[str, Any] | None:
    """The version whose self link the URL starts with."""
    wanted = url.rstrip("/") + "/"
    for version in versions:
        link = _self_link(version)
        if link and wanted.startswith(link.rstrip("/") + "/"):
            return version
    return None


def _version_documents(document: Any) -> list[dict[str, Any]]:
    """The version entries of a discovery answer: Nova's {"version": {...}} or Cinder's
    {"versions": [...]}; an empty list for anything else."""
    if not isinstance(document, dict):
        return []
    if isinstance(document.get("version"), dict):
        return [document["version"]]
    versions = document.get("versions")
    return [v for v in versions if isinstance(v, dict)] if isinstance(versions, list) else []


def _self_link(version: Mapping[str, Any]) -> str | None:
    for link in version.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "self" and link.get("href"):
            return str(link["href"])
    return None


def usable_token(state: Mapping[str, Any], *, now: float | None = None) -> bool:
    """The cached token exists and has more than MIN_TOKEN_LIFETIME seconds left."""
    expiry = token_expiry(state.get("body") or {})
    current = time.time() if now is None else now
    return (
        bool(state.get("auth_token"))
        and expiry is not None
        and expiry - current > (MIN_TOKEN_LIFETIME)
    )
