"""Stemcell methods: create_stemcell, delete_stemcell.

A heavy stemcell's `image` (a gzipped tar holding root.img) is streamed from the
archive straight into Glance, hashed on the way and verified against what Glance stored.
A light stemcell references an existing Glance image by `cloud_properties.image_id`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

from bosh_openstack_cpi import cids
from bosh_openstack_cpi.protocol.errors import CloudError
from bosh_openstack_cpi.signals import SignalsDeferred
from bosh_openstack_cpi.stemcell_archive import (
    HASH_ALGORITHM,
    SUPPORTED_DISK_FORMATS,
    RootImage,
    check_disk_format,
    open_root_image,
    with_progress,
)
from bosh_openstack_cpi.tagging import DIRECTOR_UUID_KEY, metadata_value, sanitize_metadata

if TYPE_CHECKING:
    from bosh_openstack_cpi.call import Call
    from bosh_openstack_cpi.openstack.image import Image, ImageState

log = logging.getLogger(__name__)

LIGHT_SUFFIX = " light"

# stemcell.MF cloud_properties copied (as strings) into image properties, as the
# reference CPI does; `hypervisor` becomes Glance's `hypervisor_type`.
COPIED_PROPERTIES = (
    "version",
    "os_type",
    "os_distro",
    "architecture",
    "auto_disk_config",
    "hw_vif_model",
    "hw_disk_bus_model",
    "hw_scsi_model",
    "hw_disk_bus",
    "hw_vif_multiqueue_enabled",
)
RENAMED_PROPERTIES = {"hypervisor": "hypervisor_type"}
COPIED_PREFIX = "vmware_"

# Glance's own image attributes: a director tag with one of these names cannot become
# an image property (Glance refuses the whole request), so it is skipped.
GLANCE_ATTRIBUTES = frozenset(
    {
        "id",
        "name",
        "status",
        "visibility",
        "protected",
        "os_hidden",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "owner",
        "size",
        "virtual_size",
        "container_format",
        "disk_format",
        "created_at",
        "updated_at",
        "tags",
        "direct_url",
        "locations",
        "self",
        "file",
        "schema",
        "min_ram",
        "min_disk",
        "stores",
    }
)


def create_stemcell(
    call: Call, image_path: str, cloud_properties: dict[str, Any], env: dict[str, Any] | None = None
) -> str:
    if cloud_properties.get("image_id") is not None:
        return _check_light_stemcell(call, cloud_properties["image_id"])
    attributes = image_attributes(
        cloud_properties,
        director_uuid=call.director_uuid,
        public=call.config.openstack.stemcell_public_visibility,
        tags=_tags(env),
    )
    return _upload_heavy_stemcell(call, image_path, attributes)


def delete_stemcell(call: Call, stemcell_cid: str) -> None:
    """Idempotent: an image that is already gone is success."""
    if stemcell_cid.endswith(LIGHT_SUFFIX):
        log.info(
            "'%s' is a light stemcell: its image is not the CPI's, nothing to delete", stemcell_cid
        )
        return
    if call.cloud.image.delete(stemcell_cid):
        log.info("Deleted image '%s'", stemcell_cid)
    else:
        log.info("Image '%s' does not exist (already deleted)", stemcell_cid)


# --- light stemcells ------------------------------------------------------------------


def _check_light_stemcell(call: Call, image_id: Any) -> str:
    if not isinstance(image_id, str) or not cids.is_valid("image_id", image_id):
        raise CloudError(
            "Light stemcell cloud_properties.image_id must be the id of a Glance image, "
            f"a UUID such as '{cids.EXAMPLE_UUID}', got {cids.describe(image_id)}"
        )
    state = call.cloud.image.get(image_id)
    if state is None:
        problem = "Glance does not know it, or it is not visible to the CPI's project"
    elif state.status != "active":
        problem = f"its status is '{state.status}'"
    else:
        log.info("Light stemcell: image '%s' (%s) is active", image_id, state.name)
        return image_id + LIGHT_SUFFIX
    raise CloudError(
        f"No active image with id '{image_id}' referenced by light stemcell found in "
        f"OpenStack: {problem}"
    )


# --- heavy stemcells: image attributes -------------------------------------------------


def image_attributes(
    cloud_properties: dict[str, Any],
    *,
    director_uuid: str,
    public: bool,
    tags: dict[str, str],
) -> dict[str, str]:
    """The Glance create body: name `<name>/<version>`, formats, visibility, properties.

    Precedence: the CPI's own property director_uuid, then the stemcell's properties,
    then the director's tags."""
    name = _required(cloud_properties, "name")
    version = _required(cloud_properties, "version")
    disk_format = cloud_properties.get("disk_format")
    if disk_format not in SUPPORTED_DISK_FORMATS:
        raise CloudError(
            "Stemcell cloud_properties.disk_format must be one of "
            f"{', '.join(SUPPORTED_DISK_FORMATS)} (the stemcell formats this CPI supports), "
            f"got {json.dumps(disk_format)}"
        )
    container_format = cloud_properties.get("container_format") or "bare"
    if not isinstance(container_format, str):
        raise CloudError(
            "Stemcell cloud_properties.container_format must be a string such as 'bare', "
            f"got {json.dumps(container_format)}"
        )
    properties: dict[str, str] = {}
    for key, value in tags.items():
        if key in GLANCE_ATTRIBUTES or key.startswith("os_glance"):
            log.warning("Tag '%s' is not set on the image: Glance reserves that name", key)
        else:
            properties[key] = value
    for key, value in cloud_properties.items():
        if value is None:
            continue
        if key in COPIED_PROPERTIES or key.startswith(COPIED_PREFIX):
            properties[key] = metadata_value(value)
        elif key in RENAMED_PROPERTIES:
            properties[RENAMED_PROPERTIES[key]] = metadata_value(value)
    properties[DIRECTOR_UUID_KEY] = director_uuid
    return {
        **properties,
        "name": f"{name}/{version}",
        "disk_format": disk_format,
        "container_format": container_format,
        "visibility": "public" if public else "private",
    }


def _required(cloud_properties: dict[str, Any], key: str) -> str:
    value = cloud_properties.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
        raise CloudError(
            f"Stemcell cloud_properties.{key} is required (a string, from stemcell.MF), "
            f"got {json.dumps(value)}"
        )
    return str(value)


def _tags(env: dict[str, Any] | None) -> dict[str, str]:
    """CPI API v3 passes {"tags": {...}} as create_stemcell's third argument."""
    tags = (env or {}).get("tags")
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise CloudError(f"create_stemcell's tags must be an object, got {json.dumps(tags)}")
    return sanitize_metadata(tags)


# --- heavy stemcells: upload -----------------------------------------------------------


def _upload_heavy_stemcell(call: Call, image_path: str, attributes: dict[str, str]) -> str:
    # The archive is checked (format, members, root.img) before anything exists in Glance.
    with open_root_image(image_path) as root:
        check_disk_format(image_path, attributes["disk_format"], root.head)
        glance = call.cloud.image
        # The image's id is chosen here (Glance accepts one): a create whose answer is lost
        # is then found by it, and removed by it if the call fails.
        attributes = {**attributes, "id": str(uuid.uuid4())}
        try:
            with SignalsDeferred() as signals:  # a SIGTERM now would lose the new image
                image = glance.create(attributes)
        except BaseException:
            _remove_if_created(glance, attributes["id"])
            raise
        try:
            signals.deliver()
            log.info(
                "Created image '%s' (%s); uploading %s (%d bytes, %s) from %s",
                image.id,
                image.name,
                root.member_name,
                root.size,
                attributes["disk_format"],
                image_path,
            )
            size, digest = _upload_with_one_retry(glance, image.id, root)
            stored = glance.wait_until_active(image.id)
            _verify(stored, size, digest)
        except BaseException as failure:  # a signal too: nothing half-made may stay behind
            _delete_half_made_image(glance, image.id, failure)
            raise
    return image.id


def _remove_if_created(glance: Image, image_id: str) -> None:
    """After a failed create: a request whose answer was lost may have made the image."""
    try:
        if glance.delete(image_id):
            log.info("Deleted image '%s', made by a create whose answer was lost", image_id)
    except CloudError as cleanup:
        log.error(
            "Could not delete image '%s', which a create whose answer was lost may have made: %s",
            image_id,
            cleanup.message,
        )


def _upload_with_one_retry(glance: Image, image_id: str, root: RootImage) -> tuple[int, str]:
    """A consumed stream is never re-sent: a second attempt reads the archive again."""
    from bosh_openstack_cpi.openstack.image import TransientUploadError

    try:
        _send(glance, image_id, root)
        return root.size, root.digest
    except TransientUploadError as failure:
        status = _status_after_failure(glance, image_id)
        if failure.answer_lost and status in ("saving", "active"):
            # Glance has the data, only its answer was lost: what it stored is checked next
            # (size and hash), as after any upload.
            log.warning(
                "%s; Glance has image '%s' %s all the same: checking what it stored",
                failure.message,
                image_id,
                status,
            )
            return root.size, root.digest
        if status != "queued":
            raise
        log.warning(
            "%s; Glance kept image '%s' queued, so reading %s again for a second and last attempt",
            failure.message,
            image_id,
            root.path,
        )
    root.close()
    with open_root_image(root.path) as again:
        _send(glance, image_id, again)
        return again.size, again.digest


def _status_after_failure(glance: Image, image_id: str) -> str | None:
    """The image's status after a failed upload: `queued` when Glance reset it (it does when
    it could clean up), so that the data may be sent again; `saving` or `active` when it
    got the data after all. None when it cannot be looked at."""
    try:
        state = glance.get(image_id)
    except CloudError as error:
        log.warning("Could not look at image '%s' after the failed upload: %s", image_id, error)
        return None
    return state.status if state is not None else None


def _send(glance: Image, image_id: str, root: RootImage) -> None:
    chunks = root.chunks()
    if sys.stderr.isatty():  # a person at a terminal; the director's stderr is a pipe
        chunks = with_progress(chunks, root.size, sys.stderr, f"Uploading {root.member_name}")
    started = time.monotonic()
    glance.upload(image_id, chunks, root.size)
    seconds = time.monotonic() - started
    mib = root.size / (1 << 20)
    log.info(
        "Uploaded %.1f MiB in %.1f s (%.0f MiB/s)", mib, seconds, mib / seconds if seconds else 0
    )


def _verify(stored: ImageState, size: int, digest: str) -> None:
    if stored.size != size:
        raise CloudError(
            f"Glance stored {stored.size} bytes for image '{stored.id}', but the CPI sent "
            f"{size}: the upload was corrupted on the way"
        )
    if stored.hash_algo != HASH_ALGORITHM:
        log.warning(
            "Glance hashes images with '%s', not %s: only the size of image '%s' was verified",
            stored.hash_algo,
            HASH_ALGORITHM,
            stored.id,
        )
        return
    if stored.hash_value != digest:
        raise CloudError(
            f"Glance's {HASH_ALGORITHM} of image '{stored.id}' differs from that of the "
            "root.img the CPI sent: the upload was corrupted on the way"
        )
    log.info("Image '%s' is active; Glance's size and %s match", stored.id, HASH_ALGORITHM)


def _delete_half_made_image(glance: Image, image_id: str, failure: BaseException) -> None:
    try:
        glance.delete(image_id)
    except CloudError as cleanup:
        log.error("Could not delete the half-made image '%s': %s", image_id, cleanup.message)
        if isinstance(failure, CloudError):
            failure.message += (
                f" (the CPI could not delete the half-made image '{image_id}': "
                f"{cleanup.message}; delete it by hand)"
            )
        return
    log.info("Deleted the half-made image '%s'", image_id)
    if isinstance(failure, CloudError):
        failure.message += f" (the half-made image '{image_id}' was deleted)"
