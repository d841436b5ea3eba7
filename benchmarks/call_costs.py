"""Per-call costs the director pays: `info`, and `has_vm` with and without the token
cache, side by side in one interleaved run, with the requests each makes; each through
the dev .venv and through the BOSH packages (python-3.13 and bosh_openstack_cpi compiled
as BOSH compiles them, tests/release/packaged.py).

    .venv/bin/python -m benchmarks.call_costs [--rounds 15] [--write]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.bosh_packages import packaged_cpi_python
from benchmarks.report import publish
from tools.cloud_description import cpi_document, load_description, write_cpi_json
from tools.cpi_process import CpiProcess
from tools.request_log import LOG_LEVEL_ENV, count_requests

TITLE = "per-call costs"
PACKAGED = " (BOSH package)"


def _command(python: str, config: Path) -> list[str]:
    """As bin/cpi starts the CPI (no CA file: the test cloud is plain HTTP)."""
    return [python, "-I", "-m", "bosh_openstack_cpi", str(config)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--write", action="store_true")
    options = parser.parse_args()
    cloud = load_description()
    with tempfile.TemporaryDirectory(prefix="bosh-cpi-bench-") as scratch:
        packaged = packaged_cpi_python(Path(scratch))
        cases: dict[str, CpiProcess] = {}
        infos: dict[str, CpiProcess] = {}
        for runtime, python in (("", sys.executable), (PACKAGED, str(packaged))):
            infos[f"info{runtime}"] = CpiProcess(_command(python, Path(scratch) / "unused.json"))
            for name, cache in (
                ("has_vm, token cache on", True),
                ("has_vm, token cache off", False),
            ):
                directory = Path(scratch) / f"{name}{runtime}".replace(" ", "_").replace(",", "")
                directory.mkdir()
                config = write_cpi_json(directory, cpi_document(cloud, token_cache=cache))
                cpi = CpiProcess(_command(python, config))
                cpi.env["TMPDIR"] = str(directory)
                cases[f"{name}{runtime}"] = cpi
        walls: dict[str, list[float]] = {**{n: [] for n in infos}, **{n: [] for n in cases}}
        cpus: dict[str, list[float]] = {name: [] for name in walls}
        requests: dict[str, dict[str, int]] = {}
        for cpi in cases.values():  # warm-up; fills the cache of the cached case
            cpi.call("has_vm", str(uuid.uuid4()))
        for name, cpi in cases.items():  # counted at DEBUG level (slower: not timed)
            counting = CpiProcess(cpi.command, env={**cpi.env, **LOG_LEVEL_ENV})
            requests[name] = count_requests(counting.call("has_vm", str(uuid.uuid4())).stderr)
        for _ in range(options.rounds):
            for name, info in infos.items():
                answer = info.call("info")
                walls[name].append(answer.seconds * 1000)
                cpus[name].append(answer.cpu_seconds * 1000)
            for name, cpi in cases.items():
                result = cpi.call("has_vm", str(uuid.uuid4()))
                if result.error is not None:
                    raise RuntimeError(result.error["message"])
                walls[name].append(result.seconds * 1000)
                cpus[name].append(result.cpu_seconds * 1000)
    on = statistics.median(walls["has_vm, token cache on"])
    off = statistics.median(walls["has_vm, token cache off"])
    lines = [
        f"Command: `.venv/bin/python -m benchmarks.call_costs --rounds {options.rounds} --write`"
        f" ({time.strftime('%Y-%m-%d')}, local test cloud, interleaved rounds; wall time of the"
        " whole process, request on stdin to exit; CPU: user + system time of the process;"
        " requests counted in one more call at DEBUG level)",
        "",
        "| call | median wall (ms) | min wall (ms) | median CPU (ms) | requests |",
        "|---|---|---|---|---|",
    ]
    for name, values in walls.items():
        counted = requests.get(name, {"total": 0})
        detail = ", ".join(f"{k} {v}" for k, v in counted.items() if k != "total")
        lines.append(
            f"| {name} | {statistics.median(values):.0f} | {min(values):.0f} "
            f"| {statistics.median(cpus[name]):.0f} "
            f"| {counted['total']}{f' ({detail})' if detail else ''} |"
        )
    lines += [
        "",
        f"has_vm with the token cache / without: {on / off:.2f} (goal ≤ 0.5). Rows marked"
        f"{PACKAGED} run the interpreter the job's bin/cpi starts: CPython from the python-3.13"
        " package (no PGO), the bosh_openstack_cpi package's venv; the others this machine's"
        f" dev .venv (Python {platform.python_version()}).",
    ]
    report = "\n".join(lines)
    return publish(TITLE, report, options.write)


if __name__ == "__main__":
    sys.exit(main())
