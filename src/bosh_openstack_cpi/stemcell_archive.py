"""Reading a stemcell's `image` file: a gzipped tar holding `root.img`, streamed.

Nothing is extracted to disk and memory stays flat whatever the image size: the gzip
layer and the tar layer are read sequentially, one piece at a time, and a reader thread
keeps only a few pieces ahead of the consumer (the upload). The gzip layer is this
module's (zlib inflates and checks each gzip member's CRC-32 and length); the tar layer
is `tarfile` in stream mode on top of it, made strict about malformed headers.
benchmarks/stemcell_reader.py measures it against the former hand-written header walk.

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

    def read(self, size: int = -1) -> bytes:
        """The file-object read `tarfile` calls: up to `size` bytes, b"" at the end."""
        return self.read_some(size if size > 0 else CHUNK_SIZE)

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
# The tar layer is the standard library's: `tarfile` in stream mode ("r|") reads the
# headers (ustar, GNU and pax, long names, pax global headers, old-GNU sparse maps) from
# `_Gunzip`'s output. Measured against the module's former hand-written header walk:
# benchmarks/stemcell_reader.py, BENCHMARKS.md.


class _MalformedHeader(Exception):
    """A tar header that `tarfile` could not parse; `_tar_errors` names the file."""


# How a header read ends an archive normally: a zero block, or no bytes left. typeshed
# does not declare these `tarfile` classes (every other HeaderError means a bad header).
_END_OF_ARCHIVE: tuple[type[Exception], ...] = (
    vars(tarfile)["EOFHeaderError"],
    vars(tarfile)["EmptyHeaderError"],
)


class _StrictTarInfo(tarfile.TarInfo):
    """`tarfile` ends an archive quietly at a malformed header found after the first
    member, as if the archive ended there. A stemcell with one is damaged (or crafted),
    so here that header is an error wherever it is."""

    @classmethod
    def fromtarfile(cls, archive: tarfile.TarFile) -> _StrictTarInfo:
        try:
            return super().fromtarfile(archive)
        except _END_OF_ARCHIVE:
            raise
        except tarfile.HeaderError as error:  # invalid, truncated, or a bad long name
            raise _MalformedHeader(str(error) or "invalid header") from None
        except ValueError as error:  # a pax or sparse-map record that does not parse
            raise _MalformedHeader(str(error) or "invalid extended header") from None


@contextlib.contextmanager
def _tar_errors(path: str, where: str) -> Iterator[None]:
    """`tarfile`'s exceptions as the stemcell errors the director shows."""
    try:
        yield
    except _MalformedHeader as error:
        raise StemcellImageError(
            path, f"is gzip-compressed but not a valid tar archive ({error})"
        ) from None
    except tarfile.ReadError as error:
        if "unexpected end of data" in str(error):
            raise StemcellImageError(path, f"is truncated: it ends inside {where}") from None
        raise StemcellImageError(
            path, f"is gzip-compressed but not a valid tar archive ({error})"
        ) from None


def _open_tar(path: str, gunzip: _Gunzip) -> tarfile.TarFile:
    """The tar archive inside the gzip stream, its first header read."""
    with _tar_errors(path, "a tar header"):
        return tarfile.open(
            fileobj=cast(IO[bytes], gunzip),
            mode="r|",
            bufsize=CHUNK_SIZE,
            tarinfo=_StrictTarInfo,
        )


def _next_member(tar: tarfile.TarFile, path: str, where: str) -> tarfile.TarInfo | None:
    """The next member's header, None at the end (a missing end marker is accepted, as
    tar(1) does). `where` names what a truncation would cut (the member being skipped)."""
    with _tar_errors(path, where):
        return tar.next()


# --- the archive ------------------------------------------------------------------------


@contextlib.contextmanager
def open_root_image(path: str) -> Iterator[RootImage]:
    """Open a stemcell image archive and validate it up to root.img's first piece."""
    with _open_gzip_file(path) as handle:
        gunzip = _Gunzip(handle, path)
        tar = _open_tar(path, gunzip)
        member = _find_root_image(path, tar)
        root = RootImage(path, member, tar, gunzip)
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


def _find_root_image(path: str, tar: tarfile.TarFile) -> tarfile.TarInfo:
    seen: list[str] = []
    where = "a tar header"
    while True:
        member = _next_member(tar, path, where)
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
        where = f"'{member.name}'"


class RootImage:
    """`root.img` inside an open stemcell image archive (see `open_root_image`)."""

    def __init__(
        self, path: str, member: tarfile.TarInfo, tar: tarfile.TarFile, gunzip: _Gunzip
    ) -> None:
        self.path = path
        self.size = member.size
        self.member_name = member.name
        self._tar = tar
        self._gunzip = gunzip
        data = tar.extractfile(member)
        if data is None:  # _check_root_image let only a regular file through
            raise StemcellImageError(path, f"has a {ROOT_IMAGE} that is not a regular file")
        self._data = data
        self._hash = hashlib.new(HASH_ALGORITHM)
        self._chunks: Generator[bytes, None, None] | None = None
        self._first = self._read(min(CHUNK_SIZE, self.size))
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

    def _read(self, size: int) -> bytes:
        with _tar_errors(self.path, ROOT_IMAGE):
            piece = self._data.read(size)
        if len(piece) < size:
            raise StemcellImageError(self.path, f"is truncated: it ends inside {ROOT_IMAGE}")
        return piece

    def _produce(self) -> Iterator[bytes]:
        remaining = self.size - len(self._first)
        pending, self._first = self._first, b""
        self._hash.update(pending)
        while remaining > 0:
            piece = self._read(min(CHUNK_SIZE, remaining))
            remaining -= len(piece)
            self._hash.update(piece)
            yield pending
            pending = piece
        self._verify_rest()
        yield pending

    def _verify_rest(self) -> None:
        """The members after root.img must be safe too, and the gzip stream intact to
        its end (zlib checks each member's CRC-32 and length)."""
        where = ROOT_IMAGE
        while (member := _next_member(self._tar, self.path, where)) is not None:
            _check_member(self.path, member)
            if _is_root_image(member):
                raise StemcellImageError(self.path, f"holds {ROOT_IMAGE} more than once")
            where = f"'{member.name}'"
        self._gunzip.drain()

    def close(self) -> None:
        """Stop the reader thread (if any) before the file it reads is closed."""
        if self._chunks is not None:
            self._chunks.close()


def _is_root_image(member: tarfile.TarInfo) -> bool:
    return PurePosixPath(member.name).parts == (ROOT_IMAGE,)


def _check_member(path: str, member: tarfile.TarInfo) -> None:
    """Refuse what an extraction would turn into a path traversal or a surprise."""
    name = member.name
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts:
        raise StemcellImageError(
            path, f"holds a member with an unsafe path '{name}' (absolute or with '..')"
        )
    if member.issym() or member.islnk():
        raise StemcellImageError(
            path, f"holds a link '{name}' -> '{member.linkname}'; only regular files are allowed"
        )
    if not (member.isfile() or member.isdir()):
        raise StemcellImageError(
            path, f"holds '{name}', which is not a regular file (a device, FIFO or similar)"
        )


def _check_root_image(path: str, member: tarfile.TarInfo) -> None:
    if not member.isfile():
        raise StemcellImageError(path, f"has a {ROOT_IMAGE} that is not a regular file")
    if member.sparse is not None or member.type == tarfile.GNUTYPE_SPARSE:
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
