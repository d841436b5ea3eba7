"""Base resources of the test cloud, created idempotently with openstacksdk.

Every function here looks first and creates only what is missing, so `up` can run
it on every call. The steps are independent of each other and run in parallel
(one connection, i.e. one token, each) as soon as the services they talk to are up:

  identity   roles, projects service/bosh, service users, user bosh, catalog
  compute    wait for the fake computes, AZ aggregates z1/z2, flavors, quotas
  network    public network, bosh networks/subnets, router, security groups,
             floating IPs, quotas
  volume     volume type "fake", quotas, wait until the scheduler knows both backends
  image      a tiny public raw image
  bosh_user  keypair "bosh" and the application credential (as user bosh)

cloud.json (what the CPI tests read) is written from their results.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time

import openstack
from openstack import exceptions as sdk_exc

from . import configs, services
from . import settings as S

IMAGE_SIZE = 1024 * 1024


def _connect(**auth):
    for k in [k for k in os.environ if k.startswith("OS_")]:
        del os.environ[k]  # OS_* would override what is passed here
    args = dict(
        auth_url=S.AUTH_URL,
        region_name=S.REGION,
        interface="public",
        identity_api_version="3",
        load_yaml_config=False,
        load_envvars=False,
    )
    args.update(auth)
    return openstack.connect(**args)


def connect_admin():
    return _connect(
        username="admin",
        password=S.ADMIN_PASSWORD,
        project_name="admin",
        user_domain_name="Default",
        project_domain_name="Default",
    )


def connect_bosh():
    return _connect(
        username=S.BOSH_USER,
        password=S.BOSH_PASSWORD,
        project_name=S.BOSH_PROJECT,
        user_domain_name="Default",
        project_domain_name="Default",
    )


def connect_admin_checked():
    c = connect_admin()
    c.authorize()
    return c


def connect_app_cred(cred):
    return _connect(
        auth_type="v3applicationcredential",
        application_credential_id=cred["id"],
        application_credential_secret=cred["secret"],
    )


def _ok(resp):
    sdk_exc.raise_from_response(resp)
    return resp.json() if resp.content else None


def wait(what, fn, timeout=120, every=0.5):
    deadline = time.time() + timeout
    last = None
    while True:
        try:
            value = fn()
            if value:
                return value
        except Exception as e:
            last = e
        if time.time() > deadline:
            raise RuntimeError(
                "timed out after %ds waiting for %s%s"
                % (timeout, what, " (last error: %s)" % last if last else "")
            )
        time.sleep(every)


# --------------------------------------------------------------------------- identity

CATALOG = (  # service name, type, url
    ("nova", "compute", "http://%s:%d/v2.1" % (S.IP, S.PORT["nova"])),
    ("glance", "image", "http://%s:%d" % (S.IP, S.PORT["glance"])),
    ("placement", "placement", "http://%s:%d" % (S.IP, S.PORT["placement"])),
    ("neutron", "network", "http://%s:%d" % (S.IP, S.PORT["neutron"])),
    # the same cinder endpoint under the old and the new service type
    ("cinderv3", "volumev3", "http://%s:%d/v3/%%(project_id)s" % (S.IP, S.PORT["cinder"])),
    ("cinder", "block-storage", "http://%s:%d/v3/%%(project_id)s" % (S.IP, S.PORT["cinder"])),
    ("octavia", "load-balancer", "http://%s:%d" % (S.IP, S.PORT["octavia"])),
)

# Octavia's default policy lets a project's users manage its load balancers when
# they hold both "member" and "load-balancer_member": what an operator grants.
LB_MEMBER_ROLE = "load-balancer_member"


def identity(log):
    c = wait("a keystone token for admin", connect_admin_checked, timeout=60)
    idn = c.identity
    roles = {r.name: r.id for r in idn.roles()}
    for name in ("admin", "member", "reader", "service", LB_MEMBER_ROLE):
        if name not in roles:
            roles[name] = idn.create_role(name=name).id
    projects = {p.name: p.id for p in idn.projects(domain_id="default")}
    for name in ("service", S.BOSH_PROJECT):
        if name not in projects:
            projects[name] = idn.create_project(
                name=name, domain_id="default", description=S.MARKER
            ).id
            log("identity: project %s created" % name)
    users = {u.name: u.id for u in idn.users(domain_id="default")}
    wanted = [(u, S.SERVICE_PASSWORD, "service", ("admin", "service")) for u in S.SERVICE_USERS]
    wanted.append(
        (S.BOSH_USER, S.BOSH_PASSWORD, S.BOSH_PROJECT, ("admin", "member", LB_MEMBER_ROLE))
    )
    assigned = set()
    for a in idn.role_assignments():
        if a.user and a.scope and "project" in a.scope:
            assigned.add((a.user["id"], a.scope["project"]["id"], a.role["id"]))
    for name, password, project, role_names in wanted:
        if name not in users:
            users[name] = idn.create_user(
                name=name,
                password=password,
                domain_id="default",
                default_project_id=projects[project],
                description=S.MARKER,
            ).id
            log("identity: user %s created" % name)
        for rn in role_names:
            if (users[name], projects[project], roles[rn]) not in assigned:
                idn.assign_project_role_to_user(projects[project], users[name], roles[rn])
    services = {s.type: s.id for s in idn.services()}
    endpoints = {(e.service_id, e.interface) for e in idn.endpoints()}
    for name, stype, url in CATALOG:
        if stype == "load-balancer" and not S.RELEASE.octavia:
            continue
        if stype not in services:
            services[stype] = idn.create_service(name=name, type=stype, description=S.MARKER).id
        for iface in ("public", "internal", "admin"):
            if (services[stype], iface) not in endpoints:
                idn.create_endpoint(
                    service_id=services[stype], interface=iface, url=url, region_id=S.REGION
                )
    return {"project_id": projects[S.BOSH_PROJECT], "admin_project_id": projects["admin"]}


# --------------------------------------------------------------------------- compute


def _compute_quotas(c, project_id):
    _ok(
        c.compute.put(
            "/os-quota-sets/%s" % project_id,
            json={
                "quota_set": {
                    "force": True,
                    "instances": -1,
                    "cores": -1,
                    "ram": -1,
                    "key_pairs": -1,
                    "server_groups": -1,
                    "server_group_members": -1,
                    "metadata_items": -1,
                }
            },
        )
    )


def _discover_hosts(log):
    log("compute: mapping new compute hosts (nova-manage cell_v2 discover_hosts)")
    subprocess.run(
        services.entry(
            "nova-manage",
            "nova.cmd.manage:main",
            services.conf("nova", "nova.conf"),
            "cell_v2",
            "discover_hosts",
        ),
        env=services.child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


def compute(log, project_ids):
    c = connect_admin()
    hosts = [h for h, _ in S.COMPUTES]

    def computes_up():
        up = {
            s.host
            for s in c.compute.services(binary="nova-compute")
            if s.state == "up" and s.status == "enabled"
        }
        return set(hosts) <= up

    wait("nova-compute services %s to be up" % ", ".join(hosts), computes_up, 180)

    # Nova mirrors an AZ aggregate's hosts into placement only for hosts whose resource
    # provider exists at the moment they are added; the scheduler's AZ pre-filter asks
    # placement, so an unmirrored host gets NoValidHost for every AZ-pinned boot.
    def providers():
        rps = {r.name: r.id for r in c.placement.resource_providers()}
        return rps if set(hosts) <= set(rps) else None

    rps = wait("resource providers of %s in placement" % ", ".join(hosts), providers, 180)

    # Each compute host must be mapped to cell1 before the scheduler can use it.
    # (The scheduler's own periodic discovery cannot be enabled: see configs.nova.)
    def unmapped():
        rows = services.mysql_cli(
            "SELECT host FROM nova.compute_nodes WHERE deleted = 0 AND host NOT IN "
            "(SELECT host FROM nova_api.host_mappings)"
        )
        return sorted({r[0] for r in rows} & set(hosts))

    if unmapped():
        _discover_hosts(log)
        missing = unmapped()
        if missing:
            raise RuntimeError("hosts %s still not mapped to a cell" % ", ".join(missing))

    aggs = {a.name: a for a in c.compute.aggregates()}
    for az in S.AVAILABILITY_ZONES:
        if az not in aggs:
            aggs[az] = c.compute.create_aggregate(name=az, availability_zone=az)
            log("compute: aggregate %s created" % az)
    for host, az in S.COMPUTES:
        agg = c.compute.get_aggregate(aggs[az].id)
        mirrored = _ok(
            c.placement.get("/resource_providers/%s/aggregates" % rps[host], microversion="1.19")
        )["aggregates"]
        if host in (agg.hosts or []):
            if agg.uuid in mirrored:
                continue
            log("compute: %s not mirrored into placement, re-adding to %s" % (host, az))
            c.compute.remove_host_from_aggregate(agg, host)
        c.compute.add_host_to_aggregate(agg, host)

    flavors = {f.name: f for f in c.compute.flavors(details=True)}
    for name, vcpus, ram, disk, ephemeral in S.FLAVORS:
        f = flavors.get(name)
        if f is None:
            c.compute.create_flavor(
                name=name, vcpus=vcpus, ram=ram, disk=disk, ephemeral=ephemeral, is_public=True
            )
        elif (f.vcpus, f.ram, f.disk, f.ephemeral or 0) != (vcpus, ram, disk, ephemeral):
            log("compute: WARNING flavor %s exists with other sizes; left as it is" % name)
    for pid in project_ids:
        _compute_quotas(c, pid)
    return {}


# --------------------------------------------------------------------------- network


def _prefix(cidr):
    return cidr.split("/")[0].rsplit(".", 1)[0]


def network(log, project_ids, bosh_id):
    c = connect_admin()
    net = c.network
    for pid in project_ids:
        _ok(
            net.put(
                "/quotas/%s" % pid,
                json={
                    "quota": {
                        "network": -1,
                        "subnet": -1,
                        "port": -1,
                        "router": -1,
                        "floatingip": -1,
                        "security_group": -1,
                        "security_group_rule": -1,
                    }
                },
            )
        )

    # external network "public": router gateways and floating IPs
    public = next(iter(net.networks(name="public", is_router_external=True)), None)
    if public is None:
        public = net.create_network(
            name="public",
            is_router_external=True,
            provider_network_type="flat",
            provider_physical_network="public",
            description=S.MARKER,
        )
        log("network: public created")
    subnets = {s.name: s for s in net.subnets()}
    if "public-subnet" not in subnets:
        p = _prefix(S.PUBLIC_CIDR)
        net.create_subnet(
            name="public-subnet",
            network_id=public.id,
            ip_version=4,
            cidr=S.PUBLIC_CIDR,
            is_dhcp_enabled=False,
            gateway_ip=p + ".1",
            allocation_pools=[{"start": p + ".10", "end": p + ".250"}],
            description=S.MARKER,
        )

    result = {"public": {"id": public.id, "name": "public", "cidr": S.PUBLIC_CIDR}}
    nets = {n.name: n for n in net.networks(project_id=bosh_id)}
    subnet_ids = []
    for key, (name, cidr, dhcp) in S.NETWORKS.items():
        n = nets.get(name) or net.create_network(
            name=name, project_id=bosh_id, description=S.MARKER
        )
        sname = name + "-subnet"
        p = _prefix(cidr)
        sub = next((s for s in net.subnets(network_id=n.id) if s.name == sname), None)
        if sub is None:
            # bosh-dhcp: DHCP on, in 127.0.0.0/8; see bosh_testcloud.neutron_ml2
            sub = net.create_subnet(
                name=sname,
                network_id=n.id,
                project_id=bosh_id,
                ip_version=4,
                cidr=cidr,
                is_dhcp_enabled=dhcp,
                gateway_ip=p + ".1",
                dns_nameservers=[],
                allocation_pools=[
                    {"start": "%s.%d" % (p, S.POOL_FIRST), "end": "%s.%d" % (p, S.POOL_LAST)}
                ],
                description=S.MARKER,
            )
            log("network: %s created (%s, dhcp %s)" % (name, cidr, "on" if dhcp else "off"))
        subnet_ids.append(sub.id)
        result[key] = {
            "id": n.id,
            "name": name,
            "subnet_id": sub.id,
            "cidr": cidr,
            "gateway": p + ".1",
            "dhcp": dhcp,
            "allocation_pool": "%s.%d-%s.%d" % (p, S.POOL_FIRST, p, S.POOL_LAST),
            "static_range": "%s.2-%s.%d" % (p, p, S.POOL_FIRST - 1),
            "static_ips": ["%s.%d" % (p, i) for i in S.STATIC_IPS],
        }
        if dhcp:  # a DHCP network is used without static IPs
            for k in ("static_range", "static_ips"):
                result[key].pop(k)

    router = next(iter(net.routers(name="bosh-router", project_id=bosh_id)), None)
    if router is None:
        router = net.create_router(
            name="bosh-router",
            project_id=bosh_id,
            external_gateway_info={"network_id": public.id},
            description=S.MARKER,
        )
        log("network: bosh-router created")
    elif not router.external_gateway_info:
        net.update_router(router, external_gateway_info={"network_id": public.id})
    attached = {
        ip["subnet_id"]
        for port in net.ports(device_id=router.id, device_owner="network:router_interface")
        for ip in port.fixed_ips
    }
    for sid in subnet_ids:
        if sid not in attached:
            net.add_interface_to_router(router, subnet_id=sid)

    groups = {g.name: g for g in net.security_groups(project_id=bosh_id)}
    sg_result = []
    for name in ("bosh", "bosh-extra"):
        g = groups.get(name) or net.create_security_group(
            name=name, project_id=bosh_id, description=S.MARKER
        )
        sg_result.append({"name": name, "id": g.id})
        if name != "bosh":
            continue
        have = {
            (
                r["direction"],
                r["ethertype"],
                r["protocol"],
                r["port_range_min"],
                r["port_range_max"],
                r["remote_ip_prefix"],
                r["remote_group_id"],
            )
            for r in (g.security_group_rules or [])
        }
        want = [
            ("ingress", "IPv4", "tcp", port, port, "0.0.0.0/0", None) for port in (22, 6868, 25555)
        ]
        # all ports from the group itself (neutron stores 1-65535 as no range)
        want += [("ingress", "IPv4", proto, None, None, None, g.id) for proto in ("tcp", "udp")]
        for d, eth, proto, lo, hi, prefix, group in want:
            if (d, eth, proto, lo, hi, prefix, group) not in have:
                try:
                    net.create_security_group_rule(
                        security_group_id=g.id,
                        project_id=bosh_id,
                        direction=d,
                        ether_type=eth,
                        protocol=proto,
                        port_range_min=lo,
                        port_range_max=hi,
                        remote_ip_prefix=prefix,
                        remote_group_id=group,
                    )
                except sdk_exc.ConflictException:
                    pass  # the same rule, spelled differently

    fips = [
        f
        for f in net.ips(project_id=bosh_id, floating_network_id=public.id)
        if f.description == S.MARKER
    ]
    for _ in range(S.FLOATING_IP_COUNT - len(fips)):
        fips.append(
            net.create_ip(floating_network_id=public.id, project_id=bosh_id, description=S.MARKER)
        )
    return {
        "networks": result,
        "security_groups": sg_result,
        "floating_ips": sorted(
            (f.floating_ip_address for f in fips), key=lambda a: tuple(int(x) for x in a.split("."))
        ),
    }


# --------------------------------------------------------------------------- volume


def volume(log, project_ids):
    c = connect_admin()
    bs = c.block_storage
    types = {t.name: t for t in bs.types()}
    if S.VOLUME_TYPE not in types:
        bs.create_type(
            name=S.VOLUME_TYPE,
            description=S.MARKER,
            extra_specs={"volume_backend_name": S.VOLUME_TYPE},
        )
        log("volume: type %s created" % S.VOLUME_TYPE)
    for pid in project_ids:
        _ok(
            bs.put(
                "/os-quota-sets/%s" % pid,
                json={
                    "quota_set": {
                        "volumes": -1,
                        "gigabytes": -1,
                        "snapshots": -1,
                        "backups": -1,
                        "backup_gigabytes": -1,
                        "per_volume_gigabytes": -1,
                    }
                },
            )
        )
    # The scheduler places volumes only once it has every backend's capabilities.
    want = {"%s@fake-%s" % (S.CINDER_HOST, az) for az in S.AVAILABILITY_ZONES}

    def pools():
        names = {
            p["name"].split("#")[0] for p in _ok(bs.get("/scheduler-stats/get_pools"))["pools"]
        }
        return want <= names

    wait("the cinder scheduler to know backends %s" % ", ".join(sorted(want)), pools, 150)
    return {}


# --------------------------------------------------------------------------- image


def image(log):
    c = connect_admin()
    imgs = list(c.image.images(name=S.IMAGE_NAME))
    active = [i for i in imgs if i.status == "active"]
    for i in imgs:
        if i not in active[:1]:
            c.image.delete_image(i)  # a failed upload, or a duplicate
    if active:
        return {"image_id": active[0].id}
    img = _ok(
        c.image.post(
            "/images",
            json={
                "name": S.IMAGE_NAME,
                "disk_format": "raw",
                "container_format": "bare",
                "visibility": "public",
                "min_disk": 0,
                "min_ram": 0,
            },
        )
    )
    resp = c.image.put(
        "/images/%s/file" % img["id"],
        data=b"\0" * IMAGE_SIZE,
        headers={"Content-Type": "application/octet-stream"},
    )
    _ok(resp)
    log("image: %s created (%s)" % (S.IMAGE_NAME, img["id"]))
    return {"image_id": img["id"]}


# --------------------------------------------------------------------------- load balancer

LB_QUOTAS = ("load_balancer", "listener", "pool", "member", "health_monitor", "l7policy", "l7rule")
LB_SETTLE_TIMEOUT = 60  # a healthy worker takes ~1 s per change


def _lb_status(lb_api, lb_id):
    return lb_api.get_load_balancer(lb_id).provisioning_status


def _wait_lb_settled(lb_api, lb_id, what, timeout=LB_SETTLE_TIMEOUT):
    """Wait until the load balancer is no longer PENDING_*; its final status."""
    return wait(
        "load balancer %s to settle after %s" % (lb_id, what),
        lambda: (lambda st: None if st.startswith("PENDING_") else st)(_lb_status(lb_api, lb_id)),
        timeout,
        every=0.3,
    )


def _unstick(log, lb_id):
    """A load balancer stays PENDING_* forever if the worker died in its flow (no
    jobboard): mark it ERROR in the database, as an operator would, so it can be deleted."""
    log("loadbalancer: %s stuck in PENDING_*: marking it ERROR to delete it" % lb_id)
    services.mysql_cli(
        "UPDATE octavia.load_balancer SET provisioning_status = 'ERROR' WHERE id = '%s'"
        % lb_id.replace("'", "")
    )


def _vip_port(net, bosh_id, lb_net):
    """The Neutron port that holds the VIP address (the no-op network driver makes
    none), so Neutron never hands that address to a server."""
    port = next(iter(net.ports(name=S.LB_VIP_PORT, network_id=lb_net["id"])), None)
    if port is None:
        port = net.create_port(
            name=S.LB_VIP_PORT,
            network_id=lb_net["id"],
            project_id=bosh_id,
            fixed_ips=[{"subnet_id": lb_net["subnet_id"]}],
            device_owner="Octavia",
            description=S.MARKER,
        )
    return port


def loadbalancer(log, project_ids, bosh_id, networks):
    """Quotas, and a load balancer with a listener and two pools (one monitored)."""
    admin = connect_admin()
    for pid in project_ids:
        _ok(
            admin.load_balancer.put(
                "/lbaas/quotas/%s" % pid, json={"quota": {q: -1 for q in LB_QUOTAS}}
            )
        )
    lb_net = networks[S.LB_NETWORK]
    port = _vip_port(admin.network, bosh_id, lb_net)
    vip = port.fixed_ips[0]["ip_address"]

    b = connect_bosh()
    lba = b.load_balancer
    lb = next(iter(lba.load_balancers(name=S.LB_NAME)), None)
    if lb is not None:
        status = lb.provisioning_status
        if status.startswith("PENDING_"):
            try:
                status = _wait_lb_settled(lba, lb.id, "an earlier run")
            except RuntimeError:
                _unstick(log, lb.id)
                status = "ERROR"
        if status == "ERROR" or (lb.vip_address, lb.vip_network_id) != (vip, lb_net["id"]):
            log(
                "loadbalancer: %s is %s (VIP %s on network %s): replacing it"
                % (lb.id, status, lb.vip_address, lb.vip_network_id)
            )
            lba.delete_load_balancer(lb, cascade=True)
            wait(
                "load balancer %s to be deleted" % lb.id,
                lambda: lba.find_load_balancer(lb.id, ignore_missing=True) is None,
                LB_SETTLE_TIMEOUT,
                every=0.3,
            )
            lb = None
    if lb is None:
        t = time.time()
        # With the subnet alone, the no-op network driver would invent a network id.
        lb = lba.create_load_balancer(
            name=S.LB_NAME,
            vip_network_id=lb_net["id"],
            vip_subnet_id=lb_net["subnet_id"],
            vip_address=vip,
            provider="amphora",
            description=S.MARKER,
        )
        _expect_active(lba, lb.id, "create")
        log("loadbalancer: %s created, ACTIVE in %.1fs" % (S.LB_NAME, time.time() - t))

    listener = next((li for li in lba.listeners(name=S.LB_LISTENER) if _on(li, lb.id)), None)
    if listener is None:
        listener = lba.create_listener(
            name=S.LB_LISTENER,
            protocol="HTTP",
            protocol_port=80,
            load_balancer_id=lb.id,
            description=S.MARKER,
        )
        _expect_active(lba, lb.id, "listener create")
    pools = {p.name: p for p in lba.pools() if _on(p, lb.id)}
    for name, on_listener in ((S.LB_POOL_WEB, True), (S.LB_POOL_MONITORED, False)):
        if name in pools:
            continue
        where = {"listener_id": listener.id} if on_listener else {"loadbalancer_id": lb.id}
        pools[name] = lba.create_pool(
            name=name, protocol="HTTP", lb_algorithm="ROUND_ROBIN", description=S.MARKER, **where
        )
        _expect_active(lba, lb.id, "pool %s create" % name)
    monitored = lba.get_pool(pools[S.LB_POOL_MONITORED].id)
    hm_id = monitored.health_monitor_id
    if not hm_id:
        hm_id = lba.create_health_monitor(
            name=S.LB_HEALTH_MONITOR,
            pool_id=monitored.id,
            type="HTTP",
            delay=5,
            timeout=3,
            max_retries=2,
            url_path="/",
        ).id
        _expect_active(lba, lb.id, "health monitor create")
    return {
        "loadbalancer": {
            "id": lb.id,
            "name": S.LB_NAME,
            "provider": "amphora",
            "vip_address": vip,
            # the Neutron port that holds the VIP address; Octavia's own vip_port_id is
            # an id the no-op network driver made up
            "vip_neutron_port_id": port.id,
            "subnet_id": lb_net["subnet_id"],
            "network_id": lb_net["id"],
            "listener_id": listener.id,
            "pools": {name: pools[name].id for name in (S.LB_POOL_WEB, S.LB_POOL_MONITORED)},
            "pools_monitored": [S.LB_POOL_MONITORED],
            "health_monitor_id": hm_id,
        }
    }


def _on(listener_or_pool, lb_id):
    # openstacksdk 0.101 names the same "loadbalancers" field differently per resource
    lbs = getattr(listener_or_pool, "load_balancers", None) or getattr(
        listener_or_pool, "loadbalancers", None
    )
    return any(x["id"] == lb_id for x in lbs or [])


def _expect_active(lba, lb_id, what):
    status = _wait_lb_settled(lba, lb_id, what)
    if status != "ACTIVE":
        raise RuntimeError(
            "load balancer %s is %s after %s: see octavia-worker.log" % (lb_id, status, what)
        )


# --------------------------------------------------------------------------- user bosh


def _keypair(b, log):
    kp = b.compute.find_keypair("bosh", ignore_missing=True)
    if kp is not None and os.path.exists(S.KEYPAIR_FILE):
        return
    if kp is not None:  # its private key is lost: replace it
        b.compute.delete_keypair(kp)
    if shutil.which("ssh-keygen"):
        with tempfile.TemporaryDirectory() as d:
            key = os.path.join(d, "bosh")
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "rsa",
                    "-b",
                    "2048",
                    "-N",
                    "",
                    "-m",
                    "PEM",
                    "-C",
                    "bosh@" + S.MARKER,
                    "-f",
                    key,
                ],
                check=True,
            )
            with open(key + ".pub") as f:
                b.compute.create_keypair(name="bosh", public_key=f.read().strip())
            with open(key) as f:
                configs.write(S.KEYPAIR_FILE, f.read(), mode=0o600)
    else:  # nova generates it (compute API < 2.92)
        kp = b.compute.create_keypair(name="bosh")
        configs.write(S.KEYPAIR_FILE, kp.private_key, mode=0o600)
    log("bosh user: keypair bosh created (private key %s)" % S.KEYPAIR_FILE)


def _app_cred_works(cred):
    try:
        return bool(connect_app_cred(cred).authorize())
    except Exception:
        return False


def _app_cred(b, log):
    name = "bosh-testcloud"
    stored = configs.read_json(S.APP_CRED_FILE)
    if stored and _app_cred_works(stored):
        return stored
    uid = b.current_user_id
    for old in b.identity.application_credentials(uid):
        if old.name == name:
            b.identity.delete_application_credential(uid, old)
    ac = b.identity.create_application_credential(uid, name, description=S.MARKER)
    cred = {"id": ac.id, "secret": ac.secret, "name": name}
    configs.write(S.APP_CRED_FILE, json.dumps(cred, indent=2) + "\n", mode=0o600)
    wait("the new application credential to authenticate", lambda: _app_cred_works(cred), 30)
    log("bosh user: application credential %s created" % ac.id)
    return cred


def bosh_user(log):
    b = wait("a token for user bosh", connect_bosh_checked, timeout=60)
    _keypair(b, log)
    cred = _app_cred(b, log)
    configs.write_client_files(cred)
    return {"application_credential": {"id": cred["id"], "secret": cred["secret"]}}


def connect_bosh_checked():
    b = connect_bosh()
    b.authorize()
    return b


# --------------------------------------------------------------------------- cloud.json


def cloud_description(r):
    desc = {
        "openstack": {
            "auth_url": S.AUTH_URL,
            "username": S.BOSH_USER,
            "api_key": S.BOSH_PASSWORD,
            "project": S.BOSH_PROJECT,
            "domain": "Default",
            "region": S.REGION,
            "default_key_name": "bosh",
            "default_security_groups": ["bosh"],
            "default_volume_type": S.VOLUME_TYPE,
            "wait_resource_poll_interval": 1,
            "state_timeout": 120,
        },
        "agent": {"mbus": "nats://nats:nats-secret@127.0.0.1:4222", "ntp": []},
        "admin": {
            "auth_url": S.AUTH_URL,
            "username": "admin",
            "password": S.ADMIN_PASSWORD,
            "project_name": "admin",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
            "region_name": S.REGION,
        },
        "project_id": r["project_id"],
        "application_credential": r["application_credential"],
        "resources": {
            "networks": r["networks"],
            "floating_ips": r["floating_ips"],
            "flavors": {
                "default": "m1.small",
                "ephemeral": "m1.ephemeral",
                "no_root_disk": "m1.noroot",
                "all": [f[0] for f in S.FLAVORS],
            },
            "keypair": "bosh",
            "keypair_private_key_file": S.KEYPAIR_FILE,
            "security_groups": r["security_groups"],
            "volume_type": S.VOLUME_TYPE,
            "availability_zones": list(S.AVAILABILITY_ZONES),
            "image_id": r["image_id"],
            "image_name": S.IMAGE_NAME,
            "compute_hosts": {h: az for h, az in S.COMPUTES},
            **({"loadbalancer": r["loadbalancer"]} if S.RELEASE.octavia else {}),
        },
        "state_dir": S.STATE,
        "clouds_yaml": S.CLOUDS_YAML,
    }
    configs.write(S.CLOUD_JSON, json.dumps(desc, indent=2) + "\n")
    return desc
