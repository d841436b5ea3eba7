"""The parts of a BOSH cloud config the checks need: VM types, disk types, networks, AZs
and compilation. The file is YAML as `bosh cloud-config` prints it, or JSON (YAML needs
PyYAML, which the BOSH package does not ship: JSON always works there)."""

from __future__ import annotations

import ipaddress
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class CloudConfigError(Exception):
    pass


@dataclass(frozen=True)
class VmType:
    name: str
    cloud_properties: dict[str, Any]

    @property
    def instance_type(self) -> str | None:
        value = self.cloud_properties.get("instance_type")
        return str(value) if value else None


@dataclass(frozen=True)
class DiskType:
    name: str
    size_mb: int
    cloud_properties: dict[str, Any]

    @property
    def size_gib(self) -> int:
        return max(1, math.ceil(self.size_mb / 1024))


@dataclass(frozen=True)
class Subnet:
    net_id: str | None
    range: str | None
    gateway: str | None
    static: tuple[str, ...]
    cloud_properties: dict[str, Any]

    def last_static_ip(self) -> str | None:
        """The last address of the static ranges: least likely to be taken by a deploy."""
        addresses = [a for entry in self.static for a in _addresses(entry)]
        return max(addresses, key=lambda a: int(ipaddress.ip_address(a))) if addresses else None


@dataclass(frozen=True)
class Network:
    name: str
    type: str
    subnets: tuple[Subnet, ...]


@dataclass(frozen=True)
class CloudConfig:
    vm_types: tuple[VmType, ...] = ()
    disk_types: tuple[DiskType, ...] = ()
    networks: tuple[Network, ...] = ()
    az_properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    compilation: dict[str, Any] = field(default_factory=dict)
    vm_extensions: tuple[VmType, ...] = ()

    @property
    def compilation_vm_type(self) -> VmType | None:
        name = self.compilation.get("vm_type")
        for vm_type in self.vm_types:
            if vm_type.name == name:
                return vm_type
        return self.vm_types[0] if self.vm_types else None

    @property
    def compilation_workers(self) -> int:
        workers = self.compilation.get("workers")
        return workers if isinstance(workers, int) and workers > 0 else 1

    def net_ids(self) -> list[str]:
        return list(dict.fromkeys(s.net_id for n in self.networks for s in n.subnets if s.net_id))

    def vip_addresses(self) -> list[str]:
        return [
            address
            for n in self.networks
            if n.type == "vip"
            for s in n.subnets
            for entry in s.static
            for address in _addresses(entry)
        ]

    def compute_zones(self) -> list[str]:
        zones: list[str] = []
        for properties in self.az_properties.values():
            zones += _zones(properties)
        for vm_type in self.vm_types:
            zones += _zones(vm_type.cloud_properties)
        return list(dict.fromkeys(zones))


def _zones(properties: dict[str, Any]) -> list[str]:
    found = [properties.get("availability_zone"), *(properties.get("availability_zones") or [])]
    return [str(z) for z in found if z]


def _addresses(entry: str) -> list[str]:
    """'10.0.0.5', '10.0.0.5 - 10.0.0.9' or '10.0.0.5-10.0.0.9' (BOSH's static syntax)."""
    parts = [p.strip() for p in str(entry).split("-")]
    try:
        first = ipaddress.ip_address(parts[0])
        last = ipaddress.ip_address(parts[-1])
    except ValueError:
        return []
    count = int(last) - int(first) + 1
    if first.version != last.version or not 0 < count <= 65536:
        return [str(first)]
    return [str(first + i) for i in range(count)]


def load(path: str) -> CloudConfig:
    return parse(_read(Path(path)))


def _read(path: Path) -> dict[str, Any]:
    text = path.read_text()
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        try:
            import yaml  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise CloudConfigError(
                f"{path} is not JSON, and PyYAML is not installed to read YAML: give the "
                "cloud config as JSON (convert it where PyYAML or the bosh CLI is at hand)"
            ) from None
        document = yaml.safe_load(text)
    if not isinstance(document, dict):
        raise CloudConfigError(f"{path}: a cloud config is a mapping (azs, vm_types, networks)")
    return document


def parse(document: dict[str, Any]) -> CloudConfig:
    return CloudConfig(
        vm_types=tuple(_vm_types(document.get("vm_types"))),
        vm_extensions=tuple(_vm_types(document.get("vm_extensions"))),
        disk_types=tuple(
            DiskType(str(d.get("name")), int(d.get("disk_size") or 0), _properties(d))
            for d in _list(document.get("disk_types"))
        ),
        networks=tuple(_network(n) for n in _list(document.get("networks"))),
        az_properties={str(a.get("name")): _properties(a) for a in _list(document.get("azs"))},
        compilation=dict(document.get("compilation") or {}),
    )


def _vm_types(value: object) -> list[VmType]:
    return [VmType(str(v.get("name")), _properties(v)) for v in _list(value)]


def _network(value: dict[str, Any]) -> Network:
    kind = str(value.get("type") or "manual")
    subnets = _list(value.get("subnets"))
    if kind == "dynamic" and not subnets:  # the short form: cloud_properties on the network
        subnets = [value]
    return Network(str(value.get("name")), kind, tuple(_subnet(s) for s in subnets))


def _subnet(value: dict[str, Any]) -> Subnet:
    properties = _properties(value)
    static = value.get("static") or []
    net_id = properties.get("net_id")
    return Subnet(
        net_id=str(net_id) if net_id else None,
        range=str(value["range"]) if value.get("range") else None,
        gateway=str(value["gateway"]) if value.get("gateway") else None,
        static=tuple(str(s) for s in (static if isinstance(static, list) else [static])),
        cloud_properties=properties,
    )


def _properties(value: dict[str, Any]) -> dict[str, Any]:
    properties = value.get("cloud_properties") or {}
    return dict(properties) if isinstance(properties, dict) else {}


def _list(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
