"""VM methods: create_vm, delete_vm, has_vm, reboot_vm, set_vm_metadata,
calculate_vm_cloud_properties.

create_vm checks everything it can before it creates anything (flavor, security groups,
zones, floating IP, VRRP port, user_data size), then creates the manual-network ports,
the server and the floating-IP association. On any failure it removes what it created
before answering, and says what it could not remove.

A free floating IP for a port the CPI created is associated right after the server
request, while Nova builds: Neutron takes most of a second for it, which the build hides.
On a dynamic gateway network the port is Nova's, known once the server is ACTIVE; a
floating IP held by another VM moves once the new server is ACTIVE.

Load balancer pools (loadbalancer_pools) are found by name before anything is created;
the VM's address on its gateway network joins them once the server is ACTIVE, and each
membership is recorded in the server's metadata (`lbaas_pool_<n>: <pool_id>/<member_id>`,
n from 1, as both reference CPIs write it), which delete_vm reads to remove them.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bosh_openstack_cpi import tagging
from bosh_openstack_cpi.call import Call
from bosh_openstack_cpi.protocol.errors import CloudError, CpiError, VMCreationFailed
from bosh_openstack_cpi.signals import SignalsDeferred

# create_vm's own modules (flavors, vm_properties, agent_settings, secrets) are imported
# where it uses them: has_vm, delete_vm and set_vm_metadata, called far more often, start
# without them.
if TYPE_CHECKING:
    from bosh_openstack_cpi import flavors, vm_properties
    from bosh_openstack_cpi.config import OpenStackConfig
    from bosh_openstack_cpi.openstack.cloud import Cloud
    from bosh_openstack_cpi.openstack.compute import Server, ServerCreateRefused
    from bosh_openstack_cpi.openstack.network import FloatingIp, Port, SecurityGroup
    from bosh_openstack_cpi.openstack.octavia import Member, Pool

log = logging.getLogger(__name__)

SERVER_NAME_LIMIT = 255
# An unbound port of this CPI younger than this may belong to a create_vm that has not yet
# sent (or Nova not yet acted on) its server request: it is not taken for a leftover.
STALE_AFTER_SECONDS = 30.0
# Longest wait for a server whose create request got no answer to show up.
LOST_ANSWER_SETTLE_LIMIT = 60.0
# Server metadata keys of the pool memberships: lbaas_pool_1, lbaas_pool_2, ...
POOL_METADATA_PREFIX = "lbaas_pool_"


# --- has_vm ----------------------------------------------------------------------------
def has_vm(call: Call, vm_cid: str) -> bool:
    """False for servers that do not exist or are deleted."""
    return call.cloud.compute.server_exists(vm_cid)


# --- create_vm ---------------------------------------------------------------------------
def create_vm(
    call: Call,
    agent_id: str,
    stemcell_cid: str,
    cloud_properties: dict[str, Any],
    networks: dict[str, Any],
    disk_cids: list[Any] | None = None,
    env: dict[str, Any] | None = None,
) -> Any:
    from bosh_openstack_cpi import agent_settings, flavors, vm_properties

    if not agent_id.strip():
        raise CloudError(
            "create_vm's agent_id is empty: the director always sends the id the VM's agent "
            "reports with; nothing was created"
        )
    config = call.config.openstack
    vm_type = vm_properties.parse_vm_type(cloud_properties, config)
    plan = vm_properties.parse_networks(networks)
    vm_properties.check_multiple_networks(plan, config)
    image_id = vm_properties.stemcell_image_id(stemcell_cid)
    _warn_about_ignored_input(call, vm_type, plan)

    cloud = call.cloud
    flavor = flavors.find(cloud.compute.flavors(), vm_type.instance_type)
    flavors.check_ephemeral_disk(flavor)
    boot_volume_gib = (
        flavors.boot_volume_size(flavor, vm_type.root_disk) if vm_type.boot_from_volume else None
    )
    name = f"vm-{uuid.uuid4()}"
    settings_for = _settings_builder(call, name, agent_id, networks, flavor.has_ephemeral_disk, env)
    # Placeholder MACs have the length of real ones: the size check is exact, and done
    # before anything exists.
    agent_settings.encode(
        settings_for({n.name: agent_settings.PLACEHOLDER_MAC for n in plan.manual})
    )
    groups = cloud.network.security_groups(_picked_security_groups(vm_type, plan, config))
    zones, zone_from_disks = _zones(call, vm_type, [str(d) for d in disk_cids or []])
    floating_ip = cloud.network.floating_ip(plan.vip.ip) if plan.vip and plan.vip.ip else None
    vrrp_address = _vrrp_address(cloud, vm_type, plan)
    pools = _pools(cloud, vm_type, plan)

    creation = _Creation(call, name, plan)
    try:
        ports = creation.create_ports(groups, vrrp_address)
        macs = {network_name: port.mac_address for network_name, port in ports.items()}
        answer_networks = agent_settings.agent_networks(networks, config.use_dhcp, macs)
        user_data = agent_settings.encode(settings_for(macs))
        server_body = _server_body(
            call,
            name=name,
            image_id=image_id,
            flavor=flavor,
            vm_type=vm_type,
            plan=plan,
            ports=ports,
            groups=groups,
            user_data=user_data,
            boot_volume_gib=boot_volume_gib,
        )
        microversion = _microversion(vm_type, boot_volume_gib)
        log.info(
            "VM %s: flavor %s, image %s%s, security groups %s",
            name,
            flavor.name,
            image_id,
            f" on a {boot_volume_gib} GiB volume" if boot_volume_gib else "",
            ", ".join(g.name for g in groups) or "(Neutron's default)",
        )
        server = creation.boot(
            server_body,
            zones,
            vm_type.scheduler_hints,
            microversion,
            multiple_azs=vm_type.multiple_azs,
            zone_from_disks=zone_from_disks,
            while_building=creation.floating_ip_while_building(floating_ip),
        )
        if floating_ip is not None and creation.floating_ip is None:
            creation.attach_floating_ip(floating_ip, server.id)
        if pools:
            creation.join_pools(server.id, pools)
    except BaseException as error:
        raise creation.undo(error) from None
    log.info("Created server %s (%s) in zone %s", server.id, name, server.availability_zone)
    if call.api_version >= 2:
        return [server.id, answer_networks]
    return server.id


def _warn_about_ignored_input(
    call: Call, vm_type: vm_properties.VmType, plan: vm_properties.NetworkPlan
) -> None:
    from bosh_openstack_cpi import vm_properties

    if vm_type.unknown_keys:
        log.warning(
            "Ignoring unknown VM cloud_properties: %s (known: %s)",
            ", ".join(vm_type.unknown_keys),
            ", ".join(sorted(vm_properties.KNOWN_VM_TYPE_KEYS)),
        )
    for warning in vm_type.warnings:
        log.warning("%s", warning)
    from bosh_openstack_cpi import agent_settings

    shadowed = agent_settings.shadowed_agent_keys(call.config.agent)
    if shadowed:
        log.warning(
            "Ignoring agent properties %s of the CPI config: the CPI writes these agent "
            "settings itself",
            ", ".join(shadowed),
        )
    for network in (*plan.private, *([plan.vip] if plan.vip else [])):
        if network.unknown_keys:
            log.warning(
                "Ignoring unknown cloud_properties of network %s: %s",
                network.name,
                ", ".join(network.unknown_keys),
            )
    if not vm_type.boot_from_volume and (
        vm_type.root_disk.size_gib is not None or vm_type.root_disk.volume_type is not None
    ):
        log.warning("root_disk is only used when booting from a volume (boot_from_volume)")
    if call.api_version < 2 or call.stemcell_api_version < 2:
        log.warning(
            "CPI API version %d, stemcell API version %d: this CPI has no registry; the full "
            "agent settings go into the server's user_data, which agents of stemcells with "
            "API version 1 may not read",
            call.api_version,
            call.stemcell_api_version,
        )


def _settings_builder(
    call: Call,
    name: str,
    agent_id: str,
    networks: dict[str, Any],
    has_ephemeral_disk: bool,
    env: dict[str, Any] | None,
) -> Any:
    from bosh_openstack_cpi import agent_settings

    config = call.config

    def settings_for(macs: dict[str, str]) -> dict[str, Any]:
        return agent_settings.build(
            server_name=name,
            agent_id=agent_id,
            networks=agent_settings.agent_networks(networks, config.openstack.use_dhcp, macs),
            has_ephemeral_disk=has_ephemeral_disk,
            env=env if env is not None else {},
            agent_config=config.agent,
        )

    return settings_for


def _picked_security_groups(
    vm_type: vm_properties.VmType, plan: vm_properties.NetworkPlan, config: OpenStackConfig
) -> tuple[str, ...]:
    """The VM type's groups, else the networks' (all of them), else the defaults."""
    return vm_type.security_groups or plan.security_groups or config.default_security_groups


def _zones(
    call: Call, vm_type: vm_properties.VmType, disk_cids: list[str]
) -> tuple[list[str | None], bool]:
    """The zones to try, in order, and whether the zone came from the disks."""
    if vm_type.multiple_azs:
        import secrets

        zones: list[str | None] = list(vm_type.availability_zones)
        secrets.SystemRandom().shuffle(zones)  # spread VMs over the zones, as the reference
        return zones, False
    requested = vm_type.availability_zones[0] if vm_type.availability_zones else None
    if not disk_cids or call.config.openstack.ignore_server_availability_zone:
        return [requested], False
    disk_zones = _disk_zones(call.cloud, disk_cids)
    distinct = sorted({zone for zone in disk_zones.values() if zone})
    where = ", ".join(f"disk '{d}' is in zone '{z}'" for d, z in disk_zones.items())
    if requested:
        if distinct and distinct != [requested]:
            # The reference never looked; Nova's default cross_az_attach lets the disks attach.
            log.warning(
                "The VM type asks for zone '%s' but %s: creating the VM in zone '%s'; the "
                "disks attach across zones only if Nova allows it (cross_az_attach)",
                requested,
                where,
                requested,
            )
        return [requested], False
    if len(distinct) > 1:
        log.warning("Disks in several zones (%s): Nova picks the VM's zone", where)
        return [None], False
    if not distinct:
        return [None], False
    return [distinct[0]], True


def _disk_zones(cloud: Cloud, disk_cids: list[str]) -> dict[str, str]:
    """The zone of each persistent disk (one Cinder GET each)."""
    zones: dict[str, str] = {}
    for disk_cid in disk_cids:
        volume = cloud.volume.get_volume(disk_cid)
        if volume is None:
            raise CloudError(
                f"Persistent disk '{disk_cid}' (create_vm disk_cids) not found in Cinder: the VM "
                "cannot be placed next to it"
            )
        zones[disk_cid] = volume.availability_zone or ""
    return zones


def _vrrp_address(
    cloud: Cloud, vm_type: vm_properties.VmType, plan: vm_properties.NetworkPlan
) -> str | None:
    address = vm_type.allowed_address_pairs
    if address is None:
        return None
    gateway = plan.gateway
    if gateway is None:
        raise CloudError(
            "allowed_address_pairs goes on the port of the gateway network: mark one network "
            "with default: [gateway]"
        )
    if gateway.type != "manual":
        raise CloudError(
            f"Network '{gateway.name}' is a dynamic network. VRRP (allowed_address_pairs) is "
            "supported on manual networks only"
        )
    if not _vrrp_port_check_wanted(vm_type, gateway):
        return address
    if "/" in address:
        log.info("allowed_address_pairs %s is a prefix: no single VRRP port to check", address)
        return address
    if not cloud.network.ports_with_ip(address):
        raise CloudError(
            f"Configured VRRP port with ip '{address}' does not exist: reserve the address "
            "with an unbound Neutron port (openstack port create --fixed-ip "
            f"ip-address={address} ...), or set vrrp_port_check: false on network "
            f"'{gateway.name}' or on the VM type"
        )
    return address


def _vrrp_port_check_wanted(
    vm_type: vm_properties.VmType, gateway: vm_properties.NetworkSpec
) -> bool:
    """On unless switched off on the network (the Ruby CPI's place, default on) or on the
    VM type (the Go CPI's place): either reference's manifest keeps its meaning."""
    return gateway.vrrp_port_check and vm_type.vrrp_port_check is not False


def _pools(
    cloud: Cloud, vm_type: vm_properties.VmType, plan: vm_properties.NetworkPlan
) -> list[tuple[vm_properties.LoadbalancerPool, Pool]]:
    """Each pool of loadbalancer_pools, found by name before anything is created."""
    if not vm_type.loadbalancer_pools:
        return []
    if plan.gateway is None:
        raise CloudError(
            "loadbalancer_pools adds the VM's address on its gateway network to the pools: "
            "mark one network with default: [gateway]"
        )
    found: dict[str, Pool] = {}
    for spec in vm_type.loadbalancer_pools:
        if spec.name not in found:
            found[spec.name] = cloud.load_balancer.pool_named(spec.name)
    return [(spec, found[spec.name]) for spec in vm_type.loadbalancer_pools]


def _microversion(vm_type: vm_properties.VmType, boot_volume_gib: int | None) -> str | None:
    """Nova's base microversion, unless the boot volume has a type (2.67)."""
    if boot_volume_gib is not None and vm_type.root_disk.volume_type:
        from bosh_openstack_cpi.openstack.compute import VOLUME_TYPE_MICROVERSION

        return VOLUME_TYPE_MICROVERSION
    return None


def _server_body(
    call: Call,
    *,
    name: str,
    image_id: str,
    flavor: flavors.Flavor,
    vm_type: vm_properties.VmType,
    plan: vm_properties.NetworkPlan,
    ports: dict[str, Port],
    groups: list[SecurityGroup],
    user_data: str,
    boot_volume_gib: int | None,
) -> dict[str, Any]:
    config = call.config.openstack
    body: dict[str, Any] = {
        "name": name,
        "flavorRef": flavor.id,
        "user_data": user_data,
        "metadata": {tagging.DIRECTOR_UUID_KEY: call.director_uuid},
    }
    if boot_volume_gib is None:
        body["imageRef"] = image_id
    else:
        mapping: dict[str, Any] = {
            "uuid": image_id,
            "source_type": "image",
            "destination_type": "volume",
            "volume_size": boot_volume_gib,
            "boot_index": 0,
            "delete_on_termination": True,  # Nova removes it with the server
            "device_name": "/dev/vda",  # as the reference CPI; hypervisors may rename it
        }
        if vm_type.root_disk.volume_type:
            mapping["volume_type"] = vm_type.root_disk.volume_type
        body["block_device_mapping_v2"] = [mapping]
    if vm_type.key_name:
        body["key_name"] = vm_type.key_name
    if config.config_drive is not None:
        body["config_drive"] = True
    nics: list[dict[str, str]] = []
    for network in plan.private:
        if network.name in ports:
            nics.append({"port": ports[network.name].id})
        elif network.net_id:
            nics.append({"uuid": network.net_id})
    if nics:
        body["networks"] = nics
    elif _microversion(vm_type, boot_volume_gib) is not None:
        body["networks"] = "auto"  # required from microversion 2.37 on
    if plan.dynamic is not None and groups:
        # Nova creates the dynamic network's port; the CPI's own ports carry their groups.
        body["security_groups"] = [{"name": group.id} for group in groups]
    return body


class _Creation:
    """What one create_vm call has created so far, and how to take it back."""

    def __init__(self, call: Call, name: str, plan: vm_properties.NetworkPlan) -> None:
        self._call = call
        self._cloud = call.cloud
        self._config = call.config.openstack
        self.name = name
        self._plan = plan
        self.ports: dict[str, Port] = {}
        self.server_id: str | None = None
        self.server_may_exist = False  # a create without answer that we could not resolve
        self.floating_ip: FloatingIp | None = None
        self.members: list[Member] = []
        # The member being added (pool, address, port): its request may have been applied.
        self.member_in_flight: tuple[Pool, str, int] | None = None

    # -- steps --------------------------------------------------------------------------
    def create_ports(
        self, groups: list[SecurityGroup], vrrp_address: str | None
    ) -> dict[str, Port]:
        description = tagging.port_description(self._call.director_uuid)
        group_ids = [g.id for g in groups]
        for network in self._plan.manual:
            if network.net_id is None or network.ip is None:  # parse_networks refuses these
                raise CloudError(f"Manual network {network.name} needs net_id and ip")
            pairs = [vrrp_address] if vrrp_address and network is self._plan.gateway else None
            with SignalsDeferred() as signals:  # a SIGTERM now would lose the new port
                port = self._cloud.network.create_port(
                    network_id=network.net_id,
                    ip=network.ip,
                    security_group_ids=group_ids,
                    description=description,
                    name=self.name,
                    allowed_address_pairs=pairs,
                    in_use=self._building,
                )
                self.ports[network.name] = port
            signals.deliver()
            log.info(
                "Created port %s (MAC %s) for %s on network %s",
                port.id,
                port.mac_address,
                network.ip,
                network.name,
            )
        return self.ports

    def _building(self, port: Port) -> bool:
        """Whether an unbound port holding our IP belongs to a create_vm still at work rather
        than being left behind: a port of this CPI younger than STALE_AFTER_SECONDS, or one
        with a server of its name (ports are named after their VM) that Nova has yet to bind
        it to. Deleting such a port made the other call fail ("Port ... not found")."""
        if tagging.director_of_port(port.description) is None:
            return False  # not made by create_vm: a leftover (of the reference CPI, ...)
        if port.age_seconds() < STALE_AFTER_SECONDS:
            return True
        return bool(port.name) and bool(self._cloud.compute.servers_named(port.name))

    def boot(
        self,
        body: dict[str, Any],
        zones: list[str | None],
        hints: dict[str, Any] | None,
        microversion: str | None,
        *,
        multiple_azs: bool,
        zone_from_disks: bool,
        while_building: Callable[[str], None] | None = None,
    ) -> Server:
        """Create the server and wait for ACTIVE, trying each zone in turn with several.
        `while_building(server_id)` runs between the request and the wait."""
        for position, zone in enumerate(zones, start=1):
            attempt = dict(body)
            if zone:
                attempt["availability_zone"] = zone
            try:
                return self._boot_once(
                    attempt, hints, microversion, zone_from_disks, while_building
                )
            except _ZoneFailure as failure:
                if not multiple_azs or position == len(zones):
                    raise failure.error from None
                log.warning(
                    "Creating the VM in zone '%s' failed (%s); trying zone '%s'",
                    zone,
                    failure.error.message,
                    zones[position],
                )
        raise AssertionError("unreachable: at least one zone is tried")

    def _boot_once(
        self,
        body: dict[str, Any],
        hints: dict[str, Any] | None,
        microversion: str | None,
        zone_from_disks: bool,
        while_building: Callable[[str], None] | None,
    ) -> Server:
        from bosh_openstack_cpi.openstack.compute import (
            ServerCreateRefused,
            ServerCreateUnanswered,
        )

        compute = self._cloud.compute
        zone = body.get("availability_zone")
        log.info(
            "Creating server %s in zone %s, networks %s",
            self.name,
            zone or "(Nova's choice)",
            body.get("networks", "(Nova's choice)"),
        )
        # A SIGTERM is held back until the server's id is known (after a lost answer, until
        # the server is found or known not to exist): raised earlier, it would lose a server
        # that Nova goes on to build.
        requested = time.monotonic()
        with SignalsDeferred() as signals:
            try:
                self.server_id = compute.create_server(
                    body, scheduler_hints=hints, microversion=microversion
                )
            except ServerCreateRefused as refused:
                error = self._explain_refusal(refused, zone, zone_from_disks)
                if "availability zone" in refused.details.lower():
                    raise _ZoneFailure(error) from None
                raise error from None
            except ServerCreateUnanswered as unanswered:
                self.server_id = self._find_after_lost_answer(unanswered)
        signals.deliver()
        if while_building is not None:
            while_building(self.server_id)
        try:
            return compute.wait_until_active(
                self.server_id,
                timeout=self._config.state_timeout,
                max_interval=self._config.wait_resource_poll_interval,
                started=requested,
            )
        except CloudError as error:
            where = f" in zone '{zone}'" if zone else ""
            failed = VMCreationFailed(
                f"VM '{self.name}' ({self.server_id}){where} did not become ACTIVE: "
                f"{error.message}",
                ok_to_retry=True,
            )
            # Delete it now: the next zone (or the director's retry) reuses the ports.
            try:
                self.delete_server()
            except CloudError as problem:
                log.warning("Deleting server %s failed: %s", self.server_id, problem.message)
                raise failed from None  # undo tries again and reports what is left
            raise _ZoneFailure(failed) from None

    def _find_after_lost_answer(self, unanswered: CloudError) -> str:
        """The create got no answer: adopt the server if Nova made it, never make a second."""
        from bosh_openstack_cpi.openstack.compute import ServerCreateUnanswered
        from bosh_openstack_cpi.openstack.waiting import wait_for

        hint = unanswered.settle_seconds if isinstance(unanswered, ServerCreateUnanswered) else 0
        settle = min(hint, self._config.state_timeout, LOST_ANSWER_SETTLE_LIMIT)
        log.warning(
            "%s; looking for a server named %s for up to %g s",
            unanswered.message,
            self.name,
            settle,
        )
        self.server_may_exist = True
        try:
            found = wait_for(
                f"server '{self.name}' to appear",
                lambda: self._cloud.compute.servers_named(self.name),
                bool,
                timeout=settle,
                max_interval=self._config.wait_resource_poll_interval,
                describe=lambda servers: f"{len(servers)} servers",
            )
        except CloudError as error:
            if error.message.startswith("Timed out"):
                self.server_may_exist = False
                raise VMCreationFailed(
                    f"{unanswered.message}; no server named '{self.name}' appeared within "
                    f"{settle:g} s, so none was created",
                    ok_to_retry=True,
                ) from None
            raise VMCreationFailed(
                f"{unanswered.message}, and looking for it failed too ({error.message}); a "
                f"server named '{self.name}' may exist"
            ) from None
        self.server_may_exist = False
        adopted, *extra = found
        self.server_id = adopted.id
        log.info("Nova did create server %s (%s): carrying on with it", adopted.id, self.name)
        for duplicate in extra:  # cannot happen from one request; never keep two
            log.warning("Deleting a second server named %s: %s", self.name, duplicate.id)
            self._cloud.compute.delete_server(duplicate.id)
        return adopted.id

    def _explain_refusal(
        self, refused: ServerCreateRefused, zone: str | None, zone_from_disks: bool
    ) -> CpiError:
        details = refused.details.lower()
        if "network" in details or refused.status == 404:
            ids = [n.net_id for n in self._plan.private if n.net_id]
            missing = self._cloud.network.missing_networks(ids)
            if missing:
                return VMCreationFailed(
                    f"VM creation with name '{self.name}' failed. Following network IDs are not "
                    f"existing or not accessible from this project: '{','.join(missing)}'. "
                    "Make sure you do not use subnet IDs"
                )
        if "availability zone" in details and zone_from_disks:
            return CloudError(
                f"{refused.message}. The zone '{zone}' is the zone of the VM's persistent disks; "
                "if Cinder's zones are not Nova's, set openstack.ignore_server_availability_zone: "
                "true"
            )
        if "key" in details and "key_name" in details:
            return CloudError(
                f"{refused.message}. Set key_name on the VM type or openstack.default_key_name "
                "to an existing Nova key pair of this user"
            )
        if "image" in details:
            return CloudError(
                f"{refused.message}. The stemcell's image is missing or not active in Glance: "
                "upload the stemcell again (bosh upload-stemcell --fix)"
            )
        return CloudError(refused.message)

    def floating_ip_while_building(
        self, floating_ip: FloatingIp | None
    ) -> Callable[[str], None] | None:
        """Associating the floating IP during the build, when its port is one of ours (and
        so exists already); once only, whichever zone the server ends up in. A floating
        IP still on another port moves only once the new server is ACTIVE, as before: a
        build that fails must not have taken it from the VM that has it."""
        gateway = self._plan.gateway
        if floating_ip is None or floating_ip.port_id:
            return None
        if gateway is None or gateway.name not in self.ports:
            return None

        def associate(server_id: str) -> None:
            if self.floating_ip is None:
                self.attach_floating_ip(floating_ip, server_id)

        return associate

    def attach_floating_ip(self, floating_ip: FloatingIp, server_id: str) -> None:
        port_id = self._gateway_port(server_id)
        if floating_ip.port_id and floating_ip.port_id != port_id:
            log.info(
                "Floating IP %s moves from port %s to server %s",
                floating_ip.address,
                floating_ip.port_id,
                server_id,
            )
        try:
            self._cloud.network.associate_floating_ip(floating_ip, port_id)
        except CloudError as error:
            self.floating_ip = floating_ip  # the request may have been applied
            raise VMCreationFailed(error.message, ok_to_retry=True) from None
        self.floating_ip = floating_ip
        log.info("Associated floating IP %s with port %s", floating_ip.address, port_id)

    def _gateway_port(self, server_id: str) -> str:
        gateway = self._plan.gateway
        if gateway is None:
            raise VMCreationFailed(
                "The vip network needs a gateway network: mark one of the networks with "
                "default: [gateway]"
            )
        if gateway.name in self.ports:
            return self.ports[gateway.name].id
        return self._nova_gateway_port(server_id, gateway).id

    def _nova_gateway_port(self, server_id: str, gateway: vm_properties.NetworkSpec) -> Port:
        """The port Nova made on the (dynamic) gateway network."""
        others = {n.net_id for n in self._plan.private if n is not gateway}
        candidates = [
            p
            for p in self._cloud.network.server_ports(server_id)
            if (p.network_id == gateway.net_id if gateway.net_id else p.network_id not in others)
        ]
        if len(candidates) != 1:
            raise VMCreationFailed(
                f"Server '{server_id}' has {len(candidates)} ports in the gateway network "
                f"'{gateway.net_id or gateway.name}', the floating IP and load balancer pools "
                "need exactly one",
                ok_to_retry=True,
            )
        return candidates[0]

    def join_pools(
        self, server_id: str, pools: list[tuple[vm_properties.LoadbalancerPool, Pool]]
    ) -> None:
        """Add the gateway address to each pool, then record the memberships on the server.
        A load balancer is waited for before its second change and once at the end, so
        pools of different load balancers are applied side by side."""
        address, subnet_id = self._gateway_address(server_id)
        balancer = self._cloud.load_balancer
        timeout = self._config.state_timeout
        changed: dict[str, float] = {}  # load balancer id -> when this call changed it
        for spec, pool in pools:
            if pool.loadbalancer_id in changed:
                started = changed.pop(pool.loadbalancer_id)
                balancer.wait_until_active(pool.loadbalancer_id, timeout=timeout, started=started)
            self.member_in_flight = (pool, address, spec.port)
            # A SIGTERM during the POST would lose the new member (the request may reach
            # Octavia after the undo looked for it): held back until the member is known.
            with SignalsDeferred() as signals:
                member = balancer.add_member(
                    pool,
                    address=address,
                    port=spec.port,
                    subnet_id=subnet_id,
                    monitor_port=spec.monitoring_port,
                    # named as the CPI's ports are described: leaks can be found by director
                    name=tagging.port_description(self._call.director_uuid),
                )
                self.members.append(member)
                self.member_in_flight = None
            signals.deliver()
            changed[pool.loadbalancer_id] = time.monotonic()
            log.info(
                "Added %s:%d to load balancer pool %s (%s) as member %s",
                address,
                spec.port,
                spec.name,
                pool.id,
                member.id,
            )
        for loadbalancer_id, started in changed.items():
            balancer.wait_until_active(loadbalancer_id, timeout=timeout, started=started)
        self._cloud.compute.update_server_metadata(
            server_id,
            {
                f"{POOL_METADATA_PREFIX}{n}": member.reference
                for n, member in enumerate(self.members, start=1)
            },
        )

    def _gateway_address(self, server_id: str) -> tuple[str, str]:
        """The VM's address on its gateway network, and that address's subnet."""
        import ipaddress

        gateway = self._plan.gateway
        if gateway is None:  # _pools refuses this before anything is created
            raise CloudError("loadbalancer_pools needs a gateway network")
        if gateway.name in self.ports:
            port = self.ports[gateway.name]
        else:
            port = self._nova_gateway_port(server_id, gateway)
        addresses = list(zip(port.ips, port.subnet_ids, strict=False))
        if gateway.ip:
            wanted = ipaddress.ip_address(gateway.ip)
            addresses = [a for a in addresses if ipaddress.ip_address(a[0]) == wanted]
        else:  # Nova's port on a dynamic network: its IPv4 address first
            addresses.sort(key=lambda a: ipaddress.ip_address(a[0]).version)
        if not addresses:
            raise VMCreationFailed(
                f"Port {port.id} of server '{server_id}' on the gateway network has no address "
                f"{gateway.ip or ''}: the VM cannot join its load balancer pools",
                ok_to_retry=True,
            )
        return addresses[0]

    # -- taking it back -----------------------------------------------------------------
    def delete_server(self) -> None:
        if self.server_id is None:
            return
        compute = self._cloud.compute
        compute.delete_server(self.server_id)
        compute.wait_until_gone(
            self.server_id,
            timeout=self._config.state_timeout,
            max_interval=self._config.wait_resource_poll_interval,
        )
        self.server_id = None

    def undo(self, error: BaseException) -> BaseException:
        """Remove what this call created; the error to answer with."""
        if not (self.ports or self.server_id or self.floating_ip or self.members) and (
            self.member_in_flight is None
        ):
            return error
        log.info("create_vm failed, removing what it created")
        left: list[str] = self._leave_pools()
        if self.floating_ip is not None:
            try:
                self._cloud.network.disassociate_floating_ip(self.floating_ip)
            except CloudError as problem:
                left.append(
                    f"floating IP association {self.floating_ip.address} ({problem.message})"
                )
        if self.server_id is not None:
            server_id = self.server_id
            try:
                self.delete_server()
            except CloudError as problem:
                left.append(f"server {server_id} ({problem.message})")
        if self.server_may_exist:
            left.append(f"possibly a server named '{self.name}'")
        for network_name, port in self.ports.items():
            try:
                self._cloud.network.delete_port(port.id)
            except CloudError as problem:
                left.append(f"port {port.id} of network {network_name} ({problem.message})")
        if not left:
            return error
        message = error.message if isinstance(error, CpiError) else f"{type(error).__name__}"
        return VMCreationFailed(
            f"{message}\nCleaning up failed; left behind (metadata/description carries "
            f"director_uuid {self._call.director_uuid}): " + "; ".join(left),
            ok_to_retry=False,
        )

    def _leave_pools(self) -> list[str]:
        """Remove the members this call added (and the one whose add was cut short, if it
        was made); what could not be removed."""
        if not self.members and self.member_in_flight is None:
            return []
        balancer = self._cloud.load_balancer
        left: list[str] = []
        members = list(self.members)
        if self.member_in_flight is not None:
            pool, address, port = self.member_in_flight
            try:
                made = balancer.find_member(pool.id, address, port, "", None)
            except CloudError as problem:
                made = None
                left.append(f"possibly a member {address}:{port} of pool {pool.id} ({problem})")
            if made is not None:
                members.append(made)
        for member in members:
            try:
                balancer.delete_member(member.pool_id, member.id)
            except CloudError as problem:
                left.append(f"member {member.reference} ({problem.message})")
        return left


class _ZoneFailure(Exception):
    """Creating the server in one zone failed in a way another zone may not."""

    def __init__(self, error: CpiError) -> None:
        super().__init__(error.message)
        self.error = error


# --- delete_vm ---------------------------------------------------------------------------
def delete_vm(call: Call, vm_cid: str) -> None:
    """Delete the ports attached to the server (deleting a port also frees its floating
    IP), then the server, and wait until it is gone. A missing server is not an error.

    Pre-created ports (ours, or the reference CPI's, without a description, for VMs it
    created) outlive the server, and a drop-in replacement must remove them the same way;
    those Nova created itself it would delete anyway. Ports go first: only while the
    server exists are they found by its id, so a delete_vm stopped at any point (SIGKILL,
    SIGTERM, a lost answer) is completed by the director's next delete_vm. Deleted after
    the server, they would be left behind for good."""
    cloud = call.cloud
    config = call.config.openstack
    server = cloud.compute.get_server(vm_cid)
    if server is None:
        log.info("Server %s not found, nothing to delete", vm_cid)
        return
    _leave_pools(call, server.metadata)
    for port in cloud.network.server_ports(vm_cid):
        if cloud.network.delete_port(port.id):
            log.info("Deleted port %s (%s)", port.id, ", ".join(port.ips))
    if cloud.compute.delete_server(vm_cid):
        log.info("Deleting server %s", vm_cid)
        cloud.compute.wait_until_gone(
            vm_cid, timeout=config.state_timeout, max_interval=config.wait_resource_poll_interval
        )
    else:
        log.info("Server %s not found, nothing to delete", vm_cid)


def _leave_pools(call: Call, metadata: dict[str, str]) -> None:
    """Remove the pool members recorded in the server's metadata (by this CPI, the Ruby
    or the Go CPI): a member already gone counts as removed, so a delete_vm stopped half
    way is finished by the next one (the metadata stays until the server goes)."""
    memberships = sorted(
        (key, value) for key, value in metadata.items() if key.startswith(POOL_METADATA_PREFIX)
    )
    if not memberships:
        return
    from bosh_openstack_cpi.openstack import paths

    balancer = call.cloud.load_balancer
    for key, value in memberships:
        pool_id, _, member_id = str(value).partition("/")
        try:
            paths.path("{}/{}", pool_id, member_id)  # two ids, as a URL may carry them
        except paths.UnsafeRequest:
            log.warning("Ignoring server metadata %s=%r: not <pool_id>/<member_id>", key, value)
            continue
        removed = balancer.delete_member(pool_id, member_id)
        if removed:
            log.info("Removed member %s from load balancer pool %s (%s)", member_id, pool_id, key)
        else:
            log.info("Member %s of pool %s (%s) was already gone", member_id, pool_id, key)


# --- reboot_vm ---------------------------------------------------------------------------
def reboot_vm(call: Call, vm_cid: str) -> None:
    config = call.config.openstack
    call.cloud.compute.reboot_server(vm_cid)
    call.cloud.compute.wait_until_active(
        vm_cid, timeout=config.state_timeout, max_interval=config.wait_resource_poll_interval
    )


# --- set_vm_metadata ---------------------------------------------------------------------
def set_vm_metadata(call: Call, vm_cid: str, metadata: dict[str, Any]) -> None:
    clean = tagging.sanitize_metadata(metadata)
    if clean.pop(tagging.DIRECTOR_UUID_KEY, None) is not None:
        log.warning(
            "Metadata key %s is the CPI's own and was not changed", tagging.DIRECTOR_UUID_KEY
        )
    compute = call.cloud.compute
    if clean:
        compute.update_server_metadata(vm_cid, clean)
    if call.config.openstack.human_readable_vm_names:
        name = human_readable_name(metadata)
        if name:
            compute.rename_server(vm_cid, name)


def human_readable_name(metadata: dict[str, Any]) -> str | None:
    """`name`, else `job/index`, else `compiling/<package>` (the reference's order)."""
    name = metadata.get("name")
    if name:
        candidate = str(name)
    elif metadata.get("job") and metadata.get("index") is not None:
        candidate = f"{metadata['job']}/{metadata['index']}"
    elif metadata.get("compiling"):
        candidate = f"compiling/{metadata['compiling']}"
    else:
        return None
    return candidate[:SERVER_NAME_LIMIT]


# --- calculate_vm_cloud_properties -------------------------------------------------------
def calculate_vm_cloud_properties(call: Call, vm_resources: dict[str, Any]) -> dict[str, Any]:
    from bosh_openstack_cpi import flavors

    available = call.cloud.compute.flavors()
    return flavors.vm_cloud_properties(
        vm_resources, available, call.config.openstack.boot_from_volume
    )
