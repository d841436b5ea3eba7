"""`cloud smoke`: prove the running cloud does what the CPI tests need, as user bosh.

Checks: a token; a server boots to ACTIVE in AZ z1 on a port (static IP) in
bosh-manual-1; a volume is created, attached to it, detached and deleted; the
server is deleted; a server boots in AZ z2 on bosh-dhcp; the application
credential authenticates; bosh-dhcp has DHCP on; the base load balancer is ACTIVE,
its pools are readable, and a member added to a pool reaches ACTIVE and is deleted.
Cleans up after itself. Ends with "testcloud smoke: N passed, M failed".
"""

import json
import time

from . import bootstrap
from . import settings as S

SMOKE_IP_HOST = 98  # .98 of bosh-manual-1: in the static range, not in static_ips
SMOKE_MEMBER_HOST = 97  # the load balancer member's address, .97 of the LB's subnet


def main(log):
    try:
        with open(S.CLOUD_JSON) as f:
            desc = json.load(f)
    except OSError as e:
        log("cannot read the cloud description: %s (run `testcloud/cloud up`)" % e)
        print("testcloud smoke: 0 passed, 1 failed")
        return 1
    res = desc["resources"]
    passed, failed = [], []
    t_all = time.time()

    def check(name, cond, detail=""):
        (passed if cond else failed).append(name)
        log("%s %s%s" % ("PASS" if cond else "FAIL", name, (": " + detail) if detail else ""))
        return cond

    def until(what, fn, timeout=60):
        t = time.time()
        while time.time() - t < timeout:
            v = fn()
            if v:
                return v
            time.sleep(0.3)
        raise RuntimeError("timed out: " + what)

    b = bootstrap.connect_bosh()
    t = time.time()
    token = b.authorize()
    check("token for user bosh", bool(token), "%.2fs" % (time.time() - t))

    manual = res["networks"]["manual_1"]
    ip = manual["cidr"].split("/")[0].rsplit(".", 1)[0] + ".%d" % SMOKE_IP_HOST
    port = server = vol = None
    try:
        sg = next(g["id"] for g in res["security_groups"] if g["name"] == "bosh")
        port = b.network.create_port(
            network_id=manual["id"],
            name="testcloud-smoke",
            fixed_ips=[{"subnet_id": manual["subnet_id"], "ip_address": ip}],
            security_group_ids=[sg],
        )
        t = time.time()
        server = b.compute.create_server(
            name="testcloud-smoke",
            flavor_id=b.compute.find_flavor("m1.tiny").id,
            image_id=res["image_id"],
            networks=[{"port": port.id}],
            availability_zone="z1",
            key_name=res["keypair"],
        )
        server = b.compute.wait_for_server(server, status="ACTIVE", interval=0.3, wait=120)
        check("server ACTIVE", server.status == "ACTIVE", "%.1fs" % (time.time() - t))
        check("server in AZ z1", server.availability_zone == "z1", server.availability_zone)
        addrs = [a["addr"] for a in (server.addresses or {}).get(manual["name"], [])]
        check("server has the port's IP", ip in addrs, ",".join(addrs))
        p = b.network.get_port(port.id)
        check(
            "port bound and ACTIVE",
            p.status == "ACTIVE" and p.binding_vif_type == "ovs",
            "%s, vif %s" % (p.status, p.binding_vif_type),
        )

        t = time.time()
        vol = b.block_storage.create_volume(
            size=1, name="testcloud-smoke", volume_type=S.VOLUME_TYPE, availability_zone="z1"
        )
        vol = b.block_storage.wait_for_status(vol, "available", interval=0.3, wait=60)
        check("volume available", vol.status == "available", "%.1fs" % (time.time() - t))
        t = time.time()
        bootstrap._ok(
            b.compute.post(
                "/servers/%s/os-volume_attachments" % server.id,
                json={"volumeAttachment": {"volumeId": vol.id}},
            )
        )
        vol = until(
            "volume in-use",
            lambda: (lambda v: v if v.status == "in-use" else None)(
                b.block_storage.get_volume(vol.id)
            ),
        )
        check(
            "volume attached",
            vol.attachments and vol.attachments[0]["server_id"] == server.id,
            "%.1fs, device %s" % (time.time() - t, vol.attachments[0].get("device")),
        )
        t = time.time()
        bootstrap._ok(
            b.compute.delete("/servers/%s/os-volume_attachments/%s" % (server.id, vol.id))
        )
        vol = until(
            "volume available",
            lambda: (lambda v: v if v.status == "available" else None)(
                b.block_storage.get_volume(vol.id)
            ),
        )
        check("volume detached", not vol.attachments, "%.1fs" % (time.time() - t))
        b.block_storage.delete_volume(vol)
        until("volume gone", lambda: b.block_storage.find_volume(vol.id) is None)
        vol = None
        check("volume deleted", True)

        t = time.time()
        b.compute.delete_server(server)
        b.compute.wait_for_delete(server, interval=0.3, wait=60)
        server = None
        check("server deleted", True, "%.1fs" % (time.time() - t))
    except Exception as e:
        check("no error", False, "%s: %s" % (type(e).__name__, e))
    finally:
        try:
            if vol is not None:
                b.block_storage.delete_volume(vol, ignore_missing=True)
            if server is not None:
                b.compute.delete_server(server, ignore_missing=True)
                b.compute.wait_for_delete(server, interval=0.3, wait=60)
            if port is not None:
                b.network.delete_port(port, ignore_missing=True)
        except Exception as e:
            check("cleanup", False, str(e))

    # the other AZ, on the DHCP network (no port given: nova makes one)
    server = None
    try:
        t = time.time()
        server = b.compute.create_server(
            name="testcloud-smoke-z2",
            flavor_id=b.compute.find_flavor("m1.tiny").id,
            image_id=res["image_id"],
            networks=[{"uuid": res["networks"]["dhcp"]["id"]}],
            availability_zone="z2",
        )
        server = b.compute.wait_for_server(server, status="ACTIVE", interval=0.3, wait=120)
        check(
            "server ACTIVE in AZ z2 on bosh-dhcp",
            server.availability_zone == "z2" and "bosh-dhcp" in (server.addresses or {}),
            "%.1fs" % (time.time() - t),
        )
    except Exception as e:
        check("server ACTIVE in AZ z2 on bosh-dhcp", False, "%s: %s" % (type(e).__name__, e))
    finally:
        if server is not None:
            try:
                b.compute.delete_server(server, ignore_missing=True)
                b.compute.wait_for_delete(server, interval=0.3, wait=60)
            except Exception as e:
                check("cleanup z2", False, str(e))

    try:
        a = bootstrap.connect_app_cred(desc["application_credential"])
        ok = bool(a.authorize()) and a.current_project_id == desc["project_id"]
        list(a.compute.servers())
        check("application credential authenticates (project bosh)", ok)
    except Exception as e:
        check("application credential authenticates (project bosh)", False, str(e))

    sub = b.network.get_subnet(res["networks"]["dhcp"]["subnet_id"])
    check("bosh-dhcp subnet has DHCP enabled", sub.is_dhcp_enabled, sub.cidr)

    if S.RELEASE.octavia:
        _loadbalancer(b, res, check)

    log("smoke took %.1fs" % (time.time() - t_all))
    print("testcloud smoke: %d passed, %d failed" % (len(passed), len(failed)))
    return 1 if failed else 0


def _wait_lb(lba, lb_id, timeout=60):
    """The load balancer's provisioning status once it is no longer PENDING_*."""
    t = time.time()
    while time.time() - t < timeout:
        st = lba.get_load_balancer(lb_id).provisioning_status
        if not st.startswith("PENDING_"):
            return st
        time.sleep(0.2)
    return "still PENDING after %ds" % timeout


def _loadbalancer(b, res, check):
    """As user bosh: read the base load balancer, add a member, see it ACTIVE, delete it."""
    lbd = res.get("loadbalancer")
    if not check("cloud.json has resources.loadbalancer", bool(lbd)):
        return
    lba = b.load_balancer
    member = None
    pool_id = lbd["pools"][S.LB_POOL_WEB]
    try:
        lb = lba.get_load_balancer(lbd["id"])
        check(
            "load balancer ACTIVE (provider %s)" % lb.provider,
            lb.provisioning_status == "ACTIVE"
            and (lb.vip_subnet_id, lb.vip_network_id) == (lbd["subnet_id"], lbd["network_id"]),
            "VIP %s" % lb.vip_address,
        )
        pools = {p.id: p for p in lba.pools()}
        monitored = pools.get(lbd["pools"][S.LB_POOL_MONITORED])
        check(
            "pools readable, one with a health monitor",
            pool_id in pools
            and monitored is not None
            and bool(monitored.health_monitor_id)
            and not pools[pool_id].health_monitor_id,
            ", ".join(sorted(p.name for p in pools.values())),
        )
        prefix = res["networks"][S.LB_NETWORK]["cidr"].split("/")[0].rsplit(".", 1)[0]
        t = time.time()
        member = lba.create_member(
            pool_id,
            name="testcloud-smoke",
            address="%s.%d" % (prefix, SMOKE_MEMBER_HOST),
            protocol_port=8080,
            subnet_id=lbd["subnet_id"],
        )
        st = _wait_lb(lba, lbd["id"])
        m = lba.get_member(member, pool_id)
        check(
            "member added, ACTIVE",
            st == "ACTIVE" and m.provisioning_status == "ACTIVE",
            "%.1fs (load balancer %s)" % (time.time() - t, st),
        )
        t = time.time()
        lba.delete_member(member, pool_id)
        st = _wait_lb(lba, lbd["id"])
        gone = lba.find_member(member.id, pool_id, ignore_missing=True) is None
        if gone:
            member = None
        check(
            "member deleted",
            st == "ACTIVE" and gone,
            "%.1fs (load balancer %s)" % (time.time() - t, st),
        )
    except Exception as e:
        check("load balancer member round trip", False, "%s: %s" % (type(e).__name__, e))
    finally:
        if member is not None:
            try:
                lba.delete_member(member, pool_id, ignore_missing=True)
            except Exception as e:
                check("cleanup member", False, str(e))
