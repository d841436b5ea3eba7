import json

import pytest

from bosh_openstack_cpi.operator.cloud_config import CloudConfigError, load, parse

DOCUMENT = {
    "azs": [{"name": "z1", "cloud_properties": {"availability_zone": "nova-1"}}],
    "vm_types": [
        {"name": "small", "cloud_properties": {"instance_type": "m1.small"}},
        {"name": "spread", "cloud_properties": {"availability_zones": ["a", "b"]}},
    ],
    "disk_types": [{"name": "d", "disk_size": 1025, "cloud_properties": {"type": "ssd"}}],
    "networks": [
        {
            "name": "default",
            "type": "manual",
            "subnets": [
                {
                    "range": "10.0.0.0/24",
                    "gateway": "10.0.0.1",
                    "static": ["10.0.0.5 - 10.0.0.9", "10.0.0.20"],
                    "cloud_properties": {"net_id": "n-1"},
                }
            ],
        },
        {"name": "dyn", "type": "dynamic", "cloud_properties": {"net_id": "n-2"}},
        {"name": "vip", "type": "vip", "subnets": [{"static": ["172.16.0.1-172.16.0.2"]}]},
    ],
    "compilation": {"workers": 3, "vm_type": "spread"},
}


def test_the_parts_the_checks_need():
    config = parse(DOCUMENT)
    assert config.compilation_workers == 3
    assert config.compilation_vm_type is not None and config.compilation_vm_type.name == "spread"
    assert config.net_ids() == ["n-1", "n-2"]  # the short form of a dynamic network too
    assert config.vip_addresses() == ["172.16.0.1", "172.16.0.2"]
    assert config.compute_zones() == ["nova-1", "a", "b"]
    assert config.disk_types[0].size_gib == 2  # 1025 MB do not fit in 1 GiB
    assert config.networks[0].subnets[0].last_static_ip() == "10.0.0.20"


def test_defaults_without_compilation():
    config = parse({"vm_types": [{"name": "only", "cloud_properties": {}}]})
    assert config.compilation_workers == 1
    assert config.compilation_vm_type is not None and config.compilation_vm_type.name == "only"
    assert config.compilation_vm_type.instance_type is None


def test_json_and_yaml_files(tmp_path):
    as_json = tmp_path / "cc.json"
    as_json.write_text(json.dumps(DOCUMENT))
    as_yaml = tmp_path / "cc.yml"
    as_yaml.write_text("vm_types:\n- name: small\n  cloud_properties: {instance_type: m1.small}\n")
    assert load(str(as_json)).vm_types[0].instance_type == "m1.small"
    assert load(str(as_yaml)).vm_types[0].instance_type == "m1.small"


def test_a_file_that_is_no_mapping_is_refused(tmp_path):
    path = tmp_path / "cc.json"
    path.write_text("[1, 2]")
    with pytest.raises(CloudConfigError, match="a cloud config is a mapping"):
        load(str(path))
