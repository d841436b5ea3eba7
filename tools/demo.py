"""The main job: a BOSH lifecycle through the real CPI executable against a real cloud.

    scripts/demo                                      # the local OpenStack
    BOSH_CPI_TEST_CLOUD=/path/cloud.json scripts/demo # your cloud (docs/testing.md)

Every call is a new process with a director-like environment (wiped environment,
request on stdin), as the BOSH director runs the CPI. Each request and response is
printed; credentials never are (the CPI redacts its own output, and user_data is never
logged). Everything the demo creates is deleted again, also when a step fails.
"""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from tools.cloud_description import cpi_document, load_description, write_cpi_json
from tools.cpi_process import CpiProcess, CpiResult, cpi_command
from tools.stemcell_builder import build_stemcell


class StepFailed(Exception):
    pass


class Demo:
    def __init__(self, cpi: CpiProcess) -> None:
        self.cpi = cpi
        self.cleanups: list[tuple[str, str]] = []

    def run(self, step: str, method: str, *arguments: Any, expect_error: bool = False) -> Any:
        request = self.cpi.request(method, *arguments)
        result = self.cpi.send(json.dumps(request).encode())
        _show(step, request, result)
        if (result.error is not None) != expect_error:
            raise StepFailed(f"{method}: {result.error or 'expected an error'}")
        return result.result

    def cleanup(self) -> None:
        for method, cid in reversed(self.cleanups):
            self.run(f"clean-up: {method}", method, cid)
        self.cleanups.clear()


def _show(step: str, request: dict[str, Any], result: CpiResult) -> None:
    print(f"\n== {step}  ({result.seconds * 1000:.0f} ms)")
    print("request : " + _shorten(json.dumps(request)))
    shown = dict(result.response)
    log = shown.pop("log", "")
    print("response: " + _shorten(json.dumps(shown)))
    if log:
        lines = log.rstrip().split("\n")
        print("log     : " + "\n          ".join(lines[-6:]))


def _shorten(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit] + " …"


def _networks(cloud: dict[str, Any]) -> dict[str, Any]:
    manual = cloud["resources"]["networks"]["manual_1"]
    return {
        "private": {
            "type": "manual",
            "ip": manual["static_ips"][0],
            "netmask": "255.255.255.0",
            "gateway": manual["gateway"],
            "dns": [],
            "default": ["dns", "gateway"],
            "cloud_properties": {"net_id": manual["id"]},
        },
        "public": {
            "type": "vip",
            "ip": cloud["resources"]["floating_ips"][0],
            "cloud_properties": {},
        },
    }


def lifecycle(demo: Demo, cloud: dict[str, Any], scratch: Path) -> None:
    demo.run("info: versions and stemcell formats (no cloud needed)", "info")
    demo.run("has_vm of an unknown VM: authenticates, asks Nova", "has_vm", str(uuid.uuid4()))

    stemcell = build_stemcell(scratch / "stemcell", "qcow2", 64 << 20)
    image = demo.run(
        "create_stemcell: stream root.img from the tarball into Glance",
        "create_stemcell",
        str(stemcell.image),
        stemcell.cloud_properties,
    )
    demo.cleanups.append(("delete_stemcell", image))

    vm_cid, networks = demo.run(
        "create_vm on a manual network (fixed IP, own port) and a vip (floating IP)",
        "create_vm",
        f"agent-{uuid.uuid4()}",
        image,
        {"instance_type": cloud["resources"]["flavors"]["default"]},
        _networks(cloud),
        [],
        {"bosh": {"group": "demo", "groups": ["demo"]}},
    )
    demo.cleanups.append(("delete_vm", vm_cid))
    print(f"   -> VM {vm_cid}, MAC {networks['private'].get('mac')}")
    demo.run("has_vm of the new VM", "has_vm", vm_cid)
    demo.run(
        "set_vm_metadata",
        "set_vm_metadata",
        vm_cid,
        {"director": "demo", "deployment": "demo", "job": "web", "index": "0", "name": "web/0"},
    )

    disk = demo.run(
        "create_disk of 1 GiB in the VM's availability zone", "create_disk", 1024, {}, vm_cid
    )
    demo.cleanups.insert(1, ("delete_disk", disk))  # clean-up order: VM, disk, stemcell
    hint = demo.run("attach_disk: returns the device hint", "attach_disk", vm_cid, disk)
    print(f"   -> disk {disk} attached as {hint}")
    demo.run("get_disks", "get_disks", vm_cid)
    snapshot = demo.run(
        "snapshot_disk of the attached disk",
        "snapshot_disk",
        disk,
        {"deployment": "demo", "job": "web", "index": 0},
    )
    demo.run("delete_snapshot", "delete_snapshot", snapshot)
    demo.run("detach_disk", "detach_disk", vm_cid, disk)
    demo.cleanup()
    demo.run("has_vm after delete_vm", "has_vm", vm_cid)


def main() -> int:
    description = load_description()
    print(f"Cloud: {description['openstack']['auth_url']}")
    with tempfile.TemporaryDirectory(prefix="bosh-cpi-demo-") as scratch:
        config = write_cpi_json(Path(scratch), cpi_document(description))
        demo = Demo(CpiProcess(cpi_command(config), director_uuid=f"demo-{uuid.uuid4()}"))
        try:
            lifecycle(demo, description, Path(scratch))
        except StepFailed as failure:
            print(f"\nDemo FAILED: {failure}")
            demo.cleanup()
            return 1
    print("\nDemo passed: full lifecycle, nothing left behind")
    return 0


if __name__ == "__main__":
    sys.exit(main())
