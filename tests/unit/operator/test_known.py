import json

import pytest

from bosh_openstack_cpi.operator.known import KnownFileError, cids_in, read_known

VM = "0c4b6d1e-3a2f-4c5d-9e8f-1a2b3c4d5e6f"
DISK_1 = "1c4b6d1e-3a2f-4c5d-9e8f-1a2b3c4d5e6f"
DISK_2 = "2C4B6D1E-3A2F-4C5D-9E8F-1A2B3C4D5E6F"
IMAGE = "3c4b6d1e-3a2f-4c5d-9e8f-1a2b3c4d5e6f"


def table(content, header, rows):
    return {"Tables": [{"Content": content, "Header": header, "Rows": rows, "Notes": []}]}


def test_vms_with_details_disks_and_light_stemcells():
    vms = table(
        "vms",
        {"vm_cid": "VM CID", "disk_cids": "Disk CIDs"},
        [{"vm_cid": VM, "disk_cids": f"{DISK_1}\n{DISK_2}"}, {"vm_cid": "", "disk_cids": ""}],
    )
    stemcells = table("stemcells", {"cid": "CID"}, [{"cid": f"{IMAGE} light"}])
    assert cids_in(vms) == {VM, DISK_1, DISK_2.lower()}
    assert cids_in(stemcells) == {IMAGE}


def test_an_empty_list_is_valid_but_not_a_table_without_cids():
    assert cids_in(table("disks", {"disk_cid": "Disk CID"}, [])) == set()
    with pytest.raises(KnownFileError, match="no cid column"):
        cids_in(table("deployments", {"name": "Name"}, [{"name": VM}]))


def test_files_that_are_not_bosh_json(tmp_path):
    (tmp_path / "text").write_text("Using environment ...")
    (tmp_path / "other.json").write_text(json.dumps({"vms": [VM]}))
    for name in ("text", "other.json", "missing"):
        with pytest.raises(KnownFileError):
            read_known([str(tmp_path / name)])
