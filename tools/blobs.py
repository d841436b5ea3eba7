"""config/blobs.yml as bosh-cli reads and writes it, and the checksums of blob files.

Each entry is `<path under blobs/>: {size, object_id?, sha}`; `sha` is `sha256:<hex>` (what
bosh-cli writes today) or a bare SHA-1 (older releases). `object_id` appears once the blob
is uploaded to the release's blobstore (`bosh upload-blobs`); without it bosh-cli takes the
file from blobs/.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
BLOBS_YML = REPO / "config" / "blobs.yml"
BLOBS_DIR = REPO / "blobs"
# Content-addressed (sha256/<hex>), shared by every checkout on the machine.
CACHE = Path(os.environ.get("BOSH_CPI_BLOB_CACHE", "/var/tmp/bosh-openstack-cpi-blobs"))  # noqa: S108
SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
SHA1 = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Blob:
    path: str
    size: int
    sha: str
    object_id: str | None = None

    @property
    def sha256(self) -> str:
        """The hex SHA-256; blobs this repository adds always carry one."""
        if not SHA256.match(self.sha):
            raise ValueError(f"{self.path}: sha is not sha256:<hex>: {self.sha!r}")
        return self.sha.removeprefix("sha256:")


def load_blobs(path: Path = BLOBS_YML) -> dict[str, Blob]:
    document: Any = yaml.safe_load(path.read_text()) if path.exists() else None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a mapping of blob paths, got {type(document)}")
    blobs = {}
    for blob_path, entry in document.items():
        if not isinstance(entry, dict) or not {"size", "sha"} <= entry.keys():
            raise ValueError(f"{path}: {blob_path}: expected size and sha, got {entry!r}")
        blobs[str(blob_path)] = Blob(
            str(blob_path), int(entry["size"]), str(entry["sha"]), entry.get("object_id")
        )
    return blobs


def dump_blobs(blobs: dict[str, Blob], path: Path = BLOBS_YML) -> None:
    """Written in bosh-cli's own layout (sorted paths; size, object_id, sha) so that
    `bosh add-blob`/`upload-blobs` leave a small diff."""
    lines = []
    for blob_path in sorted(blobs):
        blob = blobs[blob_path]
        lines += [f"{blob_path}:", f"  size: {blob.size}"]
        if blob.object_id:
            lines.append(f"  object_id: {blob.object_id}")
        lines.append(f"  sha: {blob.sha}")
    path.write_text("\n".join(lines) + "\n")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_matches(path: Path, blob: Blob) -> bool:
    """Whether the file is this blob (size first: cheap, and catches partial downloads)."""
    if not path.is_file() or path.stat().st_size != blob.size:
        return False
    if SHA1.match(blob.sha):
        return hashlib.sha1(path.read_bytes(), usedforsecurity=False).hexdigest() == blob.sha
    return file_sha256(path) == blob.sha256


def blob_for_file(blob_path: str, path: Path) -> Blob:
    return Blob(blob_path, path.stat().st_size, f"sha256:{file_sha256(path)}")


def store_in_cache(path: Path, cache: Path = CACHE) -> Path:
    """Copy a verified file into the cache under its SHA-256 (atomic: a reader never
    sees half a file)."""
    target = cache / "sha256" / file_sha256(path)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        shutil.copyfile(path, partial)
        partial.replace(target)
    return target
