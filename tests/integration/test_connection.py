"""Authentication and connection against the real cloud (foundation issue)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration import vm_support as vs
from tests.integration.faults import cloud_upstreams, proxied_auth_url
from tests.integration.tls_proxy import make_ca, make_server_cert, tls_front
from tools.cpi_process import CpiProcess, CpiResult
from tools.fault_proxy import FaultProxy

CANARIES = ("canary-wrong-password-7f3a", "canary-appcred-secret-91bc")


def _unknown_vm() -> str:
    return str(uuid.uuid4())


def _assert_no_secret(result: CpiResult, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.all_output


def test_has_vm_of_an_unknown_id_is_false(cpi: CpiProcess, cloud: dict[str, Any]):
    result = cpi.call("has_vm", _unknown_vm())
    assert result.error is None, result.error
    assert result.result is False
    assert result.returncode == 0
    _assert_no_secret(result, cloud["openstack"]["api_key"])


def test_password_auth_by_project_id(cpi_for: Callable[..., CpiProcess], cloud: dict[str, Any]):
    cpi = cpi_for(project=None, project_id=cloud["project_id"])
    result = cpi.call("has_vm", _unknown_vm())
    assert result.error is None, result.error
    assert result.result is False


def test_password_auth_with_user_and_project_domains(cpi_for: Callable[..., CpiProcess]):
    cpi = cpi_for(domain=None, user_domain_name="Default", project_domain_name="Default")
    assert cpi.call("has_vm", _unknown_vm()).result is False


def test_application_credential_auth(cpi_for: Callable[..., CpiProcess], cloud: dict[str, Any]):
    credential = cloud["application_credential"]
    cpi = cpi_for(
        username=None,
        api_key=None,
        project=None,
        domain=None,
        application_credential_id=credential["id"],
        application_credential_secret=credential["secret"],
    )
    result = cpi.call("has_vm", _unknown_vm())
    assert result.error is None, result.error
    assert result.result is False
    _assert_no_secret(result, credential["secret"])


def test_wrong_password_names_keystone_and_auth_url_not_the_password(
    cpi_for: Callable[..., CpiProcess], cloud: dict[str, Any]
):
    result = cpi_for(api_key=CANARIES[0]).call("has_vm", _unknown_vm())
    assert result.error is not None
    assert result.error["type"] == "Bosh::Clouds::CloudError"
    message = result.error["message"]
    assert "Keystone" in message
    assert cloud["openstack"]["auth_url"] in message
    assert "openstack.api_key" in message
    _assert_no_secret(result, CANARIES[0])


def test_wrong_application_credential_secret_is_not_echoed(
    cpi_for: Callable[..., CpiProcess], cloud: dict[str, Any]
):
    cpi = cpi_for(
        username=None,
        api_key=None,
        project=None,
        domain=None,
        application_credential_id=cloud["application_credential"]["id"],
        application_credential_secret=CANARIES[1],
    )
    result = cpi.call("has_vm", _unknown_vm())
    assert result.error is not None
    assert "application_credential_secret" in result.error["message"]
    _assert_no_secret(result, CANARIES[1])


def test_multi_cpi_context_overrides_the_job_config(
    cpi_for: Callable[..., CpiProcess], cloud: dict[str, Any]
):
    """The cpi.json has a wrong password; the director's context carries the right one."""
    cpi = cpi_for(api_key=CANARIES[0])
    result = cpi.call("has_vm", _unknown_vm(), context={"api_key": cloud["openstack"]["api_key"]})
    assert result.error is None, result.error
    _assert_no_secret(result, CANARIES[0], cloud["openstack"]["api_key"])


def _keystone_port(cloud: dict[str, Any]) -> int:
    from urllib.parse import urlsplit

    return urlsplit(cloud["openstack"]["auth_url"]).port or 5000


def test_tls_verification_with_the_right_and_a_wrong_ca(
    cpi_for: Callable[..., CpiProcess], cloud: dict[str, Any], tmp_path: Path
):
    right_ca, ca_key, ca_name = make_ca(tmp_path, "right")
    wrong_ca, _, _ = make_ca(tmp_path, "wrong")
    cert, key = make_server_cert(tmp_path, ca_key, ca_name)
    with tls_front(cert, key, ("127.0.0.1", _keystone_port(cloud))) as port:
        auth_url = f"https://127.0.0.1:{port}/v3"
        # Only Keystone is behind TLS here: every call must really authenticate.
        cpi_for = functools.partial(cpi_for, token_cache=False)

        trusted = cpi_for(auth_url=auth_url, connection_options={"ca_cert": right_ca.read_text()})
        result = trusted.call("has_vm", _unknown_vm())
        assert result.error is None, result.error

        # the job's cacert.pem (second argument) works the same way
        via_job_file = cpi_for(ca_cert_path=right_ca, auth_url=auth_url)
        assert via_job_file.call("has_vm", _unknown_vm()).error is None

        wrong = cpi_for(auth_url=auth_url, connection_options={"ca_cert": wrong_ca.read_text()})
        result = wrong.call("has_vm", _unknown_vm())
        assert result.error is not None
        assert "TLS verification of Keystone" in result.error["message"]
        assert "connection_options.ca_cert" in result.error["message"]

        unverified = cpi_for(auth_url=auth_url, connection_options={"ssl_verify_peer": False})
        assert unverified.call("has_vm", _unknown_vm()).error is None


def test_the_whole_cloud_behind_tls(
    cpi_for: Callable[..., CpiProcess],
    cloud: dict[str, Any],
    admin: Any,
    tmp_path: Path,
    leak_check: None,
):
    """Every service behind HTTPS with the test's CA (Keystone's catalog rewritten to the
    TLS listeners): a VM with a persistent disk goes through Keystone, Nova, Neutron, Glance
    and Cinder (a light stemcell: Glance), and none of it bypasses TLS; without the CA the
    CPI says what to set."""
    ca, ca_key, ca_name = make_ca(tmp_path, "cloud")
    cert, key = make_server_cert(tmp_path, ca_key, ca_name)
    with FaultProxy(cloud_upstreams(admin, cloud), tls=(cert, key)) as proxy:
        auth_url = proxied_auth_url(proxy, cloud)
        assert auth_url.startswith("https://127.0.0.1:")
        make = functools.partial(cpi_for, auth_url=auth_url, token_cache=False)

        untrusted = make().call("create_disk", 1024, {}, None)
        assert untrusted.error is not None
        assert "TLS verification of Keystone" in untrusted.error["message"]
        assert "connection_options.ca_cert" in untrusted.error["message"]

        cpi = make(connection_options={"ca_cert": ca.read_text()})
        image_id = cloud["resources"]["image_id"]
        light = cpi.call("create_stemcell", "/unused", {"image_id": image_id})
        assert light.result == f"{image_id} light", light.error
        disk = cpi.call("create_disk", 1024, {}, None)
        assert disk.error is None, disk.error
        try:
            with vs.vm(cpi, cloud, {"default": vs.dynamic_network(cloud)}) as (vm_cid, _, _):
                attached = cpi.call("attach_disk", vm_cid, disk.result)
                assert attached.error is None, attached.error
                assert cpi.call("get_disks", vm_cid).result == [disk.result]
                detached = cpi.call("detach_disk", vm_cid, disk.result)
                assert detached.error is None, detached.error
        finally:
            assert cpi.call("delete_disk", disk.result).error is None

        services = {r.service for r in proxy.records}
        assert {"identity", "compute", "network", "image"} <= services, services
        assert any("volume" in s or "block" in s for s in services), services
        assert not any(r.status is None for r in proxy.records), "a request got no answer"


def test_ca_file_from_the_config_is_removed_after_the_call(
    cpi_for: Callable[..., CpiProcess], cloud: dict[str, Any], tmp_path: Path
):
    right_ca, _, _ = make_ca(tmp_path, "any")
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    cpi = cpi_for(connection_options={"ca_cert": right_ca.read_text()})
    cpi.env["TMPDIR"] = str(scratch)
    assert cpi.call("has_vm", _unknown_vm()).error is None
    assert list(scratch.glob("**/*.pem")) == []


def test_existing_server_is_found(cpi: CpiProcess, cloud: dict[str, Any], project_sdk: Any):
    """has_vm is true for a live server of the project and false once it is deleted."""
    resources = cloud["resources"]
    server = project_sdk.compute.create_server(
        name=f"cpi-test-{uuid.uuid4().hex[:8]}",
        image_id=resources["image_id"],
        flavor_id=project_sdk.compute.find_flavor(resources["flavors"]["default"]).id,
        networks=[{"uuid": resources["networks"]["manual_1"]["id"]}],
    )
    try:
        project_sdk.compute.wait_for_server(server, wait=120, interval=0.5)
        assert cpi.call("has_vm", server.id).result is True
    finally:
        project_sdk.compute.delete_server(server)
        project_sdk.compute.wait_for_delete(server, wait=120, interval=0.5)
    assert cpi.call("has_vm", server.id).result is False


def test_a_cached_token_over_tls_keeps_the_tls_options(
    cpi_for: Callable[..., CpiProcess], cloud: dict[str, Any], admin: Any, tmp_path: Path
):
    """Calls with a cached token send their requests through the stdlib transport: it
    verifies with the same CA options (config PEM, no verification) and says what to set
    when verification fails."""
    ca, ca_key, ca_name = make_ca(tmp_path, "cloud")
    wrong_ca, _, _ = make_ca(tmp_path, "wrong")
    cert, key = make_server_cert(tmp_path, ca_key, ca_name)
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    with FaultProxy(cloud_upstreams(admin, cloud), tls=(cert, key)) as proxy:
        auth_url = proxied_auth_url(proxy, cloud)

        def make(**options: Any) -> CpiProcess:
            cpi = cpi_for(auth_url=auth_url, token_cache=True, connection_options=options)
            cpi.env["TMPDIR"] = str(scratch)
            return cpi

        trusted = make(ca_cert=ca.read_text())
        for _ in range(2):
            result = trusted.call("has_vm", _unknown_vm())
            assert result.error is None, result.error
        assert [r.service for r in proxy.records].count("identity") == 1  # then cached

        assert make(ssl_verify_peer=False).call("has_vm", _unknown_vm()).error is None

        wrong = make(ca_cert=wrong_ca.read_text()).call("has_vm", _unknown_vm())
        assert wrong.error is not None
        assert "TLS error talking to OpenStack Compute" in wrong.error["message"]
        assert "connection_options.ca_cert" in wrong.error["message"]
        assert [r.service for r in proxy.records].count("identity") == 1


def _cached_calls(
    cpi_for: Callable[..., CpiProcess],
    auth_url: str,
    scratch: Path,
    env: dict[str, str],
    **options: Any,
) -> tuple[CpiResult, CpiResult]:
    """Two has_vm calls with the token cache: the first authenticates through keystoneauth,
    the second sends with the cached token through the stdlib transport."""
    cpi = cpi_for(auth_url=auth_url, token_cache=True, connection_options=options)
    cpi.env.update({"TMPDIR": str(scratch), **env})
    return cpi.call("has_vm", _unknown_vm()), cpi.call("has_vm", _unknown_vm())


def test_a_ca_only_the_os_store_knows_is_trusted_on_both_transports(
    cpi_for: Callable[..., CpiProcess], cloud: dict[str, Any], admin: Any, tmp_path: Path
):
    """As the reference: without ca_cert the OS store is trusted (a director VM's
    env.bosh.trusted_certs), here the test CA through OpenSSL's SSL_CERT_FILE."""
    ca, ca_key, ca_name = make_ca(tmp_path, "os-store")
    cert, key = make_server_cert(tmp_path, ca_key, ca_name)
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    with FaultProxy(cloud_upstreams(admin, cloud), tls=(cert, key)) as proxy:
        auth_url = proxied_auth_url(proxy, cloud)
        os_store = {"SSL_CERT_FILE": str(ca), "SSL_CERT_DIR": str(scratch)}
        for result in _cached_calls(cpi_for, auth_url, scratch, os_store):
            assert result.error is None, result.error
        assert [r.service for r in proxy.records].count("identity") == 1  # then cached
        assert [r.service for r in proxy.records].count("compute") >= 2

        nobody, _, _ = make_ca(tmp_path, "nobody")
        refused = cpi_for(auth_url=auth_url, token_cache=False)
        refused.env.update({"SSL_CERT_FILE": str(nobody), "SSL_CERT_DIR": str(tmp_path / "none")})
        result = refused.call("has_vm", _unknown_vm())
        assert result.error is not None
        assert "TLS verification of Keystone" in result.error["message"]


def test_mutual_tls_with_ssl_ca_file_client_cert_and_client_key_on_both_transports(
    cpi_for: Callable[..., CpiProcess], cloud: dict[str, Any], admin: Any, tmp_path: Path
):
    """Every service demands a client certificate: the excon options of the reference
    (paths on the director VM) authenticate the CPI, with a cached token too."""
    ca, ca_key, ca_name = make_ca(tmp_path, "server")
    cert, key = make_server_cert(tmp_path, ca_key, ca_name)
    client_ca, client_ca_key, client_ca_name = make_ca(tmp_path, "client")
    (tmp_path / "client").mkdir()
    client_cert, client_key = make_server_cert(tmp_path / "client", client_ca_key, client_ca_name)
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    upstreams = cloud_upstreams(admin, cloud)
    with FaultProxy(upstreams, tls=(cert, key), client_ca=client_ca) as proxy:
        auth_url = proxied_auth_url(proxy, cloud)
        options = {
            "ssl_ca_file": str(ca),
            "client_cert": str(client_cert),
            "client_key": str(client_key),
            "ciphers": "HIGH",
        }
        first, second = _cached_calls(cpi_for, auth_url, scratch, {}, **options)
        assert first.error is None, first.error
        assert second.error is None, second.error
        assert [r.service for r in proxy.records].count("identity") == 1  # then cached
        assert "Ignoring openstack.connection_options this CPI does not read: ciphers" in (
            first.stderr
        )

        anonymous = cpi_for(
            auth_url=auth_url, token_cache=False, connection_options={"ssl_ca_file": str(ca)}
        )
        result = anonymous.call("has_vm", _unknown_vm())
        assert result.error is not None
        assert "Keystone" in result.error["message"]
