"""A Connection whose HTTP requests go to requests-mock: for the failure paths of the
adapters that the real test cloud cannot produce."""

from __future__ import annotations

import re
from typing import Any

from keystoneauth1 import noauth
from keystoneauth1 import session as ksa_session

from bosh_openstack_cpi.openstack.connection import Connection

NOVA = "http://nova/v2.1"
NEUTRON = "http://neutron/v2.0"
CINDER = "http://cinder/v3"
OCTAVIA = "http://octavia/v2"  # the catalog's http://octavia, as the CPI versions it


def connection(requests_mock: Any) -> Connection:

    requests_mock.get(
        re.compile(r"^http://nova/v2\.1/?$"),
        json={"version": _version(NOVA, "v2.1", "2.93")},
    )
    requests_mock.get(
        re.compile(r"^http://neutron(/v2\.0)?/?$"),
        json={"versions": [_version(NEUTRON, "v2.0", "")]},
    )
    requests_mock.get(
        re.compile(r"^http://cinder/v3/?$"), json={"version": _version(CINDER, "v3.0", "3.70")}
    )
    return Connection(
        ksa_session.Session(auth=noauth.NoAuth()),
        region_name=None,
        interface="public",
        endpoint_overrides={
            "compute": NOVA,
            "network": NEUTRON,
            "block-storage": CINDER,
            "load-balancer": "http://octavia",
        },
    )


def _version(url: str, version_id: str, microversion: str) -> dict[str, Any]:
    return {
        "id": version_id,
        "status": "CURRENT",
        "links": [{"rel": "self", "href": url + "/"}],
        "min_version": "2.1" if microversion.startswith("2") else "",
        "version": microversion,
    }


def requests_to(requests_mock: Any, host: str) -> list[tuple[str, str]]:
    """(method, path with query) of the requests sent to one service, discovery excluded."""
    return [
        (r.method, r.path + (f"?{r.query}" if r.query else ""))
        for r in requests_mock.request_history
        if r.hostname == host and r.path.rstrip("/") not in ("/v2.1", "/v2.0", "/v3", "")
    ]
