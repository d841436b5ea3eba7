import pytest

from bosh_openstack_cpi import flavors
from bosh_openstack_cpi.flavors import Flavor
from bosh_openstack_cpi.protocol.errors import CloudError
from bosh_openstack_cpi.vm_properties import RootDisk


def _flavor(name, vcpus=1, ram=1024, disk=10, ephemeral=0, **extra):
    return Flavor(
        id=f"id-{name}", name=name, vcpus=vcpus, ram=ram, disk=disk, ephemeral=ephemeral, **extra
    )


def test_from_api_reads_nova_fields_and_empty_swap():
    flavor = Flavor.from_api(
        {
            "id": "1",
            "name": "m1",
            "vcpus": 2,
            "ram": 2048,
            "disk": 20,
            "OS-FLV-EXT-DATA:ephemeral": 10,
            "swap": "",
            "OS-FLV-DISABLED:disabled": False,
        }
    )
    assert flavor == Flavor("1", "m1", 2, 2048, 20, 10, 0, False)
    assert flavor.has_ephemeral_disk


def test_find_by_name_then_by_id_else_list_what_exists():
    listed = [_flavor("small"), _flavor("large")]
    assert flavors.find(listed, "small").name == "small"
    assert flavors.find(listed, "id-large").name == "large"
    with pytest.raises(CloudError, match=r"Flavor 'huge'.*large, small"):
        flavors.find(listed, "huge")


def test_ephemeral_disk_must_hold_twice_the_ram():
    flavors.check_ephemeral_disk(_flavor("ok", ram=2048, ephemeral=4))
    flavors.check_ephemeral_disk(_flavor("none", ram=8192, ephemeral=0))
    with pytest.raises(CloudError, match="at least 4 GiB of ephemeral disk"):
        flavors.check_ephemeral_disk(_flavor("small-eph", ram=2048, ephemeral=2))


def test_boot_volume_size_from_root_disk_or_flavor():
    assert flavors.boot_volume_size(_flavor("f", disk=20), RootDisk()) == 20
    assert flavors.boot_volume_size(_flavor("f", disk=0), RootDisk(size_gib=30)) == 30
    with pytest.raises(CloudError, match="has a root disk size of 0"):
        flavors.boot_volume_size(_flavor("noroot", disk=0), RootDisk())


CATALOG = [
    _flavor("tiny", vcpus=1, ram=512, disk=1),
    _flavor("small", vcpus=1, ram=2048, disk=20),
    _flavor("medium", vcpus=2, ram=4096, disk=40),
    _flavor("ephemeral", vcpus=1, ram=2048, disk=10, ephemeral=10),
    _flavor("noroot", vcpus=1, ram=1024, disk=0),
    _flavor("disabled", vcpus=1, ram=1024, disk=50, disabled=True),
]


def test_smallest_flavor_with_ephemeral_disk_first():
    result = flavors.vm_cloud_properties(
        {"cpu": 1, "ram": 1024, "ephemeral_disk_size": 4096}, CATALOG, False
    )
    assert result == {"instance_type": "ephemeral"}


def test_root_disk_flavor_when_no_ephemeral_flavor_is_large_enough():
    result = flavors.vm_cloud_properties(
        {"cpu": 1, "ram": 1024, "ephemeral_disk_size": 15 * 1024}, CATALOG, False
    )
    assert result == {"instance_type": "small"}  # 20 GiB >= 15 + 3


def test_boot_from_volume_takes_flavors_without_ephemeral_disk_and_sizes_the_volume():
    result = flavors.vm_cloud_properties(
        {"cpu": 1, "ram": 512, "ephemeral_disk_size": 10000 * 1024}, CATALOG, True
    )
    assert result == {"instance_type": "tiny", "root_disk": {"size": 10003}}
    small = flavors.vm_cloud_properties(
        {"cpu": 1, "ram": 2048, "ephemeral_disk_size": 1024}, CATALOG, True
    )
    assert small == {"instance_type": "small"}  # 20 GiB root disk holds 1 + 3


def test_flavors_create_vm_would_refuse_are_never_proposed():
    catalog = [
        _flavor("thin-eph", vcpus=1, ram=4096, disk=10, ephemeral=4),
        _flavor("big", vcpus=1, ram=4096, disk=50),
    ]
    result = flavors.vm_cloud_properties(
        {"cpu": 1, "ram": 4096, "ephemeral_disk_size": 1024}, catalog, False
    )
    assert result == {"instance_type": "big"}


def test_nothing_fits_lists_what_exists():
    with pytest.raises(CloudError) as raised:
        flavors.vm_cloud_properties(
            {"cpu": 64, "ram": 1024, "ephemeral_disk_size": 1024}, CATALOG, False
        )
    message = raised.value.message
    assert "Unable to meet requested VM requirements: 64 CPU" in message
    assert "medium: 2 CPU, 4096 MiB RAM, 40 GiB root disk" in message


def test_missing_or_wrong_requirements_are_named():
    with pytest.raises(CloudError, match=r"'cpu' must be a non-negative number.*'ram' is missing"):
        flavors.vm_cloud_properties({"cpu": "two", "ephemeral_disk_size": 1}, CATALOG, False)
