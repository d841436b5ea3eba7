"""VM lifecycle against the real cloud (reference lifecycle scenarios 1, 3, 4, 20 and the
VM methods around them), checked on the cloud itself: Neutron ports, Nova's stored
user_data, metadata, names, zones."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.integration import vm_support as vs
from tools.cpi_process import CpiProcess
from tools.request_log import LOG_LEVEL_ENV, count_requests, requests_in


def test_manual_network_lifecycle(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, director_uuid: str, leak_check: None
):
    """Scenario 4: create_vm on a manual network, has_vm, set_vm_metadata, reboot_vm,
    delete_vm; every step checked on the cloud."""
    networks = {"private": vs.manual_network(cloud)}
    with vs.vm(cpi, cloud, networks) as (vm_cid, answered, result):
        record = vs.server(admin, vm_cid)
        name = record["name"]
        assert name.startswith("vm-") and uuid.UUID(name[3:])
        assert record["metadata"] == {"director_uuid": director_uuid}
        assert record["status"] == "ACTIVE"

        (port,) = vs.ports_of(admin, vm_cid)
        assert [f["ip_address"] for f in port.fixed_ips] == [networks["private"]["ip"]]
        assert port.network_id == cloud["resources"]["networks"]["manual_1"]["id"]
        assert port.description == f"bosh-openstack-cpi director_uuid={director_uuid}"
        default_group = next(
            g for g in cloud["resources"]["security_groups"] if g["name"] == "bosh"
        )
        assert port.security_group_ids == [default_group["id"]]

        # the answer: the director's networks plus use_dhcp and the port's MAC
        assert answered["private"] == {
            **networks["private"],
            "use_dhcp": True,
            "mac": port.mac_address,
        }
        assert vs.interface_macs(admin, vm_cid) == {port.mac_address}
        assert vs.user_data(admin, vm_cid) == vs.expected_settings(cloud, name, answered)
        assert ENV_SECRET not in result.all_output

        assert cpi.call("has_vm", vm_cid).result is True
        metadata = {
            "director": "bosh",
            "deployment": "dep",
            "job": "zookeeper",
            "index": 0,
            "id": "abc",
            "name": "zookeeper/abc",
            "long": "x" * 300,
        }
        assert cpi.call("set_vm_metadata", vm_cid, metadata).error is None
        stored = vs.server(admin, vm_cid)
        assert stored["metadata"] == {
            "director_uuid": director_uuid,
            "director": "bosh",
            "deployment": "dep",
            "job": "zookeeper",
            "index": "0",
            "id": "abc",
            "name": "zookeeper/abc",
            "long": "x" * 255,
        }
        assert stored["name"] == name  # human_readable_vm_names is off

        rebooted = cpi.call("reboot_vm", vm_cid)
        assert rebooted.error is None, rebooted.error
        assert vs.server(admin, vm_cid)["status"] == "ACTIVE"

    assert cpi.call("has_vm", vm_cid).result is False
    assert not list(admin.network.ports(id=port.id))


ENV_SECRET = vs.AGENT_SECRET


def test_dynamic_network_takes_a_floating_ip_from_another_server(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, project_sdk: Any, leak_check: None
):
    """Scenario 1: the floating IP is held by another server; create_vm moves it, delete_vm
    frees it."""
    address = cloud["resources"]["floating_ips"][-1]
    fip = next(project_sdk.network.ips(floating_ip_address=address))
    holder = project_sdk.network.create_port(
        network_id=cloud["resources"]["networks"]["dhcp"]["id"], name=vs.unique("fip-holder")
    )
    try:
        project_sdk.network.update_ip(fip, port_id=holder.id)
        networks = {"default": vs.dynamic_network(cloud), "public": vs.vip_network(address)}
        with vs.vm(cpi, cloud, networks) as (vm_cid, answered, _):
            (port,) = vs.ports_of(admin, vm_cid)
            assert project_sdk.network.get_ip(fip.id).port_id == port.id
            assert port.network_id == cloud["resources"]["networks"]["dhcp"]["id"]
            assert "mac" not in answered["default"] and answered["default"]["use_dhcp"] is True
            assert "use_dhcp" not in answered["public"]
            group_ids = {
                g["id"] for g in cloud["resources"]["security_groups"] if g["name"] == "bosh"
            }
            assert set(port.security_group_ids) == group_ids
        assert project_sdk.network.get_ip(fip.id).port_id is None
    finally:
        project_sdk.network.update_ip(fip, port_id=None)
        project_sdk.network.delete_port(holder)


def _floating_ip_put_and_polls(stderr: str) -> tuple[int, list[int]]:
    """Positions in the call's requests of the floating-IP PUT and of the server polls
    that follow the server's POST."""
    sent = requests_in(stderr)
    posted = next(
        i
        for i, (_, method, path, _) in enumerate(sent)
        if (method, path) == ("POST", "/v2.1/servers")
    )
    (put,) = [i for i, (_, m, path, _) in enumerate(sent) if m == "PUT" and "/floatingips/" in path]
    polls = [
        i
        for i, (_, method, path, _) in enumerate(sent)
        if i > posted and method == "GET" and path.startswith("/v2.1/servers/")
    ]
    return put, polls


@pytest.mark.parametrize("held_by_another_port", [False, True])
def test_manual_network_floating_ip(
    cpi: CpiProcess,
    cloud: dict[str, Any],
    admin: Any,
    project_sdk: Any,
    leak_check: None,
    held_by_another_port: bool,
):
    """A free floating IP goes on the VM's port while Nova builds the server (polls follow
    the PUT); one held by another port moves once the server is ACTIVE (after the polls).
    delete_vm frees it either way."""
    address = cloud["resources"]["floating_ips"][-1]
    fip = next(project_sdk.network.ips(floating_ip_address=address))
    holder = None
    if held_by_another_port:
        holder = project_sdk.network.create_port(
            network_id=cloud["resources"]["networks"]["dhcp"]["id"], name=vs.unique("fip-holder")
        )
        project_sdk.network.update_ip(fip, port_id=holder.id)
    cpi.env.update(LOG_LEVEL_ENV)
    networks = {"private": vs.manual_network(cloud), "public": vs.vip_network(address)}
    try:
        with vs.vm(cpi, cloud, networks) as (vm_cid, _, result):
            (port,) = vs.ports_of(admin, vm_cid)
            assert project_sdk.network.get_ip(fip.id).port_id == port.id
            put, polls = _floating_ip_put_and_polls(result.stderr)
            if held_by_another_port:
                assert put > max(polls)
            else:
                assert put < min(polls)
        assert project_sdk.network.get_ip(fip.id).port_id is None
    finally:
        if holder is not None:
            project_sdk.network.update_ip(fip, port_id=None)
            project_sdk.network.delete_port(holder)


def test_human_readable_vm_names(cpi_for: Any, cloud: dict[str, Any], admin: Any, leak_check: None):
    """Scenario 3: set_vm_metadata renames the server after the instance."""
    cpi = cpi_for(human_readable_vm_names=True)
    with vs.vm(cpi, cloud, {"private": vs.manual_network(cloud)}) as (vm_cid, _, _):
        initial = vs.server(admin, vm_cid)["name"]
        assert cpi.call("set_vm_metadata", vm_cid, {"job": "compile", "index": 3}).error is None
        assert vs.server(admin, vm_cid)["name"] == "compile/3"
        assert (
            cpi.call("set_vm_metadata", vm_cid, {"name": "router/1a2b", "job": "x"}).error is None
        )
        assert vs.server(admin, vm_cid)["name"] == "router/1a2b"
        assert cpi.call("set_vm_metadata", vm_cid, {"compiling": "golang"}).error is None
        assert vs.server(admin, vm_cid)["name"] == "compiling/golang"
        # the agent keeps the name it booted with
        assert vs.user_data(admin, vm_cid)["vm"]["name"] == initial


def test_light_stemcell_cid_and_api_version_1(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, leak_check: None
):
    """Scenario 20 (light stemcell cid '<image> light'); CPI API v1 answers the cid only."""
    cpi.api_version = 1
    result = vs.create(
        cpi,
        cloud,
        {"private": vs.manual_network(cloud)},
        stemcell=f"{cloud['resources']['image_id']} light",
    )
    assert result.error is None, result.error
    vm_cid = result.result
    assert isinstance(vm_cid, str)
    try:
        assert vs.server(admin, vm_cid)["image"]["id"] == cloud["resources"]["image_id"]
        assert "registry" in result.stderr  # the registry-less warning
    finally:
        assert cpi.call("delete_vm", vm_cid).error is None


def test_delete_vm_is_idempotent_and_missing_vms_are_reported(cpi: CpiProcess):
    unknown = str(uuid.uuid4())
    result = cpi.call("delete_vm", unknown)
    assert result.error is None, result.error
    assert cpi.call("has_vm", unknown).result is False
    for method, arguments in (("reboot_vm", ()), ("set_vm_metadata", ({"job": "j"},))):
        failed = cpi.call(method, unknown, *arguments)
        assert failed.error is not None
        assert failed.error["type"] == "Bosh::Clouds::VMNotFound"
        assert unknown in failed.error["message"]


def test_requests_per_method_stay_minimal(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, leak_check: None
):
    """No lookups of images, key pairs or the whole security-group list: the POST checks
    them. Debug logging (HTTP bodies included) still shows no agent settings."""
    cpi.env.update(LOG_LEVEL_ENV)
    with vs.vm(cpi, cloud, {"private": vs.manual_network(cloud)}) as (vm_cid, _, result):
        created = count_requests(result.stderr)
        stored = vs.server(admin, vm_cid)["OS-EXT-SRV-ATTR:user_data"]
        assert stored[:40] not in result.all_output
        assert vs.AGENT_SECRET not in result.all_output
    deleted = cpi.call("delete_vm", vm_cid)  # again: a VM that is gone is no error
    assert deleted.error is None
    assert created["network"] == 2  # security groups by name, the port
    assert "image" not in created
    assert created["compute"] <= 2 + 10  # flavors, the POST, status polls
    counted = count_requests(deleted.stderr)
    assert "network" not in counted  # a server that is gone has no ports to look for
    assert counted["compute"] == 1  # GET (its pool memberships): 404, nothing else


@pytest.mark.parametrize("with_zone", [True, False])
def test_zone_of_the_vm_type(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, leak_check: None, with_zone: bool
):
    zone = cloud["resources"]["availability_zones"][-1]
    properties = {**vs.SMALL, "availability_zone": zone} if with_zone else vs.SMALL
    with vs.vm(cpi, cloud, {"private": vs.manual_network(cloud)}, properties) as (vm_cid, _, _):
        actual = vs.server(admin, vm_cid)["OS-EXT-AZ:availability_zone"]
        if with_zone:
            assert actual == zone
        else:
            assert actual in cloud["resources"]["availability_zones"]


def test_delete_vm_removes_ports_the_reference_cpi_created(
    cpi: CpiProcess, cloud: dict[str, Any], project_sdk: Any
):
    """A VM made by the reference CPI (drop-in replacement): its pre-created port has no
    description of ours, and delete_vm must still delete it, as the reference does."""
    resources = cloud["resources"]
    network = resources["networks"]["manual_1"]
    port = project_sdk.network.create_port(
        network_id=network["id"], fixed_ips=[{"ip_address": vs.static_ip(cloud, "manual_1", -7)}]
    )
    server = None
    try:
        server = project_sdk.compute.create_server(
            name=f"vm-{uuid.uuid4()}",
            image_id=resources["image_id"],
            flavor_id=project_sdk.compute.find_flavor(resources["flavors"]["default"]).id,
            networks=[{"port": port.id}],
        )
        project_sdk.compute.wait_for_server(server, wait=120, interval=0.5)
        result = cpi.call("delete_vm", server.id)
        assert result.error is None, result.error
        assert project_sdk.compute.find_server(server.id) is None
        assert project_sdk.network.find_port(port.id) is None
    finally:
        if server is not None and project_sdk.compute.find_server(server.id) is not None:
            project_sdk.compute.delete_server(server.id)
            project_sdk.compute.wait_for_delete(server, wait=120, interval=0.5)
        if project_sdk.network.find_port(port.id) is not None:
            project_sdk.network.delete_port(port.id)
