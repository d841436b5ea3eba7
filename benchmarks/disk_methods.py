"""Requests and wall time of every disk and snapshot method on the test cloud, each CPI
call a new process as the director runs it; medians over several rounds.

    .venv/bin/python -m benchmarks.disk_methods [--rounds N] [--write]

Each round is the life of one disk on one server (booted once with the SDK): create,
metadata, attach (twice), get_disks, snapshot, resize attached and detached, retype,
detach, delete. Requests are counted from the CPI's debug log (tools/request_log.py)
with a warm token and version-discovery cache, as every call after the first one runs.
--write replaces the "disks" section of BENCHMARKS.md.
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
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.report import publish
from tools.cloud_description import (
    cpi_document,
    load_description,
    project_connection,
    write_cpi_json,
)
from tools.cpi_process import CpiProcess, CpiResult, cpi_command, director_environment
from tools.request_log import LOG_LEVEL_ENV, count_requests

TITLE = "disks"

# The reference CPI's requests for the same step (estimated from Appendix A of the anchor
# research): its sequence, plus one Keystone token per service it uses (fog authenticates
# each service connection), plus two polls per wait (one right after the request, one
# after sleeping wait_resource_poll_interval).
REFERENCE = {
    "create_disk (no VM)": "4: token, POST, 2 polls",
    "delete_disk": "5: token, GET, DELETE, 2 polls",
    "create_disk": "6: 2 tokens, GET server, POST, 2 polls",
    "has_disk": "2: token, GET",
    "set_disk_metadata": "3: token, GET, POST",
    "attach_disk": "10: 2 tokens, 4 GETs, POST, 2 polls, GET registry_key",
    "attach_disk (already attached)": "6: 2 tokens, 3 GETs, GET registry_key",
    "get_disks": "NotImplemented",
    "snapshot_disk": "6: token, GET, POST, 2 polls, POST metadata",
    "delete_snapshot": "5: token, GET, DELETE, 2 polls",
    "resize_disk (attached)": "2, then CloudError (attached)",
    "detach_disk": "9: 2 tokens, 3 GETs, DELETE, 2 polls, GET registry_key",
    "resize_disk": "5: token, GET, POST, 2 polls",
    "update_disk (retype)": "NotImplemented: the director copies the disk",
    "has_disk, no token cache": "2: token, GET",
}


def _connect(description: dict[str, Any]) -> Any:
    return project_connection(description)


def _boot(sdk: Any, description: dict[str, Any], mark: str) -> str:
    resources = description["resources"]
    flavor = sdk.compute.find_flavor(resources["flavors"]["default"])
    server = sdk.compute.create_server(
        name=f"bench-disks-{uuid.uuid4().hex[:6]}",
        image_id=resources["image_id"],
        flavor_id=flavor.id,
        networks=[{"uuid": resources["networks"]["manual_1"]["id"]}],
        metadata={"director_uuid": mark},
    )
    sdk.compute.wait_for_server(server, wait=120, interval=0.5)
    return str(server.id)


class Recorder:
    def __init__(self, cpi: CpiProcess) -> None:
        self.cpi = cpi
        self.requests: dict[str, list[int]] = defaultdict(list)
        self.seconds: dict[str, list[float]] = defaultdict(list)

    def __call__(self, label: str, method: str, *arguments: Any) -> Any:
        result: CpiResult = self.cpi.call(method, *arguments)
        if result.error is not None:
            raise RuntimeError(f"{label}: {result.error}")
        self.requests[label].append(count_requests(result.stderr)["total"])
        self.seconds[label].append(result.seconds)
        return result.result


def _round(call: Recorder, server: str, other_type: str) -> None:
    plain = call("create_disk (no VM)", "create_disk", 1024, {}, None)
    call("delete_disk", "delete_disk", plain)
    disk = call("create_disk", "create_disk", 1024, {}, server)
    call("has_disk", "has_disk", disk)
    call("set_disk_metadata", "set_disk_metadata", disk, {"director": "bench", "index": 0})
    call("attach_disk", "attach_disk", server, disk)
    call("attach_disk (already attached)", "attach_disk", server, disk)
    call("get_disks", "get_disks", server)
    snapshot = call("snapshot_disk", "snapshot_disk", disk, {"deployment": "d", "job": "j"})
    call("delete_snapshot", "delete_snapshot", snapshot)
    call("resize_disk (attached)", "resize_disk", disk, 2048)
    call("detach_disk", "detach_disk", server, disk)
    call("resize_disk", "resize_disk", disk, 3072)
    call("update_disk (retype)", "update_disk", disk, 3072, {"type": other_type})
    call("delete_disk", "delete_disk", disk)


def _report(call: Recorder, rounds: int) -> str:
    lines = [
        f"Command: `.venv/bin/python -m benchmarks.disk_methods --rounds {rounds} --write`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}; the local test cloud "
        "(fake Nova and Cinder drivers: attach, extend and snapshot finish in well under a "
        "second, so polls are few). Each call is a new CPI process with "
        "BOSH_OPENSTACK_CPI_LOG_LEVEL=DEBUG, token and version discovery cached.",
        "",
        "| method | requests (median) | requests (min-max) | wall ms (median) "
        "| reference CPI requests (estimated) |",
        "|---|---|---|---|---|",
    ]
    for label, counts in call.requests.items():
        wall = statistics.median(call.seconds[label]) * 1000
        lines.append(
            f"| {label} | {statistics.median(counts):g} | {min(counts)}-{max(counts)} "
            f"| {wall:.0f} | {REFERENCE.get(label, '')} |"
        )
    lines += [
        "",
        "Requests include the status polls (Cinder GET after an asynchronous action; the "
        "first poll comes 0.1 s after the action, then each pause is a quarter of the time "
        "since, at least 0.1 s, up to wait_resource_poll_interval). Without a cached token "
        "each call adds one Keystone request, and the first use of a service in a cache "
        "adds its version discovery (one GET with a cached token; two through keystoneauth "
        "for Cinder, which asks without the token first): see the last row. The "
        "reference column adds to the Appendix A sequence one Keystone token per service "
        "and two polls per wait; the reference sleeps wait_resource_poll_interval (5 s by "
        "default) before its second poll, so each of its waits costs at least that long.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true")
    options = parser.parse_args()

    description = load_description()
    sdk = _connect(description)
    mark = f"bench-disks-{uuid.uuid4()}"
    default_type = sdk.block_storage.get("/types/default").json()["volume_type"]["name"]
    uncached_document = cpi_document(description, token_cache=False)
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "uncached").mkdir()
        config = write_cpi_json(Path(directory), cpi_document(description))
        cpi = CpiProcess(
            cpi_command(config), director_uuid=mark, env=director_environment(LOG_LEVEL_ENV)
        )
        cpi.call("has_disk", str(uuid.uuid4()))  # warm the token and discovery cache
        uncached = CpiProcess(
            cpi_command(write_cpi_json(Path(directory) / "uncached", uncached_document)),
            director_uuid=mark,
            env=director_environment(LOG_LEVEL_ENV),
        )
        server = _boot(sdk, description, mark)
        call = Recorder(cpi)
        try:
            # disks are created with default_volume_type; update_disk moves them to
            # Cinder's own default type
            for _ in range(options.rounds):
                _round(call, server, default_type)
                cold = Recorder(uncached)
                cold("has_disk, no token cache", "has_disk", str(uuid.uuid4()))
                for label in cold.requests:
                    call.requests[label] += cold.requests[label]
                    call.seconds[label] += cold.seconds[label]
        finally:
            sdk.compute.delete_server(server)
    body = _report(call, options.rounds)
    return publish(TITLE, body, options.write)


if __name__ == "__main__":
    sys.exit(main())
