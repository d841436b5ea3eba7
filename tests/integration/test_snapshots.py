"""snapshot_disk and delete_snapshot against the real cloud, through the real executable."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.disk_support import (
    MISSING_ID,
    SafetyNet,
    boot_servers,
    delete_servers,
    failed,
    ok,
    safety_net,
    snapshot_or_none,
)
from tests.integration.faults import faulty_cloud, proxied_auth_url
from tests.integration.leaks import resources_of_director
from tools import fault_proxy as fp
from tools.cpi_process import CpiProcess

DIRECTOR_METADATA = {
    "director_name": "bosh-test",
    "deployment": "redis",
    "job": "redis-server",
    "index": 0,
    "instance_id": "ce7d2040-212e-4d5a-a62d-952a12c50741",
    "agent_id": "agent-007",
}


@pytest.fixture(scope="module")
def server(project_sdk: Any, cloud: dict[str, Any]) -> Iterator[str]:
    mark = f"test-snapshots-module-{uuid.uuid4()}"
    ids = boot_servers(project_sdk, cloud, {"plain": ("default", "z1")}, mark)
    yield ids["plain"]
    delete_servers(project_sdk, list(ids.values()))


@pytest.fixture
def made(project_sdk: Any) -> Iterator[SafetyNet]:
    yield from safety_net(project_sdk)


def test_snapshot_of_an_attached_disk(
    cpi: CpiProcess, server: str, project_sdk: Any, director_uuid: str, leak_check, made
):
    disk = ok(cpi.call("create_disk", 1024, {}, server))
    made.volumes.append(disk)
    assert ok(cpi.call("attach_disk", server, disk)) == "/dev/sdb"

    metadata = {**DIRECTOR_METADATA, "director_uuid": director_uuid}
    snapshot_id = ok(cpi.call("snapshot_disk", disk, metadata))
    made.snapshots.append(snapshot_id)
    snapshot = project_sdk.block_storage.get_snapshot(snapshot_id)
    assert snapshot.status == "available"
    assert snapshot.volume_id == disk
    assert project_sdk.block_storage.get_volume(disk).status == "in-use"  # taken with force
    assert re.fullmatch(r"snapshot-[0-9a-f-]{36}", snapshot.name)
    assert snapshot.description == "redis/redis-server/0/sdb"
    assert snapshot.metadata == {
        "director": "bosh-test",
        "director_uuid": director_uuid,
        "deployment": "redis",
        "instance_id": "ce7d2040-212e-4d5a-a62d-952a12c50741",
        "instance_index": "0",
        "instance_name": "redis-server/ce7d2040-212e-4d5a-a62d-952a12c50741",
        "agent_id": "agent-007",
    }

    assert ok(cpi.call("delete_snapshot", snapshot_id)) is None
    assert snapshot_or_none(project_sdk, snapshot_id) is None  # gone when the call answers
    assert ok(cpi.call("delete_snapshot", snapshot_id)) is None  # already gone: success

    ok(cpi.call("detach_disk", server, disk))
    ok(cpi.call("delete_disk", disk))


def test_snapshot_of_a_detached_disk_and_of_a_missing_one(
    cpi: CpiProcess, project_sdk: Any, director_uuid: str, leak_check, made
):
    disk = ok(cpi.call("create_disk", 1024, {}, None))
    made.volumes.append(disk)
    snapshot_id = ok(cpi.call("snapshot_disk", disk, DIRECTOR_METADATA))
    made.snapshots.append(snapshot_id)
    snapshot = project_sdk.block_storage.get_snapshot(snapshot_id)
    assert snapshot.description == "redis/redis-server/0"  # no device: not attached
    assert snapshot.metadata["director_uuid"] == director_uuid  # from the call's context

    message = failed(cpi.call("delete_disk", disk), "CloudError")
    assert "snapshots" in message  # Cinder's reason: the volume still has a snapshot

    failed(cpi.call("snapshot_disk", MISSING_ID, DIRECTOR_METADATA), "DiskNotFound")
    ok(cpi.call("delete_snapshot", snapshot_id))
    ok(cpi.call("delete_disk", disk))


def test_snapshot_survives_a_lost_answer_without_a_second_snapshot(
    cpi_for: Callable[..., CpiProcess],
    cpi: CpiProcess,
    admin: Any,
    cloud: dict[str, Any],
    director_uuid: str,
    leak_check,
    made,
):
    disk = ok(cpi.call("create_disk", 1024, {}, None))
    made.volumes.append(disk)
    plan = fp.FaultPlan().when(fp.reset_after(), method="POST", path_contains="/snapshots")
    with faulty_cloud(admin, cloud, plan) as proxy:
        proxied = cpi_for(auth_url=proxied_auth_url(proxy, cloud), token_cache=False)
        snapshot_id = ok(proxied.call("snapshot_disk", disk, DIRECTOR_METADATA))
    made.snapshots.append(snapshot_id)
    assert len(proxy.injected()) == 1  # Cinder made the snapshot, the CPI never heard back
    found = resources_of_director(admin, cloud["project_id"], director_uuid)
    assert found == {"volumes": [disk], "snapshots": [snapshot_id]}
    ok(cpi.call("delete_snapshot", snapshot_id))
    ok(cpi.call("delete_disk", disk))
