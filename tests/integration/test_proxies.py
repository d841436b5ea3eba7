"""Proxy variables, as the job's bin/cpi exports them (env.http_proxy, env.https_proxy,
env.no_proxy): keystoneauth sends through a real forward proxy on loopback; the stdlib
transport keeps serving endpoints that no_proxy covers (issue 15)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from tests.integration.forward_proxy import ForwardProxy
from tools.cpi_process import CpiProcess
from tools.request_log import LOG_LEVEL_ENV


def _calls(cpi: CpiProcess) -> list[bool]:
    """has_vm and has_disk of ids that do not exist: Keystone, Nova and Cinder."""
    results = [cpi.call(method, str(uuid.uuid4())) for method in ("has_vm", "has_disk")]
    assert [r.error for r in results] == [None, None]
    return [r.result for r in results]


def test_keystoneauth_sends_every_request_through_the_proxy(
    cpi_for: Callable[..., CpiProcess],
):
    with ForwardProxy() as proxy:
        cpi = cpi_for(token_cache=False)
        cpi.env.update({"http_proxy": proxy.url, **LOG_LEVEL_ENV})
        assert _calls(cpi) == [False, False]
        seen = proxy.seen
    assert any("/auth/tokens" in line for line in seen)
    assert any("/servers/" in line for line in seen)
    assert any("/volumes/" in line for line in seen)


def test_no_proxy_covering_the_endpoints_keeps_the_stdlib_transport(
    cpi_for: Callable[..., CpiProcess], tmp_path: Path
):
    with ForwardProxy() as proxy:
        cpi = cpi_for(token_cache=True)
        cpi.env.update({"TMPDIR": str(tmp_path), **LOG_LEVEL_ENV})
        assert _calls(cpi) == [False, False]  # fills the token cache
        cpi.env.update({"HTTP_PROXY": proxy.url, "https_proxy": proxy.url, "no_proxy": "127.0.0.1"})
        results = [cpi.call(m, str(uuid.uuid4())) for m in ("has_vm", "has_disk")]
        seen = proxy.seen
    assert [r.result for r in results] == [False, False]
    assert all("(stdlib transport)" in r.stderr for r in results)
    assert seen == []
