"""`bosh-openstack-cpi validate`: can BOSH run on this cloud with this cpi.json (and cloud
config)? Every check uses the CPI's own adapters; the end-to-end run (end_to_end.py) runs
the CPI executable itself, as the director does."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bosh_openstack_cpi import flavors as flavor_rules
from bosh_openstack_cpi.call import Call
from bosh_openstack_cpi.operator.checks import CheckFailed, Outcome, Runner, passed, warning
from bosh_openstack_cpi.operator.cloud_config import CloudConfig, VmType
from bosh_openstack_cpi.protocol.errors import CloudError

# Catalog types of each service the CPI uses (Cinder is registered under several).
REQUIRED_SERVICES = {
    "compute": ("compute",),
    "image": ("image",),
    "network": ("network",),
    "block storage": ("block-storage", "volumev3", "volume"),
}
DIRECTOR_PORTS = (22, 6868, 25555)
# Nova 2.67: a volume type for boot volumes (root_disk.type); Cinder 3.42: extending an
# attached disk (otherwise the director detaches it to resize).
COMPUTE_VOLUME_TYPE_MICROVERSION = "2.67"
CINDER_EXTEND_ATTACHED_MICROVERSION = "3.42"
# Tokens and TLS certificates carry times: a clock that far off breaks or confuses both.
SKEW_WARN_SECONDS = 10.0
SKEW_FAIL_SECONDS = 60.0


@dataclass(frozen=True)
class Need:
    """What one resource needs against what the project has left."""

    name: str
    needed: int
    limit: int
    used: int

    @property
    def free(self) -> int | None:
        return None if self.limit < 0 else self.limit - self.used

    def describe(self) -> str:
        free = "unlimited" if self.free is None else f"{self.free} free of {self.limit}"
        return f"{self.name} {free}, need {self.needed}"


class Validation:
    def __init__(self, call: Call, cloud_config: CloudConfig | None, runner: Runner) -> None:
        self.call = call
        self.cloud_config = cloud_config or CloudConfig()
        self.has_cloud_config = cloud_config is not None
        self.runner = runner
        self._authenticated_between = (0.0, 0.0)

    @property
    def openstack(self) -> Any:
        return self.call.config.openstack

    def run_static_checks(self) -> bool:
        """Everything but the end-to-end run; True when authentication worked (the end-to-end
        run needs it)."""
        config = self.runner.run("configuration", "cpi.json", self.read_config)
        if config.failed:
            return False
        auth = self.runner.run("identity", "Keystone authentication", self.authenticate)
        if auth.failed:
            return False
        steps: list[tuple[str, str, Callable[[], Outcome]]] = [
            ("identity", "service catalog", self.catalog),
            ("identity", "API versions and microversions", self.versions),
            ("identity", "clock skew against Keystone", self.clock_skew),
            ("capacity", "quotas", self.quotas),
            ("compute", "flavors", self.flavors),
            ("compute", "key pair", self.key_pairs),
            ("compute", "availability zones", self.availability_zones),
            ("network", "networks and subnets", self.networks),
            ("network", "floating IPs", self.floating_ips),
            ("network", "security groups", self.security_groups),
            ("network", "load balancer pools", self.load_balancer_pools),
            ("block storage", "volume types", self.volume_types),
        ]
        for group, name, check in steps:
            self.runner.run(group, name, check)
        return True

    # --- identity ----------------------------------------------------------------------
    def read_config(self) -> Outcome:
        openstack = self.openstack
        method = "application credential" if openstack.uses_application_credential else "password"
        return passed(f"auth_url {openstack.auth_url}, {method} authentication")

    def authenticate(self) -> Outcome:
        before = time.time()
        cloud = self.call.cloud  # a fresh token: the token cache is bypassed (session.py)
        self._authenticated_between = (before, time.time())
        project = cloud.connection.current_project_id
        return passed(f"token issued for project {project}")

    def _connection(self) -> Any:
        from bosh_openstack_cpi.openstack.connection import Connection

        connection = self.call.cloud.connection
        if not isinstance(connection, Connection):  # token_cache is off for validate
            raise CheckFailed("not a keystoneauth connection", "report this as a bug")
        return connection

    def catalog(self) -> Outcome:
        types = set(self._connection().catalog_service_types())
        missing = [s for s, names in REQUIRED_SERVICES.items() if not types & set(names)]
        if missing:
            raise CheckFailed(
                f"the token's catalog has no {', '.join(missing)} endpoint "
                f"(it has {', '.join(sorted(types))})",
                "register the endpoints in Keystone, or fix openstack.region / endpoint_type",
            )
        if self._load_balancer_pool_names() and "load-balancer" not in types:
            raise CheckFailed(
                "the cloud config uses loadbalancer_pools, but the token's catalog has no "
                "load-balancer (Octavia) endpoint",
                "register Octavia's endpoint in Keystone (or fix openstack.region / "
                "endpoint_type), or drop loadbalancer_pools from the cloud config",
            )
        return passed(f"{', '.join(REQUIRED_SERVICES)} found")

    def _load_balancer_pool_names(self) -> list[str]:
        """The pool names of loadbalancer_pools in the cloud config's VM types and
        vm_extensions, in order, once each."""
        types = self.cloud_config.vm_types + self.cloud_config.vm_extensions
        names = [
            str(entry.get("name"))
            for t in types
            for entry in t.cloud_properties.get("loadbalancer_pools") or []
            if isinstance(entry, dict) and entry.get("name")
        ]
        return list(dict.fromkeys(names))

    def load_balancer_pools(self) -> Outcome:
        """Each pool named in loadbalancer_pools exists once, on one load balancer."""
        names = self._load_balancer_pool_names()
        if not names:
            return passed("loadbalancer_pools not used")
        balancer = self.call.cloud.load_balancer
        found: list[str] = []
        problems: list[str] = []
        for name in names:
            try:
                pool = balancer.pool_named(name)
            except CloudError as error:
                problems.append(error.message)
                continue
            found.append(f"{name} ({pool.id}, load balancer {pool.loadbalancer_id})")
        if problems:
            raise CheckFailed(
                "; ".join(problems),
                "create the pools in Octavia with unique names, or fix loadbalancer_pools in "
                "the cloud config",
            )
        return passed(", ".join(found))

    def versions(self) -> Outcome:
        connection = self._connection()
        found: list[str] = []
        concerns: list[str] = []
        compute = connection.compute.microversion_range()
        found.append(f"compute 2.1 ({_range(compute)})")
        if not _reaches(compute, COMPUTE_VOLUME_TYPE_MICROVERSION) and self._root_disk_types():
            concerns.append(f"Nova below {COMPUTE_VOLUME_TYPE_MICROVERSION} ignores root_disk.type")
        volume = connection.block_storage.microversion_range()
        found.append(f"block storage 3 ({_range(volume)})")
        if not _reaches(volume, CINDER_EXTEND_ATTACHED_MICROVERSION):
            concerns.append(
                f"Cinder below {CINDER_EXTEND_ATTACHED_MICROVERSION}: attached disks cannot be "
                "extended in place (the director detaches them to resize)"
            )
        connection.image.microversion_range()  # resolves Glance's v2 endpoint
        found.append("image 2, network 2.0")
        if concerns:
            return warning("; ".join(found + concerns), "upgrade the services for these features")
        return passed(", ".join(found))

    def _root_disk_types(self) -> list[str]:
        return [
            str(t.cloud_properties["root_disk"]["type"])
            for t in self.cloud_config.vm_types
            if isinstance(t.cloud_properties.get("root_disk"), dict)
            and t.cloud_properties["root_disk"].get("type")
        ]

    def clock_skew(self) -> Outcome:
        """Against Keystone's Date header; a server that sends none (some WSGI servers) is
        measured by the token's issued_at instead, against the time of authentication."""
        connection = self._connection()
        before = time.time()
        date = connection.server_date(self.openstack.auth_url)
        after = time.time()
        if date:
            theirs, source = email.utils.parsedate_to_datetime(date).timestamp(), "Date header"
        else:
            issued = connection.token_issued_at()
            if issued is None:
                return warning("Keystone sent no Date header", "check the clock by other means")
            (before, after), theirs = self._authenticated_between, issued
            source = "token issued_at"
        skew = (before + after) / 2 - theirs
        ahead = "ahead of" if skew > 0 else "behind"
        text = f"this machine is {abs(skew):.1f} s {ahead} Keystone ({source})"
        # Date has whole seconds: a second of difference is the header's resolution.
        if abs(skew) > SKEW_FAIL_SECONDS:
            raise CheckFailed(text, "synchronise this machine's clock (NTP) with the cloud's")
        if abs(skew) > SKEW_WARN_SECONDS + (after - before):
            return warning(text, "synchronise this machine's clock (NTP)")
        return passed(text)

    # --- capacity ------------------------------------------------------------------------
    def quotas(self) -> Outcome:
        cloud = self.call.cloud
        compute = cloud.compute.absolute_limits()
        volume = cloud.volume.absolute_limits()
        project = cloud.connection.current_project_id or ""
        network = cloud.network.quota_details(project)
        workers = self.cloud_config.compilation_workers
        flavor = self._compilation_flavor()
        vcpus, ram = (flavor.vcpus, flavor.ram) if flavor else (1, 0)
        nics = max(1, len([n for n in self.cloud_config.networks if n.type != "vip"]))
        disk_gib = max((d.size_gib for d in self.cloud_config.disk_types), default=1)
        needs = [
            _need("instances", workers, compute, "maxTotalInstances", "totalInstancesUsed"),
            _need("cores", workers * vcpus, compute, "maxTotalCores", "totalCoresUsed"),
            _need("RAM (MiB)", workers * ram, compute, "maxTotalRAMSize", "totalRAMUsed"),
            _need("volumes", 1, volume, "maxTotalVolumes", "totalVolumesUsed"),
            _need("gigabytes", disk_gib, volume, "maxTotalVolumeGigabytes", "totalGigabytesUsed"),
            _network_need("ports", workers * nics, network, "port"),
            # floating IPs are allocated beforehand (the vip network names them): the
            # floating IPs check looks them up; here only the headroom is shown
            _network_need("floating IPs", 0, network, "floatingip"),
            _network_need("security groups", 0, network, "security_group"),
        ]
        short = [n for n in needs if n.free is not None and n.free < n.needed]
        detail = "; ".join(n.describe() for n in needs)
        if short:
            names = ", ".join(n.name for n in short)
            raise CheckFailed(
                f"too little left for {names} ({detail}); needs: {workers} compilation "
                "worker(s) of the compilation VM type and the largest disk type",
                "raise the project's quotas (openstack quota set ...) or lower compilation.workers",
            )
        return passed(detail)

    def _compilation_flavor(self) -> flavor_rules.Flavor | None:
        vm_type = self.cloud_config.compilation_vm_type
        if vm_type is None or vm_type.instance_type is None:
            return None
        try:
            return flavor_rules.find(self.call.cloud.compute.flavors(), vm_type.instance_type)
        except CloudError:
            return None  # the flavors check reports it

    # --- compute -------------------------------------------------------------------------
    def flavors(self) -> Outcome:
        if not self.cloud_config.vm_types:
            return self._no_cloud_config("VM types")
        available = self.call.cloud.compute.flavors()
        problems: list[str] = []
        found: list[str] = []
        for vm_type in self.cloud_config.vm_types:
            problem = self._flavor_problem(vm_type, available)
            if problem:
                problems.append(f"VM type '{vm_type.name}': {problem}")
            else:
                found.append(f"{vm_type.name}: {vm_type.instance_type}")
        if problems:
            raise CheckFailed(
                "; ".join(problems),
                "set instance_type to a flavor this project can use, or fix the flavor",
            )
        return passed(", ".join(found))

    def _flavor_problem(self, vm_type: VmType, available: list[flavor_rules.Flavor]) -> str | None:
        if vm_type.instance_type is None:
            return "no cloud_properties.instance_type"
        try:
            flavor = flavor_rules.find(available, vm_type.instance_type)
            flavor_rules.check_ephemeral_disk(flavor)
            from_volume = vm_type.cloud_properties.get(
                "boot_from_volume", self.openstack.boot_from_volume
            )
            if from_volume:
                from bosh_openstack_cpi.vm_properties import RootDisk

                root = vm_type.cloud_properties.get("root_disk") or {}
                flavor_rules.boot_volume_size(flavor, RootDisk(size_gib=root.get("size")))
        except CloudError as error:
            return str(error)
        return None

    def key_pairs(self) -> Outcome:
        names = [self.openstack.default_key_name] + [
            t.cloud_properties.get("key_name") for t in self.cloud_config.vm_types
        ]
        wanted = list(dict.fromkeys(str(n) for n in names if n))
        if not wanted:
            return warning(
                "no key pair configured: nobody can SSH into the VMs with a key",
                "set openstack.default_key_name",
            )
        compute = self.call.cloud.compute
        missing = [n for n in wanted if not compute.key_pair_exists(n)]
        if missing:
            raise CheckFailed(
                f"key pair(s) {', '.join(missing)} not found for this user",
                "import the public key (openstack keypair create --public-key ...) as the "
                "CPI's user, or fix default_key_name / key_name",
            )
        return passed(f"{', '.join(wanted)} found")

    def availability_zones(self) -> Outcome:
        cloud = self.call.cloud
        compute_zones = cloud.compute.availability_zones()
        volume_zones = cloud.volume.availability_zones()
        wanted = self.cloud_config.compute_zones()
        detail = f"compute: {', '.join(compute_zones)}; block storage: {', '.join(volume_zones)}"
        missing = [z for z in wanted if z not in compute_zones]
        if missing:
            raise CheckFailed(
                f"zone(s) {', '.join(missing)} of the cloud config are not available compute "
                f"zones ({detail})",
                "fix availability_zone in the cloud config's azs and VM types",
            )
        apart = [z for z in wanted if z not in volume_zones]
        if apart and not self.openstack.ignore_server_availability_zone:
            raise CheckFailed(
                f"zone(s) {', '.join(apart)} have no block storage zone of the same name "
                f"({detail}): create_disk would fail",
                "set openstack.ignore_server_availability_zone: true in cpi.json",
            )
        return passed(detail)

    # --- network -------------------------------------------------------------------------
    def networks(self) -> Outcome:
        if not self.cloud_config.networks:
            return self._no_cloud_config("networks")
        network = self.call.cloud.network
        net_ids = self.cloud_config.net_ids()
        missing = network.missing_networks(net_ids)
        if missing:
            raise CheckFailed(
                f"network(s) {', '.join(missing)} not found in Neutron",
                "fix cloud_properties.net_id in the cloud config's networks",
            )
        subnets = network.subnets_of(net_ids)
        problems = [
            p for n in self.cloud_config.networks for p in self._subnet_problems(n, subnets)
        ]
        if problems:
            remedy = "fix the cloud config's subnets"
            if any("DHCP" in p for p in problems):
                remedy = (
                    "set openstack.use_dhcp: false in cpi.json (BOSH then writes the address "
                    "into the VM), or enable DHCP on the subnet"
                )
            raise CheckFailed("; ".join(problems), remedy)
        return passed(f"{len(net_ids)} network(s), {len(subnets)} subnet(s)")

    def _subnet_problems(self, network: Any, subnets: list[dict[str, Any]]) -> list[str]:
        problems: list[str] = []
        for subnet in network.subnets:
            if network.type == "vip":
                continue
            if not subnet.net_id:
                problems.append(
                    f"network '{network.name}': a subnet has no cloud_properties.net_id"
                )
                continue
            on_net = [s for s in subnets if s.get("network_id") == subnet.net_id]
            if network.type == "dynamic":
                if not any(s.get("enable_dhcp") for s in on_net):
                    problems.append(
                        f"dynamic network '{network.name}': no subnet of {subnet.net_id} has DHCP"
                    )
                continue
            match = [s for s in on_net if s.get("cidr") == subnet.range]
            if not match:
                problems.append(
                    f"network '{network.name}': no subnet {subnet.range} on network {subnet.net_id}"
                )
            elif not match[0].get("enable_dhcp") and self.openstack.use_dhcp:
                problems.append(
                    f"network '{network.name}': subnet {subnet.range} ({match[0].get('id')}) has "
                    "DHCP off while openstack.use_dhcp is true: a VM would come up without its "
                    "address"
                )
        return problems

    def floating_ips(self) -> Outcome:
        addresses = self.cloud_config.vip_addresses()
        if not addresses:
            return passed("no vip network with static IPs in the cloud config")
        network = self.call.cloud.network
        problems: list[str] = []
        for address in addresses:
            try:
                network.floating_ip(address)
            except CloudError as error:
                problems.append(str(error))
        if problems:
            raise CheckFailed("; ".join(problems), "allocate the floating IPs to this project")
        return passed(f"{', '.join(addresses)} allocated to this project")

    def security_groups(self) -> Outcome:
        sets = self._security_group_sets()
        if not any(sets):
            return warning(
                "no security groups configured: VMs get the project's default group",
                "set openstack.default_security_groups",
            )
        network = self.call.cloud.network
        names = list(dict.fromkeys(n for group_set in sets for n in group_set))
        resolved = {g.name if g.name in names else g.id: g for g in network.security_groups(names)}
        problems: list[str] = []
        for group_set in sets:
            groups = [resolved[n] for n in group_set if n in resolved]
            rules = network.security_group_rules(g.id for g in groups)
            problems += _rule_problems(
                [g.name or g.id for g in groups], {g.id for g in groups}, rules
            )
        if problems:
            raise CheckFailed(
                "; ".join(problems),
                "add the rules (openstack security group rule create --protocol tcp "
                "--dst-port <port> <group>; --protocol any --remote-group <group> <group>)",
            )
        return passed(", ".join("+".join(s) for s in sets if s) + ": 22, 6868, 25555, intra-group")

    def _security_group_sets(self) -> list[tuple[str, ...]]:
        """The groups a VM can get: a VM type's, a network's, or the defaults."""
        sets = [tuple(self.openstack.default_security_groups)]
        sources = [t.cloud_properties for t in self.cloud_config.vm_types] + [
            s.cloud_properties for n in self.cloud_config.networks for s in n.subnets
        ]
        for properties in sources:
            groups = properties.get("security_groups")
            if isinstance(groups, list) and groups:
                sets.append(tuple(str(g) for g in groups))
        return list(dict.fromkeys(sets))

    # --- block storage -------------------------------------------------------------------
    def volume_types(self) -> Outcome:
        wanted = [self.openstack.default_volume_type]
        wanted += [d.cloud_properties.get("type") for d in self.cloud_config.disk_types]
        wanted += self._root_disk_types()
        names = list(dict.fromkeys(str(w) for w in wanted if w))
        known = self.call.cloud.volume.volume_type_names()
        missing = [n for n in names if n not in known]
        if missing:
            raise CheckFailed(
                f"volume type(s) {', '.join(missing)} not found (this project sees: "
                f"{', '.join(known) or 'none'})",
                "set openstack.default_volume_type and the disk types' type to one of those",
            )
        if not names:
            return passed(f"none configured: Cinder's default type is used ({', '.join(known)})")
        return passed(f"{', '.join(names)} found")

    def _no_cloud_config(self, what: str) -> Outcome:
        if self.has_cloud_config:
            return warning(f"the cloud config has no {what}")
        return warning(f"no cloud config given: {what} not checked", "pass --cloud-config FILE")


def _range(found: tuple[str, str] | None) -> str:
    return f"microversions {found[0]} to {found[1]}" if found else "no microversions"


def _reaches(found: tuple[str, str] | None, wanted: str) -> bool:
    from bosh_openstack_cpi.openstack.http import version_number

    return found is not None and version_number(found[1]) >= version_number(wanted)


def _need(name: str, needed: int, limits: dict[str, int], limit: str, used: str) -> Need:
    return Need(name, needed, limits.get(limit, -1), limits.get(used, 0))


def _network_need(name: str, needed: int, quotas: dict[str, dict[str, int]], key: str) -> Need:
    numbers = quotas.get(key) or {}
    used = numbers.get("used", 0) + numbers.get("reserved", 0)
    return Need(name, needed, numbers.get("limit", -1), used)


def _covers_port(rule: dict[str, Any], port: int) -> bool:
    """An ingress rule opening the port to addresses (a rule for members of a group does
    not let the director in: it is not one of them)."""
    if rule.get("direction") != "ingress" or rule.get("ethertype", "IPv4") != "IPv4":
        return False
    if rule.get("remote_group_id") is not None:
        return False
    if rule.get("protocol") not in (None, "tcp", "6", "any"):
        return False
    low, high = rule.get("port_range_min"), rule.get("port_range_max")
    return low is None or (low <= port <= (high if high is not None else low))


def _rule_problems(names: Iterable[str], ids: set[str], rules: list[dict[str, Any]]) -> list[str]:
    label = "+".join(names)
    problems = [
        f"groups {label}: no ingress rule for TCP {port}"
        for port in DIRECTOR_PORTS
        if not any(_covers_port(r, port) for r in rules)
    ]
    within = [
        str(r.get("protocol"))
        for r in rules
        if r.get("direction") == "ingress"
        and r.get("remote_group_id") in ids
        and r.get("port_range_min") is None
    ]
    # any protocol, or at least every TCP and UDP port (what BOSH's jobs talk)
    if not ("None" in within or "any" in within or {"tcp", "udp"} <= set(within)):
        problems.append(f"groups {label}: no rule allowing all traffic within the group")
    return problems
