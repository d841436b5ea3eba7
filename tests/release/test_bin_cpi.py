"""The rendered bin/cpi, run with a stub interpreter that reports how it was started: the
proxy exports, the CPI's arguments, BOSH_PACKAGES_DIR / BOSH_JOBS_DIR and their defaults."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.release.job_templates import render_job

REQUIRED = {
    "auth_url": "https://keystone.example.com:5000/v3",
    "default_key_name": "bosh",
    "default_security_groups": ["bosh"],
}
PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy")
# Prints its arguments, a separator, then its environment: one item per line.
STUB_PYTHON = "#!/bin/sh\nprintf '%s\\n' \"$@\" '--'\nenv\n"


def _install(tmp_path: Path, **env_properties: str) -> Path:
    """bin/cpi under <tmp>/jobs and a stub venv interpreter under <tmp>/packages."""
    properties: dict[str, Any] = {"openstack": REQUIRED}
    if env_properties:
        properties["env"] = env_properties
    cpi = render_job(properties).install(tmp_path / "jobs")
    python = tmp_path / "packages" / "bosh_openstack_cpi" / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(STUB_PYTHON)
    python.chmod(0o755)
    return cpi


def _run(cpi: Path, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The stub's arguments and environment, as bin/cpi started it."""
    completed = subprocess.run(
        [str(cpi)],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    arguments, _, environment = completed.stdout.partition("--\n")
    variables = dict(line.split("=", 1) for line in environment.splitlines())
    return arguments.splitlines(), variables


def _bosh_dirs(tmp_path: Path) -> dict[str, str]:
    return {
        "BOSH_PACKAGES_DIR": str(tmp_path / "packages"),
        "BOSH_JOBS_DIR": str(tmp_path / "jobs"),
    }


def test_the_cpi_gets_the_job_config_paths(tmp_path: Path):
    arguments, _ = _run(_install(tmp_path), _bosh_dirs(tmp_path))
    config = tmp_path / "jobs" / "openstack_cpi" / "config"
    assert arguments == [
        "-I",
        "-m",
        "bosh_openstack_cpi",
        f"{config}/cpi.json",
        f"{config}/cacert.pem",
    ]


def test_the_jobs_dir_defaults_to_var_vcap(tmp_path: Path):
    arguments, _ = _run(_install(tmp_path), {"BOSH_PACKAGES_DIR": str(tmp_path / "packages")})
    assert arguments[-2:] == [
        "/var/vcap/jobs/openstack_cpi/config/cpi.json",
        "/var/vcap/jobs/openstack_cpi/config/cacert.pem",
    ]


def test_the_packages_dir_defaults_to_var_vcap(tmp_path: Path):
    completed = subprocess.run(
        [str(_install(tmp_path))],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert completed.returncode != 0
    assert "/var/vcap/packages/bosh_openstack_cpi/venv/bin/python" in completed.stderr


def test_no_proxy_property_exports_nothing(tmp_path: Path):
    _, variables = _run(_install(tmp_path), _bosh_dirs(tmp_path))
    exported = {name for name in variables if name.lower() in PROXY_VARIABLES}
    assert exported == set()


@pytest.mark.parametrize("variable", PROXY_VARIABLES)
def test_each_proxy_property_is_exported_in_both_cases_and_alone(tmp_path: Path, variable: str):
    # Quotes, spaces and $ must reach the CPI literally.
    value = "http://user:p'a$s w\"d@proxy.example.com:3128"
    _, variables = _run(_install(tmp_path, **{variable: value}), _bosh_dirs(tmp_path))
    exported = {name: text for name, text in variables.items() if name.lower() in PROXY_VARIABLES}
    assert exported == {variable: value, variable.upper(): value}


def test_all_proxies_together(tmp_path: Path):
    proxies = {"http_proxy": "http://p:3128", "https_proxy": "http://p:3129", "no_proxy": "a,b"}
    _, variables = _run(_install(tmp_path, **proxies), _bosh_dirs(tmp_path))
    for variable, value in proxies.items():
        assert variables[variable] == variables[variable.upper()] == value
