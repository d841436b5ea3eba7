"""The release as BOSH runs it (issue 12): both packages compiled by their `packaging`
scripts (tests/release/packaged.py), the job rendered from its templates with the
properties of this cloud (tests/release/job_templates.py), then the rendered bin/cpi
started with no arguments, one process per call:

- as `bosh create-env` starts it (BOSH_PACKAGES_DIR and BOSH_JOBS_DIR set): a stemcell,
  VM and disk lifecycle, with the cloud's state checked behind the CPI's back;
- as a director VM starts it: an empty environment, the job and packages at
  /var/vcap (a private mount namespace puts them there for this test only).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import vm_support as vs
from tests.integration.disk_support import MISSING_ID, ok, volume_or_none, wait_until
from tests.release.job_templates import render_job
from tests.release.packaged import build_packages_root
from tools.cloud_description import cpi_document
from tools.cpi_process import CpiProcess, director_environment
from tools.stemcell_builder import build_stemcell

MIB = 1 << 20


@pytest.fixture(scope="module")
def vcap(tmp_path_factory: pytest.TempPathFactory, cloud: dict[str, Any]) -> Path:
    """<root>/packages and <root>/jobs, as /var/vcap holds them on a director VM."""
    root = tmp_path_factory.mktemp("vcap")
    build_packages_root(root)
    render_job(cpi_document(cloud)["cloud"]["properties"]).install(root / "jobs")
    return root


@pytest.fixture
def create_env_cpi(vcap: Path, director_uuid: str) -> CpiProcess:
    bin_cpi = vcap / "jobs" / "openstack_cpi" / "bin" / "cpi"
    env = {"BOSH_PACKAGES_DIR": str(vcap / "packages"), "BOSH_JOBS_DIR": str(vcap / "jobs")}
    return CpiProcess([str(bin_cpi)], director_uuid=director_uuid, env=director_environment(env))


@pytest.fixture
def made_stemcell(
    create_env_cpi: CpiProcess, tmp_path: Path, admin: Any
) -> Iterator[tuple[str, str]]:
    stemcell = build_stemcell(tmp_path / "stemcell", "qcow2", 8 * MIB, content="mixed")
    stemcell_cid = ok(
        create_env_cpi.call("create_stemcell", str(stemcell.image), stemcell.cloud_properties)
    )
    try:
        yield stemcell_cid, str(stemcell.image)
    finally:
        ok(create_env_cpi.call("delete_stemcell", stemcell_cid))
        assert admin.image.find_image(stemcell_cid) is None


def test_the_packaged_job_runs_a_lifecycle_as_create_env_starts_it(
    leak_check: None,  # first: checked after the stemcell fixture has deleted its image
    create_env_cpi: CpiProcess,
    made_stemcell: tuple[str, str],
    cloud: dict[str, Any],
    admin: Any,
) -> None:
    cpi = create_env_cpi
    stemcell_cid, _ = made_stemcell
    assert admin.image.get_image(stemcell_cid).status == "active"
    networks = {"private": vs.manual_network(cloud, position=3)}
    with vs.vm(cpi, cloud, networks, stemcell=stemcell_cid) as (vm_cid, _, _):
        server = admin.compute.get_server(vm_cid)
        assert server.status == "ACTIVE"
        assert server.image["id"] == stemcell_cid
        assert ok(cpi.call("has_vm", vm_cid)) is True
        disk_cid = ok(cpi.call("create_disk", 1024, {}, vm_cid))
        try:
            hint = ok(cpi.call("attach_disk", vm_cid, disk_cid))
            assert hint.startswith("/dev/")
            assert ok(cpi.call("get_disks", vm_cid)) == [disk_cid]
            assert admin.block_storage.get_volume(disk_cid).status == "in-use"
            ok(cpi.call("detach_disk", vm_cid, disk_cid))
            assert admin.block_storage.get_volume(disk_cid).status == "available"
        finally:
            ok(cpi.call("delete_disk", disk_cid))
        wait_until(lambda: volume_or_none(admin, disk_cid) is None, "disk deletion")
    assert ok(cpi.call("has_vm", vm_cid)) is False


def test_the_packaged_job_answers_as_a_director_starts_it(vcap: Path, cloud: dict[str, Any]):
    """No arguments, an empty environment, everything under /var/vcap: the job's bin/cpi
    must find its config and interpreter on its own."""
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if unshare is None or mount is None:
        pytest.fail("util-linux's unshare and mount are needed (Debian: util-linux, mount)")
    Path("/var/vcap").mkdir(exist_ok=True)  # the mount point; the namespace fills it
    command = [
        unshare,
        "--mount",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        f'{mount} --bind "$0" /var/vcap && exec /usr/bin/env -i "$1"',
        str(vcap),
        "/var/vcap/jobs/openstack_cpi/bin/cpi",
    ]
    cpi = CpiProcess(command, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    info = cpi.call("info")
    assert info.error is None and info.result["api_version"] == 3
    assert ok(cpi.call("has_vm", MISSING_ID)) is False
    image_id = cloud["resources"]["image_id"]
    assert ok(cpi.call("create_stemcell", "/nonexistent", {"image_id": image_id})) == (
        f"{image_id} light"
    )
