"""The description of the cloud that tests and the demo run against.

`testcloud/cloud up` writes one for the local OpenStack; point BOSH_CPI_TEST_CLOUD at
a file of the same shape to use another cloud (docs/testing.md describes the keys).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TEST_CLOUD_VARIABLE = "BOSH_CPI_TEST_CLOUD"


def description_path() -> Path:
    configured = os.environ.get(TEST_CLOUD_VARIABLE)
    if configured:
        return Path(configured)
    output = subprocess.run(
        [str(REPO / "testcloud" / "cloud"), "env"], check=True, capture_output=True, text=True
    ).stdout
    return Path(output.strip())


def load_description(path: Path | None = None) -> dict[str, Any]:
    path = path or description_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"No cloud description at {path}: run `testcloud/cloud up`, or set "
            f"{TEST_CLOUD_VARIABLE} to the description of your cloud"
        )
    description: dict[str, Any] = json.loads(path.read_text())
    return description


def cpi_document(description: dict[str, Any], **openstack_overrides: Any) -> dict[str, Any]:
    """A cpi.json document as the reference release renders it, for this cloud."""
    openstack = dict(description["openstack"])
    for key, value in openstack_overrides.items():
        if value is None:
            openstack.pop(key, None)
        else:
            openstack[key] = value
    properties: dict[str, Any] = {"openstack": openstack}
    if description.get("agent"):
        properties["agent"] = description["agent"]
    return {"cloud": {"plugin": "openstack", "properties": properties}}


def write_cpi_json(directory: Path, document: dict[str, Any]) -> Path:
    path = directory / "cpi.json"
    path.write_text(json.dumps(document, indent=2))
    path.chmod(0o600)
    return path


def project_connection(description: dict[str, Any]) -> Any:
    """An openstacksdk connection as the CPI's own user and project (tests, benchmarks and
    tools arrange and check resources with it; the CPI itself never uses the SDK)."""
    import openstack

    settings = description["openstack"]
    return openstack.connect(
        load_yaml_config=False,
        load_envvars=False,
        auth_url=settings["auth_url"],
        username=settings["username"],
        password=settings["api_key"],
        project_name=settings["project"],
        user_domain_name=settings["domain"],
        project_domain_name=settings["domain"],
        region_name=settings.get("region"),
    )
