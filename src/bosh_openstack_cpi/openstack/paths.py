"""The only way an id goes into a request URL or a list filter.

The CPI checks every id's syntax before a call starts (cids.py); this module is the
second wall, for ids that come from OpenStack's own answers and for any method added
later. Quoting alone is no wall: the services' WSGI servers decode `%2F` back into `/`
before routing, so `/servers/%2F<id>` reached the server <id> (seen on the local cloud).
So an id may hold only letters, digits, `-`, `_`, `.`, `~`, `:` and inner spaces (Nova's
flavor ids may have those), nothing a server decodes into a separator, query or fragment;
segments that HTTP clients resolve (`.`, `..`) or that would name the collection instead
of a member (empty) are refused as well. A list filter built
from an empty or missing value would match everything the credentials can see (Neutron's
`ports?device_id=` lists every unbound port), so it is refused too. A test pins that the
adapters build no URL and no filter any other way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

from bosh_openstack_cpi.protocol.errors import CloudError

_UNRESOLVABLE = frozenset({"", ".", ".."})
_ID_SEGMENT = re.compile(r"[A-Za-z0-9._~:-]+(?: [A-Za-z0-9._~:-]+)*")


class UnsafeRequest(CloudError):
    """A request that would not name the resource it was meant for; never sent."""


def path(template: str, *ids: str) -> str:
    """`template` (a constant such as "/servers/{}/metadata") with each `{}` replaced by
    one id (its inner spaces quoted)."""
    if template.count("{}") != len(ids):
        raise ValueError(f"{template!r} takes {template.count('{}')} ids, got {len(ids)}")
    quoted = []
    for value in ids:
        if not isinstance(value, str) or value in _UNRESOLVABLE or not _ID_SEGMENT.fullmatch(value):
            raise UnsafeRequest(
                f"Refusing to send a request for {template} with id {value!r}: an id may "
                "hold only letters, digits, '-', '_', '.', '~', ':' and inner spaces, and "
                "may not be empty or a dot segment"
            )
        quoted.append(quote(value, safe=":"))
    return template.format(*quoted)


def filters(*pairs: tuple[str, str]) -> list[tuple[str, str]]:
    """Query parameters of a list request; a filter without a value, or no filter at all,
    is refused."""
    if not pairs:
        raise UnsafeRequest("Refusing to list without a filter: it would match everything")
    for name, value in pairs:
        if not isinstance(value, str) or not value.strip():
            raise UnsafeRequest(
                f"Refusing to list with an empty filter {name}={value!r}: it would match "
                "every resource the credentials can see"
            )
    return list(pairs)


def with_fields(found: Iterable[tuple[str, str]], *fields: str) -> list[tuple[str, str]]:
    """Filters plus Neutron's `fields` selectors (constants, not filters)."""
    return [*found, *(("fields", name) for name in fields)]
