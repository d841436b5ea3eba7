"""The end-to-end run of `validate`: the CPI executable, started once per call with a JSON
request on stdin exactly as the director starts it, goes through a stemcell, a VM on each
network of the cloud config (a floating IP on the first), a persistent disk, attach,
snapshot, detach and deletes everything; then the cloud is searched for anything left
with this run's director UUID. Whatever fails, what was created is deleted."""

from __future__ import annotations

import io
import ipaddress
import itertools
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import uuid
from collections.abc import Callable
from typing import Any

from bosh_openstack_cpi.operator.checks import CheckFailed, Outcome, Runner, passed
from bosh_openstack_cpi.operator.cloud_config import CloudConfig, Network

GROUP = "end-to-end"
# A call may wait for OpenStack up to state_timeout several times (create, then clean up).
CALL_TIMEOUT_SECONDS = 1800
DEFAULT_DISK_MB = 1024
STEMCELL = {"name": "bosh-openstack-cpi-validate", "version": "0"}
# A heavy stemcell small enough to upload anywhere in a moment: zeros, which no VM boots,
# but Nova makes the server ACTIVE all the same, which is all create_vm waits for.
TINY_IMAGE_BYTES = 1 << 20
TINY_STEMCELL = {
    **STEMCELL,
    "disk_format": "raw",
    "container_format": "bare",
    "architecture": "x86_64",
    "os_type": "linux",
}


def tiny_stemcell_image(directory: str) -> str:
    """The stemcell's `image`: a gzipped tar of a raw root.img, as the director unpacks it
    from a stemcell tarball."""
    path = os.path.join(directory, "image")
    member = tarfile.TarInfo("root.img")
    member.size = TINY_IMAGE_BYTES
    with tarfile.open(path, "w:gz") as archive:
        archive.addfile(member, io.BytesIO(bytes(TINY_IMAGE_BYTES)))
    return path


class CpiExecutable:
    """`python -m bosh_openstack_cpi <cpi.json> [<cacert.pem>]`, one process per call."""

    def __init__(self, config_path: str, ca_cert_path: str | None, director_uuid: str) -> None:
        self.command = [sys.executable, "-m", "bosh_openstack_cpi", config_path]
        if ca_cert_path:
            self.command.append(ca_cert_path)
        self.director_uuid = director_uuid
        self._numbers = itertools.count(1)

    def call(self, method: str, *arguments: Any) -> Any:
        request = {
            "method": method,
            "arguments": list(arguments),
            "context": {
                "director_uuid": self.director_uuid,
                "request_id": f"validate-{next(self._numbers)}",
                "vm": {"stemcell": {"api_version": 3}},
            },
            "api_version": 2,
        }
        completed = subprocess.run(
            self.command,
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=CALL_TIMEOUT_SECONDS,
            check=False,
        )
        try:
            response = json.loads(completed.stdout)
        except ValueError:
            raise CheckFailed(
                f"{method}: the CPI wrote no JSON answer (exit {completed.returncode})",
                "run the CPI by hand with this request and read its stderr",
            ) from None
        error = response.get("error")
        if error:
            raise CheckFailed(
                f"{method} failed: {error.get('type')}: {error.get('message')}",
                "the director's deploy would fail the same way: fix what the message names",
            )
        return response.get("result")


class EndToEnd:
    def __init__(
        self,
        cpi: CpiExecutable,
        cloud_config: CloudConfig,
        runner: Runner,
        image_id: str | None,
        list_marked: Callable[[], dict[str, list[str]]],
    ) -> None:
        self.cpi = cpi
        self.cloud_config = cloud_config
        self.runner = runner
        self.image_id = image_id
        self.list_marked = list_marked
        # what exists right now, newest last: deleted in reverse when something fails
        self.created: list[tuple[str, tuple[str, ...]]] = []
        self.stemcell: str | None = None
        self.vms: list[str] = []
        self.disk: str | None = None
        self.snapshot: str | None = None

    def run(self) -> None:
        steps = self._steps()
        failed = False
        for name, step in steps:
            if failed:
                self.runner.skip(GROUP, name, "an earlier step failed")
                continue
            failed = self.runner.run(GROUP, name, step).failed
        if self.created:
            self.runner.run(GROUP, "clean up after the failure", self._clean_up)
        self.runner.run(GROUP, "nothing left on the cloud", self._nothing_left)

    def _steps(self) -> list[tuple[str, Callable[[], Outcome]]]:
        steps: list[tuple[str, Callable[[], Outcome]]] = [
            (
                "create_stemcell (light, on --image)"
                if self.image_id
                else f"create_stemcell (a {TINY_IMAGE_BYTES >> 20} MiB image it builds)",
                self._create_stemcell,
            )
        ]
        vip = self._vip_address()
        for position, network in enumerate(self._vm_networks()):
            floating = vip if position == 0 else None
            label = f"create_vm on network '{network.name}'" + (
                f" with floating IP {floating}" if floating else ""
            )
            steps.append((label, self._vm_creator(network, floating)))
        steps += [
            ("create_disk", self._create_disk),
            ("attach_disk", self._attach_disk),
            ("snapshot_disk", self._snapshot_disk),
            ("delete_snapshot", self._delete_snapshot),
            ("detach_disk", self._detach_disk),
            ("delete_disk", self._delete_disk),
            ("delete_vm (every VM)", self._delete_vms),
            ("delete_stemcell", self._delete_stemcell),
        ]
        return steps

    def _vm_networks(self) -> list[Network]:
        return [n for n in self.cloud_config.networks if n.type in ("manual", "dynamic")]

    def _vip_address(self) -> str | None:
        addresses = self.cloud_config.vip_addresses()
        return addresses[0] if addresses else None

    # --- steps -----------------------------------------------------------------------------
    def _create_stemcell(self) -> Outcome:
        with tempfile.TemporaryDirectory(prefix="bosh-openstack-cpi-validate-") as directory:
            if self.image_id:  # a light stemcell: the image exists already
                image = os.path.join(directory, "image")
                open(image, "wb").close()
                properties = {**STEMCELL, "image_id": self.image_id}
            else:
                image, properties = tiny_stemcell_image(directory), TINY_STEMCELL
            self.stemcell = str(self.cpi.call("create_stemcell", image, properties))
        self.created.append(("delete_stemcell", (self.stemcell,)))
        return passed(self.stemcell)

    def _vm_creator(self, network: Network, floating_ip: str | None) -> Callable[[], Outcome]:
        def create() -> Outcome:
            networks = {network.name: self._network_spec(network)}
            if floating_ip:
                networks["vip"] = {"type": "vip", "ip": floating_ip, "cloud_properties": {}}
            answer = self.cpi.call(
                "create_vm",
                str(uuid.uuid4()),  # agent id
                self.stemcell,
                self._vm_cloud_properties(),
                networks,
                [],
                {},
            )
            # CPI API v2 answers [vm_cid, networks]
            vm_cid = str(answer[0] if isinstance(answer, list) else answer)
            self.vms.append(vm_cid)
            self.created.append(("delete_vm", (vm_cid,)))
            if self.cpi.call("has_vm", vm_cid) is not True:
                raise CheckFailed(f"has_vm {vm_cid} is not true", "see the CPI's log")
            return passed(vm_cid)

        return create

    def _network_spec(self, network: Network) -> dict[str, Any]:
        subnet = network.subnets[0]
        spec: dict[str, Any] = {
            "type": network.type,
            "cloud_properties": subnet.cloud_properties,
            "default": ["dns", "gateway"],
        }
        if network.type == "manual":
            address = subnet.last_static_ip()
            if address is None or subnet.range is None:
                raise CheckFailed(
                    f"manual network '{network.name}' has no static IP to put a test VM on",
                    "add a static IP to the network's first subnet in the cloud config",
                )
            spec.update(
                ip=address,
                netmask=str(ipaddress.ip_network(subnet.range, strict=False).netmask),
                gateway=subnet.gateway,
            )
        return spec

    def _vm_cloud_properties(self) -> dict[str, Any]:
        """The compilation VM type, with the first AZ's properties under it (as BOSH merges)."""
        vm_type = self.cloud_config.compilation_vm_type
        properties: dict[str, Any] = {}
        zones = list(self.cloud_config.az_properties.values())
        if zones:
            properties.update(zones[0])
        if vm_type is not None:
            properties.update(vm_type.cloud_properties)
        return properties

    def _create_disk(self) -> Outcome:
        disk_types = self.cloud_config.disk_types
        size = disk_types[0].size_mb if disk_types else DEFAULT_DISK_MB
        properties = disk_types[0].cloud_properties if disk_types else {}
        self.disk = str(self.cpi.call("create_disk", size, properties, self.vms[0]))
        self.created.append(("delete_disk", (self.disk,)))
        return passed(f"{self.disk} ({size} MB)")

    def _attach_disk(self) -> Outcome:
        hint = self.cpi.call("attach_disk", self.vms[0], self.disk)
        self.created.append(("detach_disk", (self.vms[0], str(self.disk))))
        return passed(f"device hint {hint}")

    def _snapshot_disk(self) -> Outcome:
        self.snapshot = str(
            self.cpi.call("snapshot_disk", self.disk, {"deployment": "validate", "job": "e2e"})
        )
        self.created.append(("delete_snapshot", (self.snapshot,)))
        return passed(self.snapshot)

    def _delete_snapshot(self) -> Outcome:
        return self._undo("delete_snapshot", str(self.snapshot))

    def _detach_disk(self) -> Outcome:
        return self._undo("detach_disk", self.vms[0], str(self.disk))

    def _delete_disk(self) -> Outcome:
        return self._undo("delete_disk", str(self.disk))

    def _delete_vms(self) -> Outcome:
        for vm_cid in list(self.vms):
            self._undo("delete_vm", vm_cid)
        return passed(f"{len(self.vms)} VM(s) deleted")

    def _delete_stemcell(self) -> Outcome:
        return self._undo("delete_stemcell", str(self.stemcell))

    def _undo(self, method: str, *arguments: str) -> Outcome:
        self.cpi.call(method, *arguments)
        self.created.remove((method, arguments))
        return passed(" ".join(arguments))

    # --- afterwards --------------------------------------------------------------------------
    def _clean_up(self) -> Outcome:
        """Reverse order of creation: a snapshot before its disk, a detach before the VM."""
        problems: list[str] = []
        done: list[str] = []
        for method, arguments in reversed(list(self.created)):
            try:
                self._undo(method, *arguments)
                done.append(f"{method} {' '.join(arguments)}")
            except CheckFailed as failure:
                problems.append(str(failure))
        if problems:
            raise CheckFailed(
                "; ".join(problems),
                "delete what is left by hand (bosh-openstack-cpi orphans --director-uuid "
                f"{self.cpi.director_uuid} --delete)",
            )
        return passed("; ".join(done))

    def _nothing_left(self) -> Outcome:
        left = self.list_marked()
        if left:
            listing = "; ".join(f"{kind}: {', '.join(ids)}" for kind, ids in left.items())
            raise CheckFailed(
                f"left on the cloud with director UUID {self.cpi.director_uuid}: {listing}",
                f"bosh-openstack-cpi orphans --director-uuid {self.cpi.director_uuid} --delete",
            )
        return passed(f"no resource carries director UUID {self.cpi.director_uuid}")
