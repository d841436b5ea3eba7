"""Disk snapshot methods: snapshot_disk, delete_snapshot (Cinder volume snapshots)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from bosh_openstack_cpi.call import Call
from bosh_openstack_cpi.openstack.volume import Refused, SnapshotState, Volume
from bosh_openstack_cpi.protocol.errors import CloudError, DiskNotFound
from bosh_openstack_cpi.signals import SignalsDeferred
from bosh_openstack_cpi.tagging import DIRECTOR_UUID_KEY, sanitize_metadata

log = logging.getLogger(__name__)

# Removing a failed snapshot gets at least this long, even with a short state_timeout.
MIN_CLEANUP_SECONDS = 60.0


def snapshot_description(metadata: dict[str, Any], device: str | None) -> str:
    """`<deployment>/<job>/<index>[/<device name>]`, as the reference CPI writes it."""
    parts = [
        "" if metadata.get(key) is None else str(metadata[key])
        for key in ("deployment", "job", "index")
    ]
    if device:
        parts.append(device.rsplit("/", 1)[-1])
    return "/".join(parts)


def snapshot_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The director's snapshot metadata as the reference CPI stores it: `director_name`
    becomes `director`, `index` becomes `instance_index`, `job` + `instance_id` become
    `instance_name` (`<job>/<instance_id>`); the other keys are kept."""
    renamed = {k: v for k, v in metadata.items() if k not in ("director_name", "index", "job")}
    if metadata.get("director_name") is not None:
        renamed["director"] = metadata["director_name"]
    if metadata.get("index") is not None:
        renamed["instance_index"] = metadata["index"]
    job, instance_id = metadata.get("job"), metadata.get("instance_id")
    if job is not None and instance_id is not None:
        renamed["instance_name"] = f"{job}/{instance_id}"
    return renamed


def snapshot_disk(call: Call, disk_cid: str, metadata: dict[str, Any] | None = None) -> str:
    """Snapshot the volume (attached ones too: force) and wait until the snapshot is
    available; a snapshot that fails is deleted again."""
    metadata = metadata or {}
    volumes = call.cloud.volume
    state = volumes.get_volume(disk_cid)
    if state is None:
        raise DiskNotFound(f"Disk '{disk_cid}' does not exist (Cinder has no such volume)")
    device = next((a.device for a in state.attachments if a.device), None)
    tags = sanitize_metadata(snapshot_metadata(metadata))
    tags[DIRECTOR_UUID_KEY] = call.director_uuid
    name = f"snapshot-{uuid.uuid4()}"
    snapshot_id: str | None = None
    try:
        # A SIGTERM during the POST would lose the new snapshot: it is held back until the
        # id is known, and raised inside this `try`, whose handler removes the snapshot.
        with SignalsDeferred() as signals:
            snapshot_id = volumes.create_snapshot(
                volume_id=disk_cid,
                name=name,
                description=snapshot_description(metadata, device),
                metadata=tags,
            )
        signals.deliver()
        log.info("Creating snapshot %s (%s) of disk %s", snapshot_id, name, disk_cid)
        _wait_until_available(volumes, snapshot_id, disk_cid)
    except Refused as refused:  # nothing was created
        raise CloudError(
            f"Cannot snapshot disk '{disk_cid}' ({state.describe()}): {refused.detail}"
        ) from None
    except CloudError as error:
        if snapshot_id is None:
            raise
        raise CloudError(error.message + _removal(volumes, snapshot_id, call)) from None
    except KeyboardInterrupt:  # SIGTERM from the director: leave nothing behind
        if snapshot_id is not None:
            log.warning(
                "Interrupted: removing snapshot %s%s",
                snapshot_id,
                _removal(volumes, snapshot_id, call),
            )
        raise
    return snapshot_id


def _wait_until_available(volumes: Volume, snapshot_id: str, disk_cid: str) -> None:
    def failure(snapshot: SnapshotState | None) -> str | None:
        if snapshot is None:
            return "the snapshot disappeared"
        if snapshot.status.startswith("error"):
            reason = volumes.failure_reason(snapshot_id)
            text = f"Cinder put it in status {snapshot.status}"
            return f"{text} (Cinder: {reason})" if reason else text
        return None

    volumes.wait_for_snapshot(
        snapshot_id,
        f"snapshot '{snapshot_id}' of disk '{disk_cid}' to become available",
        lambda snapshot: snapshot is not None and snapshot.status == "available",
        failure,
    )


def _removal(volumes: Volume, snapshot_id: str, call: Call) -> str:
    """Remove a snapshot this call created; the sentence to add to the error."""
    timeout = max(call.config.openstack.state_timeout, MIN_CLEANUP_SECONDS)
    try:
        volumes.remove_snapshot(snapshot_id, timeout=timeout)
    except CloudError as error:
        log.error("Could not remove snapshot %s: %s", snapshot_id, error.message)
        return (
            f". Removing the snapshot failed too ({error.message}): delete snapshot "
            f"'{snapshot_id}' by hand"
        )
    return f". The snapshot '{snapshot_id}' was deleted"


def delete_snapshot(call: Call, snapshot_cid: str) -> None:
    """Delete the snapshot and wait until it is gone; a missing one is not an error."""
    volumes = call.cloud.volume
    try:
        if not volumes.delete_snapshot(snapshot_cid):
            log.info("Snapshot %s does not exist: nothing to delete", snapshot_cid)
            return None
    except Refused as refused:
        snapshot = volumes.get_snapshot(snapshot_cid)
        if snapshot is None:
            return None
        if snapshot.status != "deleting":
            raise CloudError(
                f"Cannot delete snapshot '{snapshot_cid}': its status is {snapshot.status} "
                f"({refused.detail}); it can be deleted once it is available"
            ) from None
    volumes.wait_for_snapshot(
        snapshot_cid,
        f"snapshot '{snapshot_cid}' to be deleted",
        lambda snapshot: snapshot is None,
        lambda snapshot: (
            "Cinder could not delete it (error_deleting)"
            if snapshot is not None and snapshot.status == "error_deleting"
            else None
        ),
    )
    return None
