"""Everything one CPI call needs, created lazily: the validated config, a
private CA file, and the OpenStack connection. Actions receive a `Call`."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

from bosh_openstack_cpi import config as cpi_config

if TYPE_CHECKING:
    from bosh_openstack_cpi.openstack.cloud import Cloud
    from bosh_openstack_cpi.protocol.envelope import Request

log = logging.getLogger(__name__)


class Call:
    def __init__(self, request: Request, config_path: str, ca_cert_path: str | None) -> None:
        self.request = request
        self._config_path = config_path
        self._ca_cert_path = ca_cert_path
        self._config: cpi_config.CpiConfig | None = None
        self._cloud: Cloud | None = None
        self._cleanups = contextlib.ExitStack()

    @property
    def api_version(self) -> int:
        return self.request.api_version

    @property
    def stemcell_api_version(self) -> int:
        return self.request.stemcell_api_version

    @property
    def director_uuid(self) -> str:
        return str(self.request.context["director_uuid"])

    @property
    def config(self) -> cpi_config.CpiConfig:
        if self._config is None:
            document = cpi_config.read_config_file(self._config_path)
            self._config = cpi_config.load(document, self.request.context)
            if self._config.ignored_keys:
                ignored = ", ".join(self._config.ignored_keys)
                log.warning("Ignoring unknown openstack properties: %s", ignored)
            for warning in self._config.warnings:
                log.warning("%s", warning)
        return self._config

    @property
    def cloud(self) -> Cloud:
        """The authenticated OpenStack connection (imports keystoneauth on first use)."""
        if self._cloud is None:
            from bosh_openstack_cpi.openstack.cloud import Cloud

            self._cloud = Cloud.connect(self.config.openstack, self._ca_file())
        return self._cloud

    def _ca_file(self) -> str | None:
        """A PEM from the config or context goes to a private file, removed after the call;
        otherwise the job's cacert.pem (the CLI's second argument) when it is not empty."""
        pem = self.config.openstack.connection.ca_cert
        if pem:
            import tempfile

            descriptor, path = tempfile.mkstemp(prefix="bosh-openstack-cpi-ca-", suffix=".pem")
            self._cleanups.callback(_remove_quietly, path)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(pem)
            return path
        job_ca = self._ca_cert_path
        if job_ca and os.path.isfile(job_ca) and os.path.getsize(job_ca) > 0:
            return job_ca
        return None

    def close(self, error: BaseException | None = None) -> None:
        if self._cloud is not None:
            from bosh_openstack_cpi.openstack.errors import EndpointUnreachable, ServiceNotInCatalog

            stale = isinstance(error, ServiceNotInCatalog | EndpointUnreachable)
            self._cloud.close(keep_token=not stale)
        self._cleanups.close()

    def __enter__(self) -> Call:
        return self

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        self.close(error)


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
