"""What a call trusts and presents over TLS, the same for both transports: the stdlib
transport (openstack/transport.py) wraps its sockets in `context()`, keystoneauth's
requests session gets it through `requests_session()`.

Trust follows the reference CPI (excon): the CA file and/or directory when one is given
(`ca_cert`, the job's cacert.pem, `ssl_ca_file`, `ssl_ca_path`), else the operating
system's store (where a director VM gets `env.bosh.trusted_certs`, and which honours
OpenSSL's SSL_CERT_FILE and SSL_CERT_DIR) plus a bundle of public CAs (certifi's, where
excon ships its own).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from bosh_openstack_cpi.protocol.errors import CloudError

if TYPE_CHECKING:
    import requests

_OPTIONS = "openstack.connection_options"
T = TypeVar("T")


@dataclass(frozen=True)
class TlsSettings:
    verify_peer: bool = True
    verify_hostname: bool = True
    ca_file: str | None = None
    ca_path: str | None = None
    client_cert: str | None = None
    client_key: str | None = None

    @property
    def requests_verify(self) -> bool | str:
        """requests' `verify`: what it loads into the context is already in it."""
        if not self.verify_peer:
            return False
        return self.ca_file or self.ca_path or True


def context(settings: TlsSettings) -> ssl.SSLContext:
    """The client context of one call. CloudError naming the option when a file or
    directory it names cannot be used."""
    if not settings.verify_peer:
        insecure = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no store to load: nothing is checked
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        _present_client_certificate(insecure, settings)
        return insecure
    if settings.ca_file or settings.ca_path:
        tls = _loaded(
            lambda: ssl.create_default_context(cafile=settings.ca_file, capath=settings.ca_path),
            "the CA file (ca_cert, the job's cacert.pem, or ssl_ca_file) or ssl_ca_path",
        )
    else:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _trust_the_operating_system(tls)
        tls.load_verify_locations(cafile=_public_bundle())
    tls.check_hostname = settings.verify_hostname
    _present_client_certificate(tls, settings)
    return tls


def _trust_the_operating_system(tls: ssl.SSLContext) -> None:
    """The OS store, as OpenSSL finds it (SSL_CERT_FILE, SSL_CERT_DIR honoured). Its
    hashed directory is read lazily, a CA at a time as a handshake needs it; its bundle
    file is parsed whole (about 20 ms, paid by every call that speaks TLS), so it is
    loaded only when SSL_CERT_FILE names it or there is no directory. On Debian and
    Ubuntu (stemcells included) both hold the same CAs, `env.bosh.trusted_certs` too."""
    paths = ssl.get_default_verify_paths()
    directory = paths.capath if paths.capath and os.path.isdir(paths.capath) else None
    if directory is not None:
        tls.load_verify_locations(capath=directory)
    named_file = bool(os.environ.get(paths.openssl_cafile_env))
    if paths.cafile and (named_file or directory is None):
        tls.load_verify_locations(cafile=paths.cafile)


def _public_bundle() -> str:
    import certifi

    return str(certifi.where())


def _present_client_certificate(tls: ssl.SSLContext, settings: TlsSettings) -> None:
    if settings.client_cert is None:
        return
    client_cert = settings.client_cert
    # An empty passphrase: OpenSSL would otherwise ask for one on the terminal.
    _loaded(
        lambda: tls.load_cert_chain(client_cert, settings.client_key, password=b""),
        "client_cert and client_key (PEM files: the certificate, and its private key "
        "unless the certificate file holds it; the key must not be encrypted)",
    )


def _loaded(load: Callable[[], T], what: str) -> T:
    try:
        return load()
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise CloudError(f"{_OPTIONS}: cannot use {what}: {reason}") from None


def requests_session(settings: TlsSettings) -> requests.Session:
    """A requests session for keystoneauth whose HTTPS connections use `context()`."""
    import requests
    from keystoneauth1.session import TCPKeepAliveAdapter

    tls = context(settings)

    class ContextAdapter(TCPKeepAliveAdapter):
        """keystoneauth's adapter (TCP keep-alive) with the call's TLS context, also for
        connections through an https_proxy tunnel."""

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **_with_context(kwargs, tls, settings))

        def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
            return super().proxy_manager_for(proxy, **_with_context(proxy_kwargs, tls, settings))

    session = requests.Session()
    adapter = ContextAdapter()
    for scheme in ("https://", "http://"):
        session.mount(scheme, adapter)
    return session


def _with_context(
    kwargs: dict[str, Any], tls: ssl.SSLContext, settings: TlsSettings
) -> dict[str, Any]:
    kwargs["ssl_context"] = tls
    if settings.verify_peer and not settings.verify_hostname:
        kwargs["assert_hostname"] = False  # urllib3 would otherwise match the name itself
    return kwargs
