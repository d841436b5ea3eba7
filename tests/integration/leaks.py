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
    for kind, ids in (
        ("servers", servers),
        ("ports", [p.id for p in ports]),
        ("floating IP associations", floating),
        ("volumes", volumes),
        ("snapshots", snapshots),
        ("images", images),
    ):
        if ids:
            found[kind] = ids
    return found
