"""The syntax of every OpenStack id the CPI is given, checked before any request.

Cids come from the director's database, or from an operator typing `bosh delete-vm
<cid>`. Every id the CPI hands out is an OpenStack UUID (Nova servers, Cinder volumes
and snapshots, Glance images; `"<image uuid> light"` for a light stemcell), and so is
every Neutron network id a cloud config names. Anything else could only reach a
resource it does not name: `../os-keypairs/k` resolved by the HTTP client, a
sub-resource such as `<vm>/metadata/<key>`, a query string, an empty list filter. So a
malformed id never leaves the process: `has_vm`/`has_disk` answer false, every other
method fails with an error that names the argument and shows what a valid id looks like.

The dispatcher checks the cid arguments (by argument name, create_vm's `disk_cids`
too) before the call starts; the ids inside cloud_properties (a network's `net_id`, a
light stemcell's `image_id`) are checked where those are parsed, with the same functions.
The OpenStack adapters then put ids into URLs only through openstack/paths.py.
"""

from __future__ import annotations

import json
import re

from bosh_openstack_cpi.protocol.errors import CloudError, DiskNotFound, VMNotFound

# OpenStack's ids: the canonical 8-4-4-4-12 hex form (any case; Nova, Cinder, Glance and
# Neutron all generate and accept that form). `fullmatch` is used, so no newline slips by.
UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
LIGHT_SUFFIX = " light"
# The largest volume Cinder can record (its size column is a 32-bit integer of GiB): a
# bigger disk size is refused before any request.
MAX_VOLUME_GIB = 2**31 - 1
EXAMPLE_UUID = "9f1c3a52-5d0e-4b8e-9a8c-2f4b6d7e8a10"


class _Kind:
    """One kind of id: what it is, and the error a malformed one gets."""

    def __init__(self, what: str, error: type[CloudError], *, light: bool = False) -> None:
        self.what = what
        self.error = error
        self.light = light

    def valid(self, value: str) -> bool:
        if self.light and value.endswith(LIGHT_SUFFIX):
            value = value[: -len(LIGHT_SUFFIX)]
        return UUID.fullmatch(value) is not None

    def expected(self) -> str:
        example = f"'{EXAMPLE_UUID}'"
        if self.light:
            example += f" (or '{EXAMPLE_UUID}{LIGHT_SUFFIX}' for a light stemcell)"
        return f"{self.what} UUID such as {example}"


# Argument name -> kind. The dispatcher checks these names in every method.
KINDS: dict[str, _Kind] = {
    "vm_cid": _Kind("a Nova server", VMNotFound),
    "disk_cid": _Kind("a Cinder volume", DiskNotFound),
    "snapshot_cid": _Kind("a Cinder snapshot", CloudError),
    "stemcell_cid": _Kind("a Glance image", CloudError, light=True),
}
# Ids inside other arguments (create_vm's disks and networks, a light stemcell's image).
NESTED: dict[str, _Kind] = {
    "disk_cids": _Kind("a Cinder volume", CloudError),
    "net_id": _Kind("a Neutron network", CloudError),
    "image_id": _Kind("a Glance image", CloudError),
}


def is_valid(argument: str, value: object) -> bool:
    kind = KINDS.get(argument) or NESTED[argument]
    return isinstance(value, str) and kind.valid(value)


def describe(value: object) -> str:
    """The value as JSON, shortened: an id may be a kilobyte of garbage."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + '..."'


def error_for(argument: str, value: object) -> CloudError:
    kind = KINDS.get(argument) or NESTED[argument]
    return kind.error(
        f"Invalid {argument} {describe(value)}: expected {kind.expected()}. "
        "Nothing was sent to OpenStack."
    )


def check(argument: str, value: object) -> str:
    """`value` when it is a well-formed id of the argument's kind; raises otherwise."""
    if not isinstance(value, str) or not is_valid(argument, value):
        raise error_for(argument, value)
    return value


def image_id_of_stemcell(stemcell_cid: str) -> str:
    """The Glance image id of a (checked) stemcell cid."""
    return stemcell_cid.removesuffix(LIGHT_SUFFIX)
