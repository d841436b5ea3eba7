"""tools/release_blobs.py with a fake download: what is placed, what the cache saves,
what is refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tools.blobs import Blob, load_blobs
from tools.release_blobs import CPYTHON_TARBALL, Fetcher, fetch_blobs, fetcher_for

CONTENT = {"tools/a.tgz": b"first blob\n", "tools/b.tgz": b"second blob\n"}


def blob(path: str, content: bytes) -> Blob:
    return Blob(path, len(content), f"sha256:{hashlib.sha256(content).hexdigest()}")


BLOBS = {path: blob(path, content) for path, content in CONTENT.items()}


class FakeSource:
    """Serves given bytes under each wanted blob's file name, counting downloads."""

    def __init__(self, served: dict[str, bytes]) -> None:
        self.served = served
        self.downloads: list[str] = []

    def fetch(self, wanted: list[Blob], scratch: Path) -> list[Path]:
        files = []
        for item in wanted:
            self.downloads.append(item.path)
            path = scratch / Path(item.path).name
            path.write_bytes(self.served[item.path])
            files.append(path)
        return files

    def fetcher_of(self, _: Blob) -> Fetcher:
        return self.fetch


def test_blobs_are_placed_then_served_from_the_cache(tmp_path: Path) -> None:
    source = FakeSource(CONTENT)
    done = fetch_blobs(BLOBS, tmp_path / "blobs", tmp_path / "cache", source.fetcher_of)
    assert done == ["tools/a.tgz: downloaded", "tools/b.tgz: downloaded"]
    assert (tmp_path / "blobs/tools/a.tgz").read_bytes() == CONTENT["tools/a.tgz"]

    other_checkout = tmp_path / "other-blobs"
    again = fetch_blobs(BLOBS, other_checkout, tmp_path / "cache", source.fetcher_of)
    assert again == ["tools/a.tgz: from the cache", "tools/b.tgz: from the cache"]
    assert source.downloads == ["tools/a.tgz", "tools/b.tgz"]  # nothing downloaded twice
    assert fetch_blobs(BLOBS, other_checkout, tmp_path / "cache", source.fetcher_of) == []


def test_a_download_with_other_content_is_refused(tmp_path: Path) -> None:
    source = FakeSource({**CONTENT, "tools/b.tgz": b"tampered\n"})
    with pytest.raises(RuntimeError, match=r"tools/b.tgz: no file with size 12 and sha256:"):
        fetch_blobs(BLOBS, tmp_path / "blobs", tmp_path / "cache", source.fetcher_of)
    assert not list((tmp_path / "cache" / "sha256").glob(BLOBS["tools/b.tgz"].sha256))


def test_a_stale_file_in_blobs_is_replaced(tmp_path: Path) -> None:
    stale = tmp_path / "blobs/tools/a.tgz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an older version\n")
    fetch_blobs(BLOBS, tmp_path / "blobs", tmp_path / "cache", FakeSource(CONTENT).fetcher_of)
    assert stale.read_bytes() == CONTENT["tools/a.tgz"]


def test_every_blob_of_this_release_has_a_source() -> None:
    for item in load_blobs().values():
        assert fetcher_for(item) is not None
    with pytest.raises(RuntimeError, match="no known place to download it from"):
        fetcher_for(Blob("somewhere/else.tgz", 1, "sha256:" + "0" * 64))


def test_the_cpython_tarball_name_gives_its_version() -> None:
    match = CPYTHON_TARBALL.match("python-3.13/Python-3.13.5.tar.xz")
    assert match is not None and match["version"] == "3.13.5"
    assert CPYTHON_TARBALL.match("python-3.13/Python-3.13.5.tgz") is None


def test_the_debian_archive_is_the_one_the_machines_apt_uses(tmp_path, monkeypatch):
    from tools.release_blobs import debian_mirror

    monkeypatch.delenv("BOSH_CPI_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n"
    )
    (tmp_path / "sources.list.d" / "other.list.disabled").write_text("deb http://x.example/ a b\n")
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] http://classic.example/debian bookworm main\n"
    )
    assert debian_mirror(tmp_path) == "http://classic.example/debian"
    monkeypatch.setenv("BOSH_CPI_DEBIAN_MIRROR", "http://chosen.example/debian")
    assert debian_mirror(tmp_path) == "http://chosen.example/debian"


def test_without_a_debian_archive_the_mirror_variable_is_named(tmp_path, monkeypatch):
    from tools.release_blobs import debian_mirror

    monkeypatch.delenv("BOSH_CPI_DEBIAN_MIRROR", raising=False)
    with pytest.raises(RuntimeError, match="BOSH_CPI_DEBIAN_MIRROR"):
        debian_mirror(tmp_path)
