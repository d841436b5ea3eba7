"""TLS settings against a real TLS server on loopback: what each transport trusts (the
stdlib transport's context, keystoneauth's requests session) and what it presents."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bosh_openstack_cpi.openstack import tls
from bosh_openstack_cpi.openstack.tls import TlsSettings
from bosh_openstack_cpi.protocol.errors import CloudError
from tests.integration.tls_proxy import make_ca, make_server_cert


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A server CA with the server's certificate (for 127.0.0.1), a client CA with a
    client certificate, and an empty directory standing for the OS's CA directory."""
    ca, ca_key, ca_name = make_ca(tmp_path, "server")
    (tmp_path / "server").mkdir()
    cert, key = make_server_cert(tmp_path / "server", ca_key, ca_name)
    client_ca, client_ca_key, client_ca_name = make_ca(tmp_path, "client")
    (tmp_path / "client").mkdir()
    client_cert, client_key = make_server_cert(tmp_path / "client", client_ca_key, client_ca_name)
    (tmp_path / "empty").mkdir()
    return {
        "ca": ca,
        "cert": cert,
        "key": key,
        "client_ca": client_ca,
        "client_cert": client_cert,
        "client_key": client_key,
        "empty": tmp_path / "empty",
    }


@contextlib.contextmanager
def https_server(pki: dict[str, Path], *, client_ca: Path | None = None) -> Iterator[int]:
    """Answers every request with 200; with `client_ca`, requires a client certificate."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pki["cert"], pki["key"])
    if client_ca is not None:
        server_context.verify_mode = ssl.CERT_REQUIRED
        server_context.load_verify_locations(client_ca)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError), client:
                client.settimeout(5)
                with server_context.wrap_socket(client, server_side=True) as conn:
                    conn.recv(65536)
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def stdlib_get(settings: TlsSettings, port: int, host: str = "127.0.0.1") -> None:
    import http.client

    connection = http.client.HTTPSConnection(host, port, timeout=5, context=tls.context(settings))
    try:
        connection.request("GET", "/")
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def requests_get(settings: TlsSettings, port: int, host: str = "127.0.0.1") -> None:
    session = tls.requests_session(settings)
    answer = session.get(f"https://{host}:{port}/", verify=settings.requests_verify, timeout=5)
    assert answer.status_code == 200


TRANSPORTS = [stdlib_get, requests_get]


@pytest.fixture
def os_store(monkeypatch: pytest.MonkeyPatch, pki: dict[str, Path]) -> Path:
    """The OS's CA store is the server's CA alone (OpenSSL's SSL_CERT_FILE/SSL_CERT_DIR)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["ca"]))
    monkeypatch.setenv("SSL_CERT_DIR", str(pki["empty"]))
    return pki["ca"]


@pytest.mark.parametrize("get", TRANSPORTS)
def test_by_default_a_ca_of_the_os_store_is_trusted(get, pki, os_store):
    with https_server(pki) as port:
        get(TlsSettings(), port)


@pytest.mark.parametrize("get", TRANSPORTS)
def test_a_ca_in_no_store_is_not_trusted(get, pki, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(pki["client_ca"]))
    monkeypatch.setenv("SSL_CERT_DIR", str(pki["empty"]))
    with https_server(pki) as port, pytest.raises((ssl.SSLError, requests.exceptions.SSLError)):
        get(TlsSettings(), port)


@pytest.mark.parametrize("get", TRANSPORTS)
def test_a_ca_only_in_the_os_stores_hashed_directory_is_trusted(get, pki, tmp_path, monkeypatch):
    """The store's directory (read lazily, without parsing its bundle file at every call),
    as update-ca-certificates lays it out: `<subject hash>.0` links."""
    directory = tmp_path / "os-certs"
    directory.mkdir()
    subject_hash = subprocess.run(
        ["openssl", "x509", "-noout", "-subject_hash", "-in", str(pki["ca"])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (directory / f"{subject_hash}.0").symlink_to(pki["ca"])
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(directory))
    with https_server(pki) as port:
        get(TlsSettings(), port)


def test_by_default_the_public_bundle_is_trusted_too(os_store):
    import certifi

    public = ssl.create_default_context(cafile=certifi.where()).get_ca_certs()
    trusted = tls.context(TlsSettings()).get_ca_certs()
    assert len(public) > 100
    assert len(trusted) == len(public) + 1  # the bundle and the OS store's one CA


def test_a_given_ca_file_is_the_only_trust(os_store, pki):
    """As the reference (excon): a CA file replaces the default stores."""
    trusted = tls.context(TlsSettings(ca_file=str(pki["client_ca"]))).get_ca_certs()
    assert [c["subject"] for c in trusted] == [
        ((("commonName", "bosh-openstack-cpi test CA client"),),)
    ]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to hash a CA dir")
@pytest.mark.parametrize("get", TRANSPORTS)
def test_ssl_ca_path_is_a_hashed_ca_directory(get, pki, tmp_path):
    directory = tmp_path / "cas"
    directory.mkdir()
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(pki["ca"])],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    shutil.copy(pki["ca"], directory / f"{subject_hash}.0")
    with https_server(pki) as port:
        get(TlsSettings(ca_path=str(directory)), port)
        with pytest.raises((ssl.SSLError, requests.exceptions.SSLError)):
            get(TlsSettings(ca_path=str(pki["empty"])), port)


@pytest.mark.parametrize("get", TRANSPORTS)
def test_ssl_verify_hostname_false_accepts_a_certificate_for_another_name(get, pki):
    """The server's certificate names 127.0.0.1; 'localhost' does not match it."""
    with https_server(pki) as port:
        with pytest.raises((ssl.SSLError, requests.exceptions.SSLError)):
            get(TlsSettings(ca_file=str(pki["ca"])), port, host="localhost")
        get(TlsSettings(ca_file=str(pki["ca"]), verify_hostname=False), port, host="localhost")
        with pytest.raises((ssl.SSLError, requests.exceptions.SSLError)):  # still the CA
            get(
                TlsSettings(ca_file=str(pki["client_ca"]), verify_hostname=False),
                port,
                host="localhost",
            )


@pytest.mark.parametrize("get", TRANSPORTS)
def test_client_certificate_for_mutual_tls(get, pki):
    with https_server(pki, client_ca=pki["client_ca"]) as port:
        with pytest.raises((OSError, requests.exceptions.RequestException)):
            get(TlsSettings(ca_file=str(pki["ca"])), port)
        get(
            TlsSettings(
                ca_file=str(pki["ca"]),
                client_cert=str(pki["client_cert"]),
                client_key=str(pki["client_key"]),
            ),
            port,
        )


def test_unusable_files_name_the_options(tmp_path):
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(
        CloudError, match=r"connection_options: cannot use the CA file .*ssl_ca_file"
    ):
        tls.context(TlsSettings(ca_file=missing))
    with pytest.raises(CloudError, match="cannot use client_cert and client_key"):
        tls.context(TlsSettings(client_cert=missing))


def test_an_encrypted_client_key_is_refused_without_asking_for_a_passphrase(pki, tmp_path):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pki["client_key"].read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    settings = TlsSettings(client_cert=str(pki["client_cert"]), client_key=str(encrypted))
    with pytest.raises(CloudError, match="the key must not be encrypted"):
        tls.context(settings)
