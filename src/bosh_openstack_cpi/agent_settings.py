"""The agent settings a new VM receives in its Nova user_data (cpi-protocol.md §5.3).

This CPI is registry-less: the user_data always carries the full settings, which the
agent reads from the metadata service or the config drive. They hold the director's
NATS certificates and agent passwords, so they are never logged.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from bosh_openstack_cpi.protocol.errors import CloudError
from bosh_openstack_cpi.protocol.redaction import register_secret

SYSTEM_DISK = "/dev/sda"
EPHEMERAL_DISK = "/dev/sdb"
# Nova refuses user_data longer than 65535 characters, counted base64-encoded.
USER_DATA_LIMIT = 65535
# Keys the CPI writes itself; an `agent` section key of the same name does not replace them.
CPI_KEYS = frozenset({"server", "vm", "agent_id", "networks", "dns", "disks", "env"})
# Same length as a real MAC: the size check before any port exists is exact.
PLACEHOLDER_MAC = "00:00:00:00:00:00"


def agent_networks(
    networks: dict[str, Any], use_dhcp: bool, macs: dict[str, str]
) -> dict[str, Any]:
    """The director's networks as received, plus `use_dhcp` on every non-vip network and
    the MAC of the port the CPI created for each manual network. Also create_vm's answer."""
    result = copy.deepcopy(networks)
    for name, settings in result.items():
        if not isinstance(settings, dict):
            continue
        if settings.get("type") != "vip":
            settings["use_dhcp"] = use_dhcp
        if name in macs:
            settings["mac"] = macs[name]
    return result


def nameservers(networks: dict[str, Any]) -> list[str] | None:
    """The DNS servers of the network marked default for dns, else of the last network
    that has some (what the reference CPI ends up with)."""
    chosen: list[str] | None = None
    for settings in networks.values():
        if not isinstance(settings, dict) or not settings.get("dns"):
            continue
        if "dns" in (settings.get("default") or []):
            return list(settings["dns"])
        chosen = list(settings["dns"])
    return chosen


def build(
    *,
    server_name: str,
    agent_id: str,
    networks: dict[str, Any],
    has_ephemeral_disk: bool,
    env: dict[str, Any],
    agent_config: dict[str, Any],
) -> dict[str, Any]:
    disks: dict[str, Any] = {"system": SYSTEM_DISK, "persistent": {}}
    if has_ephemeral_disk:
        disks["ephemeral"] = EPHEMERAL_DISK
    settings: dict[str, Any] = {
        "server": {"name": server_name},
        "vm": {"name": server_name},
        "agent_id": agent_id,
        "networks": networks,
    }
    dns = nameservers(networks)
    if dns:
        settings["dns"] = {"nameserver": dns}
    settings["disks"] = disks
    settings["env"] = env
    for key, value in agent_config.items():
        if key not in CPI_KEYS and value is not None:
            settings[key] = value
    return settings


def shadowed_agent_keys(agent_config: dict[str, Any]) -> list[str]:
    """Keys of the config's `agent` section that the CPI's own settings win over (the
    reference let them replace the VM's identity, networks, disks and env)."""
    return sorted(k for k in agent_config if k in CPI_KEYS)


def encode(settings: dict[str, Any]) -> str:
    """Base64 of the compact JSON, as Nova's user_data; CloudError when Nova would refuse it,
    naming the largest parts so the operator knows what to shrink."""
    document = json.dumps(settings, separators=(",", ":")).encode()
    encoded = base64.b64encode(document).decode("ascii")
    # The agent's secrets, base64-encoded: masked wherever OpenStack might quote it (Nova's
    # validation errors quote the values they refuse).
    register_secret(encoded)
    if len(encoded) > USER_DATA_LIMIT:
        parts = sorted(
            (
                (key, len(json.dumps(value, separators=(",", ":"))))
                for key, value in settings.items()
            ),
            key=lambda item: item[1],
            reverse=True,
        )
        largest = ", ".join(f"{key} {size} bytes" for key, size in parts[:3])
        raise CloudError(
            f"The agent settings of this VM are {len(encoded)} bytes base64-encoded, more than the "
            f"{USER_DATA_LIMIT} bytes Nova accepts as user_data (largest parts: {largest}). "
            "Shrink the instance group's env (e.g. fewer or smaller env.bosh certificates or "
            "authorized_keys); no resource was created"
        )
    return encoded
