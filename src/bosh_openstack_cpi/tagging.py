"""How the CPI marks what it creates, and how metadata values are made acceptable.

Every resource the CPI creates carries the director's UUID, so that leaked resources
can always be found (by operators, by `tools`, by the tests' leak checks):

- servers, volumes, snapshots: metadata `director_uuid`;
- images: property `director_uuid`;
- Neutron ports: description `port_description(director_uuid)` (set in the create
  request itself: no extra API call).
"""

from __future__ import annotations

import json
from typing import Any

DIRECTOR_UUID_KEY = "director_uuid"
PORT_DESCRIPTION_PREFIX = "bosh-openstack-cpi director_uuid="

# Nova and Cinder limit metadata keys and values to 255 characters.
METADATA_LIMIT = 255


def port_description(director_uuid: str) -> str:
    return PORT_DESCRIPTION_PREFIX + director_uuid


def director_of_port(description: str | None) -> str | None:
    if description and description.startswith(PORT_DESCRIPTION_PREFIX):
        return description[len(PORT_DESCRIPTION_PREFIX) :]
    return None


def metadata_value(value: Any) -> str:
    """BOSH metadata values as strings: true/false like the Ruby CPI, JSON for structures."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def sanitize_metadata(metadata: dict[str, Any]) -> dict[str, str]:
    """Drop null keys/values, stringify, and cut keys and values to 255 characters."""
    clean: dict[str, str] = {}
    for key, value in metadata.items():
        if key is None or value is None:
            continue
        clean[str(key)[:METADATA_LIMIT]] = metadata_value(value)[:METADATA_LIMIT]
    return clean
