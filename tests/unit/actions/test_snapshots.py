"""Snapshot naming and metadata as the reference CPI writes them, and the removal of a
snapshot that fails (the fake Cinder driver never fails one)."""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace
from typing import Any

import pytest

from bosh_openstack_cpi.actions import snapshots
from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack.volume import Attachment, SnapshotState, VolumeState
from bosh_openstack_cpi.protocol.errors import CloudError, DiskNotFound
from bosh_openstack_cpi.signals import SignalsDeferred

DIRECTOR_METADATA = {
    "director_name": "bosh-1",
    "director_uuid": "uuid-1",
    "deployment": "redis",
    "job": "redis-server",
    "index": 0,
    "instance_id": "ce7d2040",
    "agent_id": "agent-7",
}


def test_description_is_deployment_job_index_and_device():
    assert (
        snapshots.snapshot_description(DIRECTOR_METADATA, "/dev/sdc") == "redis/redis-server/0/sdc"
    )
    assert snapshots.snapshot_description(DIRECTOR_METADATA, None) == "redis/redis-server/0"
    assert snapshots.snapshot_description({}, None) == "//"


def test_metadata_is_renamed_as_the_reference_does():
    assert snapshots.snapshot_metadata(DIRECTOR_METADATA) == {
        "director": "bosh-1",
        "director_uuid": "uuid-1",
        "deployment": "redis",
        "instance_id": "ce7d2040",
        "instance_index": 0,
        "instance_name": "redis-server/ce7d2040",
        "agent_id": "agent-7",
    }


def test_metadata_without_the_usual_keys_is_kept_as_it_is():
    assert snapshots.snapshot_metadata({"custom": "x"}) == {"custom": "x"}


class FakeVolumes:
    def __init__(self, volume: VolumeState | None, snapshot_status: str) -> None:
        self.volume = volume
        self.snapshot_status = snapshot_status
        self.created: dict[str, Any] = {}
        self.removed: list[str] = []

    def get_volume(self, volume_id: str) -> VolumeState | None:
        return self.volume

    def create_snapshot(self, **attributes: Any) -> str:
        self.created = attributes
        return "snap-1"

    def wait_for_snapshot(self, snapshot_id, what, is_done, failure=lambda _: None, timeout=None):
        current = SnapshotState(snapshot_id, self.snapshot_status, "disk-1")
        if is_done(current):
            return current
        raise CloudError(f"Failed waiting for {what}: {failure(current)}")

    def failure_reason(self, resource_id: str) -> str | None:
        return None

    def remove_snapshot(self, snapshot_id: str, *, timeout: float) -> None:
        self.removed.append(snapshot_id)


def call_with(volumes: FakeVolumes) -> Any:
    return SimpleNamespace(
        director_uuid="director-1",
        config=SimpleNamespace(openstack=OpenStackConfig(auth_url="http://keystone.test/v3")),
        cloud=SimpleNamespace(volume=volumes),
    )


def volume(*attachments: Attachment) -> VolumeState:
    return VolumeState("disk-1", "in-use", 1, "z1", "fast", None, None, attachments)


def test_snapshot_request_of_an_attached_disk():
    volumes = FakeVolumes(volume(Attachment("vm-1", "/dev/sdc")), "available")
    assert snapshots.snapshot_disk(call_with(volumes), "disk-1", DIRECTOR_METADATA) == "snap-1"
    assert volumes.created["description"] == "redis/redis-server/0/sdc"
    assert volumes.created["name"].startswith("snapshot-")
    assert volumes.created["metadata"]["instance_index"] == "0"
    assert volumes.created["metadata"]["director_uuid"] == "director-1"  # the CPI's mark


def test_a_failed_snapshot_is_removed():
    volumes = FakeVolumes(volume(), "error")
    with pytest.raises(CloudError) as raised:
        snapshots.snapshot_disk(call_with(volumes), "disk-1", {})
    assert "status error" in raised.value.message
    assert "was deleted" in raised.value.message
    assert volumes.removed == ["snap-1"]


def test_snapshot_of_a_missing_disk():
    with pytest.raises(DiskNotFound):
        snapshots.snapshot_disk(call_with(FakeVolumes(None, "available")), "disk-1", {})


def test_a_signal_during_the_create_request_still_removes_the_new_snapshot():
    """SIGTERM (KeyboardInterrupt, see cli.py) is held back until the snapshot's id is
    known: raised in the middle of the request, it left the snapshot behind."""

    class Interrupted(FakeVolumes):
        def create_snapshot(self, **attributes: Any) -> str:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while the request is in flight
            return super().create_snapshot(**attributes)

    volumes = Interrupted(volume(), "available")
    with pytest.raises(KeyboardInterrupt):
        snapshots.snapshot_disk(call_with(volumes), "disk-1", {})
    assert volumes.removed == ["snap-1"]


def test_a_signal_right_after_the_create_request_still_removes_the_new_snapshot(monkeypatch):
    """A signal that arrives the moment the held-back signals are let through again is
    inside the block that removes the snapshot."""

    def exit_then_signal(self: Any, *exc: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(SignalsDeferred, "__exit__", exit_then_signal)
    volumes = FakeVolumes(volume(), "available")
    with pytest.raises(KeyboardInterrupt):
        snapshots.snapshot_disk(call_with(volumes), "disk-1", {})
    assert volumes.removed == ["snap-1"]
