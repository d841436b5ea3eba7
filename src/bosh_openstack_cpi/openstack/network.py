"""Neutron: ports, floating IPs, security groups, networks.

Requests go straight to the Neutron REST API through a transport adapter, with
filtered queries (never a listing of everything) and only the fields the CPI reads.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack import http, paths, retry
from bosh_openstack_cpi.openstack.errors import api_errors
from bosh_openstack_cpi.protocol.errors import CloudError, VMCreationFailed

log = logging.getLogger(__name__)

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")
PORT_FIELDS = (
    "id",
    "mac_address",
    "status",
    "device_id",
    "device_owner",
    "description",
    "network_id",
    "fixed_ips",
    "name",
    "created_at",
)
CREATE_ATTEMPTS = 3


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    name: str


@dataclass(frozen=True)
class Port:
    id: str
    mac_address: str
    status: str = ""
    device_id: str = ""
    device_owner: str = ""
    description: str = ""
    network_id: str = ""
    ips: tuple[str, ...] = ()
    name: str = ""
    created_at: str = ""
    subnet_ids: tuple[str, ...] = ()  # the subnet of each of `ips`, in the same order

    @property
    def is_unused(self) -> bool:
        """Bound to nothing: what a port left behind by an earlier VM looks like (and a port
        whose create_vm is still on its way)."""
        return self.status == "DOWN" and not self.device_id and not self.device_owner

    def age_seconds(self, now: float | None = None) -> float:
        """Seconds since Neutron made it; infinite when Neutron does not say."""
        try:
            made = datetime.fromisoformat(self.created_at).replace(tzinfo=UTC)
        except ValueError:
            return math.inf
        return (now if now is not None else time.time()) - made.timestamp()


@dataclass(frozen=True)
class FloatingIp:
    id: str
    address: str
    port_id: str | None
    network_id: str


def _port(body: dict[str, Any]) -> Port:
    return Port(
        id=str(body["id"]),
        mac_address=str(body.get("mac_address") or ""),
        status=str(body.get("status") or ""),
        device_id=str(body.get("device_id") or ""),
        device_owner=str(body.get("device_owner") or ""),
        description=str(body.get("description") or ""),
        network_id=str(body.get("network_id") or ""),
        ips=tuple(str(f.get("ip_address")) for f in body.get("fixed_ips") or []),
        name=str(body.get("name") or ""),
        created_at=str(body.get("created_at") or "").removesuffix("Z"),
        subnet_ids=tuple(str(f.get("subnet_id") or "") for f in body.get("fixed_ips") or []),
    )


def _holder(port: Port) -> str:
    text = f"{port.status}, device '{port.device_id or '-'}', owner '{port.device_owner or '-'}'"
    age = port.age_seconds()
    if port.is_unused and age < 3600:
        text += f", made {max(age, 0):.0f} s ago" + (f" for VM '{port.name}'" if port.name else "")
    return text


def looks_like_uuid(value: str) -> bool:
    return bool(_UUID.match(value))


class Network:
    def __init__(self, connection: http.Services, config: OpenStackConfig) -> None:
        self._connection = connection
        self._config = config

    @property
    def _neutron(self) -> http.Adapter:
        # Built on first use, inside api_errors: a missing catalog entry is reported there.
        return self._connection.network

    def _send(self, method: str, url: str, **kwargs: Any) -> http.Response:
        response = self._neutron.request(url, method, **kwargs)
        http.raise_from_response(response)
        return response

    def _get(
        self, url: str, what: str, filters: list[tuple[str, str]], fields: Iterable[str] = ()
    ) -> dict[str, Any]:
        """A list request: every filter must have a value (paths.filters)."""
        params = paths.with_fields(paths.filters(*filters), *fields)
        with api_errors("Network", what):
            response = retry.idempotent(lambda: self._send("GET", url, params=params), what)
            body: dict[str, Any] = response.json()
        return body

    # --- security groups -------------------------------------------------------------
    def security_groups(self, wanted: Iterable[str]) -> list[SecurityGroup]:
        """Resolve names or UUIDs, in the order given. A name must match exactly one group
        of this project (or, failing that, exactly one group shared with it)."""
        wanted = list(dict.fromkeys(wanted))
        if not wanted:
            return []
        by_id: dict[str, SecurityGroup] = {}
        ids = [w for w in wanted if looks_like_uuid(w)]
        if ids:
            for group in self._security_group_query([("id", i) for i in ids]):
                by_id[group["id"]] = SecurityGroup(group["id"], group.get("name") or "")
        names = [w for w in wanted if w not in by_id]
        by_name: dict[str, list[dict[str, Any]]] = {}
        if names:
            for group in self._security_group_query([("name", n) for n in names]):
                by_name.setdefault(group.get("name") or "", []).append(group)
        project = self._connection.current_project_id
        resolved: list[SecurityGroup] = []
        missing: list[str] = []
        for entry in wanted:
            if entry in by_id:
                resolved.append(by_id[entry])
                continue
            candidates = by_name.get(entry, [])
            own = [g for g in candidates if g.get("project_id") == project]
            matches = own or candidates
            if not matches:
                missing.append(entry)
            elif len(matches) > 1:
                listing = ", ".join(g["id"] for g in matches)
                raise CloudError(
                    f"Security group name '{entry}' matches {len(matches)} groups ({listing}): "
                    "use the UUID of the one you mean in security_groups"
                )
            else:
                resolved.append(SecurityGroup(matches[0]["id"], entry))
        if missing:
            quoted = ", ".join(f"'{m}'" for m in missing)
            raise CloudError(
                f"Security group(s) {quoted} not found in Neutron (looked up by name and UUID in "
                "this project); check security_groups of the VM type and networks and "
                "openstack.default_security_groups"
            )
        return resolved

    def _security_group_query(self, filters: list[tuple[str, str]]) -> list[dict[str, Any]]:
        body = self._get(
            "/security-groups", "look up security groups", filters, ("id", "name", "project_id")
        )
        groups: list[dict[str, Any]] = body.get("security_groups", [])
        return groups

    # --- ports -------------------------------------------------------------------------
    def create_port(
        self,
        *,
        network_id: str,
        ip: str,
        security_group_ids: list[str],
        description: str,
        name: str = "",
        allowed_address_pairs: list[str] | None = None,
        in_use: Callable[[Port], bool] = lambda _: False,
    ) -> Port:
        """A port named `name` (the VM's, unique per create_vm) holding `ip` on the network.

        The IP makes the create safe to repeat: a second port with it cannot exist. When a
        request's fate is unknown (lost answer, timeout, 5xx), the port holding the IP is
        looked up: one with our name is ours, made by that request. A port left behind by
        someone else (unbound, DOWN) is deleted once and the create repeated, unless
        `in_use` says that the create_vm it was made for is still at work."""
        port: dict[str, Any] = {
            "network_id": network_id,
            "fixed_ips": [{"ip_address": ip}],
            "description": description,
        }
        if name:
            port["name"] = name
        if security_group_ids:
            port["security_groups"] = security_group_ids
        if allowed_address_pairs:
            port["allowed_address_pairs"] = [{"ip_address": a} for a in allowed_address_pairs]
        action = f"create a port for IP {ip} in network '{network_id}'"

        def ours() -> Port | None:
            if not name:
                return None
            return next((p for p in self.ports_with_ip(ip, network_id) if p.name == name), None)

        cleared_stale = False
        with api_errors("Network", action):
            while True:
                try:
                    return self._post_port(port, action, ours)
                except http.NotFoundException as error:
                    raise VMCreationFailed(
                        f"Neutron network '{network_id}' does not exist or is not accessible "
                        f"from this project ({error.details}): cloud_properties.net_id must be "
                        "a network UUID (not a subnet UUID)"
                    ) from None
                except http.ConflictException as error:
                    mine = ours()
                    if mine is not None:
                        log.info("%s: an earlier request did make port %s", action, mine.id)
                        return mine
                    if cleared_stale or not self._delete_stale_ports(network_id, ip, in_use):
                        raise CloudError(
                            f"IP {ip} in network '{network_id}' is in use: "
                            f"{self._holders(network_id, ip) or error.details}. Free it or "
                            "choose another static IP"
                        ) from None
                    cleared_stale = True
                    log.info("Retrying to create the port for IP %s", ip)

    def _post_port(
        self, port: dict[str, Any], action: str, ours: Callable[[], Port | None]
    ) -> Port:
        """Sent again after a lost answer or a 5xx, unless `ours` finds that the request did
        make the port; a port such a request makes later holds the IP, so the next attempt
        gets a 409 and is looked up again."""
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                return _port(self._send("POST", "/ports", json={"port": port}).json()["port"])
            except (http.HttpException, http.TransportError) as error:
                # ConnectionError: refused, reset, or an answer cut off (UnknownConnectionError)
                if not retry.is_transient(error):
                    raise
                if retry.rate_limited(error):  # turned away unprocessed
                    if attempt == CREATE_ATTEMPTS:
                        raise
                    time.sleep(retry.retry_after(error) or attempt)
                    continue
                if isinstance(error, http.HttpException) and (error.status_code or 0) < 500:
                    raise
                mine = ours()
                if mine is not None:
                    log.info("%s: the request did make port %s", action, mine.id)
                    return mine
                if attempt == CREATE_ATTEMPTS:
                    raise
                log.warning("%s: transient failure (%s), retrying", action, type(error).__name__)
                time.sleep(attempt)
        raise AssertionError("unreachable")

    def ports_with_ip(self, ip: str, network_id: str | None = None) -> list[Port]:
        paths.filters(("ip", ip))  # "ip_address=" alone would match every port
        filters = [("fixed_ips", f"ip_address={ip}")]
        if network_id is not None:
            filters.append(("network_id", network_id))
        body = self._get("/ports", f"look up ports holding IP {ip}", filters, PORT_FIELDS)
        return [_port(p) for p in body.get("ports", [])]

    def _delete_stale_ports(self, network_id: str, ip: str, in_use: Callable[[Port], bool]) -> bool:
        holders = self.ports_with_ip(ip, network_id)
        stale = [p for p in holders if p.is_unused and not in_use(p)]
        for port in stale:
            log.warning(
                "IP %s is held by the unused port %s (unbound, DOWN, probably left by an earlier "
                "VM): deleting it",
                ip,
                port.id,
            )
            self.delete_port(port.id)
        return bool(stale)

    def _holders(self, network_id: str, ip: str) -> str:
        try:
            holders = self.ports_with_ip(ip, network_id)
        except CloudError:
            return ""
        return "; ".join(f"port {p.id} ({_holder(p)})" for p in holders)

    def delete_port(self, port_id: str) -> bool:
        """False when the port was already gone."""
        action = f"delete port '{port_id}'"
        with api_errors("Network", action):
            try:
                retry.idempotent(
                    lambda: self._send("DELETE", paths.path("/ports/{}", port_id)), action
                )
            except http.NotFoundException:
                return False
        return True

    def server_ports(self, server_id: str) -> list[Port]:
        body = self._get(
            "/ports",
            f"list the ports of server '{server_id}'",
            [("device_id", server_id)],
            PORT_FIELDS,
        )
        return [_port(p) for p in body.get("ports", [])]

    # --- floating IPs --------------------------------------------------------------------
    def floating_ip(self, address: str) -> FloatingIp:
        body = self._get(
            "/floatingips",
            f"look up floating IP {address}",
            [("floating_ip_address", address)],
        )
        found = body.get("floatingips", [])
        if not found:
            raise VMCreationFailed(
                f"Floating IP '{address}' not allocated: allocate it to this project "
                "(openstack floating ip create --floating-ip-address ...) or fix the vip "
                "network's static IP"
            )
        if len(found) > 1:
            networks = ", ".join(f"'{f['floating_network_id']}'" for f in found)
            raise CloudError(f"Floating IP '{address}' found in multiple networks: {networks}")
        item = found[0]
        return FloatingIp(
            id=str(item["id"]),
            address=address,
            port_id=item.get("port_id"),
            network_id=str(item.get("floating_network_id") or ""),
        )

    def associate_floating_ip(self, floating_ip: FloatingIp, port_id: str) -> None:
        """Point the floating IP at the port, taking it from whatever port had it."""
        action = f"associate floating IP {floating_ip.address} with port '{port_id}'"
        with api_errors("Network", action):
            retry.idempotent(
                lambda: self._send(
                    "PUT",
                    paths.path("/floatingips/{}", floating_ip.id),
                    json={"floatingip": {"port_id": port_id}},
                ),
                action,
            )

    def disassociate_floating_ip(self, floating_ip: FloatingIp) -> None:
        action = f"disassociate floating IP {floating_ip.address}"
        with api_errors("Network", action):
            try:
                retry.idempotent(
                    lambda: self._send(
                        "PUT",
                        paths.path("/floatingips/{}", floating_ip.id),
                        json={"floatingip": {"port_id": None}},
                    ),
                    action,
                )
            except http.NotFoundException:
                return

    # --- networks ------------------------------------------------------------------------
    def missing_networks(self, network_ids: Iterable[str]) -> list[str]:
        """Those of the ids that Neutron does not show to this project."""
        ids = list(dict.fromkeys(network_ids))
        if not ids:
            return []
        body = self._get("/networks", "look up networks", [("id", i) for i in ids], ("id",))
        found = {n["id"] for n in body.get("networks", [])}
        return [i for i in ids if i not in found]

    # --- listings for the operator tools (bosh_openstack_cpi/operator) ----------------
    def ports_described(self, description: str) -> list[Port]:
        """Ports whose description is exactly this (the CPI's director mark)."""
        body = self._get("/ports", "list ports", [("description", description)], PORT_FIELDS)
        return [_port(p) for p in body.get("ports", [])]

    def ports_on_network(self, network_id: str) -> list[Port]:
        body = self._get(
            "/ports",
            f"list the ports of network '{network_id}'",
            [("network_id", network_id)],
            PORT_FIELDS,
        )
        return [_port(p) for p in body.get("ports", [])]

    def floating_ips_of_project(self, project_id: str) -> list[dict[str, Any]]:
        body = self._get("/floatingips", "list floating IPs", [("project_id", project_id)])
        found: list[dict[str, Any]] = body.get("floatingips", [])
        return found

    def subnets_of(self, network_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The subnets of these networks (id, network_id, cidr, enable_dhcp, ...)."""
        ids = list(dict.fromkeys(network_ids))
        if not ids:
            return []
        body = self._get("/subnets", "list subnets", [("network_id", i) for i in ids])
        found: list[dict[str, Any]] = body.get("subnets", [])
        return found

    def security_group_rules(self, group_ids: Iterable[str]) -> list[dict[str, Any]]:
        ids = list(dict.fromkeys(group_ids))
        if not ids:
            return []
        body = self._get(
            "/security-group-rules",
            "list security group rules",
            [("security_group_id", i) for i in ids],
        )
        found: list[dict[str, Any]] = body.get("security_group_rules", [])
        return found

    def quota_details(self, project_id: str) -> dict[str, dict[str, int]]:
        """Neutron's limit and usage per resource (port, floatingip, security_group, ...)."""
        what = "read the network quotas"
        with api_errors("Network", what):
            response = retry.idempotent(
                lambda: self._send("GET", paths.path("/quotas/{}/details.json", project_id)),
                what,
            )
        quota = response.json().get("quota") or {}
        return {
            str(name): {k: int(v) for k, v in numbers.items() if isinstance(v, int)}
            for name, numbers in quota.items()
            if isinstance(numbers, dict)
        }
