"""`info`: answered locally, without config, keystoneauth or network (the director calls
it before nearly every operation)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from bosh_openstack_cpi.protocol.envelope import Request

# v2: create_vm returns [cid, networks] and attach_disk a disk hint. v3 (the director's
# highest) only adds create_stemcell's third argument, {"tags": {...}}, which become image
# properties. The director uses min(this, its preferred version); bosh-cli caps it at 2.
API_VERSION = 3
STEMCELL_FORMATS = ["openstack-raw", "openstack-qcow2", "openstack-light"]


def info(request: Request) -> dict[str, Any]:
    return {"api_version": API_VERSION, "stemcell_formats": list(STEMCELL_FORMATS)}
