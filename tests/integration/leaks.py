"""Find every OpenStack resource carrying a director UUID (see bosh_openstack_cpi.tagging).

Each integration test runs its CPI calls with a fresh director UUID, so "nothing of this
director is left" is a leak check that other tests running at the same time cannot
disturb. Counting happens on the cloud, with admin rights, not from the CPI's answers.
"""

from __future__ import annotations

from typing import Any

from bosh_openstack_cpi.tagging import DIRECTOR_UUID_KEY, director_of_port


def resources_of_director(admin: Any, project_id: str, director_uuid: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    servers = [
        s.id
        for s in admin.compute.servers(all_projects=True, project_id=project_id)
        if (s.metadata or {}).get(DIRECTOR_UUID_KEY) == director_uuid
    ]
    ports = [
        p
        for p in admin.network.ports(project_id=project_id)
        if director_of_port(p.description) == director_uuid
    ]
    port_ids = {p.id for p in ports}
    floating = [
        f.floating_ip_address
        for f in admin.network.ips(project_id=project_id)
        if f.port_id and f.port_id in port_ids
    ]
    volumes = [
        v.id
        for v in admin.block_storage.volumes(all_projects=True, project_id=project_id)
        if (v.metadata or {}).get(DIRECTOR_UUID_KEY) == director_uuid
    ]
    snapshots = [
        s.id
        for s in admin.block_storage.snapshots(all_projects=True, project_id=project_id)
        if (s.metadata or {}).get(DIRECTOR_UUID_KEY) == director_uuid
    ]
    images = [
        i.id
        for i in admin.image.images()
        if (i.properties or {}).get(DIRECTOR_UUID_KEY) == director_uuid
    ]
    members = [
        f"{pool_id}/{member_id}" for pool_id, member_id in members_of_director(admin, director_uuid)
    ]
    for kind, ids in (
        ("servers", servers),
        ("ports", [p.id for p in ports]),
        ("floating IP associations", floating),
        ("volumes", volumes),
        ("snapshots", snapshots),
        ("images", images),
        ("load balancer pool members", members),
    ):
        if ids:
            found[kind] = ids
    return found


def members_of_director(admin: Any, director_uuid: str) -> list[tuple[str, str]]:
    """(pool id, member id) of the Octavia members named with this director's UUID (create_vm
    names them as it describes its ports); none on a cloud without Octavia."""
    if not has_load_balancer(admin):
        return []
    return [
        (pool.id, member.id)
        for pool in admin.load_balancer.pools()
        for member in admin.load_balancer.members(pool)
        if director_of_port(member.name) == director_uuid
    ]


def has_load_balancer(admin: Any) -> bool:
    try:
        return bool(admin.session.get_endpoint(service_type="load-balancer", interface="public"))
    except Exception:  # keystoneauth's EndpointNotFound and kin: no Octavia here
        return False
