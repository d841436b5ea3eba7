"""`info` round trip, process start to exit, as the director pays it before nearly every
call; measured side by side with a bare interpreter start in one interleaved run, with
the dev .venv and with the BOSH packages (python-3.13 and bosh_openstack_cpi compiled as
BOSH compiles them, tests/release/packaged.py; CPython compiles once per machine).

    .venv/bin/python -m benchmarks.info_roundtrip [--rounds N] [--write]

--write replaces the "info round trip" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bosh_packages import packaged_cpi_python
from benchmarks.report import publish
from tools.cpi_process import director_environment

REQUEST = json.dumps({"method": "info", "arguments": [], "context": {"director_uuid": "b"}})
TITLE = "info round trip"
DEV = "dev .venv"
PACKAGED = "BOSH package"


def _run_once(command: list[str], stdin: bytes) -> tuple[float, float]:
    """Wall milliseconds and peak RSS (MiB) of one process, start to exit."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=director_environment(),
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(stdin)
    process.stdin.close()
    process.stdout.read()
    process.stdout.close()
    _, _, usage = os.wait4(process.pid, 0)
    process.returncode = 0  # reaped here; keep Popen from waiting again
    return (time.perf_counter() - started) * 1000, usage.ru_maxrss / 1024


def _cases(label: str, python: str) -> dict[str, tuple[list[str], bytes]]:
    return {
        f"python -I -c pass ({label})": ([python, "-I", "-c", "pass"], b""),
        f"bosh-openstack-cpi info ({label})": (
            [python, "-I", "-m", "bosh_openstack_cpi", "/nonexistent/cpi.json"],
            REQUEST.encode(),
        ),
    }


def _measure(rounds: int, packaged_python: Path) -> dict[str, list[float]]:
    cases = {
        **_cases(DEV, sys.executable),
        **_cases(PACKAGED, str(packaged_python)),
    }
    walls: dict[str, list[float]] = {name: [] for name in cases}
    rss: dict[str, list[float]] = {name: [] for name in cases}
    for command, stdin in cases.values():  # warm-up: page cache, pyc
        _run_once(command, stdin)
    for _ in range(rounds):
        for name, (command, stdin) in cases.items():
            wall, peak = _run_once(command, stdin)
            walls[name].append(wall)
            rss[name].append(peak)
    return {**walls, **{f"{name} RSS": values for name, values in rss.items()}}


def _report(figures: dict[str, list[float]], rounds: int, packaged_version: str) -> str:
    walls = {name: values for name, values in figures.items() if not name.endswith(" RSS")}
    lines = [
        f"Command: `.venv/bin/python -m benchmarks.info_roundtrip --rounds {rounds} --write`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f", {time.strftime('%Y-%m-%d')}. Interleaved rounds, one warm-up.",
        "",
        f"{DEV}: {platform.python_implementation()} {platform.python_version()} of this "
        f"machine; {PACKAGED}: CPython {packaged_version} compiled by the python-3.13 "
        "package's packaging script, in the venv of the bosh_openstack_cpi package (the "
        "interpreter bin/cpi starts).",
        "",
        "| case | median (ms) | min (ms) | max (ms) | ratio to bare interpreter | peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for name, values in walls.items():
        label = name[name.index("(") :]
        baseline = statistics.median(walls[f"python -I -c pass {label}"])
        median = statistics.median(values)
        lines.append(
            f"| {name} | {median:.1f} | {min(values):.1f} | {max(values):.1f} "
            f"| {median / baseline:.2f} | {statistics.median(figures[name + ' RSS']):.1f} |"
        )
    lines += ["", "Target: `info` ≤ 40 ms on this machine.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--write", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bosh-cpi-bench-") as scratch:
        python = packaged_cpi_python(Path(scratch))
        version = subprocess.run(
            [str(python), "-I", "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        section = _report(_measure(options.rounds, python), options.rounds, version)
    return publish(TITLE, section, options.write)


if __name__ == "__main__":
    sys.exit(main())
