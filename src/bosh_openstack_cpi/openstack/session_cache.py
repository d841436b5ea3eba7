"""Keystone token and API version discovery, reused across CPI calls.

Every CPI call is a new process. Without a cache each one pays a Keystone token request
and one version-discovery GET per service before its first real request. The cache
keeps both in one private file per set of credentials:

- directory `<tmp>/bosh-openstack-cpi-<uid>` (mode 0700, must be ours), file mode 0600;
- the file name is a salted SHA-256 of the auth parameters (secret included, so a
  changed password never reuses an old token); the salt is a random file in the same
  private directory, so names cannot be brute-forced to recover a password;
- the token is used until keystoneauth considers it about to expire; on a 401
  keystoneauth fetches a new one and the cache is rewritten;
- `read` gives the stdlib transport (openstack/transport.py) the token, its catalog and
  the discovery data without importing keystoneauth;
- the director starts many calls at once (32 threads by default): writes, and the
  fetching of a new token on a cold cache, happen under an exclusive lock on
  `session-<name>.lock`, so a burst costs one token request and no write is lost; a token
  is never replaced by one that expires sooner; files unused for a week are removed;
- `openstack.token_cache: false` turns all of this off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from bosh_openstack_cpi.config import OpenStackConfig

if TYPE_CHECKING:
    from keystoneauth1 import session as ksa_session
    from keystoneauth1.identity import base as identity_base

log = logging.getLogger(__name__)

FORMAT = 1
# How long a call waits for another one's read-modify-write of the cache file, or for the
# token another call is fetching (a Keystone request: well under this).
LOCK_WAIT_SECONDS = 30.0
# Cache files (and their locks) untouched this long are removed when a token is saved.
UNUSED_SECONDS = 7 * 24 * 3600


def cache_directory() -> str:
    return os.path.join(_temporary_root(), f"bosh-openstack-cpi-{os.getuid()}")


def _temporary_root() -> str:
    """tempfile.gettempdir()'s choice on Linux, without importing tempfile (6 ms of every
    call's start-up; it is imported only to write): the first of $TMPDIR, $TEMP, $TMP,
    /tmp, /var/tmp, /usr/tmp that is a directory we may write to, else the current one."""
    candidates = [os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP")]
    for candidate in [*candidates, "/tmp", "/var/tmp", "/usr/tmp"]:  # noqa: S108 - as tempfile
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return os.path.abspath(candidate)
    return os.getcwd()


def _private_directory(path: str) -> bool:
    """Create the directory if needed; refuse one another user could read or plant."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o077 == 0


def _salt(directory: str) -> bytes:
    """The directory's salt, created exclusively: processes started together agree on it
    (two salts would give two cache files for the same credentials)."""
    path = os.path.join(directory, "salt")
    for _ in range(50):
        try:
            with open(path, "rb") as handle:
                salt = handle.read()
            if len(salt) >= 16:
                return salt
        except FileNotFoundError:
            if _create_exclusively(path, os.urandom(32)):  # secrets.token_bytes, cheaper
                continue
        time.sleep(0.01)  # another process is creating it, or an old short file: wait
    raise OSError(f"no usable salt in {path}")


def _create_exclusively(path: str, data: bytes) -> bool:
    """Write `data` to a new file at `path` in one step; False when `path` exists."""
    import tempfile

    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.link(temporary, path)  # fails when another process was first
        return True
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _write_private(path: str, data: bytes) -> None:
    """Atomically replace `path` with `data`, readable by us only."""
    import tempfile

    directory = os.path.dirname(path)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _credentials_fingerprint(config: OpenStackConfig, salt: bytes) -> str:
    parameters = [
        config.auth_url,
        config.username,
        config.api_key,
        config.user_domain_name,
        config.project,
        config.project_id,
        config.project_domain_name,
        config.application_credential_id,
        config.application_credential_secret,
    ]
    digest = hashlib.sha256(salt)
    digest.update(json.dumps(parameters).encode())
    return digest.hexdigest()


class SessionCache:
    """Loads cached state into a fresh auth plugin and session; saves it when it changed."""

    def __init__(self, config: OpenStackConfig) -> None:
        self._path: str | None = None
        self._loaded: str | None = None
        # The cached token and the discovery restored with it (see load/save).
        self._loaded_token: str | None = None
        self._restored: set[int] = set()
        directory = cache_directory()
        if not _private_directory(directory):
            log.warning("Token cache disabled: %s is not a private directory of ours", directory)
            return
        try:
            name = _credentials_fingerprint(config, _salt(directory))
        except OSError as error:
            log.warning("Token cache disabled: %s", error)
            return
        self._path = os.path.join(directory, f"session-{name}.json")
        self._held = False

    @contextlib.contextmanager
    def exclusive(self, wait: float) -> Iterator[bool]:
        """Hold the cache's lock for a read-modify-write, waiting `wait` seconds at most
        (then the caller goes on without it: better two tokens than a stuck call). Yields
        whether the lock is held. Re-entrant within the process."""
        if self._path is None or self._held:
            yield self._held
            return
        descriptor = _open_lock(self._path.removesuffix(".json") + ".lock")
        try:
            self._held = descriptor is not None and _flock(descriptor, wait)
            if not self._held:
                log.warning("Token cache busy for %.0f s: going on without its lock", wait)
            yield self._held
        finally:
            self._held = False
            if descriptor is not None:
                os.close(descriptor)  # releases the lock

    def _document(self) -> dict[str, Any] | None:
        """The cache file's JSON document in this format; None without a readable one."""
        if self._path is None:
            return None
        try:
            with open(self._path, "rb") as handle:
                document = json.load(handle)
        except (OSError, ValueError):
            return None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            return None
        return document

    def read(self) -> dict[str, Any] | None:
        """The cached token ("auth_token"), its Keystone body ("body") and the discovery
        data ("discovery"), read without keystoneauth; None when there is none."""
        document = self._document()
        if document is None:
            return None
        try:
            state = json.loads(document["auth_state"])
        except (ValueError, KeyError, TypeError):
            return None
        discovery = document.get("discovery", {})
        if not isinstance(state, dict) or not isinstance(discovery, dict):
            return None
        return {
            "auth_token": state.get("auth_token"),
            "body": state.get("body") or {},
            "discovery": discovery,
        }

    def load(self, auth: identity_base.BaseIdentityPlugin, discovery: dict[str, Any]) -> bool:
        """Give `auth` the cached token and fill `discovery`, the dict the keystoneauth
        session was made with as its `discovery_cache`."""
        document = self._document()
        if document is None:
            return False
        try:
            auth.set_auth_state(document["auth_state"])
            self._loaded_token = _token_of(auth)
            # Version discovery lives with the token it came with: after the token expired
            # keystoneauth fetches a new one, and discovers again (a cloud rolled back to
            # older API versions meanwhile must not keep seeing the newer ones).
            if _expires_at(document) > _utc_now():
                _restore_discovery(discovery, document.get("discovery", {}))
                self._restored = {id(found) for found in discovery.values()}
        except (ValueError, KeyError, TypeError, AttributeError):
            return False
        self._loaded = _snapshot(auth, discovery)
        return True

    def save(self, auth: identity_base.BaseIdentityPlugin, discovery: dict[str, Any]) -> None:
        """Write the token and discovery when they changed; a cached token that expires
        later than ours (another call's, fetched meanwhile) stays, with our discovery
        added to it."""
        if self._path is None or auth.get_auth_state() is None:
            return
        if self._restored and _token_of(auth) != self._loaded_token:
            # The cached token was refused during this call (revoked, or another cloud
            # answers at this auth URL now): what was discovered with it is not kept.
            discovery = {
                url: found for url, found in discovery.items() if id(found) not in self._restored
            }
        current = _snapshot(auth, discovery)
        if current == self._loaded:
            return
        with self.exclusive(wait=LOCK_WAIT_SECONDS):
            ours = json.loads(current)
            theirs = self._document()
            if theirs is not None and _expires_at(theirs) > _expires_at(ours):
                log.debug("The cache holds a newer token: keeping it")
                self._merge_discovery(theirs, ours["discovery"])
                return
            try:
                _write_private(self._path, current.encode())
            except OSError as error:
                log.warning("Could not update the token cache: %s", error.strerror)
                return
            self._loaded = current
        _prune(os.path.dirname(self._path))

    def add_discovery(self, learned: dict[str, Any]) -> None:
        """Add version discovery done without keystoneauth (the stdlib transport's) to the
        cached file, leaving its token as it is."""
        if self._path is None or not learned:
            return
        with self.exclusive(wait=LOCK_WAIT_SECONDS):
            document = self._document()
            if document is not None:
                self._merge_discovery(document, learned)

    def _merge_discovery(self, document: dict[str, Any], learned: dict[str, Any]) -> None:
        discovery = document.get("discovery")
        if self._path is None or not isinstance(discovery, dict) or not learned:
            return
        if all(discovery.get(url) == versions for url, versions in learned.items()):
            return
        discovery.update(learned)
        try:
            _write_private(self._path, json.dumps(document, sort_keys=True).encode())
        except OSError as error:
            log.warning("Could not update the token cache: %s", error.strerror)

    def drop(self) -> None:
        if self._path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path)


def _discovery_data(discovery: dict[str, Any]) -> dict[str, Any]:
    """The version list of each `Discover` keystoneauth left in its discovery cache."""
    data: dict[str, Any] = {}
    for url, found in discovery.items():
        raw_version_data = getattr(found, "raw_version_data", None)
        if raw_version_data is not None:
            data[url] = raw_version_data(
                allow_experimental=True, allow_deprecated=True, allow_unknown=True
            )
    return data


class _StoredVersions:
    """A version document from the cache, answered as keystoneauth asks for one (its
    `Discover(session, url)` reads `session.get(url, ...).json()`): the cached discovery
    becomes real `Discover` objects through the public constructor, without a request."""

    def __init__(self, versions: list[Any]) -> None:
        self._versions = versions
        self.text = ""

    def get(self, url: str, **_: Any) -> _StoredVersions:
        return self

    def json(self) -> dict[str, Any]:
        return {"versions": self._versions}


def _restore_discovery(discovery: dict[str, Any], data: dict[str, Any]) -> None:
    from keystoneauth1 import discover

    for url, versions in data.items():
        if not isinstance(url, str) or not isinstance(versions, list):
            continue
        replay = cast("ksa_session.Session", _StoredVersions(versions))
        discovery[url] = discover.Discover(replay, url)


def _snapshot(auth: identity_base.BaseIdentityPlugin, discovery: dict[str, Any]) -> str:
    return json.dumps(
        {
            "format": FORMAT,
            "auth_state": auth.get_auth_state(),
            "discovery": _discovery_data(discovery),
        },
        sort_keys=True,
    )


def _open_lock(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        log.warning("Token cache lock %s unusable: %s", path, error.strerror)
        return None


def _flock(descriptor: int, wait: float) -> bool:
    import fcntl

    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def _expires_at(document: dict[str, Any]) -> str:
    """The token's expiry as Keystone wrote it (ISO 8601, UTC: ordered as text); "" when
    the document has none."""
    try:
        state = json.loads(document["auth_state"])
        return str(state["body"]["token"]["expires_at"])
    except (ValueError, KeyError, TypeError):
        return ""


def _utc_now() -> str:
    """Now, in the form of Keystone's expires_at (ordered as text, as _expires_at)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


def _token_of(auth: identity_base.BaseIdentityPlugin) -> str | None:
    state = auth.get_auth_state()
    try:
        token = json.loads(state)["auth_token"] if state else None
    except (ValueError, KeyError, TypeError):
        return None
    return str(token) if token else None


def _prune(directory: str) -> None:
    """Remove cache files no call used for a week (credentials rotated away), with their
    locks. A lock file's age says nothing (it is never written), so it goes only with its
    cache file."""
    cutoff = time.time() - UNUSED_SECONDS
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not (name.startswith("session-") and name.endswith(".json")):
            continue
        path = os.path.join(directory, name)
        with contextlib.suppress(OSError):
            if os.lstat(path).st_mtime < cutoff:
                os.unlink(path)
                os.unlink(path.removesuffix(".json") + ".lock")
