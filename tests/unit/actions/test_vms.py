"""create_vm's orchestration with fake adapters: what is cleaned up on each failure, and
which errors the director may retry. The real cloud behaviour is in tests/integration."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from dataclasses import dataclass, field, replace
from typing import Any, cast

import pytest

from bosh_openstack_cpi import vm_properties
from bosh_openstack_cpi.actions import vms
from bosh_openstack_cpi.config import CpiConfig, OpenStackConfig
from bosh_openstack_cpi.flavors import Flavor
from bosh_openstack_cpi.openstack.compute import Server, ServerCreateRefused, ServerCreateUnanswered
from bosh_openstack_cpi.openstack.network import FloatingIp, Port, SecurityGroup
from bosh_openstack_cpi.protocol.errors import CloudError, VMCreationFailed, VMNotFound


class FakeCompute:
    def __init__(self) -> None:
        self.flavor_list = [Flavor("f-1", "m1.small", 1, 2048, 20, 0)]
        self.create_outcomes: list[Any] = []  # id, or an exception, per create
        self.active_outcomes: list[Any] = []  # Server, or an exception, per wait
        self.named: list[Server] = []
        self.bodies: list[dict[str, Any]] = []
        self.existing: set[str] = set()
        self.deleted: list[str] = []
        self.delete_error: CloudError | None = None
        self.network = FakeNetwork()  # the cloud's, to see what happened before a wait
        self.associated_before_wait: list[int] = []
        self.metadata: dict[str, dict[str, str]] = {}  # server id -> metadata
        self.missing: set[str] = set()  # ids get_server does not find
        self.metadata_error: CloudError | None = None

    def flavors(self):
        return self.flavor_list

    def create_server(self, body, *, scheduler_hints=None, microversion=None):
        self.bodies.append({"server": body, "hints": scheduler_hints, "microversion": microversion})
        outcome = self.create_outcomes.pop(0) if self.create_outcomes else f"s-{len(self.bodies)}"
        if isinstance(outcome, Exception):
            raise outcome
        self.existing.add(outcome)
        return outcome

    def wait_until_active(self, server_id, *, timeout, max_interval, started=None):
        assert started is not None and started <= time.monotonic()  # paces the polls
        self.associated_before_wait.append(len(self.network.associated))
        outcome = self.active_outcomes.pop(0) if self.active_outcomes else None
        if isinstance(outcome, Exception):
            raise outcome
        return outcome or Server(server_id, "vm", "ACTIVE", availability_zone="z1")

    def servers_named(self, name):
        return self.named

    def get_server(self, server_id):
        if server_id in self.missing:
            return None
        return Server(server_id, "vm", "ACTIVE", metadata=self.metadata.get(server_id, {}))

    def update_server_metadata(self, server_id, metadata):
        if self.metadata_error:
            raise self.metadata_error
        self.metadata.setdefault(server_id, {}).update(metadata)

    def delete_server(self, server_id):
        if self.delete_error:
            raise self.delete_error
        self.deleted.append(server_id)
        found = server_id in self.existing
        self.existing.discard(server_id)
        return found

    def wait_until_gone(self, server_id, *, timeout, max_interval):
        pass


class FakeNetwork:
    def __init__(self) -> None:
        self.ports: dict[str, Port] = {}
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.port_error: Exception | None = None
        self.associated: list[tuple[str, str]] = []
        self.disassociated: list[str] = []
        self.associate_error: CloudError | None = None
        self.floating = FloatingIp("fip-1", "1.2.3.4", None, "public")
        self.vrrp_ports: list[Port] = []

    def security_groups(self, wanted):
        return [SecurityGroup(f"id-{w}", w) for w in wanted]

    def create_port(self, **request):
        if self.port_error and len(self.created) >= 1:
            raise self.port_error
        self.created.append(request)
        port = Port(f"p-{len(self.created)}", f"fa:16:3e:00:00:0{len(self.created)}")
        self.ports[port.id] = port
        return port

    def delete_port(self, port_id):
        self.deleted.append(port_id)
        return self.ports.pop(port_id, None) is not None

    def floating_ip(self, address):
        if address != self.floating.address:
            raise VMCreationFailed(f"Floating IP '{address}' not allocated")
        return self.floating

    def associate_floating_ip(self, floating_ip, port_id):
        if self.associate_error:
            raise self.associate_error
        self.associated.append((floating_ip.id, port_id))

    def disassociate_floating_ip(self, floating_ip):
        self.disassociated.append(floating_ip.id)

    def server_ports(self, server_id):
        return [
            Port(
                "nova-port", "fa:16:3e:99:99:99", network_id="44444444-4444-4444-8444-444444444444"
            )
        ]

    def ports_with_ip(self, ip, network_id=None):
        return self.vrrp_ports

    def missing_networks(self, ids):
        return [i for i in ids if i.startswith("55555555")]  # the "missing" network


@dataclass
class FakeVolume:
    zones: dict[str, str] = field(default_factory=dict)
    looked_up: list[str] = field(default_factory=list)

    def get_volume(self, volume_id):
        self.looked_up.append(volume_id)
        if volume_id not in self.zones:
            return None
        return type("VolumeState", (), {"availability_zone": self.zones[volume_id]})()


@dataclass
class FakeCloud:
    compute: FakeCompute = field(default_factory=FakeCompute)
    network: FakeNetwork = field(default_factory=FakeNetwork)
    volume: FakeVolume = field(default_factory=FakeVolume)

    def __post_init__(self) -> None:
        self.compute.network = self.network


@dataclass
class FakeCall:
    openstack: OpenStackConfig = field(
        default_factory=lambda: OpenStackConfig(
            auth_url="http://k/v3",
            default_key_name="bosh",
            default_security_groups=("bosh",),
            state_timeout=5,
            wait_resource_poll_interval=0.01,
        )
    )
    cloud: FakeCloud = field(default_factory=FakeCloud)
    api_version: int = 2
    stemcell_api_version: int = 3
    director_uuid: str = "director-1"
    agent: dict[str, Any] = field(default_factory=lambda: {"mbus": "nats://m", "ntp": []})

    @property
    def config(self) -> CpiConfig:
        return CpiConfig(openstack=self.openstack, agent=self.agent)


MANUAL = {
    "private": {
        "type": "manual",
        "ip": "10.0.0.5",
        "netmask": "255.255.255.0",
        "gateway": "10.0.0.1",
        "dns": ["10.0.0.2"],
        "default": ["dns", "gateway"],
        "cloud_properties": {"net_id": "11111111-1111-4111-8111-111111111111"},
    }
}
WITH_VIP = {**MANUAL, "public": {"type": "vip", "ip": "1.2.3.4", "cloud_properties": {}}}


def _create(call, networks=MANUAL, cloud_properties=None, **kwargs):
    return vms.create_vm(
        call,
        kwargs.pop("agent_id", "agent-1"),
        kwargs.pop("stemcell", "33333333-3333-4333-8333-333333333333 light"),
        cloud_properties or {"instance_type": "m1.small"},
        networks,
        kwargs.pop("disk_cids", []),
        kwargs.pop("env", {"bosh": {"group": "g"}}),
    )


def _user_data(call) -> dict[str, Any]:
    settings: dict[str, Any] = json.loads(
        base64.b64decode(call.cloud.compute.bodies[-1]["server"]["user_data"])
    )
    return settings


def test_manual_network_vm_and_its_request(monkeypatch):
    call = FakeCall()
    vm_cid, networks = _create(call)
    assert vm_cid == "s-1"
    assert networks["private"]["mac"] == "fa:16:3e:00:00:01"
    assert networks["private"]["use_dhcp"] is True
    body = call.cloud.compute.bodies[0]["server"]
    assert body["imageRef"] == "33333333-3333-4333-8333-333333333333"
    assert body["flavorRef"] == "f-1"
    assert body["key_name"] == "bosh"
    assert body["networks"] == [{"port": "p-1"}]
    assert body["metadata"] == {"director_uuid": "director-1"}
    assert body["name"].startswith("vm-")
    assert "security_groups" not in body  # the port carries them
    assert "config_drive" not in body and "availability_zone" not in body
    port_request = call.cloud.network.created[0]
    assert port_request["security_group_ids"] == ["id-bosh"]
    assert port_request["description"] == "bosh-openstack-cpi director_uuid=director-1"
    settings = _user_data(call)
    assert settings["agent_id"] == "agent-1"
    assert settings["vm"]["name"] == settings["server"]["name"] == body["name"]
    assert settings["networks"] == networks
    assert settings["env"] == {"bosh": {"group": "g"}}
    assert settings["mbus"] == "nats://m"


def test_api_version_1_answers_the_cid_only():
    assert _create(FakeCall(api_version=1)) == "s-1"


def test_api_version_3_answers_as_2():
    """v3 changes only create_stemcell; the director reads create_vm's answer as in v2."""
    vm_cid, networks = _create(FakeCall(api_version=3))
    assert vm_cid == "s-1"
    assert networks["private"]["mac"]


def test_dynamic_network_gets_security_groups_and_config_drive():
    call = FakeCall(openstack=replace(FakeCall().openstack, config_drive="cdrom"))
    _create(
        call,
        {
            "d": {
                "type": "dynamic",
                "cloud_properties": {"net_id": "44444444-4444-4444-8444-444444444444"},
            }
        },
    )
    body = call.cloud.compute.bodies[0]["server"]
    assert body["networks"] == [{"uuid": "44444444-4444-4444-8444-444444444444"}]
    assert body["security_groups"] == [{"name": "id-bosh"}]
    assert body["config_drive"] is True


def test_boot_from_volume_with_a_volume_type_uses_microversion_2_67():
    call = FakeCall()
    _create(
        call,
        {"d": {"type": "dynamic", "cloud_properties": {}}},
        {
            "instance_type": "m1.small",
            "boot_from_volume": True,
            "root_disk": {"size": 30, "type": "ssd"},
        },
    )
    sent = call.cloud.compute.bodies[0]
    assert sent["microversion"] == "2.67"
    assert "imageRef" not in sent["server"]
    assert sent["server"]["networks"] == "auto"
    (mapping,) = sent["server"]["block_device_mapping_v2"]
    assert mapping["volume_size"] == 30 and mapping["volume_type"] == "ssd"
    assert mapping["delete_on_termination"] is True and mapping["source_type"] == "image"


def test_too_large_user_data_fails_before_anything_is_created():
    call = FakeCall()
    with pytest.raises(CloudError, match="more than the 65535 bytes"):
        _create(call, env={"bosh": {"blob": "x" * 70000}})
    assert call.cloud.network.created == [] and call.cloud.compute.bodies == []


def test_unallocated_floating_ip_fails_before_anything_is_created():
    call = FakeCall()
    networks = {**MANUAL, "public": {"type": "vip", "ip": "255.255.255.255"}}
    with pytest.raises(VMCreationFailed, match="not allocated") as raised:
        _create(call, networks)
    assert raised.value.ok_to_retry is False
    assert call.cloud.network.created == []


def test_floating_ip_goes_on_the_gateway_port_while_the_server_builds():
    call = FakeCall()
    _create(call, WITH_VIP)
    assert call.cloud.network.associated == [("fip-1", "p-1")]
    assert call.cloud.compute.associated_before_wait == [1]


def test_a_floating_ip_held_by_another_vm_moves_only_once_the_server_is_active():
    call = FakeCall()
    call.cloud.network.floating = FloatingIp("fip-1", "1.2.3.4", "old-port", "public")
    _create(call, WITH_VIP)
    assert call.cloud.network.associated == [("fip-1", "p-1")]
    assert call.cloud.compute.associated_before_wait == [0]


def test_a_failed_build_leaves_a_floating_ip_held_by_another_vm_where_it_was():
    call = FakeCall()
    call.cloud.network.floating = FloatingIp("fip-1", "1.2.3.4", "old-port", "public")
    call.cloud.compute.active_outcomes = [CloudError("state ERROR: No valid host")]
    with pytest.raises(VMCreationFailed):
        _create(call, WITH_VIP)
    assert call.cloud.network.associated == []
    assert call.cloud.network.disassociated == []


def test_floating_ip_is_associated_once_when_a_second_zone_is_tried():
    call = FakeCall(openstack=replace(FakeCall().openstack, ignore_server_availability_zone=True))
    call.cloud.compute.active_outcomes = [CloudError("state ERROR: No valid host")]
    vm_cid, _ = _create(
        call,
        WITH_VIP,
        cloud_properties={"instance_type": "m1.small", "availability_zones": ["z1", "z2"]},
    )
    assert vm_cid == "s-2"
    assert call.cloud.network.associated == [("fip-1", "p-1")]
    assert call.cloud.network.disassociated == []


def test_floating_ip_of_a_dynamic_network_goes_on_novas_port():
    call = FakeCall()
    networks = {
        "d": {
            "type": "dynamic",
            "cloud_properties": {"net_id": "44444444-4444-4444-8444-444444444444"},
        },
        "public": {"type": "vip", "ip": "1.2.3.4"},
    }
    _create(call, networks)
    assert call.cloud.network.associated == [("fip-1", "nova-port")]
    assert call.cloud.compute.associated_before_wait == [0]  # Nova's port: after ACTIVE


def test_a_server_that_fails_to_boot_is_removed_with_its_ports_and_may_be_retried():
    call = FakeCall()
    call.cloud.compute.active_outcomes = [CloudError("Failed waiting: state ERROR: No valid host")]
    with pytest.raises(VMCreationFailed, match=r"did not become ACTIVE.*No valid host") as raised:
        _create(call)
    assert raised.value.ok_to_retry is True
    assert call.cloud.compute.deleted == ["s-1"]
    assert call.cloud.network.deleted == ["p-1"]


def test_a_failed_floating_ip_association_removes_everything_and_may_be_retried():
    call = FakeCall()
    call.cloud.network.associate_error = CloudError("Neutron said no")
    with pytest.raises(VMCreationFailed, match="Neutron said no") as raised:
        _create(call, WITH_VIP)
    assert raised.value.ok_to_retry is True
    assert call.cloud.network.disassociated == ["fip-1"]
    assert call.cloud.compute.deleted == ["s-1"]
    assert call.cloud.network.deleted == ["p-1"]


def test_what_could_not_be_removed_is_named_and_not_retried():
    call = FakeCall()
    call.cloud.compute.active_outcomes = [CloudError("state ERROR")]
    call.cloud.compute.delete_error = CloudError("Nova is down")
    with pytest.raises(VMCreationFailed) as raised:
        _create(call)
    assert raised.value.ok_to_retry is False
    assert "left behind" in raised.value.message
    assert "server s-1 (Nova is down)" in raised.value.message
    assert call.cloud.network.deleted == ["p-1"]


def test_a_refused_create_removes_the_ports_and_is_not_retried():
    call = FakeCall()
    call.cloud.compute.create_outcomes = [
        ServerCreateRefused(
            "Compute API: create failed, HTTP 400: Invalid key_name provided.",
            status=400,
            details="Invalid key_name provided.",
        )
    ]
    with pytest.raises(CloudError, match="default_key_name") as raised:
        _create(call)
    assert raised.value.ok_to_retry is False
    assert call.cloud.network.deleted == ["p-1"]


def test_unknown_network_ids_are_named_after_novas_refusal():
    call = FakeCall()
    call.cloud.compute.create_outcomes = [
        ServerCreateRefused(
            "HTTP 400",
            status=400,
            details="Network 55555555-5555-4555-8555-555555555555 could not be found.",
        )
    ]
    with pytest.raises(
        VMCreationFailed,
        match=r"'55555555-5555-4555-8555-555555555555'\. Make sure you do not use subnet IDs",
    ):
        _create(
            call,
            {
                "d": {
                    "type": "dynamic",
                    "cloud_properties": {"net_id": "55555555-5555-4555-8555-555555555555"},
                }
            },
        )


def test_a_second_port_failure_removes_the_first():
    call = FakeCall(openstack=replace(FakeCall().openstack, use_dhcp=False, config_drive="cdrom"))
    call.cloud.network.port_error = CloudError("IP in use")
    networks = {
        **MANUAL,
        "second": {
            **MANUAL["private"],
            "ip": "10.1.0.5",
            "cloud_properties": {"net_id": "22222222-2222-4222-8222-222222222222"},
            "default": [],
        },
    }
    with pytest.raises(CloudError, match="IP in use"):
        _create(call, networks)
    assert call.cloud.network.deleted == ["p-1"]
    assert call.cloud.compute.bodies == []


def test_lost_answer_adopts_the_server_nova_made():
    call = FakeCall()
    call.cloud.compute.create_outcomes = [ServerCreateUnanswered("no answer", settle_seconds=1)]
    call.cloud.compute.named = [Server("adopted", "vm-x", "BUILD")]
    vm_cid, _ = _create(call)
    assert vm_cid == "adopted"
    assert len(call.cloud.compute.bodies) == 1  # never a second create


def test_lost_answer_without_a_server_is_retryable_after_cleanup():
    call = FakeCall()
    call.cloud.compute.create_outcomes = [ServerCreateUnanswered("no answer", settle_seconds=0.05)]
    with pytest.raises(VMCreationFailed, match="none was created") as raised:
        _create(call)
    assert raised.value.ok_to_retry is True
    assert call.cloud.network.deleted == ["p-1"]
    assert len(call.cloud.compute.bodies) == 1


def test_multiple_azs_are_tried_in_turn_with_the_same_ports():
    call = FakeCall(openstack=replace(FakeCall().openstack, ignore_server_availability_zone=True))
    call.cloud.compute.active_outcomes = [CloudError("state ERROR: No valid host")]
    vm_cid, _ = _create(
        call, cloud_properties={"instance_type": "m1.small", "availability_zones": ["z1", "z2"]}
    )
    zones = [b["server"]["availability_zone"] for b in call.cloud.compute.bodies]
    assert sorted(zones) == ["z1", "z2"]
    assert call.cloud.compute.deleted == ["s-1"]
    assert vm_cid == "s-2"
    assert len(call.cloud.network.created) == 1 and call.cloud.network.deleted == []


def test_vrrp_address_goes_on_the_gateway_port_when_its_port_exists():
    call = FakeCall()
    call.cloud.network.vrrp_ports = [Port("vrrp", "m")]
    _create(
        call, cloud_properties={"instance_type": "m1.small", "allowed_address_pairs": "10.0.0.9"}
    )
    assert call.cloud.network.created[0]["allowed_address_pairs"] == ["10.0.0.9"]


def test_vrrp_without_its_port_fails_before_anything_is_created():
    call = FakeCall()
    with pytest.raises(CloudError, match=r"VRRP port with ip '10\.0\.0\.9' does not exist"):
        _create(
            call,
            cloud_properties={"instance_type": "m1.small", "allowed_address_pairs": "10.0.0.9"},
        )
    assert call.cloud.network.created == []


@pytest.mark.parametrize(
    ("vm_level", "network_level"),
    [({"vrrp_port_check": False}, {}), ({}, {"vrrp_port_check": False})],
)
def test_vrrp_check_is_skipped_when_the_vm_type_or_the_network_switches_it_off(
    vm_level, network_level
):
    call = FakeCall()
    net_id = "11111111-1111-4111-8111-111111111111"
    network = {**MANUAL["private"], "cloud_properties": {"net_id": net_id, **network_level}}
    _create(
        call,
        cloud_properties={
            "instance_type": "m1.small",
            "allowed_address_pairs": "10.0.0.9",
            **vm_level,
        },
        networks={"private": network},
    )
    assert call.cloud.network.created[0]["allowed_address_pairs"] == ["10.0.0.9"]


def test_a_vrrp_prefix_needs_no_reserved_port():
    call = FakeCall()
    _create(
        call, cloud_properties={"instance_type": "m1.small", "allowed_address_pairs": "10.0.0.0/24"}
    )
    assert call.cloud.network.created[0]["allowed_address_pairs"] == ["10.0.0.0/24"]


def test_agent_keys_the_cpi_writes_itself_are_named_in_a_warning(caplog):
    call = FakeCall(agent={"mbus": "nats://m", "env": {"x": 1}, "parallel": 5})
    with caplog.at_level("WARNING"):
        _create(call)
    assert "Ignoring agent properties env of the CPI config" in caplog.text
    assert _user_data(call)["parallel"] == 5
    assert _user_data(call)["env"] == {"bosh": {"group": "g"}}


def test_unknown_root_disk_keys_are_logged(caplog):
    call = FakeCall()
    with caplog.at_level("WARNING"):
        _create(call, cloud_properties={"instance_type": "m1.small", "root_disk": {"tier": 1}})
    assert "Ignoring unknown root_disk keys: tier" in caplog.text


def test_security_group_precedence():
    config = FakeCall().openstack
    plan = vm_properties.parse_networks(
        {"a": {"type": "dynamic", "cloud_properties": {"security_groups": ["net-sg"]}}}
    )
    typed = vm_properties.VmType("f", security_groups=("type-sg",))
    untyped = vm_properties.VmType("f")
    assert vms._picked_security_groups(typed, plan, config) == ("type-sg",)
    assert vms._picked_security_groups(untyped, plan, config) == ("net-sg",)
    bare = vm_properties.parse_networks({"a": {"type": "dynamic"}})
    assert vms._picked_security_groups(untyped, bare, config) == ("bosh",)


@pytest.mark.parametrize(
    ("metadata", "name"),
    [
        ({"name": "zookeeper/abc", "job": "zookeeper", "index": 0}, "zookeeper/abc"),
        ({"job": "zookeeper", "index": 0}, "zookeeper/0"),
        ({"compiling": "ruby"}, "compiling/ruby"),
        ({"deployment": "d"}, None),
        ({"name": "n" * 300}, "n" * 255),
    ],
)
def test_human_readable_names(metadata, name):
    assert vms.human_readable_name(metadata) == name


def test_set_vm_metadata_never_overwrites_the_director_uuid():
    calls: list[Any] = []

    class Compute:
        def update_server_metadata(self, vm_cid, metadata):
            calls.append(("metadata", metadata))

        def rename_server(self, vm_cid, name):
            calls.append(("rename", name))

    call = FakeCall(openstack=replace(FakeCall().openstack, human_readable_vm_names=True))
    call.cloud.compute = Compute()  # type: ignore[assignment]
    vms.set_vm_metadata(cast(Any, call), "s-1", {"director_uuid": "x", "job": "j", "index": 1})
    assert calls == [("metadata", {"job": "j", "index": "1"}), ("rename", "j/1")]


def test_reboot_of_a_missing_vm_is_vm_not_found():
    class Compute:
        def reboot_server(self, vm_cid):
            raise VMNotFound("gone")

    call = FakeCall()
    call.cloud.compute = Compute()  # type: ignore[assignment]
    with pytest.raises(VMNotFound):
        vms.reboot_vm(cast(Any, call), "s-1")


def test_the_vm_goes_to_the_zone_of_its_disks():
    call = FakeCall()
    call.cloud.volume.zones = {"d-1": "z2", "d-2": "z2"}
    _create(call, disk_cids=["d-1", "d-2"])
    assert call.cloud.compute.bodies[0]["server"]["availability_zone"] == "z2"


def test_the_vm_types_zone_wins_over_its_disks_with_a_warning(caplog):
    """As the reference CPI, which never looked at the disks (Nova's default
    cross_az_attach lets them attach)."""
    call = FakeCall()
    call.cloud.volume.zones = {"d-1": "z1"}
    properties = {"instance_type": "m1.small", "availability_zone": "z2"}
    with caplog.at_level("WARNING"):
        _create(call, cloud_properties=properties, disk_cids=["d-1"])
    assert call.cloud.compute.bodies[0]["server"]["availability_zone"] == "z2"
    assert "asks for zone 'z2' but disk 'd-1' is in zone 'z1'" in caplog.text


def test_disks_in_several_zones_leave_the_choice_to_nova_with_a_warning(caplog):
    call = FakeCall()
    call.cloud.volume.zones = {"d-1": "z1", "d-2": "z2"}
    with caplog.at_level("WARNING"):
        _create(call, disk_cids=["d-1", "d-2"])
    assert "availability_zone" not in call.cloud.compute.bodies[0]["server"]
    assert "disk 'd-1' is in zone 'z1', disk 'd-2' is in zone 'z2'" in caplog.text


def test_disks_in_the_vm_types_zone_need_no_warning(caplog):
    call = FakeCall()
    call.cloud.volume.zones = {"d-1": "z2"}
    properties = {"instance_type": "m1.small", "availability_zone": "z2"}
    with caplog.at_level("WARNING"):
        _create(call, cloud_properties=properties, disk_cids=["d-1"])
    assert "zone" not in caplog.text


def test_a_missing_disk_is_named():
    with pytest.raises(CloudError, match="Persistent disk 'gone'"):
        _create(FakeCall(), disk_cids=["gone"])


def test_disks_are_not_looked_at_with_ignore_server_availability_zone():
    call = FakeCall(openstack=replace(FakeCall().openstack, ignore_server_availability_zone=True))
    _create(call, disk_cids=["d-1"])
    assert call.cloud.volume.looked_up == []
    assert "availability_zone" not in call.cloud.compute.bodies[0]["server"]


def test_delete_vm_removes_the_ports_before_the_server():
    """Only while the server exists are its ports found by its id: a delete_vm stopped after
    the server went (SIGKILL, a lost answer) would leave them behind for good."""
    events: list[tuple[str, str]] = []

    class Compute(FakeCompute):
        def delete_server(self, server_id):
            events.append(("server", server_id))
            return True

    class Network(FakeNetwork):
        def delete_port(self, port_id):
            events.append(("port", port_id))
            return True

    call = FakeCall(cloud=FakeCloud(compute=Compute(), network=Network()))
    vms.delete_vm(cast(Any, call), "s-1")
    assert events == [("port", "nova-port"), ("server", "s-1")]


def test_a_signal_during_the_port_create_still_removes_the_port():
    """SIGTERM (KeyboardInterrupt, see cli.py) is held back until the port is known."""

    class Network(FakeNetwork):
        def create_port(self, **request):
            os.kill(os.getpid(), signal.SIGINT)  # arrives while the request is in flight
            return super().create_port(**request)

    call = FakeCall(cloud=FakeCloud(network=Network()))
    with pytest.raises(KeyboardInterrupt):
        _create(call)
    assert call.cloud.network.deleted == ["p-1"]
    assert call.cloud.compute.bodies == []


def test_a_signal_during_the_server_create_still_removes_server_and_ports():
    """Raised in the middle of POST /servers, the interrupt lost the server Nova built."""

    class Compute(FakeCompute):
        def create_server(self, body, *, scheduler_hints=None, microversion=None):
            os.kill(os.getpid(), signal.SIGINT)
            return super().create_server(
                body, scheduler_hints=scheduler_hints, microversion=microversion
            )

    call = FakeCall(cloud=FakeCloud(compute=Compute()))
    with pytest.raises(KeyboardInterrupt):
        _create(call)
    assert call.cloud.compute.deleted == ["s-1"]
    assert call.cloud.network.deleted == ["p-1"]


@pytest.mark.parametrize(
    ("description", "age", "servers", "at_work"),
    [
        ("bosh-openstack-cpi director_uuid=d", 5, [], True),  # its server is still to come
        ("bosh-openstack-cpi director_uuid=d", 600, ["s"], True),  # Nova has yet to bind it
        ("bosh-openstack-cpi director_uuid=d", 600, [], False),  # left by a killed create_vm
        ("", 5, [], False),  # not made by create_vm (the reference CPI's, an operator's)
    ],
)
def test_an_unbound_port_holding_the_ip_is_a_leftover_unless_a_create_vm_is_at_work(
    description, age, servers, at_work
):
    call = FakeCall()
    call.cloud.compute.named = servers
    made = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - age))
    port = Port("p", "m", "DOWN", description=description, name="vm-other", created_at=made)
    creation = vms._Creation(cast(Any, call), "vm-mine", vm_properties.parse_networks(MANUAL))
    assert creation._building(port) is at_work
