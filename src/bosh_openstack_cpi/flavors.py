"""Nova flavors: picking the one a VM type names, the checks create_vm makes on it, and
calculate_vm_cloud_properties (the smallest flavor meeting cpu/ram/ephemeral disk).

Units: flavor `ram` in MiB, `disk`/`ephemeral` in GiB; the director's requirements in MiB.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bosh_openstack_cpi.protocol.errors import CloudError

if TYPE_CHECKING:
    from bosh_openstack_cpi.vm_properties import RootDisk

# Root disk the agent needs for the OS when it also carves the ephemeral data from it.
OS_OVERHEAD_GIB = 3


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int  # MiB
    disk: int  # GiB
    ephemeral: int  # GiB
    swap: int = 0  # MiB
    disabled: bool = False

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> Flavor:
        swap = body.get("swap") or 0
        return cls(
            id=str(body["id"]),
            name=str(body.get("name") or body["id"]),
            vcpus=int(body.get("vcpus") or 0),
            ram=int(body.get("ram") or 0),
            disk=int(body.get("disk") or 0),
            ephemeral=int(body.get("OS-FLV-EXT-DATA:ephemeral") or 0),
            swap=int(swap) if str(swap).isdigit() else 0,  # Nova sends "" for no swap
            disabled=bool(body.get("OS-FLV-DISABLED:disabled")),
        )

    @property
    def has_ephemeral_disk(self) -> bool:
        return self.ephemeral > 0

    def describe(self) -> str:
        return (
            f"{self.name}: {self.vcpus} CPU, {self.ram} MiB RAM, {self.disk} GiB root disk, "
            f"{self.ephemeral} GiB ephemeral disk"
        )


def find(flavors: Iterable[Flavor], instance_type: str) -> Flavor:
    """By name first (what the reference CPI accepts), then by id."""
    listed = list(flavors)
    for flavor in listed:
        if flavor.name == instance_type:
            return flavor
    for flavor in listed:
        if flavor.id == instance_type:
            return flavor
    names = ", ".join(sorted(f.name for f in listed)) or "none"
    raise CloudError(
        f"Flavor '{instance_type}' (cloud_properties.instance_type) not found in Nova; "
        f"flavors this project can use: {names}"
    )


def minimum_ephemeral_gib(flavor: Flavor) -> int:
    """The agent puts swap (as large as the RAM) and /var/vcap/data on the ephemeral disk."""
    return (flavor.ram // 1024) * 2


def check_ephemeral_disk(flavor: Flavor) -> None:
    minimum = minimum_ephemeral_gib(flavor)
    if flavor.has_ephemeral_disk and flavor.ephemeral < minimum:
        raise CloudError(
            f"Flavor '{flavor.name}' should have at least {minimum} GiB of ephemeral disk (twice "
            f"its {flavor.ram} MiB of RAM: the agent puts swap and /var/vcap/data there), it has "
            f"{flavor.ephemeral} GiB: pick another instance_type"
        )


def boot_volume_size(flavor: Flavor, root_disk: RootDisk) -> int:
    if root_disk.size_gib is not None:
        return root_disk.size_gib
    if flavor.disk == 0:
        raise CloudError(
            f"Flavor '{flavor.name}' has a root disk size of 0. Either pick a different flavor or "
            "define root_disk.size in your VM cloud_properties (boot from volume needs a size)"
        )
    return flavor.disk


def _requirement(requirements: dict[str, Any], key: str, problems: list[str]) -> int:
    value = requirements.get(key)
    if value is None:
        problems.append(f"'{key}' is missing")
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        problems.append(f"'{key}' must be a non-negative number, got {value!r}")
        return 0
    return math.ceil(value)


def vm_cloud_properties(
    requirements: dict[str, Any], flavors: Iterable[Flavor], boot_from_volume: bool
) -> dict[str, Any]:
    """The reference CPI's mapping: among enabled flavors with enough CPUs and RAM,
    - boot from volume: flavors without ephemeral disk (the boot volume is sized instead);
    - otherwise flavors whose ephemeral disk holds the requested size (and a root disk of
      at least 3 GiB), else flavors without ephemeral disk whose root disk holds both;
    then the smallest by (vcpus, ram, disk + ephemeral, disk).
    Unlike the reference, flavors that create_vm would refuse (ephemeral disk smaller than
    twice the RAM) are never proposed.
    """
    problems: list[str] = []
    cpu = _requirement(requirements, "cpu", problems)
    ram = _requirement(requirements, "ram", problems)
    ephemeral_mib = _requirement(requirements, "ephemeral_disk_size", problems)
    if problems:
        raise CloudError(
            "calculate_vm_cloud_properties needs {cpu, ram (MiB), ephemeral_disk_size (MiB)}: "
            + "; ".join(problems)
        )
    ephemeral_gib = math.ceil(ephemeral_mib / 1024)
    listed = list(flavors)
    usable = [
        f
        for f in listed
        if f.vcpus >= cpu
        and f.ram >= ram
        and not f.disabled
        and not (f.has_ephemeral_disk and f.ephemeral < minimum_ephemeral_gib(f))
    ]
    if boot_from_volume:
        candidates = [f for f in usable if not f.has_ephemeral_disk]
    else:
        candidates = [
            f for f in usable if f.ephemeral >= ephemeral_gib and f.disk >= OS_OVERHEAD_GIB
        ] or [
            f
            for f in usable
            if not f.has_ephemeral_disk and f.disk >= ephemeral_gib + OS_OVERHEAD_GIB
        ]
    if not candidates:
        available = "\n".join(f"  {f.describe()}" for f in listed) or "  (none)"
        mode = " booting from volume" if boot_from_volume else ""
        raise CloudError(
            f"Unable to meet requested VM requirements{mode}: {cpu} CPU, {ram} MiB RAM, "
            f"{ephemeral_mib / 1024:g} GiB ephemeral disk. Available flavors:\n{available}"
        )
    best = min(candidates, key=lambda f: (f.vcpus, f.ram, f.disk + f.ephemeral, f.disk))
    result: dict[str, Any] = {"instance_type": best.name}
    needed_root = OS_OVERHEAD_GIB + ephemeral_gib
    if boot_from_volume and best.disk < needed_root:
        result["root_disk"] = {"size": needed_root}
    return result
