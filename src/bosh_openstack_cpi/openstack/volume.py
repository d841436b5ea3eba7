"""Cinder: volumes, snapshots, volume types."""

from __future__ import annotations

from openstack import connection as sdk_connection

from bosh_openstack_cpi.config import OpenStackConfig


class Volume:
    def __init__(self, connection: sdk_connection.Connection, config: OpenStackConfig) -> None:
        self._connection = connection
        self._config = config
