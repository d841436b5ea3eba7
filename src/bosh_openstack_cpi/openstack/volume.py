"""Cinder: volumes (persistent disks) and snapshots.

Returns plain values (`VolumeState`, `SnapshotState`). Reads, deletes and metadata
updates are retried on transient failures (openstack/retry.py); a create that may have
reached Cinder is looked up by its unique name before it is sent again, so that a lost
answer never makes a second volume or snapshot.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from openstack import connection as sdk_connection
from openstack import exceptions as sdk
from openstack import utils as sdk_utils

from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack.errors import api_errors, describe_http_error
from bosh_openstack_cpi.openstack.retry import (
    idempotent,
    is_transient,
    rate_limited,
    refused_only,
    retry_after,
)
from bosh_openstack_cpi.openstack.waiting import FIRST_INTERVAL, wait_for
from bosh_openstack_cpi.protocol.errors import CloudError

log = logging.getLogger(__name__)

SERVICE = "Block Storage"
T = TypeVar("T")

# Cinder microversions this adapter relies on when the cloud offers them.
EXTEND_ATTACHED_MICROVERSION = "3.42"
MESSAGES_MICROVERSION = "3.3"

# A create whose answer was lost is looked up, then sent again at most this often.
CREATE_ATTEMPTS = 3
# How long such a create may take to show up: after an error answer the request is over;
# without an answer (or after a gateway's 504) it may still be on its way.
ANSWERED_SETTLE_SECONDS = 3.0
LOST_ANSWER_SETTLE_SECONDS = 60.0

# Cinder's answers when a resource's state does not allow a request.
_REFUSALS = (sdk.BadRequestException, sdk.ConflictException)

# Transitional states in which Cinder refuses to delete a volume or snapshot.
BUSY_STATES = frozenset(
    {"creating", "attaching", "detaching", "extending", "retyping", "reserved", "deleting"}
)


@dataclass(frozen=True)
class Attachment:
    server_id: str
    device: str | None


@dataclass(frozen=True)
class VolumeState:
    id: str
    status: str
    size_gib: int
    availability_zone: str | None
    volume_type: str | None
    volume_type_id: str | None
    migration_status: str | None
    attachments: tuple[Attachment, ...]

    def attached_to(self, server_id: str) -> Attachment | None:
        return next((a for a in self.attachments if a.server_id == server_id), None)

    def describe(self) -> str:
        """ "in-use, attached to server 'x' as /dev/sdc", for errors and timeouts."""
        text = self.status
        if self.attachments:
            servers = ", ".join(
                f"server '{a.server_id}'" + (f" as {a.device}" if a.device else "")
                for a in self.attachments
            )
            text += f", attached to {servers}"
        return text


@dataclass(frozen=True)
class SnapshotState:
    id: str
    status: str
    volume_id: str | None


class Refused(CloudError):
    """Cinder refused a request because of the resource's state (HTTP 400 or 409).

    Callers look at the resource to explain why; `detail` keeps Cinder's own words."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


def openstack_words(error: sdk.HttpException) -> str:
    """The service's own message: `details`, unwrapped when it is still a JSON fault body
    such as {"badRequest": {"code": 400, "message": "..."}}."""
    details = str(error.details or error.message or "").strip()
    if details.startswith("{"):
        try:
            body = json.loads(details)
        except ValueError:
            return details
        for fault in body.values() if isinstance(body, dict) else ():
            if isinstance(fault, dict) and fault.get("message"):
                return str(fault["message"])
    return details


def _volume_state(volume: Any) -> VolumeState:
    attachments = tuple(
        Attachment(server_id=str(a.get("server_id")), device=a.get("device"))
        for a in (volume.attachments or [])
        if isinstance(a, dict) and a.get("server_id")
    )
    return VolumeState(
        id=str(volume.id),
        status=str(volume.status or "").lower(),
        size_gib=int(volume.size or 0),
        availability_zone=volume.availability_zone,
        volume_type=volume.volume_type,
        volume_type_id=volume.volume_type_id,
        migration_status=volume.migration_status,
        attachments=attachments,
    )


def _snapshot_state(snapshot: Any) -> SnapshotState:
    return SnapshotState(
        id=str(snapshot.id),
        status=str(snapshot.status or "").lower(),
        volume_id=snapshot.volume_id,
    )


def _deletion_failure(state: VolumeState | SnapshotState | None) -> str | None:
    if state is not None and state.status == "error_deleting":
        return "Cinder could not delete it (status error_deleting); an operator must check it"
    return None


class Volume:
    def __init__(self, connection: sdk_connection.Connection, config: OpenStackConfig) -> None:
        self._connection = connection
        self._config = config
        self._sleep: Callable[[float], None] = time.sleep

    @property
    def _cinder(self) -> Any:
        # Built on first use: a call that never touches Cinder pays no version discovery.
        return self._connection.block_storage

    # --- volumes -------------------------------------------------------------------

    def create_volume(
        self,
        *,
        name: str,
        size_gib: int,
        volume_type: str | None,
        availability_zone: str | None,
        metadata: dict[str, str],
    ) -> str:
        """POST /volumes; the id of the new volume (which may still be `creating`)."""
        attributes: dict[str, Any] = {
            "name": name,
            "description": "",
            "size": size_gib,
            "metadata": metadata,
        }
        if volume_type:
            attributes["volume_type"] = volume_type
        if availability_zone:
            attributes["availability_zone"] = availability_zone
        with api_errors(SERVICE, f"create volume '{name}' ({size_gib} GiB)"):
            try:
                return self._create_once(
                    f"create volume '{name}'",
                    lambda: str(self._cinder.create_volume(**attributes).id),
                    lambda: self._find_by_name(self._cinder.volumes, name),
                    self._sleep,
                )
            except sdk.NotFoundException as error:
                # the only thing the create request names that can be missing
                raise CloudError(
                    f"Cinder has no volume type '{volume_type}' ({describe_http_error(error)})"
                    f"{self._known_types_hint()}: set the disk type's cloud_properties.type "
                    "or openstack.default_volume_type to one of them"
                ) from None
            except sdk.BadRequestException as error:
                hint = ""
                if availability_zone and "availability" in str(error.details).lower():
                    hint = (
                        f"; the VM's availability zone '{availability_zone}' is not a Cinder "
                        "availability zone: set openstack.ignore_server_availability_zone: true "
                        "if compute and block storage zones differ"
                    )
                raise CloudError(
                    f"OpenStack {SERVICE} API: create volume '{name}' ({size_gib} GiB) failed, "
                    f"{describe_http_error(error)}{hint}"
                ) from None

    def get_volume(self, volume_id: str) -> VolumeState | None:
        with api_errors(SERVICE, f"look up volume '{volume_id}'"):
            try:
                volume = idempotent(
                    lambda: self._cinder.get_volume(volume_id), f"look up volume {volume_id}"
                )
            except sdk.NotFoundException:
                return None
        return _volume_state(volume)

    def delete_volume(self, volume_id: str) -> bool:
        """Ask Cinder to delete the volume; False when it does not exist.
        Raises Refused when its state does not allow deletion."""
        with api_errors(SERVICE, f"delete volume '{volume_id}'"):
            try:
                idempotent(
                    lambda: self._cinder.delete_volume(volume_id, ignore_missing=False),
                    f"delete volume {volume_id}",
                )
            except sdk.NotFoundException:
                return False
            except _REFUSALS as error:
                raise Refused(
                    f"Cinder refused to delete volume '{volume_id}': {describe_http_error(error)}",
                    openstack_words(error),
                ) from None
        return True

    def set_volume_metadata(self, volume_id: str, metadata: dict[str, str]) -> bool:
        """Add or replace these keys (others stay); False when the volume does not exist."""
        with api_errors(SERVICE, f"set metadata of volume '{volume_id}'"):
            try:
                idempotent(
                    lambda: self._cinder.set_volume_metadata(volume_id, **metadata),
                    f"set metadata of volume {volume_id}",
                )
            except sdk.NotFoundException:
                return False
        return True

    def can_extend_attached(self) -> bool:
        """Cinder extends in-use volumes (and tells Nova) from microversion 3.42 on."""
        with api_errors(SERVICE, "read the API versions"):
            return bool(sdk_utils.supports_microversion(self._cinder, EXTEND_ATTACHED_MICROVERSION))

    def extend_volume(self, volume_id: str, size_gib: int) -> None:
        """A request whose fate is unknown (5xx, lost answer) is sent again: if the first did
        arrive, Cinder refuses the second (extending, or already that size), which then
        means done."""
        sent = [0]

        def send() -> None:
            sent[0] += 1
            self._cinder.extend_volume(volume_id, size_gib)

        with api_errors(SERVICE, f"extend volume '{volume_id}' to {size_gib} GiB"):
            try:
                idempotent(send, f"extend volume {volume_id}")
            except (*_REFUSALS, sdk.ForbiddenException) as error:
                if sent[0] > 1:
                    state = self.get_volume(volume_id)
                    if state is not None and (
                        state.status == "extending" or state.size_gib >= size_gib
                    ):
                        log.info("Volume %s: an earlier extend request did arrive", volume_id)
                        return
                raise Refused(
                    f"Cinder refused to extend volume '{volume_id}' to {size_gib} GiB: "
                    f"{describe_http_error(error)}",
                    openstack_words(error),
                ) from None

    def retype_volume(self, volume_id: str, volume_type: str) -> None:
        """Change the volume type, letting Cinder migrate the data when the backend must
        change (migration_policy on-demand)."""
        with api_errors(SERVICE, f"change the type of volume '{volume_id}' to '{volume_type}'"):
            try:
                refused_only(
                    lambda: self._cinder.retype_volume(
                        volume_id, volume_type, migration_policy="on-demand"
                    ),
                    f"retype volume {volume_id}",
                )
            except sdk.NotFoundException as error:
                raise CloudError(
                    f"Cannot change the type of volume '{volume_id}' to '{volume_type}': "
                    f"{describe_http_error(error)}{self._known_types_hint()}"
                ) from None
            except (*_REFUSALS, sdk.ForbiddenException) as e:
                raise Refused(
                    f"Cinder refused to change the type of volume '{volume_id}' to "
                    f"'{volume_type}': {describe_http_error(e)}",
                    openstack_words(e),
                ) from None

    def wait_for_volume(
        self,
        volume_id: str,
        what: str,
        is_done: Callable[[VolumeState | None], bool],
        failure: Callable[[VolumeState | None], str | None] = lambda _: None,
        timeout: float | None = None,
    ) -> VolumeState | None:
        """Poll the volume (None once it is gone) until `is_done`."""
        self._settle()
        return wait_for(
            what,
            lambda: self.get_volume(volume_id),
            is_done,
            timeout=self._config.state_timeout if timeout is None else timeout,
            max_interval=self._config.wait_resource_poll_interval,
            failure=failure,
            describe=lambda v: "deleted" if v is None else v.describe(),
        )

    # --- snapshots -----------------------------------------------------------------

    def create_snapshot(
        self, *, volume_id: str, name: str, description: str, metadata: dict[str, str]
    ) -> str:
        """POST /snapshots with force (in-use volumes too); the id of the new snapshot."""
        with api_errors(SERVICE, f"create snapshot '{name}' of volume '{volume_id}'"):
            try:
                return self._create_once(
                    f"create snapshot '{name}'",
                    lambda: str(
                        self._cinder.create_snapshot(
                            volume_id=volume_id,
                            name=name,
                            description=description,
                            is_forced=True,
                            metadata=metadata,
                        ).id
                    ),
                    lambda: self._find_by_name(self._cinder.snapshots, name),
                    self._sleep,
                )
            except _REFUSALS as error:
                raise Refused(
                    f"Cinder refused to snapshot volume '{volume_id}': "
                    f"{describe_http_error(error)}",
                    openstack_words(error),
                ) from None

    def get_snapshot(self, snapshot_id: str) -> SnapshotState | None:
        with api_errors(SERVICE, f"look up snapshot '{snapshot_id}'"):
            try:
                snapshot = idempotent(
                    lambda: self._cinder.get_snapshot(snapshot_id),
                    f"look up snapshot {snapshot_id}",
                )
            except sdk.NotFoundException:
                return None
        return _snapshot_state(snapshot)

    def delete_snapshot(self, snapshot_id: str) -> bool:
        """Ask Cinder to delete the snapshot; False when it does not exist.
        Raises Refused when its state does not allow deletion."""
        with api_errors(SERVICE, f"delete snapshot '{snapshot_id}'"):
            try:
                idempotent(
                    lambda: self._cinder.delete_snapshot(snapshot_id, ignore_missing=False),
                    f"delete snapshot {snapshot_id}",
                )
            except sdk.NotFoundException:
                return False
            except _REFUSALS as error:
                raise Refused(
                    f"Cinder refused to delete snapshot '{snapshot_id}': "
                    f"{describe_http_error(error)}",
                    openstack_words(error),
                ) from None
        return True

    def wait_for_snapshot(
        self,
        snapshot_id: str,
        what: str,
        is_done: Callable[[SnapshotState | None], bool],
        failure: Callable[[SnapshotState | None], str | None] = lambda _: None,
        timeout: float | None = None,
    ) -> SnapshotState | None:
        """Poll the snapshot (None once it is gone) until `is_done`."""
        self._settle()
        return wait_for(
            what,
            lambda: self.get_snapshot(snapshot_id),
            is_done,
            timeout=self._config.state_timeout if timeout is None else timeout,
            max_interval=self._config.wait_resource_poll_interval,
            failure=failure,
            describe=lambda s: "deleted" if s is None else f"status {s.status}",
        )

    # --- removal after a failure ------------------------------------------------------

    def remove_volume(self, volume_id: str, *, timeout: float) -> None:
        """Delete a volume the CPI just created and wait until it is gone; when it is still
        busy (`creating`), first wait for it to settle."""
        self._remove(
            f"volume '{volume_id}'",
            lambda: self.delete_volume(volume_id),
            lambda what, done, failure: self.wait_for_volume(
                volume_id, what, done, failure, timeout=timeout
            ),
        )

    def remove_snapshot(self, snapshot_id: str, *, timeout: float) -> None:
        """Delete a snapshot the CPI just created and wait until it is gone; when it is
        still busy (`creating`), first wait for it to settle."""
        self._remove(
            f"snapshot '{snapshot_id}'",
            lambda: self.delete_snapshot(snapshot_id),
            lambda what, done, failure: self.wait_for_snapshot(
                snapshot_id, what, done, failure, timeout=timeout
            ),
        )

    @staticmethod
    def _remove(what: str, delete: Callable[[], bool], wait: Callable[..., Any]) -> None:
        try:
            exists = delete()
        except Refused:
            wait(
                f"{what} to settle so that it can be deleted",
                lambda s: s is None or s.status not in BUSY_STATES,
                lambda _: None,
            )
            exists = delete()
        if exists:
            wait(f"{what} to be deleted", lambda s: s is None, _deletion_failure)

    # --- diagnostics -----------------------------------------------------------------

    def failure_reason(self, resource_id: str) -> str | None:
        """Cinder's user message about a resource that went to `error` (API 3.3+), e.g.
        "schedule allocate volume: Could not find any available weighted backend."."""
        try:
            if not sdk_utils.supports_microversion(self._cinder, MESSAGES_MICROVERSION):
                return None
            response = self._cinder.get(
                "/messages",
                params={"resource_uuid": resource_id},
                microversion=MESSAGES_MICROVERSION,
            )
            sdk.raise_from_response(response)
            messages = response.json().get("messages") or []
        except Exception as error:  # only a better message is lost
            log.debug("No Cinder message for %s: %s", resource_id, error)
            return None
        texts = [str(m.get("user_message")) for m in messages if m.get("user_message")]
        return "; ".join(dict.fromkeys(texts)) or None

    def _known_types_hint(self) -> str:
        try:
            names = sorted(str(t.name) for t in self._cinder.types())
        except Exception as error:  # only a better message is lost
            log.debug("Cannot list volume types: %s", error)
            return ""
        return f" (volume types visible to this project: {', '.join(names)})" if names else ""

    # --- helpers -----------------------------------------------------------------------

    def _settle(self) -> None:
        """Every wait here follows a request Cinder or Nova act on asynchronously: a poll
        right away would only see the old state, so the first one comes a moment later."""
        self._sleep(min(FIRST_INTERVAL, self._config.wait_resource_poll_interval))

    @staticmethod
    def _find_by_name(lister: Callable[..., Any], name: str) -> str | None:
        found = [str(item.id) for item in lister(name=name)]
        return found[0] if found else None

    @staticmethod
    def _create_once(
        what: str,
        create: Callable[[], str],
        find: Callable[[], str | None],
        sleep: Callable[[float], None] | None = None,
    ) -> str:
        """Send a create; when its fate is unknown (lost or cut-off answer, timeout, 5xx),
        look for the resource by its unique name before sending it again, for as long as
        the request may still be on its way: one that timed out can arrive later, and sent
        again at once it made a second volume. A rate-limited request was turned away
        unprocessed: it is sent again after Retry-After. (keystoneauth reports read timeouts
        as ConnectTimeout, so even a "connect" failure may have reached Cinder.)"""
        pause = sleep or time.sleep
        attempt = 1
        while True:
            try:
                return create()
            except Exception as error:
                if not is_transient(error) or attempt >= CREATE_ATTEMPTS:
                    raise
                if rate_limited(error):
                    pause(retry_after(error) or attempt)
                else:
                    found = _appearing(find, what, _settle_seconds(error), pause)
                    if found is not None:
                        log.info("%s: the request did reach the cloud, using %s", what, found)
                        return found
                    log.warning("%s failed (%s), sending it again", what, type(error).__name__)
                attempt += 1


def _settle_seconds(error: Exception) -> float:
    status = getattr(error, "status_code", None)
    return ANSWERED_SETTLE_SECONDS if status in (500, 502, 503) else LOST_ANSWER_SETTLE_SECONDS


def _appearing(
    find: Callable[[], str | None], what: str, settle: float, sleep: Callable[[float], None]
) -> str | None:
    """Look for a created resource until it shows up or `settle` seconds of pauses passed
    (growing pauses: a few lookups in all)."""
    waited, pause = 0.0, 0.5
    while True:
        found = idempotent(find, f"{what}: look for it after a failed request")
        if found is not None or waited >= settle:
            return found
        sleep(pause)
        waited += pause
        pause = min(pause * 2, 5.0)
