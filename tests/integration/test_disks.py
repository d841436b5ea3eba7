"""Persistent disk methods against the real cloud (Cinder and Nova), through the real
executable. Servers are booted with the SDK directly (one pair per module); every volume
the CPI makes carries the test's director UUID, and the leak check proves none is left.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.disk_support import (
    MISSING_ID,
    SafetyNet,
    attachments,
    boot_servers,
    calls,
    delete_servers,
    failed,
    logged,
    ok,
    safety_net,
    server_or_none,
    volume_or_none,
    wait_until,
)
from tests.integration.faults import faulty_cloud, proxied_auth_url
from tests.integration.leaks import resources_of_director
from tools import fault_proxy as fp
from tools.cpi_process import CpiProcess


@pytest.fixture(scope="module")
def servers(project_sdk: Any, cloud: dict[str, Any]) -> Iterator[dict[str, str]]:
    """One server with an ephemeral disk in z2, one without in z1."""
    mark = f"test-disks-module-{uuid.uuid4()}"
    ids = boot_servers(
        project_sdk,
        cloud,
        {"ephemeral_z2": ("ephemeral", "z2"), "plain_z1": ("default", "z1")},
        mark,
    )
    yield ids
    delete_servers(project_sdk, list(ids.values()))


@pytest.fixture
def made(project_sdk: Any) -> Iterator[SafetyNet]:
    yield from safety_net(project_sdk)


@pytest.fixture(scope="module")
def cinder_default_type(project_sdk: Any) -> str:
    name: str = project_sdk.block_storage.get("/types/default").json()["volume_type"]["name"]
    return name


@pytest.fixture
def unplaceable_type(admin: Any) -> Iterator[str]:
    """A public volume type no Cinder backend can hold: creating or retyping to it fails
    after Cinder accepted the request."""
    volume_type = admin.block_storage.create_type(
        name=f"test-nowhere-{uuid.uuid4().hex[:8]}",
        extra_specs={"volume_backend_name": "no-such-backend"},
    )
    yield volume_type.name
    admin.block_storage.delete_type(volume_type)


def _create(cpi: CpiProcess, made: SafetyNet, size: int = 1024, **kwargs: Any) -> str:
    disk: str = ok(
        cpi.call("create_disk", size, kwargs.get("cloud_properties", {}), kwargs.get("vm"))
    )
    made.volumes.append(disk)
    return disk


# --- create_disk, has_disk, delete_disk -----------------------------------------------


def test_create_rounds_up_tags_and_delete_removes(
    cpi: CpiProcess, cloud: dict[str, Any], project_sdk: Any, director_uuid: str, leak_check, made
):
    disk = _create(cpi, made, 1025)
    volume = project_sdk.block_storage.get_volume(disk)
    assert volume.status == "available"
    assert volume.size == 2  # 1025 MiB rounded up
    assert re.fullmatch(r"volume-[0-9a-f-]{36}", volume.name)
    assert volume.metadata == {"director_uuid": director_uuid}
    assert volume.volume_type == cloud["openstack"]["default_volume_type"]
    assert ok(cpi.call("has_disk", disk)) is True

    assert ok(cpi.call("delete_disk", disk)) is None
    assert volume_or_none(project_sdk, disk) is None  # gone when delete_disk answers
    assert ok(cpi.call("has_disk", disk)) is False
    assert ok(cpi.call("delete_disk", disk)) is None  # already gone: success


@pytest.mark.parametrize("case", ["explicit type", "default_volume_type", "cinder default"])
def test_volume_type_choice(
    case: str,
    cpi_for: Callable[..., CpiProcess],
    cloud: dict[str, Any],
    project_sdk: Any,
    cinder_default_type: str,
    leak_check,
    made,
):
    named = cloud["resources"]["volume_type"]
    assert named != cinder_default_type, "the cloud needs a volume type besides its default"
    if case == "explicit type":  # `type` wins over default_volume_type
        cpi, properties, expected = cpi_for(default_volume_type=cinder_default_type), named, named
    elif case == "default_volume_type":
        cpi, properties, expected = cpi_for(default_volume_type=named), None, named
    else:  # neither: the request names no type and Cinder picks its default
        cpi, properties, expected = cpi_for(default_volume_type=None), None, cinder_default_type
    cloud_properties = {} if properties is None else {"type": properties}
    disk = _create(cpi, made, cloud_properties=cloud_properties)
    assert project_sdk.block_storage.get_volume(disk).volume_type == expected
    ok(cpi.call("delete_disk", disk))


def test_unknown_volume_type_names_the_types_there_are(
    cpi: CpiProcess, cloud: dict[str, Any], leak_check
):
    message = failed(cpi.call("create_disk", 1024, {"type": "no-such-type"}, None), "CloudError")
    assert "no-such-type" in message
    assert cloud["resources"]["volume_type"] in message  # the list of existing types


def test_invalid_sizes_and_properties_are_refused(cpi: CpiProcess, leak_check):
    assert "Minimum disk size is 1 GiB" in failed(cpi.call("create_disk", 1023, {}), "CloudError")
    failed(cpi.call("create_disk", 2048.5, {}), "CpiError")  # not an integer
    assert "cloud_properties.type" in failed(
        cpi.call("create_disk", 1024, {"type": 7}), "CloudError"
    )


def test_disk_goes_to_the_zone_of_its_vm(
    cpi_for: Callable[..., CpiProcess], servers: dict[str, str], project_sdk: Any, leak_check, made
):
    cpi = logged(cpi_for())
    disk = _create(cpi, made, vm=servers["ephemeral_z2"])
    assert project_sdk.block_storage.get_volume(disk).availability_zone == "z2"
    ok(cpi.call("delete_disk", disk))

    ignoring = logged(cpi_for(ignore_server_availability_zone=True))
    result = ignoring.call("create_disk", 1024, {}, servers["ephemeral_z2"])
    made.volumes.append(ok(result))
    assert calls(result, "GET", "/servers/") == 0  # the VM's zone is not even looked up
    ok(ignoring.call("delete_disk", result.result))


def test_create_for_a_missing_vm_makes_the_disk_without_a_zone(
    cpi: CpiProcess, cloud: dict[str, Any], project_sdk: Any, leak_check, made
):
    """As the reference CPI: a warning, and Cinder's default zone (the test cloud's first;
    test_disk_goes_to_the_zone_of_its_vm shows a VM's zone wins over it)."""
    result = cpi.call("create_disk", 1024, {}, MISSING_ID)
    disk = ok(result)
    made.volumes.append(disk)
    assert f"VM '{MISSING_ID}' does not exist: creating the disk without" in result.stderr
    volume = project_sdk.block_storage.get_volume(disk)
    assert volume.availability_zone == cloud["resources"]["availability_zones"][0]
    ok(cpi.call("delete_disk", disk))


def test_failed_create_removes_the_volume(cpi: CpiProcess, unplaceable_type: str, leak_check):
    message = failed(cpi.call("create_disk", 1024, {"type": unplaceable_type}, None), "CloudError")
    assert "status error" in message
    assert "was deleted" in message
    # leak_check: no volume of this director is left


def test_create_survives_a_lost_answer_without_a_second_volume(
    cpi_for: Callable[..., CpiProcess],
    cpi: CpiProcess,
    admin: Any,
    cloud: dict[str, Any],
    director_uuid: str,
    leak_check,
    made,
):
    plan = fp.FaultPlan().when(fp.reset_after(), method="POST", path_contains="/volumes")
    with faulty_cloud(admin, cloud, plan) as proxy:
        proxied = cpi_for(auth_url=proxied_auth_url(proxy, cloud), token_cache=False)
        disk = _create(proxied, made)
    assert len(proxy.injected()) == 1  # Cinder made the volume, the CPI never heard back
    found = resources_of_director(admin, cloud["project_id"], director_uuid)
    assert found == {"volumes": [disk]}
    ok(cpi.call("delete_disk", disk))


def test_sigterm_while_waiting_removes_the_volume(
    cpi_for: Callable[..., CpiProcess], admin: Any, cloud: dict[str, Any], leak_check
):
    running: list[subprocess.Popen[bytes]] = []
    polls: list[str] = []

    def terminate_at_the_first_poll(_n: int, _service: str, method: str, path: str) -> Any:
        if method == "GET" and re.search(r"/volumes/[0-9a-f-]{36}$", path) and not polls:
            polls.append(path)
            running[0].send_signal(signal.SIGTERM)  # the director gives up on the call
            return fp.slow(1.0)
        return None

    with faulty_cloud(admin, cloud, fp.FaultPlan([terminate_at_the_first_poll])) as proxy:
        cpi = cpi_for(auth_url=proxied_auth_url(proxy, cloud), token_cache=False)
        request = json.dumps(cpi.request("create_disk", 1024, {}, None)).encode()
        process = subprocess.Popen(
            cpi.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cpi.env,
        )
        running.append(process)
        stdout, _ = process.communicate(request, timeout=120)
    assert polls, "the CPI never polled the volume"
    error = json.loads(stdout)["error"]
    assert error["type"] == "Bosh::Clouds::CloudError"
    assert "interrupted by a signal" in error["message"]
    # leak_check: the volume the interrupted call created was deleted before it answered


# --- attach_disk, detach_disk, get_disks ----------------------------------------------


def test_attach_detach_lifecycle(
    cpi: CpiProcess, servers: dict[str, str], project_sdk: Any, leak_check, made
):
    server = servers["ephemeral_z2"]  # a: root disk, b: the flavor's ephemeral disk
    cpi = logged(cpi)
    first, second = _create(cpi, made, vm=server), _create(cpi, made, vm=server)

    assert ok(cpi.call("attach_disk", server, first)) == "/dev/sdc"
    assert attachments(project_sdk, server) == {first: "/dev/sdc"}
    assert project_sdk.block_storage.get_volume(first).status == "in-use"

    again = cpi.call("attach_disk", server, first)
    assert ok(again) == "/dev/sdc"
    assert calls(again, "POST", "os-volume_attachments") == 0  # already attached

    assert ok(cpi.call("attach_disk", server, second)) == "/dev/sdd"  # c is taken
    assert sorted(ok(cpi.call("get_disks", server))) == sorted([first, second])

    assert ok(cpi.call("detach_disk", server, first)) is None
    assert project_sdk.block_storage.get_volume(first).status == "available"
    assert attachments(project_sdk, server) == {second: "/dev/sdd"}
    assert ok(cpi.call("detach_disk", server, first)) is None  # not attached: success
    assert ok(cpi.call("get_disks", server)) == [second]

    ok(cpi.call("detach_disk", server, second))
    assert ok(cpi.call("get_disks", server)) == []
    for disk in (first, second):
        ok(cpi.call("delete_disk", disk))


def test_device_letters_config_drive_and_api_v1(
    cpi_for: Callable[..., CpiProcess],
    servers: dict[str, str],
    project_sdk: Any,
    leak_check,
    made,
):
    server = servers["plain_z1"]  # no ephemeral disk: persistent disks start at b
    with_config_disk = cpi_for(config_drive="disk")
    behind_drive = _create(with_config_disk, made, vm=server)
    assert ok(with_config_disk.call("attach_disk", server, behind_drive)) == "/dev/sdc"

    v1 = cpi_for()
    v1.api_version = 1
    first_free = _create(v1, made, vm=server)
    assert ok(v1.call("attach_disk", server, first_free)) is None  # v1: no disk hint
    assert attachments(project_sdk, server) == {behind_drive: "/dev/sdc", first_free: "/dev/sdb"}

    for disk in (behind_drive, first_free):
        ok(v1.call("detach_disk", server, disk))
        ok(v1.call("delete_disk", disk))


def test_missing_vm_or_disk_and_busy_disks(
    cpi: CpiProcess, servers: dict[str, str], project_sdk: Any, leak_check, made
):
    server, other = servers["plain_z1"], servers["ephemeral_z2"]
    disk = _create(cpi, made, vm=server)
    failed(cpi.call("attach_disk", MISSING_ID, disk), "VMNotFound")
    failed(cpi.call("detach_disk", MISSING_ID, disk), "VMNotFound")
    failed(cpi.call("get_disks", MISSING_ID), "VMNotFound")
    failed(cpi.call("attach_disk", server, MISSING_ID), "DiskNotFound")
    assert ok(cpi.call("detach_disk", server, MISSING_ID)) is None

    ok(cpi.call("attach_disk", server, disk))
    message = failed(cpi.call("attach_disk", other, disk), "CloudError")
    assert server in message and "detach it there first" in message
    message = failed(cpi.call("delete_disk", disk), "CloudError")
    assert "in-use" in message and server in message
    assert project_sdk.block_storage.get_volume(disk).status == "in-use"

    ok(cpi.call("detach_disk", server, disk))
    ok(cpi.call("delete_disk", disk))


def test_get_disks_leaves_out_the_boot_volume(
    cpi: CpiProcess, cloud: dict[str, Any], project_sdk: Any, director_uuid: str, leak_check, made
):
    resources = cloud["resources"]
    flavor = project_sdk.compute.find_flavor(resources["flavors"]["no_root_disk"])
    server = project_sdk.compute.create_server(
        name=f"disk-test-bfv-{uuid.uuid4().hex[:6]}",
        flavor_id=flavor.id,
        networks=[{"uuid": resources["networks"]["manual_1"]["id"]}],
        block_device_mapping_v2=[
            {
                "uuid": resources["image_id"],
                "source_type": "image",
                "destination_type": "volume",
                "volume_size": 1,
                "boot_index": 0,
                "delete_on_termination": True,
            }
        ],
        metadata={"director_uuid": director_uuid},
    )
    try:
        project_sdk.compute.wait_for_server(server, wait=120, interval=0.5)
        disk = _create(cpi, made, vm=server.id)
        assert ok(cpi.call("attach_disk", server.id, disk)) == "/dev/sdb"
        assert len(attachments(project_sdk, server.id)) == 2  # boot volume + disk
        assert ok(cpi.call("get_disks", server.id)) == [disk]
        ok(cpi.call("detach_disk", server.id, disk))
        ok(cpi.call("delete_disk", disk))
    finally:
        delete_servers(project_sdk, [server.id])
    assert server_or_none(project_sdk, server.id) is None


# --- set_disk_metadata ------------------------------------------------------------------


def test_set_disk_metadata(cpi: CpiProcess, project_sdk: Any, director_uuid: str, leak_check, made):
    disk = _create(cpi, made)
    metadata = {
        "director": "bosh-director",
        "deployment": "redis",
        "instance_id": "ce7d2040",
        "instance_index": 1,
        "attached_at": "2026-11-26T12:03:32Z",
        "flag": True,
        "long": "x" * 300,
        "dropped": None,
        "director_uuid": "not-the-director",
    }
    assert ok(cpi.call("set_disk_metadata", disk, metadata)) is None
    stored = project_sdk.block_storage.get_volume(disk).metadata
    assert stored == {
        "director": "bosh-director",
        "deployment": "redis",
        "instance_id": "ce7d2040",
        "instance_index": "1",
        "attached_at": "2026-11-26T12:03:32Z",
        "flag": "true",
        "long": "x" * 255,
        "director_uuid": director_uuid,  # the CPI's mark is kept
    }
    failed(cpi.call("set_disk_metadata", MISSING_ID, {"a": "b"}), "DiskNotFound")
    ok(cpi.call("delete_disk", disk))


# --- resize_disk, update_disk -----------------------------------------------------------


def test_resize_detached_then_attached(
    cpi: CpiProcess, servers: dict[str, str], project_sdk: Any, leak_check, made
):
    server = servers["plain_z1"]
    cpi = logged(cpi)
    disk = _create(cpi, made, vm=server)

    assert ok(cpi.call("resize_disk", disk, 2048)) is None
    volume = project_sdk.block_storage.get_volume(disk)
    assert (volume.size, volume.status) == (2, "available")

    same = cpi.call("resize_disk", disk, 2000)  # still 2 GiB once rounded up
    assert ok(same) is None
    assert calls(same, "POST", "/action") == 0

    assert "shrink" in failed(cpi.call("resize_disk", disk, 1024), "NotSupported")
    failed(cpi.call("resize_disk", MISSING_ID, 2048), "DiskNotFound")

    # This cloud's Cinder (3.42+) extends attached volumes and tells Nova.
    ok(cpi.call("attach_disk", server, disk))
    assert ok(cpi.call("resize_disk", disk, 3072)) is None
    volume = project_sdk.block_storage.get_volume(disk)
    assert (volume.size, volume.status) == (3, "in-use")
    assert disk in attachments(project_sdk, server)

    ok(cpi.call("detach_disk", server, disk))
    ok(cpi.call("delete_disk", disk))


def test_update_disk_retypes_and_grows_in_place(
    cpi: CpiProcess,
    cloud: dict[str, Any],
    project_sdk: Any,
    cinder_default_type: str,
    unplaceable_type: str,
    leak_check,
    made,
):
    named = cloud["resources"]["volume_type"]
    cpi = logged(cpi)
    disk = _create(cpi, made, cloud_properties={"type": named})

    unchanged = cpi.call("update_disk", disk, 1024, {"type": named})
    assert ok(unchanged) == disk
    assert calls(unchanged, "POST", "/action") == 0

    assert ok(cpi.call("update_disk", disk, 2048, {"type": cinder_default_type})) == disk
    volume = project_sdk.block_storage.get_volume(disk)
    assert (volume.size, volume.volume_type, volume.status) == (2, cinder_default_type, "available")

    failed(cpi.call("update_disk", disk, 1024, {}), "NotSupported")  # smaller
    failed(cpi.call("update_disk", MISSING_ID, 2048, {}), "DiskNotFound")

    # Cinder accepts the retype, then finds no backend for the type: the director must copy.
    message = failed(
        cpi.call("update_disk", disk, 2048, {"type": unplaceable_type}), "NotSupported"
    )
    assert unplaceable_type in message
    volume = project_sdk.block_storage.get_volume(disk)
    assert (volume.volume_type, volume.status) == (cinder_default_type, "available")

    ok(cpi.call("delete_disk", disk))
    wait_until(lambda: volume_or_none(project_sdk, disk) is None, "volume deletion")
