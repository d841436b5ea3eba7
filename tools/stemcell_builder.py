"""Build small but valid test stemcells, and large ones quickly.

    build_stemcell(directory, disk_format="qcow2", size_bytes=64 << 20) -> BuiltStemcell

writes, in `directory`:

- `root.img`: a qcow2 (compat 0.10, as the stemcell builder makes them) or a raw disk
  image of `size_bytes` virtual bytes; kept only with keep_root_img=True;
- `image`: a gzipped tar holding `root.img` (the file the director passes to
  create_stemcell);
- `stemcell.MF`: the manifest, whose cloud_properties are create_stemcell's second
  argument.

Content "zeros" is an empty disk (a sparse file: a 1 GiB stemcell takes a few seconds);
"mixed" repeats a 4 MiB pattern of incompressible, compressible and zero blocks, for
measurements that include real decompression work. Repeated blocks are compressed once:
the compressor is flushed (Z_FULL_FLUSH) before each block, so a block's compressed
bytes do not depend on what came before and can be reused.

    .venv/bin/python -m tools.stemcell_builder DIR [--format raw] [--size 1GiB] [--pack]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import struct
import subprocess
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

QEMU_IMG = "/usr/bin/qemu-img"
BLOCK = 1 << 20
MIB = 1 << 20
DEFAULT_NAME = "bosh-openstack-kvm-ubuntu-jammy-go_agent"
DEFAULT_VERSION = "0.0.1-test"
# Distinct blocks whose compressed form is kept for reuse.
_CACHE_ENTRIES = 8


class BuiltStemcell(NamedTuple):
    """`image, cloud_properties = build_stemcell(...)`."""

    image: Path
    cloud_properties: dict[str, Any]

    @property
    def manifest(self) -> Path:
        return self.image.parent / "stemcell.MF"

    @property
    def root_img(self) -> Path:
        """Present only when built with keep_root_img=True."""
        return self.image.parent / "root.img"


def build_stemcell(
    directory: Path | str,
    disk_format: str = "qcow2",
    size_bytes: int = 64 * MIB,
    *,
    content: str = "zeros",
    name: str = DEFAULT_NAME,
    version: str = DEFAULT_VERSION,
    keep_root_img: bool = False,
    extra_cloud_properties: dict[str, Any] | None = None,
) -> BuiltStemcell:
    """Write root.img, `image` and stemcell.MF into `directory`; see the module doc."""
    if disk_format not in ("qcow2", "raw"):
        raise ValueError(f"disk_format must be qcow2 or raw, got {disk_format!r}")
    if content not in ("zeros", "mixed"):
        raise ValueError(f"content must be zeros or mixed, got {content!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    root_img = directory / "root.img"
    if disk_format == "raw":
        write_raw(root_img, size_bytes, content)
    else:
        write_qcow2(root_img, size_bytes, content)
    image = directory / "image"
    image_sha1 = write_image_archive(root_img, image)
    if not keep_root_img:
        root_img.unlink()
    if disk_format == "raw":
        name = name if name.endswith("-raw") else f"{name}-raw"
    cloud_properties: dict[str, Any] = {
        "name": name,
        "version": version,
        "infrastructure": "openstack",
        "hypervisor": "kvm",
        "disk": max(1, -(-size_bytes // MIB)),
        "disk_format": disk_format,
        "container_format": "bare",
        "os_type": "linux",
        "os_distro": "ubuntu",
        "architecture": "x86_64",
        "auto_disk_config": True,
        **(extra_cloud_properties or {}),
    }
    write_manifest(directory / "stemcell.MF", cloud_properties, disk_format, image_sha1)
    return BuiltStemcell(image, cloud_properties)


def pack_stemcell(directory: Path | str) -> Path:
    """The outer stemcell tarball (stemcell.MF + image), as `bosh upload-stemcell` takes."""
    directory = Path(directory)
    tarball = directory / "stemcell.tgz"
    with tarfile.open(tarball, "w:gz", compresslevel=1) as archive:
        for member in ("stemcell.MF", "image"):
            archive.add(directory / member, arcname=member)
    return tarball


# --- root.img ----------------------------------------------------------------------


def _pattern_blocks(seed: int = 7) -> list[bytes]:
    """4 MiB: one incompressible, one compressible (word salad), two zero blocks."""
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    words = [rng.randbytes(rng.randint(2, 9)).hex() for _ in range(512)]
    text = bytearray()
    while len(text) < BLOCK:
        text += (" ".join(rng.choice(words) for _ in range(16)) + "\n").encode()
    return [rng.randbytes(BLOCK), bytes(text[:BLOCK]), bytes(BLOCK), bytes(BLOCK)]


def _blocks(size: int, content: str) -> Iterator[bytes]:
    pattern = _pattern_blocks() if content == "mixed" else [bytes(BLOCK)]
    written = 0
    index = 0
    while written < size:
        block = pattern[index % len(pattern)][: size - written]
        index += 1
        written += len(block)
        yield block


def write_raw(path: Path, size: int, content: str = "zeros") -> None:
    with open(path, "wb") as handle:
        if content == "zeros":
            handle.truncate(size)  # sparse: nothing is written
            return
        for block in _blocks(size, content):
            if block.count(0) == len(block):
                handle.seek(len(block), os.SEEK_CUR)  # keep zero blocks sparse
            else:
                handle.write(block)
        handle.truncate(size)


def write_qcow2(path: Path, size: int, content: str = "zeros") -> None:
    """With qemu-img when installed; otherwise (zeros only) a minimal valid qcow2."""
    if not os.access(QEMU_IMG, os.X_OK):
        if content != "zeros":
            raise RuntimeError(f"{QEMU_IMG} is needed for a qcow2 with content {content!r}")
        write_empty_qcow2(path, size)
        return
    options = ["-o", "compat=0.10"]
    if content == "zeros":
        subprocess.run(
            [QEMU_IMG, "create", "-q", "-f", "qcow2", *options, str(path), str(size)], check=True
        )
        return
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        raw = Path(scratch) / "raw.img"
        write_raw(raw, size, content)
        subprocess.run(
            [QEMU_IMG, "convert", "-q", "-f", "raw", "-O", "qcow2", *options, str(raw), str(path)],
            check=True,
        )


def write_empty_qcow2(path: Path, size: int, cluster_bits: int = 16) -> None:
    """A qcow2 version 2 image of `size` virtual bytes with no data clusters allocated.

    Layout, one cluster each: header, refcount table, refcount block, then the L1 table
    (all entries 0: every guest cluster reads as zeros). Every cluster in use has
    refcount 1, which is what `qemu-img check` verifies.
    """
    size = -(-size // 512) * 512  # qemu counts virtual disks in 512-byte sectors
    cluster = 1 << cluster_bits
    bytes_per_l2 = (cluster // 8) * cluster
    l1_size = max(1, -(-size // bytes_per_l2))
    l1_clusters = -(-(l1_size * 8) // cluster)
    refcount_table, refcount_block, l1_table = cluster, 2 * cluster, 3 * cluster
    clusters_used = 3 + l1_clusters
    header = struct.pack(
        ">4sIQIIQIIQQIIQ",
        b"QFI\xfb",
        2,  # version
        0,  # backing file offset
        0,  # backing file name length
        cluster_bits,
        size,
        0,  # no encryption
        l1_size,
        l1_table,
        refcount_table,
        1,  # refcount table clusters
        0,  # snapshots
        0,  # snapshots offset
    )
    with open(path, "wb") as handle:
        handle.write(header)
        handle.seek(refcount_table)
        handle.write(struct.pack(">Q", refcount_block))
        handle.seek(refcount_block)
        handle.write(struct.pack(f">{clusters_used}H", *([1] * clusters_used)))
        handle.truncate(clusters_used * cluster)


# --- the `image` archive: tar + gzip -----------------------------------------------


class _GzipWriter:
    """A gzip stream whose full blocks are compressed after a full flush and cached."""

    def __init__(self, out: BinaryIO, level: int = 1) -> None:
        self._out = out
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc = 0
        self._length = 0
        self._cache: dict[bytes, bytes] = {}
        self.sha1 = hashlib.sha1()  # noqa: S324 (stemcell.MF's sha1 field)
        # gzip header: deflate, no flags, no mtime, unix
        self._emit(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03")

    def _emit(self, data: bytes) -> None:
        if data:
            self._out.write(data)
            self.sha1.update(data)

    def _account(self, data: bytes) -> None:
        self._crc = zlib.crc32(data, self._crc)
        self._length += len(data)

    def write(self, data: bytes) -> None:
        self._account(data)
        self._emit(self._compressor.compress(data))

    def write_block(self, block: bytes) -> None:
        self._account(block)
        self._emit(self._compressor.flush(zlib.Z_FULL_FLUSH))
        compressed = self._cache.get(block)
        if compressed is None:
            compressed = self._compressor.compress(block) + self._compressor.flush(
                zlib.Z_FULL_FLUSH
            )
            if len(self._cache) < _CACHE_ENTRIES:
                self._cache[block] = compressed
        self._emit(compressed)

    def close(self) -> None:
        self._emit(self._compressor.flush(zlib.Z_FINISH))
        self._emit(struct.pack("<II", self._crc, self._length & 0xFFFFFFFF))


def _file_blocks(source: BinaryIO, size: int) -> Iterator[bytes]:
    """The file in blocks; holes of a sparse file are not even read (SEEK_DATA)."""
    descriptor = source.fileno()
    zeros = bytes(BLOCK)
    offset = 0
    while offset < size:
        length = min(BLOCK, size - offset)
        try:
            next_data = os.lseek(descriptor, offset, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole from here to the end
            next_data = size
        if next_data >= offset + length:
            yield zeros if length == BLOCK else bytes(length)
        else:
            source.seek(offset)
            block = source.read(length)
            if len(block) != length:
                raise RuntimeError(f"{source.name} shrank while it was archived")
            yield block
        offset += length


def write_image_archive(root_img: Path, image: Path, member_name: str = "root.img") -> str:
    """`tar czf image root.img`, quickly; returns the sha1 of the archive."""
    size = root_img.stat().st_size
    info = tarfile.TarInfo(member_name)
    info.size = size
    info.mode = 0o644
    info.mtime = int(time.time())
    with open(image, "wb") as out, open(root_img, "rb") as source:
        writer = _GzipWriter(out)
        writer.write(info.tobuf(format=tarfile.GNU_FORMAT))
        for block in _file_blocks(source, size):
            writer.write_block(block)
        padding = -size % tarfile.BLOCKSIZE
        end = 2 * tarfile.BLOCKSIZE
        record_padding = -(tarfile.BLOCKSIZE + size + padding + end) % tarfile.RECORDSIZE
        writer.write(bytes(padding + end + record_padding))
        writer.close()
        return writer.sha1.hexdigest()


def write_manifest(
    path: Path, cloud_properties: dict[str, Any], disk_format: str, image_sha1: str
) -> None:
    """stemcell.MF as YAML (values written as JSON scalars, which YAML reads alike)."""
    lines = [
        f"name: {json.dumps(cloud_properties['name'])}",
        f"version: {json.dumps(str(cloud_properties['version']))}",
        "bosh_protocol: 1",
        "api_version: 3",
        f"sha1: {image_sha1}",
        "operating_system: ubuntu-jammy",
        f"stemcell_formats: [openstack-{disk_format}]",
        "cloud_properties:",
        *(f"  {key}: {json.dumps(value)}" for key, value in cloud_properties.items()),
    ]
    path.write_text("\n".join(lines) + "\n")


# --- command line ------------------------------------------------------------------


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([KMG]i?B?)?", text.strip(), re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 64MiB, 1GiB)")
    unit = (match.group(2) or "B")[0].upper()
    return int(match.group(1)) * {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--format", choices=("qcow2", "raw"), default="qcow2")
    parser.add_argument("--size", type=parse_size, default=64 * MIB, help="e.g. 64MiB, 1GiB")
    parser.add_argument("--content", choices=("zeros", "mixed"), default="zeros")
    parser.add_argument("--name", default=DEFAULT_NAME)
    parser.add_argument("--version", default=DEFAULT_VERSION)
    parser.add_argument("--keep-root-img", action="store_true")
    parser.add_argument("--pack", action="store_true", help="also write stemcell.tgz")
    args = parser.parse_args(argv)
    started = time.monotonic()
    built = build_stemcell(
        args.directory,
        args.format,
        args.size,
        content=args.content,
        name=args.name,
        version=args.version,
        keep_root_img=args.keep_root_img,
    )
    if args.pack:
        print(pack_stemcell(args.directory))
    print(f"image: {built.image} ({built.image.stat().st_size} bytes)")
    print(f"cloud_properties: {json.dumps(built.cloud_properties)}")
    print(f"built in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["BuiltStemcell", "build_stemcell", "pack_stemcell"]
