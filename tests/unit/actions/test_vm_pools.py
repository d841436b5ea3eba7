"""create_vm and delete_vm with loadbalancer_pools, on fake adapters: the order of the
steps, what is removed on each failure, and what delete_vm reads. The real Octavia's
behaviour is in tests/integration/test_vm_pools.py."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field, replace
from typing import Any, cast

import pytest

from bosh_openstack_cpi.actions import vms
from bosh_openstack_cpi.openstack.network import Port
from bosh_openstack_cpi.openstack.octavia import Member, Pool
from bosh_openstack_cpi.protocol.errors import CloudError
from tests.unit.actions.test_vms import MANUAL, FakeCall, FakeCloud, FakeNetwork, _create

SUBNET = "subnet-1"
DYNAMIC = {
    "private": {
        "type": "dynamic",
        "dns": ["10.0.0.2"],
        "default": ["dns", "gateway"],
        "cloud_properties": {"net_id": "44444444-4444-4444-8444-444444444444"},
    }
}


class AddressedNetwork(FakeNetwork):
    """Ports that hold their IP and subnet, as Neutron answers."""

    def create_port(self, **request):
        port = super().create_port(**request)
        addressed = Port(port.id, port.mac_address, ips=(request["ip"],), subnet_ids=(SUBNET,))
        self.ports[port.id] = addressed
        return addressed

    def server_ports(self, server_id):
        return [
            Port(
                "nova-port",
                "fa:16:3e:99:99:99",
                network_id="44444444-4444-4444-8444-444444444444",
                ips=("fd00::7", "10.0.0.77"),
                subnet_ids=("subnet-v6", "subnet-v4"),
            )
        ]


@dataclass
class FakeLoadBalancer:
    pools: dict[str, list[Pool]] = field(default_factory=dict)
    events: list[tuple[str, ...]] = field(default_factory=list)
    members: dict[str, Member] = field(default_factory=dict)
    add_errors: dict[str, BaseException] = field(default_factory=dict)  # by pool name
    made_before_error: bool = False  # the failing add did make its member
    delete_error: CloudError | None = None

    def pool_named(self, name):
        self.events.append(("lookup", name))
        found = self.pools.get(name, [])
        if len(found) != 1:
            raise CloudError(f"Load balancer pool '{name}' does not exist")
        return found[0]

    def add_member(self, pool, *, address, port, subnet_id, monitor_port, name):
        assert name == "bosh-openstack-cpi director_uuid=director-1"
        self.events.append(("add", pool.name, address, str(port), subnet_id, str(monitor_port)))
        member = Member(f"m-{len(self.members) + 1}", pool.id, address, port, subnet_id)
        if pool.name in self.add_errors:
            if self.made_before_error:
                self.members[member.id] = member
            raise self.add_errors[pool.name]
        self.members[member.id] = member
        return member

    def wait_until_active(self, loadbalancer_id, *, timeout, started=None):
        self.events.append(("wait", loadbalancer_id))

    def find_member(self, pool_id, address, port, subnet_id, monitor_port):
        self.events.append(("find", pool_id, address))
        return next(
            (m for m in self.members.values() if (m.pool_id, m.address) == (pool_id, address)),
            None,
        )

    def delete_member(self, pool_id, member_id):
        self.events.append(("delete", pool_id, member_id))
        if self.delete_error:
            raise self.delete_error
        return self.members.pop(member_id, None) is not None


@dataclass
class PoolCloud(FakeCloud):
    network: FakeNetwork = field(default_factory=AddressedNetwork)
    load_balancer: FakeLoadBalancer = field(default_factory=FakeLoadBalancer)


def _call(*pools: Pool) -> FakeCall:
    cloud = PoolCloud()
    for pool in pools:
        cloud.load_balancer.pools.setdefault(pool.name, []).append(pool)
    return FakeCall(cloud=cloud)


def _lb(call: FakeCall) -> FakeLoadBalancer:
    return cast(PoolCloud, call.cloud).load_balancer


WEB = Pool("pool-web", "web", "lb-1")
TCP = Pool("pool-tcp", "tcp", "lb-1")
OTHER = Pool("pool-other", "other", "lb-2")


def _with_pools(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"instance_type": "m1.small", "loadbalancer_pools": list(entries)}


def test_two_pools_of_one_load_balancer_are_joined_in_turn_and_recorded():
    call = _call(WEB, TCP)
    vm_cid, _ = _create(
        call,
        cloud_properties=_with_pools(
            {"name": "web", "port": 80}, {"name": "tcp", "port": 1024, "monitoring_port": 8080}
        ),
    )
    assert _lb(call).events == [
        ("lookup", "web"),
        ("lookup", "tcp"),
        ("add", "web", "10.0.0.5", "80", SUBNET, "None"),
        ("wait", "lb-1"),  # the second change waits for the first
        ("add", "tcp", "10.0.0.5", "1024", SUBNET, "8080"),
        ("wait", "lb-1"),
    ]
    assert call.cloud.compute.metadata[vm_cid] == {
        "lbaas_pool_1": "pool-web/m-1",
        "lbaas_pool_2": "pool-tcp/m-2",
    }


def test_pools_of_two_load_balancers_are_changed_side_by_side():
    call = _call(WEB, OTHER)
    _create(
        call,
        cloud_properties=_with_pools({"name": "web", "port": 80}, {"name": "other", "port": 80}),
    )
    assert [e[:2] for e in _lb(call).events[2:]] == [
        ("add", "web"),
        ("add", "other"),
        ("wait", "lb-1"),
        ("wait", "lb-2"),
    ]


def test_no_pools_touch_no_load_balancer():
    call = _call()
    _create(call, cloud_properties=_with_pools())
    assert _lb(call).events == []
    assert call.cloud.compute.metadata == {}


def test_a_missing_pool_fails_before_anything_is_created():
    call = _call(WEB)
    with pytest.raises(CloudError, match="pool 'nope' does not exist"):
        _create(
            call,
            cloud_properties=_with_pools({"name": "web", "port": 80}, {"name": "nope", "port": 80}),
        )
    assert call.cloud.network.created == []
    assert call.cloud.compute.bodies == []


def test_pools_need_a_gateway_network():
    two = {
        "a": {**MANUAL["private"], "default": []},
        "b": {
            **MANUAL["private"],
            "ip": "10.0.0.6",
            "default": [],
            "cloud_properties": {"net_id": "22222222-2222-4222-8222-222222222222"},
        },
    }
    call = _call(WEB)
    call.openstack = replace(call.openstack, use_dhcp=False, config_drive="cdrom")
    with pytest.raises(CloudError, match=r"mark one network with default: \[gateway\]"):
        _create(call, networks=two, cloud_properties=_with_pools({"name": "web", "port": 80}))
    assert call.cloud.network.created == []


def test_a_dynamic_gateway_joins_with_the_ipv4_address_of_novas_port():
    call = _call(WEB)
    _create(call, networks=DYNAMIC, cloud_properties=_with_pools({"name": "web", "port": 80}))
    assert ("add", "web", "10.0.0.77", "80", "subnet-v4", "None") in _lb(call).events


def test_a_failed_second_pool_removes_the_first_member_before_the_server():
    call = _call(WEB, TCP)
    _lb(call).add_errors["tcp"] = CloudError("Octavia said no")
    with pytest.raises(CloudError, match="Octavia said no") as raised:
        _create(
            call,
            cloud_properties=_with_pools({"name": "web", "port": 80}, {"name": "tcp", "port": 81}),
        )
    assert "Cleaning up failed" not in raised.value.message
    events = _lb(call).events
    assert ("delete", "pool-web", "m-1") in events
    assert _lb(call).members == {}
    assert call.cloud.compute.deleted == ["s-1"]
    assert call.cloud.network.deleted == ["p-1"]


def test_an_add_cut_short_is_looked_up_and_its_member_removed():
    """A lost answer or a SIGTERM in the middle of the POST: the member may exist."""
    call = _call(WEB)
    _lb(call).add_errors["web"] = KeyboardInterrupt()
    _lb(call).made_before_error = True
    with pytest.raises(KeyboardInterrupt):
        _create(call, cloud_properties=_with_pools({"name": "web", "port": 80}))
    assert ("find", "pool-web", "10.0.0.5") in _lb(call).events
    assert _lb(call).members == {}
    assert call.cloud.compute.deleted == ["s-1"]


def test_a_signal_during_the_member_create_is_held_until_the_member_is_known():
    """SIGTERM (KeyboardInterrupt, see cli.py) in the middle of the POST: Octavia may make
    the member after an undo that looked for it at once, so the signal waits for the
    answer, and the member is removed with the rest."""

    class Interrupting(FakeLoadBalancer):
        def add_member(self, pool, **request):
            os.kill(os.getpid(), signal.SIGINT)  # arrives while the request is in flight
            return super().add_member(pool, **request)

    call = _call()
    cast(PoolCloud, call.cloud).load_balancer = Interrupting(pools={"web": [WEB]})
    with pytest.raises(KeyboardInterrupt):
        _create(call, cloud_properties=_with_pools({"name": "web", "port": 80}))
    assert ("delete", "pool-web", "m-1") in _lb(call).events
    assert ("find", "pool-web", "10.0.0.5") not in _lb(call).events  # it was known
    assert _lb(call).members == {}
    assert call.cloud.compute.deleted == ["s-1"]


def test_a_failed_metadata_update_removes_the_members():
    call = _call(WEB)
    call.cloud.compute.metadata_error = CloudError("Nova is down")
    with pytest.raises(CloudError, match="Nova is down"):
        _create(call, cloud_properties=_with_pools({"name": "web", "port": 80}))
    assert _lb(call).members == {}
    assert call.cloud.compute.deleted == ["s-1"]


def test_a_member_that_cannot_be_removed_is_named():
    call = _call(WEB, TCP)
    _lb(call).add_errors["tcp"] = CloudError("no")
    _lb(call).delete_error = CloudError("Octavia is down")
    with pytest.raises(CloudError, match=r"left behind.*member pool-web/m-1 \(Octavia is down\)"):
        _create(
            call,
            cloud_properties=_with_pools({"name": "web", "port": 80}, {"name": "tcp", "port": 81}),
        )
    assert call.cloud.compute.deleted == ["s-1"]  # the rest still goes


def test_a_signal_while_joining_a_pool_removes_everything():
    """cli.py turns SIGTERM into KeyboardInterrupt; here it arrives during the wait."""
    call = _call(WEB)

    class Interrupting(FakeLoadBalancer):
        def wait_until_active(self, loadbalancer_id, *, timeout, started=None):
            super().wait_until_active(loadbalancer_id, timeout=timeout, started=started)
            raise KeyboardInterrupt

    cast(PoolCloud, call.cloud).load_balancer = Interrupting(pools={"web": [WEB]})
    with pytest.raises(KeyboardInterrupt):
        _create(call, cloud_properties=_with_pools({"name": "web", "port": 80}))
    assert _lb(call).members == {}
    assert call.cloud.compute.deleted == ["s-1"]
    assert call.cloud.network.deleted == ["p-1"]


# --- delete_vm -----------------------------------------------------------------------
def _events_of_delete(call: FakeCall, server_id: str) -> list[tuple[str, ...]]:
    events: list[tuple[str, ...]] = []
    balancer = _lb(call)
    compute = call.cloud.compute
    network = call.cloud.network
    original_member, original_port, original_server = (
        balancer.delete_member,
        network.delete_port,
        compute.delete_server,
    )

    def member(pool_id, member_id):
        events.append(("member", pool_id, member_id))
        return original_member(pool_id, member_id)

    def port(port_id):
        events.append(("port", port_id))
        return original_port(port_id)

    def server(vm_id):
        events.append(("server", vm_id))
        return original_server(vm_id)

    balancer.delete_member, network.delete_port, compute.delete_server = member, port, server  # type: ignore[method-assign]
    vms.delete_vm(cast(Any, call), server_id)
    return events


def test_delete_vm_removes_recorded_members_first_also_those_of_the_reference_cpis():
    call = _call()
    call.cloud.compute.metadata["s-1"] = {
        "lbaas_pool_0": "pool-a/m-a",  # as a reference CPI may have written it
        "lbaas_pool_1": "pool-b/m-b",
        "director_uuid": "d",
    }
    events = _events_of_delete(call, "s-1")
    assert events == [
        ("member", "pool-a", "m-a"),
        ("member", "pool-b", "m-b"),
        ("port", "nova-port"),
        ("server", "s-1"),
    ]


def test_delete_vm_skips_a_membership_it_cannot_read(caplog):
    call = _call()
    call.cloud.compute.metadata["s-1"] = {"lbaas_pool_1": "garbage", "lbaas_pool_2": "p/m"}
    events = _events_of_delete(call, "s-1")
    assert events[0] == ("member", "p", "m")
    assert "Ignoring server metadata lbaas_pool_1='garbage'" in caplog.text


def test_a_failed_member_removal_keeps_the_server_for_the_next_delete_vm():
    call = _call()
    call.cloud.compute.metadata["s-1"] = {"lbaas_pool_1": "p/m"}
    _lb(call).delete_error = CloudError("Octavia is down")
    with pytest.raises(CloudError, match="Octavia is down"):
        vms.delete_vm(cast(Any, call), "s-1")
    assert call.cloud.compute.deleted == []
    assert call.cloud.network.deleted == []


def test_delete_vm_of_a_missing_server_sends_nothing_else():
    call = _call()
    call.cloud.compute.missing.add("s-1")
    vms.delete_vm(cast(Any, call), "s-1")
    assert call.cloud.compute.deleted == []
    assert _lb(call).events == []
