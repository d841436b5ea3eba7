"""Disk actions with fake adapters: the decisions the real cloud cannot be made to show
(no free device letter, a Cinder without online extend, a removal that fails too)."""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace
from typing import Any

import pytest

from bosh_openstack_cpi.actions import disks
from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack.volume import Attachment, Refused, VolumeState
from bosh_openstack_cpi.protocol.errors import CloudError, NotSupported
from bosh_openstack_cpi.signals import SignalsDeferred

VM = "vm-1"
DISK = "disk-1"


def state(status: str = "available", size: int = 1, **fields: Any) -> VolumeState:
    values: dict[str, Any] = {
        "id": DISK,
        "status": status,
        "size_gib": size,
        "availability_zone": "z1",
        "volume_type": "fast",
        "volume_type_id": "type-1",
        "migration_status": None,
        "attachments": (),
        **fields,
    }
    return VolumeState(**values)


class FakeVolumes:
    def __init__(self, *states: VolumeState | None, online_extend: bool = True) -> None:
        self.states = list(states)
        self.online_extend = online_extend
        self.calls: list[tuple[str, Any]] = []

    def get_volume(self, volume_id: str) -> VolumeState | None:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def wait_for_volume(self, volume_id, what, is_done, failure=lambda _: None, timeout=None):
        for _ in range(10):
            current = self.get_volume(volume_id)
            if is_done(current):
                return current
            problem = failure(current)
            if problem:
                raise CloudError(f"Failed waiting for {what}: {problem}")
        raise AssertionError(f"{what}: never done")

    def can_extend_attached(self) -> bool:
        return self.online_extend

    def extend_volume(self, volume_id: str, size_gib: int) -> None:
        self.calls.append(("extend", size_gib))

    def retype_volume(self, volume_id: str, volume_type: str) -> None:
        self.calls.append(("retype", volume_type))

    def create_volume(self, **attributes: Any) -> str:
        self.calls.append(("create", attributes))
        return DISK

    def remove_volume(self, volume_id: str, *, timeout: float) -> None:
        raise CloudError("Cinder is down")

    def failure_reason(self, volume_id: str) -> str | None:
        return "No valid backend was found."


class FakeCompute:
    def __init__(self, devices: list[str | None], ephemeral: int = 0, refusal: str = "") -> None:
        self.devices = devices
        self.ephemeral = ephemeral
        self.refusal = refusal
        self.attached: list[str] = []

    def volume_attachments(self, server_id: str) -> list[tuple[str, str | None]]:
        return [(f"other-{n}", device) for n, device in enumerate(self.devices)]

    def disk_server(self, server_id: str) -> dict[str, Any]:
        return {"OS-EXT-AZ:availability_zone": "z2"}

    def flavor_disks_of(self, server: dict[str, Any]) -> tuple[int, int]:
        return self.ephemeral, 0

    def attach_volume(self, server_id: str, volume_id: str, device: str) -> str:
        if self.refusal:
            raise Refused("Nova refused", self.refusal)
        self.attached.append(device)
        return device


def call_with(
    volumes: FakeVolumes, compute: FakeCompute | None = None, api_version: int = 2, **config: Any
) -> Any:
    settings = OpenStackConfig(auth_url="http://keystone.test/v3", **config)
    return SimpleNamespace(
        api_version=api_version,
        director_uuid="director-1",
        config=SimpleNamespace(openstack=settings),
        cloud=SimpleNamespace(volume=volumes, compute=compute or FakeCompute([])),
    )


@pytest.mark.parametrize(("mib", "gib"), [(1024, 1), (1025, 2), (2048, 2), (10_000, 10)])
def test_sizes_round_up_to_whole_gib(mib, gib):
    assert disks.size_in_gib(mib) == gib


def test_attach_api_v1_answers_null_v2_the_device():
    attached = state("in-use", attachments=(Attachment(VM, "/dev/sdb"),))
    compute = FakeCompute([])
    assert disks.attach_disk(call_with(FakeVolumes(attached), compute, 1), VM, DISK) is None
    assert disks.attach_disk(call_with(FakeVolumes(attached), compute, 2), VM, DISK) == "/dev/sdb"
    assert disks.attach_disk(call_with(FakeVolumes(attached), compute, 3), VM, DISK) == "/dev/sdb"
    assert compute.attached == ["/dev/sdb", "/dev/sdb", "/dev/sdb"]


def test_attach_with_every_letter_taken():
    compute = FakeCompute([f"/dev/vd{chr(c)}" for c in range(ord("a"), ord("z") + 1)])
    with pytest.raises(CloudError, match="no free device name"):
        disks.attach_disk(call_with(FakeVolumes(state()), compute), VM, DISK)


def test_attach_refused_names_the_server_holding_the_disk():
    busy = state("in-use", attachments=(Attachment("vm-2", "/dev/sdc"),))
    compute = FakeCompute([], refusal="Invalid volume: volume is in-use")
    with pytest.raises(CloudError) as raised:
        disks.attach_disk(call_with(FakeVolumes(busy), compute), VM, DISK)
    assert "server 'vm-2'" in raised.value.message
    assert "detach it there first" in raised.value.message


def test_growing_an_attached_disk_without_online_extend_lets_the_director_copy():
    attached = state("in-use", attachments=(Attachment(VM, "/dev/sdb"),))
    volumes = FakeVolumes(attached, online_extend=False)
    with pytest.raises(NotSupported, match=r"3\.42"):
        disks.resize_disk(call_with(volumes), DISK, 2048)
    assert volumes.calls == []  # nothing was asked of Cinder


def test_a_retype_cinder_could_not_do_lets_the_director_copy():
    volumes = FakeVolumes(state(), state("retyping"), state())  # type stays "fast"
    with pytest.raises(NotSupported, match="No valid backend was found"):
        disks.update_disk(call_with(volumes), DISK, 1024, {"type": "slow"})
    assert volumes.calls == [("retype", "slow")]


def test_update_without_a_change_asks_nothing():
    volumes = FakeVolumes(state())
    by_id = disks.update_disk(call_with(volumes), DISK, 1024, {"type": "type-1"})
    assert by_id == DISK
    assert volumes.calls == []


def test_a_failed_create_whose_removal_fails_says_what_to_delete():
    volumes = FakeVolumes(state("error"))
    with pytest.raises(CloudError) as raised:
        disks.create_disk(call_with(volumes), 1024, {}, None)
    message = raised.value.message
    assert "status error" in message and "No valid backend was found." in message
    assert f"delete volume '{DISK}' by hand" in message


def test_a_signal_during_the_create_request_still_removes_the_new_volume():
    """SIGTERM (KeyboardInterrupt, see cli.py) is held back until the volume's id is known:
    raised in the middle of the request, it left the volume behind."""

    removed: list[str] = []

    class Interrupted(FakeVolumes):
        def create_volume(self, **attributes: Any) -> str:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while the request is in flight
            return super().create_volume(**attributes)

        def remove_volume(self, volume_id: str, *, timeout: float) -> None:
            removed.append(volume_id)

    with pytest.raises(KeyboardInterrupt):
        disks.create_disk(call_with(Interrupted(state())), 1024, {}, None)
    assert removed == [DISK]


def test_a_signal_right_after_the_create_request_still_removes_the_new_volume(monkeypatch):
    """A signal that arrives the moment the held-back signals are let through again (the
    CPI's first instruction after the request) is inside the block that removes."""
    removed: list[str] = []

    class Watched(FakeVolumes):
        def remove_volume(self, volume_id: str, *, timeout: float) -> None:
            removed.append(volume_id)

    def exit_then_signal(self: Any, *exc: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(SignalsDeferred, "__exit__", exit_then_signal)
    with pytest.raises(KeyboardInterrupt):
        disks.create_disk(call_with(Watched(state())), 1024, {}, None)
    assert removed == [DISK]
