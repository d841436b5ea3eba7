"""Authentication and lookups through injected faults (fault proxy, real cloud)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.faults import faulty_cloud, proxied_auth_url
from tools import fault_proxy as fp
from tools.cpi_process import CpiProcess
from tools.request_log import LOG_LEVEL_ENV
from tools.stemcell_builder import build_stemcell


def _has_vm(cpi_for: Callable[..., CpiProcess], proxy: fp.FaultProxy, cloud: dict[str, Any]):
    cpi = cpi_for(auth_url=proxied_auth_url(proxy, cloud), token_cache=False)
    return cpi.call("has_vm", str(uuid.uuid4()))


@pytest.mark.parametrize(
    "fault",
    [
        fp.error(503),
        fp.error(500),
        fp.error(502),
        fp.error(504),
        fp.error(429, retry_after=1),
        fp.error(413, retry_after=1),
        fp.reset(),
        fp.reset_after(),
        fp.truncate(),
    ],
    ids=lambda f: f.describe(),
)
def test_lookups_survive_one_transient_fault(
    cpi_for: Callable[..., CpiProcess], admin: Any, cloud: dict[str, Any], fault: fp.Fault
):
    plan = fp.FaultPlan().when(fault, service="compute", path_contains="/servers/")
    with faulty_cloud(admin, cloud, plan) as proxy:
        result = _has_vm(cpi_for, proxy, cloud)
    assert result.error is None, result.error
    assert result.result is False
    assert len(proxy.injected()) == 1


@pytest.mark.parametrize(
    "fault",
    [
        fp.error(503),
        fp.error(429, retry_after=1),
        fp.error(413, retry_after=1),
        fp.reset(),
        fp.reset_after(),
        fp.truncate(),
    ],
    ids=lambda f: f.describe(),
)
def test_lookups_with_a_cached_token_survive_one_transient_fault(
    cpi_for: Callable[..., CpiProcess],
    admin: Any,
    cloud: dict[str, Any],
    tmp_path: Path,
    fault: fp.Fault,
):
    """The same through the stdlib transport (a call with a cached token)."""
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    with faulty_cloud(admin, cloud, fp.FaultPlan()) as proxy:
        cpi = cpi_for(auth_url=proxied_auth_url(proxy, cloud), token_cache=True)
        cpi.env.update({"TMPDIR": str(scratch), **LOG_LEVEL_ENV})
        assert cpi.call("has_vm", str(uuid.uuid4())).error is None
        proxy.plan = fp.FaultPlan().when(fault, service="compute", path_contains="/servers/")
        result = cpi.call("has_vm", str(uuid.uuid4()))
    assert result.error is None, result.error
    assert result.result is False
    assert "(stdlib transport)" in result.stderr
    assert len(proxy.injected()) == 1


def test_persistent_server_errors_end_in_a_cloud_error_naming_the_service(
    cpi_for: Callable[..., CpiProcess], admin: Any, cloud: dict[str, Any]
):
    plan = fp.FaultPlan().when(
        fp.error(503), service="compute", path_contains="/servers/", times=100
    )
    with faulty_cloud(admin, cloud, plan) as proxy:
        result = _has_vm(cpi_for, proxy, cloud)
    assert result.error is not None
    assert result.error["type"] == "Bosh::Clouds::CloudError"
    assert "Compute" in result.error["message"]
    assert "503" in result.error["message"]
    assert result.error["ok_to_retry"] is False


def test_keystone_outage_is_reported_as_such(
    cpi_for: Callable[..., CpiProcess], admin: Any, cloud: dict[str, Any]
):
    plan = fp.FaultPlan().when(fp.error(503), service="identity", times=100)
    with faulty_cloud(admin, cloud, plan) as proxy:
        result = _has_vm(cpi_for, proxy, cloud)
    assert result.error is not None
    assert "Keystone" in result.error["message"]
    assert cloud["openstack"]["api_key"] not in result.all_output


def _upload(cpi: CpiProcess, tmp_path: Path) -> Any:
    stemcell = build_stemcell(tmp_path / "stemcell", "raw", 1 << 20)
    return cpi.call("create_stemcell", str(stemcell.image), stemcell.cloud_properties)


@pytest.mark.parametrize("fault", [fp.error(504), fp.reset_after()], ids=lambda f: f.describe())
def test_glance_version_discovery_fault_is_retried_not_skipped(
    cpi_for: Callable[..., CpiProcess],
    admin: Any,
    cloud: dict[str, Any],
    tmp_path: Path,
    fault: fp.Fault,
    leak_check: None,
):
    """Glance's catalog URL has no version: the first request is version discovery. When
    it fails, keystoneauth would fall back to the unversioned URL (POST /images, which
    Glance serves by creating an image in a shape the CPI cannot read): the discovery is
    retried instead, and the image is uploaded once, on /v2."""
    plan = fp.FaultPlan().when(fault, service="image", method="GET")
    with faulty_cloud(admin, cloud, plan) as proxy:
        cpi = cpi_for(auth_url=proxied_auth_url(proxy, cloud), token_cache=False)
        result = _upload(cpi, tmp_path)
        assert result.error is None, result.error
        assert cpi.call("delete_stemcell", result.result).error is None
    image_requests = [(r.method, r.path) for r in proxy.records if r.service == "image"]
    assert image_requests[:2] == [("GET", "/"), ("GET", "/")]
    # (delete_stemcell, a new process without the token cache, discovers again)
    assert all(p == "/" or p.startswith("/v2/") for _, p in image_requests), image_requests
    assert ("POST", "/v2/images") in image_requests


def test_glance_without_a_version_document_is_a_clear_error(
    cpi_for: Callable[..., CpiProcess],
    admin: Any,
    cloud: dict[str, Any],
    tmp_path: Path,
    leak_check: None,
):
    plan = fp.FaultPlan().when(fp.error(503), service="image", method="GET", times=100)
    with faulty_cloud(admin, cloud, plan) as proxy:
        cpi = cpi_for(auth_url=proxied_auth_url(proxy, cloud), token_cache=False)
        result = _upload(cpi, tmp_path)
    assert result.error is not None
    assert result.error["type"] == "Bosh::Clouds::CloudError"
    assert "OpenStack Image" in result.error["message"]
    assert "version" in result.error["message"]
    assert "unexpectedly" not in result.error["message"]
    assert not any(r.method == "POST" for r in proxy.records if r.service == "image")
