"""Every cid argument of every method is checked before anything is loaded or sent: the
config path here does not exist, so any answer other than the cid error would show that
the call went further."""

import io
import json

import pytest

from bosh_openstack_cpi import cids
from bosh_openstack_cpi.protocol import dispatch

VM = "9f1c3a52-5d0e-4b8e-9a8c-2f4b6d7e8a10"
DISK = "0b6f1c1e-8f0e-4c4b-9d7a-3e2f1a0b9c8d"

# Each a cid that could reach another resource, or nothing at all, through a URL.
MALFORMED = [
    "",
    " ",
    "..",
    f"../{VM}",
    f"../../v2/images/{VM}",
    f"{VM}/metadata/key",
    f"{VM}/os-interface/{DISK}",
    f"{VM}?all_tenants=1",
    f"{VM}#x",
    f"/{VM}",
    f"{VM} ",
    f" {VM}",
    f"{VM}\n",
    f"{VM}%2F..",
    "%2e%2e",
    "é" * 36,
    VM.replace("-", ""),
    VM + "0",
    "1234",
    "x" * 10_000,
]

# (method, arguments with the cid at `position`, expected error type)
CASES = [
    ("delete_vm", [None], 0, "Bosh::Clouds::VMNotFound"),
    ("reboot_vm", [None], 0, "Bosh::Clouds::VMNotFound"),
    ("set_vm_metadata", [None, {}], 0, "Bosh::Clouds::VMNotFound"),
    ("get_disks", [None], 0, "Bosh::Clouds::VMNotFound"),
    ("attach_disk", [None, DISK], 0, "Bosh::Clouds::VMNotFound"),
    ("attach_disk", [VM, None], 1, "Bosh::Clouds::DiskNotFound"),
    ("detach_disk", [None, DISK], 0, "Bosh::Clouds::VMNotFound"),
    ("detach_disk", [VM, None], 1, "Bosh::Clouds::DiskNotFound"),
    ("delete_disk", [None], 0, "Bosh::Clouds::DiskNotFound"),
    ("set_disk_metadata", [None, {}], 0, "Bosh::Clouds::DiskNotFound"),
    ("resize_disk", [None, 2048], 0, "Bosh::Clouds::DiskNotFound"),
    ("update_disk", [None, 2048, {}], 0, "Bosh::Clouds::DiskNotFound"),
    ("snapshot_disk", [None, {}], 0, "Bosh::Clouds::DiskNotFound"),
    ("create_disk", [2048, {}, None], 2, "Bosh::Clouds::VMNotFound"),
    ("delete_snapshot", [None], 0, "Bosh::Clouds::CloudError"),
    ("delete_stemcell", [None], 0, "Bosh::Clouds::CloudError"),
    ("create_vm", ["agent", None, {}, {}, [], {}], 1, "Bosh::Clouds::CloudError"),
]


def _call(method, arguments):
    raw = json.dumps(
        {"method": method, "arguments": arguments, "context": {"director_uuid": "d"}}
    ).encode()
    return json.loads(dispatch.handle(raw, "/nonexistent/cpi.json", None, io.StringIO()))


@pytest.mark.parametrize("cid", MALFORMED)
@pytest.mark.parametrize(("method", "arguments", "position", "error_type"), CASES)
def test_a_malformed_cid_fails_before_the_config_is_read(
    method, arguments, position, error_type, cid
):
    arguments = list(arguments)
    arguments[position] = cid
    response = _call(method, arguments)
    assert response["result"] is None
    assert response["error"]["type"] == error_type
    assert "Nothing was sent to OpenStack" in response["error"]["message"]
    assert "UUID such as" in response["error"]["message"]


@pytest.mark.parametrize("cid", MALFORMED)
@pytest.mark.parametrize("method", ["has_vm", "has_disk"])
def test_has_methods_answer_false_for_a_malformed_cid_without_the_config(method, cid):
    response = _call(method, [cid])
    assert response["error"] is None
    assert response["result"] is False


@pytest.mark.parametrize("cid", MALFORMED)
def test_a_malformed_disk_in_create_vms_disk_cids_is_refused(cid):
    response = _call("create_vm", ["agent", VM, {}, {}, [DISK, cid], {}])
    assert response["error"]["type"] == "Bosh::Clouds::CloudError"
    assert "Invalid disk_cids" in response["error"]["message"]


def test_a_well_formed_cid_goes_on_to_the_config():
    for method, arguments in (("has_vm", [VM.upper()]), ("delete_stemcell", [VM])):
        response = _call(method, arguments)
        assert "/nonexistent/cpi.json" in response["error"]["message"]
    # A light stemcell's image is not the CPI's: deleting it needs nothing at all.
    response = _call("delete_stemcell", [f"{VM} light"])
    assert response["error"] is None


def test_create_disk_without_a_vm_needs_no_vm_cid():
    response = _call("create_disk", [2048, {}, None])
    assert "/nonexistent/cpi.json" in response["error"]["message"]


def test_only_stemcells_take_the_light_suffix():
    assert cids.is_valid("stemcell_cid", f"{VM} light")
    assert not cids.is_valid("vm_cid", f"{VM} light")
    assert not cids.is_valid("stemcell_cid", f"{VM} light light")


def test_a_long_cid_is_shortened_in_the_message():
    message = cids.error_for("vm_cid", "x" * 10_000).message
    assert len(message) < 300
