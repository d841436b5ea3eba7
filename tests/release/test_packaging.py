"""The packages compiled as BOSH compiles them (tests/release/packaged.py), run as the
job's bin/cpi runs them: no arguments beyond the config paths, an empty environment."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from tests.release.packaged import (
    CPI_PACKAGE,
    PYTHON_PACKAGE,
    compiled_python,
    package_spec,
    run_packaging,
    venv_python,
)
from tools.blobs import REPO
from tools.release_check import package_files
from tools.runtime_lock import read_lock

INFO = json.dumps({"method": "info", "arguments": [], "context": {"director_uuid": "d"}})


def run_packaged(packages_root: Path, *arguments: str, stdin: str = "") -> str:
    finished = subprocess.run(
        [str(venv_python(packages_root)), "-I", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        env={},
        check=True,
    )
    return finished.stdout


def test_info_through_the_packaged_runtime_with_an_empty_environment(
    packages_root: Path,
) -> None:
    stdout = run_packaged(
        packages_root, "-m", "bosh_openstack_cpi", "/nonexistent/cpi.json", stdin=INFO
    )
    response = json.loads(stdout)
    assert response["error"] is None
    assert response["result"]["api_version"] == 3


def test_the_runtime_looks_only_inside_the_packages_dir(packages_root: Path) -> None:
    probe = (
        "import json, sys, sysconfig; print(json.dumps({'prefix': sys.prefix, "
        "'base_prefix': sys.base_prefix, 'path': sys.path, "
        "'stdlib': sysconfig.get_path('stdlib')}))"
    )
    seen: dict[str, Any] = json.loads(run_packaged(packages_root, "-c", probe))
    root = str(packages_root)
    assert seen["prefix"] == str(packages_root / CPI_PACKAGE / "venv")
    assert seen["base_prefix"] == str(packages_root / PYTHON_PACKAGE)
    assert seen["stdlib"].startswith(root)
    assert all(entry.startswith(root) for entry in seen["path"]), seen["path"]
    home = dict(
        line.split(" = ", 1)
        for line in (packages_root / CPI_PACKAGE / "venv/pyvenv.cfg").read_text().splitlines()
    )["home"]
    assert home == str(packages_root / PYTHON_PACKAGE / "bin")


def test_no_link_or_script_points_outside_the_packages_dir(packages_root: Path) -> None:
    root = str(packages_root)
    for path in (packages_root / CPI_PACKAGE).rglob("*"):
        if path.is_symlink():
            target = os.path.join(path.parent, os.readlink(path))
            assert os.path.normpath(target).startswith(root), (path, target)
        elif path.is_file() and path.parent.name == "bin":
            first_line = path.read_bytes().split(b"\n", 1)[0]
            if first_line.startswith(b"#!"):
                assert first_line[2:].decode().startswith(root), (path, first_line)


def test_nothing_is_compiled_or_written_at_run_time(packages_root: Path) -> None:
    def snapshot() -> dict[str, int]:
        return {str(p): p.stat().st_mtime_ns for p in (packages_root / CPI_PACKAGE).rglob("*")}

    before = snapshot()
    run_packaged(
        packages_root,
        "-c",
        "import pkgutil, importlib, bosh_openstack_cpi, keystoneauth1.session, requests\n"
        "for m in pkgutil.walk_packages(bosh_openstack_cpi.__path__, 'bosh_openstack_cpi.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n",
    )
    assert snapshot() == before


def test_the_venv_holds_exactly_the_locked_distributions(packages_root: Path) -> None:
    installed = json.loads(
        run_packaged(
            packages_root,
            "-c",
            "import json, importlib.metadata as m; print(json.dumps("
            "{d.metadata['Name']: d.version for d in m.distributions()}))",
        )
    )
    locked = {wheel.name: wheel.version for wheel in read_lock()}
    assert {canonicalize_name(n): v for n, v in installed.items()} == locked
    python3 = packages_root / PYTHON_PACKAGE / "bin/python3"
    pip_check = subprocess.run(
        [str(python3), "-I", "-m", "pip", "--python", str(venv_python(packages_root)), "check"],
        capture_output=True,
        text=True,
        env={},
        check=False,
    )
    assert pip_check.returncode == 0, pip_check.stdout + pip_check.stderr


def test_every_source_file_of_the_package_is_in_the_bosh_package() -> None:
    source = REPO / "src" / "bosh_openstack_cpi"
    on_disk = {
        str(path.relative_to(REPO / "src"))
        for path in source.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    packaged = set(package_files(REPO, package_spec(CPI_PACKAGE)))
    assert on_disk == {path for path in packaged if path.startswith("bosh_openstack_cpi/")}


def test_python_package_provides_the_bosh_package_python_release_files(
    packages_root: Path,
) -> None:
    python = packages_root / PYTHON_PACKAGE
    for name in ("bin/python3", "bin/pip3", "bosh/compile.env", "bosh/runtime.env"):
        assert (python / name).exists(), name
    script = (
        f"BOSH_PACKAGES_DIR={packages_root} BOSH_INSTALL_TARGET=/x; "
        f". {python}/bosh/compile.env; command -v python3; type bosh_pip_local >/dev/null"
    )
    found = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == str(python / "bin/python3")


def test_the_venv_names_python_by_its_packages_dir_link(tmp_path: Path) -> None:
    # A director's agent installs each package under /var/vcap/data/packages/<name>/<id>
    # and links /var/vcap/packages/<name> to it: the venv must name the link.
    packages = tmp_path / "packages"
    packages.mkdir()
    (packages / PYTHON_PACKAGE).symlink_to(compiled_python())
    run_packaging(CPI_PACKAGE, packages, tmp_path / "compile")
    config = (packages / CPI_PACKAGE / "venv/pyvenv.cfg").read_text()
    assert f"home = {packages / PYTHON_PACKAGE / 'bin'}\n" in config
    stdout = run_packaged(packages, "-m", "bosh_openstack_cpi", "/nonexistent/cpi.json", stdin=INFO)
    assert json.loads(stdout)["result"]["api_version"] == 3
