"""What create_vm is asked for: the VM type's cloud_properties and the director's networks,
parsed and validated before anything is created on the cloud.

Every problem of one request is reported at once, each naming its key, as the config
checker does. Nothing here talks to OpenStack.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from bosh_openstack_cpi import cids
from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.protocol.errors import CloudError, VMCreationFailed

# Keys of a VM type (or vm_extension, or AZ) this CPI reads.
KNOWN_VM_TYPE_KEYS = frozenset(
    {
        "instance_type",
        "availability_zone",
        "availability_zones",
        "security_groups",
        "key_name",
        "scheduler_hints",
        "boot_from_volume",
        "root_disk",
        "allowed_address_pairs",
        "vrrp_port_check",
        "loadbalancer_pools",
    }
)
KNOWN_ROOT_DISK_KEYS = frozenset({"size", "type"})
KNOWN_POOL_KEYS = frozenset({"name", "port", "monitoring_port"})
MAX_PORT = 65535
KNOWN_NETWORK_KEYS = frozenset({"net_id", "security_groups", "vrrp_port_check"})
NETWORK_TYPES = ("manual", "dynamic", "vip")


@dataclass(frozen=True)
class RootDisk:
    size_gib: int | None = None
    volume_type: str | None = None


@dataclass(frozen=True)
class LoadbalancerPool:
    """One entry of loadbalancer_pools: the VM's gateway IP joins the Octavia pool `name`
    on `port` (health-checked on `monitoring_port` when given)."""

    name: str
    port: int
    monitoring_port: int | None = None


@dataclass(frozen=True)
class VmType:
    instance_type: str
    # Zones to try, in order: () lets Nova choose; several only with `availability_zones`.
    availability_zones: tuple[str, ...] = ()
    multiple_azs: bool = False
    security_groups: tuple[str, ...] = ()
    key_name: str | None = None
    scheduler_hints: dict[str, Any] | None = None
    boot_from_volume: bool = False
    root_disk: RootDisk = RootDisk()
    allowed_address_pairs: str | None = None
    # The Go CPI reads the VRRP check here, the Ruby CPI on the network; None: not set.
    vrrp_port_check: bool | None = None
    loadbalancer_pools: tuple[LoadbalancerPool, ...] = ()
    unknown_keys: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    type: str
    ip: str | None
    net_id: str | None
    security_groups: tuple[str, ...]
    vrrp_port_check: bool
    default: tuple[str, ...]
    dns: tuple[str, ...]
    unknown_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class NetworkPlan:
    private: tuple[NetworkSpec, ...]  # manual and dynamic, in the director's order
    vip: NetworkSpec | None
    gateway: NetworkSpec | None  # where the floating IP and the VRRP address go

    @property
    def manual(self) -> tuple[NetworkSpec, ...]:
        return tuple(n for n in self.private if n.type == "manual")

    @property
    def dynamic(self) -> NetworkSpec | None:
        return next((n for n in self.private if n.type == "dynamic"), None)

    @property
    def security_groups(self) -> tuple[str, ...]:
        """The union over all networks, sorted (the reference CPI's order)."""
        every = {
            g for n in (*self.private, *([self.vip] if self.vip else [])) for g in n.security_groups
        }
        return tuple(sorted(every))


class _Problems:
    def __init__(self, what: str) -> None:
        self.what = what
        self.items: list[str] = []
        self.warnings: list[str] = []

    def add(self, problem: str) -> None:
        self.items.append(problem)

    def raise_if_any(self, error: type[CloudError] = CloudError) -> None:
        if len(self.items) == 1:
            raise error(f"Invalid {self.what}: {self.items[0]}")
        if self.items:
            listing = "\n".join(f"  - {p}" for p in self.items)
            raise error(f"Invalid {self.what}:\n{listing}")


def _describe(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _string_list(value: object) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    return None


def _optional_string(value: object, key: str, problems: _Problems) -> str | None:
    if value is None or value == "":
        return None  # an empty string means "not set" (reference issue #54)
    if not isinstance(value, str):
        problems.add(f"{key} must be a string, got {_describe(value)}")
        return None
    return value


def parse_vm_type(cloud_properties: dict[str, Any], config: OpenStackConfig) -> VmType:
    """The VM type's cloud_properties, merged by the director with the AZ's and extensions'."""
    problems = _Problems("VM cloud_properties")
    instance_type = cloud_properties.get("instance_type")
    if not isinstance(instance_type, str) or not instance_type:
        problems.add(
            "instance_type (the Nova flavor name or id) is required"
            if instance_type is None
            else f"instance_type must be a flavor name or id, got {_describe(instance_type)}"
        )
        instance_type = ""

    zones, multiple = _availability_zones(cloud_properties, config, problems)

    security_groups: tuple[str, ...] = ()
    if "security_groups" in cloud_properties:
        groups = _string_list(cloud_properties["security_groups"])
        if groups is None:
            problems.add(
                "security_groups must be an array of security group names or UUIDs, got "
                f"{_describe(cloud_properties['security_groups'])}"
            )
        else:
            security_groups = groups

    key_name = _optional_string(cloud_properties.get("key_name"), "key_name", problems)
    hints = cloud_properties.get("scheduler_hints")
    if hints is not None and not isinstance(hints, dict):
        problems.add(
            "scheduler_hints must be an object such as {group: <server-group-uuid>}, got "
            f"{_describe(hints)}"
        )
        hints = None

    boot_from_volume = cloud_properties.get("boot_from_volume")
    if boot_from_volume is None:
        boot_from_volume = config.boot_from_volume
    elif not isinstance(boot_from_volume, bool):
        problems.add(f"boot_from_volume must be true or false, got {_describe(boot_from_volume)}")
        boot_from_volume = config.boot_from_volume

    root_disk = _root_disk(cloud_properties.get("root_disk"), problems)

    pairs = cloud_properties.get("allowed_address_pairs")
    if pairs is not None and not (_is_ip(pairs) or _is_cidr(pairs)):
        problems.add(
            "allowed_address_pairs must be one IP address (the VRRP address) or a CIDR such "
            f"as 10.0.0.0/24, got {_describe(pairs)}"
        )
        pairs = None
    vrrp_check = cloud_properties.get("vrrp_port_check")
    if vrrp_check is not None and not isinstance(vrrp_check, bool):
        problems.add(f"vrrp_port_check must be true or false, got {_describe(vrrp_check)}")
        vrrp_check = None

    pools = _loadbalancer_pools(cloud_properties.get("loadbalancer_pools"), problems)

    problems.raise_if_any()
    return VmType(
        instance_type=instance_type,
        availability_zones=zones,
        multiple_azs=multiple,
        security_groups=security_groups,
        key_name=key_name or config.default_key_name,
        scheduler_hints=hints or None,
        boot_from_volume=boot_from_volume,
        root_disk=root_disk,
        allowed_address_pairs=pairs,
        vrrp_port_check=vrrp_check,
        loadbalancer_pools=pools,
        unknown_keys=tuple(sorted(k for k in cloud_properties if k not in KNOWN_VM_TYPE_KEYS)),
        warnings=tuple(problems.warnings),
    )


def _availability_zones(
    cloud_properties: dict[str, Any], config: OpenStackConfig, problems: _Problems
) -> tuple[tuple[str, ...], bool]:
    single = _optional_string(
        cloud_properties.get("availability_zone"), "availability_zone", problems
    )
    if "availability_zones" not in cloud_properties:
        return ((single,) if single else ()), False
    several = _string_list(cloud_properties["availability_zones"])
    if several is None or not several:
        problems.add(
            "availability_zones must be a non-empty array of zone names, got "
            f"{_describe(cloud_properties['availability_zones'])}"
        )
        return (), False
    if "availability_zone" in cloud_properties:
        problems.add(
            "only one of availability_zone and availability_zones may be set (the AZ of the "
            "cloud config and the VM type may both set one)"
        )
    if not config.ignore_server_availability_zone:
        problems.add(
            "availability_zones (several zones) needs openstack.ignore_server_availability_zone: "
            "true, because persistent disks cannot follow a VM whose zone is chosen at random"
        )
    return tuple(dict.fromkeys(several)), True


def _loadbalancer_pools(value: object, problems: _Problems) -> tuple[LoadbalancerPool, ...]:
    """[{name, port, monitoring_port?}]; null or [] asks for nothing."""
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.add(
            "loadbalancer_pools must be an array of {name: <Octavia pool name>, port: <member "
            f"port>, monitoring_port: <optional health check port>}}, got {_describe(value)}"
        )
        return ()
    pools: list[LoadbalancerPool] = []
    for position, entry in enumerate(value):
        where = f"loadbalancer_pools[{position}]"
        if not isinstance(entry, dict):
            problems.add(f"{where} must be an object {{name, port}}, got {_describe(entry)}")
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.add(f"{where}.name must be the name of an Octavia pool, got {_describe(name)}")
        port = _port_number(entry.get("port"))
        if port is None:
            problems.add(
                f"{where}.port must be the members' port, 1 to {MAX_PORT}, got "
                f"{_describe(entry.get('port'))}"
            )
        monitoring_port = None
        if entry.get("monitoring_port") is not None:
            monitoring_port = _port_number(entry["monitoring_port"])
            if monitoring_port is None:
                problems.add(
                    f"{where}.monitoring_port must be a port, 1 to {MAX_PORT}, got "
                    f"{_describe(entry['monitoring_port'])}"
                )
        unknown = sorted(str(k) for k in entry if k not in KNOWN_POOL_KEYS)
        if unknown:
            problems.warnings.append(
                f"Ignoring unknown {where} keys: {', '.join(unknown)} (known: name, port, "
                "monitoring_port)"
            )
        if isinstance(name, str) and name.strip() and port is not None:
            pools.append(LoadbalancerPool(name, port, monitoring_port))
    return tuple(pools)


def _port_number(value: object) -> int | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 1 <= value <= MAX_PORT else None


def _root_disk(value: object, problems: _Problems) -> RootDisk:
    if value is None:
        return RootDisk()
    if not isinstance(value, dict):
        problems.add(
            f"root_disk must be an object {{size: <GiB>, type: <volume type>}}, got "
            f"{_describe(value)}"
        )
        return RootDisk()
    size = _whole_gib(value.get("size"))
    if value.get("size") is not None and size is None:
        problems.add(
            f"root_disk.size must be a whole number of GiB, from 1 to {cids.MAX_VOLUME_GIB}, got "
            f"{_describe(value.get('size'))}"
        )
    volume_type = _optional_string(value.get("type"), "root_disk.type", problems)
    unknown = sorted(k for k in value if k not in KNOWN_ROOT_DISK_KEYS)
    if unknown:
        problems.warnings.append(
            f"Ignoring unknown root_disk keys: {', '.join(unknown)} (known: size, type)"
        )
    return RootDisk(size_gib=size, volume_type=volume_type)


def _whole_gib(size: object) -> int | None:
    """A size in GiB: an integer, or a float without a fraction (10.0, as YAML may give)."""
    if isinstance(size, float) and size.is_integer():
        size = int(size)
    if isinstance(size, bool) or not isinstance(size, int):
        return None
    return size if 1 <= size <= cids.MAX_VOLUME_GIB else None


def _is_ip(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_cidr(value: object) -> bool:
    """A prefix Neutron accepts in allowed_address_pairs (host bits may be set)."""
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def parse_networks(networks: dict[str, Any]) -> NetworkPlan:
    """The director's network settings of one VM (create_vm's 4th argument)."""
    problems = _Problems("network settings")
    private: list[NetworkSpec] = []
    vips: list[NetworkSpec] = []
    for name, settings in networks.items():
        spec = _network(name, settings, problems)
        if spec is None:
            continue
        (vips if spec.type == "vip" else private).append(spec)
    if not private and not problems.items:
        problems.add("at least one manual or dynamic network is required")
    dynamic = [n.name for n in private if n.type == "dynamic"]
    if len(dynamic) > 1:
        problems.add(f"only one dynamic network per VM is possible, got {', '.join(dynamic)}")
    if len(vips) > 1:
        problems.add(
            f"only one vip network per VM is possible, got {', '.join(v.name for v in vips)}"
        )
    seen: dict[str, str] = {}
    for network in private:
        if network.net_id is None:
            continue
        if network.net_id in seen:
            problems.add(
                f"networks {seen[network.net_id]} and {network.name} use the same net_id "
                f"{network.net_id}: a VM can have only one interface per Neutron network"
            )
        seen[network.net_id] = network.name
    problems.raise_if_any()
    return NetworkPlan(
        private=tuple(private), vip=vips[0] if vips else None, gateway=_gateway(private)
    )


def _gateway(private: list[NetworkSpec]) -> NetworkSpec | None:
    if len(private) == 1:
        return private[0]
    return next((n for n in private if "gateway" in n.default), None)


def _network(name: str, settings: object, problems: _Problems) -> NetworkSpec | None:
    if not isinstance(settings, dict):
        problems.add(f"network {name} must be an object, got {_describe(settings)}")
        return None
    kind = settings.get("type") or "manual"  # the director omits the type of manual networks
    if kind not in NETWORK_TYPES:
        problems.add(
            f"network {name} has type {_describe(kind)}: the OpenStack CPI handles manual, "
            "dynamic and vip networks"
        )
        return None
    cloud_properties = settings.get("cloud_properties") or {}
    if not isinstance(cloud_properties, dict):
        problems.add(f"network {name}: cloud_properties must be an object")
        cloud_properties = {}
    net_id = cloud_properties.get("net_id")
    if net_id is not None and not cids.is_valid("net_id", net_id):
        problems.add(
            f"network {name}: net_id must be a Neutron network UUID such as "
            f"'{cids.EXAMPLE_UUID}', got {_describe(net_id)}"
        )
        net_id = None
    if kind == "manual" and net_id is None and "net_id" not in cloud_properties:
        problems.add(
            f"manual network {name} needs cloud_properties.net_id (a Neutron network UUID)"
        )
    groups: tuple[str, ...] = ()
    if "security_groups" in cloud_properties:
        parsed = _string_list(cloud_properties["security_groups"])
        if parsed is None:
            problems.add(
                f"network {name}: security_groups must be an array of security group names or "
                f"UUIDs, got {_describe(cloud_properties['security_groups'])}"
            )
        else:
            groups = parsed
    vrrp_check = cloud_properties.get("vrrp_port_check", True)
    if not isinstance(vrrp_check, bool):
        problems.add(f"network {name}: vrrp_port_check must be true or false")
        vrrp_check = True
    ip = settings.get("ip")
    if kind in ("manual", "vip"):
        if ip is None:
            problems.add(f"{kind} network {name} has no ip")
        elif not _is_ip(ip):
            problems.add(f"{kind} network {name}: ip {_describe(ip)} is not an IP address")
            ip = None
    else:
        ip = None
    default = settings.get("default") or []
    dns = settings.get("dns") or []
    return NetworkSpec(
        name=name,
        type=kind,
        ip=ip,
        net_id=net_id,
        security_groups=groups,
        vrrp_port_check=vrrp_check,
        default=tuple(d for d in default if isinstance(d, str))
        if isinstance(default, list)
        else (),
        dns=tuple(d for d in dns if isinstance(d, str)) if isinstance(dns, list) else (),
        unknown_keys=tuple(sorted(k for k in cloud_properties if k not in KNOWN_NETWORK_KEYS)),
    )


def check_multiple_networks(plan: NetworkPlan, config: OpenStackConfig) -> None:
    """Several NICs: the agent must configure them statically from the config drive (DHCP
    would answer on every interface and the metadata service only on one)."""
    if len(plan.private) < 2:
        return
    missing = []
    if config.use_dhcp:
        missing.append("openstack.use_dhcp: false")
    if config.config_drive is None:
        missing.append("openstack.config_drive: cdrom (or disk)")
    if missing:
        names = ", ".join(n.name for n in plan.private)
        raise VMCreationFailed(
            f"Multiple manual networks ({names}) can only be used with 'openstack.use_dhcp=false' "
            f"and 'openstack.config_drive=cdrom|disk': set {' and '.join(missing)} in the CPI "
            "config, and gateway and dns on one of the BOSH networks"
        )
    if plan.gateway is None and (plan.vip is not None):
        raise CloudError(
            "With several networks, the vip network needs a gateway network: add "
            "default: [dns, gateway] to one of the manual networks"
        )


def stemcell_image_id(stemcell_cid: str) -> str:
    """A light stemcell's cid is '<glance image id> light'; a heavy one is the image id."""
    return cids.image_id_of_stemcell(cids.check("stemcell_cid", stemcell_cid))
