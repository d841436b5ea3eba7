"""Cinder: volumes (persistent disks) and snapshots.

Plain REST requests to the Cinder v3 API through a transport adapter. Volume and
snapshot requests use the newest microversion both sides know (up to what the CPI was
written for), so that answers carry `volume_type_id` and in-use volumes can be extended.
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

from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack import http, paths
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
# Newest microversions the requests are written for (volume_type_id in volumes from 3.63).
VOLUME_MICROVERSION = "3.71"
SNAPSHOT_MICROVERSION = "3.65"

# A create whose answer was lost is looked up, then sent again at most this often.
CREATE_ATTEMPTS = 3
# How long such a create may take to show up: after an error answer the request is over;
# without an answer (or after a gateway's 504) it may still be on its way.
ANSWERED_SETTLE_SECONDS = 3.0
LOST_ANSWER_SETTLE_SECONDS = 60.0

# Cinder's answers when a resource's state does not allow a request.
_REFUSALS = (http.BadRequestException, http.ConflictException)

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


def openstack_words(error: http.HttpException) -> str:
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


def _volume_state(volume: dict[str, Any]) -> VolumeState:
    attachments = tuple(
        Attachment(server_id=str(a.get("server_id")), device=a.get("device"))
        for a in (volume.get("attachments") or [])
        if isinstance(a, dict) and a.get("server_id")
    )
    return VolumeState(
        id=str(volume["id"]),
        status=str(volume.get("status") or "").lower(),
        size_gib=int(volume.get("size") or 0),
        availability_zone=volume.get("availability_zone"),
        volume_type=volume.get("volume_type"),
        volume_type_id=volume.get("volume_type_id"),
        migration_status=volume.get("os-vol-mig-status-attr:migstat"),
        attachments=attachments,
    )


def _snapshot_state(snapshot: dict[str, Any]) -> SnapshotState:
    return SnapshotState(
        id=str(snapshot["id"]),
        status=str(snapshot.get("status") or "").lower(),
        volume_id=snapshot.get("volume_id"),
    )


def _deletion_failure(state: VolumeState | SnapshotState | None) -> str | None:
    if state is not None and state.status == "error_deleting":
        return "Cinder could not delete it (status error_deleting); an operator must check it"
    return None


class Volume:
    def __init__(self, connection: http.Services, config: OpenStackConfig) -> None:
        self._connection = connection
        self._config = config
        self._sleep: Callable[[float], None] = time.sleep
        self._microversions: dict[str, str | None] = {}

    @property
    def _cinder(self) -> http.Adapter:
        # Built on first use: a call that never touches Cinder pays no version discovery.
        return self._connection.block_storage

    def _microversion(self, wanted: str) -> str | None:
        """`wanted`, or Cinder's newest when older (from the cached version discovery)."""
        if wanted not in self._microversions:
            self._microversions[wanted] = http.best_microversion(self._cinder, wanted)
        return self._microversions[wanted]

    def _send(
        self, method: str, path: str, *, microversion: str | None = None, **kwargs: Any
    ) -> http.Response:
        """One Cinder request; http.HttpException for an error answer."""
        if microversion is not None:
            kwargs["microversion"] = self._microversion(microversion)
        response = self._cinder.request(path, method, **kwargs)
        http.raise_from_response(response)
        return response

    def _document(self, method: str, path: str, key: str, **kwargs: Any) -> dict[str, Any]:
        """The `key` object of a Cinder answer, e.g. the "volume" of {"volume": {...}}."""
        document: dict[str, Any] = self._send(method, path, **kwargs).json()[key]
        return document

    def _volume_action(self, volume_id: str, body: dict[str, Any]) -> None:
        self._send(
            "POST",
            paths.path("/volumes/{}/action", volume_id),
            json=body,
            microversion=VOLUME_MICROVERSION,
        )

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
                    lambda: str(
                        self._document(
                            "POST",
                            "/volumes",
                            "volume",
                            json={"volume": attributes},
                            microversion=VOLUME_MICROVERSION,
                        )["id"]
                    ),
                    lambda: self._find_by_name("/volumes/detail", "volumes", name),
                    self._sleep,
                )
            except http.NotFoundException as error:
                # the only thing the create request names that can be missing
                raise CloudError(
                    f"Cinder has no volume type '{volume_type}' ({describe_http_error(error)})"
                    f"{self._known_types_hint()}: set the disk type's cloud_properties.type "
                    "or openstack.default_volume_type to one of them"
                ) from None
            except http.BadRequestException as error:
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
                    lambda: self._document(
                        "GET",
                        paths.path("/volumes/{}", volume_id),
                        "volume",
                        microversion=VOLUME_MICROVERSION,
                    ),
                    f"look up volume {volume_id}",
                )
            except http.NotFoundException:
                return None
        return _volume_state(volume)

    def delete_volume(self, volume_id: str) -> bool:
        """Ask Cinder to delete the volume; False when it does not exist.
        Raises Refused when its state does not allow deletion."""
        with api_errors(SERVICE, f"delete volume '{volume_id}'"):
            try:
                idempotent(
                    lambda: self._send("DELETE", paths.path("/volumes/{}", volume_id)),
                    f"delete volume {volume_id}",
                )
            except http.NotFoundException:
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
                    lambda: self._send(
                        "POST",
                        paths.path("/volumes/{}/metadata", volume_id),
                        json={"metadata": metadata},
                    ),
                    f"set metadata of volume {volume_id}",
                )
            except http.NotFoundException:
                return False
        return True

    def can_extend_attached(self) -> bool:
        """Cinder extends in-use volumes (and tells Nova) from microversion 3.42 on."""
        with api_errors(SERVICE, "read the API versions"):
            return http.supports_microversion(self._cinder, EXTEND_ATTACHED_MICROVERSION)

    def extend_volume(self, volume_id: str, size_gib: int) -> None:
        """A request whose fate is unknown (5xx, lost answer) is sent again: if the first did
        arrive, Cinder refuses the second (extending, or already that size), which then
        means done."""
        sent = [0]

        def send() -> None:
            sent[0] += 1
            self._volume_action(volume_id, {"os-extend": {"new_size": size_gib}})

        with api_errors(SERVICE, f"extend volume '{volume_id}' to {size_gib} GiB"):
            try:
                idempotent(send, f"extend volume {volume_id}")
            except (*_REFUSALS, http.ForbiddenException) as error:
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
                    lambda: self._volume_action(
                        volume_id,
                        {"os-retype": {"new_type": volume_type, "migration_policy": "on-demand"}},
                    ),
                    f"retype volume {volume_id}",
                )
            except http.NotFoundException as error:
                raise CloudError(
                    f"Cannot change the type of volume '{volume_id}' to '{volume_type}': "
                    f"{describe_http_error(error)}{self._known_types_hint()}"
                ) from None
            except (*_REFUSALS, http.ForbiddenException) as e:
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
        snapshot = {
            "volume_id": volume_id,
            "name": name,
            "description": description,
            "force": True,
            "metadata": metadata,
        }
        with api_errors(SERVICE, f"create snapshot '{name}' of volume '{volume_id}'"):
            try:
                return self._create_once(
                    f"create snapshot '{name}'",
                    lambda: str(
                        self._document(
                            "POST",
                            "/snapshots",
                            "snapshot",
                            json={"snapshot": snapshot},
                            microversion=SNAPSHOT_MICROVERSION,
                        )["id"]
                    ),
                    lambda: self._find_by_name("/snapshots/detail", "snapshots", name),
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
                    lambda: self._document(
                        "GET",
                        paths.path("/snapshots/{}", snapshot_id),
                        "snapshot",
                        microversion=SNAPSHOT_MICROVERSION,
                    ),
                    f"look up snapshot {snapshot_id}",
                )
            except http.NotFoundException:
                return None
        return _snapshot_state(snapshot)

    def delete_snapshot(self, snapshot_id: str) -> bool:
        """Ask Cinder to delete the snapshot; False when it does not exist.
        Raises Refused when its state does not allow deletion."""
        with api_errors(SERVICE, f"delete snapshot '{snapshot_id}'"):
            try:
                idempotent(
                    lambda: self._send("DELETE", paths.path("/snapshots/{}", snapshot_id)),
                    f"delete snapshot {snapshot_id}",
                )
            except http.NotFoundException:
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

    # --- listings for the operator tools (bosh_openstack_cpi/operator) ----------------

    def list_volumes(self) -> list[dict[str, Any]]:
        """Every volume of the project, page by page."""
        return self._list_all("/volumes/detail", "volumes", VOLUME_MICROVERSION)

    def list_snapshots(self) -> list[dict[str, Any]]:
        """Every snapshot of the project, page by page."""
        return self._list_all("/snapshots/detail", "snapshots", SNAPSHOT_MICROVERSION)

    def _list_all(self, url: str, key: str, microversion: str) -> list[dict[str, Any]]:
        def page(*after: tuple[str, str]) -> dict[str, Any]:
            params = paths.filters(*after) if after else None
            body: dict[str, Any] = idempotent(
                lambda: self._send("GET", url, microversion=microversion, params=params),
                f"list {key}",
            ).json()
            return body

        found: list[dict[str, Any]] = []
        with api_errors(SERVICE, f"list {key}"):
            body = page()
            while True:
                items = body.get(key) or []
                found.extend(items)
                links = body.get(f"{key}_links") or []
                if not items or not any(link.get("rel") == "next" for link in links):
                    return found
                body = page(("marker", str(items[-1]["id"])))

    def absolute_limits(self) -> dict[str, int]:
        """Cinder's quotas and usage of the project (maxTotalVolumes, totalVolumesUsed, ...)."""
        with api_errors(SERVICE, "read the limits"):
            body = idempotent(lambda: self._send("GET", "/limits"), "read the limits").json()
        absolute = (body.get("limits") or {}).get("absolute") or {}
        return {str(k): int(v) for k, v in absolute.items() if isinstance(v, int)}

    def availability_zones(self) -> list[str]:
        """The block storage availability zones that are available."""
        with api_errors(SERVICE, "list availability zones"):
            body = idempotent(
                lambda: self._send("GET", "/os-availability-zone"), "list availability zones"
            ).json()
        zones = body.get("availabilityZoneInfo") or []
        return [str(z["zoneName"]) for z in zones if (z.get("zoneState") or {}).get("available")]

    def volume_type_names(self) -> list[str]:
        with api_errors(SERVICE, "list volume types"):
            body = idempotent(lambda: self._send("GET", "/types"), "list volume types").json()
        return sorted(str(t.get("name")) for t in body.get("volume_types") or [])

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
            if not http.supports_microversion(self._cinder, MESSAGES_MICROVERSION):
                return None
            response = self._cinder.get(
                "/messages",
                params=paths.filters(("resource_uuid", resource_id)),
                microversion=MESSAGES_MICROVERSION,
            )
            http.raise_from_response(response)
            messages = response.json().get("messages") or []
        except Exception as error:  # only a better message is lost
            log.debug("No Cinder message for %s: %s", resource_id, error)
            return None
        texts = [str(m.get("user_message")) for m in messages if m.get("user_message")]
        return "; ".join(dict.fromkeys(texts)) or None

    def _known_types_hint(self) -> str:
        try:
            response = self._send("GET", "/types")
            names = sorted(str(t.get("name")) for t in response.json().get("volume_types") or [])
        except Exception as error:  # only a better message is lost
            log.debug("Cannot list volume types: %s", error)
            return ""
        return f" (volume types visible to this project: {', '.join(names)})" if names else ""

    # --- helpers -----------------------------------------------------------------------

    def _settle(self) -> None:
        """Every wait here follows a request Cinder or Nova act on asynchronously: a poll
        right away would only see the old state, so the first one comes a moment later."""
        self._sleep(min(FIRST_INTERVAL, self._config.wait_resource_poll_interval))

    def _find_by_name(self, path: str, key: str, name: str) -> str | None:
        """The id of the first volume or snapshot of this name (the CPI's names are unique)."""
        response = self._send("GET", path, params=paths.filters(("name", name)))
        found = [str(item["id"]) for item in response.json().get(key) or [] if "id" in item]
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
