"""Put the fault proxy between a CPI and the real test cloud."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from tools.fault_proxy import FaultPlan, FaultProxy, upstreams_from_catalog


def cloud_upstreams(admin: Any, cloud: dict[str, Any]) -> dict[str, str]:
    """identity (from the auth URL) plus every service of the catalog, by base URL."""
    auth = urlsplit(cloud["openstack"]["auth_url"])
    catalog = admin.session.auth.get_access(admin.session).service_catalog.catalog
    upstreams = upstreams_from_catalog(catalog)
    upstreams["identity"] = f"{auth.scheme}://{auth.netloc}"
    return upstreams


@contextlib.contextmanager
def faulty_cloud(
    admin: Any, cloud: dict[str, Any], plan: FaultPlan, *, path_prefixes: bool = False
) -> Iterator[FaultProxy]:
    with FaultProxy(cloud_upstreams(admin, cloud), plan, path_prefixes=path_prefixes) as proxy:
        yield proxy


def proxied_auth_url(proxy: FaultProxy, cloud: dict[str, Any]) -> str:
    path = urlsplit(str(cloud["openstack"]["auth_url"])).path
    return proxy.url("identity") + path
