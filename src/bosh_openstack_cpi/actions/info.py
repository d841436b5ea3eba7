"""`info`: answered locally, without config, keystoneauth or network (the director calls
it before nearly every operation)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from bosh_openstack_cpi.protocol.envelope import Request

# v2: create_vm returns [cid, networks] and attach_disk a disk hint.
API_VERSION = 2
STEMCELL_FORMATS = ["openstack-raw", "openstack-qcow2", "openstack-light"]


def info(request: Request) -> dict[str, Any]:
    return {"api_version": API_VERSION, "stemcell_formats": list(STEMCELL_FORMATS)}
