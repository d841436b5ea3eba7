"""Persistent disk methods: create_disk, delete_disk, has_disk, attach_disk, detach_disk,
get_disks, set_disk_metadata, resize_disk, update_disk.

A BOSH persistent disk is a Cinder volume; its cid is the volume id. Sizes arrive in MiB
and are rounded up to whole GiB. Every request and wait is described in docs/disks.md.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from bosh_openstack_cpi import cids, device_names
from bosh_openstack_cpi.call import Call
from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack.volume import Refused, Volume, VolumeState
from bosh_openstack_cpi.protocol.errors import (
    CloudError,
    DiskNotFound,
    NotSupported,
    VMNotFound,
)
from bosh_openstack_cpi.signals import SignalsDeferred
from bosh_openstack_cpi.tagging import DIRECTOR_UUID_KEY, sanitize_metadata

log = logging.getLogger(__name__)

MIB_PER_GIB = 1024
# Removing what a failed call created gets at least this long, even with a short
# state_timeout (the volume may still be `creating` when the wait gave up).
MIN_CLEANUP_SECONDS = 60.0


def size_in_gib(size_mib: int) -> int:
    """MiB to GiB, rounded up (Cinder sizes volumes in whole GiB)."""
    return -(-size_mib // MIB_PER_GIB)


def checked_gib(size_mib: int, argument: str) -> int:
    """A disk size the director asked for, in GiB; refused before any request when Cinder
    could never create it."""
    if size_mib < MIB_PER_GIB:
        raise CloudError(f"Minimum disk size is 1 GiB (1024 MiB), got {argument} {size_mib} MiB")
    gib = size_in_gib(size_mib)
    if gib > cids.MAX_VOLUME_GIB:
        raise CloudError(
            f"Maximum disk size is {cids.MAX_VOLUME_GIB} GiB (Cinder's limit), got {argument} "
            f"{size_mib} MiB"
        )
    return gib


def _volume_type(cloud_properties: dict[str, Any], config: OpenStackConfig) -> str | None:
    """The disk type's `type`, else openstack.default_volume_type, else Cinder's default."""
    wanted = cloud_properties.get("type")
    if wanted is None:
        return config.default_volume_type
    if not isinstance(wanted, str) or not wanted.strip():
        raise CloudError(
            "The disk type's cloud_properties.type must be the name of a Cinder volume type"
        )
    return wanted


def _existing(volumes: Volume, disk_cid: str) -> VolumeState:
    state = volumes.get_volume(disk_cid)
    if state is None:
        raise DiskNotFound(f"Disk '{disk_cid}' does not exist (Cinder has no such volume)")
    return state


def _cleanup_seconds(call: Call) -> float:
    return max(call.config.openstack.state_timeout, MIN_CLEANUP_SECONDS)


def _with_reason(volumes: Volume, volume_id: str, text: str) -> str:
    reason = volumes.failure_reason(volume_id)
    return f"{text} (Cinder: {reason})" if reason else text


# --- create_disk, delete_disk, has_disk ------------------------------------------------


def _zone_of_vm(call: Call, vm_cid: str) -> str | None:
    """The VM's zone; None for a VM that no longer exists, so the disk is still made
    (without a zone) as the reference CPI makes it rather than failing the director's task."""
    try:
        server = call.cloud.compute.disk_server(vm_cid)
    except VMNotFound:
        log.warning(
            "VM '%s' does not exist: creating the disk without an availability zone", vm_cid
        )
        return None
    zone: str | None = server.get("OS-EXT-AZ:availability_zone") or None
    return zone


def create_disk(
    call: Call, size: int, cloud_properties: dict[str, Any], vm_cid: str | None = None
) -> str:
    """A new volume of ceil(size / 1024) GiB, in the VM's availability zone unless
    ignore_server_availability_zone; removed again when it does not become available."""
    size_gib = checked_gib(size, "size")
    settings = call.config.openstack
    volume_type = _volume_type(cloud_properties, settings)
    zone = None
    if vm_cid and not settings.ignore_server_availability_zone:
        zone = _zone_of_vm(call, vm_cid)
    volumes = call.cloud.volume
    name = f"volume-{uuid.uuid4()}"
    volume_id: str | None = None
    try:
        # A SIGTERM during the POST would lose the new volume: it is held back until the
        # id is known, and raised inside this `try`, whose handler removes the volume.
        with SignalsDeferred() as signals:
            volume_id = volumes.create_volume(
                name=name,
                size_gib=size_gib,
                volume_type=volume_type,
                availability_zone=zone,
                metadata={DIRECTOR_UUID_KEY: call.director_uuid},
            )
        signals.deliver()
        log.info(
            "Creating volume %s (%s, %d GiB, type %s, zone %s)",
            volume_id,
            name,
            size_gib,
            volume_type or "Cinder's default",
            zone or "Cinder's default",
        )
        _wait_until_available(volumes, volume_id)
    except CloudError as error:
        if volume_id is None:
            raise
        raise CloudError(error.message + _removal(volumes, volume_id, call)) from None
    except KeyboardInterrupt:  # SIGTERM from the director: leave nothing behind
        if volume_id is not None:
            log.warning(
                "Interrupted: removing volume %s%s", volume_id, _removal(volumes, volume_id, call)
            )
        raise
    return volume_id


def _wait_until_available(volumes: Volume, volume_id: str) -> None:
    def failure(state: VolumeState | None) -> str | None:
        if state is None:
            return "the volume disappeared"
        if state.status.startswith("error"):
            return _with_reason(volumes, volume_id, f"Cinder put it in status {state.status}")
        return None

    volumes.wait_for_volume(
        volume_id,
        f"volume '{volume_id}' to become available",
        lambda state: state is not None and state.status == "available",
        failure,
    )


def _removal(volumes: Volume, volume_id: str, call: Call) -> str:
    """Remove a volume this call created; the sentence to add to the error."""
    try:
        volumes.remove_volume(volume_id, timeout=_cleanup_seconds(call))
    except CloudError as error:
        log.error("Could not remove volume %s: %s", volume_id, error.message)
        return (
            f". Removing the volume failed too ({error.message}): delete volume "
            f"'{volume_id}' by hand"
        )
    return f". The volume '{volume_id}' was deleted"


def delete_disk(call: Call, disk_cid: str) -> None:
    """Delete the volume and wait until it is gone; a missing volume is not an error."""
    volumes = call.cloud.volume
    try:
        if not volumes.delete_volume(disk_cid):
            log.info("Disk %s does not exist: nothing to delete", disk_cid)
            return None
    except Refused as refused:
        state = volumes.get_volume(disk_cid)
        if state is None:
            return None
        if state.status != "deleting":
            raise CloudError(_why_not_deletable(disk_cid, state, refused.detail)) from None
    volumes.wait_for_volume(
        disk_cid,
        f"volume '{disk_cid}' to be deleted",
        lambda state: state is None,
        lambda state: (
            _with_reason(volumes, disk_cid, "Cinder could not delete it (error_deleting)")
            if state is not None and state.status == "error_deleting"
            else None
        ),
    )
    return None


def _why_not_deletable(disk_cid: str, state: VolumeState, detail: str) -> str:
    text = f"Cannot delete disk '{disk_cid}': it is {state.describe()}"
    if state.attachments:
        return text + "; detach it first"
    if state.status == "available":  # Cinder's reason is something else: snapshots, ...
        return f"{text}, and Cinder refused: {detail}"
    return text + "; it can be deleted once it is available"


def has_disk(call: Call, disk_cid: str) -> bool:
    """True while the volume exists and is not being deleted."""
    state = call.cloud.volume.get_volume(disk_cid)
    return state is not None and state.status != "deleting"


# --- attach_disk, detach_disk, get_disks ----------------------------------------------


def attach_disk(call: Call, vm_cid: str, disk_cid: str) -> str | None:
    """Attach at the first free /dev/sdX after the flavor's ephemeral and swap disks and a
    config drive disk; an existing attachment is kept. API v2: the device (the disk hint
    the director hands the agent); API v1: null."""
    compute = call.cloud.compute
    attached = compute.volume_attachments(vm_cid)
    current = [device for volume_id, device in attached if volume_id == disk_cid]
    if current and current[0]:
        log.info("Disk %s is already attached to VM %s as %s", disk_cid, vm_cid, current[0])
        return _hint(call, current[0])
    device = _free_device(call, vm_cid, [device for _, device in attached])
    if current:  # attached, but Nova names no device: answer the name the agent expects
        return _hint(call, device)
    volumes = call.cloud.volume
    try:
        compute.attach_volume(vm_cid, disk_cid, device)
    except Refused as refused:
        raise CloudError(_why_not_attachable(volumes, vm_cid, disk_cid, refused)) from None
    log.info("Attaching disk %s to VM %s as %s", disk_cid, vm_cid, device)

    def failure(state: VolumeState | None) -> str | None:
        if state is None:
            return "the volume disappeared"
        if state.status.startswith("error") or state.status == "available":
            return _with_reason(
                volumes, disk_cid, f"Nova did not attach it (volume status {state.status})"
            )
        return None

    volumes.wait_for_volume(
        disk_cid,
        f"volume '{disk_cid}' to be attached to server '{vm_cid}' (in-use)",
        lambda state: (
            state is not None and state.status == "in-use" and state.attached_to(vm_cid) is not None
        ),
        failure,
    )
    return _hint(call, device)


def _free_device(call: Call, vm_cid: str, devices_in_use: list[str | None]) -> str:
    compute = call.cloud.compute
    ephemeral_gib, swap_mib = compute.flavor_disks_of(compute.disk_server(vm_cid))
    first = device_names.first_letter(
        ephemeral_gib=ephemeral_gib,
        swap_mib=swap_mib,
        config_drive=call.config.openstack.config_drive,
    )
    device = device_names.free_device(devices_in_use, first)
    if device is None:
        raise CloudError(
            f"VM '{vm_cid}' has no free device name left: /dev/sd{first} to /dev/sdz are all "
            f"taken ({len(devices_in_use)} volumes attached)"
        )
    return device


def _hint(call: Call, device: str) -> str | None:
    # The director passes the hint to the agent; API v1 directors expect null.
    return device if call.api_version >= 2 else None


def _why_not_attachable(volumes: Volume, vm_cid: str, disk_cid: str, refused: Refused) -> str:
    state = volumes.get_volume(disk_cid)
    if state is None:
        return refused.message
    elsewhere = [a for a in state.attachments if a.server_id != vm_cid]
    if elsewhere:
        return (
            f"Cannot attach disk '{disk_cid}' to VM '{vm_cid}': it is {state.describe()}; "
            f"detach it there first ({refused.detail})"
        )
    return (
        f"Cannot attach disk '{disk_cid}' to VM '{vm_cid}' (the disk is {state.describe()}): "
        + (refused.detail or refused.message)
    )


def detach_disk(call: Call, vm_cid: str, disk_cid: str) -> None:
    """Detach and wait until the volume is free; nothing to do when the disk is not
    attached to this VM or does not exist. VMNotFound when the VM does not exist."""
    volumes = call.cloud.volume
    try:
        detaching = call.cloud.compute.detach_volume(vm_cid, disk_cid)
    except Refused as refused:
        state = volumes.get_volume(disk_cid)
        if state is not None and state.attached_to(vm_cid) and state.status != "detaching":
            raise CloudError(
                f"Cannot detach disk '{disk_cid}' from VM '{vm_cid}' (the disk is "
                f"{state.describe()}): {refused.detail or refused.message}"
            ) from None
        detaching = state is not None  # a detach is already under way: wait for it
    if not detaching:
        log.info("Disk %s is not attached to VM %s: nothing to detach", disk_cid, vm_cid)
        return None
    volumes.wait_for_volume(
        disk_cid,
        f"volume '{disk_cid}' to be detached from server '{vm_cid}'",
        lambda state: (
            state is None or (state.status != "detaching" and state.attached_to(vm_cid) is None)
        ),
        lambda state: (
            _with_reason(volumes, disk_cid, "Nova could not detach it (error_detaching)")
            if state is not None and state.status == "error_detaching"
            else None
        ),
    )
    return None


def get_disks(call: Call, vm_cid: str) -> list[str]:
    """Ids of the volumes attached to the VM, without its boot volume (which is not a
    BOSH disk): the boot disk is always at letter a, persistent disks never are."""
    return [
        volume_id
        for volume_id, device in call.cloud.compute.volume_attachments(vm_cid)
        if not device_names.is_root_device(device)
    ]


# --- set_disk_metadata ------------------------------------------------------------------


def set_disk_metadata(call: Call, disk_cid: str, metadata: dict[str, Any]) -> None:
    """Add the BOSH metadata to the volume's (keys and values cut to 255 characters)."""
    tags = sanitize_metadata(metadata)
    tags.pop(DIRECTOR_UUID_KEY, None)  # the CPI's own mark stays what it is
    if not tags:
        return None
    if not call.cloud.volume.set_volume_metadata(disk_cid, tags):
        raise DiskNotFound(f"Disk '{disk_cid}' does not exist (Cinder has no such volume)")
    return None


# --- resize_disk, update_disk -----------------------------------------------------------


def resize_disk(call: Call, disk_cid: str, new_size: int) -> None:
    """Grow the volume to ceil(new_size / 1024) GiB. Equal: nothing to do. Smaller, or
    attached where Cinder cannot grow attached volumes: NotSupported, and the director
    copies the data to a new disk instead."""
    new_gib = checked_gib(new_size, "new_size")
    volumes = call.cloud.volume
    state = _existing(volumes, disk_cid)
    if new_gib == state.size_gib:
        log.info("Disk %s already has %d GiB: nothing to resize", disk_cid, new_gib)
        return None
    if new_gib < state.size_gib:
        raise NotSupported(
            f"Cannot shrink disk '{disk_cid}' from {state.size_gib} GiB to {new_gib} GiB: "
            "Cinder volumes only grow"
        )
    _extend(volumes, state, new_gib)
    return None


def update_disk(call: Call, disk_cid: str, new_size: int, cloud_properties: dict[str, Any]) -> str:
    """Give the volume the new size and the disk type's volume type in place (Cinder
    extend, then retype with migration_policy on-demand). NotSupported when Cinder cannot;
    the director then copies the data to a new disk. Returns the same disk cid."""
    new_gib = checked_gib(new_size, "new_size")
    volumes = call.cloud.volume
    state = _existing(volumes, disk_cid)
    if new_gib < state.size_gib:
        raise NotSupported(
            f"Cannot shrink disk '{disk_cid}' from {state.size_gib} GiB to {new_gib} GiB: "
            "Cinder volumes only grow"
        )
    wanted_type = _volume_type(cloud_properties, call.config.openstack)
    change_type = wanted_type is not None and wanted_type not in (
        state.volume_type,
        state.volume_type_id,
    )
    if new_gib == state.size_gib and not change_type:
        log.info("Disk %s already has %d GiB and type %s", disk_cid, new_gib, state.volume_type)
        return disk_cid
    if new_gib > state.size_gib:
        state = _extend(volumes, state, new_gib)
    if change_type and wanted_type is not None:
        _retype(volumes, state, wanted_type)
    return disk_cid


def _extend(volumes: Volume, state: VolumeState, new_gib: int) -> VolumeState:
    attached = bool(state.attachments)
    where = f"disk '{state.id}' ({state.describe()})"
    if attached and not volumes.can_extend_attached():
        raise NotSupported(
            f"Cannot grow {where} while it is attached: this cloud's Block Storage API does "
            "not offer extending attached volumes (microversion 3.42); detach it first"
        )
    try:
        volumes.extend_volume(state.id, new_gib)
    except Refused as refused:
        if attached:  # e.g. the cloud's policy forbids extending attached volumes
            raise NotSupported(
                f"Cinder cannot grow {where} while it is attached: {refused.detail}"
            ) from None
        raise CloudError(f"{refused.message} (the disk is {state.describe()})") from None
    log.info("Growing disk %s from %d GiB to %d GiB", state.id, state.size_gib, new_gib)
    grown = volumes.wait_for_volume(
        state.id,
        f"volume '{state.id}' to grow to {new_gib} GiB",
        lambda s: s is not None and s.size_gib >= new_gib and s.status in ("available", "in-use"),
        lambda s: (
            "the volume disappeared"
            if s is None
            else _with_reason(volumes, state.id, f"Cinder could not extend it ({s.status})")
            if s.status.startswith("error")
            else None
        ),
    )
    if grown is None:  # is_done never accepts None; this keeps the types honest
        raise DiskNotFound(f"Disk '{state.id}' disappeared while it was being extended")
    return grown


def _retype(volumes: Volume, state: VolumeState, wanted_type: str) -> None:
    try:
        volumes.retype_volume(state.id, wanted_type)
    except Refused as refused:
        raise NotSupported(
            f"Cinder cannot change the type of disk '{state.id}' from '{state.volume_type}' "
            f"to '{wanted_type}': {refused.detail}"
        ) from None
    log.info("Changing the type of disk %s from %s to %s", state.id, state.volume_type, wanted_type)
    final = volumes.wait_for_volume(
        state.id,
        f"volume '{state.id}' to change its type to '{wanted_type}'",
        lambda s: s is None or s.status != "retyping",
    )
    if final is None:
        raise DiskNotFound(f"Disk '{state.id}' disappeared while its type was being changed")
    if wanted_type not in (final.volume_type, final.volume_type_id):
        raise NotSupported(
            _with_reason(
                volumes,
                state.id,
                f"Cinder could not change the type of disk '{state.id}' to '{wanted_type}' "
                f"(it is {final.describe()}, type '{final.volume_type}')",
            )
        )
