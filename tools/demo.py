"""The main job: BOSH calls through the real CPI executable against a real cloud.

    scripts/demo                     # the local OpenStack (started by scripts/demo)
    BOSH_CPI_CONFIG=cpi.json scripts/demo   # your cloud, configured like the BOSH job

Every call is a new process with a director-like environment; each request and
response is printed (credentials never are: the CPI redacts its own output).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from tools.cloud_description import cpi_document, load_description, write_cpi_json
from tools.cpi_process import CpiProcess, CpiResult, cpi_command


def _show(step: str, request: dict[str, Any], result: CpiResult) -> None:
    print(f"\n== {step}  ({result.seconds * 1000:.0f} ms)")
    print("request : " + json.dumps(request))
    shown = dict(result.response)
    log = shown.pop("log", "")
    print("response: " + json.dumps(shown))
    if log:
        print("log     : " + log.rstrip().replace("\n", "\n          "))


def _run(cpi: CpiProcess, step: str, method: str, *arguments: Any) -> CpiResult:
    request = cpi.request(method, *arguments)
    result = cpi.send(json.dumps(request).encode())
    _show(step, request, result)
    return result


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bosh-cpi-demo-") as scratch:
        configured = os.environ.get("BOSH_CPI_CONFIG")
        if configured:
            config_path = Path(configured)
            print(f"Using the cloud configured in {config_path}")
        else:
            description = load_description()
            config_path = write_cpi_json(Path(scratch), cpi_document(description))
            auth_url = description["openstack"]["auth_url"]
            print(f"Using the local test OpenStack at {auth_url}")
        cpi = CpiProcess(cpi_command(config_path))

        failures = 0
        info = _run(cpi, "info: versions and stemcell formats, no cloud needed", "info")
        failures += info.error is not None
        unknown_vm = str(uuid.uuid4())
        has_vm = _run(
            cpi, "has_vm of an unknown VM: authenticates, asks Nova", "has_vm", unknown_vm
        )
        if has_vm.error is not None or has_vm.result is not False:
            failures += 1
        print("\nDemo " + ("passed" if not failures else f"FAILED ({failures} step(s))"))
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
