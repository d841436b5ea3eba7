"""Octavia (catalog type `load-balancer`, API v2): pools and their members.

Octavia refuses every change to a load balancer that is not ACTIVE (HTTP 409, "immutable"):
after each change it is PENDING_UPDATE until its provider has applied it. So a member is
sent straight away; a 409 for a busy load balancer waits for ACTIVE and sends it again,
until state_timeout. After adding a member the load balancer is waited for until ACTIVE,
which reports a provider's failure (ERROR) and makes a second member on the same load
balancer go through at the first attempt. A member whose request may have been applied
(409 duplicate, lost answer, 5xx) is looked up by address and port, and adopted when it
is identical: the add is idempotent. A removal is sent straight away too, and waited for
until Octavia no longer shows the member (404 counts as removed), so nothing is left
PENDING_DELETE, or in ERROR unnoticed, when delete_vm answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack import http, paths, retry
from bosh_openstack_cpi.openstack.errors import ServiceNotInCatalog, api_errors
from bosh_openstack_cpi.openstack.waiting import wait_for
from bosh_openstack_cpi.protocol.errors import CloudError

log = logging.getLogger(__name__)

SERVICE = "Load Balancer"
CREATE_ATTEMPTS = 3
FAILED_STATES = frozenset({"ERROR", "DELETED"})


@dataclass(frozen=True)
class Pool:
    id: str
    name: str
    loadbalancer_id: str


@dataclass(frozen=True)
class Member:
    id: str
    pool_id: str
    address: str
    protocol_port: int
    subnet_id: str = ""
    monitor_port: int | None = None

    @property
    def reference(self) -> str:
        """`<pool_id>/<member_id>`: the server metadata value both reference CPIs write."""
        return f"{self.pool_id}/{self.id}"


def _member(body: dict[str, Any], pool_id: str) -> Member:
    monitor_port = body.get("monitor_port")
    return Member(
        id=str(body["id"]),
        pool_id=pool_id,
        address=str(body.get("address") or ""),
        protocol_port=int(body.get("protocol_port") or 0),
        subnet_id=str(body.get("subnet_id") or ""),
        monitor_port=int(monitor_port) if monitor_port is not None else None,
    )


def _immutable(error: http.HttpException) -> bool:
    """Octavia's 409 for a load balancer that is not ACTIVE (its other 409 is a duplicate)."""
    details = (error.details or "").lower()
    return "immutable" in details or "pending" in details


class LoadBalancer:
    def __init__(
        self,
        connection: http.Services,
        config: OpenStackConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._connection = connection
        self._config = config
        self._clock = clock
        self._sleep = sleep

    def _send(self, method: str, url: str, **kwargs: Any) -> http.Response:
        try:
            # The adapter is built on first use, inside api_errors: a missing catalog entry
            # surfaces here.
            octavia = self._connection.load_balancer
        except http.EndpointNotFound as error:
            raise ServiceNotInCatalog(
                f"The Keystone catalog has no load-balancer (Octavia) endpoint ({error}): "
                "loadbalancer_pools needs Octavia; remove loadbalancer_pools from the VM type "
                "or check openstack.region and openstack.endpoint_type"
            ) from None
        response = octavia.request(url, method, **kwargs)
        http.raise_from_response(response)
        return response

    def _read(self, url: str, what: str, **kwargs: Any) -> http.Response:
        return retry.idempotent(
            lambda: self._send("GET", url, **kwargs), what, sleep=self._sleep, clock=self._clock
        )

    # --- pools -------------------------------------------------------------------------
    def pool_named(self, name: str) -> Pool:
        """The one pool of this name the credentials see, with its load balancer."""
        what = f"look up load balancer pool '{name}'"
        with api_errors(SERVICE, what):
            body = self._read("/lbaas/pools", what, params=paths.filters(("name", name))).json()
        found = [p for p in body.get("pools") or [] if p.get("name") == name]
        if not found:
            raise CloudError(
                f"Load balancer pool '{name}' does not exist (or is not visible to this "
                "project): create it in Octavia or fix loadbalancer_pools of the VM type"
            )
        if len(found) > 1:
            ids = ", ".join(str(p.get("id")) for p in found)
            raise CloudError(
                f"Load balancer pool name '{name}' matches {len(found)} pools ({ids}): make "
                "the pool names unique, as loadbalancer_pools finds pools by name"
            )
        return _pool(found[0])

    def pool(self, pool_id: str) -> Pool | None:
        """The pool, None when Octavia does not know it."""
        what = f"look up load balancer pool '{pool_id}'"
        with api_errors(SERVICE, what):
            try:
                body = self._read(paths.path("/lbaas/pools/{}", pool_id), what).json()
            except http.NotFoundException:
                return None
        return _pool(body["pool"])

    # --- load balancers ------------------------------------------------------------------
    def provisioning_status(self, loadbalancer_id: str) -> str:
        what = f"look up load balancer '{loadbalancer_id}'"
        with api_errors(SERVICE, what):
            try:
                body = self._read(paths.path("/lbaas/loadbalancers/{}", loadbalancer_id), what)
            except http.NotFoundException:
                return "DELETED"
        return str(body.json()["loadbalancer"].get("provisioning_status") or "UNKNOWN")

    def wait_until_active(
        self,
        loadbalancer_id: str,
        *,
        timeout: float,
        started: float | None = None,
    ) -> None:
        wait_for(
            f"load balancer '{loadbalancer_id}' to become ACTIVE",
            lambda: self.provisioning_status(loadbalancer_id),
            lambda status: status == "ACTIVE",
            timeout=timeout,
            max_interval=self._config.wait_resource_poll_interval,
            failure=lambda status: (
                f"its provisioning_status is {status}" if status in FAILED_STATES else None
            ),
            describe=lambda status: f"provisioning_status {status}",
            started=started,
            clock=self._clock,
            sleep=self._sleep,
        )

    # --- members -----------------------------------------------------------------------
    def add_member(
        self,
        pool: Pool,
        *,
        address: str,
        port: int,
        subnet_id: str,
        monitor_port: int | None,
        name: str = "",
    ) -> Member:
        """Add `address:port` to the pool (an identical member is adopted). Does not wait
        for the load balancer to apply it: see `wait_until_active`."""
        member: dict[str, Any] = {"address": address, "protocol_port": port}
        if name:
            member["name"] = name
        if subnet_id:
            member["subnet_id"] = subnet_id
        if monitor_port is not None:
            member["monitor_port"] = monitor_port
        action = f"add {address}:{port} to load balancer pool '{pool.name}' ({pool.id})"
        deadline = self._clock() + self._config.state_timeout
        busy = 0

        def identical() -> Member | None:
            return self.find_member(pool.id, address, port, subnet_id, monitor_port)

        with api_errors(SERVICE, action):
            while True:
                try:
                    return self._post_member(pool.id, member, action, identical)
                except http.ConflictException as error:
                    existing = identical()
                    if existing is not None:
                        log.info("%s: member %s exists already, adopting it", action, existing.id)
                        return existing
                    if not _immutable(error):
                        raise CloudError(
                            f"Cannot {action}: {error.details or error.message}. Another member "
                            f"of the pool uses {address}:{port} with another subnet or "
                            "monitoring port: remove it from the pool"
                        ) from None
                    busy += 1
                    self._wait_out_busy(
                        action,
                        pool.loadbalancer_id,
                        deadline,
                        f"{busy} attempts, last: {error.details}",
                    )

    def _post_member(
        self,
        pool_id: str,
        member: dict[str, Any],
        action: str,
        identical: Callable[[], Member | None],
    ) -> Member:
        """Sent again after a lost answer or a 5xx, unless the request did make the member
        (the address and port are unique in a pool, so a repeat cannot make a second)."""
        url = paths.path("/lbaas/pools/{}/members", pool_id)
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                body = self._send("POST", url, json={"member": member}).json()
                return _member(body["member"], pool_id)
            except (http.HttpException, http.TransportError) as error:
                if not retry.is_transient(error) or attempt == CREATE_ATTEMPTS:
                    raise
                if not retry.rate_limited(error):
                    mine = identical()
                    if mine is not None:
                        log.info("%s: the request did make member %s", action, mine.id)
                        return mine
                log.warning("%s: transient failure (%s), retrying", action, type(error).__name__)
                self._sleep(retry.retry_after(error) or attempt)
        raise AssertionError("unreachable")

    def find_member(
        self, pool_id: str, address: str, port: int, subnet_id: str, monitor_port: int | None
    ) -> Member | None:
        """The member with this address and port, if its subnet and monitoring port are
        those asked for."""
        what = f"look up member {address}:{port} of pool '{pool_id}'"
        with api_errors(SERVICE, what):
            body = self._read(
                paths.path("/lbaas/pools/{}/members", pool_id),
                what,
                params=paths.filters(("address", address), ("protocol_port", str(port))),
            ).json()
        for found in body.get("members") or []:
            member = _member(found, pool_id)
            if (member.address, member.protocol_port) != (address, port):
                continue
            if subnet_id and member.subnet_id and member.subnet_id != subnet_id:
                continue
            if monitor_port is not None and member.monitor_port != monitor_port:
                continue
            return member
        return None

    def delete_member(self, pool_id: str, member_id: str) -> bool:
        """Remove the member and wait until Octavia has (a member being removed is shown
        PENDING_DELETE until the provider is done); False when it (or its pool) was already
        gone. A busy load balancer is waited for, found through the pool only then."""
        url = paths.path("/lbaas/pools/{}/members/{}", pool_id, member_id)
        action = f"remove member '{member_id}' from load balancer pool '{pool_id}'"
        deadline = self._clock() + self._config.state_timeout
        with api_errors(SERVICE, action):
            while True:
                try:
                    requested = self._clock()
                    retry.idempotent(
                        lambda: self._send("DELETE", url),
                        action,
                        sleep=self._sleep,
                        clock=self._clock,
                    )
                    self._wait_until_gone(url, member_id, deadline - self._clock(), requested)
                    return True
                except http.NotFoundException:
                    return False
                except http.ConflictException as error:
                    if not _immutable(error):
                        raise
                    pool = self.pool(pool_id)
                    if pool is None:
                        return False
                    self._wait_out_busy(action, pool.loadbalancer_id, deadline, str(error.details))

    def _wait_out_busy(
        self, action: str, loadbalancer_id: str, deadline: float, details: str
    ) -> None:
        """After a 409 "immutable" (the load balancer applies another change): wait until it
        is ACTIVE again, within the action's state_timeout, so that the caller sends again."""
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise CloudError(
                f"Cannot {action}: load balancer '{loadbalancer_id}' stayed busy for "
                f"{self._config.state_timeout:g} s ({details}); raise openstack.state_timeout "
                "if the cloud is slow"
            )
        log.info("%s: the load balancer is busy (%s), waiting", action, details)
        self.wait_until_active(loadbalancer_id, timeout=remaining)

    def _wait_until_gone(self, url: str, member_id: str, timeout: float, started: float) -> None:
        def status() -> str:
            try:
                body = self._read(url, f"look up member '{member_id}'").json()
            except http.NotFoundException:
                return "DELETED"
            return str(body["member"].get("provisioning_status") or "UNKNOWN")

        wait_for(
            f"member '{member_id}' to be removed",
            status,
            lambda found: found == "DELETED",
            timeout=max(timeout, 0.0),
            max_interval=self._config.wait_resource_poll_interval,
            failure=lambda found: (
                f"its provisioning_status is {found}" if found == "ERROR" else None
            ),
            describe=lambda found: f"provisioning_status {found}",
            started=started,
            clock=self._clock,
            sleep=self._sleep,
        )


def _pool(body: dict[str, Any]) -> Pool:
    pool_id = str(body["id"])
    balancers = [str(b["id"]) for b in body.get("loadbalancers") or [] if isinstance(b, dict)]
    if len(balancers) != 1:
        raise CloudError(
            f"Load balancer pool '{body.get('name') or pool_id}' ({pool_id}) belongs to "
            f"{len(balancers)} load balancers, the CPI needs exactly one to wait for its "
            "changes to be applied"
        )
    return Pool(id=pool_id, name=str(body.get("name") or ""), loadbalancer_id=balancers[0])
