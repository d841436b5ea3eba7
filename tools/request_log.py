"""Count the OpenStack requests a CPI call made, from its stderr.

Run the CPI with BOSH_OPENSTACK_CPI_LOG_LEVEL=DEBUG: urllib3 then logs one line per HTTP
request (Keystone token requests included, which keystoneauth itself does not log), and
the CPI's stdlib transport (a call with a cached token) logs the same line:
    http://127.0.0.1:8774 "GET /v2.1/servers/x HTTP/1.1" 404 88
"""

from __future__ import annotations

import re
from collections import Counter

LOG_LEVEL_ENV = {"BOSH_OPENSTACK_CPI_LOG_LEVEL": "DEBUG"}

_REQUEST_LINE = re.compile(r'(https?)://([^\s:/"]+):(\d+) "([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3})')

# Default ports of the OpenStack APIs (and of the local test cloud).
SERVICE_BY_PORT = {
    "5000": "identity",
    "35357": "identity",
    "8774": "compute",
    "9292": "image",
    "9696": "network",
    "8776": "volume",
    "8778": "placement",
    "9876": "load-balancer",
}


# Behind a front that publishes each service under a path prefix (tools/fault_proxy.py
# with path_prefixes, `BOSH_CPI_TEST_LAYOUT=path-prefixed`): the prefix names the service.
SERVICE_BY_PREFIX = {
    "identity": "identity",
    "compute": "compute",
    "image": "image",
    "network": "network",
    "volume": "volume",
    "volumev3": "volume",
    "block-storage": "volume",
    "placement": "placement",
    "load-balancer": "load-balancer",
}


def requests_in(stderr_text: str) -> list[tuple[str, str, str, int]]:
    """(service, method, path, status) for every request logged; the path as the service
    itself sees it (without a front's prefix)."""
    found = []
    for match in _REQUEST_LINE.finditer(stderr_text):
        _, host, port, method, path, status = match.groups()
        service = SERVICE_BY_PORT.get(port)
        if service is None:
            service, path = _by_prefix(path, f"{host}:{port}")
        found.append((service, method, path, int(status)))
    return found


def _by_prefix(path: str, unknown: str) -> tuple[str, str]:
    first, _, rest = path.lstrip("/").partition("/")
    service = SERVICE_BY_PREFIX.get(first)
    if service is None:
        return unknown, path
    return service, "/" + rest


def count_requests(stderr_text: str) -> dict[str, int]:
    """Requests per service, plus "total"."""
    counts = Counter(service for service, _, _, _ in requests_in(stderr_text))
    result = dict(sorted(counts.items()))
    result["total"] = sum(counts.values())
    return result
