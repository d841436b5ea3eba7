"""up / down / status / env / smoke (see testcloud/cloud for the shell side)."""

import argparse
import os
import shutil
import sys
import threading
import time

from . import configs, procs, services
from . import settings as S

# a file that marks a directory as ours: `down --wipe` deletes nothing else
OWNER_MARK = ".bosh-cpi-testcloud"

_print_lock = threading.Lock()
_T0 = [time.time()]


def log(msg):
    with _print_lock:
        sys.stderr.write(
            "[cloud %s +%5.1fs] %s\n" % (time.strftime("%H:%M:%S"), time.time() - _T0[0], msg)
        )
        sys.stderr.flush()


# ------------------------------------------------------------------------------ up

BOOTSTRAP_STEPS = {  # step -> services it talks to (besides keystone)
    "network": ["svc:neutron-server"],
    "compute": ["svc:nova-api", "svc:placement", "svc:nova-scheduler"]
    + ["svc:nova-compute-" + h for h, _ in S.COMPUTES],
    "volume": ["svc:cinder-api", "svc:cinder-scheduler", "svc:cinder-volume"],
    "image": ["svc:glance-api"],
    "bosh_user": ["svc:nova-api"],
    # after "network": the VIP goes on a bosh subnet
    "loadbalancer": ["svc:octavia-api", "svc:octavia-worker", "bootstrap:network"],
}
if not S.RELEASE.octavia:  # releases.py: the PyPI release has no Octavia yet
    del BOOTSTRAP_STEPS["loadbalancer"]


def up(args):
    from . import bootstrap  # imports openstacksdk: only needed here

    t0 = args.started_at or time.time()
    _T0[0] = t0
    t_cfg = time.time()
    os.makedirs(S.STATE, exist_ok=True)
    open(os.path.join(S.STATE, OWNER_MARK), "a").close()
    configs.write_all()
    t_graph = time.time()

    g = services.Graph(log)
    if services.init_datadir():
        log("db: mariadb datadir initialised")
    g.set("db:datadir")

    def databases():
        g.wait(["svc:mariadb"])
        services.create_databases()
        g.set("db:databases")

    g.spawn("databases", databases)
    for name, steps in services.db_jobs().items():
        g.spawn("db-" + name, services.run_job, g, name, steps)
    for svc in services.all_services():
        g.spawn(svc.name, services.ensure_service, g, svc)

    results = {}

    def identity():
        g.wait(["svc:keystone"])
        results.update(bootstrap.identity(log))
        g.set("catalog")

    g.spawn("bootstrap identity", identity)

    def step(name, needs):
        g.wait(["catalog"] + needs)
        ids = [results["project_id"], results["admin_project_id"]]
        t = time.time()
        if name == "network":
            out = bootstrap.network(log, ids, results["project_id"])
        elif name == "compute":
            out = bootstrap.compute(log, ids)
        elif name == "volume":
            out = bootstrap.volume(log, ids)
        elif name == "image":
            out = bootstrap.image(log)
        elif name == "loadbalancer":
            out = bootstrap.loadbalancer(log, ids, results["project_id"], results["networks"])
        else:
            out = bootstrap.bosh_user(log)
        results.update(out)
        g.set("bootstrap:" + name)
        log("bootstrap: %s ready (%.1fs)" % (name, time.time() - t))

    for name, needs in BOOTSTRAP_STEPS.items():
        g.spawn("bootstrap " + name, step, name, needs)

    g.join()
    bootstrap.cloud_description(results)
    end = time.time()

    def last(prefix):
        ts = [t for n, t in g.done_at.items() if n.startswith(prefix)]
        return max(ts) if ts else t_graph

    t_db, t_svc = last("db:"), last("svc:")
    log(
        "timings: packages %.1fs | configs %.1fs | db init %.1fs | services healthy %.1fs "
        "(from db start; overlaps db init) | bootstrap %.1fs (after last service) | total %.1fs"
        % (
            t_cfg - t0,
            t_graph - t_cfg,
            t_db - t_graph,
            t_svc - t_graph,
            end - max(t_svc, t_graph),
            end - t0,
        )
    )
    log(
        "cloud is up; description: %s  (clouds.yaml: %s, admin openrc: %s)"
        % (S.CLOUD_JSON, S.CLOUDS_YAML, S.OPENRC)
    )
    return 0


# ------------------------------------------------------------------------------ down


def down(args):
    names = procs.recorded_names()
    if names:
        t = time.time()
        openstack = [n for n in names if n not in services.INFRA]
        procs.stop_many(openstack, timeout=20, log=log)
        # then the infrastructure: rabbitmq and mariadb (clean InnoDB shutdown), epmd last
        procs.stop_many([n for n in ("rabbitmq", "mariadb") if n in names], timeout=40, log=log)
        procs.stop_many([n for n in ("epmd",) if n in names], timeout=10, log=log)
        log("stopped in %.1fs" % (time.time() - t))
    else:
        log("nothing running that this tool started")
    if args.wipe:
        if os.path.realpath(S.STATE) == "/" or not os.path.exists(
            os.path.join(S.STATE, OWNER_MARK)
        ):
            log(
                "not wiping %s: it has no %s file, so it is not a test cloud state dir"
                % (S.STATE, OWNER_MARK)
            )
            return 1
        shutil.rmtree(S.STATE)
        log("wiped %s" % S.STATE)
    return 0


# ------------------------------------------------------------------------------ status


def status(args):
    rows, ok, total = [], True, 0
    for svc in services.all_services():
        pid = procs.pid_of(svc.name)
        healthy = pid is not None and svc.probe()
        ok &= healthy
        where = ("%s:%d" % (S.IP, svc.port)) if svc.port else "rpc: " + ",".join(svc.queues)
        pss = procs.group_pss_kb(pid) // 1024 if pid else 0
        total += pss
        rows.append(
            (
                svc.name,
                str(pid or "-"),
                "ok" if healthy else ("UNHEALTHY" if pid else "DOWN"),
                "%d MiB" % pss if pid else "-",
                where,
            )
        )
    rows.append(("total", "", "", "%d MiB" % total, ""))
    head = ("service", "pid", "state", "memory", "listens on / consumes RPC queue")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
    for r in [head] + rows:
        print(
            "%-*s  %*s  %-*s  %*s  %s"
            % (widths[0], r[0], widths[1], r[1], widths[2], r[2], widths[3], r[3], r[4])
        )
    print("(memory: PSS of each process group, i.e. shared pages split among the processes)")
    if not os.path.exists(S.CLOUD_JSON):
        print("cloud.json: missing (run `testcloud/cloud up`)")
        ok = False
    else:
        print("cloud.json: %s" % S.CLOUD_JSON)
    print("state: %s -> %s" % (S.STATE, "healthy" if ok else "NOT healthy"))
    return 0 if ok else 1


def env(args):
    print(S.CLOUD_JSON)
    if not os.path.exists(S.CLOUD_JSON):
        sys.stderr.write("note: %s does not exist yet: run `testcloud/cloud up`\n" % S.CLOUD_JSON)
    return 0


def smoke(args):
    from . import smoke as smoke_mod

    return smoke_mod.main(log)


def main(argv):
    p = argparse.ArgumentParser(prog="testcloud/cloud")
    sub = p.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up")
    u.add_argument("--started-at", type=float, default=None, help=argparse.SUPPRESS)
    d = sub.add_parser("down")
    d.add_argument("--wipe", action="store_true", help="also delete the state directory")
    sub.add_parser("status")
    sub.add_parser("env")
    sub.add_parser("smoke")
    args = p.parse_args(argv)
    return {"up": up, "down": down, "status": status, "env": env, "smoke": smoke}[args.cmd](args)
