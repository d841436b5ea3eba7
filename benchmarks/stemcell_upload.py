"""Stemcell upload: the CPI's create_stemcell (decompressing the stemcell's `image` on the
fly) against `openstack image create --file` of the same, already extracted root.img, on
the same cloud, in one run with interleaved rounds.

    .venv/bin/python -m benchmarks.stemcell_upload [--rounds 3] [--size 1GiB] [--write]

Both run as processes started the same way; throughput is root.img's size divided by the
process's wall time (start to exit, authentication included). Peak RSS and the bytes each
process wrote to disk come from wait4 in a tiny wrapper process (a child spawned from a
large parent would inherit the parent's RSS as its peak). Every uploaded image is deleted.
--write replaces the "stemcell upload" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.report import publish
from tools.cloud_description import cpi_document, description_path, load_description, write_cpi_json
from tools.cpi_process import CpiProcess, cpi_command, director_environment
from tools.stemcell_builder import BuiltStemcell, build_stemcell, parse_size

OPENSTACK_CLI = "/usr/bin/openstack"
SECTION = "stemcell upload"
MIB = 1 << 20

_WRAPPER = """
import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\nrusage {usage.ru_maxrss} {usage.ru_oublock}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass
class Run:
    seconds: float
    peak_rss_mib: float
    written_mib: float
    image_id: str
    log: str


def _measured(command: list[str], env: dict[str, str], stdin: bytes = b"") -> tuple[str, Run]:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-I", "-c", _WRAPPER, *command],
        input=stdin,
        capture_output=True,
        env=env,
        check=False,
        timeout=1800,
    )
    seconds = time.perf_counter() - started
    stderr = completed.stderr.decode("utf-8", "replace")
    match = re.search(r"rusage (\d+) (\d+)\s*$", stderr)
    if completed.returncode != 0 or match is None:
        raise RuntimeError(f"{command[0]} failed ({completed.returncode}): {stderr[-2000:]}")
    peak_kib, blocks = int(match.group(1)), int(match.group(2))
    run = Run(seconds, peak_kib / 1024, blocks * 512 / MIB, "", stderr)
    return completed.stdout.decode(), run


def _cpi_upload(cpi: CpiProcess, stemcell: BuiltStemcell) -> Run:
    properties = {**stemcell.cloud_properties, "version": f"bench-{uuid.uuid4().hex[:8]}"}
    request = json.dumps(cpi.request("create_stemcell", str(stemcell.image), properties))
    stdout, run = _measured(cpi.command, cpi.env, request.encode())
    response = json.loads(stdout)
    if response["error"]:
        raise RuntimeError(f"create_stemcell failed: {response['error']['message']}")
    run.image_id = response["result"]
    return run


def _cli_upload(root_img: Path, env: dict[str, str]) -> Run:
    command = [
        OPENSTACK_CLI,
        "image",
        "create",
        "--file",
        str(root_img),
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
        "--private",
        "-f",
        "value",
        "-c",
        "id",
        f"bench-cli-{uuid.uuid4().hex[:8]}",
    ]
    stdout, run = _measured(command, env)
    run.image_id = stdout.strip()
    return run


def _cli_environment(state_dir: Path) -> dict[str, str]:
    """Debian's CLI as user bosh of the test cloud; no OS_* variable but these two."""
    env = {k: v for k, v in director_environment().items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(state_dir / "clouds.yaml")
    env["OS_CLOUD"] = "testcloud-bosh"
    return env


def _delete(cpi: CpiProcess, image_id: str) -> None:
    if image_id:
        result = cpi.call("delete_stemcell", image_id)
        if result.error:
            print(f"warning: could not delete image {image_id}: {result.error['message']}")


def _uploaded_rate(log: str) -> float | None:
    """The CPI's own figure for the upload phase alone (from its log)."""
    match = re.search(r"Uploaded [\d.]+ MiB in [\d.]+ s \((\d+) MiB/s\)", log)
    return float(match.group(1)) if match else None


def measure(rounds: int, size: int, content: str) -> dict[str, Any]:
    cloud = load_description()
    work = Path(tempfile.mkdtemp(prefix="bench-stemcell-", dir="/var/tmp"))
    cpi = CpiProcess(
        cpi_command(write_cpi_json(work, cpi_document(cloud))),
        director_uuid=f"bench-{uuid.uuid4()}",
    )
    stemcell = build_stemcell(work / "stemcell", "raw", size, content=content, keep_root_img=True)
    image_size = stemcell.image.stat().st_size
    cli_env = _cli_environment(description_path().parent)
    runs: dict[str, list[Run]] = {"cpi": [], "cli": []}
    load_before = os.getloadavg()[0]
    try:
        for round_number in range(rounds + 1):  # round 0 warms caches and is not counted
            order = ["cpi", "cli"] if round_number % 2 else ["cli", "cpi"]
            for who in order:
                if who == "cpi":
                    run = _cpi_upload(cpi, stemcell)
                else:
                    run = _cli_upload(stemcell.root_img, cli_env)
                _delete(cpi, run.image_id)
                if round_number:
                    runs[who].append(run)
                print(
                    f"round {round_number} {who}: {run.seconds:.1f} s, "
                    f"{size / MIB / run.seconds:.0f} MiB/s, peak RSS {run.peak_rss_mib:.0f} MiB"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "runs": runs,
        "size": size,
        "image_size": image_size,
        "content": content,
        "load": (load_before, os.getloadavg()[0]),
    }


def report(figures: dict[str, Any], rounds: int) -> str:
    size: int = figures["size"]
    runs: dict[str, list[Run]] = figures["runs"]

    def median(who: str, value: str) -> float:
        return statistics.median(float(getattr(run, value)) for run in runs[who])

    def rate(who: str) -> float:
        return statistics.median(size / MIB / run.seconds for run in runs[who])

    upload_rates = [r for r in (_uploaded_rate(run.log) for run in runs["cpi"]) if r]
    ratio = rate("cpi") / rate("cli")
    lines = [
        f"Command: `.venv/bin/python -m benchmarks.stemcell_upload --rounds {rounds} "
        f"--size {size // MIB}MiB --write`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}; the local test cloud "
        "(Glance with the file store, on the same machine), shared with other work "
        f"(1-minute load average {figures['load'][0]:.1f} before, {figures['load'][1]:.1f} "
        f"after). Medians of {rounds} interleaved rounds after a warm-up round.",
        "",
        f"root.img: {size / MIB:.0f} MiB raw ({figures['content']} content); the stemcell's "
        f"`image` (gzipped tar): {figures['image_size'] / MIB:.0f} MiB. The CPI reads the "
        "`image` and decompresses it while uploading; the CLI uploads the extracted root.img.",
        "",
        "| upload | wall (s) | throughput (MiB/s) | peak RSS (MiB) | written to disk (MiB) |",
        "|---|---|---|---|---|",
    ]
    for who, label in (
        ("cpi", "CPI `create_stemcell` (image → Glance)"),
        ("cli", "`openstack image create --file root.img`"),
    ):
        lines.append(
            f"| {label} | {median(who, 'seconds'):.1f} | {rate(who):.0f} | "
            f"{median(who, 'peak_rss_mib'):.0f} | {median(who, 'written_mib'):.0f} |"
        )
    lines += [
        "",
        f"Throughput ratio CPI / CLI: **{ratio:.2f}x** (goal ≥ 0.95x). CPI peak RSS "
        f"{median('cpi', 'peak_rss_mib'):.0f} MiB (goal < 80 MiB); nothing extracted to disk.",
    ]
    if upload_rates:
        lines.append(
            f"The CPI's upload phase alone (its log, from the first to the last byte sent): "
            f"{statistics.median(upload_rates):.0f} MiB/s."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=parse_size, default=1024 * MIB)
    parser.add_argument("--content", choices=("zeros", "mixed"), default="mixed")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args(argv)
    if not os.access(OPENSTACK_CLI, os.X_OK):
        print(f"{OPENSTACK_CLI} is not installed (the test cloud installs it)", file=sys.stderr)
        return 1
    figures = measure(args.rounds, args.size, args.content)
    body = report(figures, args.rounds)
    return publish(SECTION, body, args.write)


if __name__ == "__main__":
    raise SystemExit(main())
