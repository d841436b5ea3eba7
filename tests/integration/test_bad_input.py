"""Bad input reaching the cloud (issue 11): cids that name nothing, or name something
else, must never act on a resource they do not name.

Canary resources of every kind a crafted cid once reached (a key pair, a flavor, a server
group, a volume type, two VMs with metadata, a volume with metadata and its snapshot, an
image with tags, unbound ports in this project and in another) are made first. Then
every method gets malformed cids at every cid argument, on both transports (keystoneauth
without a token cache, the stdlib transport with one): each call must answer without a
single request. Then every method gets the well-formed ids of the canaries of other
kinds: each request it sends must name that id and only it. Afterwards every canary is
as it was. RELIABILITY.md ("Bad input reaching the cloud") has the figures.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.integration.disk_support import MISSING_ID, boot_servers, delete_servers, wait_until
from tools.cpi_process import CpiProcess, CpiResult, director_environment
from tools.request_log import LOG_LEVEL_ENV, requests_in

UUID = "9f1c3a52-5d0e-4b8e-9a8c-2f4b6d7e8a10"

# Every form a campaign found reaching a resource, and the ones that crashed the CPI.
# `{id}` is replaced by a canary's real id, so that the cid is "almost" valid.
MALFORMED = [
    "",
    " ",
    None,
    42,
    "..",
    "../os-keypairs/{keypair}",
    "../flavors/{flavor}",
    "../os-server-groups/{server_group}",
    "../../{vm_b}",
    "../snapshots/{snapshot}",
    "../types/{volume_type}",
    "../volumes/{volume}",
    "../../v2/images/{image}",
    "%2e%2e/{vm_b}",
    "{vm_a}/metadata/canary",
    "{vm_a}/os-volume_attachments/{volume}",
    "{volume}/metadata/canary",
    "{image}/tags/canary",
    "{volume}?all_tenants=1",
    "{vm_a}#x",
    "/{vm_a}",
    "{vm_a}/",
    "{volume} ",
    "{vm_a}\n",
    "vm-é-ünïcode",
    "x" * 4096,
    "12345",
]

# (method, arguments, index of the cid argument, the error type a malformed one gets)
CID_ARGUMENTS = [
    ("delete_vm", ["{vm}"], 0, "VMNotFound"),
    ("has_vm", ["{vm}"], 0, None),
    ("reboot_vm", ["{vm}"], 0, "VMNotFound"),
    ("set_vm_metadata", ["{vm}", {"deployment": "d"}], 0, "VMNotFound"),
    ("get_disks", ["{vm}"], 0, "VMNotFound"),
    ("create_disk", [1024, {}, "{vm}"], 2, "VMNotFound"),
    ("attach_disk", ["{vm}", "{disk}"], 0, "VMNotFound"),
    ("attach_disk", ["{vm}", "{disk}"], 1, "DiskNotFound"),
    ("detach_disk", ["{vm}", "{disk}"], 0, "VMNotFound"),
    ("detach_disk", ["{vm}", "{disk}"], 1, "DiskNotFound"),
    ("delete_disk", ["{disk}"], 0, "DiskNotFound"),
    ("has_disk", ["{disk}"], 0, None),
    ("set_disk_metadata", ["{disk}", {"deployment": "d"}], 0, "DiskNotFound"),
    ("resize_disk", ["{disk}", 4096], 0, "DiskNotFound"),
    ("update_disk", ["{disk}", 4096, {}], 0, "DiskNotFound"),
    ("snapshot_disk", ["{disk}", {}], 0, "DiskNotFound"),
    ("delete_snapshot", ["{snapshot}"], 0, "CloudError"),
    ("delete_stemcell", ["{stemcell}"], 0, "CloudError"),
]


@pytest.fixture(scope="module")
def canaries(admin: Any, project_sdk: Any, cloud: dict[str, Any]) -> Iterator[dict[str, str]]:
    """Resources no call of this module names in a well-formed way; removed at the end."""
    mark = f"canary-{uuid.uuid4().hex[:8]}"
    made: dict[str, str] = {}
    cleanups: list[Callable[[], Any]] = []
    try:
        keypair = project_sdk.compute.create_keypair(name=mark)
        made["keypair"] = keypair.name
        cleanups.append(lambda: project_sdk.compute.delete_keypair(mark, ignore_missing=True))
        flavor = admin.compute.create_flavor(name=mark, ram=64, vcpus=1, disk=1)
        made["flavor"] = flavor.id
        cleanups.append(lambda: admin.compute.delete_flavor(flavor.id, ignore_missing=True))
        group = project_sdk.compute.create_server_group(name=mark, policies=["anti-affinity"])
        made["server_group"] = group.id
        cleanups.append(
            lambda: project_sdk.compute.delete_server_group(group.id, ignore_missing=True)
        )
        volume_type = admin.block_storage.create_type(name=mark)
        made["volume_type"] = volume_type.id
        cleanups.append(
            lambda: admin.block_storage.delete_type(volume_type.id, ignore_missing=True)
        )
        servers = boot_servers(
            project_sdk, cloud, {"a": ("default", "z1"), "b": ("default", "z1")}, mark
        )
        made["vm_a"], made["vm_b"] = servers["a"], servers["b"]
        cleanups.append(lambda: delete_servers(project_sdk, list(servers.values())))
        project_sdk.compute.set_server_metadata(made["vm_a"], canary="1")
        volume = project_sdk.block_storage.create_volume(
            size=1, name=mark, metadata={"canary": "1"}
        )
        made["volume"] = volume.id
        cleanups.append(lambda: _delete_volume(project_sdk, volume.id))
        project_sdk.block_storage.wait_for_status(volume, "available", wait=120, interval=0.5)
        snapshot = project_sdk.block_storage.create_snapshot(volume_id=volume.id, name=mark)
        made["snapshot"] = snapshot.id
        cleanups.append(lambda: _delete_snapshot(project_sdk, snapshot.id))
        project_sdk.block_storage.wait_for_status(snapshot, "available", wait=120, interval=0.5)
        image = project_sdk.image.create_image(
            name=mark, disk_format="raw", container_format="bare", tags=["canary", "other"]
        )
        made["image"] = image.id
        cleanups.append(lambda: project_sdk.image.delete_image(image.id, ignore_missing=True))
        network = cloud["resources"]["networks"]["manual_1"]["id"]
        own_port = project_sdk.network.create_port(network_id=network, name=mark)
        made["own_port"] = own_port.id
        cleanups.append(lambda: project_sdk.network.delete_port(own_port.id, ignore_missing=True))
        foreign_port = admin.network.create_port(
            network_id=network, name=mark, project_id=admin.current_project_id
        )
        made["foreign_port"] = foreign_port.id
        cleanups.append(lambda: admin.network.delete_port(foreign_port.id, ignore_missing=True))
        yield made
    finally:
        for cleanup in reversed(cleanups):
            cleanup()


def _delete_volume(sdk: Any, volume_id: str) -> None:
    sdk.block_storage.delete_volume(volume_id, ignore_missing=True)
    wait_until(lambda: sdk.block_storage.find_volume(volume_id) is None, "canary volume")


def _delete_snapshot(sdk: Any, snapshot_id: str) -> None:
    sdk.block_storage.delete_snapshot(snapshot_id, ignore_missing=True)
    wait_until(lambda: sdk.block_storage.find_snapshot(snapshot_id) is None, "canary snapshot")


def canary_state(admin: Any, made: dict[str, str]) -> dict[str, Any]:
    """What a crafted cid once changed: existence, metadata, tags, attachments, names."""
    compute, storage = admin.compute, admin.block_storage
    servers = {
        key: (s.status, s.name, dict(s.metadata or {}))
        for key in ("vm_a", "vm_b")
        for s in [compute.get_server(made[key])]
    }
    volume = storage.get_volume(made["volume"])
    return {
        "keypair": compute.find_keypair(made["keypair"]) is not None,
        "flavor": compute.find_flavor(made["flavor"]) is not None,
        "server_group": compute.find_server_group(made["server_group"]) is not None,
        "volume_type": storage.find_type(made["volume_type"]) is not None,
        "servers": servers,
        "volume": (volume.status, volume.size, dict(volume.metadata or {})),
        "snapshot": storage.get_snapshot(made["snapshot"]).status,
        "image": sorted(admin.image.get_image(made["image"]).tags or []),
        "own_port": admin.network.find_port(made["own_port"]) is not None,
        "foreign_port": admin.network.find_port(made["foreign_port"]) is not None,
    }


@pytest.fixture(scope="module")
def before(admin: Any, canaries: dict[str, str]) -> Iterator[dict[str, Any]]:
    state = canary_state(admin, canaries)
    yield state
    assert canary_state(admin, canaries) == state, "a canary resource was changed"


@pytest.fixture(params=[False, True], ids=["keystoneauth", "token-cache"])
def transport_cpi(request: pytest.FixtureRequest, cpi_for: Callable[..., CpiProcess]) -> CpiProcess:
    cpi = cpi_for(token_cache=request.param)
    cpi.env = director_environment(LOG_LEVEL_ENV)
    if request.param:  # a cached token: the next calls take the stdlib transport
        assert cpi.call("has_vm", UUID).result is False
    return cpi


def _fill(arguments: list[Any], made: dict[str, str], vm: str, disk: str) -> list[Any]:
    values = {"vm": made["vm_a"], "disk": made["volume"], "snapshot": made["snapshot"]}
    values["stemcell"] = made["image"]
    filled = []
    for argument in arguments:
        if isinstance(argument, str) and argument.startswith("{"):
            argument = {"{vm}": vm, "{disk}": disk}.get(argument, values[argument[1:-1]])
        filled.append(argument)
    return filled


def _malformed(template: Any, made: dict[str, str]) -> Any:
    if not isinstance(template, str):
        return template
    return re.sub(r"\{(\w+)\}", lambda m: made[m.group(1)], template)


def test_malformed_cids_send_nothing_and_change_nothing(
    transport_cpi: CpiProcess, canaries: dict[str, str], before: dict[str, Any]
) -> None:
    cases = [
        (method, index, error_type, _malformed(template, canaries), arguments)
        for method, arguments, index, error_type in CID_ARGUMENTS
        for template in MALFORMED
        if not (template is None and method == "create_disk")  # null: a disk without a VM
    ]

    def run(case: tuple[str, int, str | None, Any, list[Any]]) -> str | None:
        method, index, error_type, cid, arguments = case
        filled = _fill(arguments, canaries, canaries["vm_a"], canaries["volume"])
        filled[index] = cid
        result = transport_cpi.call(method, *filled)
        return _problem(result, method, cid, error_type)

    with ThreadPoolExecutor(4) as pool:
        problems = [p for p in pool.map(run, cases) if p]
    assert not problems, f"{len(problems)} of {len(cases)} calls:\n" + "\n".join(problems[:20])


def _problem(result: CpiResult, method: str, cid: Any, error_type: str | None) -> str | None:
    sent = requests_in(result.stderr)
    label = f"{method}({cid!r:.60})"
    if sent:
        return f"{label} sent {[(m, p) for _, m, p, _ in sent]}"
    if result.returncode != 0:
        return f"{label} exited {result.returncode}"
    if cid is None or isinstance(cid, int):
        # a JSON type the method does not take: the request itself is refused
        ok = result.error is not None and result.error["type"] == "Bosh::Clouds::CpiError"
        return None if ok else f"{label} answered {result.response}"
    if error_type is None:
        return None if result.response["result"] is False else f"{label}: {result.response}"
    if result.error is None or result.error["type"] != f"Bosh::Clouds::{error_type}":
        return f"{label} answered {result.response}"
    return None


# (method, arguments): each cid is a real id of ANOTHER kind of resource.
CROSS_KIND = [
    ("delete_vm", ["{volume}"]),
    ("delete_vm", ["{own_port}"]),
    ("delete_vm", ["{foreign_port}"]),
    ("delete_vm", ["{image}"]),
    ("reboot_vm", ["{volume}"]),
    ("set_vm_metadata", ["{snapshot}", {"deployment": "d"}]),
    ("get_disks", ["{image}"]),
    ("has_vm", ["{volume}"]),
    ("detach_disk", ["{vm_a}", "{vm_b}"]),
    ("attach_disk", ["{vm_a}", "{vm_b}"]),
    ("delete_disk", ["{snapshot}"]),
    ("delete_disk", ["{vm_b}"]),
    ("has_disk", ["{snapshot}"]),
    ("set_disk_metadata", ["{vm_a}", {"deployment": "d"}]),
    ("resize_disk", ["{snapshot}", 4096]),
    ("snapshot_disk", ["{vm_b}", {}]),
    ("delete_snapshot", ["{volume}"]),
    ("delete_stemcell", ["{vm_b}"]),
    ("delete_stemcell", ["{volume}"]),
]

# Requests any call may make that name no resource: tokens and version documents.
_NEUTRAL = re.compile(r"^/(v3/auth/tokens|v\d[.\d]*/?|)$|^/v2\.1/?$|^/v3/[0-9a-f]{32}/?$")


@pytest.mark.parametrize(("method", "arguments"), CROSS_KIND, ids=lambda v: str(v))
def test_an_id_of_another_kind_reaches_only_its_own_url(
    method: str,
    arguments: list[Any],
    transport_cpi: CpiProcess,
    canaries: dict[str, str],
    before: dict[str, Any],
) -> None:
    filled = [_malformed(a, canaries) for a in arguments]
    result = transport_cpi.call(method, *filled)
    named = [a for a in filled if isinstance(a, str)]
    assert result.returncode == 0
    others = [v for k, v in canaries.items() if v not in named and k != "keypair"]
    for _, verb, path, _ in requests_in(result.stderr):
        if _NEUTRAL.match(path.split("?")[0]):
            continue
        assert any(cid in path for cid in named), f"{verb} {path} names none of {named}"
        assert not any(other in path for other in others), f"{verb} {path}"
    if method in ("has_vm", "has_disk"):
        assert result.response["result"] is False


def test_create_disk_for_an_id_of_another_kind_looks_up_only_that_server(
    transport_cpi: CpiProcess, canaries: dict[str, str], before: dict[str, Any]
) -> None:
    """A volume's id as create_disk's vm_cid names no server: the id reaches only Nova's
    server URL, and the disk is made without a zone, as the reference CPI makes it for a
    VM that does not exist. The canary volume is untouched (`before`)."""
    volume = canaries["volume"]
    result = transport_cpi.call("create_disk", 1024, {}, volume)
    assert result.error is None, result.error
    made = transport_cpi.call("delete_disk", result.result)
    assert made.error is None, made.error
    assert f"VM '{volume}' does not exist: creating the disk without" in result.stderr
    others = [v for k, v in canaries.items() if v != volume and k != "keypair"]
    for _, verb, path, _ in requests_in(result.stderr):
        assert not any(other in path for other in others), f"{verb} {path}"
        if volume in path:
            assert verb == "GET" and f"/servers/{volume}" in path, f"{verb} {path}"


def test_a_missing_disk_is_not_blamed_on_the_vm(
    transport_cpi: CpiProcess, canaries: dict[str, str], before: dict[str, Any]
) -> None:
    """detach_disk of a disk that is gone succeeds (the reference's behaviour: nothing to
    detach); attach_disk of one names the disk, not the VM that exists."""
    vm = canaries["vm_a"]
    detached = transport_cpi.call("detach_disk", vm, MISSING_ID)
    assert detached.error is None, detached.error
    attached = transport_cpi.call("attach_disk", vm, MISSING_ID)
    assert attached.error is not None
    assert attached.error["type"] == "Bosh::Clouds::DiskNotFound", attached.error
    assert MISSING_ID in attached.error["message"]
    assert vm not in attached.error["message"]
