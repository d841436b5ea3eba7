"""Put every blob config/blobs.yml names into blobs/, verified, from a content-addressed
cache under /var/tmp (repeat runs need no network).

    .venv/bin/python -m tools.release_blobs

Where a missing blob comes from:
- `wheels/*.whl`: PyPI, with pip (`--require-hashes` on src/requirements/runtime.txt);
- `python-3.X/Python-3.X.Y.tar.xz`: Debian's source package of CPython, whose upstream
  `.orig` tarball is python.org's tarball byte for byte. apt fetches it with a private
  sources list and state directory (the system's apt configuration is not touched);
  without apt-get, python.org itself.
Whatever the source, the file must have blobs.yml's size and SHA-256, or it is refused.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tools.blobs import (
    BLOBS_DIR,
    BLOBS_YML,
    CACHE,
    Blob,
    file_matches,
    load_blobs,
    store_in_cache,
)
from tools.runtime_lock import LOCK, pip_environment, pure_wheel_options

APT_SOURCES = Path("/etc/apt")
# The suite whose python3.X source packages carry the CPython versions we pin
# (trixie: python3.13).
DEBIAN_SUITE = os.environ.get("BOSH_CPI_DEBIAN_SUITE", "trixie")
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
CPYTHON_TARBALL = re.compile(
    r"^python-(?P<series>3\.\d+)/Python-(?P<version>3\.\d+\.\d+)\.tar\.xz$"
)

Fetcher = Callable[[list[Blob], Path], list[Path]]


def cache_path(blob: Blob, cache: Path = CACHE) -> Path:
    return cache / "sha256" / blob.sha256


def place(blob: Blob, source: Path, blobs_dir: Path) -> None:
    destination = blobs_dir / blob.path
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.unlink(missing_ok=True)
    try:
        os.link(source, destination)  # the cache and blobs/ share a disk: no copy
    except OSError:
        shutil.copyfile(source, destination)


def fetch_wheels(blobs: list[Blob], scratch: Path) -> list[Path]:
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--require-hashes"]
    command += [*pure_wheel_options(), "-d", str(scratch), "-r", str(LOCK)]
    subprocess.run(command, check=True, env=pip_environment())
    return sorted(scratch.glob("*.whl"))


def _apt_options(state: Path) -> list[str]:
    return [
        f"-o=Dir::Etc::SourceList={state / 'sources.list'}",
        "-o=Dir::Etc::SourceParts=/dev/null",
        f"-o=Dir::State::Lists={state / 'lists'}",
        "-o=Debug::NoLocking=1",  # private state: no lock shared with the system's apt
    ]


def debian_mirror(apt: Path = APT_SOURCES) -> str:
    """The Debian archive the machine's own apt sources use (BOSH_CPI_DEBIAN_MIRROR wins):
    the first `deb` URI of sources.list or of a sources.list.d/*.sources file that is not
    the security archive."""
    chosen = os.environ.get("BOSH_CPI_DEBIAN_MIRROR")
    if chosen:
        return chosen
    for uri in _apt_uris(apt):
        if not uri.rstrip("/").endswith("-security"):
            return uri
    raise RuntimeError(
        f"no Debian archive found in {apt}/sources.list*: set BOSH_CPI_DEBIAN_MIRROR"
    )


def _apt_uris(apt: Path) -> list[str]:
    uris = []
    classic = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    for path in classic:
        for line in path.read_text().splitlines() if path.is_file() else []:
            words = [w for w in line.split() if not w.startswith("[")]
            if len(words) >= 2 and words[0] == "deb":
                uris.append(words[1])
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        for line in path.read_text().splitlines():
            if line.startswith("URIs:"):
                uris.extend(line.removeprefix("URIs:").split())
    return uris


def fetch_cpython_from_debian(version: str, scratch: Path) -> Path:
    series = version.rsplit(".", 1)[0]
    state = CACHE / "apt"
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "sources.list").write_text(
        f"deb-src [signed-by={DEBIAN_KEYRING}] {debian_mirror()} {DEBIAN_SUITE} main\n"
    )
    options = _apt_options(state)
    scratch.chmod(0o755)  # apt's download user (_apt) must be able to write there
    subprocess.run(["apt-get", "-q", *options, "update"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "-q", *options, "source", "--download-only", f"python{series}"],
        check=True,
        cwd=scratch,
        stdout=subprocess.DEVNULL,
    )
    orig = scratch / f"python{series}_{version}.orig.tar.xz"
    if not orig.exists():
        found = ", ".join(p.name for p in scratch.glob("*.orig.tar.*")) or "nothing"
        raise RuntimeError(
            f"Debian {DEBIAN_SUITE} no longer has CPython {version} (it has: {found}); "
            f"take Python-{version}.tar.xz from python.org instead (docs/bosh-release.md)"
        )
    return orig


def fetch_cpython_from_python_org(version: str, scratch: Path) -> Path:
    url = f"https://www.python.org/ftp/python/{version}/Python-{version}.tar.xz"
    target = scratch / f"Python-{version}.tar.xz"
    with urllib.request.urlopen(url, timeout=60) as answer, target.open("wb") as out:
        shutil.copyfileobj(answer, out)
    return target


def fetch_cpython(blobs: list[Blob], scratch: Path) -> list[Path]:
    files = []
    for blob in blobs:
        match = CPYTHON_TARBALL.match(blob.path)
        if match is None:
            raise RuntimeError(f"{blob.path}: not a CPython tarball's path")
        if shutil.which("apt-get") and Path(DEBIAN_KEYRING).exists():
            files.append(fetch_cpython_from_debian(match["version"], scratch))
        else:
            files.append(fetch_cpython_from_python_org(match["version"], scratch))
    return files


def fetcher_for(blob: Blob) -> Fetcher:
    if blob.path.startswith("wheels/") and blob.path.endswith(".whl"):
        return fetch_wheels
    if CPYTHON_TARBALL.match(blob.path):
        return fetch_cpython
    raise RuntimeError(
        f"{blob.path}: no known place to download it from; put the file at blobs/{blob.path}"
    )


def fill_cache(missing: list[Blob], cache: Path, fetcher_of: Callable[[Blob], Fetcher]) -> None:
    """Download the missing blobs, one fetcher call per source, and keep only files whose
    checksum is one config/blobs.yml expects."""
    by_fetcher: dict[Fetcher, list[Blob]] = {}
    for blob in missing:
        by_fetcher.setdefault(fetcher_of(blob), []).append(blob)
    for fetcher, wanted in by_fetcher.items():
        with tempfile.TemporaryDirectory(prefix="blobs-", dir=cache) as scratch:
            for path in fetcher(wanted, Path(scratch)):
                for blob in wanted:
                    if file_matches(path, blob):
                        store_in_cache(path, cache)


def fetch_blobs(
    blobs: dict[str, Blob],
    blobs_dir: Path = BLOBS_DIR,
    cache: Path = CACHE,
    fetcher_of: Callable[[Blob], Fetcher] = fetcher_for,
) -> list[str]:
    """Make blobs/ hold every blob; returns what was done, one line per blob placed."""
    cache.mkdir(parents=True, exist_ok=True)
    todo = [b for b in blobs.values() if not file_matches(blobs_dir / b.path, b)]
    missing = [b for b in todo if not file_matches(cache_path(b, cache), b)]
    if missing:
        fill_cache(missing, cache, fetcher_of)
    done = []
    for blob in todo:
        cached = cache_path(blob, cache)
        if not file_matches(cached, blob):
            raise RuntimeError(
                f"{blob.path}: no file with size {blob.size} and {blob.sha} was found "
                "(a download returned another file?)"
            )
        place(blob, cached, blobs_dir)
        done.append(f"{blob.path}: {'downloaded' if blob in missing else 'from the cache'}")
    return done


def main() -> int:
    done = fetch_blobs(load_blobs(BLOBS_YML))
    for line in done:
        print(line)
    print(f"blobs/: all {len(load_blobs(BLOBS_YML))} blobs of config/blobs.yml present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
