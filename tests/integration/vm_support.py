"""Shared pieces of the VM integration tests: the director's network settings for the test
cloud, VMs that are always deleted, and reading what the cloud really holds (Neutron
ports, Nova's stored user_data, volumes) behind the CPI's back."""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from bosh_openstack_cpi.tagging import DIRECTOR_UUID_KEY, director_of_port
from tools.cpi_process import CpiProcess, CpiResult

AGENT_ID = "agent-007"
AGENT_SECRET = "agent-secret-3f9c"
ENV: dict[str, Any] = {
    "bosh": {"group": "test-group", "groups": ["test"], "password": AGENT_SECRET}
}
SMALL: dict[str, Any] = {"instance_type": "m1.small"}


def static_ip(cloud: dict[str, Any], network: str, position: int = -1) -> str:
    """A static IP for these tests only: from the end of the network's static range, past
    the `static_ips` other suites use (or from the end of `static_ips` when the cloud
    description has no range)."""
    description = cloud["resources"]["networks"][network]
    taken = set(description["static_ips"])
    if "static_range" in description:
        first, last = (ipaddress.ip_address(a) for a in description["static_range"].split("-"))
        ours = [str(ip) for ip in _addresses(first, last) if str(ip) not in taken]
        return ours[position]
    ips: list[str] = description["static_ips"]
    return ips[position]


def _addresses(first: Any, last: Any) -> list[Any]:
    return [first + n for n in range(int(last) - int(first) + 1)]


def manual_network(
    cloud: dict[str, Any], network: str = "manual_1", position: int = -1, **extra: Any
) -> dict[str, Any]:
    description = cloud["resources"]["networks"][network]
    cloud_properties = {"net_id": description["id"], **extra.pop("cloud_properties", {})}
    spec = {
        "type": "manual",
        "ip": static_ip(cloud, network, position),
        "netmask": "255.255.255.0",
        "gateway": description.get("gateway"),
        "dns": ["127.0.0.53"],
        "default": ["dns", "gateway"],
        "cloud_properties": cloud_properties,
    }
    spec.update(extra)
    return spec


def dynamic_network(cloud: dict[str, Any], **cloud_properties: Any) -> dict[str, Any]:
    return {
        "type": "dynamic",
        "default": ["dns", "gateway"],
        "dns": ["127.0.0.53"],
        "cloud_properties": {
            "net_id": cloud["resources"]["networks"]["dhcp"]["id"],
            **cloud_properties,
        },
    }


def vip_network(address: str) -> dict[str, Any]:
    return {"type": "vip", "ip": address, "cloud_properties": {}}


def create(
    cpi: CpiProcess,
    cloud: dict[str, Any],
    networks: dict[str, Any],
    cloud_properties: dict[str, Any] | None = None,
    *,
    disk_cids: list[str] | None = None,
    stemcell: str | None = None,
    env: dict[str, Any] | None = None,
) -> CpiResult:
    return cpi.call(
        "create_vm",
        AGENT_ID,
        stemcell or cloud["resources"]["image_id"],
        SMALL if cloud_properties is None else cloud_properties,
        networks,
        disk_cids or [],
        ENV if env is None else env,
    )


@contextlib.contextmanager
def vm(
    cpi: CpiProcess,
    cloud: dict[str, Any],
    networks: dict[str, Any],
    cloud_properties: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Iterator[tuple[str, dict[str, Any], CpiResult]]:
    """A VM made by create_vm, deleted by delete_vm when the block ends (whatever happens)."""
    result = create(cpi, cloud, networks, cloud_properties, **kwargs)
    assert result.error is None, result.error
    vm_cid, answered_networks = result.result
    try:
        yield vm_cid, answered_networks, result
    finally:
        deleted = cpi.call("delete_vm", vm_cid)
        assert deleted.error is None, deleted.error


def server(admin: Any, vm_cid: str) -> dict[str, Any]:
    """Nova's record with the admin view (microversion 2.3 shows the stored user_data)."""
    response = admin.compute.get(f"/servers/{vm_cid}", microversion="2.3")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["server"]
    return body


def user_data(admin: Any, vm_cid: str) -> dict[str, Any]:
    encoded = server(admin, vm_cid)["OS-EXT-SRV-ATTR:user_data"]
    settings: dict[str, Any] = json.loads(base64.b64decode(encoded))
    return settings


def ports_of(admin: Any, vm_cid: str) -> list[Any]:
    return list(admin.network.ports(device_id=vm_cid))


def cpi_ports(admin: Any, director_uuid: str) -> list[Any]:
    return [p for p in admin.network.ports() if director_of_port(p.description) == director_uuid]


def servers_of(admin: Any, cloud: dict[str, Any], director_uuid: str) -> list[Any]:
    return [
        s
        for s in admin.compute.servers(all_projects=True, project_id=cloud["project_id"])
        if (s.metadata or {}).get(DIRECTOR_UUID_KEY) == director_uuid
    ]


def interface_macs(admin: Any, vm_cid: str) -> set[str]:
    return {i.mac_addr for i in admin.compute.server_interfaces(vm_cid)}


def wait_gone(fetch: Any, what: str, timeout: float = 60.0) -> None:
    """Poll until `fetch()` is None (Nova deletes boot volumes after the server is gone)."""
    deadline = time.monotonic() + timeout
    while fetch() is not None:
        assert time.monotonic() < deadline, f"{what} still exists after {timeout} s"
        time.sleep(0.3)


def volume_or_none(admin: Any, volume_id: str) -> Any:
    import openstack

    try:
        volume = admin.block_storage.get_volume(volume_id)
    except openstack.exceptions.NotFoundException:
        return None
    return None if volume.status == "deleted" else volume


def expected_settings(
    cloud: dict[str, Any], vm_name: str, networks: dict[str, Any], *, ephemeral: bool = False
) -> dict[str, Any]:
    """What cpi-protocol.md §5.3 says the agent must get."""
    disks: dict[str, Any] = {"system": "/dev/sda", "persistent": {}}
    if ephemeral:
        disks["ephemeral"] = "/dev/sdb"
    settings: dict[str, Any] = {
        "server": {"name": vm_name},
        "vm": {"name": vm_name},
        "agent_id": AGENT_ID,
        "networks": networks,
        "disks": disks,
        "env": ENV,
    }
    dns = next((n["dns"] for n in networks.values() if "dns" in (n.get("default") or [])), None)
    if dns:
        settings["dns"] = {"nameserver": dns}
    for key in ("mbus", "ntp", "blobstore"):
        if key in (cloud.get("agent") or {}):
            settings[key] = cloud["agent"][key]
    return settings


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
