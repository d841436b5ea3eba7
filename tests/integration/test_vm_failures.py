"""Induced failures of create_vm against the real cloud: whatever fails, nothing this call
created is left, and ok_to_retry is true only when a retry can work. Lost answers to the
server create (through the fault proxy) never lead to a second server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration import vm_support as vs
from tests.integration.faults import faulty_cloud, proxied_auth_url
from tools import fault_proxy as fp
from tools.cpi_process import CpiProcess


def _nothing_left(admin: Any, cloud: dict[str, Any], director_uuid: str) -> None:
    assert vs.servers_of(admin, cloud, director_uuid) == []
    assert vs.cpi_ports(admin, director_uuid) == []


@pytest.fixture(scope="module")
def huge_flavor(admin: Any) -> Iterator[str]:
    """More CPUs than any (fake) host has: Nova accepts the request, then NoValidHost."""
    flavor = admin.compute.create_flavor(
        name=vs.unique("bosh-cpi-huge"), ram=512, vcpus=100000, disk=1
    )
    try:
        yield str(flavor.name)
    finally:
        admin.compute.delete_flavor(flavor)


def test_server_in_error_is_removed_and_the_director_may_retry(
    cpi: CpiProcess,
    cloud: dict[str, Any],
    admin: Any,
    director_uuid: str,
    huge_flavor: str,
    leak_check: None,
):
    result = vs.create(
        cpi, cloud, {"private": vs.manual_network(cloud)}, {"instance_type": huge_flavor}
    )
    assert result.error is not None
    assert result.error["type"] == "Bosh::Clouds::VMCreationFailed"
    assert result.error["ok_to_retry"] is True
    assert "did not become ACTIVE" in result.error["message"]
    assert "No valid host" in result.error["message"]
    _nothing_left(admin, cloud, director_uuid)


def test_failed_floating_ip_association_removes_server_and_port(
    cpi_for: Callable[..., CpiProcess],
    cloud: dict[str, Any],
    admin: Any,
    project_sdk: Any,
    director_uuid: str,
    leak_check: None,
):
    address = cloud["resources"]["floating_ips"][-1]
    plan = fp.FaultPlan().when(
        fp.error(409), service="network", method="PUT", path_contains="/floatingips/"
    )
    with faulty_cloud(admin, cloud, plan) as proxy:
        cpi = cpi_for(auth_url=proxied_auth_url(proxy, cloud), token_cache=False)
        networks = {"private": vs.manual_network(cloud), "public": vs.vip_network(address)}
        result = vs.create(cpi, cloud, networks)
    assert len(proxy.injected()) == 1
    assert result.error is not None
    assert result.error["type"] == "Bosh::Clouds::VMCreationFailed"
    assert result.error["ok_to_retry"] is True
    _nothing_left(admin, cloud, director_uuid)
    assert next(project_sdk.network.ips(floating_ip_address=address)).port_id is None


@pytest.mark.parametrize(
    "fault",
    [fp.reset_after(), fp.error_after(500)],
    ids=lambda f: f.describe(),
)
def test_lost_answer_to_the_server_create_adopts_the_server(
    cpi_for: Callable[..., CpiProcess],
    cloud: dict[str, Any],
    admin: Any,
    director_uuid: str,
    leak_check: None,
    fault: fp.Fault,
):
    """Nova created the server but the answer was lost: the CPI finds it by its unique name
    and carries on; there is never a second server."""
    plan = fp.FaultPlan().when(fault, service="compute", method="POST", path_contains="/servers")
    with faulty_cloud(admin, cloud, plan) as proxy:
        cpi = cpi_for(auth_url=proxied_auth_url(proxy, cloud), token_cache=False)
        result = vs.create(cpi, cloud, {"private": vs.manual_network(cloud)})
        assert [r.fault for r in proxy.injected()] == [fault.describe()]
        assert result.error is None, result.error
        vm_cid = result.result[0]
        try:
            (only,) = vs.servers_of(admin, cloud, director_uuid)
            assert only.id == vm_cid
            assert "looking for a server named" in result.stderr
        finally:
            assert cpi.call("delete_vm", vm_cid).error is None


def test_timed_out_server_create_is_adopted_when_nova_finishes(
    cpi_for: Callable[..., CpiProcess],
    cloud: dict[str, Any],
    admin: Any,
    director_uuid: str,
    leak_check: None,
):
    """The POST outlives the CPI's read timeout; Nova creates the server later."""
    plan = fp.FaultPlan().when(
        fp.slow(6), service="compute", method="POST", path_contains="/servers"
    )
    with faulty_cloud(admin, cloud, plan) as proxy:
        cpi = cpi_for(
            auth_url=proxied_auth_url(proxy, cloud),
            token_cache=False,
            connection_options={"read_timeout": 3},
        )
        result = vs.create(cpi, cloud, {"private": vs.manual_network(cloud)})
        assert result.error is None, result.error
        vm_cid = result.result[0]
        try:
            (only,) = vs.servers_of(admin, cloud, director_uuid)
            assert only.id == vm_cid
            assert "got no answer from Nova" in result.stderr
        finally:
            assert cpi.call("delete_vm", vm_cid).error is None


def test_server_create_that_never_reached_nova_is_retryable(
    cpi_for: Callable[..., CpiProcess],
    cloud: dict[str, Any],
    admin: Any,
    director_uuid: str,
    leak_check: None,
):
    """A 503 from in front of Nova: no server appears, the port is removed, retry allowed."""
    plan = fp.FaultPlan().when(
        fp.error(503), service="compute", method="POST", path_contains="/servers"
    )
    with faulty_cloud(admin, cloud, plan) as proxy:
        cpi = cpi_for(auth_url=proxied_auth_url(proxy, cloud), token_cache=False)
        result = vs.create(cpi, cloud, {"private": vs.manual_network(cloud)})
    assert result.error is not None
    assert result.error["type"] == "Bosh::Clouds::VMCreationFailed"
    assert result.error["ok_to_retry"] is True
    assert "none was created" in result.error["message"]
    _nothing_left(admin, cloud, director_uuid)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"key_name": "no-such-key"}, "key pair"),
        ({"stemcell": "00000000-0000-0000-0000-0000000000aa"}, "upload the stemcell again"),
    ],
    ids=["key", "image"],
)
def test_nova_refusals_remove_the_port_and_explain(
    cpi: CpiProcess,
    cloud: dict[str, Any],
    admin: Any,
    director_uuid: str,
    leak_check: None,
    change: dict[str, str],
    fragment: str,
):
    properties = dict(vs.SMALL)
    stemcell = change.get("stemcell")
    if "key_name" in change:
        properties["key_name"] = change["key_name"]
    result = vs.create(
        cpi, cloud, {"private": vs.manual_network(cloud)}, properties, stemcell=stemcell
    )
    assert result.error is not None
    assert result.error["ok_to_retry"] is False
    assert fragment in result.error["message"]
    _nothing_left(admin, cloud, director_uuid)


def test_too_large_agent_settings_fail_before_anything_exists(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, director_uuid: str, leak_check: None
):
    env = {"bosh": {"authorized_keys": ["ssh-ed25519 " + "A" * 70000]}}
    result = vs.create(cpi, cloud, {"private": vs.manual_network(cloud)}, env=env)
    assert result.error is not None
    assert "65535" in result.error["message"] and "env" in result.error["message"]
    assert "A" * 100 not in result.all_output  # user_data is never logged
    _nothing_left(admin, cloud, director_uuid)


def test_unknown_cloud_properties_are_a_warning(
    cpi: CpiProcess, cloud: dict[str, Any], leak_check: None
):
    properties = {**vs.SMALL, "ephemeral_disk": {"size": 1024}, "flavour": "typo"}
    with vs.vm(cpi, cloud, {"private": vs.manual_network(cloud)}, properties) as (_, _, result):
        assert "WARNING" in result.stderr
        assert "Ignoring unknown VM cloud_properties: ephemeral_disk, flavour" in result.stderr
        assert vs.AGENT_SECRET not in result.all_output
