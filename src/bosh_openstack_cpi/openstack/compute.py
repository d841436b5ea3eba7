"""Nova: servers, flavors, key pairs, volume attachments."""

from __future__ import annotations

from openstack import connection as sdk_connection
from openstack import exceptions as sdk

from bosh_openstack_cpi.openstack.errors import api_errors

# Servers in these states are gone as far as BOSH is concerned.
GONE_STATES = frozenset({"DELETED", "SOFT_DELETED"})


class Compute:
    def __init__(self, connection: sdk_connection.Connection) -> None:
        self._nova = connection.compute

    def server_exists(self, server_id: str) -> bool:
        with api_errors("Compute", f"look up server '{server_id}'"):
            try:
                server = self._nova.get_server(server_id)
            except sdk.NotFoundException:
                return False
        return str(server.status).upper() not in GONE_STATES

    # --- persistent disk attachments (Nova os-volume_attachments) -------------------
    # Methods used by actions/disks.py go below this line.
