"""The scenarios of the fault campaign (tools/fault_campaign.py): one per CPI method that
talks to the cloud, with the fixture it needs, the director's follow-up and what a
success must have achieved on the cloud.

A `Family` is a fixture several scenarios share (a VM, a disk, a static IP), made with
fault-free CPI calls; the runs of one family's chain take turns with it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from bosh_openstack_cpi.actions.vms import STALE_AFTER_SECONDS
from tools.fault_campaign import (
    AGENT_PASSWORD,
    NO_FIXTURE,
    Context,
    Director,
    Environment,
    Family,
    Fixture,
    Invocation,
    Scenario,
)

AGENT_ID = "agent-campaign"


# --- cloud_properties and arguments -------------------------------------------------------
def _flavor(env: Environment) -> dict[str, Any]:
    return {"instance_type": env.cloud["resources"]["flavors"]["default"]}


def _with_pools(env: Environment) -> dict[str, Any]:
    """Two pools of the cloud's Octavia load balancer, one with a monitoring port."""
    web, monitored = sorted(env.cloud["resources"]["loadbalancer"]["pools"])[:2]
    return {
        **_flavor(env),
        "loadbalancer_pools": [
            {"name": web, "port": 80},
            {"name": monitored, "port": 8443, "monitoring_port": 9090},
        ],
    }


def manual_network(env: Environment, address: str) -> dict[str, Any]:
    network = env.cloud["resources"]["networks"]["manual_2"]
    return {
        "type": "manual",
        "ip": address,
        "netmask": "255.255.255.0",
        "gateway": network.get("gateway"),
        "dns": ["127.0.0.53"],
        "default": ["dns", "gateway"],
        "cloud_properties": {"net_id": network["id"]},
    }


def dynamic_network(env: Environment) -> dict[str, Any]:
    return {
        "type": "dynamic",
        "default": ["dns", "gateway"],
        "dns": ["127.0.0.53"],
        "cloud_properties": {"net_id": env.cloud["resources"]["networks"]["dhcp"]["id"]},
    }


def create_vm_arguments(
    env: Environment, networks: dict[str, Any], cloud_properties: dict[str, Any] | None = None
) -> list[Any]:
    environment = {"bosh": {"group": "campaign", "password": AGENT_PASSWORD}}
    properties = cloud_properties or _flavor(env)
    return [AGENT_ID, env.cloud["resources"]["image_id"], properties, networks, [], environment]


def _new_vm(env: Environment, director: Director) -> str:
    arguments = create_vm_arguments(env, {"default": dynamic_network(env)})
    return str(director.call("create_vm", *arguments)[0])


def _new_disk(director: Director, vm_cid: str | None = None) -> str:
    return str(director.call("create_disk", 1024, {}, vm_cid))


# --- families (shared fixtures) -----------------------------------------------------------
class StaticIp(Family):
    name = "static IP"

    def prepare(self, env: Environment, director: Director) -> Fixture:
        return {"ip": env.take_ip()}

    def release(self, env: Environment, director: Director, fixture: Fixture) -> None:
        env.give_back_ip(fixture["ip"])


class StaticAndFloatingIp(Family):
    name = "static and floating IP"

    def prepare(self, env: Environment, director: Director) -> Fixture:
        floating_id, floating_address = env.allocate_floating_ip()
        return {"ip": env.take_ip(), "floating_id": floating_id, "floating": floating_address}

    def release(self, env: Environment, director: Director, fixture: Fixture) -> None:
        env.give_back_ip(fixture["ip"])
        env.release_floating_ip(fixture["floating_id"])


class OneVm(Family):
    name = "a VM"

    def prepare(self, env: Environment, director: Director) -> Fixture:
        return {"vm": _new_vm(env, director)}

    def release(self, env: Environment, director: Director, fixture: Fixture) -> None:
        director.call("delete_vm", fixture["vm"], attempts=3)


class OneDisk(Family):
    name = "a disk"

    def prepare(self, env: Environment, director: Director) -> Fixture:
        return {"disk": _new_disk(director)}

    def release(self, env: Environment, director: Director, fixture: Fixture) -> None:
        env.volume_idle(fixture["disk"])
        director.call("delete_disk", fixture["disk"], attempts=5)


class VmAndDisk(Family):
    name = "a VM and a disk"

    def prepare(self, env: Environment, director: Director) -> Fixture:
        vm_cid = _new_vm(env, director)
        return {"vm": vm_cid, "disk": _new_disk(director, vm_cid)}

    def release(self, env: Environment, director: Director, fixture: Fixture) -> None:
        env.volume_idle(fixture["disk"])
        director.call("delete_vm", fixture["vm"], attempts=3)
        env.volume_idle(fixture["disk"])
        director.call("delete_disk", fixture["disk"], attempts=5)


STATIC_IP = StaticIp()
STATIC_AND_FLOATING_IP = StaticAndFloatingIp()
ONE_VM = OneVm()
ONE_DISK = OneDisk()
VM_AND_DISK = VmAndDisk()


# --- stemcells ----------------------------------------------------------------------------
class CreateStemcell(Scenario):
    name = method = "create_stemcell"
    kind = "create"
    auth_faults = discovery_faults = True

    def arguments(self, run: Context) -> list[Any]:
        image, properties = run.env.stemcell()
        unique = {**properties, "version": f"0.0.{uuid.uuid4().hex[:12]}"}
        return [str(image), unique, {"tags": {"campaign": "yes"}}]

    def verify(self, run: Context, result: Any) -> None:
        run.expect(run.mine("images") == [result], f"images of the run: {run.mine('images')}")
        image = run.env.admin().image.get_image(result)
        run.expect(image.status == "active", f"image {result} is {image.status}")

    def after(self, run: Context, outcome: Invocation) -> None:
        if outcome.outcome == "success":
            run.director.call("delete_stemcell", outcome.result)


class DeleteStemcell(Scenario):
    name = method = "delete_stemcell"
    kind = "delete"

    def before(self, run: Context) -> None:
        arguments = CreateStemcell().arguments(run)
        run.state["stemcell"] = run.director.call("create_stemcell", *arguments)

    def arguments(self, run: Context) -> list[Any]:
        return [run.state["stemcell"]]

    def after(self, run: Context, outcome: Invocation) -> None:
        if outcome.outcome != "success":
            run.director.call("delete_stemcell", run.state["stemcell"], attempts=3)


# --- VMs ----------------------------------------------------------------------------------
class CreateVm(Scenario):
    method = "create_vm"
    kind = "create"

    def __init__(self, variant: str) -> None:
        self.variant = variant  # "manual+vip", "dynamic" or "manual+pools"
        self.name = f"create_vm ({variant})"
        self.family = {"dynamic": NO_FIXTURE, "manual+pools": STATIC_IP}.get(
            variant, STATIC_AND_FLOATING_IP
        )
        self.auth_faults = variant == "dynamic"

    def arguments(self, run: Context) -> list[Any]:
        if self.variant == "dynamic":
            networks = {"default": dynamic_network(run.env)}
        elif self.variant == "manual+pools":
            networks = {"private": manual_network(run.env, run.ip)}
            return create_vm_arguments(run.env, networks, _with_pools(run.env))
        else:
            networks = {
                "private": manual_network(run.env, run.fixture["ip"]),
                "public": {"type": "vip", "ip": run.fixture["floating"], "cloud_properties": {}},
            }
        return create_vm_arguments(run.env, networks)

    def verify(self, run: Context, result: Any) -> None:
        vm_cid = result[0]
        servers = run.mine("servers")
        run.expect(servers == [vm_cid], f"the run's servers are {servers}")
        server = run.env.admin().compute.get_server(vm_cid)
        run.expect(server.status == "ACTIVE", f"server {vm_cid} is {server.status}")
        if self.variant == "manual+pools":
            members = run.mine("load balancer pool members")
            recorded = sorted(v for k, v in server.metadata.items() if k.startswith("lbaas_pool_"))
            run.expect(len(members) == 2, f"the run's pool members are {members}")
            run.expect(recorded == sorted(members), f"the server records {recorded}")
        elif self.variant != "dynamic":
            ports = run.mine("ports")
            run.expect(len(ports) == 1, f"the run's ports are {ports}")
            floating = run.env.admin().network.get_ip(run.fixture["floating_id"])
            run.expect(floating.port_id == ports[0], "the floating IP is not on the VM's port")

    def after(self, run: Context, outcome: Invocation) -> None:
        if outcome.outcome == "success":
            run.director.call("delete_vm", outcome.result[0])

    def recover(self, run: Context, left: dict[str, list[str]]) -> str:
        how = super().recover(run, left)
        # The director's retry: the same create_vm (same IP: a port left behind without its
        # server is found by that IP and replaced once it is old enough not to belong to a
        # create_vm still under way), then the VM is deleted again.
        if run.left(again=True).get("ports"):
            time.sleep(STALE_AFTER_SECONDS + 2)
        vm_cid = run.director.call("create_vm", *self.arguments(run), attempts=3)[0]
        run.director.call("delete_vm", vm_cid)
        return ", ".join(p for p in (how, "create_vm again, delete_vm") if p)


class DeleteVm(Scenario):
    method = "delete_vm"
    kind = "delete"
    family = STATIC_IP

    def __init__(self, with_pools: bool = False) -> None:
        self.with_pools = with_pools  # the VM is a member of two Octavia pools
        self.name = "delete_vm (pools)" if with_pools else "delete_vm"

    def before(self, run: Context) -> None:
        properties = _with_pools(run.env) if self.with_pools else None
        networks = {"private": manual_network(run.env, run.ip)}
        arguments = create_vm_arguments(run.env, networks, properties)
        run.state["vm"] = run.director.call("create_vm", *arguments)[0]

    def arguments(self, run: Context) -> list[Any]:
        return [run.state["vm"]]

    def after(self, run: Context, outcome: Invocation) -> None:
        if outcome.outcome != "success":
            run.director.call("delete_vm", run.state["vm"], attempts=3)


class OnTheVm(Scenario):
    family = ONE_VM

    def before(self, run: Context) -> None:
        run.env.server_idle(run.vm)

    def arguments(self, run: Context) -> list[Any]:
        return [run.vm]


class HasVm(OnTheVm):
    name = method = "has_vm"
    auth_faults = True

    def verify(self, run: Context, result: Any) -> None:
        run.expect(result is True, f"has_vm answered {result!r}")


class RebootVm(OnTheVm):
    name = method = "reboot_vm"

    def verify(self, run: Context, result: Any) -> None:
        server = run.env.admin().compute.get_server(run.vm)
        run.expect(
            server.status == "ACTIVE" and not server.task_state,
            f"the server is {server.status}, task {server.task_state}",
        )


class SetVmMetadata(OnTheVm):
    name = method = "set_vm_metadata"
    overrides = {"human_readable_vm_names": True}  # noqa: RUF012 (the rename request too)

    def arguments(self, run: Context) -> list[Any]:
        metadata = {"deployment": "campaign", "job": "worker", "index": 0, "name": "worker/0"}
        return [run.vm, metadata]

    def verify(self, run: Context, result: Any) -> None:
        server = run.env.admin().compute.get_server(run.vm)
        run.expect(server.metadata.get("deployment") == "campaign", "the metadata is not set")
        run.expect(server.name == "worker/0", f"the server is named {server.name}")


class CalculateVmCloudProperties(Scenario):
    name = method = "calculate_vm_cloud_properties"

    def arguments(self, run: Context) -> list[Any]:
        return [{"cpu": 1, "ram": 512, "ephemeral_disk_size": 1024}]

    def verify(self, run: Context, result: Any) -> None:
        run.expect(isinstance(result, dict) and "instance_type" in result, f"answer {result}")


# --- disks --------------------------------------------------------------------------------
class CreateDisk(OnTheVm):
    name = method = "create_disk"
    kind = "create"
    auth_faults = discovery_faults = True

    def arguments(self, run: Context) -> list[Any]:
        return [1024, {}, run.vm]

    def verify(self, run: Context, result: Any) -> None:
        volumes = run.mine("volumes")
        run.expect(volumes == [result], f"the run's volumes are {volumes}")
        volume = run.env.admin().block_storage.get_volume(result)
        run.expect(volume.status == "available", f"volume {result} is {volume.status}")

    def after(self, run: Context, outcome: Invocation) -> None:
        if outcome.outcome == "success":
            run.director.call("delete_disk", outcome.result, attempts=3)


class DeleteDisk(Scenario):
    name = method = "delete_disk"
    kind = "delete"

    def before(self, run: Context) -> None:
        run.state["disk"] = _new_disk(run.director)

    def arguments(self, run: Context) -> list[Any]:
        return [run.state["disk"]]

    def after(self, run: Context, outcome: Invocation) -> None:
        if outcome.outcome != "success":
            run.director.call("delete_disk", run.state["disk"], attempts=5)


class OnTheDisk(Scenario):
    family = ONE_DISK

    def before(self, run: Context) -> None:
        run.env.volume_idle(run.disk)

    def arguments(self, run: Context) -> list[Any]:
        return [run.disk]


class HasDisk(OnTheDisk):
    name = method = "has_disk"
    discovery_faults = True

    def verify(self, run: Context, result: Any) -> None:
        run.expect(result is True, f"has_disk answered {result!r}")


class SetDiskMetadata(OnTheDisk):
    name = method = "set_disk_metadata"

    def arguments(self, run: Context) -> list[Any]:
        return [run.disk, {"deployment": "campaign", "job": "worker", "index": "0"}]

    def verify(self, run: Context, result: Any) -> None:
        volume = run.env.admin().block_storage.get_volume(run.disk)
        run.expect(volume.metadata.get("deployment") == "campaign", "the metadata is not set")


class ResizeDisk(OnTheDisk):
    name = method = "resize_disk"

    def before(self, run: Context) -> None:
        run.env.volume_idle(run.disk)
        run.state["size"] = (run.env.volume_size(run.disk) + 1) * 1024

    def arguments(self, run: Context) -> list[Any]:
        return [run.disk, run.state["size"]]

    def verify(self, run: Context, result: Any) -> None:
        volume = run.env.admin().block_storage.get_volume(run.disk)
        run.expect(
            volume.size * 1024 == run.state["size"] and volume.status == "available",
            f"the volume has {volume.size} GiB, status {volume.status}",
        )


class UpdateDisk(ResizeDisk):
    name = method = "update_disk"

    def arguments(self, run: Context) -> list[Any]:
        return [run.disk, run.state["size"], {}]


class SnapshotDisk(OnTheDisk):
    name = method = "snapshot_disk"
    kind = "create"

    def arguments(self, run: Context) -> list[Any]:
        metadata = {"deployment": "campaign", "job": "worker", "index": 0, "instance_id": "i-1"}
        return [run.disk, metadata]

    def verify(self, run: Context, result: Any) -> None:
        found = run.mine("snapshots")
        run.expect(found == [result], f"the run's snapshots are {found}")
        snapshot = run.env.admin().block_storage.get_snapshot(result)
        run.expect(snapshot.status == "available", f"snapshot {result} is {snapshot.status}")

    def after(self, run: Context, outcome: Invocation) -> None:
        if outcome.outcome == "success":
            run.director.call("delete_snapshot", outcome.result, attempts=3)


class DeleteSnapshot(OnTheDisk):
    name = method = "delete_snapshot"
    kind = "delete"

    def before(self, run: Context) -> None:
        run.env.volume_idle(run.disk)
        run.state["snapshot"] = run.director.call("snapshot_disk", run.disk, {})

    def arguments(self, run: Context) -> list[Any]:
        return [run.state["snapshot"]]

    def after(self, run: Context, outcome: Invocation) -> None:
        if outcome.outcome != "success":
            run.director.call("delete_snapshot", run.state["snapshot"], attempts=5)


class OnTheVmAndDisk(Scenario):
    """`attached` says how each run starts."""

    family = VM_AND_DISK
    attached = False

    def before(self, run: Context) -> None:
        run.env.server_idle(run.vm)
        status = run.env.volume_idle(run.disk)
        if self.attached and status != "in-use":
            run.director.call("attach_disk", run.vm, run.disk, attempts=3)
        if not self.attached and status != "available":
            run.director.call("detach_disk", run.vm, run.disk, attempts=3)

    def arguments(self, run: Context) -> list[Any]:
        return [run.vm, run.disk]


class AttachDisk(OnTheVmAndDisk):
    name = method = "attach_disk"
    discovery_faults = True

    def verify(self, run: Context, result: Any) -> None:
        volume = run.env.admin().block_storage.get_volume(run.disk)
        servers = [a.get("server_id") for a in volume.attachments or []]
        run.expect(
            volume.status == "in-use" and servers == [run.vm],
            f"the volume is {volume.status}, attached to {servers}",
        )
        run.expect(isinstance(result, str) and result.startswith("/dev/"), f"hint {result!r}")


class DetachDisk(OnTheVmAndDisk):
    name = method = "detach_disk"
    attached = True

    def verify(self, run: Context, result: Any) -> None:
        volume = run.env.admin().block_storage.get_volume(run.disk)
        run.expect(volume.status == "available", f"the volume is {volume.status}")


class GetDisks(OnTheVmAndDisk):
    name = method = "get_disks"
    attached = True

    def arguments(self, run: Context) -> list[Any]:
        return [run.vm]

    def verify(self, run: Context, result: Any) -> None:
        run.expect(result == [run.disk], f"get_disks answered {result}")


def all_scenarios(cloud: dict[str, Any] | None = None) -> list[Scenario]:
    """Every scenario; those of loadbalancer_pools when the cloud has Octavia (its
    description's resources.loadbalancer)."""
    with_octavia: list[Scenario] = []
    if cloud is not None and cloud.get("resources", {}).get("loadbalancer"):
        with_octavia = [CreateVm("manual+pools"), DeleteVm(with_pools=True)]
    return [
        *with_octavia,
        CreateStemcell(),
        DeleteStemcell(),
        CreateVm("manual+vip"),
        CreateVm("dynamic"),
        DeleteVm(),
        HasVm(),
        RebootVm(),
        SetVmMetadata(),
        CalculateVmCloudProperties(),
        CreateDisk(),
        DeleteDisk(),
        HasDisk(),
        AttachDisk(),
        DetachDisk(),
        GetDisks(),
        SetDiskMetadata(),
        ResizeDisk(),
        UpdateDisk(),
        SnapshotDisk(),
        DeleteSnapshot(),
    ]
