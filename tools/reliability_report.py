"""Run the fault campaign and the concurrency runs, and write their figures into
RELIABILITY.md (each `## <title>` section it owns is replaced, the rest is left alone).

    .venv/bin/python -m tools.reliability_report --full          # every fault (~1.5 h here)
    .venv/bin/python -m tools.reliability_report                 # the sample the tests run
    .venv/bin/python -m tools.reliability_report --from-json campaign.json   # re-render

Options: --workers (chains at once), --seed (which sample), --json (keep every run),
--concurrency N (parallel lifecycles, 0: skip), --no-write (print only).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tests.integration.leaks import resources_of_director
from tools import concurrency
from tools.cloud_description import cpi_document, load_description, write_cpi_json
from tools.cpi_process import CpiProcess, cpi_command
from tools.fault_campaign import (
    FAULT_KINDS,
    KILLS,
    LEFT_AFTER_FOLLOW_UP,
    WARM_MODE,
    Campaign,
    run_campaign,
    sweep,
)
from tools.markdown_sections import replace_section

RELIABILITY = Path(__file__).resolve().parent.parent / "RELIABILITY.md"
HEADER = (
    "# Reliability\n\n"
    "Sections marked as generated are written by `tools/reliability_report.py`; rerun the\n"
    "command named in them to refresh them.\n"
)
CAMPAIGN_TITLE = "Fault campaign (generated)"
WARM_CAMPAIGN_TITLE = "Fault campaign, token cache warm (generated)"
CONCURRENCY_TITLE = "Concurrency (generated)"
# Static IPs of the concurrency runs (as tests/integration/test_concurrency.py).
LIFECYCLE_IPS = range(20, 40)
RACE_IP = 45


def write_section(title: str, body: str, path: Path = RELIABILITY) -> None:
    replace_section(path, HEADER, title, body)


# --- the campaign's tables ------------------------------------------------------------------
def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def campaign_section(campaign: Campaign, command: str) -> str:
    injected = campaign.injected
    outcomes = sorted({r.outcome for r in injected})
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for record in injected:
        by_kind[record.fault or ""][record.outcome] += 1
    kind_rows = [
        [kind, sum(by_kind[kind].values()), *(by_kind[kind].get(o, 0) for o in outcomes)]
        for kind in FAULT_KINDS
        if kind in by_kind
    ]
    by_method: dict[str, Counter[str]] = defaultdict(Counter)
    for record in injected:
        by_method[record.scenario][record.outcome] += 1
    method_rows = [
        [name, sum(counts.values()), *(counts.get(o, 0) for o in outcomes)]
        for name, counts in by_method.items()
    ]
    retried = [r for r in injected if r.ok_to_retry]
    kills = [r for r in injected if r.fault in KILLS]
    kill_left = [r for r in kills if r.left_after_kill]
    left_kinds: Counter[str] = Counter(k for r in kill_left for k in r.left_after_kill)
    recovered = Counter(r.recovered_by for r in kill_left)
    failures = campaign.failures()
    clean = [r for r in campaign.records if r.fault is None]
    planned = [r for r in campaign.records if r.fault is not None]
    lines = [
        f"Command: `{command}` ({campaign.mode}, seed {campaign.seed}), "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}, {campaign.seconds / 60:.0f} min.",
        "",
        f"- Runs: {len(campaign.records)} ({len(clean)} clean runs that learn each method's "
        f"requests, {len(planned)} with a fault planned); faults injected: **{len(injected)}** "
        f"({len(planned) - len(injected)} planned faults were not reached: the request did not "
        "come that often).",
        f"- Problems (a wrong or missing answer, an unexpected failure, a wrong ok_to_retry, a "
        f"success that did not do the job, a leak): **{len(failures)}**.",
        f"- Leaks after the director's follow-up (servers, ports, floating-IP associations, "
        f"volumes, snapshots, images with the run's director UUID, counted as admin): "
        f"**{sum(1 for f in failures if LEFT_AFTER_FOLLOW_UP in f)}**.",
        f"- `ok_to_retry: true`: {len(retried)} answers "
        f"({', '.join(sorted({r.outcome for r in retried})) or '-'}); the same call made again "
        f"at once succeeded {sum(1 for r in retried if r.retried_ok)} times.",
        f"- SIGKILL ({len(kills)} runs): {len(kill_left)} left something, always carrying the "
        f"run's director UUID: "
        + (", ".join(f"{k} {n}" for k, n in sorted(left_kinds.items())) or "nothing")
        + ". Removed by: "
        + (
            "; ".join(f"{how or 'the director follow-up'} ({n})" for how, n in recovered.items())
            or "-"
        )
        + ".",
        "",
        "Injected faults by kind, and the answers the CPI gave:",
        "",
        _table(["fault", "injected", *outcomes], kind_rows),
        "",
        "By method:",
        "",
        _table(["scenario", "injected", *outcomes], method_rows),
    ]
    if failures:
        lines += ["", "Problems:", ""] + [f"- {f}" for f in failures[:50]]
    return "\n".join(lines)


# --- the concurrency runs -------------------------------------------------------------------
def _cpi(
    cloud: dict[str, Any], directory: Path, director_uuid: str, **openstack: Any
) -> CpiProcess:
    job = directory / f"job-{uuid.uuid4().hex[:8]}"
    job.mkdir()
    document = cpi_document(cloud, **openstack)
    return CpiProcess(cpi_command(write_cpi_json(job, document)), director_uuid)


def _static_ip(cloud: dict[str, Any], position: int) -> str:
    from tests.integration.vm_support import static_ip

    return static_ip(cloud, "manual_1", position)


def _failure_lines(failures: list[str]) -> list[str]:
    """The distinct failures, shortened: what went wrong, not 50 copies of it."""
    distinct = dict.fromkeys(f[:300] for f in failures)
    return [f"  - {text}" for text in list(distinct)[:5]]


def concurrency_section(
    cloud: dict[str, Any], count: int, *, only: bool = False, state_timeout: int | None = None
) -> str:
    import openstack

    admin = openstack.connect(load_yaml_config=False, load_envvars=False, **cloud["admin"])
    director_uuid = f"concurrency-{uuid.uuid4()}"
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        overrides = {"state_timeout": state_timeout} if state_timeout else {}
        cpis = [_cpi(cloud, directory, director_uuid, **overrides) for _ in range(count)]
        addresses = [_static_ip(cloud, p) for p in LIFECYCLE_IPS][: count // 2]
        run = concurrency.lifecycles(cpis, cloud, addresses)
        left = resources_of_director(admin, cloud["project_id"], director_uuid)
        address = _static_ip(cloud, RACE_IP)
        networks = {"private": concurrency.manual_network(cloud, address)}
        arguments = [concurrency.create_vm_arguments(cloud, networks) for _ in range(2)]
        fixed = concurrency.race(
            [_cpi(cloud, directory, director_uuid) for _ in range(2)], arguments
        )
        cleaner = _cpi(cloud, directory, director_uuid)
        for vm_cid in fixed.winners:
            cleaner.call("delete_vm", vm_cid)
        public = cloud["resources"]["networks"]["public"]["id"]
        floating = admin.network.create_ip(
            floating_network_id=public,
            project_id=cloud["project_id"],
            description="bosh-openstack-cpi concurrency report",
        )
        try:
            vip = {
                "default": concurrency.dynamic_network(cloud),
                "public": {"type": "vip", "ip": floating.floating_ip_address},
            }
            arguments = [concurrency.create_vm_arguments(cloud, vip) for _ in range(2)]
            moved = concurrency.race(
                [_cpi(cloud, directory, director_uuid) for _ in range(2)], arguments
            )
            holder = admin.network.get_ip(floating.id).port_id
            for vm_cid in moved.winners:
                cleaner.call("delete_vm", vm_cid)
        finally:
            admin.network.delete_ip(floating, ignore_missing=True)
        left_after_races = resources_of_director(admin, cloud["project_id"], director_uuid)
    rows = [
        [method, int(f["calls"]), f["median"], f["p95"], f["max"]]
        for method, f in run.latencies().items()
    ]
    fixed_error = fixed.errors[0]["message"] if fixed.errors else "(none)"
    lines = [
        "Command: `.venv/bin/python -m tools.reliability_report --concurrency "
        f"{count}{' --only-concurrency' if only else ''}"
        f"{f' --state-timeout {state_timeout}' if state_timeout else ''}` (also "
        "tests/integration/test_concurrency.py), "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}.",
        "",
        f"- {count} lifecycles at once (create_disk → create_vm next to the disk → "
        f"attach_disk → delete_vm → delete_disk; {len(addresses)} on a manual network with a "
        f"static IP each, {count - len(addresses)} on the dynamic network), one CPI process "
        f"per call: **{len(run.failures)} failures**, **{sum(map(len, left.values()))} "
        f"resources left**, {run.seconds:.0f} s in all"
        + (f"; state_timeout {state_timeout} s." if state_timeout else "."),
        *_failure_lines(run.failures),
        "",
        _table(["method", "calls", "median s", "p95 s", "max s"], rows),
        "",
        f"- Two create_vm racing for one fixed IP: {len(fixed.winners)} success, "
        f"{len(fixed.errors)} error: “{fixed_error}”.",
        f"- Two create_vm racing for one floating IP (vip): {len(moved.winners)} successes, "
        f"{len(moved.errors)} errors; the address ended on "
        f"{'one VM' if holder else 'no VM'} (the vip moves to the VM that associates it last, "
        "as with the reference CPI).",
        f"- Left after the races: {sum(map(len, left_after_races.values()))} resources.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--full", action="store_true", help="every planned fault, not a sample")
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write every run here")
    parser.add_argument("--from-json", type=Path, help="render a campaign saved with --json")
    parser.add_argument(
        "--warm-cache",
        action="store_true",
        help="each faulted call finds a valid token in the cache (the fast path)",
    )
    parser.add_argument("--concurrency", type=int, default=20, help="0: skip")
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the file")
    parser.add_argument(
        "--only-concurrency", action="store_true", help="the concurrency runs without a campaign"
    )
    parser.add_argument(
        "--state-timeout", type=int, help="state_timeout of the concurrency runs' CPIs"
    )
    args = parser.parse_args(argv)
    cloud = load_description()
    if args.only_concurrency:
        body = concurrency_section(
            cloud, args.concurrency, only=True, state_timeout=args.state_timeout
        )
        print(f"## {CONCURRENCY_TITLE}\n\n{body}\n")
        if not args.no_write:
            write_section(CONCURRENCY_TITLE, body)
        return 0
    if args.from_json:
        campaign = Campaign.load(args.from_json)
    else:
        from tools.fault_scenarios import all_scenarios

        campaign = run_campaign(
            cloud,
            all_scenarios(cloud),
            full=args.full,
            warm_cache=args.warm_cache,
            workers=args.workers,
            seed=args.seed,
            progress=lambda line: print(line, flush=True),
        )
        print(f"swept: {sweep(cloud)}")
        if args.json:
            campaign.dump(args.json)
    warm = campaign.mode.endswith(WARM_MODE)
    command = (
        ".venv/bin/python -m tools.reliability_report"
        + (" --full" if campaign.mode.startswith("full") else "")
        + (" --warm-cache" if warm else "")
    )
    title = WARM_CAMPAIGN_TITLE if warm else CAMPAIGN_TITLE
    sections = [(title, campaign_section(campaign, command))]
    if args.concurrency and not args.from_json:
        sections.append((CONCURRENCY_TITLE, concurrency_section(cloud, args.concurrency)))
    for title, body in sections:
        print(f"## {title}\n\n{body}\n")
        if not args.no_write:
            write_section(title, body)
    return 1 if campaign.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
