"""A full BOSH lifecycle through the CPI, against the same lifecycle done directly with
openstacksdk by the shortest request sequence we could write (OpenStack's own time),
side by side, interleaved.

Lifecycle: upload stemcell -> create_vm on manual + vip networks -> create_disk ->
attach_disk -> snapshot_disk -> delete_snapshot -> detach_disk -> delete_disk ->
delete_vm -> delete_stemcell. The CPI runs one process per call, as under the director
(token cache on, as shipped); `info` calls are not counted (they touch no cloud).

    .venv/bin/python -m benchmarks.lifecycle [--rounds 3] [--write]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.report import publish
from tools.cloud_description import (
    cpi_document,
    load_description,
    project_connection,
    write_cpi_json,
)
from tools.cpi_process import CpiProcess, cpi_command
from tools.request_log import LOG_LEVEL_ENV, count_requests
from tools.stemcell_builder import build_stemcell

TITLE = "full lifecycle"
# The reference CPI's requests for this lifecycle, from its per-method call sequences
# (research anchor doc, Appendix A), with one token per service used in each call and
# two polls per wait (a 5 s poll interval; every operation here ends within 5 s).
REFERENCE_REQUESTS = {
    "create_stemcell": 6,
    "create_vm": 15,
    "create_disk": 6,
    "attach_disk": 10,
    "snapshot_disk": 6,
    "delete_snapshot": 5,
    "detach_disk": 9,
    "delete_disk": 5,
    "delete_vm": 10,
    "delete_stemcell": 3,
}
POLL = 0.1


class _RequestCounter(logging.Handler):
    """Counts the SDK's HTTP requests in this process (urllib3 logs one line each)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _bench_ip(network: dict[str, Any], offset: int) -> str:
    """An address at the top of the static range: tests use the listed static_ips."""
    last = network["static_range"].split("-")[1]
    prefix, final = last.rsplit(".", 1)
    return f"{prefix}.{int(final) - offset}"


def _networks(cloud: dict[str, Any]) -> dict[str, Any]:
    manual = cloud["resources"]["networks"]["manual_1"]
    return {
        "private": {
            "type": "manual",
            "ip": _bench_ip(manual, 0),
            "netmask": "255.255.255.0",
            "gateway": manual["gateway"],
            "dns": [],
            "default": ["dns", "gateway"],
            "cloud_properties": {"net_id": manual["id"]},
        },
        "public": {
            "type": "vip",
            "ip": cloud["resources"]["floating_ips"][-1],
            "cloud_properties": {},
        },
    }


# Per method: OpenStack requests by service (and "total"), plus the call's wall and CPU
# seconds (keys "wall", "cpu"; kept apart from the request counts when reporting).
Costs = dict[str, dict[str, float]]
TIMES = ("wall", "cpu")
NOT_SERVICES = ("total", "fallbacks", *TIMES)


def cpi_lifecycle(
    cloud: dict[str, Any], workdir: Path, *, count: bool = False, auth_url: str | None = None
) -> tuple[float, Costs]:
    """Wall time of the whole lifecycle and each call's costs. `count`: at DEBUG level, to
    count requests from the log (which makes every call slower: not for timing).
    `auth_url`: reach the cloud there (a front) instead of at its own Keystone."""
    overrides = {"auth_url": auth_url} if auth_url else {}
    config = write_cpi_json(workdir, cpi_document(cloud, **overrides))
    cpi = CpiProcess(cpi_command(config))
    if count:
        cpi.env.update(LOG_LEVEL_ENV)
    cpi.env["TMPDIR"] = str(workdir)  # its own token cache, warmed by the first call
    stemcell = build_stemcell(workdir / "stemcell", "raw", 16 << 20)
    per_method: Costs = {}

    def call(method: str, *arguments: Any) -> Any:
        result = cpi.call(method, *arguments)
        if result.error is not None:
            raise RuntimeError(f"{method}: {result.error['message']}")
        per_method[method] = {
            **(count_requests(result.stderr) if count else {}),
            **({"fallbacks": float(_fell_back(result.stderr))} if count else {}),
            "wall": result.seconds,
            "cpu": result.cpu_seconds,
        }
        return result.result

    started = time.perf_counter()
    image = call("create_stemcell", str(stemcell.image), stemcell.cloud_properties)
    vm, _ = call(
        "create_vm",
        f"agent-{uuid.uuid4()}",
        image,
        {"instance_type": cloud["resources"]["flavors"]["default"]},
        _networks(cloud),
        [],
        {"bosh": {"group": "benchmark"}},
    )
    disk = call("create_disk", 1024, {}, vm)
    call("attach_disk", vm, disk)
    snapshot = call("snapshot_disk", disk, {"deployment": "bench", "job": "j", "index": 0})
    call("delete_snapshot", snapshot)
    call("detach_disk", vm, disk)
    call("delete_disk", disk)
    call("delete_vm", vm)
    call("delete_stemcell", image)
    return time.perf_counter() - started, per_method


def _fell_back(stderr: str) -> bool:
    """The CPI logs these when its stdlib transport leaves a request or a version
    discovery to keystoneauth."""
    return "keystoneauth serves" in stderr or "keystoneauth discovers" in stderr


def sdk_lifecycle(
    cloud: dict[str, Any], workdir: Path, *, vip_during_build: bool = False
) -> tuple[float, dict[str, int]]:
    """The same lifecycle in one process, the fewest requests, tight polling.
    `vip_during_build`: the floating IP is associated right after the server request, as
    the CPI does, instead of once the server is ACTIVE."""

    counter = _RequestCounter()
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    urllib3_log.addHandler(counter)
    urllib3_log.setLevel(logging.DEBUG)
    stemcell = build_stemcell(workdir / "stemcell", "raw", 16 << 20, keep_root_img=True)
    resources = cloud["resources"]
    manual = resources["networks"]["manual_1"]
    started = time.perf_counter()
    try:
        conn = project_connection(cloud)
        with open(stemcell.root_img, "rb") as data:
            image = conn.image.create_image(
                name=f"bench-{uuid.uuid4()}",
                disk_format="raw",
                container_format="bare",
                data=data,  # a file object: streamed
                validate_checksum=False,
            )
        _wait(lambda: conn.image.get_image(image.id).status == "active")
        port = conn.network.create_port(
            network_id=manual["id"], fixed_ips=[{"ip_address": _bench_ip(manual, 1)}]
        )
        flavor = conn.compute.find_flavor(resources["flavors"]["default"], ignore_missing=False)
        server = conn.compute.create_server(
            name=f"bench-{uuid.uuid4()}",
            image_id=image.id,
            flavor_id=flavor.id,
            networks=[{"port": port.id}],
        )
        floating = next(conn.network.ips(floating_ip_address=resources["floating_ips"][-2]))
        if vip_during_build:
            conn.network.update_ip(floating, port_id=port.id)
        _wait(lambda: conn.compute.get_server(server.id).status == "ACTIVE")
        if not vip_during_build:
            conn.network.update_ip(floating, port_id=port.id)
        volume = conn.block_storage.create_volume(size=1)
        _wait(lambda: conn.block_storage.get_volume(volume.id).status == "available")
        conn.compute.create_volume_attachment(server.id, volume_id=volume.id)
        _wait(lambda: conn.block_storage.get_volume(volume.id).status == "in-use")
        snapshot = conn.block_storage.create_snapshot(volume_id=volume.id, force=True)
        _wait(lambda: conn.block_storage.get_snapshot(snapshot.id).status == "available")
        conn.block_storage.delete_snapshot(snapshot.id)
        conn.compute.delete_volume_attachment(server.id, volume.id)
        _wait(lambda: conn.block_storage.get_volume(volume.id).status == "available")
        conn.block_storage.delete_volume(volume.id)
        conn.network.update_ip(floating, port_id=None)
        conn.compute.delete_server(server.id)
        _wait(lambda: conn.compute.find_server(server.id) is None)
        conn.network.delete_port(port.id)
        conn.image.delete_image(image.id)
        elapsed = time.perf_counter() - started
    finally:
        urllib3_log.removeHandler(counter)
    return elapsed, count_requests("\n".join(_as_url_lines(counter.lines)))


def _as_url_lines(messages: list[str]) -> list[str]:
    # urllib3 messages look like: http://127.0.0.1:8774 "GET /v2.1/servers/x HTTP/1.1" 200 8
    return [m for m in messages if '" ' in m and "HTTP/" in m]


def _wait(ready: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError("lifecycle step timed out")
        time.sleep(POLL)


def _report(
    rounds: int,
    cpi_runs: list[tuple[float, Costs]],
    counted: Costs,
    sdk_runs: list[tuple[float, dict[str, int]]],
    overlapped_runs: list[tuple[float, dict[str, int]]],
) -> str:
    cpi_wall = statistics.median(r[0] for r in cpi_runs)
    sdk_wall = statistics.median(r[0] for r in sdk_runs)
    overlapped_wall = statistics.median(r[0] for r in overlapped_runs)
    cpi_total = sum(m["total"] for m in counted.values())
    sdk_total = statistics.median(r[1]["total"] for r in sdk_runs)
    reference_total = sum(REFERENCE_REQUESTS.values())
    last = counted
    lines = [
        f"Command: `.venv/bin/python -m benchmarks.lifecycle --rounds {rounds} --write` "
        f"({time.strftime('%Y-%m-%d')}, local test cloud, {rounds} interleaved rounds)",
        "",
        "| lifecycle | median wall (s) | requests | ratio |",
        "|---|---|---|---|",
        f"| direct openstacksdk, shortest sequence (baseline) | {sdk_wall:.2f} | {sdk_total:.0f}"
        " | 1.00 |",
        "| direct openstacksdk, floating IP associated during the build (as the CPI) "
        f"| {overlapped_wall:.2f} | {sdk_total:.0f} | {overlapped_wall / sdk_wall:.2f} |",
        f"| this CPI, one process per call | {cpi_wall:.2f} | {cpi_total:.0f} "
        f"| wall {cpi_wall / sdk_wall:.2f}x (of the second: {cpi_wall / overlapped_wall:.2f}x), "
        f"requests {cpi_total / sdk_total:.2f}x |",
        f"| reference CPI (counted from its call sequences) | n/a | {reference_total} "
        f"| ours / reference = {cpi_total / reference_total:.2f} |",
        "",
        "Per method: wall and CPU time of the CPI process (median over the rounds), OpenStack",
        "requests (one more lifecycle at DEBUG level, which the timed rounds are not;",
        "identity = Keystone token requests):",
        "",
        "| method | wall (s) | CPU (s) | requests, ours | requests, reference |",
        "|---|---|---|---|---|",
    ]
    for method, reference in REFERENCE_REQUESTS.items():
        counts = last.get(method, {})
        wall, cpu = (
            statistics.median(r[1].get(method, {}).get(kind, 0.0) for r in cpi_runs)
            for kind in TIMES
        )
        detail = ", ".join(f"{k} {v:.0f}" for k, v in counts.items() if k not in NOT_SERVICES)
        lines.append(
            f"| {method} | {wall:.2f} | {cpu:.2f} | {counts.get('total', 0):.0f} ({detail}) "
            f"| {reference} |"
        )
    lines += [
        "",
        "Goals: requests ≤ 0.6x the reference; wall ≤ 1.15x the baseline. The second "
        "baseline associates the floating IP while Nova builds, as the CPI does since "
        "2026-11-27: the CPI's own overhead is its wall time over that one.",
    ]
    return "\n".join(lines)


# --- endpoint layouts (issue 15) ---------------------------------------------------------
# The same CPI lifecycle through one front (tools/fault_proxy.py, no faults) publishing the
# catalog as the cloud does (`http://front:port/v2.1`) and under path prefixes
# (`http://front:port/compute/v2.1`, as devstack and single-endpoint fronts do): only the
# layout differs, so the CPI's stdlib fast path is shown to serve both alike.
LAYOUTS = {"as published by the cloud": False, "path-prefixed": True}


def _upstreams(cloud: dict[str, Any]) -> dict[str, str]:
    from tools.fault_proxy import upstreams_from_catalog

    connection = project_connection(cloud)
    try:
        catalog = connection.session.auth.get_access(connection.session).service_catalog.catalog
    finally:
        connection.close()
    upstreams = upstreams_from_catalog(catalog)
    auth = urlsplit(cloud["openstack"]["auth_url"])
    upstreams["identity"] = f"{auth.scheme}://{auth.netloc}"
    return upstreams


def layout_lifecycle(
    cloud: dict[str, Any], upstreams: dict[str, str], path_prefixes: bool, *, count: bool = False
) -> tuple[float, Costs]:
    from tools.fault_proxy import FaultPlan, FaultProxy

    auth_path = urlsplit(cloud["openstack"]["auth_url"]).path
    with (
        FaultProxy(
            upstreams, FaultPlan(), path_prefixes=path_prefixes, rewrite_links=True
        ) as front,
        tempfile.TemporaryDirectory(prefix="bosh-cpi-bench-") as scratch,
    ):
        auth_url = front.url("identity") + auth_path
        return cpi_lifecycle(cloud, Path(scratch), count=count, auth_url=auth_url)


def _layout_report(runs: dict[str, list[tuple[float, Costs]]], counted: dict[str, Costs]) -> str:
    lines = [
        "",
        "### Endpoint layouts",
        "",
        "The CPI lifecycle through one front (tools/fault_proxy.py, no faults, in the "
        "benchmark's process; every answer's links name the front, as services configured "
        "with their public URLs answer) that publishes the catalog as the cloud does, or "
        "with every service under a path prefix (`/compute/v2.1`, `/volume/v3/<project>`, "
        "`/image`, ...). Same rounds, interleaved with the rows above; CPU is the CPI "
        "processes' own; a fallback is a call that left a request or a version discovery "
        "to keystoneauth.",
        "",
        "| front publishes | median wall (s) | CPU, all calls (s) | requests | keystoneauth "
        "fallbacks |",
        "|---|---|---|---|---|",
    ]
    for layout, layout_runs in runs.items():
        wall = statistics.median(r[0] for r in layout_runs)
        cpu = statistics.median(sum(m["cpu"] for m in r[1].values()) for r in layout_runs)
        requests = sum(m["total"] for m in counted[layout].values())
        fallbacks = sum(m.get("fallbacks", 0) for m in counted[layout].values())
        lines.append(f"| {layout} | {wall:.2f} | {cpu:.2f} | {requests:.0f} | {fallbacks:.0f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    options = parser.parse_args()
    cloud = load_description()
    upstreams = _upstreams(cloud)
    layout_runs: dict[str, list[tuple[float, Costs]]] = {layout: [] for layout in LAYOUTS}
    cpi_runs, sdk_runs, overlapped_runs = [], [], []
    for _ in range(options.rounds):
        with tempfile.TemporaryDirectory(prefix="bosh-cpi-bench-") as scratch:
            sdk_runs.append(sdk_lifecycle(cloud, Path(scratch)))
        with tempfile.TemporaryDirectory(prefix="bosh-cpi-bench-") as scratch:
            overlapped_runs.append(sdk_lifecycle(cloud, Path(scratch), vip_during_build=True))
        with tempfile.TemporaryDirectory(prefix="bosh-cpi-bench-") as scratch:
            cpi_runs.append(cpi_lifecycle(cloud, Path(scratch)))
        for layout, prefixed in LAYOUTS.items():
            layout_runs[layout].append(layout_lifecycle(cloud, upstreams, prefixed))
    with tempfile.TemporaryDirectory(prefix="bosh-cpi-bench-") as scratch:
        _, counted = cpi_lifecycle(cloud, Path(scratch), count=True)
    layout_counted = {
        layout: layout_lifecycle(cloud, upstreams, prefixed, count=True)[1]
        for layout, prefixed in LAYOUTS.items()
    }
    report = _report(options.rounds, cpi_runs, counted, sdk_runs, overlapped_runs)
    report += "\n" + _layout_report(layout_runs, layout_counted)
    return publish(TITLE, report, options.write)


if __name__ == "__main__":
    sys.exit(main())
