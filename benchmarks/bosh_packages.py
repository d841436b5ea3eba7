"""The BOSH packages' CPI interpreter for benchmarks that compare it with the dev .venv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def packaged_cpi_python(directory: Path) -> Path:
    """Compiles both packages into directory/packages (tests/release/packaged.py) and
    returns bosh_openstack_cpi's venv python. In a child process: the benchmark stays as
    small as before (a child's peak RSS counts the parent's pages it was forked with)."""
    built = subprocess.run(
        [sys.executable, "-m", "tests.release.packaged", str(directory)],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(built.stdout.strip().splitlines()[-1])
