"""Authentication at Keystone v3 with keystoneauth, and the keystoneauth transport's
connection (openstack/connection.py) on that session.

The session is built from cpi.json alone: no clouds.yaml and no OS_* variables from the
director's environment (proxy variables still apply, as in the reference job's bin/cpi).
Only imported when a call needs keystoneauth: no usable cached token, a proxy, an
upload, a 401 (openstack/cloud.py decides).
"""

from __future__ import annotations

import logging
from typing import Any

from keystoneauth1 import session as ksa_session
from keystoneauth1.identity import v3

from bosh_openstack_cpi import __version__
from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack import http, retry, tls
from bosh_openstack_cpi.openstack.connection import Connection, get_token
from bosh_openstack_cpi.openstack.errors import TLS_HINT, connection_problem
from bosh_openstack_cpi.openstack.session_cache import SessionCache
from bosh_openstack_cpi.protocol.errors import CloudError

log = logging.getLogger(__name__)


def _auth_plugin(config: OpenStackConfig) -> v3.Auth:
    if config.application_credential_id is not None:
        return v3.ApplicationCredential(
            auth_url=config.auth_url,
            application_credential_id=config.application_credential_id,
            application_credential_secret=config.application_credential_secret or "",
        )
    return v3.Password(
        auth_url=config.auth_url,
        username=config.username,
        password=config.api_key or "",
        user_domain_name=config.user_domain_name,
        project_name=config.project if config.project_id is None else None,
        project_id=config.project_id,
        project_domain_name=config.project_domain_name if config.project_id is None else None,
    )


def _who(config: OpenStackConfig) -> str:
    if config.application_credential_id is not None:
        return f"application credential '{config.application_credential_id}'"
    project = config.project_id or config.project
    return f"user '{config.username}' (domain '{config.user_domain_name}') in project '{project}'"


def _authenticate(session: ksa_session.Session, config: OpenStackConfig) -> None:
    """Fetch the token now, so that auth problems get their own clear message."""
    where = f"Keystone at {config.auth_url}"
    try:
        # Asking for a token again is harmless: transient failures are retried.
        retry.idempotent(lambda: get_token(session), f"authenticate at {where}", budget=60)
    except http.HttpException as error:
        if error.status_code != 401:
            raise CloudError(
                f"{where} refused to authenticate {_who(config)}: HTTP {error.status_code} "
                f"{error.message}"
            ) from None
        secret = (
            "openstack.application_credential_secret"
            if config.uses_application_credential
            else "openstack.api_key"
        )
        raise CloudError(
            f"{where} rejected the credentials of {_who(config)} (HTTP 401): check {secret}, "
            "the user/credential name and its domain and project"
        ) from None
    except http.TlsFailure as error:
        raise CloudError(f"TLS verification of {where} failed: {error}. {TLS_HINT}") from None
    except http.TransportError as error:
        raise CloudError(f"Cannot connect to {where}: {connection_problem(error)}") from None
    except (http.ClientFailure, http.EndpointNotFound) as error:
        raise CloudError(f"Authentication at {where} failed: {error}") from None


def connect(
    config: OpenStackConfig,
    tls_settings: tls.TlsSettings,
    cache: SessionCache | None,
    *,
    reuse: bool,
) -> Connection:
    """An authenticated keystoneauth connection; with `reuse`, from the cached token (when
    there is one), else with a new one (the cached one is dropped)."""
    auth = _auth_plugin(config)
    discovery: dict[str, Any] = {}
    session = ksa_session.Session(
        discovery_cache=discovery,
        auth=auth,
        session=tls.requests_session(tls_settings),
        verify=tls_settings.requests_verify,
        timeout=config.connection.http_timeout,
        app_name="bosh-openstack-cpi",
        app_version=__version__,
    )
    if cache is not None and not reuse:
        cache.drop()
    elif cache is not None and cache.load(auth, discovery):
        log.debug("Reusing the cached Keystone token")
    try:
        _authenticate(session, config)
    except CloudError:
        if cache is not None:
            cache.drop()
        raise
    # keystoneauth's own retries stay off: openstack/retry.py decides per call what may
    # be repeated (uploads never are).
    return Connection(
        session,
        region_name=config.region,
        interface=config.endpoint_type,
        discovery_cache=discovery,
    )


def save(connection: http.Services, cache: SessionCache) -> None:
    """Keep the token (and version discovery) for the next CPI call."""
    if not isinstance(connection, Connection):
        return
    session = connection.session
    if isinstance(session.auth, v3.Auth):
        cache.save(session.auth, connection.discovery_cache)
