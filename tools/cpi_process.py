"""Run the CPI executable the way the BOSH director does: a new process per call, no
arguments beyond what bin/cpi adds, a wiped environment, the request on stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DIRECTOR_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def cpi_command(config_path: Path, ca_cert_path: Path | None = None) -> list[str]:
    """The installed CPI, started with the interpreter of this virtualenv."""
    command = [sys.executable, "-I", "-m", "bosh_openstack_cpi", str(config_path)]
    if ca_cert_path is not None:
        command.append(str(ca_cert_path))
    return command


def director_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {"PATH": DIRECTOR_PATH, "HOME": os.environ.get("HOME", "/root")}
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    env.update(extra or {})
    return env


@dataclass
class CpiResult:
    response: dict[str, Any]
    stdout: str
    stderr: str
    returncode: int
    seconds: float

    @property
    def result(self) -> Any:
        return self.response["result"]

    @property
    def error(self) -> dict[str, Any] | None:
        error: dict[str, Any] | None = self.response["error"]
        return error

    @property
    def all_output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class CpiProcess:
    command: list[str]
    director_uuid: str = "bosh-openstack-cpi-tests"
    env: dict[str, str] = field(default_factory=director_environment)
    api_version: int | None = 2
    stemcell_api_version: int | None = 3

    def request(
        self, method: str, *arguments: Any, context: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        full_context: dict[str, Any] = {
            "director_uuid": self.director_uuid,
            "request_id": f"cpi-{uuid.uuid4().int % 1_000_000:06d}",
        }
        if self.stemcell_api_version is not None:
            full_context["vm"] = {"stemcell": {"api_version": self.stemcell_api_version}}
        full_context.update(context or {})
        request: dict[str, Any] = {
            "method": method,
            "arguments": list(arguments),
            "context": full_context,
        }
        if self.api_version is not None:
            request["api_version"] = self.api_version
        return request

    def call(
        self, method: str, *arguments: Any, context: dict[str, Any] | None = None
    ) -> CpiResult:
        return self.send(json.dumps(self.request(method, *arguments, context=context)).encode())

    def send(self, raw: bytes) -> CpiResult:
        started = time.perf_counter()
        completed = subprocess.run(
            self.command, input=raw, capture_output=True, env=self.env, check=False, timeout=900
        )
        seconds = time.perf_counter() - started
        stdout = completed.stdout.decode("utf-8", "replace")
        response = json.loads(stdout)  # exactly one JSON document, or this raises
        return CpiResult(
            response,
            stdout,
            completed.stderr.decode("utf-8", "replace"),
            completed.returncode,
            seconds,
        )
