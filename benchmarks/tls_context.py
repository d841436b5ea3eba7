"""What a call pays to build its TLS context (every call that speaks HTTPS builds one),
side by side in one interleaved run: the CPI's default trust (the OS store's hashed
directory, read lazily, plus certifi's bundle), the same with the OS store's bundle file
parsed eagerly (what `ssl.create_default_context()` does), certifi alone (requests'
default), and verification off.

    .venv/bin/python -m benchmarks.tls_context [--rounds N] [--write]

--write replaces the "TLS context per call" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import ssl
import statistics
import sys
import time
from collections.abc import Callable

import certifi

from benchmarks.report import publish
from bosh_openstack_cpi.openstack import tls

TITLE = "TLS context per call"


def _eager_os_store_and_certifi() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    return context


CASES: dict[str, Callable[[], ssl.SSLContext]] = {
    "CPI default: OS store (lazy directory) + certifi": lambda: tls.context(tls.TlsSettings()),
    "OS store bundle parsed eagerly + certifi": _eager_os_store_and_certifi,
    "certifi alone (requests' default)": lambda: ssl.create_default_context(cafile=certifi.where()),
    "CPI, ssl_verify_peer: false": lambda: tls.context(tls.TlsSettings(verify_peer=False)),
}


# The director starts the CPI with PATH and TMPDIR only: OpenSSL's SSL_CERT_FILE and
# SSL_CERT_DIR (set on some workstations) are not there. Measured as the director runs it.
DIRECTOR_UNSET = ("SSL_CERT_FILE", "SSL_CERT_DIR")


def measure(rounds: int) -> dict[str, list[float]]:
    for name in DIRECTOR_UNSET:
        os.environ.pop(name, None)
    timings: dict[str, list[float]] = {name: [] for name in CASES}
    for build in CASES.values():  # warm-up: page cache
        build()
    for _ in range(rounds):
        for name, build in CASES.items():
            started = time.perf_counter()
            build()
            timings[name].append((time.perf_counter() - started) * 1000)
    return timings


def report(timings: dict[str, list[float]], rounds: int) -> str:
    baseline = statistics.median(timings["OS store bundle parsed eagerly + certifi"])
    lines = [
        f"Command: `.venv/bin/python -m benchmarks.tls_context --rounds {rounds} --write`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f", {time.strftime('%Y-%m-%d')}. Interleaved rounds, one warm-up; OS store "
        f"`{ssl.get_default_verify_paths().capath}`; no SSL_CERT_FILE/SSL_CERT_DIR, as the "
        "director runs the CPI (with SSL_CERT_FILE set the CPI parses that file too, as "
        "OpenSSL would).",
        "",
        "| context | median (ms) | min (ms) | max (ms) | ratio to the eager store |",
        "|---|---|---|---|---|",
    ]
    for name, values in timings.items():
        median = statistics.median(values)
        lines.append(
            f"| {name} | {median:.1f} | {min(values):.1f} | {max(values):.1f} "
            f"| {median / baseline:.2f} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--write", action="store_true")
    options = parser.parse_args()
    section = report(measure(options.rounds), options.rounds)
    return publish(TITLE, section, options.write)


if __name__ == "__main__":
    sys.exit(main())
