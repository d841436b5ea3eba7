"""`info` round trip, process start to exit, as the director pays it before nearly every
call; measured side by side with a bare interpreter start in one interleaved run.

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
import time

from benchmarks.report import write_section
from tools.cpi_process import director_environment

REQUEST = json.dumps({"method": "info", "arguments": [], "context": {"director_uuid": "b"}})
TITLE = "info round trip"


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


def _measure(rounds: int) -> dict[str, list[float]]:
    cases = {
        "python -I -c pass": ([sys.executable, "-I", "-c", "pass"], b""),
        "bosh-openstack-cpi info": (
            [sys.executable, "-I", "-m", "bosh_openstack_cpi", "/nonexistent/cpi.json"],
            REQUEST.encode(),
        ),
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


def _report(figures: dict[str, list[float]], rounds: int) -> str:
    walls = {name: values for name, values in figures.items() if not name.endswith(" RSS")}
    baseline = statistics.median(walls["python -I -c pass"])
    lines = [
        f"Command: `.venv/bin/python -m benchmarks.info_roundtrip --rounds {rounds} --write`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f", {time.strftime('%Y-%m-%d')}. Interleaved rounds, one warm-up.",
        "",
        "| case | median (ms) | min (ms) | max (ms) | ratio to bare interpreter | peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for name, values in walls.items():
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
    section = _report(_measure(options.rounds), options.rounds)
    print(section)
    if options.write:
        write_section(TITLE, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
