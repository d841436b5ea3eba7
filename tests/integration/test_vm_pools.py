"""loadbalancer_pools against the real Octavia of the test cloud: members added by
create_vm and removed by delete_vm (also those a reference CPI recorded), checked on
Octavia itself. The cloud must have Octavia (`resources.loadbalancer` in its
description): without it these tests fail, they do not skip."""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from typing import Any

import pytest

from tests.integration import vm_support as vs
from tests.integration.leaks import members_of_director
from tools.cpi_process import CpiProcess


@pytest.fixture(scope="module")
def balancer(cloud: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] | None = cloud["resources"].get("loadbalancer")
    if not found:
        pytest.fail(
            "The test cloud has no Octavia load balancer (resources.loadbalancer in its "
            "description): loadbalancer_pools cannot be tested",
            pytrace=False,
        )
    return found


WEB = "bosh-pool-web"
MONITORED = "bosh-pool-monitored"


def _members(admin: Any, pool_id: str) -> dict[str, Any]:
    return {m.id: m for m in admin.load_balancer.members(pool_id)}


def _pools(*entries: dict[str, Any]) -> dict[str, Any]:
    return {**vs.SMALL, "loadbalancer_pools": list(entries)}


def _keep_busy(project_sdk: Any, balancer: dict[str, Any], until: Any, updates: int = 15) -> None:
    """Update the web pool (a real change: the load balancer goes PENDING_UPDATE, for
    about 0.6 s on 2026.2 and 1.5 s on zed) as soon as the load balancer is ACTIVE again,
    a bounded number of times, until `until()`: most of that time it is busy."""
    from openstack import exceptions

    for number in range(updates):
        if until():
            return
        _wait_active(project_sdk, balancer["id"], poll=0.05)
        with contextlib.suppress(exceptions.ConflictException):  # a CPI's change came first
            project_sdk.load_balancer.update_pool(
                balancer["pools"][WEB], description=f"kept busy by a test ({number})"
            )


def _wait_active(
    admin: Any, loadbalancer_id: str, timeout: float = 60.0, poll: float = 0.3
) -> None:
    deadline = time.monotonic() + timeout
    while admin.load_balancer.get_load_balancer(loadbalancer_id).provisioning_status != "ACTIVE":
        assert time.monotonic() < deadline, f"load balancer {loadbalancer_id} stays busy"
        time.sleep(poll)


def test_a_vm_joins_a_pool_and_leaves_it_on_delete(
    cpi: CpiProcess,
    cloud: dict[str, Any],
    admin: Any,
    balancer: dict[str, Any],
    director_uuid: str,
    leak_check: None,
):
    network = vs.manual_network(cloud)
    pool_id = balancer["pools"][WEB]
    with vs.vm(cpi, cloud, {"private": network}, _pools({"name": WEB, "port": 80})) as (
        vm_cid,
        _,
        _,
    ):
        metadata = vs.server(admin, vm_cid)["metadata"]
        recorded = metadata["lbaas_pool_1"]
        assert recorded.startswith(f"{pool_id}/")
        member = _members(admin, pool_id)[recorded.split("/")[1]]
        assert (member.address, member.protocol_port) == (network["ip"], 80)
        assert member.subnet_id == cloud["resources"]["networks"]["manual_1"]["subnet_id"]
        assert member.monitor_port is None
        assert member.name == f"bosh-openstack-cpi director_uuid={director_uuid}"
        # create_vm waited for Octavia to apply it
        assert member.provisioning_status == "ACTIVE"
        assert admin.load_balancer.get_load_balancer(balancer["id"]).provisioning_status == "ACTIVE"
    assert recorded.split("/")[1] not in _members(admin, pool_id)


def test_two_pools_one_health_monitored_with_its_monitoring_port(
    cpi: CpiProcess,
    cloud: dict[str, Any],
    admin: Any,
    balancer: dict[str, Any],
    director_uuid: str,
    leak_check: None,
):
    network = vs.manual_network(cloud)
    properties = _pools(
        {"name": WEB, "port": 8080},
        {"name": MONITORED, "port": 8443, "monitoring_port": 9090},
    )
    with vs.vm(cpi, cloud, {"private": network}, properties) as (vm_cid, _, _):
        metadata = vs.server(admin, vm_cid)["metadata"]
        web_pool, web_member = metadata["lbaas_pool_1"].split("/")
        monitored_pool, monitored_member = metadata["lbaas_pool_2"].split("/")
        assert (web_pool, monitored_pool) == (balancer["pools"][WEB], balancer["pools"][MONITORED])
        web = _members(admin, web_pool)[web_member]
        monitored = _members(admin, monitored_pool)[monitored_member]
        assert (web.address, web.protocol_port, web.monitor_port) == (network["ip"], 8080, None)
        assert (monitored.address, monitored.protocol_port, monitored.monitor_port) == (
            network["ip"],
            8443,
            9090,
        )
        assert len(members_of_director(admin, director_uuid)) == 2
    assert members_of_director(admin, director_uuid) == []


def test_a_vm_on_a_dynamic_network_joins_with_its_dhcp_address(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, balancer: dict[str, Any], leak_check: None
):
    dhcp = cloud["resources"]["networks"]["dhcp"]
    with vs.vm(
        cpi, cloud, {"default": vs.dynamic_network(cloud)}, _pools({"name": WEB, "port": 80})
    ) as (vm_cid, _, _):
        (port,) = vs.ports_of(admin, vm_cid)
        pool_id, member_id = vs.server(admin, vm_cid)["metadata"]["lbaas_pool_1"].split("/")
        member = _members(admin, pool_id)[member_id]
        assert member.address == port.fixed_ips[0]["ip_address"]
        assert member.subnet_id == dhcp["subnet_id"]


def test_an_empty_list_of_pools_asks_for_nothing(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, leak_check: None
):
    with vs.vm(cpi, cloud, {"private": vs.manual_network(cloud)}, _pools()) as (vm_cid, _, _):
        assert not [k for k in vs.server(admin, vm_cid)["metadata"] if k.startswith("lbaas")]


def test_a_missing_pool_fails_before_anything_is_created(
    cpi: CpiProcess, cloud: dict[str, Any], balancer: dict[str, Any], leak_check: None
):
    result = vs.create(
        cpi,
        cloud,
        {"private": vs.manual_network(cloud)},
        _pools({"name": WEB, "port": 80}, {"name": "no-such-pool", "port": 80}),
    )
    assert result.error is not None
    assert result.error["type"] == "Bosh::Clouds::CloudError"
    assert "Load balancer pool 'no-such-pool' does not exist" in result.error["message"]
    assert "Created port" not in result.stderr  # found missing before anything was made


def test_a_malformed_pool_entry_is_refused_before_any_request(
    cpi: CpiProcess, cloud: dict[str, Any], leak_check: None
):
    result = vs.create(
        cpi, cloud, {"private": vs.manual_network(cloud)}, _pools({"name": WEB, "port": "80"})
    )
    assert result.error is not None
    assert result.error["type"] == "Bosh::Clouds::CloudError"
    assert "loadbalancer_pools[0].port must be the members' port" in result.error["message"]


def test_an_ambiguous_pool_name_is_refused(
    cpi: CpiProcess,
    cloud: dict[str, Any],
    admin: Any,
    project_sdk: Any,
    balancer: dict[str, Any],
    leak_check: None,
):
    name = vs.unique("bosh-pool-twice")
    _wait_active(admin, balancer["id"])
    first = project_sdk.load_balancer.create_pool(
        name=name, loadbalancer_id=balancer["id"], protocol="TCP", lb_algorithm="ROUND_ROBIN"
    )
    _wait_active(admin, balancer["id"])
    second = project_sdk.load_balancer.create_pool(
        name=name, loadbalancer_id=balancer["id"], protocol="TCP", lb_algorithm="ROUND_ROBIN"
    )
    try:
        _wait_active(admin, balancer["id"])
        result = vs.create(
            cpi, cloud, {"private": vs.manual_network(cloud)}, _pools({"name": name, "port": 80})
        )
        assert result.error is not None
        assert result.error["type"] == "Bosh::Clouds::CloudError"
        message = result.error["message"]
        assert f"name '{name}' matches 2 pools" in message
        assert first.id in message and second.id in message
    finally:
        for pool in (first, second):
            _wait_active(admin, balancer["id"])
            project_sdk.load_balancer.delete_pool(pool.id, ignore_missing=True)
        _wait_active(admin, balancer["id"])


def test_two_create_vm_at_once_on_one_pool_both_join(
    cpi: CpiProcess,
    cloud: dict[str, Any],
    admin: Any,
    project_sdk: Any,
    balancer: dict[str, Any],
    director_uuid: str,
    leak_check: None,
):
    """Two create_vm at once on one pool: a member request that meets the load balancer
    busy (409 while PENDING_UPDATE) is sent again once it is ACTIVE, and both VMs join.
    Whether the two calls' own member requests overlap depends on timing, so the test
    also keeps the load balancer busy itself meanwhile (a few real pool updates, each
    as soon as the load balancer is ACTIVE again, 15 at most), so that the calls meet
    PENDING_UPDATE whatever their timing."""
    properties = _pools({"name": WEB, "port": 80})
    networks = [{"private": vs.manual_network(cloud, position=p)} for p in (-1, -2)]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        calls = [pool.submit(vs.create, cpi, cloud, n, properties) for n in networks]
        _keep_busy(project_sdk, balancer, until=lambda: all(c.done() for c in calls))
        results = [c.result() for c in calls]
    vm_cids = [r.result[0] for r in results if r.error is None]
    try:
        assert [r.error for r in results] == [None, None]
        addresses = {m.address for m in _members(admin, balancer["pools"][WEB]).values()}
        assert {n["private"]["ip"] for n in networks} <= addresses
        busy = [r for r in results if "the load balancer is busy" in r.stderr]
        assert busy, "neither create_vm met the load balancer busy: no contention was tested"
    finally:
        for vm_cid in vm_cids:
            assert cpi.call("delete_vm", vm_cid).error is None
    assert members_of_director(admin, director_uuid) == []


def test_delete_vm_removes_a_member_a_reference_cpi_recorded(
    cpi: CpiProcess,
    cloud: dict[str, Any],
    admin: Any,
    project_sdk: Any,
    balancer: dict[str, Any],
    leak_check: None,
):
    """The Ruby and Go CPIs record `lbaas_pool_<n>: <pool>/<member>`; the member has no
    director mark, so the test removes it itself if delete_vm does not."""
    network = vs.manual_network(cloud)
    pool_id = balancer["pools"][WEB]
    result = vs.create(cpi, cloud, {"private": network})
    assert result.error is None, result.error
    vm_cid = result.result[0]
    member = None
    try:
        _wait_active(admin, balancer["id"])
        member = project_sdk.load_balancer.create_member(
            pool_id,
            address=network["ip"],
            protocol_port=80,
            subnet_id=cloud["resources"]["networks"]["manual_1"]["subnet_id"],
        )
        project_sdk.compute.set_server_metadata(vm_cid, lbaas_pool_0=f"{pool_id}/{member.id}")
        _wait_active(admin, balancer["id"])
        deleted = cpi.call("delete_vm", vm_cid)
        assert deleted.error is None, deleted.error
        assert member.id not in _members(admin, pool_id)
        assert f"Removed member {member.id}" in deleted.stderr
    finally:
        if member is not None and member.id in _members(admin, pool_id):
            _wait_active(admin, balancer["id"])
            project_sdk.load_balancer.delete_member(member.id, pool_id)
        cpi.call("delete_vm", vm_cid)
