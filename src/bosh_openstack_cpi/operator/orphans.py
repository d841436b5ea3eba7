"""`bosh-openstack-cpi orphans`: what carries a director's mark (or the reference CPIs'
naming) that the director does not know, and, when asked, its deletion in a safe order."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bosh_openstack_cpi.openstack.cloud import Cloud
from bosh_openstack_cpi.operator import inventory
from bosh_openstack_cpi.operator.inventory import Resource
from bosh_openstack_cpi.operator.session import Printer


def find(cloud: Cloud, director_uuid: str, known: set[str], networks: list[str]) -> list[Resource]:
    """The director's resources that `known` does not account for. A volume attached to a
    known VM is known (`bosh vms` lists disks only with --details), and so is a snapshot of
    a known volume and a port bound to a known VM (BOSH lists neither)."""
    resources = inventory.marked(cloud, director_uuid, by_name=True)
    resources += inventory.unbound_ports(cloud, networks)
    known_volumes = {
        r.id
        for r in resources
        if r.kind == "volume" and (r.id in known or any(h in known for h in r.holders))
    }
    orphans = [r for r in resources if not _known(r, known, known_volumes)]
    orphan_ports = {r.id for r in orphans if r.kind == "port"}
    return [r for r in orphans if r.kind != "floating IP" or r.holders[0] in orphan_ports]


def _known(resource: Resource, known: set[str], known_volumes: set[str]) -> bool:
    if resource.id in known:
        return True
    if resource.kind == "volume":
        return resource.id in known_volumes
    if resource.kind == "snapshot":
        return any(h in known_volumes or h in known for h in resource.holders)
    if resource.kind == "port":
        return any(h in known for h in resource.holders)
    return False


def age(created_at: str, now: float | None = None) -> str:
    try:
        made = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    if made.tzinfo is None:
        made = made.replace(tzinfo=UTC)
    seconds = max(0.0, (now if now is not None else time.time()) - made.timestamp())
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {rest // 60}m" if hours else f"{rest // 60}m {rest % 60}s"


COLUMNS = ("kind", "id", "name", "mark", "age", "size", "status")


def show(printer: Printer, orphans: list[Resource]) -> None:
    rows = [
        (r.kind, r.id, r.name, r.mark, age(r.created_at), r.size, r.status)
        for r in sorted(orphans, key=lambda r: (inventory.KINDS.index(r.kind), r.created_at))
    ]
    widths = [max(len(str(v)) for v in column) for column in zip(COLUMNS, *rows, strict=False)]
    for row in [COLUMNS, *rows]:
        printer.line("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def delete(cloud: Cloud, orphans: list[Resource], printer: Printer) -> list[str]:
    """Delete in inventory.KINDS order; the problems (one line per resource not deleted)."""
    problems: list[str] = []
    removers = _removers(cloud)
    for kind in inventory.KINDS:
        for resource in (r for r in orphans if r.kind == kind):
            try:
                removers[kind](resource)
                done = "disassociated" if kind == "floating IP" else "deleted"
                printer.line(f"{done} {kind} {resource.id} {resource.name}".rstrip())
            except Exception as error:  # report it, then go on with the others
                problems.append(f"{kind} {resource.id}: {type(error).__name__}: {error}")
                printer.line(f"NOT deleted {kind} {resource.id}: {error}")
    return problems


def _removers(cloud: Cloud) -> dict[str, Callable[[Resource], Any]]:
    config = cloud.config
    timeout = config.state_timeout
    interval = config.wait_resource_poll_interval

    def server(resource: Resource) -> None:
        if cloud.compute.delete_server(resource.id):
            cloud.compute.wait_until_gone(resource.id, timeout=timeout, max_interval=interval)

    def floating_ip(resource: Resource) -> None:
        from bosh_openstack_cpi.openstack.network import FloatingIp

        address = FloatingIp(resource.id, resource.name, resource.holders[0], "")
        cloud.network.disassociate_floating_ip(address)

    def volume(resource: Resource) -> None:
        # a volume of a server deleted a moment ago is detached by Cinder asynchronously
        cloud.volume.wait_for_volume(
            resource.id,
            f"volume '{resource.id}' to be detached from the deleted server",
            lambda state: state is None or state.status != "in-use",
            timeout=timeout,
        )
        cloud.volume.remove_volume(resource.id, timeout=timeout)

    return {
        "server": server,
        "floating IP": floating_ip,
        "port": lambda r: cloud.network.delete_port(r.id),
        "snapshot": lambda r: cloud.volume.remove_snapshot(r.id, timeout=timeout),
        "volume": volume,
        "image": lambda r: cloud.image.delete(r.id),
    }
