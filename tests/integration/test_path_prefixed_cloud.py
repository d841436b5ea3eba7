"""A cloud behind one front end (issue 15): every service published under a path prefix
of its own (`http://127.0.0.1:<port>/compute/v2.1`, `/volume/v3/<project>`, `/image`,
`/network`, `/identity/v3`), as devstack and single-endpoint TLS fronts do. The fault
proxy (tools/fault_proxy.py, `path_prefixes=True`) puts the local cloud behind such a
front: it rewrites the catalog and every answer's links, and answers 404 to a request
without the prefix. A stemcell, VM and disk lifecycle runs through it on both transports;
with a cached token, no call falls back to keystoneauth."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration import vm_support as vs
from tests.integration.disk_support import ok
from tests.integration.faults import faulty_cloud, proxied_auth_url
from tools import fault_proxy as fp
from tools.cpi_process import CpiProcess, CpiResult
from tools.request_log import LOG_LEVEL_ENV, requests_in


def _lifecycle(cpi: CpiProcess, cloud: dict[str, Any]) -> list[CpiResult]:
    """Every call's result, in order; everything made is deleted again."""
    results: list[CpiResult] = []

    def call(method: str, *arguments: Any) -> Any:
        results.append(cpi.call(method, *arguments))
        return ok(results[-1])

    image_id = cloud["resources"]["image_id"]
    stemcell = call("create_stemcell", "/nonexistent", {"image_id": image_id})
    networks = {"private": vs.manual_network(cloud, position=4)}
    vm_cid, _ = call("create_vm", vs.AGENT_ID, stemcell, vs.SMALL, networks, [], vs.ENV)
    try:
        assert call("has_vm", vm_cid) is True
        disk_cid = call("create_disk", 1024, {}, vm_cid)
        try:
            call("attach_disk", vm_cid, disk_cid)
            assert call("get_disks", vm_cid) == [disk_cid]
            call("detach_disk", vm_cid, disk_cid)
        finally:
            call("delete_disk", disk_cid)
    finally:
        call("delete_vm", vm_cid)
    call("delete_stemcell", stemcell)
    return results


def _under_prefix(service: str, path: str) -> bool:
    return path == f"/{service}" or path.startswith(f"/{service}/")


@pytest.mark.parametrize("token_cache", [True, False], ids=["stdlib", "keystoneauth"])
def test_a_lifecycle_behind_path_prefixes(
    token_cache: bool,
    leak_check: None,
    cpi_for: Callable[..., CpiProcess],
    admin: Any,
    cloud: dict[str, Any],
    tmp_path: Path,
) -> None:
    with faulty_cloud(admin, cloud, fp.FaultPlan(), path_prefixes=True) as proxy:
        cpi = cpi_for(auth_url=proxied_auth_url(proxy, cloud), token_cache=token_cache)
        cpi.env.update({"TMPDIR": str(tmp_path), **LOG_LEVEL_ENV})
        # The token cache, and each service's version discovery, filled as by earlier calls
        assert ok(cpi.call("has_vm", str(uuid.uuid4()))) is False
        assert ok(cpi.call("has_disk", str(uuid.uuid4()))) is False
        image_id = cloud["resources"]["image_id"]
        ok(cpi.call("create_stemcell", "/nonexistent", {"image_id": image_id}))
        results = _lifecycle(cpi, cloud)
        records = proxy.records
    assert all(r.status != 404 or "/servers/" in r.path or "/volumes/" in r.path for r in records)
    outside = [(r.service, r.path) for r in records if not _under_prefix(r.service, r.path)]
    assert outside == []
    if token_cache:
        for result in results:
            if not requests_in(result.stderr):
                continue  # a light stemcell's delete asks nothing
            assert "(stdlib transport)" in result.stderr
            assert "keystoneauth serves" not in result.stderr, result.stderr
            assert "keystoneauth discovers" not in result.stderr, result.stderr
