"""Shared pieces of the disk and snapshot integration tests: servers booted directly with
the SDK (create_vm is not needed for disks), what Cinder and Nova really hold, and a
safety net that removes what a failing test left attached or undeleted."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import openstack

from bosh_openstack_cpi.tagging import DIRECTOR_UUID_KEY
from tools.cpi_process import CpiProcess, CpiResult, director_environment
from tools.request_log import LOG_LEVEL_ENV, requests_in

MISSING_ID = "00000000-0000-4000-8000-000000000000"


def boot_servers(
    project_sdk: Any, cloud: dict[str, Any], wanted: dict[str, tuple[str, str]], mark: str
) -> dict[str, str]:
    """Boot servers in parallel: name -> (flavor key, availability zone). They carry
    metadata director_uuid=mark, so that a leak check for `mark` would find them."""
    resources = cloud["resources"]
    flavors = {f.name: f.id for f in project_sdk.compute.flavors()}
    ids: dict[str, str] = {}
    try:
        for name, (flavor, zone) in wanted.items():
            server = project_sdk.compute.create_server(
                name=f"disk-test-{name}-{uuid.uuid4().hex[:6]}",
                image_id=resources["image_id"],
                flavor_id=flavors[resources["flavors"][flavor]],
                networks=[{"uuid": resources["networks"]["manual_1"]["id"]}],
                availability_zone=zone,
                metadata={DIRECTOR_UUID_KEY: mark},
            )
            ids[name] = server.id
        for server_id in ids.values():
            project_sdk.compute.wait_for_server(
                project_sdk.compute.get_server(server_id), wait=120, interval=0.5
            )
    except BaseException:
        delete_servers(project_sdk, list(ids.values()))
        raise
    return ids


def delete_servers(project_sdk: Any, server_ids: list[str]) -> None:
    for server_id in server_ids:
        project_sdk.compute.delete_server(server_id, ignore_missing=True)
    for server_id in server_ids:
        wait_until(
            lambda s=server_id: server_or_none(project_sdk, s) is None, f"server {server_id}"
        )


def server_or_none(sdk: Any, server_id: str) -> Any:
    try:
        return sdk.compute.get_server(server_id)
    except openstack.exceptions.NotFoundException:
        return None


def volume_or_none(sdk: Any, volume_id: str) -> Any:
    try:
        return sdk.block_storage.get_volume(volume_id)
    except openstack.exceptions.NotFoundException:
        return None


def snapshot_or_none(sdk: Any, snapshot_id: str) -> Any:
    try:
        return sdk.block_storage.get_snapshot(snapshot_id)
    except openstack.exceptions.NotFoundException:
        return None


def attachments(sdk: Any, server_id: str) -> dict[str, str]:
    """volume id -> device, as Nova records them."""
    body = sdk.compute.get(f"/servers/{server_id}/os-volume_attachments").json()
    return {a["volumeId"]: a["device"] for a in body["volumeAttachments"]}


def wait_until(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def logged(cpi: CpiProcess) -> CpiProcess:
    """The same CPI, logging every HTTP request (tools/request_log.py reads them)."""
    cpi.env = director_environment(LOG_LEVEL_ENV)
    return cpi


def ok(result: CpiResult) -> Any:
    assert result.error is None, result.error
    return result.result


def failed(result: CpiResult, bosh_type: str) -> str:
    assert result.error is not None, f"expected {bosh_type}, got result {result.result!r}"
    assert result.error["type"] == f"Bosh::Clouds::{bosh_type}", result.error
    message: str = result.error["message"]
    return message


def calls(result: CpiResult, method: str, path_part: str) -> int:
    """How many `method` requests to a path containing `path_part` the call made."""
    return sum(
        1 for _, m, path, _ in requests_in(result.stderr) if m == method and path_part in path
    )


@dataclass
class SafetyNet:
    """Volumes and snapshots a test made; whatever is left at the end is detached and
    deleted, and the test fails (the leak check then still sees what the CPI did)."""

    sdk: Any
    volumes: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)

    def clean(self) -> list[str]:
        left = []
        for snapshot_id in self.snapshots:
            if snapshot_or_none(self.sdk, snapshot_id) is not None:
                left.append(f"snapshot {snapshot_id}")
                self.sdk.block_storage.delete_snapshot(snapshot_id, ignore_missing=True)
                wait_until(lambda s=snapshot_id: snapshot_or_none(self.sdk, s) is None, "snapshot")
        for volume_id in self.volumes:
            volume = volume_or_none(self.sdk, volume_id)
            if volume is None:
                continue
            left.append(f"volume {volume_id} ({volume.status})")
            for attachment in volume.attachments or []:
                self.sdk.compute.delete(
                    f"/servers/{attachment['server_id']}/os-volume_attachments/{volume_id}"
                )
            wait_until(
                lambda v=volume_id: (
                    volume_or_none(self.sdk, v).status not in ("in-use", "detaching")
                ),
                "detach",
            )
            self.sdk.block_storage.delete_volume(volume_id, ignore_missing=True)
            wait_until(lambda v=volume_id: volume_or_none(self.sdk, v) is None, "volume deletion")
        return left


def safety_net(project_sdk: Any) -> Iterator[SafetyNet]:
    """The body of each test module's `made` fixture."""
    net = SafetyNet(project_sdk)
    yield net
    left = net.clean()
    assert not left, f"the test left behind (now removed): {left}"
