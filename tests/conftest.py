"""Shared fixtures: a director-like CPI runner and a scratch cpi.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tools.cpi_process import CpiProcess, cpi_command


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(document: dict[str, Any]) -> Path:
        path = tmp_path / "cpi.json"
        path.write_text(json.dumps(document))
        return path

    return write


@pytest.fixture
def make_cpi() -> Callable[..., CpiProcess]:
    def make(config_path: Path, ca_cert_path: Path | None = None, **options: Any) -> CpiProcess:
        return CpiProcess(cpi_command(config_path, ca_cert_path), **options)

    return make
