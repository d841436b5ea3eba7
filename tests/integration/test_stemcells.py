"""create_stemcell / delete_stemcell against the real Glance, through the real executable.

Every test checks what Glance holds (as admin), not only the CPI's answer.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pty
import signal
import subprocess
import sys
import tarfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.cpi_process import CpiProcess, director_environment
from tools.request_log import LOG_LEVEL_ENV, count_requests
from tools.stemcell_builder import BuiltStemcell, build_stemcell

MIB = 1 << 20
PEAK_RSS_LIMIT_MIB = 80


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuiltStemcell]:
    """Stemcells shared by the module (read-only): small ones with real content, and a
    1 GiB raw one (sparse zeros, built in well under a second)."""
    base = tmp_path_factory.mktemp("stemcells")
    return {
        "qcow2": build_stemcell(base / "qcow2", "qcow2", 24 * MIB, content="mixed"),
        "raw": build_stemcell(base / "raw", "raw", 12 * MIB, content="mixed", keep_root_img=True),
        "large": build_stemcell(base / "large", "raw", 1024 * MIB),
    }


def _root_img(stemcell: BuiltStemcell) -> bytes:
    with tarfile.open(stemcell.image) as archive:
        member = archive.extractfile("root.img")
        assert member is not None
        return member.read()


def _unique(cloud_properties: dict[str, Any]) -> dict[str, Any]:
    """A version of its own, so that the test can look its image up by name."""
    return {**cloud_properties, "version": f"0.0.{uuid.uuid4().hex[:12]}"}


def _images_named(admin: Any, cloud_properties: dict[str, Any]) -> list[Any]:
    name = f"{cloud_properties['name']}/{cloud_properties['version']}"
    return list(admin.image.images(name=name))


def _ok(result: Any) -> Any:
    assert result.error is None, result.error
    return result.result


# --- heavy stemcells ------------------------------------------------------------------


def test_qcow2_upload_with_properties_tags_and_private_visibility(
    cpi: CpiProcess, admin: Any, cloud: dict[str, Any], director_uuid: str, built, leak_check
):
    stemcell = built["qcow2"]
    properties = _unique(stemcell.cloud_properties)
    cpi.env = director_environment(LOG_LEVEL_ENV)
    cpi.api_version = 3  # what the director negotiates with this CPI: tags come with v3
    result = cpi.call(
        "create_stemcell", str(stemcell.image), properties, {"tags": {"team": "blue", "id": "x"}}
    )
    image_id = _ok(result)
    try:
        # POST, PUT, GET: nothing else (token and version discovery come from the cache, or
        # cost one request each on a cold start)
        assert count_requests(result.stderr)["image"] <= 4, count_requests(result.stderr)
        image = _glance_json(admin, image_id)
        data = _root_img(stemcell)
        assert image["name"] == f"{properties['name']}/{properties['version']}"
        assert image["status"] == "active"
        assert (image["disk_format"], image["container_format"]) == ("qcow2", "bare")
        assert image["visibility"] == "private"
        assert image["owner"] == cloud["project_id"]
        assert image["size"] == len(data)
        assert image["os_hash_algo"] == "sha512"
        assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()
        assert image["director_uuid"] == director_uuid
        assert image["version"] == properties["version"]
        assert (image["os_type"], image["os_distro"]) == ("linux", "ubuntu")
        assert image["architecture"] == "x86_64"
        assert image["auto_disk_config"] == "true"
        assert image["hypervisor_type"] == "kvm"
        assert image["team"] == "blue"  # a director tag; "id" is Glance's and was skipped
        assert "infrastructure" not in image
    finally:
        _ok(cpi.call("delete_stemcell", image_id))
    assert admin.image.find_image(image_id) is None


def test_raw_upload_with_public_visibility(
    cpi_for: Callable[..., CpiProcess], admin: Any, built, leak_check
):
    stemcell = built["raw"]
    properties = _unique(stemcell.cloud_properties)
    cpi = cpi_for(stemcell_public_visibility=True)
    result = cpi.call("create_stemcell", str(stemcell.image), properties)
    if result.error and "HTTP 403" in result.error["message"]:
        # Glance's default policy reserves public images for admins; the local cloud
        # allows them. Elsewhere the refusal must be clear and leave nothing behind.
        assert "create image" in result.error["message"]
        assert _images_named(admin, properties) == []
        pytest.skip("this cloud lets only admins create public images")
    image_id = _ok(result)
    try:
        image = _glance_json(admin, image_id)
        data = stemcell.root_img.read_bytes()
        assert (image["status"], image["disk_format"], image["visibility"]) == (
            "active",
            "raw",
            "public",
        )
        assert image["name"].endswith("-raw/" + properties["version"])
        assert image["size"] == len(data)
        assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()
        assert image["hypervisor_type"] == "kvm"
    finally:
        _ok(cpi.call("delete_stemcell", image_id))


# Linux keeps a process's peak RSS across exec, and a child spawned from this (large)
# pytest process starts with pytest's RSS as its peak: a tiny interpreter spawns the CPI
# instead and reports the CPI's own peak (ru_maxrss, KiB) on its last stderr line.
_PEAK_RSS_WRAPPER = """
import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\npeak-rss-kib {usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _run(
    cpi: CpiProcess,
    method: str,
    *arguments: Any,
    on_line: Callable[[str, Any], None] | None = None,
    measure: bool = False,
) -> tuple[dict[str, Any], str]:
    """The executable as the director runs it, watching its stderr line by line."""
    import json

    command = cpi.command
    if measure:
        command = [sys.executable, "-I", "-c", _PEAK_RSS_WRAPPER, *command]
    stderr_lines: list[str] = []
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cpi.env
    ) as process:
        assert process.stdin and process.stdout and process.stderr
        process.stdin.write(json.dumps(cpi.request(method, *arguments)).encode())
        process.stdin.close()

        def read_stderr() -> None:
            assert process.stderr
            for raw in process.stderr:
                line = raw.decode("utf-8", "replace")
                stderr_lines.append(line)
                if on_line is not None:
                    on_line(line, process)

        reader = threading.Thread(target=read_stderr)
        reader.start()
        stdout = process.stdout.read().decode()
        reader.join(timeout=600)
    return json.loads(stdout), "".join(stderr_lines)


def test_a_1_gib_upload_keeps_the_cpi_small(cpi: CpiProcess, admin: Any, built, leak_check):
    stemcell = built["large"]
    response, stderr = _run(
        cpi, "create_stemcell", str(stemcell.image), stemcell.cloud_properties, measure=True
    )
    image_id = _ok(_Result(response))
    try:
        image = _glance_json(admin, image_id)
        assert image["status"] == "active"
        assert image["size"] == 1024 * MIB
        assert image["os_hash_value"] == _sha512_of_zeros(1024 * MIB)
        peak_mib = int(stderr.rsplit("peak-rss-kib ", 1)[1]) / 1024
        assert peak_mib < PEAK_RSS_LIMIT_MIB, f"peak RSS {peak_mib:.0f} MiB"
    finally:
        _ok(cpi.call("delete_stemcell", image_id))


def test_sigterm_during_the_upload_removes_the_image(
    cpi: CpiProcess, admin: Any, built, leak_check
):
    def terminate_once_created(line: str, process: Any) -> None:
        if "Created image" in line:
            process.send_signal(signal.SIGTERM)

    properties = _unique(built["large"].cloud_properties)
    response, stderr = _run(
        cpi,
        "create_stemcell",
        str(built["large"].image),
        properties,
        on_line=terminate_once_created,
    )
    error = response["error"]
    assert error is not None, "the upload finished before SIGTERM arrived"
    assert error["type"] == "Bosh::Clouds::CloudError"
    assert "interrupted by a signal" in error["message"]
    assert "Deleted the half-made image" in stderr
    assert _images_named(admin, properties) == []


def test_progress_is_shown_on_a_terminal_only(cpi: CpiProcess, built, leak_check):
    import json

    stemcell = built["qcow2"]
    # the director's way: stderr is a pipe
    piped = cpi.call("create_stemcell", str(stemcell.image), stemcell.cloud_properties)
    _ok(cpi.call("delete_stemcell", _ok(piped)))
    assert "Uploading root.img:" not in piped.stderr

    # a person at a terminal
    controller, terminal = pty.openpty()
    request = cpi.request("create_stemcell", str(stemcell.image), stemcell.cloud_properties)
    with subprocess.Popen(
        cpi.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=terminal, env=cpi.env
    ) as process:
        os.close(terminal)
        stdout, _ = process.communicate(json.dumps(request).encode(), timeout=300)
    shown = _read_all(controller)
    image_id = _ok(_Result(json.loads(stdout)))
    _ok(cpi.call("delete_stemcell", image_id))
    size_mib = len(_root_img(stemcell)) // MIB
    assert f"Uploading root.img: {size_mib} of {size_mib} MiB (100%)" in shown
    assert "MiB/s" in shown


# --- light stemcells -------------------------------------------------------------------


def test_light_stemcell_of_an_active_image(cpi: CpiProcess, cloud: dict[str, Any], admin: Any):
    image_id = cloud["resources"]["image_id"]
    before = admin.image.get_image(image_id)
    result = cpi.call("create_stemcell", "/nonexistent/image", {"image_id": image_id})
    assert _ok(result) == f"{image_id} light"
    # nothing was uploaded or changed
    assert admin.image.get_image(image_id).updated_at == before.updated_at
    # deleting the light stemcell leaves the image alone
    _ok(cpi.call("delete_stemcell", f"{image_id} light"))
    assert admin.image.get_image(image_id).status == "active"


def test_light_stemcell_of_an_unknown_image(cpi: CpiProcess):
    unknown = str(uuid.uuid4())
    result = cpi.call("create_stemcell", "", {"image_id": unknown})
    assert result.error is not None
    assert result.error["type"] == "Bosh::Clouds::CloudError"
    assert result.error["message"].startswith(f"No active image with id '{unknown}'")


@pytest.fixture
def queued_image(project_sdk: Any) -> Iterator[str]:
    """An image without data: it stays `queued`, never `active`."""
    image = project_sdk.image.create_image(
        name=f"test-queued-{uuid.uuid4().hex[:8]}",
        disk_format="raw",
        container_format="bare",
        allow_duplicates=True,
    )
    yield image.id
    project_sdk.image.delete_image(image.id, ignore_missing=True)


def test_light_stemcell_of_an_inactive_image(cpi: CpiProcess, queued_image: str):
    result = cpi.call("create_stemcell", "", {"image_id": queued_image})
    assert result.error is not None
    assert queued_image in result.error["message"]
    assert "its status is 'queued'" in result.error["message"]


# --- delete --------------------------------------------------------------------------------


def test_delete_of_an_unknown_image_succeeds(cpi: CpiProcess):
    result = cpi.call("delete_stemcell", str(uuid.uuid4()))
    assert result.error is None
    assert result.result is None


def test_delete_twice(cpi: CpiProcess, admin: Any, built, leak_check):
    image_id = _ok(
        cpi.call("create_stemcell", str(built["raw"].image), built["raw"].cloud_properties)
    )
    _ok(cpi.call("delete_stemcell", image_id))
    _ok(cpi.call("delete_stemcell", image_id))
    assert admin.image.find_image(image_id) is None


# --- bad input: a clear error and nothing left in Glance ------------------------------------


def _tar(*members: tuple[str, bytes | None, bytes]) -> bytes:
    """Members as (name, link target or None, data)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, link, data in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = link.decode()
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


DISK = os.urandom(3 * MIB)
ROOT = ("root.img", None, DISK)


def _bad_crc() -> bytes:
    data = bytearray(gzip.compress(_tar(ROOT)))
    data[-8] ^= 0xFF
    return bytes(data)


BAD_IMAGES: dict[str, tuple[bytes | None, dict[str, Any], str]] = {
    "missing file": (None, {}, "does not exist"),
    "not gzip": (_tar(ROOT), {}, "is not a gzip-compressed tar archive"),
    "gzip, not tar": (gzip.compress(DISK), {}, "not a valid tar archive"),
    "no root.img": (gzip.compress(_tar(("disk.img", None, DISK))), {}, "has no root.img"),
    "absolute path": (
        gzip.compress(_tar(("/etc/x", None, b"x"), ROOT)),
        {},
        "unsafe path '/etc/x'",
    ),
    "dot-dot": (gzip.compress(_tar(("../x", None, b"x"), ROOT)), {}, "unsafe path '../x'"),
    "link": (gzip.compress(_tar(("root.img", b"/etc/shadow", b""))), {}, "holds a link"),
    "unsupported disk_format": (gzip.compress(_tar(ROOT)), {"disk_format": "vmdk"}, "vmdk"),
    "format mismatch": (
        gzip.compress(_tar(ROOT)),
        {"disk_format": "qcow2"},
        "holds a raw root.img, but",
    ),
    # found while streaming: the image exists for a moment and is deleted
    "link after root.img": (
        gzip.compress(_tar(ROOT, ("later", b"/", b""))),
        {},
        "holds a link 'later'",
    ),
    "bad gzip checksum": (_bad_crc(), {}, "is corrupt"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bad_image_is_refused_and_leaves_nothing(
    case: str, cpi: CpiProcess, admin: Any, tmp_path: Path, built, leak_check
):
    content, overrides, expected = BAD_IMAGES[case]
    path = tmp_path / "image"
    if content is not None:
        path.write_bytes(content)
    properties = _unique({**built["raw"].cloud_properties, **overrides})
    result = cpi.call("create_stemcell", str(path), properties)
    assert result.error is not None, f"{case}: no error"
    assert result.error["type"] == "Bosh::Clouds::CloudError"
    assert expected in result.error["message"]
    assert _images_named(admin, properties) == []


# --- helpers -----------------------------------------------------------------------------


class _Result:
    def __init__(self, response: dict[str, Any]) -> None:
        self.error = response["error"]
        self.result = response["result"]


def _glance_json(admin: Any, image_id: str) -> dict[str, Any]:
    """The image exactly as Glance returns it (the SDK renames some properties)."""
    response = admin.image.get(f"/images/{image_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _sha512_of_zeros(size: int) -> str:
    digest = hashlib.sha512()
    block = bytes(MIB)
    for _ in range(size // MIB):
        digest.update(block)
    return digest.hexdigest()


def _read_all(descriptor: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(descriptor, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(descriptor)
    return b"".join(chunks).decode("utf-8", "replace")
