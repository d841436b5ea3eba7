from bosh_openstack_cpi.operator.inventory import MARK, Resource
from bosh_openstack_cpi.operator.orphans import _known, age

VM, DISK, SNAP = "vm-known", "disk-known", "snap"


def resource(kind, resource_id, *holders):
    return Resource(kind, resource_id, "", MARK, "", "", "", tuple(holders))


def test_what_counts_as_known():
    known = {VM, DISK}
    volumes = {DISK, "attached-to-known-vm"}
    assert _known(resource("server", VM), known, volumes)
    assert not _known(resource("server", "other"), known, volumes)
    assert _known(resource("volume", "attached-to-known-vm", VM), known, volumes)
    assert not _known(resource("volume", "loose"), known, volumes)
    assert _known(resource("snapshot", SNAP, "attached-to-known-vm"), known, volumes)
    assert not _known(resource("snapshot", SNAP, "loose"), known, volumes)
    assert _known(resource("port", "p", VM), known, volumes)
    assert not _known(resource("port", "p"), known, volumes)  # bound to nothing
    assert not _known(resource("port", "p", "gone-vm"), known, volumes)


def test_age_is_read_from_the_services_timestamps():
    now = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    assert age("2023-11-14T22:13:00Z", now) == "0m 20s"
    assert age("2023-11-14T20:13:20.000000", now) == "2h 0m"  # Cinder: no zone, UTC
    assert age("2023-11-12T21:13:20+00:00", now) == "2d 1h"
    assert age("", now) == "?"
