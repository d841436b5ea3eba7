"""The streaming stemcell image reader, on archives built here: valid ones of both formats
and every kind of bad one (what a real director would never send, but an operator might)."""

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from bosh_openstack_cpi import stemcell_archive
from bosh_openstack_cpi.protocol.errors import CloudError
from bosh_openstack_cpi.stemcell_archive import (
    CHUNK_SIZE,
    StemcellImageError,
    check_disk_format,
    open_root_image,
    with_progress,
)
from tools.stemcell_builder import build_stemcell, write_empty_qcow2

QCOW2_HEAD = b"QFI\xfb" + bytes(60)


def _member(name, data=b"", kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, io.BytesIO(data) if kind == tarfile.REGTYPE else None


def _archive(path: Path, *members, compress=True, tar_format=tarfile.GNU_FORMAT) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as tar:
        for info, data in members:
            tar.addfile(info, data)
    raw = buffer.getvalue()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def _stream(path):
    with open_root_image(str(path)) as root:
        data = b"".join(root.chunks())
        return root, data


def test_streams_root_img_in_chunks_with_its_sha512(tmp_path):
    content = os.urandom(3 * CHUNK_SIZE + 123)
    path = _archive(tmp_path / "image", _member("root.img", content))
    with open_root_image(str(path)) as root:
        assert root.size == len(content)
        chunks = list(root.chunks())
    assert b"".join(chunks) == content
    assert max(len(c) for c in chunks) == CHUNK_SIZE
    assert root.digest == hashlib.sha512(content).hexdigest()


@pytest.mark.parametrize("disk_format", ["qcow2", "raw"])
def test_reads_what_the_stemcell_builder_makes(tmp_path, disk_format):
    image, properties = build_stemcell(
        tmp_path, disk_format, 8 << 20, content="mixed", keep_root_img=True
    )
    root, data = _stream(image)
    assert data == (tmp_path / "root.img").read_bytes()
    assert stemcell_archive.detect_format(root.head) == disk_format
    check_disk_format(str(image), properties["disk_format"], root.head)


def test_accepts_dot_slash_names_directories_and_other_files(tmp_path):
    path = _archive(
        tmp_path / "image",
        _member("./", kind=tarfile.DIRTYPE),
        _member("./packages.txt", b"list"),
        _member("./root.img", b"disk"),
        _member("./notes/", kind=tarfile.DIRTYPE),
    )
    root, data = _stream(path)
    assert data == b"disk"
    assert root.member_name == "./root.img"


@pytest.mark.parametrize(
    "tar_format", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]
)
def test_long_names_and_every_tar_format(tmp_path, tar_format):
    long_name = "d" * 60 + "/" + "f" * 60 + "-packages.txt"
    members = [_member("x" * 99, b"a" * 700), _member("root.img", b"disk" * 300)]
    if tar_format != tarfile.USTAR_FORMAT:
        members.insert(0, _member(long_name, b"long" * 200))
    path = _archive(tmp_path / "image", *members, tar_format=tar_format)
    root, data = _stream(path)
    assert data == b"disk" * 300
    assert root.member_name == "root.img"


def test_pax_size_overrides_the_header(tmp_path):
    info, data = _member("root.img", b"z" * 5000)
    info.pax_headers = {"size": "5000", "comment": "made by hand"}
    path = _archive(tmp_path / "image", (info, data), tar_format=tarfile.PAX_FORMAT)
    assert _stream(path)[1] == b"z" * 5000


def test_several_gzip_members_and_trailing_zeros(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info, data = _member("root.img", os.urandom(300_000))
        tar.addfile(info, data)
    raw = buffer.getvalue()
    (tmp_path / "image").write_bytes(
        gzip.compress(raw[:100_000]) + gzip.compress(raw[100_000:]) + bytes(1000)
    )
    assert _stream(tmp_path / "image")[1] == raw[512:300_512]


def test_stray_bytes_after_the_gzip_stream(tmp_path):
    path = _archive(tmp_path / "image", _member("root.img", b"x" * 10))
    path.write_bytes(path.read_bytes() + b"garbage")
    received, size, message = _received_before_failure(path)
    assert received < size
    assert "stray bytes after its gzip data" in message


def test_a_missing_end_of_archive_marker_is_accepted(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info, data = _member("root.img", b"q" * 1000)
        tar.addfile(info, data)
    (tmp_path / "image").write_bytes(gzip.compress(buffer.getvalue()[: 512 + 1024]))
    assert _stream(tmp_path / "image")[1] == b"q" * 1000


def _sparse_file(path: Path, regions: int) -> Path:
    """A file of `regions` data blocks separated by holes (GNU tar stores it sparse)."""
    with path.open("wb") as handle:
        for number in range(regions):
            handle.seek(number * 64 * 1024)
            handle.write(bytes([65 + number]) * 512)
        handle.truncate(regions * 64 * 1024)
    return path


def _gnu_tar(path: Path, source: Path, names: list[str], tar_format: str) -> Path:
    """An archive made by GNU tar itself (`--sparse`), gzipped as a stemcell's image."""
    subprocess.run(
        ["tar", "--sparse", f"--format={tar_format}", "-czf", str(path), "-C", str(source), *names],
        check=True,
    )
    return path


@pytest.mark.parametrize("tar_format", ["gnu", "pax"])
def test_sparse_root_img_is_refused(tmp_path, tar_format):
    source = tmp_path / "source"
    source.mkdir()
    _sparse_file(source / "root.img", 3)
    path = _gnu_tar(tmp_path / "image", source, ["root.img"], tar_format)
    assert "sparse tar member" in _problem(path)


@pytest.mark.parametrize("tar_format", ["gnu", "pax"])
def test_sparse_members_before_root_img_are_skipped(tmp_path, tar_format):
    # Nine regions: old-GNU headers hold four, the rest go to extension header blocks,
    # which the former hand-written reader took for data and then refused the archive.
    source = tmp_path / "source"
    source.mkdir()
    _sparse_file(source / "holes.bin", 9)
    (source / "root.img").write_bytes(b"disk" * 3000)
    path = _gnu_tar(tmp_path / "image", source, ["holes.bin", "root.img"], tar_format)
    root, data = _stream(path)
    assert data == b"disk" * 3000
    assert root.member_name == "root.img"


def test_a_pax_global_header_is_read(tmp_path):
    buffer = io.BytesIO()
    global_headers = {"comment": "made by a stemcell pipeline"}
    with tarfile.open(
        fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, pax_headers=global_headers
    ) as tar:
        info, data = _member("root.img", b"g" * 2000)
        tar.addfile(info, data)
    (tmp_path / "image").write_bytes(gzip.compress(buffer.getvalue()))
    assert buffer.getvalue()[156:157] == tarfile.XGLTYPE  # the archive opens with one
    assert _stream(tmp_path / "image")[1] == b"g" * 2000


def _with_block_after(raw: bytes, member_end: int, block: bytes) -> bytes:
    """The tar `raw` with `block` (one header's worth) put where the next header goes."""
    return raw[:member_end] + block + raw[member_end:]


def test_a_malformed_header_before_root_img_is_refused(tmp_path):
    # tarfile alone would end the archive there and report "no root.img".
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in (("notes.txt", b"n" * 10), ("root.img", b"r" * 10)):
            info, data = _member(name, content)
            tar.addfile(info, data)
    raw = _with_block_after(buffer.getvalue(), 1024, b"\x07" * 512)
    (tmp_path / "image").write_bytes(gzip.compress(raw))
    assert "not a valid tar archive" in _problem(tmp_path / "image")


def test_a_malformed_header_after_root_img_fails_before_the_last_chunk(tmp_path):
    content = os.urandom(2 * CHUNK_SIZE)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info, data = _member("root.img", content)
        tar.addfile(info, data)
    raw = _with_block_after(buffer.getvalue(), 512 + len(content), b"\x07" * 512)
    (tmp_path / "image").write_bytes(gzip.compress(raw))
    received, size, message = _received_before_failure(tmp_path / "image")
    assert received < size
    assert "not a valid tar archive" in message


def test_truncated_inside_a_member_before_root_img(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info, data = _member("notes.txt", b"n" * 5000)
        tar.addfile(info, data)
    (tmp_path / "image").write_bytes(gzip.compress(buffer.getvalue()[:3000]))
    assert "ends inside 'notes.txt'" in _problem(tmp_path / "image")


def test_truncated_inside_root_img(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info, data = _member("root.img", os.urandom(3 * CHUNK_SIZE))
        tar.addfile(info, data)
    (tmp_path / "image").write_bytes(gzip.compress(buffer.getvalue()[: 2 * CHUNK_SIZE]))
    received, size, message = _received_before_failure(tmp_path / "image")
    assert received < size
    assert "ends inside root.img" in message


def test_the_builder_writes_valid_empty_qcow2_without_qemu_img(tmp_path):
    path = tmp_path / "empty.qcow2"
    write_empty_qcow2(path, 3 << 30)
    assert path.read_bytes().startswith(b"QFI\xfb")
    if not os.access("/usr/bin/qemu-img", os.X_OK):
        pytest.skip("qemu-img not installed: header written, not checked")
    check = subprocess.run(["/usr/bin/qemu-img", "check", str(path)], capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr


# --- problems found before anything is uploaded ---------------------------------------


def _problem(path) -> str:
    with pytest.raises(StemcellImageError) as caught, open_root_image(str(path)):
        pass
    assert str(path) in caught.value.message
    return caught.value.message


def test_missing_file(tmp_path):
    assert "does not exist" in _problem(tmp_path / "nope")


def test_directory(tmp_path):
    assert "is a directory" in _problem(tmp_path)


def test_empty_file_points_to_light_stemcells(tmp_path):
    (tmp_path / "image").write_bytes(b"")
    assert "image_id" in _problem(tmp_path / "image")


def test_uncompressed_tar_is_refused(tmp_path):
    path = _archive(tmp_path / "image", _member("root.img", b"x"), compress=False)
    assert "not a gzip-compressed tar archive" in _problem(path)


def test_gzip_of_something_else(tmp_path):
    (tmp_path / "image").write_bytes(gzip.compress(b"hello, not a tar" * 100))
    assert "not a valid tar archive" in _problem(tmp_path / "image")


def test_truncated_gzip(tmp_path):
    path = _archive(tmp_path / "image", _member("root.img", os.urandom(100_000)))
    path.write_bytes(path.read_bytes()[:5000])
    assert "truncated" in _problem(path)


def test_no_root_img_lists_what_is_there(tmp_path):
    path = _archive(tmp_path / "image", _member("disk.img", b"x"), _member("sub/root.img", b"y"))
    message = _problem(path)
    assert "has no root.img" in message
    assert "disk.img, sub/root.img" in message


@pytest.mark.parametrize("name", ["/etc/cron.d/x", "../root.img", "a/../../b"])
def test_unsafe_paths(tmp_path, name):
    path = _archive(tmp_path / "image", _member(name, b"x"), _member("root.img", b"y"))
    assert f"unsafe path '{name}'" in _problem(path)


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_links(tmp_path, kind):
    path = _archive(tmp_path / "image", _member("root.img", kind=kind, linkname="/etc/shadow"))
    assert "link 'root.img' -> '/etc/shadow'" in _problem(path)


@pytest.mark.parametrize("kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE])
def test_devices_and_fifos(tmp_path, kind):
    path = _archive(tmp_path / "image", _member("dev", kind=kind), _member("root.img", b"x"))
    assert "not a regular file" in _problem(path)


def test_empty_root_img(tmp_path):
    assert "empty root.img" in _problem(_archive(tmp_path / "image", _member("root.img")))


@pytest.mark.parametrize(
    ("declared", "head", "expected"),
    [("qcow2", b"\0" * 64, "holds a raw root.img"), ("raw", QCOW2_HEAD, "holds a qcow2")],
)
def test_declared_disk_format_must_match(declared, head, expected):
    with pytest.raises(StemcellImageError) as caught:
        check_disk_format("/x/image", declared, head)
    assert expected in caught.value.message
    assert f"disk_format is '{declared}'" in caught.value.message


# --- problems after root.img: found while streaming, before the last chunk ---------------


def _received_before_failure(path) -> tuple[int, int, str]:
    received = 0
    with pytest.raises(StemcellImageError) as caught, open_root_image(str(path)) as root:
        for chunk in root.chunks():
            received += len(chunk)
    return received, root.size, caught.value.message


def test_a_link_after_root_img_fails_before_the_last_chunk(tmp_path):
    path = _archive(
        tmp_path / "image",
        _member("root.img", os.urandom(2 * CHUNK_SIZE + 1)),
        _member("evil", kind=tarfile.SYMTYPE, linkname="/"),
    )
    received, size, message = _received_before_failure(path)
    assert received < size
    assert "link 'evil'" in message


def test_root_img_twice(tmp_path):
    path = _archive(tmp_path / "image", _member("root.img", b"a" * 10), _member("root.img", b"b"))
    received, size, message = _received_before_failure(path)
    assert received < size
    assert "more than once" in message


def test_bad_gzip_checksum_fails_before_the_last_chunk(tmp_path):
    path = _archive(tmp_path / "image", _member("root.img", os.urandom(3 * CHUNK_SIZE)))
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    path.write_bytes(bytes(data))
    received, size, message = _received_before_failure(path)
    assert received < size
    assert "corrupt" in message


# --- one pass, one thread ------------------------------------------------------------------


def test_a_stream_cannot_be_read_twice(tmp_path):
    path = _archive(tmp_path / "image", _member("root.img", b"x" * 10))
    with open_root_image(str(path)) as root:
        assert b"".join(root.chunks()) == b"x" * 10
        with pytest.raises(CloudError, match="already read once"):
            root.chunks()


def test_closing_early_stops_the_reader_thread(tmp_path):
    path = _archive(tmp_path / "image", _member("root.img", os.urandom(20 * CHUNK_SIZE)))
    with open_root_image(str(path)) as root:
        chunks = root.chunks()
        next(chunks)
    assert not [t for t in threading.enumerate() if t.name == "stemcell-reader"]


def test_progress_lines_name_amount_percentage_and_rate():
    out = io.StringIO()
    chunks = [b"x" * (1 << 20)] * 4
    assert list(with_progress(iter(chunks), 4 << 20, out, "Uploading root.img", 0)) == chunks
    lines = out.getvalue().split("\r")
    assert lines[-1].startswith("Uploading root.img: 4 of 4 MiB (100%), ")
    assert lines[-1].endswith("MiB/s \n")
    assert "1 of 4 MiB (25%)" in out.getvalue()
