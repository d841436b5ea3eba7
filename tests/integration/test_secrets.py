"""Secrets never leave the CPI: canary values for the OpenStack password, the application
credential secret, the NATS credentials (agent.mbus in cpi.json; env.bosh.mbus in
create_vm's env) and env.bosh.password are looked for in stdout, stderr and the response's
`log`, at DEBUG level (every HTTP request and answer logged), on success, when OpenStack
quotes the request in its error (as validation errors do), when its answer is not even
JSON (an unexpected failure, with a traceback in the log), and on config errors."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import vm_support as vs
from tests.integration.faults import faulty_cloud, proxied_auth_url
from tools import fault_proxy as fp
from tools.cloud_description import cpi_document, write_cpi_json
from tools.cpi_process import CpiProcess, CpiResult, cpi_command, director_environment
from tools.request_log import LOG_LEVEL_ENV

NATS_PASSWORD = "nats-canary-pw-7d31"
ENV_PASSWORD = "env-canary-pw-52c0"
ENV_KEY = "CANARYKEYMATERIAL4f0a9c"
URLS_PASSWORD = "urls-canary-pw-e19b"
ENV: dict[str, Any] = {
    "bosh": {
        "password": ENV_PASSWORD,
        "mbus": {
            "cert": {
                "ca": "-----BEGIN CERTIFICATE-----\nQ0FjYW5hcnk=\n-----END CERTIFICATE-----\n",
                "certificate": "-----BEGIN CERTIFICATE-----\nY2VydA==\n-----END CERTIFICATE-----\n",
                "private_key": (
                    f"-----BEGIN RSA PRIVATE KEY-----\n{ENV_KEY}\n-----END RSA PRIVATE KEY-----\n"
                ),
            },
            "urls": [f"nats://director:{URLS_PASSWORD}@10.0.0.9:4222"],
        },
    }
}
# Base64 blobs in the output that decode to text: the agent settings (user_data) in disguise.
_BASE64 = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")


def canaries(cloud: dict[str, Any]) -> list[str]:
    return [
        cloud["openstack"]["api_key"],
        cloud["application_credential"]["secret"],
        NATS_PASSWORD,
        ENV_PASSWORD,
        ENV_KEY,
        URLS_PASSWORD,
    ]


def assert_no_secret(result: CpiResult, cloud: dict[str, Any]) -> None:
    """No canary in stdout (the response and its `log`) or stderr, not even base64-encoded."""
    outputs = {"stdout": result.stdout, "stderr": result.stderr, "log": result.response["log"]}
    outputs["error"] = json.dumps(result.error)
    for where, text in outputs.items():
        for canary in canaries(cloud):
            assert canary not in text, f"{canary[:8]}... in {where}"
        for blob in _BASE64.findall(text):
            decoded = _decoded(blob)
            for canary in canaries(cloud):
                assert canary not in decoded, f"base64 of {canary[:8]}... in {where}"


def _decoded(blob: str) -> str:
    try:
        return base64.b64decode(blob + "=" * (-len(blob) % 4)).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


@pytest.fixture
def secret_cpi(
    cloud: dict[str, Any], tmp_path: Path, director_uuid: str
) -> Callable[..., CpiProcess]:
    """A CPI at DEBUG level whose cpi.json carries NATS credentials in agent.mbus;
    keyword arguments override `openstack` keys (None removes one)."""

    def make(**openstack: Any) -> CpiProcess:
        document = cpi_document(cloud, **openstack)
        properties = document["cloud"]["properties"]
        properties["agent"] = {
            **properties.get("agent", {}),
            "mbus": f"nats://nats:{NATS_PASSWORD}@127.0.0.1:4222",
        }
        directory = tmp_path / f"job-{uuid.uuid4().hex[:8]}"
        directory.mkdir()
        return CpiProcess(
            cpi_command(write_cpi_json(directory, document)),
            director_uuid=director_uuid,
            env=director_environment(LOG_LEVEL_ENV),
        )

    return make


def application_credential(cloud: dict[str, Any]) -> dict[str, Any]:
    credential = cloud["application_credential"]
    return {
        "application_credential_id": credential["id"],
        "application_credential_secret": credential["secret"],
        "username": None,
        "api_key": None,
        "project": None,
        "domain": None,
    }


def _dynamic(cloud: dict[str, Any]) -> dict[str, Any]:
    return {"default": vs.dynamic_network(cloud)}


@pytest.fixture
def vm_deleter(cpi: CpiProcess) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for vm_cid in made:
        assert cpi.call("delete_vm", vm_cid).error is None


def test_create_vm_at_debug_level_shows_no_secret(
    secret_cpi: Callable[..., CpiProcess],
    cloud: dict[str, Any],
    admin: Any,
    leak_check: None,
    vm_deleter: list[str],
):
    cpi = secret_cpi(token_cache=False)  # keystoneauth sends, and logs the bodies
    result = vs.create(cpi, cloud, _dynamic(cloud), env=ENV)
    assert result.error is None, result.error
    vm_cid = result.result[0]
    vm_deleter.append(vm_cid)
    assert "DEBUG keystoneauth.session: REQ: curl" in result.stderr  # bodies are logged
    settings = vs.user_data(admin, vm_cid)  # the canaries did reach the VM
    assert settings["env"]["bosh"]["password"] == ENV_PASSWORD
    assert NATS_PASSWORD in settings["mbus"]
    assert_no_secret(result, cloud)
    stored = vs.server(admin, vm_cid)["OS-EXT-SRV-ATTR:user_data"]
    assert stored[100:160] not in result.all_output
    assert_no_secret(cpi.call("delete_vm", vm_cid), cloud)


def test_application_credential_at_debug_level_shows_no_secret(
    secret_cpi: Callable[..., CpiProcess], cloud: dict[str, Any]
):
    cpi = secret_cpi(token_cache=False, **application_credential(cloud))
    result = cpi.call("has_vm", str(uuid.uuid4()))
    assert result.error is None, result.error
    assert "auth/tokens" in result.stderr
    assert_no_secret(result, cloud)


@pytest.mark.parametrize("credentials", ["password", "application credential"])
@pytest.mark.parametrize("style", ["body", "fields", "html"])
def test_keystone_quoting_the_credentials_in_its_answer(
    secret_cpi: Callable[..., CpiProcess],
    cloud: dict[str, Any],
    admin: Any,
    credentials: str,
    style: str,
):
    """A token request answered with an error (or a page) quoting what was sent."""
    plan = fp.FaultPlan().when(fp.echo(400 if style != "html" else 200, style), service="identity")
    openstack = application_credential(cloud) if credentials != "password" else {}
    with faulty_cloud(admin, cloud, plan) as proxy:
        cpi = secret_cpi(auth_url=proxied_auth_url(proxy, cloud), token_cache=False, **openstack)
        result = cpi.call("has_vm", str(uuid.uuid4()))
    assert len(proxy.injected()) == 1
    assert result.error is not None
    assert result.error["type"] == "Bosh::Clouds::CloudError"
    assert "Keystone" in result.error["message"]
    assert_no_secret(result, cloud)


@pytest.mark.parametrize("style", ["body", "fields"])
def test_nova_quoting_the_server_request_in_its_error(
    secret_cpi: Callable[..., CpiProcess],
    cloud: dict[str, Any],
    admin: Any,
    director_uuid: str,
    leak_check: None,
    style: str,
):
    """Nova's validation errors quote the values they refuse: user_data (the agent settings,
    base64) among them. The induced failure still removes everything."""
    plan = fp.FaultPlan().when(
        fp.echo(400, style), service="compute", method="POST", path_contains="/servers"
    )
    with faulty_cloud(admin, cloud, plan) as proxy:
        cpi = secret_cpi(auth_url=proxied_auth_url(proxy, cloud), token_cache=False)
        networks = {"private": vs.manual_network(cloud, "manual_2", -4)}
        result = vs.create(cpi, cloud, networks, env=ENV)
    assert len(proxy.injected()) == 1
    assert result.error is not None
    assert result.error["type"] == "Bosh::Clouds::CloudError"
    assert "HTTP 400" in result.error["message"]
    assert "<redacted>" in result.error["message"]
    assert_no_secret(result, cloud)


def test_an_unreadable_answer_logs_a_traceback_without_secrets(
    secret_cpi: Callable[..., CpiProcess], cloud: dict[str, Any], admin: Any, leak_check: None
):
    """A page instead of JSON (a proxy in the way) where the CPI expects Nova's flavors."""
    plan = fp.FaultPlan().when(
        fp.echo(200, "html"), service="compute", method="GET", path_contains="/flavors", times=10
    )
    with faulty_cloud(admin, cloud, plan) as proxy:
        cpi = secret_cpi(auth_url=proxied_auth_url(proxy, cloud), token_cache=False)
        result = vs.create(cpi, cloud, _dynamic(cloud), env=ENV)
    assert result.error is not None
    assert result.error["type"] in ("Bosh::Clouds::CloudError", "Bosh::Clouds::VMCreationFailed")
    assert_no_secret(result, cloud)


def test_config_errors_show_no_secret(secret_cpi: Callable[..., CpiProcess], cloud: dict[str, Any]):
    """Invalid cpi.json values next to the secrets, and a multi-CPI context that overrides
    the password with an invalid value."""
    cpi = secret_cpi(
        state_timeout="soon",
        connection_options={"ca_cert": 42, "read_timeout": "never"},
        application_credential_secret=cloud["application_credential"]["secret"],
    )
    result = vs.create(cpi, cloud, _dynamic(cloud), env=ENV)
    assert result.error is not None
    assert result.error["type"] == "Bosh::Clouds::CloudError"
    assert "state_timeout" in result.error["message"]
    assert_no_secret(result, cloud)

    context = {"api_key": [cloud["openstack"]["api_key"]], "wait_resource_poll_interval": "x"}
    result = secret_cpi().call("has_vm", "00000000-0000-4000-8000-00000000abcd", context=context)
    assert result.error is not None
    assert "api_key" in result.error["message"]
    assert_no_secret(result, cloud)


def test_create_vm_with_a_cached_token_at_debug_level_shows_no_secret(
    secret_cpi: Callable[..., CpiProcess],
    cloud: dict[str, Any],
    admin: Any,
    leak_check: None,
    vm_deleter: list[str],
    tmp_path: Path,
):
    """The stdlib transport (a call with a cached token) logs one line per request and
    never a header or a body."""
    cpi = secret_cpi()
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    cpi.env["TMPDIR"] = str(scratch)
    assert cpi.call("has_vm", str(uuid.uuid4())).error is None  # warms the token cache
    result = vs.create(cpi, cloud, _dynamic(cloud), env=ENV)
    assert result.error is None, result.error
    vm_cid = result.result[0]
    vm_deleter.append(vm_cid)
    assert "(stdlib transport)" in result.stderr
    assert '"POST /v2.1/servers HTTP/1.1" 202' in result.stderr
    assert vs.user_data(admin, vm_cid)["env"]["bosh"]["password"] == ENV_PASSWORD
    assert_no_secret(result, cloud)
    assert_no_secret(cpi.call("delete_vm", vm_cid), cloud)
