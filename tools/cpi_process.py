"""Run the CPI executable the way the BOSH director does: a new process per call, no
arguments beyond what bin/cpi adds, a wiped environment, the request on stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
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
    cpu_seconds: float = 0.0  # user + system time of the CPI process

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
        stdout, stderr, returncode, cpu_seconds = run_measured(self.command, raw, self.env)
        seconds = time.perf_counter() - started
        text = stdout.decode("utf-8", "replace")
        response = json.loads(text)  # exactly one JSON document, or this raises
        return CpiResult(
            response,
            text,
            stderr.decode("utf-8", "replace"),
            returncode,
            seconds,
            cpu_seconds,
        )


def run_measured(
    command: list[str], stdin: bytes, env: dict[str, str], timeout: float = 900
) -> tuple[bytes, bytes, int, float]:
    """stdout, stderr, exit status and CPU seconds (user + system) of one process.

    The process is reaped with os.wait4, which reports its own resource usage: exact for
    this child even while other threads run other CPI processes."""
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    if process.stdin is None or process.stdout is None or process.stderr is None:
        raise RuntimeError("Popen made no pipes")
    outputs: dict[str, bytes] = {}

    def drain(name: str, stream: Any) -> None:
        outputs[name] = stream.read()

    pumps = [
        threading.Thread(target=drain, args=(name, stream), daemon=True)
        for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
    ]
    for pump in pumps:
        pump.start()
    try:
        process.stdin.write(stdin)
        process.stdin.close()
    except BrokenPipeError:
        pass  # the process exited without reading its request: its answer says why
    deadline = time.monotonic() + timeout
    for pump in pumps:
        pump.join(max(0.0, deadline - time.monotonic()))
    if any(pump.is_alive() for pump in pumps):
        process.kill()
        process.wait()
        raise subprocess.TimeoutExpired(command, timeout)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
    process.stdout.close()
    process.stderr.close()
    cpu = usage.ru_utime + usage.ru_stime
    return outputs["stdout"], outputs["stderr"], process.returncode, cpu
