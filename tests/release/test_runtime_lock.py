"""One source of truth for the runtime dependency versions: the lock that
tools/runtime_lock.py generates agrees with pyproject.toml, constraints.txt,
config/blobs.yml and the dev .venv."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from tools.blobs import load_blobs
from tools.runtime_lock import (
    WHEEL_BLOBS,
    LockedWheel,
    constraint_pins,
    read_lock,
    render_lock,
    runtime_requirements,
)

LOCKED = {wheel.name: wheel for wheel in read_lock()}


def test_every_runtime_requirement_is_locked_within_its_range() -> None:
    for line in runtime_requirements():
        requirement = Requirement(line)
        locked = LOCKED.get(canonicalize_name(requirement.name))
        assert locked is not None, f"{requirement.name} is not in the lock"
        assert requirement.specifier.contains(locked.version), (line, locked.version)


def test_the_lock_keeps_the_versions_constraints_txt_pins() -> None:
    for name, version in constraint_pins().items():
        if name in LOCKED:
            assert LOCKED[name].version == version, f"{name}: regenerate the lock"


def test_the_lock_and_blobs_yml_name_the_same_wheels() -> None:
    wheel_blobs = {p: b for p, b in load_blobs().items() if p.startswith(WHEEL_BLOBS)}
    by_sha = {blob.sha256: path for path, blob in wheel_blobs.items()}
    assert sorted(by_sha) == sorted(wheel.sha256 for wheel in LOCKED.values())
    for wheel in LOCKED.values():
        name, version, _, tags = parse_wheel_filename(Path(by_sha[wheel.sha256]).name)
        assert (name, str(version)) == (wheel.name, wheel.version)
        assert all(tag.platform == "any" and tag.abi == "none" for tag in tags)


def test_the_dev_venv_runs_the_locked_versions() -> None:
    # scripts/setup installs .venv with the lock as constraints: the benchmarks compare
    # the packaged runtime with the dev one on the same dependency code.
    for wheel in LOCKED.values():
        assert importlib.metadata.version(wheel.name) == wheel.version, wheel.name


def test_the_lock_closure_is_complete() -> None:
    # Each locked distribution's own requirements (as installed in .venv) are locked too.
    for wheel in LOCKED.values():
        for line in importlib.metadata.requires(wheel.name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                assert canonicalize_name(requirement.name) in LOCKED, (wheel.name, line)


def test_the_lock_round_trips_and_refuses_what_pip_would_not_check(tmp_path: Path) -> None:
    wheels = [LockedWheel("a-b", "1.0", "0" * 64)]
    lock = tmp_path / "runtime.txt"
    lock.write_text(render_lock(wheels))
    assert read_lock(lock) == wheels
    lock.write_text("a-b==1.0\n")  # no hash: pip --require-hashes would refuse it anyway
    with pytest.raises(ValueError, match=r"runtime\.txt:1: expected"):
        read_lock(lock)
