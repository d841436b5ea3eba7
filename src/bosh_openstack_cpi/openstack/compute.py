"""Nova: servers, flavors, key pairs, volume attachments.

Requests go straight to the Nova REST API through a transport adapter: the request
bodies are exactly what the CPI means, and nothing makes lookups of its own. Nova's
base microversion (2.1) is used unless a feature needs a newer one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bosh_openstack_cpi.openstack import http, paths, retry
from bosh_openstack_cpi.openstack.errors import api_errors, connection_problem, describe_http_error
from bosh_openstack_cpi.openstack.waiting import wait_for
from bosh_openstack_cpi.protocol.errors import CloudError, VMNotFound

if TYPE_CHECKING:
    from bosh_openstack_cpi.flavors import Flavor

log = logging.getLogger(__name__)

# Servers in these states are gone as far as BOSH is concerned.
GONE_STATES = frozenset({"DELETED", "SOFT_DELETED"})
# Block device mappings with a volume_type.
VOLUME_TYPE_MICROVERSION = "2.67"
# How long a server in status DELETED may take to disappear from Nova (see wait_until_gone).
DELETED_GRACE_SECONDS = 5.0
# Nova answers with these when it may have acted on the request anyway.
UNCERTAIN_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class Server:
    id: str
    name: str
    status: str
    task_state: str | None = None
    availability_zone: str | None = None
    fault: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    volume_ids: tuple[str, ...] = ()

    @property
    def is_gone(self) -> bool:
        return self.status.upper() in GONE_STATES

    @property
    def is_settled_active(self) -> bool:
        return self.status.upper() == "ACTIVE" and not self.task_state

    def describe(self) -> str:
        task = f", task {self.task_state}" if self.task_state else ""
        return f"status {self.status}{task}"


def _server(body: dict[str, Any]) -> Server:
    fault = body.get("fault") or {}
    message = fault.get("message") if isinstance(fault, dict) else None
    volumes = body.get("os-extended-volumes:volumes_attached") or []
    return Server(
        id=str(body["id"]),
        name=str(body.get("name") or ""),
        status=str(body.get("status") or "UNKNOWN"),
        task_state=body.get("OS-EXT-STS:task_state"),
        availability_zone=body.get("OS-EXT-AZ:availability_zone"),
        fault=f"{message} (code {fault.get('code')})" if message else None,
        metadata=dict(body.get("metadata") or {}),
        volume_ids=tuple(str(v["id"]) for v in volumes if isinstance(v, dict) and "id" in v),
    )


class ServerCreateUnanswered(CloudError):
    """POST /servers may have reached Nova but its answer was lost (timeout, dropped
    connection, 5xx): a server of that name may exist. `settle_seconds` is how long it may
    take to show up (Nova may still be working on the request)."""

    def __init__(self, message: str, *, settle_seconds: float) -> None:
        super().__init__(message)
        self.settle_seconds = settle_seconds


class ServerCreateRefused(CloudError):
    """Nova refused to create the server (4xx): nothing was created."""

    def __init__(self, message: str, *, status: int, details: str) -> None:
        super().__init__(message)
        self.status = status
        self.details = details


def _never_sent(error: Exception) -> bool:
    """No connection was made: the request cannot have reached Nova. (A read timeout or
    a reset connection may mean it arrived.)"""
    return isinstance(error, http.NotSent)


class Compute:
    def __init__(self, connection: http.Services) -> None:
        self._nova = connection.compute

    def _send(
        self, method: str, url: str, *, microversion: str | None = None, **kwargs: Any
    ) -> http.Response:
        if microversion is not None:
            kwargs["microversion"] = microversion
        response = self._nova.request(url, method, **kwargs)
        http.raise_from_response(response)
        return response

    def _post_unless_sent(
        self, url: str, body: dict[str, Any], *, microversion: str | None = None
    ) -> http.Response:
        """A create is sent again only when the connection was refused (it never left) or
        Nova rate-limited it (429, 413 overLimit: turned away unprocessed)."""
        return retry.refused_only(
            lambda: self._send("POST", url, json=body, microversion=microversion), f"POST {url}"
        )

    def _read(self, url: str, what: str, **kwargs: Any) -> http.Response:
        return retry.idempotent(lambda: self._send("GET", url, **kwargs), what)

    # --- servers -------------------------------------------------------------------
    def server_exists(self, server_id: str) -> bool:
        server = self.get_server(server_id)
        return server is not None and not server.is_gone

    def get_server(self, server_id: str) -> Server | None:
        """The server, or None when Nova does not know it."""
        with api_errors("Compute", f"look up server '{server_id}'"):
            try:
                response = self._read(
                    paths.path("/servers/{}", server_id), f"get server '{server_id}'"
                )
            except http.NotFoundException:
                return None
        return _server(response.json()["server"])

    def servers_named(self, name: str) -> list[Server]:
        """Servers with exactly this name (Nova's name filter is a regular expression)."""
        paths.filters(("name", name))  # "^$" would be a filter in name only
        with api_errors("Compute", f"look up servers named '{name}'"):
            response = self._read(
                "/servers/detail",
                f"list servers named '{name}'",
                params=paths.filters(("name", f"^{name}$")),
            )
        return [_server(body) for body in response.json().get("servers", [])]

    def create_server(
        self,
        server: dict[str, Any],
        *,
        scheduler_hints: dict[str, Any] | None = None,
        microversion: str | None = None,
    ) -> str:
        """POST /servers once (again only if the connection was refused); the new server's id.

        Raises ServerCreateRefused for a 4xx answer and ServerCreateUnanswered when the
        request may have created a server without us learning its id.
        """
        body: dict[str, Any] = {"server": server}
        if scheduler_hints:
            body["os:scheduler_hints"] = scheduler_hints
        name = server.get("name", "")
        action = f"create server '{name}'"
        with api_errors("Compute", action):  # what is left: TLS, catalog problems
            try:
                response = self._post_unless_sent("/servers", body, microversion=microversion)
                return str(response.json()["server"]["id"])
            except http.HttpException as error:
                status = error.status_code or 0
                if status in UNCERTAIN_STATUSES:
                    raise ServerCreateUnanswered(
                        f"Nova answered {describe_http_error(error)} to the creation of server "
                        f"'{name}'",
                        settle_seconds=60.0 if status == 504 else 3.0,
                    ) from None
                raise ServerCreateRefused(
                    f"OpenStack Compute API: {action} failed, {describe_http_error(error)}",
                    status=status,
                    details=str(error.details or error.message or ""),
                ) from None
            except (http.NotSent, http.AnswerLost, http.ReadTimedOut) as error:
                if _never_sent(error):
                    raise CloudError(
                        f"Cannot reach OpenStack Compute to {action}: {connection_problem(error)}"
                    ) from None
                raise ServerCreateUnanswered(
                    f"The creation of server '{name}' got no answer from Nova "
                    f"({connection_problem(error)})",
                    settle_seconds=60.0,
                ) from None
            except (ValueError, KeyError, TypeError):
                raise ServerCreateUnanswered(
                    f"Nova's answer to the creation of server '{name}' was unreadable",
                    settle_seconds=3.0,
                ) from None

    def wait_until_active(
        self,
        server_id: str,
        *,
        timeout: float,
        max_interval: float,
        started: float | None = None,
    ) -> Server:
        """Wait for ACTIVE (with no task running); CloudError with Nova's fault on ERROR.
        `started`: time.monotonic() when the server was requested (paces the polls)."""

        def fetch() -> Server:
            server = self.get_server(server_id)
            if server is None:
                raise CloudError(f"Server '{server_id}' disappeared while it was being built")
            return server

        def failure(server: Server) -> str | None:
            if server.status.upper() == "ERROR":
                return f"Nova put it in state ERROR: {server.fault or 'no fault message'}"
            if server.is_gone:
                return f"it was deleted (status {server.status})"
            return None

        return wait_for(
            f"server '{server_id}' to become ACTIVE",
            fetch,
            lambda server: server.is_settled_active,
            timeout=timeout,
            max_interval=max_interval,
            failure=failure,
            describe=Server.describe,
            started=started,
        )

    def delete_server(self, server_id: str) -> bool:
        """Ask Nova to delete the server; False when it did not exist."""
        with api_errors("Compute", f"delete server '{server_id}'"):
            try:
                retry.idempotent(
                    lambda: self._send("DELETE", paths.path("/servers/{}", server_id)),
                    f"delete server '{server_id}'",
                )
            except http.NotFoundException:
                return False
        return True

    def wait_until_gone(self, server_id: str, *, timeout: float, max_interval: float) -> None:
        """Until Nova no longer knows the server, or keeps it SOFT_DELETED (a reclaim
        interval). DELETED is the moment before Nova drops the record, while server lists
        still show it: it is waited out for up to DELETED_GRACE_SECONDS."""
        deleted_since: list[float] = []

        def failure(server: Server | None) -> str | None:
            if server is not None and server.status.upper() == "ERROR" and not server.task_state:
                return f"Nova could not delete it: {server.fault or 'no fault message'}"
            return None

        def gone(server: Server | None) -> bool:
            if server is None or server.status.upper() == "SOFT_DELETED":
                return True
            if server.status.upper() != "DELETED":
                return False
            deleted_since[:] = deleted_since or [time.monotonic()]
            return time.monotonic() - deleted_since[0] >= DELETED_GRACE_SECONDS

        wait_for(
            f"server '{server_id}' to be deleted",
            lambda: self.get_server(server_id),
            gone,
            timeout=timeout,
            max_interval=max_interval,
            failure=failure,
            describe=lambda server: server.describe() if server else "gone",
        )

    def reboot_server(self, server_id: str) -> None:
        """Soft reboot; VMNotFound when Nova does not know the server. A request whose fate
        is unknown (5xx, lost answer) is sent again: a second soft reboot does no harm, and
        while the first one is under way Nova refuses it (409), which then means done."""
        action = f"reboot server '{server_id}'"
        sent = [0]

        def send() -> None:
            sent[0] += 1
            self._send(
                "POST",
                paths.path("/servers/{}/action", server_id),
                json={"reboot": {"type": "SOFT"}},
            )

        with api_errors("Compute", action):
            try:
                retry.idempotent(send, action)
            except http.NotFoundException:
                raise VMNotFound(f"VM '{server_id}' not found in Nova: cannot reboot it") from None
            except http.ConflictException:
                server = self.get_server(server_id) if sent[0] > 1 else None
                if server is None or not (server.task_state or "").startswith("reboot"):
                    raise
                log.info("Server %s is rebooting: an earlier request did arrive", server_id)

    def update_server_metadata(self, server_id: str, metadata: dict[str, str]) -> None:
        """Add or replace these keys (others stay); VMNotFound when the server is unknown."""
        action = f"set metadata of server '{server_id}'"
        with api_errors("Compute", action):
            try:
                retry.idempotent(
                    lambda: self._send(
                        "POST",
                        paths.path("/servers/{}/metadata", server_id),
                        json={"metadata": metadata},
                    ),
                    action,
                )
            except http.NotFoundException:
                raise VMNotFound(
                    f"VM '{server_id}' not found in Nova: cannot set its metadata"
                ) from None

    def rename_server(self, server_id: str, name: str) -> None:
        action = f"rename server '{server_id}'"
        with api_errors("Compute", action):
            try:
                retry.idempotent(
                    lambda: self._send(
                        "PUT", paths.path("/servers/{}", server_id), json={"server": {"name": name}}
                    ),
                    action,
                )
            except http.NotFoundException:
                raise VMNotFound(f"VM '{server_id}' not found in Nova: cannot rename it") from None

    # --- listings for the operator tools (bosh_openstack_cpi/operator) ----------------
    def list_servers(self) -> list[dict[str, Any]]:
        """Every server of the project, page by page (Nova cannot filter by metadata: the
        operator tools pick the director's own from this)."""
        found: list[dict[str, Any]] = []
        with api_errors("Compute", "list servers"):
            page = self._read("/servers/detail", "list servers").json()
            while True:
                servers = page.get("servers") or []
                found.extend(servers)
                if not servers or not _has_next(page.get("servers_links")):
                    return found
                marker = str(servers[-1]["id"])
                page = self._read(
                    "/servers/detail", "list servers", params=paths.filters(("marker", marker))
                ).json()

    def absolute_limits(self) -> dict[str, int]:
        """Nova's quotas and usage of the project (maxTotalCores, totalCoresUsed, ...)."""
        with api_errors("Compute", "read the limits"):
            body = self._read("/limits", "read the limits").json()
        absolute = (body.get("limits") or {}).get("absolute") or {}
        return {str(k): int(v) for k, v in absolute.items() if isinstance(v, int)}

    def availability_zones(self) -> list[str]:
        """The compute availability zones that are available."""
        with api_errors("Compute", "list availability zones"):
            body = self._read("/os-availability-zone", "list availability zones").json()
        zones = body.get("availabilityZoneInfo") or []
        return [str(z["zoneName"]) for z in zones if (z.get("zoneState") or {}).get("available")]

    def key_pair_exists(self, name: str) -> bool:
        with api_errors("Compute", f"look up key pair '{name}'"):
            try:
                self._read(paths.path("/os-keypairs/{}", name), f"look up key pair '{name}'")
            except http.NotFoundException:
                return False
        return True

    # --- flavors -------------------------------------------------------------------
    def flavors(self) -> list[Flavor]:
        """Every flavor the project may use; `is_public=None` makes Nova include the private
        ones for admins too (others always get those they have access to)."""
        from bosh_openstack_cpi.flavors import Flavor

        with api_errors("Compute", "list flavors"):
            response = self._read("/flavors/detail", "list flavors", params={"is_public": "None"})
        return [Flavor.from_api(body) for body in response.json().get("flavors", [])]

    # --- persistent disk attachments (Nova os-volume_attachments) -------------------
    # Methods used by actions/disks.py go below this line.
    #
    # Plain JSON requests (openstacksdk's attachment helpers looked the server up again
    # first, and its Flavor resource dropped the ephemeral size Nova embeds in servers).
    # Imports are local to keep this section apart from the rest of the module.

    def disk_server(self, server_id: str) -> dict[str, Any]:
        """The server document, with the full flavor embedded where Nova can (2.47+).
        VMNotFound when the server does not exist or is deleted."""
        from bosh_openstack_cpi.protocol.errors import VMNotFound

        with api_errors("Compute", f"look up server '{server_id}'"):
            full_flavor = http.supports_microversion(self._nova, _FLAVOR_IN_SERVER)
            try:
                server: dict[str, Any] = self._disk_request(
                    "GET",
                    paths.path("/servers/{}", server_id),
                    f"look up server {server_id}",
                    microversion=_FLAVOR_IN_SERVER if full_flavor else None,
                )["server"]
            except http.NotFoundException:
                server = {"status": "DELETED"}
        if str(server.get("status")).upper() in GONE_STATES:
            raise VMNotFound(f"VM '{server_id}' does not exist (Nova has no such server)")
        return server

    def flavor_disks_of(self, server: dict[str, Any]) -> tuple[int, int]:
        """(ephemeral GiB, swap MiB) of a server's flavor (from `disk_server`)."""
        flavor = server.get("flavor") or {}
        if "ephemeral" not in flavor and flavor.get("id"):  # Nova before 2.47: id only
            with api_errors("Compute", f"look up flavor '{flavor['id']}'"):
                try:
                    flavor = self._disk_request(
                        "GET", paths.path("/flavors/{}", flavor["id"]), "look up flavor"
                    )["flavor"]
                except http.NotFoundException:
                    flavor = {}
            flavor = {
                "ephemeral": flavor.get("OS-FLV-EXT-DATA:ephemeral"),
                "swap": flavor.get("swap"),
            }
        return _whole(flavor.get("ephemeral")), _whole(flavor.get("swap"))

    def volume_attachments(self, server_id: str) -> list[tuple[str, str | None]]:
        """(volume id, device) of every volume attached to the server, boot volume
        included. VMNotFound when the server does not exist."""
        from bosh_openstack_cpi.protocol.errors import VMNotFound

        with api_errors("Compute", f"list the volumes attached to server '{server_id}'"):
            try:
                listing = self._disk_request(
                    "GET",
                    paths.path("/servers/{}/os-volume_attachments", server_id),
                    f"list volume attachments of {server_id}",
                )
            except http.NotFoundException:
                raise VMNotFound(
                    f"VM '{server_id}' does not exist (Nova has no such server)"
                ) from None
        return [
            (str(a["volumeId"]), a.get("device"))
            for a in listing.get("volumeAttachments") or []
            if a.get("volumeId")
        ]

    def attach_volume(self, server_id: str, volume_id: str, device: str) -> str | None:
        """POST os-volume_attachments; the device Nova reports. DiskNotFound or VMNotFound
        when either is missing; CloudError with Nova's reason otherwise."""
        from bosh_openstack_cpi.openstack import errors as os_errors
        from bosh_openstack_cpi.openstack.volume import Refused, openstack_words
        from bosh_openstack_cpi.protocol.errors import DiskNotFound, VMNotFound

        body = {"volumeAttachment": {"volumeId": volume_id, "device": device}}
        what = f"attach volume {volume_id} to {server_id}"

        def post() -> dict[str, Any]:
            return self._disk_request(
                "POST",
                paths.path("/servers/{}/os-volume_attachments", server_id),
                "attach volume",
                json=body,
                retry=False,
            )

        with api_errors("Compute", f"attach volume '{volume_id}' to server '{server_id}'"):
            try:
                return self._attach_once(post, server_id, volume_id, what)
            except http.NotFoundException as error:
                if _server_missing(error):
                    raise VMNotFound(
                        f"VM '{server_id}' does not exist (Nova has no such server)"
                    ) from None
                raise DiskNotFound(
                    f"Disk '{volume_id}' does not exist (Cinder has no such volume)"
                ) from None
            except (http.BadRequestException, http.ConflictException) as error:
                raise Refused(
                    f"Nova refused to attach volume '{volume_id}' to server '{server_id}': "
                    f"{os_errors.describe_http_error(error)}",
                    openstack_words(error),
                ) from None

    def detach_volume(self, server_id: str, volume_id: str) -> bool:
        """DELETE the attachment; False when the volume is not attached to the server (or
        does not exist). VMNotFound when the server does not exist; Refused (Nova's reason)
        when the volume's state does not allow it, e.g. while a detach is under way."""
        from bosh_openstack_cpi.openstack import errors as os_errors
        from bosh_openstack_cpi.openstack.volume import Refused, openstack_words
        from bosh_openstack_cpi.protocol.errors import VMNotFound

        with api_errors("Compute", f"detach volume '{volume_id}' from server '{server_id}'"):
            try:
                self._disk_request(
                    "DELETE",
                    paths.path("/servers/{}/os-volume_attachments/{}", server_id, volume_id),
                    f"detach volume {volume_id} from {server_id}",
                )
            except http.NotFoundException as error:
                # Nova answers 404 for a missing server and for a missing attachment alike.
                if _server_missing(error):
                    raise VMNotFound(
                        f"VM '{server_id}' does not exist (Nova has no such server)"
                    ) from None
                self.disk_server(server_id)  # VMNotFound if Nova's words were not conclusive
                return False
            except (http.BadRequestException, http.ConflictException) as error:
                raise Refused(
                    f"Nova refused to detach volume '{volume_id}' from server '{server_id}': "
                    f"{os_errors.describe_http_error(error)}",
                    openstack_words(error),
                ) from None
        return True

    def _disk_request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        json: dict[str, Any] | None = None,
        microversion: str | None = None,
        retry: bool = True,
    ) -> dict[str, Any]:
        """One Nova request; http.HttpException for HTTP errors, the JSON body (or {})."""
        from bosh_openstack_cpi.openstack.retry import idempotent

        def send() -> dict[str, Any]:
            response = self._nova.request(path, method, json=json, microversion=microversion)
            http.raise_from_response(response)
            if not response.content:
                return {}
            document: dict[str, Any] = response.json()
            return document

        return idempotent(send, what) if retry else send()

    def _attach_once(
        self, post: Callable[[], dict[str, Any]], server_id: str, volume_id: str, what: str
    ) -> str | None:
        """POST the attachment; the device Nova reports. When the request's fate is unknown
        (5xx, lost answer), it is looked for among the server's attachments before it is
        sent again."""
        from bosh_openstack_cpi.openstack.retry import is_transient, refused_only

        for attempt in range(1, ATTACH_ATTEMPTS + 1):
            try:
                answer = refused_only(post, what)
                device: str | None = (answer.get("volumeAttachment") or {}).get("device")
                return device
            except Exception as error:
                if not is_transient(error) or attempt == ATTACH_ATTEMPTS:
                    raise
                found = dict(self.volume_attachments(server_id))
                if volume_id in found:
                    log.info("%s: the request did reach Nova", what)
                    return found[volume_id]
                log.warning("%s failed (%s), sending it again", what, type(error).__name__)
        raise AssertionError("unreachable")


ATTACH_ATTEMPTS = 3
# Nova embeds the whole flavor (ephemeral and swap sizes included) in servers from 2.47.
_FLAVOR_IN_SERVER = "2.47"


def _has_next(links: object) -> bool:
    return isinstance(links, list) and any(
        isinstance(link, dict) and link.get("rel") == "next" for link in links
    )


def _server_missing(error: http.HttpException) -> bool:
    """Nova's 404 for a missing server ("Instance <id> could not be found."), as opposed to
    a missing volume or attachment ("Instance <id> is not attached to volume <id>")."""
    text = str(error.details or "").lower()
    return "instance" in text and "could not be found" in text


def _whole(value: object) -> int:
    """Flavor sizes: Nova writes no swap as "" (flavors API) or 0 (embedded flavor)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return 0
