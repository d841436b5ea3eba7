"""The session cache file: discovery added without keystoneauth (the stdlib transport's).
Reuse across real CPI processes is in tests/integration/test_session_cache.py."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack import session_cache


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> session_cache.SessionCache:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    return session_cache.SessionCache(OpenStackConfig(auth_url="http://k/v3", api_key="pw"))


def _write(cache: session_cache.SessionCache, discovery: dict[str, object]) -> Path:
    path = Path(str(cache._path))
    auth_state = json.dumps({"auth_token": "t", "body": {"token": {}}})
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
