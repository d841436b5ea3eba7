"""How soon after the CPI process starts a SIGTERM gets an answer.

The director (or an operator) may send SIGTERM at any moment. Once `__main__` has put in
its handlers, every signal is answered; before that, the interpreter is still starting
and the signal's default action ends the process with no answer. This measures that
window: a CPI process is started with its stdin held open (as when the director is still
writing), SIGTERM is sent after a delay, and the run counts as answered when stdout holds
one JSON response and the exit status is 0.

    .venv/bin/python -m benchmarks.signal_window [--rounds N] [--write]

--write replaces the "signal window at start-up" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

from benchmarks.report import publish
from tools.cpi_process import director_environment

TITLE = "signal window at start-up"
DELAYS_MS = (0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 25, 30, 40, 60)
COMMAND = [sys.executable, "-I", "-m", "bosh_openstack_cpi", "/nonexistent/cpi.json"]


def answered_after(delay_ms: float) -> bool:
    """One process: SIGTERM `delay_ms` after it was spawned; True when it answered."""
    process = subprocess.Popen(
        COMMAND,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=director_environment(),
    )
    deadline = time.perf_counter() + delay_ms / 1000
    while time.perf_counter() < deadline:
        pass  # a busy wait: sleep() would round small delays up
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=30)
    try:
        json.loads(stdout)
    except ValueError:
        return False
    return process.returncode == 0


def interpreter_start_ms(rounds: int) -> float:
    walls = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)
        walls.append((time.perf_counter() - started) * 1000)
    return statistics.median(walls)


def measure(rounds: int) -> dict[float, int]:
    """Delay (ms) -> how many of `rounds` runs answered; delays interleaved per round."""
    answered: dict[float, int] = dict.fromkeys(DELAYS_MS, 0)
    for _ in range(rounds):
        for delay in DELAYS_MS:
            answered[delay] += answered_after(delay)
    return answered


def window_ms(answered: dict[float, int], rounds: int) -> float | None:
    """The first delay from which every run at it and at every later delay answered."""
    always = [d for d in DELAYS_MS if all(answered[e] == rounds for e in DELAYS_MS if e >= d)]
    return always[0] if always else None


def report(answered: dict[float, int], rounds: int, bare_ms: float) -> str:
    window = window_ms(answered, rounds)
    lines = [
        f"Command: `.venv/bin/python -m benchmarks.signal_window --rounds {rounds} --write`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f", {time.strftime('%Y-%m-%d')}. Delays interleaved in each round.",
        "",
        "| SIGTERM after spawn (ms) | " + " | ".join(f"{d:g}" for d in DELAYS_MS) + " |",
        "|---|" + "---|" * len(DELAYS_MS),
        f"| answered (of {rounds}) | " + " | ".join(str(answered[d]) for d in DELAYS_MS) + " |",
        "",
        f"Bare interpreter start and exit (`python -I -c pass`, median): {bare_ms:.1f} ms. "
        + (
            f"Every run answered from {window:g} ms after spawn on."
            if window is not None
            else "Some run went unanswered even at the longest delay."
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--write", action="store_true")
    options = parser.parse_args()
    answered = measure(options.rounds)
    section = report(answered, options.rounds, interpreter_start_ms(options.rounds))
    return publish(TITLE, section, options.write)


if __name__ == "__main__":
    sys.exit(main())
