"""What a director left on the cloud: every server, volume, snapshot, image, port and
floating IP association that carries its mark (bosh_openstack_cpi.tagging), and the
resources named the way the reference CPIs name them (vm-<uuid>, volume-<uuid>,
snapshot-<uuid>) that carry no director mark at all."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bosh_openstack_cpi.openstack.cloud import Cloud
from bosh_openstack_cpi.tagging import DIRECTOR_UUID_KEY, port_description

_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
REFERENCE_NAMES = {
    "server": re.compile(f"^vm-{_UUID}$"),
    "volume": re.compile(f"^volume-{_UUID}$"),
    "snapshot": re.compile(f"^snapshot-{_UUID}$"),
}
MARK = "director_uuid"
NAMED = "name only"
UNBOUND = "unbound port"
# Deletion order: a server before its ports (and their floating IPs), a snapshot before
# its volume, a volume once no server holds it.
KINDS = ("server", "floating IP", "port", "snapshot", "volume", "image")


@dataclass(frozen=True)
class Resource:
    kind: str
    id: str
    name: str
    mark: str
    created_at: str
    size: str
    status: str
    # the server a port or volume is bound to, the volume of a snapshot, the port of a
    # floating IP association
    holders: tuple[str, ...] = ()


def marked(cloud: Cloud, director_uuid: str, *, by_name: bool = False) -> list[Resource]:
    """Everything with this director's mark; with `by_name`, also the resources named as
    the reference CPIs name them that carry no director mark."""
    found = _servers(cloud, director_uuid, by_name)
    found += _volumes(cloud, director_uuid, by_name)
    found += _snapshots(cloud, director_uuid, by_name)
    found += _images(cloud, director_uuid)
    ports = _ports(cloud, director_uuid)
    found += ports
    found += _floating_ips(cloud, {p.id for p in ports})
    return found


def unbound_ports(cloud: Cloud, network_ids: list[str]) -> list[Resource]:
    """Ports on these networks bound to nothing and with no description: what the reference
    CPIs leave when a create_vm fails half-way (they do not mark their ports)."""
    found: list[Resource] = []
    for network_id in network_ids:
        for port in cloud.network.ports_on_network(network_id):
            if port.is_unused and not port.description:
                found.append(
                    Resource("port", port.id, port.name, UNBOUND, port.created_at, "", port.status)
                )
    return found


def director_uuids(cloud: Cloud) -> dict[str, int]:
    """The director UUIDs on the project's servers, volumes and snapshots, with how many of
    those each marks (what to pass as --director-uuid)."""
    listings = (
        cloud.compute.list_servers(),
        cloud.volume.list_volumes(),
        cloud.volume.list_snapshots(),
    )
    counts: dict[str, int] = {}
    for body in (b for listing in listings for b in listing):
        metadata = body.get("metadata")
        owner = metadata.get(DIRECTOR_UUID_KEY) if isinstance(metadata, dict) else None
        if owner:
            counts[str(owner)] = counts.get(str(owner), 0) + 1
    return counts


def by_kind(resources: list[Resource]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for resource in resources:
        grouped.setdefault(resource.kind, []).append(resource.id)
    return grouped


def _mark(metadata: Any, director_uuid: str, name: str, kind: str, by_name: bool) -> str | None:
    metadata = metadata if isinstance(metadata, dict) else {}
    owner = metadata.get(DIRECTOR_UUID_KEY)
    if owner == director_uuid:
        return MARK
    if by_name and owner is None and REFERENCE_NAMES[kind].match(name):
        return NAMED
    return None


def _servers(cloud: Cloud, director_uuid: str, by_name: bool) -> list[Resource]:
    found: list[Resource] = []
    flavor_names: dict[str, str] = {}
    for body in cloud.compute.list_servers():
        name = str(body.get("name") or "")
        mark = _mark(body.get("metadata"), director_uuid, name, "server", by_name)
        if mark:
            flavor = body.get("flavor") or {}
            if not flavor_names:  # Nova before 2.47 names the flavor by id only
                flavor_names.update((f.id, f.name) for f in cloud.compute.flavors())
            size = str(flavor.get("original_name") or flavor_names.get(str(flavor.get("id")), ""))
            found.append(
                Resource(
                    "server",
                    str(body["id"]),
                    name,
                    mark,
                    str(body.get("created") or ""),
                    size,
                    str(body.get("status") or ""),
                )
            )
    return found


def _volumes(cloud: Cloud, director_uuid: str, by_name: bool) -> list[Resource]:
    found: list[Resource] = []
    for body in cloud.volume.list_volumes():
        name = str(body.get("name") or "")
        mark = _mark(body.get("metadata"), director_uuid, name, "volume", by_name)
        if mark:
            servers = tuple(
                str(a.get("server_id")) for a in body.get("attachments") or [] if a.get("server_id")
            )
            found.append(
                Resource(
                    "volume",
                    str(body["id"]),
                    name,
                    mark,
                    str(body.get("created_at") or ""),
                    f"{body.get('size')} GiB",
                    str(body.get("status") or ""),
                    servers,
                )
            )
    return found


def _snapshots(cloud: Cloud, director_uuid: str, by_name: bool) -> list[Resource]:
    found: list[Resource] = []
    for body in cloud.volume.list_snapshots():
        name = str(body.get("name") or "")
        mark = _mark(body.get("metadata"), director_uuid, name, "snapshot", by_name)
        if mark:
            found.append(
                Resource(
                    "snapshot",
                    str(body["id"]),
                    name,
                    mark,
                    str(body.get("created_at") or ""),
                    f"{body.get('size')} GiB",
                    str(body.get("status") or ""),
                    (str(body.get("volume_id")),),
                )
            )
    return found


def _images(cloud: Cloud, director_uuid: str) -> list[Resource]:
    return [
        Resource(
            "image",
            str(body["id"]),
            str(body.get("name") or ""),
            MARK,
            str(body.get("created_at") or ""),
            _bytes(body.get("size")),
            str(body.get("status") or ""),
        )
        for body in cloud.image.images_with_property(DIRECTOR_UUID_KEY, director_uuid)
    ]


def _ports(cloud: Cloud, director_uuid: str) -> list[Resource]:
    return [
        Resource(
            "port",
            port.id,
            port.name,
            MARK,
            port.created_at,
            ", ".join(port.ips),
            port.status,
            (port.device_id,) if port.device_id else (),
        )
        for port in cloud.network.ports_described(port_description(director_uuid))
    ]


def _floating_ips(cloud: Cloud, port_ids: set[str]) -> list[Resource]:
    if not port_ids:
        return []
    project = cloud.connection.current_project_id or ""
    return [
        Resource(
            "floating IP",
            str(body["id"]),
            str(body.get("floating_ip_address") or ""),
            MARK,
            str(body.get("created_at") or ""),
            "",
            str(body.get("status") or ""),
            (str(body["port_id"]),),
        )
        for body in cloud.network.floating_ips_of_project(project)
        if body.get("port_id") in port_ids
    ]


def _bytes(size: object) -> str:
    if not isinstance(size, int):
        return ""
    return f"{size / 2**20:.1f} MiB" if size < 2**30 else f"{size / 2**30:.1f} GiB"
