"""The release's packages compiled as BOSH compiles them, for tests that run the CPI the
way a director VM or `bosh create-env` does.

    from tests.release.packaged import build_packages_root
    packages = build_packages_root(tmp_path)   # <tmp>/packages/{python-3.13,bosh_openstack_cpi}
    packages / "bosh_openstack_cpi" / "venv" / "bin" / "python"

Each package's `packaging` runs under bash with BOSH's variables: BOSH_COMPILE_TARGET holds
the package's files as bosh-cli lays them out (src/ and blobs/ files at their relative
paths, the packaging script), BOSH_INSTALL_TARGET is BOSH_PACKAGES_DIR/<name>, its
dependencies already compiled there. Compiling CPython takes minutes, so the python-3.13
package is compiled once per machine into a cache under /var/tmp keyed by its blob and
packaging files, and copied from there.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from tools.blobs import REPO
from tools.release_check import glob_regex, package_files

PYTHON_PACKAGE = "python-3.13"
CPI_PACKAGE = "bosh_openstack_cpi"
PACKAGE_CACHE = Path(
    os.environ.get("BOSH_CPI_PACKAGE_CACHE", "/var/tmp/bosh-openstack-cpi-packages")
)
# What a compilation VM's agent gives a packaging script (plus HOME and TMPDIR).
COMPILE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class PackagingFailed(RuntimeError):
    pass


def package_spec(name: str, release: Path = REPO) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((release / "packages" / name / "spec").read_text())
    return spec


def lay_out_compile_target(name: str, target: Path, release: Path = REPO) -> None:
    spec = package_spec(name, release)
    files = package_files(release, spec)
    for pattern in spec.get("files") or []:
        if not any(glob_regex(pattern).match(relative) for relative in files):
            raise PackagingFailed(f"{name}: nothing matches {pattern!r}: run scripts/release")
    for relative, source in files.items():
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
    shutil.copyfile(release / "packages" / name / "packaging", target / "packaging")


def packaging_environment(name: str, compile_target: Path, packages_dir: Path) -> dict[str, str]:
    env = {
        "PATH": COMPILE_PATH,
        "HOME": os.environ.get("HOME", "/root"),
        "BOSH_COMPILE_TARGET": str(compile_target),
        "BOSH_INSTALL_TARGET": str(packages_dir / name),
        "BOSH_PACKAGE_NAME": name,
        "BOSH_PACKAGES_DIR": str(packages_dir),
    }
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    return env


def run_packaging(name: str, packages_dir: Path, work: Path, release: Path = REPO) -> float:
    """Compile one package into packages_dir/<name>; returns the seconds it took."""
    compile_target = work / name
    shutil.rmtree(compile_target, ignore_errors=True)
    compile_target.mkdir(parents=True)
    lay_out_compile_target(name, compile_target, release)
    (packages_dir / name).mkdir(parents=True, exist_ok=True)
    log = work / f"{name}.log"
    started = time.monotonic()
    with log.open("wb") as output:
        finished = subprocess.run(
            ["bash", "-x", "packaging"],  # as bosh-cli runs it
            cwd=compile_target,
            env=packaging_environment(name, compile_target, packages_dir),
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if finished.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise PackagingFailed(f"{name}: packaging exited {finished.returncode}:\n{tail}")
    return time.monotonic() - started


def python_cache_key(release: Path = REPO) -> str:
    """Changes with the tarball or any file that decides how it is compiled."""
    digest = hashlib.sha256()
    for relative, path in sorted(package_files(release, package_spec(PYTHON_PACKAGE)).items()):
        digest.update(relative.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    for part in ("spec", "packaging"):
        digest.update((release / "packages" / PYTHON_PACKAGE / part).read_bytes())
    return digest.hexdigest()[:16]


def compiled_python(cache: Path = PACKAGE_CACHE) -> Path:
    """packages/python-3.13 from the machine's cache, compiled first if it is not there."""
    entry = cache / python_cache_key()
    done = entry / "compiled.json"
    entry.mkdir(parents=True, exist_ok=True)
    with (cache / f"{entry.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be compiling it
        if not done.exists():
            shutil.rmtree(entry / "packages", ignore_errors=True)
            with tempfile.TemporaryDirectory(prefix="compile-", dir=entry) as work:
                seconds = run_packaging(PYTHON_PACKAGE, entry / "packages", Path(work))
            done.write_text(json.dumps({"seconds": round(seconds, 1)}))
    return entry / "packages" / PYTHON_PACKAGE


def cold_compile_seconds(cache: Path = PACKAGE_CACHE) -> float:
    """How long the cached python-3.13 took to compile."""
    seconds: float = json.loads((cache / python_cache_key() / "compiled.json").read_text())[
        "seconds"
    ]
    return seconds


def build_packages_root(directory: Path) -> Path:
    """directory/packages with python-3.13 (copied from the cache, as BOSH installs a
    compiled package) and bosh_openstack_cpi compiled from this checkout."""
    packages = directory / "packages"
    packages.mkdir(parents=True, exist_ok=True)
    shutil.copytree(compiled_python(), packages / PYTHON_PACKAGE, symlinks=True)
    run_packaging(CPI_PACKAGE, packages, directory / "compile")
    return packages


def venv_python(packages: Path) -> Path:
    """The interpreter the job's bin/cpi starts."""
    return packages / CPI_PACKAGE / "venv" / "bin" / "python"


if __name__ == "__main__":
    # python -m tests.release.packaged DIR: build DIR/packages, print the CPI's interpreter
    import sys

    print(venv_python(build_packages_root(Path(sys.argv[1]))))
