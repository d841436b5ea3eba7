"""tests/release/packaged.py on the fixture release: packages compiled as BOSH compiles
them, without waiting for CPython."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.release.packaged import PackagingFailed, run_packaging

FIXTURE = Path(__file__).parent / "fixture_release"


def test_packaging_runs_with_the_layout_and_environment_of_bosh(tmp_path: Path) -> None:
    packages = tmp_path / "packages"
    run_packaging("demo-runtime", packages, tmp_path / "compile", release=FIXTURE)
    run_packaging("demo", packages, tmp_path / "compile", release=FIXTURE)

    installed = sorted(str(p.relative_to(packages)) for p in packages.rglob("*") if p.is_file())
    assert installed == [
        "demo-runtime/env",
        "demo-runtime/packaging-env",
        "demo/demo/main.py",  # src/ file at its relative path
        "demo/demo/payload.txt",  # blob at its blobs.yml path
        "demo/demo/sub/__init__.py",  # excluded_files left skip_me.py out
        "demo/saw-dependency",
    ]
    assert (packages / "demo/saw-dependency").read_text() == "1\n"
    seen = dict(
        line.split("=", 1)
        for line in (packages / "demo-runtime/packaging-env").read_text().splitlines()
    )
    assert seen["BOSH_INSTALL_TARGET"] == str(packages / "demo-runtime")
    assert seen["BOSH_PACKAGES_DIR"] == str(packages)
    assert seen["BOSH_COMPILE_TARGET"] == str(tmp_path / "compile" / "demo-runtime")
    assert seen["PATH"] == "/usr/sbin:/usr/bin:/sbin:/bin"
    assert not any(name.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV")) for name in seen)


def test_a_missing_blob_is_named(tmp_path: Path) -> None:
    release = tmp_path / "release"
    shutil.copytree(FIXTURE, release)
    (release / "blobs/demo/payload.txt").unlink()
    with pytest.raises(PackagingFailed, match=r"nothing matches 'demo/payload\.txt'"):
        run_packaging("demo", tmp_path / "packages", tmp_path / "compile", release=release)


def test_a_failing_packaging_script_shows_its_output(tmp_path: Path) -> None:
    release = tmp_path / "release"
    shutil.copytree(FIXTURE, release)
    (release / "packages/demo-runtime/packaging").write_text("echo about to fail\nexit 3\n")
    with pytest.raises(PackagingFailed, match=r"(?s)exited 3:.*about to fail"):
        run_packaging("demo-runtime", tmp_path / "packages", tmp_path / "compile", release=release)
