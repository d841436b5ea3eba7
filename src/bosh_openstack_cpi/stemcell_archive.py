"""Reading a stemcell's `image` file: a gzipped tar holding `root.img`, streamed.

Nothing is extracted to disk and memory stays flat whatever the image size: the gzip
layer and the tar layer are read sequentially, one piece at a time, and a reader thread
keeps only a few pieces ahead of the consumer (the upload). Both layers are small and
written for this one pass (zlib does the inflating and checks each gzip member's CRC-32
and length; `tarfile.TarInfo.frombuf` parses and checksums each header): pieces of
`root.img` go from zlib to the consumer without being copied, which the stdlib's
`gzip` + `tarfile` stack does several times per megabyte (a review measured the stdlib
stack at 1.04-1.30x this reader's CPU per GiB, docs/stemcells.md; whether to hand the
tar headers to `tarfile` is issue 15's open item).

Everything that can be checked before an upload starts is checked when the archive is
opened: the file exists and is gzip, the members before `root.img` are safe, `root.img`
is a non-empty regular file, and its first bytes match the declared disk format. The
rest of the archive (members after `root.img`, the gzip checksum) can only be read
after `root.img`'s data, so the last piece of `root.img` is held back until that rest
has been verified: the receiver never gets a complete image from a corrupt archive.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import tarfile
import threading
import time
import zlib
from collections.abc import Generator, Iterator
from pathlib import PurePosixPath
from typing import IO, BinaryIO, cast

from bosh_openstack_cpi.protocol.errors import CloudError

ROOT_IMAGE = "root.img"
CHUNK_SIZE = 1 << 20
# Chunks the reader thread may hold ahead of the consumer (memory ≈ depth x chunk).
READ_AHEAD = 4
# The hash Glance computes by default (os_hash_algo); compared after the upload.
HASH_ALGORITHM = "sha512"
QCOW2_MAGIC = b"QFI\xfb"
SUPPORTED_DISK_FORMATS = ("qcow2", "raw")


class StemcellImageError(CloudError):
    """The stemcell's image file is not usable; the message names the file and why."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"The stemcell image '{path}' {problem}")


def detect_format(head: bytes) -> str:
    """'qcow2' or 'raw' from the first bytes of a disk image."""
    return "qcow2" if head.startswith(QCOW2_MAGIC) else "raw"


def check_disk_format(path: str, declared: str, head: bytes) -> None:
    """The declared cloud_properties.disk_format must match root.img's content."""
    actual = detect_format(head)
    if declared != actual:
        raise StemcellImageError(
            path,
            f"holds a {actual} root.img, but the stemcell's cloud_properties.disk_format "
            f"is '{declared}': repack the stemcell or fix its stemcell.MF",
        )


# --- gzip -----------------------------------------------------------------------------

GZIP_MAGIC = b"\x1f\x8b"
# Compressed bytes read at a time; what zlib makes of them is capped at CHUNK_SIZE.
INPUT_SIZE = 256 << 10


class _Gunzip:
    """The decompressed content of a gzip file (one or more members, trailing zero
    padding allowed, as gzip(1) does), in pieces of at most `limit` bytes."""

    def __init__(self, handle: BinaryIO, path: str) -> None:
        self._handle = handle
        self._path = path
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._input = b""  # compressed bytes read but not yet given to zlib
        self._pushed_back = b""
        self._finished = False

    def read_some(self, limit: int) -> bytes:
        """Up to `limit` bytes (at least one), or b"" at the end of the last member."""
        if self._pushed_back:
            piece, self._pushed_back = self._pushed_back[:limit], self._pushed_back[limit:]
            return piece
        while not self._finished:
            if self._inflate.eof:
                self._start_next_member()
                continue
            data = self._inflate.unconsumed_tail or self._read_input()
            if not data:
                raise StemcellImageError(
                    self._path, "is truncated (its gzip stream ends before the end marker)"
                )
            try:
                piece = self._inflate.decompress(data, limit)
            except zlib.error as error:
                raise StemcellImageError(self._path, f"is corrupt (gzip: {error})") from None
            if piece:
                return piece
        return b""

    def read_exact(self, size: int, what: str) -> bytes:
        pieces = []
        missing = size
        while missing:
            piece = self.read_some(missing)
            if not piece:
                raise StemcellImageError(self._path, f"is truncated: it ends inside {what}")
            pieces.append(piece)
            missing -= len(piece)
        return b"".join(pieces)

    def skip(self, size: int, what: str) -> None:
        while size:
            piece = self.read_some(min(size, CHUNK_SIZE))
            if not piece:
                raise StemcellImageError(self._path, f"is truncated: it ends inside {what}")
            size -= len(piece)

    def push_back(self, data: bytes) -> None:
        self._pushed_back = data + self._pushed_back

    def drain(self) -> None:
        """Read to the very end, so that zlib checks every member's CRC-32 and length."""
        while self.read_some(CHUNK_SIZE):
            pass

    def _read_input(self) -> bytes:
        if self._input:
            data, self._input = self._input, b""
            return data
        try:
            return self._handle.read(INPUT_SIZE)
        except OSError as error:
            raise StemcellImageError(self._path, f"cannot be read: {error.strerror}") from None

    def _start_next_member(self) -> None:
        rest = self._inflate.unused_data
        while True:
            rest = rest.lstrip(b"\0")
            if len(rest) >= len(GZIP_MAGIC):
                break
            more = self._read_input()
            if not more:
                if rest:
                    raise StemcellImageError(self._path, "has stray bytes after its gzip data")
                self._finished = True
                return
            rest += more
        if not rest.startswith(GZIP_MAGIC):
            raise StemcellImageError(self._path, "has stray bytes after its gzip data")
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._input = rest


# --- tar ------------------------------------------------------------------------------

BLOCK = tarfile.BLOCKSIZE
_END_OF_ARCHIVE = bytes(BLOCK)


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


class _Member:
    """One tar member, after GNU long-name and pax extended headers were applied."""

    def __init__(self, info: tarfile.TarInfo, sparse: bool) -> None:
        self.info = info
        self.name = info.name
        self.size = info.size
        self.sparse = sparse

    def has_data(self) -> bool:
        """Links, directories and devices have no data blocks, whatever `size` says."""
        return self.info.isfile()


def _next_member(gunzip: _Gunzip, path: str) -> _Member | None:
    """The next member's header (its data is left to the caller), None at the end."""
    long_name: str | None = None
    long_link: str | None = None
    pax: dict[str, str] = {}
    while True:
        block = gunzip.read_some(BLOCK)
        if not block:
            return None  # the end marker is missing; tar(1) accepts that too
        if len(block) < BLOCK:
            block += gunzip.read_exact(BLOCK - len(block), "a tar header")
        if block == _END_OF_ARCHIVE:
            return None
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as error:
            raise StemcellImageError(
                path, f"is gzip-compressed but not a valid tar archive ({error})"
            ) from None
        if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            data = gunzip.read_exact(_padded(info.size), "a long name")
            value = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            if info.type == tarfile.GNUTYPE_LONGNAME:
                long_name = value
            else:
                long_link = value
            continue
        if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE):
            data = gunzip.read_exact(_padded(info.size), "a pax header")
            if info.type == tarfile.XHDTYPE:  # global headers only set defaults: ignored
                pax.update(_pax_records(data[: info.size], path))
            continue
        if long_name is not None:
            info.name = long_name
        if long_link is not None:
            info.linkname = long_link
        info.name = pax.get("path", info.name)
        info.linkname = pax.get("linkpath", info.linkname)
        if "size" in pax:
            try:
                info.size = int(pax["size"])
            except ValueError:
                raise StemcellImageError(path, "has a pax header with a bad size") from None
        sparse = info.type == tarfile.GNUTYPE_SPARSE or any(
            key.startswith("GNU.sparse.") for key in pax
        )
        return _Member(info, sparse)


def _pax_records(data: bytes, path: str) -> dict[str, str]:
    """`<length> <key>=<value>\n` records (POSIX.1-2001)."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data) and data[position] != 0:
        space = data.find(b" ", position)
        try:
            length = int(data[position:space])
        except ValueError:
            raise StemcellImageError(path, "has a malformed pax header") from None
        record = data[space + 1 : position + length - 1]
        key, equals, value = record.partition(b"=")
        if length <= 0 or not equals:
            raise StemcellImageError(path, "has a malformed pax header")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


# --- the archive ------------------------------------------------------------------------


@contextlib.contextmanager
def open_root_image(path: str) -> Iterator[RootImage]:
    """Open a stemcell image archive and validate it up to root.img's first piece."""
    with _open_gzip_file(path) as handle:
        gunzip = _Gunzip(handle, path)
        member = _find_root_image(path, gunzip)
        root = RootImage(path, member, gunzip)
        try:
            yield root
        finally:
            root.close()


def _open_gzip_file(path: str) -> BinaryIO:
    try:
        handle = open(path, "rb")  # noqa: SIM115 (the caller's with-block closes it)
    except FileNotFoundError:
        raise StemcellImageError(path, "does not exist") from None
    except IsADirectoryError:
        raise StemcellImageError(path, "is a directory, not a file") from None
    except OSError as error:
        raise StemcellImageError(path, f"cannot be read: {error.strerror}") from None
    magic = handle.read(len(GZIP_MAGIC))
    handle.seek(0)
    if magic == GZIP_MAGIC:
        return handle
    handle.close()
    if not magic:
        raise StemcellImageError(
            path, "is empty; a light stemcell (an empty image) needs cloud_properties.image_id"
        )
    raise StemcellImageError(
        path,
        "is not a gzip-compressed tar archive (a stemcell's image file is made with "
        "`tar czf image root.img`)",
    )


def _find_root_image(path: str, gunzip: _Gunzip) -> _Member:
    seen: list[str] = []
    while True:
        member = _next_member(gunzip, path)
        if member is None:
            listing = ", ".join(seen[:10]) or "no members at all"
            raise StemcellImageError(
                path, f"has no {ROOT_IMAGE} at its top level (found: {listing})"
            )
        _check_member(path, member)
        if _is_root_image(member):
            _check_root_image(path, member)
            return member
        seen.append(member.name)
        if member.has_data():
            gunzip.skip(_padded(member.size), f"'{member.name}'")


class RootImage:
    """`root.img` inside an open stemcell image archive (see `open_root_image`)."""

    def __init__(self, path: str, member: _Member, gunzip: _Gunzip) -> None:
        self.path = path
        self.size = member.size
        self.member_name = member.name
        self._gunzip = gunzip
        self._hash = hashlib.new(HASH_ALGORITHM)
        self._chunks: Generator[bytes, None, None] | None = None
        self._first = gunzip.read_exact(min(CHUNK_SIZE, self.size), ROOT_IMAGE)
        self.head = self._first[:512]

    @property
    def digest(self) -> str:
        """Hex digest (HASH_ALGORITHM) of everything `chunks()` produced."""
        return self._hash.hexdigest()

    def chunks(self) -> Iterator[bytes]:
        """root.img's data in pieces of up to CHUNK_SIZE bytes, read ahead by a thread.

        One pass only: a second call raises instead of yielding nothing, so that a
        caller can never re-send a consumed stream by accident.
        """
        if self._chunks is not None:
            raise CloudError(f"Internal error: root.img of '{self.path}' was already read once")
        _keep_freed_buffers()
        self._chunks = _read_ahead(self._produce(), READ_AHEAD)
        return self._chunks

    def _produce(self) -> Iterator[bytes]:
        remaining = self.size - len(self._first)
        pending, self._first = self._first, b""
        self._hash.update(pending)
        while remaining > 0:
            piece = self._gunzip.read_some(min(CHUNK_SIZE, remaining))
            if not piece:
                raise StemcellImageError(self.path, f"is truncated: it ends inside {ROOT_IMAGE}")
            remaining -= len(piece)
            self._hash.update(piece)
            yield pending
            pending = piece
        self._verify_rest()
        yield pending

    def _verify_rest(self) -> None:
        """The members after root.img must be safe too, and the gzip stream intact to
        its end (zlib checks each member's CRC-32 and length)."""
        self._gunzip.skip(_padded(self.size) - self.size, ROOT_IMAGE)
        while (member := _next_member(self._gunzip, self.path)) is not None:
            _check_member(self.path, member)
            if _is_root_image(member):
                raise StemcellImageError(self.path, f"holds {ROOT_IMAGE} more than once")
            if member.has_data():
                self._gunzip.skip(_padded(member.size), f"'{member.name}'")
        self._gunzip.drain()

    def close(self) -> None:
        """Stop the reader thread (if any) before the file it reads is closed."""
        if self._chunks is not None:
            self._chunks.close()


def _is_root_image(member: _Member) -> bool:
    return PurePosixPath(member.name).parts == (ROOT_IMAGE,)


def _check_member(path: str, member: _Member) -> None:
    """Refuse what an extraction would turn into a path traversal or a surprise."""
    name = member.name
    info = member.info
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts:
        raise StemcellImageError(
            path, f"holds a member with an unsafe path '{name}' (absolute or with '..')"
        )
    if info.issym() or info.islnk():
        raise StemcellImageError(
            path, f"holds a link '{name}' -> '{info.linkname}'; only regular files are allowed"
        )
    if not (info.isfile() or info.isdir()):
        raise StemcellImageError(
            path, f"holds '{name}', which is not a regular file (a device, FIFO or similar)"
        )


def _check_root_image(path: str, member: _Member) -> None:
    if not member.info.isfile():
        raise StemcellImageError(path, f"has a {ROOT_IMAGE} that is not a regular file")
    if member.sparse:
        raise StemcellImageError(
            path, f"stores {ROOT_IMAGE} as a sparse tar member; repack it without --sparse"
        )
    if member.size == 0:
        raise StemcellImageError(path, f"holds an empty {ROOT_IMAGE}")


def _keep_freed_buffers() -> None:
    """Ask glibc to reuse freed megabyte buffers instead of unmapping them.

    Streaming allocates megabyte-sized pieces in the reader thread and frees them in the
    sending thread. glibc often maps allocations that large afresh and unmaps them on
    free, and then every megabyte costs 256 page faults (the kernel zero-fills each
    page): measured, 20 times more faults and 0.2 s more CPU per GiB, on cores that the
    cloud's Glance may share. With the thresholds raised the same few buffers are reused
    (peak RSS unchanged). The director wipes the environment, so MALLOC_MMAP_THRESHOLD_
    cannot be used instead. Other C libraries: nothing to do.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 4 * CHUNK_SIZE)
    mallopt(_M_TRIM_THRESHOLD, 32 * CHUNK_SIZE)


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


# --- read-ahead thread --------------------------------------------------------------

_END = object()


def _read_ahead(source: Iterator[bytes], depth: int) -> Generator[bytes, None, None]:
    """Run `source` in a thread, `depth` items ahead: decompressing and hashing
    (both release the GIL) overlap with sending. Errors reach the consumer in order."""
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in source:
                if not _put(item):
                    return
            _put(_END)
        except BaseException as error:  # handed to the consumer, raised there
            _put(error)

    def _put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    thread = threading.Thread(target=produce, name="stemcell-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(bytes, item)
    finally:
        stop.set()
        thread.join(timeout=5)


# --- progress on a terminal -----------------------------------------------------------


def with_progress(
    chunks: Iterator[bytes],
    total: int,
    stream: IO[str],
    label: str,
    interval: float = 0.5,
) -> Iterator[bytes]:
    """Pass chunks through, writing "label: 512 of 1024 MiB (50%), 150 MiB/s" to `stream`
    at most every `interval` seconds and once at the end. For terminals only."""
    started = last = time.monotonic()
    done = 0
    for chunk in chunks:
        yield chunk
        done += len(chunk)
        now = time.monotonic()
        if now - last >= interval:
            last = now
            stream.write("\r" + _progress_line(label, done, total, now - started))
            stream.flush()
    stream.write("\r" + _progress_line(label, done, total, time.monotonic() - started) + "\n")
    stream.flush()


def _progress_line(label: str, done: int, total: int, seconds: float) -> str:
    mib = 1 << 20
    percent = 100 * done // total if total else 100
    rate = done / mib / seconds if seconds > 0 else 0.0
    return f"{label}: {done / mib:.0f} of {total / mib:.0f} MiB ({percent}%), {rate:.0f} MiB/s "
