"""The compiled packages, once per session (python-3.13 once per machine: see packaged.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.release.packaged import build_packages_root


@pytest.fixture(scope="session")
def packages_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_packages_root(tmp_path_factory.mktemp("vcap"))
