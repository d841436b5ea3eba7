"""`bosh-openstack-cpi orphans` against the real cloud: resources of each kind are seeded
with a director's mark (through the CPI itself where the CPI makes them), some known to the
director through `bosh ... --json` files and some not; the tool lists exactly the unknown
ones and `--delete` removes exactly those."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bosh_openstack_cpi.tagging import port_description
from tests.integration.disk_support import ok, snapshot_or_none, volume_or_none
from tests.integration.operator_support import run_tool, write_config
from tests.integration.vm_support import create, dynamic_network, manual_network
from tools.cpi_process import CpiProcess
from tools.fault_campaign import sweep


def bosh_json(content: str, columns: dict[str, str], rows: list[dict[str, str]]) -> str:
    """What `bosh <command> --json` prints (bosh-cli ui/json_ui.go: Tables of keyed rows)."""
    table = {"Content": content, "Header": columns, "Rows": rows, "Notes": []}
    return json.dumps({"Tables": [table], "Blocks": None, "Lines": []})


def known_files(tmp_path: Path, vm: str, orphaned_disk: str, image: str) -> list[str]:
    files = {
        "vms.json": bosh_json(
            "vms",
            {"instance": "Instance", "process_state": "Process State", "vm_cid": "VM CID"},
            [{"instance": "zookeeper/0f1e", "process_state": "running", "vm_cid": vm}],
        ),
        "disks.json": bosh_json(
            "disks",
            {"disk_cid": "Disk CID", "size": "Size", "deployment": "Deployment"},
            [{"disk_cid": orphaned_disk, "size": "1.0 GiB", "deployment": "zookeeper"}],
        ),
        "stemcells.json": bosh_json(
            "stemcells",
            {"name": "Name", "version": "Version", "cid": "CID"},
            [{"name": "bosh-openstack-kvm-ubuntu-jammy", "version": "1.1*", "cid": image}],
        ),
    }
    arguments = []
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        arguments += ["--known", str(tmp_path / name)]
    return arguments


@pytest.fixture
def seeded(
    cpi: CpiProcess, cloud: dict[str, Any], project_sdk: Any, director_uuid: str, leak_check: None
) -> Iterator[dict[str, dict[str, str]]]:
    """{"known": {...}, "orphans": {...}} of resource ids; everything is removed afterwards
    by the suite's own sweep (not by the tool under test)."""
    made: dict[str, dict[str, str]] = {"known": {}, "orphans": {}}
    name_only = None
    try:
        known, orphans = made["known"], made["orphans"]
        known["vm"] = ok(create(cpi, cloud, {"m": manual_network(cloud, position=-5)}))[0]
        orphans["vm"] = ok(create(cpi, cloud, {"d": dynamic_network(cloud)}))[0]
        known["attached disk"] = ok(cpi.call("create_disk", 1024, {}, known["vm"]))
        ok(cpi.call("attach_disk", known["vm"], known["attached disk"]))
        known["snapshot"] = ok(cpi.call("snapshot_disk", known["attached disk"], {}))
        known["orphaned disk"] = ok(cpi.call("create_disk", 1024, {}, None))
        orphans["disk"] = ok(cpi.call("create_disk", 1024, {}, None))
        ok(cpi.call("attach_disk", orphans["vm"], orphans["disk"]))  # server before volume
        orphans["snapshot"] = ok(cpi.call("snapshot_disk", orphans["disk"], {}))
        for kind in ("known", "orphans"):
            image = project_sdk.image.create_image(
                name=f"test-operator-{kind}",
                disk_format="raw",
                container_format="bare",
                director_uuid=director_uuid,
            )
            made[kind]["image"] = image.id
        network = cloud["resources"]["networks"]["dhcp"]["id"]
        port = project_sdk.network.create_port(
            network_id=network, description=port_description(director_uuid)
        )
        orphans["port"] = port.id
        address = project_sdk.network.find_ip(cloud["resources"]["floating_ips"][-2])
        project_sdk.network.update_ip(address, port_id=port.id)
        orphans["floating IP"] = address.id
        name_only = project_sdk.block_storage.create_volume(size=1, name=f"volume-{uuid.uuid4()}")
        orphans["volume named as the reference CPIs do"] = name_only.id
        project_sdk.block_storage.wait_for_status(name_only, "available", wait=120, interval=0.5)
        yield made
    finally:
        sweep(cloud, director_uuid)
        if name_only is not None:
            project_sdk.block_storage.delete_volume(name_only.id, ignore_missing=True)


def listed_ids(output: str) -> set[str]:
    """The id column of the table `orphans` prints."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("kind "))
    ids = set()
    for line in lines[start + 1 :]:
        parts = line.split()
        if len(parts) > 2 and parts[0] in ("server", "port", "snapshot", "volume", "image"):
            ids.add(parts[1])
        elif line.startswith("floating IP"):
            ids.add(parts[2])
    return ids


def test_orphans_lists_the_unknown_resources_and_deletes_exactly_those(
    tmp_path, cloud, director_uuid, seeded, admin, project_sdk
):
    cpi_json, _ = write_config(tmp_path / "job", cloud, None)
    known, orphans = seeded["known"], seeded["orphans"]
    lists = known_files(tmp_path, known["vm"], known["orphaned disk"], known["image"])
    base = ["orphans", str(cpi_json), "--director-uuid", director_uuid, *lists]

    listing = run_tool(*base)

    assert listing.returncode == 0, listing.stdout + listing.stderr
    found = listed_ids(listing.stdout)
    assert set(orphans.values()) <= found
    assert not found & set(known.values())
    # the CPI's own port of the orphan VM is an orphan too; nothing else of this director
    marked = {line.split()[1] for line in listing.stdout.splitlines() if "director_uuid" in line}
    marked |= {orphans["floating IP"]}
    assert len(marked - set(orphans.values())) == 1

    refused = run_tool(*base, "--delete", stdin="no\n")
    assert refused.returncode == 1 and "nothing deleted" in refused.stdout
    assert project_sdk.compute.find_server(orphans["vm"]) is not None

    deleted = run_tool(*base, "--delete", "--yes")

    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert project_sdk.compute.find_server(orphans["vm"]) is None
    assert volume_or_none(project_sdk, orphans["disk"]) is None
    assert volume_or_none(project_sdk, orphans["volume named as the reference CPIs do"]) is None
    assert snapshot_or_none(project_sdk, orphans["snapshot"]) is None
    assert project_sdk.image.find_image(orphans["image"]) is None
    assert project_sdk.network.find_port(orphans["port"]) is None
    assert project_sdk.network.get_ip(orphans["floating IP"]).port_id is None  # still allocated
    assert project_sdk.compute.find_server(known["vm"]) is not None
    assert volume_or_none(project_sdk, known["attached disk"]).status == "in-use"
    assert volume_or_none(project_sdk, known["orphaned disk"]) is not None
    assert snapshot_or_none(project_sdk, known["snapshot"]) is not None
    assert project_sdk.image.find_image(known["image"]) is not None
    again = run_tool(*base)
    assert "0 resource(s)" in again.stdout.splitlines()[0]
    directors = run_tool("orphans", str(cpi_json))  # which UUID to pass, with counts
    assert directors.returncode == 2
    assert f"  {director_uuid}  (4)" in directors.stdout  # the known VM, 2 disks, a snapshot


def test_delete_without_the_directors_lists_is_refused(tmp_path, cloud, director_uuid):
    cpi_json, _ = write_config(tmp_path / "job", cloud, None)

    refused = run_tool("orphans", str(cpi_json), "--director-uuid", director_uuid, "--delete")

    assert refused.returncode == 2
    assert "--known" in refused.stdout


def test_unmarked_ports_bound_to_nothing_are_found_on_the_networks_named(
    tmp_path, cloud, director_uuid, project_sdk, leak_check
):
    """What a reference CPI leaves when create_vm fails half-way: a port with no device and
    no description (it does not mark its ports)."""
    cpi_json, _ = write_config(tmp_path / "job", cloud, None)
    network = cloud["resources"]["networks"]["manual_2"]["id"]
    port = project_sdk.network.create_port(network_id=network, name=f"vm-{uuid.uuid4()}")
    bound = project_sdk.network.create_port(network_id=network, device_owner="compute:z1")
    try:
        base = ["orphans", str(cpi_json), "--director-uuid", director_uuid, "--none-known"]
        without = run_tool(*base)
        listing = run_tool(*base, "--network", network)
        deleted = run_tool(*base, "--network", network, "--delete", "--yes")
    finally:
        project_sdk.network.delete_port(port.id, ignore_missing=True)
        project_sdk.network.delete_port(bound.id, ignore_missing=True)

    assert port.id not in without.stdout  # only on the networks named
    assert port.id in listed_ids(listing.stdout) and "unbound port" in listing.stdout
    assert bound.id not in listing.stdout  # it has an owner
    assert deleted.returncode == 0, deleted.stdout
    assert f"deleted port {port.id}" in deleted.stdout
