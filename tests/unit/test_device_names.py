import pytest

from bosh_openstack_cpi.device_names import (
    first_letter,
    free_device,
    is_root_device,
    letter_of,
)


@pytest.mark.parametrize(
    ("ephemeral_gib", "swap_mib", "config_drive", "expected"),
    [
        (0, 0, None, "b"),
        (10, 0, None, "c"),
        (0, 512, None, "c"),
        (0, 0, "cdrom", "b"),  # a CD-ROM takes no disk letter
        (0, 0, "disk", "c"),
        (10, 512, "disk", "e"),
    ],
)
def test_first_letter_comes_after_ephemeral_swap_and_config_drive(
    ephemeral_gib, swap_mib, config_drive, expected
):
    first = first_letter(ephemeral_gib=ephemeral_gib, swap_mib=swap_mib, config_drive=config_drive)
    assert first == expected


def test_a_letter_is_taken_under_any_of_its_names():
    used = ["/dev/vda", "/dev/sdb", "/dev/vdc", "/dev/xvdd"]
    assert free_device(used, "b") == "/dev/sde"


def test_letters_before_the_first_one_are_never_used():
    assert free_device([], "c") == "/dev/sdc"
    assert free_device(["/dev/sdb"], "d") == "/dev/sdd"


def test_no_free_letter_left():
    used = [f"/dev/vd{chr(c)}" for c in range(ord("b"), ord("z") + 1)]
    assert free_device(used, "b") is None
    assert free_device(used[:-1], "b") == "/dev/sdz"


def test_unknown_device_names_take_no_letter():
    assert free_device([None, "/dev/disk/by-id/x", "/dev/sdbb"], "b") == "/dev/sdb"
    assert letter_of("/dev/nvme0n1") is None


def test_root_device_is_letter_a():
    assert is_root_device("/dev/vda")
    assert is_root_device("/dev/sda")
    assert is_root_device("/dev/xvda")
    assert not is_root_device("/dev/vdb")
    assert not is_root_device(None)
