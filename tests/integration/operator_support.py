"""Shared pieces of the operator tools' integration tests: a cloud config for the test
cloud, and the tools run as an operator runs them (the installed executable)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.vm_support import static_ip
from tools.cloud_description import cpi_document, write_cpi_json

# The manual subnets of the test cloud have DHCP off: a correct cpi.json says so.
HEALTHY = {"use_dhcp": False}


def cloud_config(cloud: dict[str, Any], **vm_cloud_properties: Any) -> dict[str, Any]:
    """A cloud config of the test cloud: a manual and a dynamic network, a vip network with
    one of the floating IPs, one VM type, one disk type, two compilation workers."""
    resources = cloud["resources"]
    manual = resources["networks"]["manual_1"]
    return {
        "azs": [{"name": "z1", "cloud_properties": {"availability_zone": "z1"}}],
        "vm_types": [
            {
                "name": "small",
                "cloud_properties": {
                    "instance_type": resources["flavors"]["default"],
                    **vm_cloud_properties,
                },
            }
        ],
        "disk_types": [
            {
                "name": "small",
                "disk_size": 1024,
                "cloud_properties": {"type": resources["volume_type"]},
            }
        ],
        "networks": [
            {
                "name": "manual",
                "type": "manual",
                "subnets": [
                    {
                        "range": manual["cidr"],
                        "gateway": manual["gateway"],
                        "static": [static_ip(cloud, "manual_1", -3)],
                        "az": "z1",
                        "cloud_properties": {"net_id": manual["id"]},
                    }
                ],
            },
            {
                "name": "dynamic",
                "type": "dynamic",
                "subnets": [
                    {
                        "az": "z1",
                        "cloud_properties": {"net_id": resources["networks"]["dhcp"]["id"]},
                    }
                ],
            },
            {
                "name": "public",
                "type": "vip",
                "subnets": [{"static": [resources["floating_ips"][-1]]}],
            },
        ],
        "compilation": {"workers": 2, "vm_type": "small", "network": "manual", "az": "z1"},
    }


def write_config(
    directory: Path, cloud: dict[str, Any], config: dict[str, Any] | None, **openstack: Any
) -> tuple[Path, Path | None]:
    directory.mkdir(exist_ok=True)
    cpi_json = write_cpi_json(directory, cpi_document(cloud, **{**HEALTHY, **openstack}))
    if config is None:
        return cpi_json, None
    path = directory / "cloud-config.json"
    path.write_text(json.dumps(config))
    return cpi_json, path


def run_tool(
    *arguments: str, stdin: str = "", timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`bosh-openstack-cpi <tool> ...` in a fresh process, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "bosh_openstack_cpi", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def check_lines(output: str, status: str) -> list[str]:
    """The progress lines of the checks with this outcome ("ok  ", "FAIL", "WARN", "skip")."""
    return [line for line in output.splitlines() if line.startswith(f"[{status}]")]


def remedy_after(output: str, check: str) -> str:
    lines = output.splitlines()
    for position, line in enumerate(lines):
        if check in line and position + 1 < len(lines):
            return lines[position + 1].strip()
    return ""
