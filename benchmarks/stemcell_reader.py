"""The stemcell reader's CPU per GiB: the CPI's reader (`tarfile` in stream mode over the
module's own gzip layer), the former reader with its own tar-header walk (loaded from git
history), plain `tarfile.open(..., "r:gz")`, and a lower bound (inflate + SHA-512 only),
side by side in one run with interleaved rounds, each reading in a fresh process.

    .venv/bin/python -m benchmarks.stemcell_reader [--rounds 5] [--size 200MiB] [--write]

Two inputs of the same raw root.img (mixed content): the `image` the project's stemcell
builder writes, and `tar czf` of root.img (GNU tar + gzip -6, how stemcells are packed).
Every reader computes root.img's SHA-512, as the CPI does before it compares Glance's
hash, and the run checks that all readers agree. CPU is the reading process's user +
system time while it reads (its threads included; interpreter start-up excluded); no
upload, so this is the reader alone.
--write replaces the "stemcell reader" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from benchmarks.report import publish
from tools.stemcell_builder import build_stemcell, parse_size

TITLE = "stemcell reader"
MIB = 1 << 20
CHUNK = 1 << 20
# The last commit whose stemcell_archive.py walked tar headers itself (issue 15, item 6).
FORMER_READER_REVISION = "b85b941dd505a169fe84f962e6aba2028a600cff"
FORMER_READER_PATH = "src/bosh_openstack_cpi/stemcell_archive.py"
REPOSITORY = Path(__file__).resolve().parent.parent


# --- the readers (each run in its own process by `--worker`) -------------------------


def _read_with_module(module: ModuleType, image: str) -> str:
    with module.open_root_image(image) as root:
        for _ in root.chunks():
            pass
        return str(root.digest)


def _cpi_reader(image: str) -> str:
    from bosh_openstack_cpi import stemcell_archive

    return _read_with_module(stemcell_archive, image)


def _former_reader(image: str) -> str:
    source = os.environ["FORMER_READER_FILE"]
    spec = importlib.util.spec_from_file_location("former_stemcell_archive", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return _read_with_module(module, image)


def _plain_tarfile(image: str) -> str:
    digest = hashlib.sha512()
    with tarfile.open(image, "r:gz") as tar:
        for member in tar:
            if member.name.lstrip("./") == "root.img":
                data = tar.extractfile(member)
                assert data is not None
                while piece := data.read(CHUNK):
                    digest.update(piece)
        assert tar.fileobj is not None
        while tar.fileobj.read(CHUNK):  # to the end, so that gzip checks its CRC
            pass
    return digest.hexdigest()


def _lower_bound(image: str) -> str:
    """Inflate and hash the whole tar stream: no tar parsing, no thread, no copies."""
    digest = hashlib.sha512()
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with open(image, "rb") as handle:
        while data := handle.read(256 << 10):
            while data:
                digest.update(inflate.decompress(data, CHUNK))
                data = inflate.unconsumed_tail
    return digest.hexdigest()  # of the tar stream, not root.img: not compared


READERS: dict[str, Callable[[str], str]] = {
    "CPI: `tarfile` (stream mode) over the module's gzip layer": _cpi_reader,
    "former CPI: its own tar-header walk": _former_reader,
    'stdlib `tarfile.open(path, "r:gz")`, plain': _plain_tarfile,
    "lower bound: inflate + SHA-512, no tar": _lower_bound,
}
BASELINE = "former CPI: its own tar-header walk"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # the process's threads included
    return usage.ru_utime + usage.ru_stime


def _worker(reader: str, image: str) -> None:
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    digest = READERS[reader](image)
    wall = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "cpu": cpu,
                "wall": wall,
                "rss_mib": usage.ru_maxrss / 1024,
                "digest": digest,
            }
        )
    )


# --- the run --------------------------------------------------------------------------


def _former_reader_file(directory: Path) -> Path:
    source = subprocess.run(
        ["git", "show", f"{FORMER_READER_REVISION}:{FORMER_READER_PATH}"],
        cwd=REPOSITORY,
        check=True,
        capture_output=True,
    ).stdout
    path = directory / "former_stemcell_archive.py"
    path.write_bytes(source)
    return path


def _inputs(directory: Path, size: int) -> dict[str, tuple[Path, int]]:
    built = build_stemcell(directory, "raw", size, content="mixed", keep_root_img=True)
    packed = directory / "image-tar-czf"
    subprocess.run(["tar", "czf", str(packed), "-C", str(directory), "root.img"], check=True)
    return {"builder's image": (Path(built.image), size), "`tar czf` image": (packed, size)}


def _run_once(reader: str, image: Path, former: Path) -> dict[str, float | str]:
    env = dict(os.environ, FORMER_READER_FILE=str(former))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.stemcell_reader", "--worker", reader, str(image)],
        cwd=REPOSITORY,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float | str] = json.loads(done.stdout)
    return result


Results = dict[str, dict[str, list[dict[str, float | str]]]]


def measure(rounds: int, size: int) -> tuple[Results, dict[str, int]]:
    with tempfile.TemporaryDirectory(prefix="stemcell-reader-") as scratch:
        directory = Path(scratch)
        former = _former_reader_file(directory)
        inputs = _inputs(directory, size)
        results: Results = {name: {reader: [] for reader in READERS} for name in inputs}
        compressed = {name: path.stat().st_size for name, (path, _) in inputs.items()}
        for _ in range(rounds):
            for name, (path, _) in inputs.items():
                for reader in READERS:
                    results[name][reader].append(_run_once(reader, path, former))
        _check_digests(results)
    return results, compressed


def _check_digests(results: Results) -> None:
    for name, by_reader in results.items():
        digests = {
            str(run["digest"])
            for reader, runs in by_reader.items()
            if not reader.startswith("lower bound")
            for run in runs
        }
        if len(digests) != 1:
            raise SystemExit(f"the readers disagree on root.img's SHA-512 for {name}")


def report(results: Results, compressed: dict[str, int], rounds: int, size: int) -> str:
    lines = [
        f"Command: `.venv/bin/python -m benchmarks.stemcell_reader --rounds {rounds} "
        f"--size {size // MIB}MiB --write`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}. root.img: {size // MIB} MiB "
        "raw, mixed content; each reader in a fresh process, rounds interleaved; medians. "
        f"The former reader is `{FORMER_READER_PATH}` at {FORMER_READER_REVISION[:7]}.",
        "",
        "| input | reader | CPU s/GiB | MiB/s | peak RSS (MiB) | CPU ratio to the former |",
        "|---|---|---|---|---|---|",
    ]
    gib = size / (1 << 30)
    for name, by_reader in results.items():
        label = f"{name} ({compressed[name] // MIB} MiB)"
        baseline = statistics.median(float(run["cpu"]) for run in by_reader[BASELINE])
        for reader, runs in by_reader.items():
            cpu = statistics.median(float(run["cpu"]) for run in runs)
            wall = statistics.median(float(run["wall"]) for run in runs)
            rss = statistics.median(float(run["rss_mib"]) for run in runs)
            lines.append(
                f"| {label} | {reader} | {cpu / gib:.2f} | {size / MIB / wall:.0f} "
                f"| {rss:.0f} | {cpu / baseline:.2f} |"
            )
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", default="200MiB")
    parser.add_argument("--write", action="store_true")
    options = parser.parse_args()
    size = parse_size(options.size)
    results, compressed = measure(options.rounds, size)
    section = report(results, compressed, options.rounds, size)
    return publish(TITLE, section, options.write)


if __name__ == "__main__":
    sys.exit(main())
