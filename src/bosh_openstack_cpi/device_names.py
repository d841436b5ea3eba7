"""Device names for persistent disks, chosen the way the reference CPI chooses them.

The BOSH agent on OpenStack expects the root disk at `a`, the flavor's ephemeral disk
at `b`, then swap, then a config drive attached as a disk, and persistent disks after
those. Hypervisors remap `sd*` to `vd*` or `xvd*`, so a letter is taken when any of the
three names uses it; the agent finds the disk under whichever name the kernel gives it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

FIRST_LETTER = "b"
PREFIXES = ("/dev/sd", "/dev/vd", "/dev/xvd")
HINT_PREFIX = "/dev/sd"

_DEVICE = re.compile(r"^/dev/(?:sd|vd|xvd|hd)([a-z])$")


def first_letter(*, ephemeral_gib: int, swap_mib: int, config_drive: str | None) -> str:
    """`b`, moved on by one for each of: ephemeral disk, swap disk, config drive as disk."""
    offset = (ephemeral_gib > 0) + (swap_mib > 0) + (config_drive == "disk")
    return chr(ord(FIRST_LETTER) + offset)


def letter_of(device: str | None) -> str | None:
    """`c` for /dev/sdc, /dev/vdc, /dev/xvdc, /dev/hdc; None for anything else."""
    match = _DEVICE.match(device or "")
    return match.group(1) if match else None


def free_device(devices_in_use: Iterable[str | None], first: str) -> str | None:
    """The first /dev/sdX from `first` to `z` whose letter no attached device uses."""
    taken = {letter_of(device) for device in devices_in_use}
    for letter in string.ascii_lowercase[string.ascii_lowercase.index(first) :]:
        if letter not in taken:
            return HINT_PREFIX + letter
    return None


def is_root_device(device: str | None) -> bool:
    """The boot disk of a server is always at letter `a` (a boot volume shows up there)."""
    return letter_of(device) == "a"
