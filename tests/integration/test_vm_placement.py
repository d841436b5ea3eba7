"""Where and how a VM is placed: zones, disk locality, several zones, scheduler hints,
boot from volume and root disks, flavors (reference scenarios 2, 5, 9-12, 15, 24 and
calculate_vm_cloud_properties)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration import vm_support as vs
from tools.cpi_process import CpiProcess


@pytest.fixture
def disk_in(project_sdk: Any) -> Iterator[Callable[[str], str]]:
    """Volumes standing for existing persistent disks, in a given zone; removed afterwards."""
    made: list[Any] = []

    def make(zone: str) -> str:
        volume = project_sdk.block_storage.create_volume(
            size=1, availability_zone=zone, name=vs.unique("disk-locality")
        )
        made.append(volume)
        project_sdk.block_storage.wait_for_status(volume, "available", wait=60, interval=0.3)
        return str(volume.id)

    yield make
    for volume in made:
        project_sdk.block_storage.delete_volume(volume, ignore_missing=True)


def _zone(admin: Any, vm_cid: str) -> str:
    return str(vs.server(admin, vm_cid)["OS-EXT-AZ:availability_zone"])


def test_vm_goes_to_the_zone_of_its_disks(
    cpi: CpiProcess,
    cloud: dict[str, Any],
    admin: Any,
    disk_in: Callable[[str], str],
    leak_check: None,
):
    """Scenarios 2 and 5: the disks' zone decides when the VM type names none."""
    zone = cloud["resources"]["availability_zones"][-1]
    disk = disk_in(zone)
    with vs.vm(cpi, cloud, {"private": vs.manual_network(cloud)}, disk_cids=[disk]) as (
        vm_cid,
        _,
        _,
    ):
        assert _zone(admin, vm_cid) == zone


def test_the_vm_types_zone_wins_over_its_disks_and_the_disk_attaches(
    cpi: CpiProcess,
    cloud: dict[str, Any],
    admin: Any,
    disk_in: Callable[[str], str],
    leak_check: None,
):
    """As the reference CPI: the VM goes to the VM type's zone, with a warning naming both
    zones, and Nova (default cross_az_attach) attaches the disk from the other zone."""
    first, second = cloud["resources"]["availability_zones"][:2]
    disk = disk_in(second)
    properties = {**vs.SMALL, "availability_zone": first}
    networks = {"private": vs.manual_network(cloud)}
    with vs.vm(cpi, cloud, networks, properties, disk_cids=[disk]) as (vm_cid, _, created):
        assert _zone(admin, vm_cid) == first
        assert f"asks for zone '{first}' but disk '{disk}' is in zone '{second}'" in (
            created.stderr
        )
        attached = cpi.call("attach_disk", vm_cid, disk)
        assert attached.error is None, attached.error
        detached = cpi.call("detach_disk", vm_cid, disk)
        assert detached.error is None, detached.error


def test_ignore_server_availability_zone_lets_the_vm_type_decide(
    cpi_for: Callable[..., CpiProcess],
    cloud: dict[str, Any],
    admin: Any,
    disk_in: Callable[[str], str],
    leak_check: None,
):
    first, second = cloud["resources"]["availability_zones"][:2]
    cpi = cpi_for(ignore_server_availability_zone=True)
    properties = {**vs.SMALL, "availability_zone": first}
    networks = {"private": vs.manual_network(cloud)}
    with vs.vm(cpi, cloud, networks, properties, disk_cids=[disk_in(second)]) as (vm_cid, _, _):
        assert _zone(admin, vm_cid) == first


def test_missing_disk_is_named(cpi: CpiProcess, cloud: dict[str, Any], leak_check: None):
    missing = "00000000-0000-0000-0000-00000000d15c"
    result = vs.create(cpi, cloud, {"private": vs.manual_network(cloud)}, disk_cids=[missing])
    assert result.error is not None
    assert f"Persistent disk '{missing}'" in result.error["message"]


def test_several_zones_try_the_next_when_one_fails(
    cpi_for: Callable[..., CpiProcess], cloud: dict[str, Any], admin: Any, leak_check: None
):
    """availability_zones: a zone Nova refuses is skipped, the VM lands in the other."""
    zone = cloud["resources"]["availability_zones"][-1]
    cpi = cpi_for(ignore_server_availability_zone=True)
    properties = {**vs.SMALL, "availability_zones": ["no-such-zone", zone]}
    for _ in range(2):  # the order is random: both orders end in the good zone
        with vs.vm(cpi, cloud, {"private": vs.manual_network(cloud)}, properties) as (vm_cid, _, _):
            assert _zone(admin, vm_cid) == zone


def test_several_zones_need_ignore_server_availability_zone(cpi: CpiProcess, cloud: dict[str, Any]):
    properties = {**vs.SMALL, "availability_zones": cloud["resources"]["availability_zones"]}
    result = vs.create(cpi, cloud, {"private": vs.manual_network(cloud)}, properties)
    assert result.error is not None
    assert "ignore_server_availability_zone" in result.error["message"]


def test_unknown_zone_fails_and_leaves_nothing(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, director_uuid: str, leak_check: None
):
    """Scenario 24."""
    properties = {**vs.SMALL, "availability_zone": "no-such-zone"}
    result = vs.create(cpi, cloud, {"private": vs.manual_network(cloud)}, properties)
    assert result.error is not None
    assert (
        "no-such-zone" in result.error["message"]
        or "availability zone" in result.error["message"].lower()
    )
    assert vs.cpi_ports(admin, director_uuid) == []


def test_scheduler_hints_reach_nova(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, project_sdk: Any, leak_check: None
):
    group = project_sdk.compute.create_server_group(
        name=vs.unique("bosh-anti-affinity"), policies=["anti-affinity"]
    )
    try:
        properties = {**vs.SMALL, "scheduler_hints": {"group": group.id}}
        with vs.vm(cpi, cloud, {"private": vs.manual_network(cloud)}, properties) as (vm_cid, _, _):
            assert vm_cid in project_sdk.compute.get_server_group(group.id).member_ids
    finally:
        project_sdk.compute.delete_server_group(group)


@pytest.mark.parametrize("where", ["config", "vm_type"])
def test_boot_from_volume(
    cpi_for: Callable[..., CpiProcess],
    cloud: dict[str, Any],
    admin: Any,
    leak_check: None,
    where: str,
):
    """Scenarios 9 and 10: one volume, at /dev/vda, removed with the VM."""
    if where == "config":
        cpi, properties = cpi_for(boot_from_volume=True), vs.SMALL
    else:
        cpi, properties = cpi_for(), {**vs.SMALL, "boot_from_volume": True}
    with vs.vm(cpi, cloud, {"private": vs.manual_network(cloud)}, properties) as (vm_cid, _, _):
        (attachment,) = list(admin.compute.volume_attachments(vm_cid))
        assert attachment.device == "/dev/vda"
        volume = admin.block_storage.get_volume(attachment.volume_id)
        assert volume.size == 20  # m1.small's root disk
        assert volume.is_bootable
        assert not vs.server(admin, vm_cid)["image"]  # no image: the volume boots
    vs.wait_gone(lambda: vs.volume_or_none(admin, attachment.volume_id), "the boot volume")


def test_root_disk_size_and_type_of_the_boot_volume(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, leak_check: None
):
    """Scenario 11 with a zero-root-disk flavor, plus the new root_disk.type."""
    properties = {
        "instance_type": cloud["resources"]["flavors"]["no_root_disk"],
        "boot_from_volume": True,
        "root_disk": {"size": 2, "type": cloud["resources"]["volume_type"]},
    }
    with vs.vm(cpi, cloud, {"private": vs.manual_network(cloud)}, properties) as (vm_cid, _, _):
        (attachment,) = list(admin.compute.volume_attachments(vm_cid))
        volume = admin.block_storage.get_volume(attachment.volume_id)
        assert volume.size == 2
        assert volume.volume_type == cloud["resources"]["volume_type"]
    vs.wait_gone(lambda: vs.volume_or_none(admin, attachment.volume_id), "the boot volume")


def test_zero_root_disk_flavor_without_root_disk_size(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, director_uuid: str, leak_check: None
):
    """Scenario 12."""
    properties = {
        "instance_type": cloud["resources"]["flavors"]["no_root_disk"],
        "boot_from_volume": True,
    }
    result = vs.create(cpi, cloud, {"private": vs.manual_network(cloud)}, properties)
    assert result.error is not None
    assert result.error["type"] == "Bosh::Clouds::CloudError"
    assert "has a root disk size of 0" in result.error["message"]
    assert vs.cpi_ports(admin, director_uuid) == []


def test_flavor_with_ephemeral_disk_and_config_drive(
    cpi_for: Callable[..., CpiProcess], cloud: dict[str, Any], admin: Any, leak_check: None
):
    """Scenario 15 (config drive on a dynamic network); the ephemeral disk is announced."""
    cpi = cpi_for(config_drive="cdrom")
    properties = {"instance_type": cloud["resources"]["flavors"]["ephemeral"]}
    with vs.vm(cpi, cloud, {"default": vs.dynamic_network(cloud)}, properties) as (
        vm_cid,
        answered,
        _,
    ):
        record = vs.server(admin, vm_cid)
        assert record["config_drive"] in (True, "True", "true")
        settings = vs.user_data(admin, vm_cid)
        assert settings["disks"] == {
            "system": "/dev/sda",
            "ephemeral": "/dev/sdb",
            "persistent": {},
        }
        assert settings == vs.expected_settings(cloud, record["name"], answered, ephemeral=True)


def test_flavor_by_id_and_unknown_flavor(
    cpi: CpiProcess, cloud: dict[str, Any], admin: Any, project_sdk: Any, leak_check: None
):
    flavor = project_sdk.compute.find_flavor(cloud["resources"]["flavors"]["default"])
    properties = {"instance_type": flavor.id}
    with vs.vm(cpi, cloud, {"private": vs.manual_network(cloud)}, properties) as (vm_cid, _, _):
        assert vs.server(admin, vm_cid)["flavor"]["id"] == flavor.id
    result = vs.create(
        cpi, cloud, {"private": vs.manual_network(cloud)}, {"instance_type": "m9.none"}
    )
    assert result.error is not None
    assert "Flavor 'm9.none'" in result.error["message"]
    assert cloud["resources"]["flavors"]["default"] in result.error["message"]


def test_calculate_vm_cloud_properties(
    cpi_for: Callable[..., CpiProcess], cloud: dict[str, Any], project_sdk: Any
):
    cpi = cpi_for()
    small = cpi.call(
        "calculate_vm_cloud_properties", {"cpu": 1, "ram": 512, "ephemeral_disk_size": 2048}
    )
    assert small.error is None, small.error
    assert set(small.result) == {"instance_type"}
    flavor = project_sdk.compute.find_flavor(small.result["instance_type"])
    assert flavor.vcpus >= 1 and flavor.ram >= 512
    assert flavor.ephemeral >= 2 or flavor.disk >= 2 + 3

    huge = cpi_for(boot_from_volume=True).call(
        "calculate_vm_cloud_properties",
        {"cpu": 1, "ram": 512, "ephemeral_disk_size": 10 * 1024 * 1024},
    )
    assert huge.error is None, huge.error
    assert huge.result["root_disk"]["size"] >= 10000

    impossible = cpi.call(
        "calculate_vm_cloud_properties", {"cpu": 4096, "ram": 512, "ephemeral_disk_size": 1}
    )
    assert impossible.error is not None
    assert impossible.error["type"] == "Bosh::Clouds::CloudError"
    assert "Unable to meet requested VM requirements: 4096 CPU" in impossible.error["message"]
    assert cloud["resources"]["flavors"]["default"] in impossible.error["message"]

    missing = cpi.call("calculate_vm_cloud_properties", {"cpu": 1})
    assert missing.error is not None
    assert "'ram' is missing" in missing.error["message"]
