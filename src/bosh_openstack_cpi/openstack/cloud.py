"""Connection to one OpenStack cloud for one CPI call: the per-service adapters.

With a usable cached token (openstack/session_cache.py) and no proxy, requests go through
the stdlib transport (openstack/transport.py) and neither requests nor keystoneauth is
imported. Otherwise, and for whatever that transport leaves to it, keystoneauth
authenticates and sends (openstack/keystone.py, openstack/connection.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack import http, transport
from bosh_openstack_cpi.openstack.session_cache import LOCK_WAIT_SECONDS, SessionCache
from bosh_openstack_cpi.openstack.tls import TlsSettings

if TYPE_CHECKING:
    from bosh_openstack_cpi.openstack.compute import Compute
    from bosh_openstack_cpi.openstack.connection import Connection
    from bosh_openstack_cpi.openstack.image import Image
    from bosh_openstack_cpi.openstack.network import Network
    from bosh_openstack_cpi.openstack.octavia import LoadBalancer
    from bosh_openstack_cpi.openstack.volume import Volume

log = logging.getLogger(__name__)


def tls_settings(config: OpenStackConfig, ca_file: str | None) -> TlsSettings:
    """A `ca_cert` (or the job's cacert.pem) wins over ssl_ca_file, as in the reference."""
    options = config.connection
    return TlsSettings(
        verify_peer=options.ssl_verify_peer,
        verify_hostname=options.ssl_verify_hostname,
        ca_file=ca_file or options.ssl_ca_file,
        ca_path=options.ssl_ca_path,
        client_cert=options.client_cert,
        client_key=options.client_key,
    )


class Cloud:
    """The services of one cloud for one CPI call."""

    def __init__(
        self,
        connection: http.Services,
        config: OpenStackConfig,
        cache: SessionCache | None = None,
        *,
        keystoneauth: Callable[[], http.Services | None] | None = None,
    ) -> None:
        self.connection = connection
        self.config = config
        self._cache = cache
        self._keystoneauth = keystoneauth

    def close(self, *, keep_token: bool = True) -> None:
        """Keep the token (and version discovery) for the next CPI call, unless its catalog
        turned out to be incomplete (a token taken while the cloud was changing)."""
        if isinstance(self.connection, transport.FastServices):
            self.connection.session.close()
        if self._cache is None:
            return
        if not keep_token:
            self._cache.drop()
            return
        connection = self._keystoneauth() if self._keystoneauth else None
        if connection is not None:  # keystoneauth's token and discovery
            from bosh_openstack_cpi.openstack import keystone

            keystone.save(connection, self._cache)
        if isinstance(self.connection, transport.FastServices):
            self._cache.add_discovery(self.connection.learned_discovery)

    @classmethod
    def connect(cls, config: OpenStackConfig, ca_file: str | None) -> Cloud:
        """`ca_file`: the call's CA file (config PEM or the job's cacert.pem), if any."""
        tls = tls_settings(config, ca_file)
        cache = SessionCache(config) if config.token_cache else None

        def keystoneauth(reuse: bool) -> Connection:
            from bosh_openstack_cpi.openstack import keystone

            return keystone.connect(config, tls, cache, reuse=reuse)

        def fast(state: dict[str, Any]) -> Cloud:
            log.debug("Reusing the cached Keystone token (stdlib transport)")
            session = transport.Session(
                str(state["auth_token"]),
                tls=tls,
                timeout=config.connection.http_timeout,
                connect_timeout=config.connection.connect_timeout,
            )
            services = transport.FastServices(
                str(state["auth_token"]),
                state["body"],
                state["discovery"],
                region_name=config.region,
                interface=config.endpoint_type,
                session=session,
                keystoneauth=keystoneauth,
            )
            return cls(services, config, cache, keystoneauth=lambda: services.keystoneauth)

        state = cache.read() if cache is not None else None
        fast_allowed = transport.environment_allows()
        if state is not None and transport.usable_token(state):
            if fast_allowed:
                return fast(state)
        elif cache is not None:
            # No usable token: calls started together (the director runs many at once)
            # would each fetch one. The first fetches and saves it; the others wait for it
            # and use it.
            with cache.exclusive(wait=LOCK_WAIT_SECONDS):
                state = cache.read()
                if state is not None and transport.usable_token(state) and fast_allowed:
                    return fast(state)
                connection = keystoneauth(True)
                from bosh_openstack_cpi.openstack import keystone

                keystone.save(connection, cache)
            return cls(connection, config, cache, keystoneauth=lambda: connection)
        connection = keystoneauth(True)
        return cls(connection, config, cache, keystoneauth=lambda: connection)

    # Each service's module is imported when a call first uses it (a new process per call).
    @cached_property
    def compute(self) -> Compute:
        from bosh_openstack_cpi.openstack.compute import Compute

        return Compute(self.connection)

    @cached_property
    def image(self) -> Image:
        from bosh_openstack_cpi.openstack.image import Image

        return Image(self.connection, self.config)

    @cached_property
    def network(self) -> Network:
        from bosh_openstack_cpi.openstack.network import Network

        return Network(self.connection, self.config)

    @cached_property
    def volume(self) -> Volume:
        from bosh_openstack_cpi.openstack.volume import Volume

        return Volume(self.connection, self.config)

    @cached_property
    def load_balancer(self) -> LoadBalancer:
        from bosh_openstack_cpi.openstack.octavia import LoadBalancer

        return LoadBalancer(self.connection, self.config)
