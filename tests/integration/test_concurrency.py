"""Many CPI processes at once against the same cloud (tools/concurrency.py): 20 disk+VM
lifecycles in parallel end without a failure or a leak, and two create_vm calls racing
for the same floating IP or the same fixed IP end in a defined way (RELIABILITY.md)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration import vm_support as vs
from tools import concurrency
from tools.cpi_process import CpiProcess

COUNT = int(os.environ.get("BOSH_CPI_CONCURRENCY", "20"))
# Static IPs of these tests: positions in vm_support's list for manual_1 (other suites
# take theirs from the end of the range).
LIFECYCLE_IPS = range(20, 40)
RACE_IP = 45


def _cpis(cpi_for: Callable[..., CpiProcess], count: int) -> list[CpiProcess]:
    return [cpi_for() for _ in range(count)]


def test_twenty_lifecycles_at_once(
    cpi_for: Callable[..., CpiProcess], cloud: dict[str, Any], leak_check: None
):
    addresses = [vs.static_ip(cloud, "manual_1", p) for p in LIFECYCLE_IPS][: COUNT // 2]
    run = concurrency.lifecycles(_cpis(cpi_for, COUNT), cloud, addresses)
    assert run.failures == []
    assert [len(lc.steps) for lc in run.lifecycles] == [5] * COUNT
    print(f"{COUNT} lifecycles in {run.seconds} s: {run.latencies()}")


@pytest.fixture
def floating_ip(project_sdk: Any, cloud: dict[str, Any]) -> Iterator[Any]:
    public = cloud["resources"]["networks"]["public"]["id"]
    address = project_sdk.network.create_ip(
        floating_network_id=public, description="bosh-openstack-cpi concurrency test"
    )
    yield address
    project_sdk.network.delete_ip(address, ignore_missing=True)


def _delete(cpi: CpiProcess, vm_cids: list[str]) -> None:
    for vm_cid in vm_cids:
        assert cpi.call("delete_vm", vm_cid).error is None


def test_two_vms_racing_for_one_floating_ip(
    cpi_for: Callable[..., CpiProcess],
    cloud: dict[str, Any],
    admin: Any,
    floating_ip: Any,
    leak_check: None,
):
    """The vip network moves a floating IP to the new VM (as the reference CPI does): both
    calls succeed, and the address ends on the port of exactly one of the two VMs."""
    networks = {
        "default": concurrency.dynamic_network(cloud),
        "public": {"type": "vip", "ip": floating_ip.floating_ip_address, "cloud_properties": {}},
    }
    arguments = [concurrency.create_vm_arguments(cloud, networks) for _ in range(2)]
    result = concurrency.race(_cpis(cpi_for, 2), arguments)
    try:
        assert result.errors == []
        port_id = admin.network.get_ip(floating_ip.id).port_id
        holders = [vm for vm in result.winners if port_id in {p.id for p in vs.ports_of(admin, vm)}]
        assert len(holders) == 1
    finally:
        _delete(cpi_for(), result.winners)
    assert admin.network.get_ip(floating_ip.id).port_id is None


def test_two_vms_racing_for_one_fixed_ip(
    cpi_for: Callable[..., CpiProcess], cloud: dict[str, Any], admin: Any, leak_check: None
):
    """One VM gets the address; the other call fails saying that the IP is in use, and
    leaves nothing behind."""
    address = vs.static_ip(cloud, "manual_1", RACE_IP)
    networks = {"private": concurrency.manual_network(cloud, address)}
    arguments = [concurrency.create_vm_arguments(cloud, networks) for _ in range(2)]
    result = concurrency.race(_cpis(cpi_for, 2), arguments)
    try:
        assert len(result.winners) == 1, result.outcomes
        (error,) = result.errors
        assert error["type"] in ("Bosh::Clouds::CloudError", "Bosh::Clouds::VMCreationFailed")
        assert f"IP {address}" in error["message"] and "in use" in error["message"]
        (winner,) = result.winners
        ports = vs.ports_of(admin, winner)
        assert [ip["ip_address"] for p in ports for ip in p.fixed_ips] == [address]
    finally:
        _delete(cpi_for(), result.winners)
