"""Connection to one OpenStack cloud: Keystone v3 auth, then per-service adapters.

The session is built from cpi.json alone: no clouds.yaml and no OS_* variables
from the director's environment (proxy variables still apply, as in the reference
job's bin/cpi).
"""

from __future__ import annotations

import logging
from functools import cached_property

from keystoneauth1 import exceptions as ksa
from keystoneauth1 import session as ksa_session
from keystoneauth1.identity import v3

from bosh_openstack_cpi import __version__
from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack import retry
from bosh_openstack_cpi.openstack.compute import Compute
from bosh_openstack_cpi.openstack.connection import Connection
from bosh_openstack_cpi.openstack.errors import TLS_HINT, connection_problem
from bosh_openstack_cpi.openstack.image import Image
from bosh_openstack_cpi.openstack.network import Network
from bosh_openstack_cpi.openstack.session_cache import SessionCache
from bosh_openstack_cpi.openstack.volume import Volume
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
        retry.idempotent(session.get_token, f"authenticate at {where}", budget=60)
    except ksa.Unauthorized:
        secret = (
            "openstack.application_credential_secret"
            if config.uses_application_credential
            else "openstack.api_key"
        )
        raise CloudError(
            f"{where} rejected the credentials of {_who(config)} (HTTP 401): check {secret}, "
            "the user/credential name and its domain and project"
        ) from None
    except ksa.SSLError as error:
        raise CloudError(f"TLS verification of {where} failed: {error}. {TLS_HINT}") from None
    except (ksa.ConnectFailure, ksa.ConnectTimeout) as error:
        raise CloudError(f"Cannot connect to {where}: {connection_problem(error)}") from None
    except ksa.HttpError as error:
        raise CloudError(
            f"{where} refused to authenticate {_who(config)}: HTTP {error.http_status} "
            f"{error.message}"
        ) from None
    except ksa.ClientException as error:
        raise CloudError(f"Authentication at {where} failed: {error}") from None


class Cloud:
    """The services of one cloud for one CPI call."""

    def __init__(
        self,
        connection: Connection,
        config: OpenStackConfig,
        cache: SessionCache | None = None,
    ) -> None:
        self.connection = connection
        self.config = config
        self._cache = cache

    def close(self, *, keep_token: bool = True) -> None:
        """Keep the token (and version discovery) for the next CPI call, unless its catalog
        turned out to be incomplete (a token taken while the cloud was changing)."""
        session = self.connection.session
        if self._cache is None or not isinstance(session.auth, v3.Auth):
            return
        if keep_token:
            self._cache.save(session.auth, session)
        else:
            self._cache.drop()

    @classmethod
    def connect(cls, config: OpenStackConfig, ca_file: str | None) -> Cloud:
        verify: bool | str = ca_file or True
        if not config.connection.ssl_verify_peer:
            verify = False
        auth = _auth_plugin(config)
        session = ksa_session.Session(
            auth=auth,
            verify=verify,
            timeout=config.connection.http_timeout,
            app_name="bosh-openstack-cpi",
            app_version=__version__,
        )
        cache = SessionCache(config) if config.token_cache else None
        if cache is not None and cache.load(auth, session):
            log.debug("Reusing the cached Keystone token")
        try:
            _authenticate(session, config)
        except CloudError:
            if cache is not None:
                cache.drop()
            raise
        # keystoneauth's own retries stay off: openstack/retry.py decides per call what may
        # be repeated (uploads never are).
        connection = Connection(session, region_name=config.region, interface=config.endpoint_type)
        return cls(connection, config, cache)

    @cached_property
    def compute(self) -> Compute:
        return Compute(self.connection)

    @cached_property
    def image(self) -> Image:
        return Image(self.connection, self.config)

    @cached_property
    def network(self) -> Network:
        return Network(self.connection, self.config)

    @cached_property
    def volume(self) -> Volume:
        return Volume(self.connection, self.config)
