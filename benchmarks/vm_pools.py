"""create_vm and delete_vm with 0, 1 and 2 Octavia pools (loadbalancer_pools) on the local
cloud: OpenStack requests per call, by service, and wall time, next to the Go CPI's
request sequence as read from its code.

    .venv/bin/python -m benchmarks.vm_pools [--rounds N] [--write]

Needs a test cloud with Octavia (resources.loadbalancer in its description). Each round
creates and deletes one VM per pool count, interleaved; the pools are two pools of the
cloud's one load balancer. --write replaces the "load balancer pools" section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.report import write_section
from benchmarks.vm_lifecycle import _checked, _networks, _process
from tools.cloud_description import cpi_document, load_description, write_cpi_json
from tools.cpi_process import CpiResult
from tools.request_log import count_requests

TITLE = "load balancer pools"
POOL_COUNTS = (0, 1, 2)
# The Go CPI's requests for one pool, from src/openstack_cpi_golang (loadbalancer_service.go,
# create_vm.go, delete_vm.go at e2856a3c), when the load balancer is ACTIVE at the first
# poll of each wait; each poll that finds it busy adds one GET and a 10 s sleep.
GO_SEQUENCE = {
    "create_vm": (
        "per pool: `GET lbaas/pools?name=`, `GET lbaas/loadbalancers/<id>` (wait), `POST "
        "members`, `GET lbaas/loadbalancers/<id>` (wait); then one `POST servers/<id>/"
        "metadata` when there are pools: 4 per pool + 1"
    ),
    "delete_vm": (
        "`GET servers/<id>/metadata` always; per member: `GET lbaas/pools/<id>`, `GET "
        "lbaas/loadbalancers/<id>` (wait), `DELETE members/<id>`, `GET lbaas/loadbalancers/"
        "<id>` (wait): 4 per pool + 1"
    ),
}


def _properties(cloud: dict[str, Any], count: int) -> dict[str, Any]:
    names = sorted(cloud["resources"]["loadbalancer"]["pools"])[:count]
    pools = [{"name": name, "port": 8000 + n} for n, name in enumerate(names)]
    return {"instance_type": cloud["resources"]["flavors"]["default"], "loadbalancer_pools": pools}


def _create(cpi: Any, cloud: dict[str, Any], count: int) -> CpiResult:
    return _checked(
        cpi.call(
            "create_vm",
            "agent-benchmark",
            cloud["resources"]["image_id"],
            _properties(cloud, count),
            _networks(cloud, "manual"),
            [],
            {"bosh": {"group": "benchmark"}},
        ),
        "create_vm",
    )


def _measure(cloud: dict[str, Any], rounds: int) -> dict[tuple[str, int], list[CpiResult]]:
    scratch = Path(tempfile.mkdtemp(prefix="pool-benchmark-"))
    config = write_cpi_json(scratch, cpi_document(cloud, state_timeout=300))
    results: dict[tuple[str, int], list[CpiResult]] = {}
    for _ in range(rounds):
        for count in POOL_COUNTS:
            cpi = _process(config, f"benchmark-{uuid.uuid4()}", None)
            created = _create(cpi, cloud, count)
            results.setdefault(("create_vm", count), []).append(created)
            deleted = _checked(cpi.call("delete_vm", created.result[0]), "delete_vm")
            results.setdefault(("delete_vm", count), []).append(deleted)
    return results


def _median_requests(samples: list[CpiResult]) -> str:
    counts = [count_requests(r.stderr) for r in samples]
    services = sorted({k for c in counts for k in c if k != "total"})
    parts = [f"{s} {statistics.median(c.get(s, 0) for c in counts):g}" for s in services]
    total = statistics.median(c.get("total", 0) for c in counts)
    return f"{total:g} ({', '.join(p for p in parts if not p.endswith(' 0'))})"


def _report(results: dict[tuple[str, int], list[CpiResult]], rounds: int) -> str:
    lines = [
        f"Command: `.venv/bin/python -m benchmarks.vm_pools --rounds {rounds} --write`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}; the local test cloud with "
        "Octavia (amphora provider: a load balancer is PENDING_UPDATE about 1.5 s after each "
        "member change). One VM on a manual network per call; pools of one load balancer. "
        f"{rounds} interleaved rounds; wall time is the whole CPI process. Requests counted "
        "from the CPI's debug log (tools/request_log.py), the token from the token cache.",
        "",
        "| method | pools | requests, median (by service) | wall time, median (min-max) |",
        "|---|---|---|---|",
    ]
    for method in ("create_vm", "delete_vm"):
        for count in POOL_COUNTS:
            samples = results[(method, count)]
            walls = [r.seconds for r in samples]
            lines.append(
                f"| {method} | {count} | {_median_requests(samples)} | "
                f"{statistics.median(walls):.2f} s ({min(walls):.2f}-{max(walls):.2f}) |"
            )
    lines += [
        "",
        "The Go CPI (the reference's default), read from its code, not measured: create_vm "
        f"{GO_SEQUENCE['create_vm']}; delete_vm {GO_SEQUENCE['delete_vm']}. It sleeps 10 s "
        "between polls of a busy load balancer, and its wait after a change usually finds it "
        "busy (here for about 1.5 s), so each pool costs it about 10 s in create_vm and in "
        "delete_vm. This CPI finds the pools before anything is created, sends a change "
        "without polling first (Octavia answers 409 while the load balancer is busy, and the "
        "CPI then waits and sends it again), waits once per change with polls from 0.1 s on, "
        "and with no pools sends no Octavia request; delete_vm's one extra Nova request is "
        "the `GET servers/<id>` that reads the memberships (the Go CPI's `GET "
        "servers/<id>/metadata`).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="replace the BENCHMARKS.md section")
    args = parser.parse_args(argv)
    cloud = load_description()
    if not cloud["resources"].get("loadbalancer"):
        raise SystemExit("the cloud description has no resources.loadbalancer (Octavia)")
    body = _report(_measure(cloud, args.rounds), args.rounds)
    print(f"## {TITLE}\n\n{body}\n")
    if args.write:
        write_section(TITLE, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
