"""The real executable, run as the director runs it: bin/cpi with no arguments, a wiped
environment, the request on stdin without a trailing newline."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from tests.release.job_templates import render_job
from tools.cpi_process import CpiProcess, director_environment

pytestmark = pytest.mark.contract

VENV = Path(sys.executable).parent.parent
INFO = {"method": "info", "arguments": [], "context": {"director_uuid": "d"}}
# The job's spec-required properties: enough to render bin/cpi.
JOB_PROPERTIES = {
    "openstack": {
        "auth_url": "https://keystone.example.com:5000/v3",
        "default_key_name": "bosh",
        "default_security_groups": ["bosh"],
    }
}

# A server id in the right form that no cloud holds.
MISSING_VM = "00000000-0000-4000-8000-00000000abcd"


@pytest.fixture(scope="module")
def bin_cpi() -> str:
    """bin/cpi as the job's template renders it."""
    return render_job(JOB_PROPERTIES).files["bin/cpi"]


@pytest.fixture
def bosh_tree(tmp_path: Path, bin_cpi: str) -> Path:
    """/var/vcap-like packages and jobs dirs, with bin/cpi rendered to point at them."""
    (tmp_path / "packages" / "bosh_openstack_cpi").mkdir(parents=True)
    (tmp_path / "packages" / "bosh_openstack_cpi" / "venv").symlink_to(VENV)
    config = tmp_path / "jobs" / "openstack_cpi" / "config"
    config.mkdir(parents=True)
    (config / "cpi.json").write_text(
        json.dumps({"cloud": {"plugin": "openstack", "properties": {"openstack": {}}}})
    )
    (config / "cacert.pem").write_text("")
    rendered = bin_cpi.replace("/var/vcap", str(tmp_path))
    (tmp_path / "cpi").write_text(rendered)
    (tmp_path / "cpi").chmod(0o755)
    return tmp_path


def _director_run(bosh_tree: Path, request: bytes, extra_env: dict[str, str] | None = None):
    return subprocess.run(
        [str(bosh_tree / "cpi")],
        input=request,
        capture_output=True,
        env=director_environment(extra_env),
        cwd="/",
        check=False,
        timeout=60,
    )


def test_info_through_bin_cpi_with_a_wiped_environment(bosh_tree: Path):
    completed = _director_run(bosh_tree, json.dumps(INFO).encode())
    assert completed.returncode == 0
    response = json.loads(completed.stdout)
    assert response["result"]["api_version"] == 3
    assert response["error"] is None
    assert completed.stdout.count(b"\n") == 1  # one document, nothing else


def test_create_env_style_environment_is_honoured(bosh_tree: Path, bin_cpi: str):
    """`bosh create-env` passes BOSH_PACKAGES_DIR / BOSH_JOBS_DIR instead of /var/vcap."""
    plain = bosh_tree / "plain-cpi"
    plain.write_text(bin_cpi)
    plain.chmod(0o755)
    completed = subprocess.run(
        [str(plain)],
        input=json.dumps(INFO).encode(),
        capture_output=True,
        env=director_environment(
            {
                "BOSH_PACKAGES_DIR": str(bosh_tree / "packages"),
                "BOSH_JOBS_DIR": str(bosh_tree / "jobs"),
            }
        ),
        check=False,
        timeout=60,
    )
    assert json.loads(completed.stdout)["result"]["api_version"] == 3


def test_config_errors_come_back_as_one_response(bosh_tree: Path):
    request = {
        "method": "has_vm",
        "arguments": [MISSING_VM],
        "context": {"director_uuid": "d"},
    }
    completed = _director_run(bosh_tree, json.dumps(request).encode())
    assert completed.returncode == 0
    response = json.loads(completed.stdout)
    assert response["error"]["type"] == "Bosh::Clouds::CloudError"
    assert "openstack.auth_url is required" in response["error"]["message"]
    # the log goes to stderr, line by line, for the director's task log
    assert "openstack.auth_url is required" in completed.stderr.decode()


@pytest.mark.parametrize(
    ("client", "arguments"),
    [
        # The director: min(info's api_version, its preferred 3) = 3, and v3's create_stemcell
        # gets the stemcell's tags as a third argument (update_stemcell.rb).
        ("director", ["/tmp/image", {"name": "s", "version": "1"}, {"tags": {"team": "blue"}}]),
        # bosh-cli (create-env) caps the version at 2 and sends two arguments.
        ("bosh-cli", ["/tmp/image", {"name": "s", "version": "1"}]),
    ],
)
def test_both_negotiated_versions_are_served(bosh_tree: Path, client: str, arguments: list[object]):
    info = json.loads(_director_run(bosh_tree, json.dumps(INFO).encode()).stdout)["result"]
    negotiated = min(info["api_version"], 3 if client == "director" else 2)
    request = {
        "method": "create_stemcell",
        "arguments": arguments,
        "context": {"director_uuid": "d"},
        "api_version": negotiated,
    }
    completed = _director_run(bosh_tree, json.dumps(request).encode())
    response = json.loads(completed.stdout)
    # the arguments were accepted: what stops this call is the empty test config
    assert response["error"]["type"] == "Bosh::Clouds::CloudError", response["error"]
    assert "openstack.auth_url is required" in response["error"]["message"]
    assert f"create_stemcell started (api_version {negotiated})" in completed.stderr.decode()


def test_the_task_cpi_log_gets_each_line_once(bosh_tree: Path):
    """The director's external_cpi.rb appends every stderr line to the task's CPI log,
    then the response's `log` to the same file: that file, rebuilt, holds each line once."""
    request = {"method": "has_vm", "arguments": [MISSING_VM], "context": {"director_uuid": "d"}}
    completed = _director_run(bosh_tree, json.dumps(request).encode())
    task_cpi_log = completed.stderr.decode() + json.loads(completed.stdout)["log"]
    lines = task_cpi_log.splitlines()
    assert any("has_vm failed" in line for line in lines)
    assert len(lines) == len(set(lines))


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[1,2]", b'{"method":"info"}', b"\xff" * 10, b"{" * 100000]
)
def test_garbage_on_stdin_still_gets_exactly_one_json_response(bosh_tree: Path, raw: bytes):
    completed = _director_run(bosh_tree, raw)
    assert completed.returncode == 0
    response = json.loads(completed.stdout)
    assert response["error"]["type"] == "Bosh::Clouds::CpiError"
    assert response["result"] is None
    assert isinstance(response["log"], str)


def test_unknown_method(bosh_tree: Path):
    request = dict(INFO, method="resurrect_vm")
    response = json.loads(_director_run(bosh_tree, json.dumps(request).encode()).stdout)
    assert response["error"]["message"] == "Method is not known, got: 'resurrect_vm'"


def test_sigterm_during_a_call_still_answers(tmp_path: Path):
    """A process killed mid-call by SIGTERM answers with an error instead of vanishing."""
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(1)  # accepts the TCP connection and never answers
        blackhole.settimeout(30)
        port = blackhole.getsockname()[1]
        openstack = {
            "auth_url": f"http://127.0.0.1:{port}/v3",
            "username": "u",
            "api_key": "canary-password-1",
            "project": "p",
            "domain": "d",
        }
        config = tmp_path / "cpi.json"
        config.write_text(json.dumps({"cloud": {"properties": {"openstack": openstack}}}))
        cpi = CpiProcess([sys.executable, "-I", "-m", "bosh_openstack_cpi", str(config)])
        process = subprocess.Popen(
            cpi.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cpi.env,
        )
        assert process.stdin is not None
        process.stdin.write(json.dumps(cpi.request("has_vm", MISSING_VM)).encode())
        process.stdin.close()
        process.stdin = None
        connection, _ = blackhole.accept()  # the CPI is now waiting for Keystone
        with connection:
            process.terminate()
            stdout, stderr = process.communicate(timeout=30)
    response = json.loads(stdout)
    assert response["error"]["type"] == "Bosh::Clouds::CloudError"
    assert "interrupted by a signal" in response["error"]["message"]
    assert b"canary-password-1" not in stdout + stderr


def test_module_and_console_script_entry_points_agree():
    via_module = subprocess.run(
        [sys.executable, "-I", "-m", "bosh_openstack_cpi"],
        input=json.dumps(INFO).encode(),
        capture_output=True,
        check=True,
    )
    script = Path(sys.executable).parent / "bosh-openstack-cpi"
    via_script = subprocess.run(
        [str(script)], input=json.dumps(INFO).encode(), capture_output=True, check=True
    )
    assert json.loads(via_module.stdout) == json.loads(via_script.stdout)


def test_info_does_not_import_the_sdk_or_logging():
    probe = (
        "import sys, io, runpy\n"
        "sys.stdin = io.TextIOWrapper(io.BytesIO(sys.argv[1].encode()))\n"
        "sys.argv = ['cpi']\n"
        "from bosh_openstack_cpi.cli import main\n"
        "main()\n"
        "heavy = [m for m in ('openstack', 'keystoneauth1', 'logging', 'requests')"
        " if m in sys.modules]\n"
        "sys.stderr.write(repr(heavy))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-I", "-c", probe, json.dumps(INFO)],
        capture_output=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert completed.stderr.decode().strip() == "[]"


class _FakeCloud(http.server.BaseHTTPRequestHandler):
    """Keystone issuing a token whose catalog has one compute endpoint, and a Nova that
    knows no server: just enough for has_vm."""

    paths: ClassVar[list[str]] = []
    port: ClassVar[int] = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.paths.append(f"POST {self.path}")
        endpoint = {"id": "e", "interface": "public", "region": "RegionOne"}
        token = {
            "token": {
                "methods": ["password"],
                "expires_at": "2099-01-01T00:00:00.000000Z",
                "issued_at": "2020-01-01T00:00:00.000000Z",
                "user": {"id": "u", "name": "u", "domain": {"id": "d", "name": "d"}},
                "project": {"id": "p", "name": "p", "domain": {"id": "d", "name": "d"}},
                "catalog": [
                    {
                        "type": "compute",
                        "id": "s",
                        "endpoints": [{**endpoint, "url": f"http://127.0.0.1:{self.port}/v2.1"}],
                    }
                ],
            }
        }
        self._answer(201, token, {"X-Subject-Token": "t"})

    def do_GET(self) -> None:
        self.paths.append(f"GET {self.path}")
        self._answer(404, {"itemNotFound": {"code": 404, "message": "Instance not found"}})

    def _answer(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


@contextlib.contextmanager
def _fake_cloud_config(tmp_path: Path, **openstack: object) -> Iterator[Path]:
    """A cpi.json for the fake cloud, served while the block runs."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeCloud)
    _FakeCloud.paths = []
    _FakeCloud.port = server.server_port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        properties = {
            "auth_url": f"http://127.0.0.1:{server.server_port}/v3",
            "username": "u",
            "api_key": "p",
            "project": "p",
            "domain": "d",
            **openstack,
        }
        config = tmp_path / "cpi.json"
        config.write_text(json.dumps({"cloud": {"properties": {"openstack": properties}}}))
        yield config
    finally:
        server.shutdown()
        server.server_close()


def test_a_cloud_call_does_not_import_the_openstack_sdk(tmp_path: Path):
    """openstacksdk costs ~0.4 s of import per call: a call that talks to the cloud uses
    keystoneauth alone (the SDK would be listed first)."""
    with _fake_cloud_config(tmp_path, token_cache=False) as config:
        output = _has_vm_in_process(config, tmp_path)
    assert _FakeCloud.paths == ["POST /v3/auth/tokens", f"GET /v2.1/servers/{MISSING_VM}"]
    assert output.rstrip().endswith("imported: ['keystoneauth1', 'requests', 'urllib3']")


# Modules a has_vm has no use for, each a few ms of every call's start-up: create_vm's
# own, the other services' adapters, tempfile (the token cache imports it to write only).
HAS_VM_NEEDS_NONE_OF = (
    "bosh_openstack_cpi.flavors",
    "bosh_openstack_cpi.vm_properties",
    "bosh_openstack_cpi.openstack.volume",
    "bosh_openstack_cpi.openstack.image",
    "bosh_openstack_cpi.openstack.network",
    "bosh_openstack_cpi.operator",  # the operator tools: never on a call's path
    "secrets",
    "tempfile",
)


def _has_vm_in_process(config: Path, tmp_path: Path, env: dict[str, str] | None = None) -> str:
    """has_vm through the CLI in a fresh interpreter; its stderr ends with the heavy
    modules it imported."""
    request = {"method": "has_vm", "arguments": [MISSING_VM], "context": {"director_uuid": "d"}}
    probe = (
        "import sys, io\n"
        "sys.stdin = io.TextIOWrapper(io.BytesIO(sys.argv[1].encode()))\n"
        "sys.argv = ['cpi', sys.argv[2]]\n"
        "from bosh_openstack_cpi.cli import main\n"
        "main()\n"
        f"unneeded = [m for m in {HAS_VM_NEEDS_NONE_OF!r} if m in sys.modules]\n"
        "sys.stderr.write('\\nunneeded: ' + repr(unneeded))\n"
        "heavy = ('openstack', 'keystoneauth1', 'requests', 'urllib3')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "sys.stderr.write('\\nimported: ' + repr(heavy))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-I", "-c", probe, json.dumps(request), str(config)],
        capture_output=True,
        check=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "TMPDIR": str(tmp_path), **(env or {})},
    )
    response = json.loads(completed.stdout)
    assert response["error"] is None
    assert response["result"] is False
    return completed.stderr.decode()


def test_a_call_with_a_cached_token_imports_neither_requests_nor_keystoneauth(tmp_path: Path):
    """requests and keystoneauth cost ~0.15 s of import per call: with a valid cached token
    the stdlib transport sends the requests; keystoneauth only authenticates."""
    with _fake_cloud_config(tmp_path) as config:
        first = _has_vm_in_process(config, tmp_path)
        second = _has_vm_in_process(config, tmp_path)
        # Proxy variables that do not apply to the endpoints keep the stdlib transport:
        # https_proxy for http endpoints, http_proxy with no_proxy covering them.
        other_scheme = _has_vm_in_process(config, tmp_path, {"https_proxy": "http://127.0.0.1:9"})
        bypassed = _has_vm_in_process(
            config, tmp_path, {"HTTP_PROXY": "http://127.0.0.1:9", "no_proxy": "127.0.0.1"}
        )
    assert first.rstrip().endswith("imported: ['keystoneauth1', 'requests', 'urllib3']")
    assert second.rstrip().endswith("imported: []")
    assert "unneeded: []" in second
    assert other_scheme.rstrip().endswith("imported: []")
    assert bypassed.rstrip().endswith("imported: []")
    assert _FakeCloud.paths == [
        "POST /v3/auth/tokens",
        *[f"GET /v2.1/servers/{MISSING_VM}"] * 4,
    ]


def _held_cpi(preexec_fn=None):
    """A CPI process whose stdin stays open, as while the director is still writing."""
    return subprocess.Popen(
        [sys.executable, "-I", "-m", "bosh_openstack_cpi", "/nonexistent/cpi.json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=director_environment(),
        preexec_fn=preexec_fn,  # only a signal mask: safe in the fork child
    )


def _signalled_answer(process):
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    response = json.loads(stdout)
    assert response["result"] is None
    assert response["error"]["type"] == "Bosh::Clouds::CloudError"
    assert "stopped by a signal (SIGTERM or SIGINT) while starting" in response["error"]["message"]


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_request_is_read_is_answered(number):
    process = _held_cpi()
    time.sleep(1.0)  # long past start-up: the CPI waits for its request
    process.send_signal(number)
    _signalled_answer(process)


def test_a_signal_during_start_up_is_answered():
    """The signal arrives before the interpreter ran any of the CPI's code: blocked in the
    child, it stays pending until __main__ has its handlers in and unblocks it."""

    def block_signals():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    process = _held_cpi(block_signals)
    process.send_signal(signal.SIGTERM)
    _signalled_answer(process)


def test_after_an_answer_is_written_a_signal_changes_nothing():
    script = (
        "import os, signal, sys\n"
        "from bosh_openstack_cpi.cli import write_response\n"
        'write_response(1, b\'{"result": true, "error": null, "log": ""}\')\n'
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "sys.stderr.write('still here')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, timeout=60, check=False
    )
    assert completed.returncode == 0
    assert json.loads(completed.stdout)["result"] is True
    assert completed.stderr == b"still here"


def test_the_rendered_job_answers_a_cloud_call(tmp_path: Path):
    """The whole job as BOSH lays it out: rendered bin/cpi, cpi.json and cacert.pem, the
    package's venv, create-env's directory variables; has_vm against the fake cloud."""
    packages, jobs = tmp_path / "packages", tmp_path / "jobs"
    (packages / "bosh_openstack_cpi").mkdir(parents=True)
    (packages / "bosh_openstack_cpi" / "venv").symlink_to(VENV)
    request = {"method": "has_vm", "arguments": [MISSING_VM], "context": {"director_uuid": "d"}}
    with _fake_cloud_config(tmp_path, token_cache=False) as config:
        openstack = json.loads(config.read_text())["cloud"]["properties"]["openstack"]
        cpi = render_job({"openstack": {**JOB_PROPERTIES["openstack"], **openstack}}).install(jobs)
        env = {"BOSH_PACKAGES_DIR": str(packages), "BOSH_JOBS_DIR": str(jobs)}
        completed = subprocess.run(
            [str(cpi)],
            input=json.dumps(request).encode(),
            capture_output=True,
            env=director_environment(env),
            check=False,
            timeout=60,
        )
    response = json.loads(completed.stdout)
    assert (response["result"], response["error"]) == (False, None)
    assert _FakeCloud.paths == ["POST /v3/auth/tokens", f"GET /v2.1/servers/{MISSING_VM}"]
