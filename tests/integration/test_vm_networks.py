"""Networks of create_vm against the real Neutron (reference lifecycle scenarios 6, 7, 8,
13, 14, 16, 17, plus security-group precedence and IPv6)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration import vm_support as vs
from tools.cpi_process import CpiProcess


def _group(cloud: dict[str, Any], name: str) -> dict[str, str]:
    group: dict[str, str] = next(
        g for g in cloud["resources"]["security_groups"] if g["name"] == name
    )
    return group


def test_two_manual_networks_with_config_drive(
    cpi_for: Callable[..., CpiProcess],
    cloud: dict[str, Any],
    admin: Any,
    director_uuid: str,
    leak_check: None,
):
    """Scenario 6: one port per network, MACs in user_data equal Nova's interfaces; all
    ports gone after delete_vm."""
    cpi = cpi_for(use_dhcp=False, config_drive="cdrom")
    networks = {
        "first": vs.manual_network(cloud, "manual_1"),
        "second": vs.manual_network(cloud, "manual_2", default=[]),
    }
    with vs.vm(cpi, cloud, networks) as (vm_cid, answered, _):
        record = vs.server(admin, vm_cid)
        assert record["config_drive"] in (True, "True", "true")
        ports = {p.network_id: p for p in vs.ports_of(admin, vm_cid)}
        for name, network in (("first", "manual_1"), ("second", "manual_2")):
            port = ports[cloud["resources"]["networks"][network]["id"]]
            assert [f["ip_address"] for f in port.fixed_ips] == [networks[name]["ip"]]
            assert answered[name]["mac"] == port.mac_address
            assert answered[name]["use_dhcp"] is False
        settings = vs.user_data(admin, vm_cid)
        assert {n["mac"] for n in settings["networks"].values()} == vs.interface_macs(admin, vm_cid)
        assert settings == vs.expected_settings(cloud, record["name"], answered)
    assert vs.cpi_ports(admin, director_uuid) == []


def test_two_manual_networks_need_use_dhcp_false_and_a_config_drive(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, director_uuid: str, leak_check: None
):
    networks = {
        "first": vs.manual_network(cloud, "manual_1"),
        "second": vs.manual_network(cloud, "manual_2", default=[]),
    }
    result = vs.create(cpi, cloud, networks)
    assert result.error is not None
    assert result.error["type"] == "Bosh::Clouds::VMCreationFailed"
    assert result.error["ok_to_retry"] is False
    message = result.error["message"]
    assert "openstack.use_dhcp: false" in message and "openstack.config_drive" in message


def test_a_stale_port_holding_the_ip_is_replaced(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, project_sdk: Any, leak_check: None
):
    """Scenario 7: an unbound port left by an earlier VM holds the static IP."""
    network = vs.manual_network(cloud)
    stale = project_sdk.network.create_port(
        network_id=network["cloud_properties"]["net_id"],
        fixed_ips=[{"ip_address": network["ip"]}],
        name=vs.unique("stale"),
    )
    try:
        with vs.vm(cpi, cloud, {"private": network}) as (vm_cid, _, result):
            (port,) = vs.ports_of(admin, vm_cid)
            assert [f["ip_address"] for f in port.fixed_ips] == [network["ip"]]
            assert not list(admin.network.ports(id=stale.id))
            assert stale.id in result.stderr  # the log says which port was removed
    finally:
        project_sdk.network.delete_port(stale, ignore_missing=True)


def test_an_ip_used_by_a_bound_port_is_refused_and_nothing_is_left(
    cpi: CpiProcess,
    cloud: dict[str, Any],
    admin: Any,
    project_sdk: Any,
    director_uuid: str,
    leak_check: None,
):
    network = vs.manual_network(cloud)
    busy = project_sdk.network.create_port(
        network_id=network["cloud_properties"]["net_id"],
        fixed_ips=[{"ip_address": network["ip"]}],
        device_id=str(uuid.uuid4()),
        device_owner="compute:nova",
        name=vs.unique("busy"),
    )
    try:
        result = vs.create(cpi, cloud, {"private": network})
        assert result.error is not None
        assert f"IP {network['ip']}" in result.error["message"]
        assert busy.id in result.error["message"]
        assert list(admin.network.ports(id=busy.id))  # a port in use is never deleted
        assert vs.servers_of(admin, cloud, director_uuid) == []
    finally:
        project_sdk.network.delete_port(busy)


def test_vrrp_address_on_the_gateway_port(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, project_sdk: Any, leak_check: None
):
    """Scenario 8: allowed_address_pairs with the reserved VRRP port."""
    vrrp_ip = vs.static_ip(cloud, "manual_1", -2)
    reserved = project_sdk.network.create_port(
        network_id=cloud["resources"]["networks"]["manual_1"]["id"],
        fixed_ips=[{"ip_address": vrrp_ip}],
        name=vs.unique("vrrp"),
    )
    try:
        properties = {**vs.SMALL, "allowed_address_pairs": vrrp_ip}
        with vs.vm(cpi, cloud, {"private": vs.manual_network(cloud)}, properties) as (vm_cid, _, _):
            (port,) = vs.ports_of(admin, vm_cid)
            assert [p["ip_address"] for p in port.allowed_address_pairs] == [vrrp_ip]
    finally:
        project_sdk.network.delete_port(reserved)


def test_vrrp_without_its_reserved_port_fails_before_creating_anything(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, director_uuid: str, leak_check: None
):
    vrrp_ip = vs.static_ip(cloud, "manual_1", -2)
    properties = {**vs.SMALL, "allowed_address_pairs": vrrp_ip}
    result = vs.create(cpi, cloud, {"private": vs.manual_network(cloud)}, properties)
    assert result.error is not None
    assert f"VRRP port with ip '{vrrp_ip}' does not exist" in result.error["message"]
    assert "vrrp_port_check: false" in result.error["message"]
    # ...and with the check off the address is simply allowed on the port
    networks = {"private": vs.manual_network(cloud, cloud_properties={"vrrp_port_check": False})}
    with vs.vm(cpi, cloud, networks, properties) as (vm_cid, _, _):
        (port,) = vs.ports_of(admin, vm_cid)
        assert [p["ip_address"] for p in port.allowed_address_pairs] == [vrrp_ip]


def test_vrrp_prefix_and_the_go_cpi_vm_level_check(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, leak_check: None
):
    """A prefix in allowed_address_pairs (Neutron takes one; the reference passed it on),
    with the check switched off on the VM type, where the Go CPI reads it."""
    prefix = cloud["resources"]["networks"]["manual_1"]["cidr"]
    vrrp_ip = vs.static_ip(cloud, "manual_1", -2)
    networks = {"private": vs.manual_network(cloud)}
    go_style = {**vs.SMALL, "allowed_address_pairs": vrrp_ip, "vrrp_port_check": False}
    with vs.vm(cpi, cloud, networks, go_style) as (vm_cid, _, _):
        (port,) = vs.ports_of(admin, vm_cid)
        assert [p["ip_address"] for p in port.allowed_address_pairs] == [vrrp_ip]
    with vs.vm(cpi, cloud, networks, {**vs.SMALL, "allowed_address_pairs": prefix}) as (
        vm_cid,
        _,
        _,
    ):
        (port,) = vs.ports_of(admin, vm_cid)
        assert [p["ip_address"] for p in port.allowed_address_pairs] == [prefix]


@pytest.mark.parametrize("by", ["name", "id"])
def test_network_security_groups_by_name_or_id(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, leak_check: None, by: str
):
    """Scenarios 13 and 14: the network's groups replace the default ones."""
    extra = _group(cloud, "bosh-extra")
    networks = {
        "private": vs.manual_network(cloud, cloud_properties={"security_groups": [extra[by]]})
    }
    with vs.vm(cpi, cloud, networks) as (vm_cid, _, _):
        (port,) = vs.ports_of(admin, vm_cid)
        assert port.security_group_ids == [extra["id"]]


def test_vm_type_security_groups_win_over_the_networks(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, leak_check: None
):
    extra, bosh = _group(cloud, "bosh-extra"), _group(cloud, "bosh")
    networks = {
        "private": vs.manual_network(cloud, cloud_properties={"security_groups": [bosh["name"]]})
    }
    properties = {**vs.SMALL, "security_groups": [extra["name"], bosh["id"]]}
    with vs.vm(cpi, cloud, networks, properties) as (vm_cid, _, _):
        (port,) = vs.ports_of(admin, vm_cid)
        assert sorted(port.security_group_ids) == sorted([extra["id"], bosh["id"]])


def test_unknown_security_group_fails_before_creating_anything(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, director_uuid: str, leak_check: None
):
    properties = {**vs.SMALL, "security_groups": ["no-such-group"]}
    result = vs.create(cpi, cloud, {"private": vs.manual_network(cloud)}, properties)
    assert result.error is not None
    assert "'no-such-group' not found" in result.error["message"]
    assert vs.cpi_ports(admin, director_uuid) == []


def test_unallocated_floating_ip(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, director_uuid: str, leak_check: None
):
    """Scenario 16: nothing is created; no VM holds the manual IP, no port is left."""
    networks = {"private": vs.manual_network(cloud), "public": vs.vip_network("255.255.255.255")}
    result = vs.create(cpi, cloud, networks)
    assert result.error is not None
    assert result.error["type"] == "Bosh::Clouds::VMCreationFailed"
    assert "Floating IP '255.255.255.255' not allocated" in result.error["message"]
    assert vs.servers_of(admin, cloud, director_uuid) == []
    ip = networks["private"]["ip"]
    assert not list(admin.network.ports(fixed_ips=[f"ip_address={ip}"]))


@pytest.mark.parametrize("kind", ["manual", "dynamic"])
def test_unknown_net_id_is_named(
    cpi: CpiProcess,
    cloud: dict[str, Any],
    admin: Any,
    director_uuid: str,
    leak_check: None,
    kind: str,
):
    """Scenario 17."""
    net_id = "00000000-0000-0000-0000-000000000000"
    if kind == "manual":
        network = vs.manual_network(cloud, cloud_properties={"net_id": net_id})
    else:
        network = vs.dynamic_network(cloud, net_id=net_id)
    result = vs.create(cpi, cloud, {"private": network})
    assert result.error is not None
    assert result.error["type"] == "Bosh::Clouds::VMCreationFailed"
    assert net_id in result.error["message"]
    assert "subnet" in result.error["message"]
    assert vs.servers_of(admin, cloud, director_uuid) == []


@pytest.fixture(scope="module")
def ipv6_network(project_sdk: Any) -> Iterator[dict[str, str]]:
    """A network with an IPv6 subnet without DHCP (unique-local addresses: bookkeeping only)."""
    network = project_sdk.network.create_network(name=vs.unique("bosh-cpi-v6"))
    try:
        subnet = project_sdk.network.create_subnet(
            network_id=network.id,
            ip_version=6,
            cidr="fd00:b05e:cafe::/64",
            enable_dhcp=False,
            allocation_pools=[{"start": "fd00:b05e:cafe::100", "end": "fd00:b05e:cafe::1ff"}],
        )
        yield {"id": network.id, "subnet": subnet.id}
    finally:
        for port in project_sdk.network.ports(network_id=network.id):
            project_sdk.network.delete_port(port)
        project_sdk.network.delete_network(network)


def test_ipv6_manual_network(
    cpi: CpiProcess,
    cloud: dict[str, Any],
    admin: Any,
    ipv6_network: dict[str, str],
    leak_check: None,
):
    network = {
        "type": "manual",
        "ip": "fd00:b05e:cafe::10",
        "netmask": "ffff:ffff:ffff:ffff::",
        "gateway": "fd00:b05e:cafe::1",
        "default": ["dns", "gateway"],
        "cloud_properties": {"net_id": ipv6_network["id"]},
    }
    with vs.vm(cpi, cloud, {"v6": network}) as (vm_cid, answered, _):
        (port,) = vs.ports_of(admin, vm_cid)
        assert [f["ip_address"] for f in port.fixed_ips] == ["fd00:b05e:cafe::10"]
        assert vs.user_data(admin, vm_cid)["networks"]["v6"]["mac"] == port.mac_address
        assert answered["v6"]["ip"] == "fd00:b05e:cafe::10"
