import pytest

from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.protocol.errors import CloudError, VMCreationFailed
from bosh_openstack_cpi.vm_properties import (
    LoadbalancerPool,
    check_multiple_networks,
    parse_networks,
    parse_vm_type,
    stemcell_image_id,
)

CONFIG = OpenStackConfig(auth_url="http://k/v3", default_key_name="bosh")


def _config(**changes):
    from dataclasses import replace

    return replace(CONFIG, **changes)


N1 = "11111111-1111-4111-8111-111111111111"
N2 = "22222222-2222-4222-8222-222222222222"


def _manual(ip="10.0.0.5", net_id="11111111-1111-4111-8111-111111111111", **extra):
    return {"type": "manual", "ip": ip, "cloud_properties": {"net_id": net_id}, **extra}


def test_minimal_vm_type_takes_the_defaults_of_the_config():
    vm_type = parse_vm_type({"instance_type": "m1.small"}, _config(boot_from_volume=True))
    assert vm_type.instance_type == "m1.small"
    assert vm_type.key_name == "bosh"
    assert vm_type.boot_from_volume is True
    assert vm_type.availability_zones == ()
    assert vm_type.multiple_azs is False
    assert vm_type.unknown_keys == ()


def test_vm_type_values_win_over_the_config():
    vm_type = parse_vm_type(
        {
            "instance_type": "f",
            "key_name": "mine",
            "boot_from_volume": False,
            "availability_zone": "z2",
            "security_groups": ["a", "b"],
            "scheduler_hints": {"group": "g"},
            "root_disk": {"size": 20, "type": "ssd"},
            "allowed_address_pairs": "10.0.0.9",
            "ephemeral_disk": {"size": 1},
        },
        _config(boot_from_volume=True),
    )
    assert vm_type.key_name == "mine"
    assert vm_type.boot_from_volume is False
    assert vm_type.availability_zones == ("z2",)
    assert vm_type.security_groups == ("a", "b")
    assert vm_type.scheduler_hints == {"group": "g"}
    assert (vm_type.root_disk.size_gib, vm_type.root_disk.volume_type) == (20, "ssd")
    assert vm_type.allowed_address_pairs == "10.0.0.9"
    assert vm_type.unknown_keys == ("ephemeral_disk",)


def test_an_empty_availability_zone_means_none():
    assert (
        parse_vm_type({"instance_type": "f", "availability_zone": ""}, CONFIG).availability_zones
        == ()
    )


def test_every_problem_is_reported_at_once():
    with pytest.raises(CloudError) as raised:
        parse_vm_type(
            {
                "security_groups": "bosh",
                "root_disk": {"size": 0},
                "scheduler_hints": [],
                "allowed_address_pairs": "not-an-ip",
                "boot_from_volume": "yes",
            },
            CONFIG,
        )
    message = raised.value.message
    for fragment in (
        "instance_type",
        "security_groups must be an array",
        "root_disk.size",
        "scheduler_hints",
        "allowed_address_pairs",
        "boot_from_volume",
    ):
        assert fragment in message
    assert raised.value.bosh_type == "Bosh::Clouds::CloudError"


def test_multiple_azs_need_ignore_server_availability_zone():
    with pytest.raises(CloudError, match="ignore_server_availability_zone"):
        parse_vm_type({"instance_type": "f", "availability_zones": ["z1", "z2"]}, CONFIG)
    vm_type = parse_vm_type(
        {"instance_type": "f", "availability_zones": ["z1", "z2", "z1"]},
        _config(ignore_server_availability_zone=True),
    )
    assert vm_type.availability_zones == ("z1", "z2")
    assert vm_type.multiple_azs is True


def test_availability_zone_and_zones_exclude_each_other():
    with pytest.raises(CloudError, match="only one of availability_zone and availability_zones"):
        parse_vm_type(
            {"instance_type": "f", "availability_zone": "z1", "availability_zones": ["z2"]},
            _config(ignore_server_availability_zone=True),
        )


def test_loadbalancer_pools_are_read_with_the_optional_monitoring_port():
    vm_type = parse_vm_type(
        {
            "instance_type": "f",
            "loadbalancer_pools": [
                {"name": "web", "port": 80},
                {"name": "tcp", "port": 1024.0, "monitoring_port": 8080},
            ],
        },
        CONFIG,
    )
    assert vm_type.loadbalancer_pools == (
        LoadbalancerPool("web", 80),
        LoadbalancerPool("tcp", 1024, 8080),
    )


@pytest.mark.parametrize("pools", [[], None])
def test_empty_or_null_loadbalancer_pools_ask_for_nothing(pools):
    vm_type = parse_vm_type({"instance_type": "f", "loadbalancer_pools": pools}, CONFIG)
    assert vm_type.loadbalancer_pools == ()


@pytest.mark.parametrize(
    ("pools", "problem"),
    [
        ({"name": "web", "port": 80}, r"loadbalancer_pools must be an array"),
        (["web"], r"loadbalancer_pools\[0\] must be an object"),
        ([{"port": 80}], r"loadbalancer_pools\[0\].name must be the name of an Octavia pool"),
        ([{"name": " ", "port": 80}], r"\[0\].name must be"),
        ([{"name": "web"}], r"loadbalancer_pools\[0\].port must be the members' port"),
        ([{"name": "web", "port": "80"}], r"\[0\].port must be"),
        ([{"name": "web", "port": 0}], r"\[0\].port must be"),
        ([{"name": "web", "port": 65536}], r"\[0\].port must be"),
        ([{"name": "web", "port": True}], r"\[0\].port must be"),
        (
            [{"name": "a", "port": 80}, {"name": "b", "port": 80, "monitoring_port": -1}],
            r"loadbalancer_pools\[1\].monitoring_port must be a port",
        ),
    ],
)
def test_a_malformed_loadbalancer_pool_is_a_cloud_error_naming_the_entry(pools, problem):
    with pytest.raises(CloudError, match=problem):
        parse_vm_type({"instance_type": "f", "loadbalancer_pools": pools}, CONFIG)


def test_unknown_keys_of_a_pool_are_a_warning():
    vm_type = parse_vm_type(
        {"instance_type": "f", "loadbalancer_pools": [{"name": "w", "port": 80, "weight": 2}]},
        CONFIG,
    )
    assert vm_type.warnings == (
        "Ignoring unknown loadbalancer_pools[0] keys: weight (known: name, port, monitoring_port)",
    )


def test_manual_network_without_type_and_gateway_of_a_single_network():
    plan = parse_networks({"a": {"ip": "10.0.0.5", "cloud_properties": {"net_id": N1}}})
    assert plan.manual[0].type == "manual"
    assert plan.gateway is plan.private[0]
    assert plan.vip is None


def test_gateway_of_several_networks_is_the_one_marked_default():
    plan = parse_networks(
        {
            "a": _manual(net_id=N1),
            "b": _manual(ip="10.1.0.5", net_id=N2, default=["dns", "gateway"]),
            "v": {"type": "vip", "ip": "1.2.3.4", "cloud_properties": {"security_groups": ["x"]}},
        }
    )
    assert plan.gateway is not None and plan.gateway.name == "b"
    assert plan.vip is not None and plan.vip.ip == "1.2.3.4"
    assert plan.security_groups == ("x",)


def test_network_security_groups_are_the_sorted_union():
    plan = parse_networks(
        {
            "a": _manual(cloud_properties={"net_id": N1, "security_groups": ["z", "a"]}),
            "b": {"type": "dynamic", "cloud_properties": {"security_groups": ["a", "m"]}},
        }
    )
    assert plan.security_groups == ("a", "m", "z")


def test_ipv6_manual_address_is_accepted():
    plan = parse_networks({"v6": _manual(ip="fd00:1::10")})
    assert plan.manual[0].ip == "fd00:1::10"


@pytest.mark.parametrize(
    ("networks", "fragment"),
    [
        ({}, "at least one manual or dynamic network"),
        ({"v": {"type": "vip", "ip": "1.2.3.4"}}, "at least one manual or dynamic"),
        ({"a": {"type": "dynamic"}, "b": {"type": "dynamic"}}, "only one dynamic network"),
        (
            {
                "a": _manual(),
                "v1": {"type": "vip", "ip": "1.1.1.1"},
                "v2": {"type": "vip", "ip": "2.2.2.2"},
            },
            "only one vip network",
        ),
        ({"a": {"type": "manual", "ip": "10.0.0.5"}}, "needs cloud_properties.net_id"),
        (
            {"a": _manual(), "b": _manual(ip="10.0.0.6")},
            "use the same net_id 11111111-1111-4111-8111-111111111111",
        ),
        ({"a": {"type": "bridged"}}, "handles manual, dynamic and vip"),
        ({"a": _manual(ip="10.0.0")}, "is not an IP address"),
        ({"a": _manual(), "v": {"type": "vip"}}, "vip network v has no ip"),
        (
            {"a": {"type": "dynamic", "cloud_properties": {"security_groups": "x"}}},
            "security_groups must be an array",
        ),
    ],
)
def test_invalid_networks(networks, fragment):
    with pytest.raises(CloudError, match=fragment):
        parse_networks(networks)


def test_several_networks_need_static_settings_and_a_config_drive():
    plan = parse_networks({"a": _manual(net_id=N1), "b": _manual(ip="10.1.0.1", net_id=N2)})
    with pytest.raises(VMCreationFailed) as raised:
        check_multiple_networks(plan, CONFIG)
    assert "openstack.use_dhcp: false" in raised.value.message
    assert "openstack.config_drive: cdrom" in raised.value.message
    assert raised.value.ok_to_retry is False
    check_multiple_networks(plan, _config(use_dhcp=False, config_drive="cdrom"))


def test_one_network_needs_nothing_special():
    check_multiple_networks(parse_networks({"a": _manual()}), CONFIG)


IMAGE = "33333333-3333-4333-8333-333333333333"


def test_light_stemcell_cid_names_the_image():
    assert stemcell_image_id(f"{IMAGE} light") == IMAGE
    assert stemcell_image_id(IMAGE) == IMAGE


@pytest.mark.parametrize("cid", [" light", "abc", f"{IMAGE}  light", f"../{IMAGE}", f"{IMAGE}\n"])
def test_a_malformed_stemcell_cid_is_refused(cid):
    with pytest.raises(CloudError, match="expected a Glance image UUID"):
        stemcell_image_id(cid)


def test_root_disk_size_may_be_an_integral_float_and_unknown_keys_are_a_warning():
    vm_type = parse_vm_type(
        {"instance_type": "f", "root_disk": {"size": 10.0, "colour": 1}}, CONFIG
    )
    assert vm_type.root_disk.size_gib == 10
    assert isinstance(vm_type.root_disk.size_gib, int)
    assert vm_type.warnings == ("Ignoring unknown root_disk keys: colour (known: size, type)",)


@pytest.mark.parametrize("size", [10.5, 0.0, "10", True])
def test_root_disk_size_must_still_be_a_whole_number_of_gib(size):
    with pytest.raises(CloudError, match=r"root_disk\.size must be a whole number of GiB"):
        parse_vm_type({"instance_type": "f", "root_disk": {"size": size}}, CONFIG)


@pytest.mark.parametrize("pairs", ["10.0.0.9", "10.0.0.0/24", "10.0.0.9/32", "fd00::/64"])
def test_allowed_address_pairs_may_be_an_address_or_a_prefix(pairs):
    vm_type = parse_vm_type({"instance_type": "f", "allowed_address_pairs": pairs}, CONFIG)
    assert vm_type.allowed_address_pairs == pairs


@pytest.mark.parametrize("pairs", ["10.0.0.0/33", "10.0.0/24", "x/8", ["10.0.0.9"]])
def test_allowed_address_pairs_that_are_neither_are_refused(pairs):
    with pytest.raises(CloudError, match="allowed_address_pairs must be one IP address"):
        parse_vm_type({"instance_type": "f", "allowed_address_pairs": pairs}, CONFIG)


def test_vrrp_port_check_is_read_from_the_vm_type():
    assert parse_vm_type({"instance_type": "f"}, CONFIG).vrrp_port_check is None
    vm_type = parse_vm_type({"instance_type": "f", "vrrp_port_check": False}, CONFIG)
    assert vm_type.vrrp_port_check is False
    assert vm_type.unknown_keys == ()
    with pytest.raises(CloudError, match="vrrp_port_check must be true or false"):
        parse_vm_type({"instance_type": "f", "vrrp_port_check": "no"}, CONFIG)
