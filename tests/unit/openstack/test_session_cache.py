"""The session cache file: discovery added without keystoneauth (the stdlib transport's).
Reuse across real CPI processes is in tests/integration/test_session_cache.py."""

from __future__ import annotations

import concurrent.futures
import json
import os
import stat
import time
from pathlib import Path

import pytest

from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack import session_cache


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> session_cache.SessionCache:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    return session_cache.SessionCache(OpenStackConfig(auth_url="http://k/v3", api_key="pw"))


FUTURE = "2099-01-01T00:00:00.000000Z"
PAST = "2001-01-01T00:00:00.000000Z"


def _write(
    cache: session_cache.SessionCache, discovery: dict[str, object], expires_at: str = ""
) -> Path:
    path = Path(str(cache._path))
    token = {"expires_at": expires_at} if expires_at else {}
    auth_state = json.dumps({"auth_token": "t", "body": {"token": token}})
    document = {"format": session_cache.FORMAT, "auth_state": auth_state, "discovery": discovery}
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    return path


def test_learned_discovery_joins_the_cached_one_and_the_token_stays(cache):
    path = _write(cache, {"http://c/v2.1/": [{"id": "v2.1"}]})
    cache.add_discovery({"http://v/v3/": [{"id": "v3.0"}]})
    state = cache.read()
    assert state is not None
    assert state["auth_token"] == "t"
    assert state["discovery"] == {
        "http://c/v2.1/": [{"id": "v2.1"}],
        "http://v/v3/": [{"id": "v3.0"}],
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_nothing_is_written_without_a_cached_token(cache):
    cache.add_discovery({"http://v/v3/": [{"id": "v3.0"}]})
    assert cache.read() is None


@pytest.mark.parametrize("tmpdir", ["own", "missing", None])
def test_the_cache_lives_where_tempfile_would_put_it(tmpdir, tmp_path, monkeypatch):
    import tempfile

    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    if tmpdir == "own":
        monkeypatch.setenv("TMPDIR", str(tmp_path))
    elif tmpdir == "missing":
        monkeypatch.setenv("TMPDIR", str(tmp_path / "nowhere"))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile decides again
    assert session_cache._temporary_root() == tempfile.gettempdir()


def _auth_state(expires_at: str, token: str) -> str:
    return json.dumps({"auth_token": token, "body": {"token": {"expires_at": expires_at}}})


class _Auth:
    """What load() and save() use of keystoneauth's auth plugin."""

    def __init__(self, state: str = "") -> None:
        self.state = state

    def get_auth_state(self) -> str:
        return self.state

    def set_auth_state(self, state: str) -> None:
        self.state = state


def _versions(url: str) -> list[dict[str, object]]:
    return [{"id": "v3.0", "status": "CURRENT", "links": [{"rel": "self", "href": url}]}]


def test_discovery_is_not_restored_with_an_expired_token(cache):
    _write(cache, {"http://v": _versions("http://v/v3/")}, expires_at=PAST)
    restored: dict[str, object] = {}
    assert cache.load(_Auth(), restored)
    assert restored == {}


def test_discovery_restored_with_a_token_that_was_then_refused_is_not_saved(cache):
    """keystoneauth authenticated again during the call (HTTP 401: the token was revoked,
    or another cloud answers at this auth URL now): only what this call discovered with
    the new token is kept for the next call."""
    from keystoneauth1 import discover

    _write(cache, {"http://old": _versions("http://old/v3/")}, expires_at=FUTURE)
    auth = _Auth()
    discovery: dict[str, object] = {}
    assert cache.load(auth, discovery)
    assert list(discovery) == ["http://old"]
    learned = session_cache._StoredVersions(_versions("http://new/v3/"))
    discovery["http://new"] = discover.Discover(learned, "http://new")  # type: ignore[arg-type]
    auth.state = _auth_state("2099-01-02T00:00:00.000000Z", "a-new-token")
    cache.save(auth, discovery)
    saved = cache.read()
    assert saved is not None and saved["auth_token"] == "a-new-token"
    assert list(saved["discovery"]) == ["http://new"]


def test_cached_discovery_returns_as_keystoneauth_discover_objects_without_a_request(cache):
    """Only keystoneauth's public interfaces: the session's `discovery_cache` dict holds
    `Discover` objects built by their constructor, which keystoneauth then uses as if it
    had asked the service; saving reads them back through `raw_version_data`."""
    from keystoneauth1 import discover
    from keystoneauth1 import session as ksa_session

    url = "http://127.0.0.1:8776"  # keystoneauth keys a root URL without its slash
    versions = [
        {
            "id": "v3.0",
            "status": "CURRENT",
            "min_version": "3.0",
            "version": "3.70",
            "links": [{"rel": "self", "href": "http://127.0.0.1:8776/v3/"}],
        },
        {"id": "v2.0", "status": "DEPRECATED", "links": []},
    ]
    _write(cache, {url: versions}, expires_at=FUTURE)
    restored: dict[str, object] = {}
    assert cache.load(_Auth(), restored)
    offline = ksa_session.Session(discovery_cache=restored)
    offline.request = _no_request  # type: ignore[method-assign,assignment]
    found = discover.get_discovery(offline, url)
    assert found is restored[url]
    (newest,) = [v for v in found.version_data() if v["version"] == (3, 0)]
    assert newest["max_microversion"] == (3, 70)
    assert session_cache._discovery_data(restored) == {url: versions}


def _no_request(*args: object, **kwargs: object) -> None:
    raise AssertionError(f"a request was sent: {args}")


def test_a_token_is_never_replaced_by_one_that_expires_sooner(cache):
    _write(cache, {})
    path = Path(str(cache._path))
    newer = _auth_state("2099-01-02T00:00:00.000000Z", "newer")
    document = json.loads(path.read_text())
    document["auth_state"] = newer
    path.write_text(json.dumps(document))
    cache.save(_Auth(_auth_state("2099-01-01T00:00:00.000000Z", "older")), {})
    assert cache.read()["auth_token"] == "newer"
    cache.save(_Auth(_auth_state("2099-01-03T00:00:00.000000Z", "newest")), {})
    assert cache.read()["auth_token"] == "newest"


def test_the_lock_excludes_another_cache_object_and_its_wait_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    config = OpenStackConfig(auth_url="http://k/v3", api_key="pw")
    first, second = session_cache.SessionCache(config), session_cache.SessionCache(config)
    with first.exclusive(wait=1) as held:
        assert held
        with first.exclusive(wait=1) as again:  # re-entrant in the same call
            assert again
        started = time.monotonic()
        with second.exclusive(wait=0.3) as other:
            assert not other
        assert 0.3 <= time.monotonic() - started < 2
    with second.exclusive(wait=0.3) as other:
        assert other


def test_processes_started_together_agree_on_one_salt(tmp_path):
    directory = str(tmp_path)
    with concurrent.futures.ProcessPoolExecutor(8) as pool:
        salts = set(pool.map(session_cache._salt, [directory] * 32))
    assert len(salts) == 1
    assert (tmp_path / "salt").read_bytes() in salts
    assert not list(tmp_path.glob(".tmp-*"))


def test_cache_files_unused_for_a_week_are_removed(cache, tmp_path):
    directory = Path(str(cache._path)).parent
    old = directory / "session-old.json"
    old.write_text("{}")
    (directory / "session-old.lock").write_text("")
    week_ago = time.time() - session_cache.UNUSED_SECONDS - 60
    os.utime(old, (week_ago, week_ago))
    cache.save(_Auth(_auth_state("2099-01-01T00:00:00.000000Z", "t")), {})
    assert not old.exists() and not (directory / "session-old.lock").exists()
    assert Path(str(cache._path)).exists()


@pytest.mark.parametrize("problem", ["group-readable", "foreign-owner", "symlink"])
def test_a_cache_directory_that_is_not_privately_ours_turns_the_cache_off(
    problem, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    directory = Path(session_cache.cache_directory())
    if problem == "symlink":
        target = tmp_path / "elsewhere"
        target.mkdir(mode=0o700)
        directory.symlink_to(target)
    else:
        directory.mkdir(mode=0o700)
    if problem == "group-readable":
        directory.chmod(0o755)
    if problem == "foreign-owner":
        if os.getuid() != 0:
            pytest.skip("only root can give a directory away")
        os.chown(directory, 65534, 65534)
    cache = session_cache.SessionCache(OpenStackConfig(auth_url="http://k/v3", api_key="pw"))
    assert cache._path is None
    assert cache.read() is None
    assert "Token cache disabled" in caplog.text
    assert not list(tmp_path.rglob("session-*"))
