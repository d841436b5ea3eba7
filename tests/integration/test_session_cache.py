"""Keystone token and version discovery reused across CPI processes (session_cache.py)."""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration.faults import faulty_cloud, proxied_auth_url
from tools import fault_proxy as fp
from tools.cpi_process import CpiProcess
from tools.request_log import LOG_LEVEL_ENV, requests_in

# The director's default number of threads (director.max_threads), each a CPI call.
BURST = 32


@pytest.fixture
def cached_cpi(cpi_for: Callable[..., CpiProcess], tmp_path: Path) -> Callable[..., CpiProcess]:
    """A CPI whose cache lives in this test's own TMPDIR, logging every request."""
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)

    def make(**openstack: Any) -> CpiProcess:
        cpi = cpi_for(**openstack)
        cpi.env.update({"TMPDIR": str(scratch), **LOG_LEVEL_ENV})
        return cpi

    return make


def _cache_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "tmp").glob("bosh-openstack-cpi-*/session-*.json"))


def _token_requests(stderr: str) -> int:
    return sum(1 for _, method, path, _ in requests_in(stderr) if path.endswith("/auth/tokens"))


def _discovery_requests(stderr: str) -> int:
    return sum(1 for service, method, path, _ in requests_in(stderr) if path in ("/v2.1", "/"))


def test_second_call_reuses_token_and_discovery(
    cached_cpi: Callable[..., CpiProcess], tmp_path: Path, cloud: dict[str, Any]
):
    cpi = cached_cpi()
    first = cpi.call("has_vm", str(uuid.uuid4()))
    second = cpi.call("has_vm", str(uuid.uuid4()))
    assert first.error is None and second.error is None
    assert _token_requests(first.stderr) == 1
    assert _token_requests(second.stderr) == 0
    assert _discovery_requests(second.stderr) == 0
    assert len(requests_in(second.stderr)) == 1  # just GET /servers/<id>

    [cache] = _cache_files(tmp_path)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    content = cache.read_text()
    assert cloud["openstack"]["api_key"] not in content
    assert cloud["openstack"]["api_key"] not in cache.name


def test_discovery_with_a_cached_token_is_one_request_kept_for_the_next_calls(
    cached_cpi: Callable[..., CpiProcess], tmp_path: Path
):
    """Cinder's version discovery, first needed after the token was cached: one GET of
    /v3/ over the stdlib transport (keystoneauth would have made two and been imported)."""
    cpi = cached_cpi()
    assert cpi.call("has_vm", str(uuid.uuid4())).error is None  # caches the token
    created = cpi.call("create_disk", 1024, {}, None)
    assert created.error is None, created.error
    try:
        discovery = [r for r in requests_in(created.stderr) if r[2] == "/v3/"]
        assert [(service, method, status) for service, method, _, status in discovery] == [
            ("volume", "GET", 200)
        ]
        assert "keystoneauth" not in created.stderr
        [cache] = _cache_files(tmp_path)
        assert any(url.endswith("/v3/") for url in json.loads(cache.read_text())["discovery"])
    finally:
        deleted = cpi.call("delete_disk", created.result)
    assert deleted.error is None, deleted.error
    assert [r for r in requests_in(deleted.stderr) if r[2] == "/v3/"] == []


def test_invalid_cached_token_is_replaced(cached_cpi: Callable[..., CpiProcess], tmp_path: Path):
    cpi = cached_cpi()
    assert cpi.call("has_vm", str(uuid.uuid4())).error is None
    [cache] = _cache_files(tmp_path)
    document = json.loads(cache.read_text())
    state = json.loads(document["auth_state"])
    state["auth_token"] = "gAAAAAB-not-a-valid-token"
    document["auth_state"] = json.dumps(state)
    cache.write_text(json.dumps(document))

    result = cpi.call("has_vm", str(uuid.uuid4()))
    assert result.error is None, result.error
    assert result.result is False
    assert _token_requests(result.stderr) == 1  # the 401 led to one new token
    assert "not-a-valid-token" not in cache.read_text()


def test_changed_password_does_not_reuse_the_old_token(
    cached_cpi: Callable[..., CpiProcess], tmp_path: Path
):
    assert cached_cpi().call("has_vm", str(uuid.uuid4())).error is None
    wrong = cached_cpi(api_key="canary-changed-password-55")
    result = wrong.call("has_vm", str(uuid.uuid4()))
    assert result.error is not None
    assert "rejected the credentials" in result.error["message"]
    assert "canary-changed-password-55" not in result.all_output


def test_cache_can_be_switched_off(cached_cpi: Callable[..., CpiProcess], tmp_path: Path):
    cpi = cached_cpi(token_cache=False)
    results = [cpi.call("has_vm", str(uuid.uuid4())) for _ in range(2)]
    assert [_token_requests(r.stderr) for r in results] == [1, 1]
    assert _cache_files(tmp_path) == []


def test_a_burst_on_a_cold_cache_costs_one_token(
    cached_cpi: Callable[..., CpiProcess], tmp_path: Path, admin: Any, cloud: dict[str, Any]
):
    """The director starts up to 32 CPI calls at once: on a cold cache (no salt, no file)
    the first fetches the token, the others wait for it and use it. Keystone answers each
    token request 2 s late (the fault proxy), so that every call reaches the point where
    it would fetch one before the first has saved it."""
    plan = fp.FaultPlan().when(fp.slow(2.0), path_contains="/auth/tokens", times=BURST)
    with faulty_cloud(admin, cloud, plan) as proxy:
        cpi = cached_cpi(auth_url=proxied_auth_url(proxy, cloud))
        with ThreadPoolExecutor(BURST) as pool:
            calls = pool.map(lambda _: cpi.call("has_vm", str(uuid.uuid4())), range(BURST))
            results = list(calls)
        token_requests = [r for r in proxy.records if r.path.endswith("/auth/tokens")]
    assert [r.error for r in results if r.error] == []
    assert len(token_requests) == 1
    assert sum(_token_requests(r.stderr) for r in results) == 1
    [cache] = _cache_files(tmp_path)
    document = json.loads(cache.read_text())  # complete, not torn
    assert json.loads(document["auth_state"])["auth_token"]
    assert not list(cache.parent.glob(".tmp-*"))


def test_without_a_cache_cinder_is_discovered_once_with_the_token(
    cached_cpi: Callable[..., CpiProcess],
):
    """keystoneauth asks Cinder's version root without the token first (401), then with
    it: the CPI asks once, with the token."""
    result = cached_cpi(token_cache=False).call("has_disk", str(uuid.uuid4()))
    assert result.error is None and result.result is False
    roots = [(m, p, s) for _, m, p, s in requests_in(result.stderr) if p == "/v3/"]
    assert roots == [("GET", "/v3/", 200)]
