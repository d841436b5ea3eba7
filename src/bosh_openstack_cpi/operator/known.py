"""The cids a director knows, from the JSON the bosh CLI writes:

    bosh vms --json                 (--details adds the disk cids)
    bosh disks --orphaned --json
    bosh stemcells --json

Each is `{"Tables": [{"Content": ..., "Header": {...}, "Rows": [{<key>: <value>}]}], ...}`;
the keys are the column titles in snake case (bosh-cli's ui/table KeyifyHeader):
"vm_cid", "disk_cid", "disk_cids", "cid". A stemcell cid may be "<uuid> light"; a VM with
several disks lists them in one cell. Every UUID in those cells counts as known.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

CID_COLUMNS = ("vm_cid", "disk_cid", "disk_cids", "cid")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class KnownFileError(Exception):
    pass


def read_known(paths: list[str]) -> set[str]:
    known: set[str] = set()
    for path in paths:
        known |= cids_in(_document(Path(path)), path)
    return known


def _document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise KnownFileError(f"{path}: not readable as JSON ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("Tables"), list):
        raise KnownFileError(f'{path}: not the output of `bosh ... --json` (no "Tables" list)')
    return document


def cids_in(document: dict[str, Any], source: str = "the document") -> set[str]:
    found: set[str] = set()
    columns = 0
    for table in document.get("Tables") or []:
        header = table.get("Header") or {}
        columns += len([c for c in CID_COLUMNS if c in header])
        for row in table.get("Rows") or []:
            for column in CID_COLUMNS:
                found |= {m.lower() for m in _UUID.findall(str(row.get(column) or ""))}
    if not columns:
        raise KnownFileError(
            f"{source}: no cid column ({', '.join(CID_COLUMNS)}): use `bosh vms --json`, "
            "`bosh disks --orphaned --json` or `bosh stemcells --json`"
        )
    return found
