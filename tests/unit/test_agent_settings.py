import base64
import json

import pytest

from bosh_openstack_cpi import agent_settings
from bosh_openstack_cpi.protocol.errors import CloudError

NETWORKS = {
    "private": {
        "type": "manual",
        "ip": "10.0.0.5",
        "dns": ["10.0.0.2"],
        "default": ["dns", "gateway"],
        "cloud_properties": {"net_id": "n"},
    },
    "other": {"type": "dynamic", "dns": ["9.9.9.9"], "cloud_properties": {}},
    "public": {"type": "vip", "ip": "1.2.3.4", "cloud_properties": {}},
}


def test_networks_get_use_dhcp_except_vip_and_macs_of_manual_ports():
    result = agent_settings.agent_networks(NETWORKS, False, {"private": "fa:16:3e:00:00:01"})
    assert result["private"]["use_dhcp"] is False
    assert result["private"]["mac"] == "fa:16:3e:00:00:01"
    assert result["other"]["use_dhcp"] is False
    assert "mac" not in result["other"]
    assert "use_dhcp" not in result["public"]
    assert "use_dhcp" not in NETWORKS["private"]  # the director's hash is not changed


def test_full_settings_as_the_agent_reads_them():
    settings = agent_settings.build(
        server_name="vm-1",
        agent_id="agent-1",
        networks=agent_settings.agent_networks(NETWORKS, True, {}),
        has_ephemeral_disk=True,
        env={"bosh": {"group": "g"}},
        agent_config={"mbus": "nats://n", "ntp": ["ntp1"], "blobstore": None},
    )
    assert settings["server"] == {"name": "vm-1"}
    assert settings["vm"] == {"name": "vm-1"}
    assert settings["agent_id"] == "agent-1"
    assert settings["dns"] == {"nameserver": ["10.0.0.2"]}  # the network marked default
    assert settings["disks"] == {"system": "/dev/sda", "ephemeral": "/dev/sdb", "persistent": {}}
    assert settings["env"] == {"bosh": {"group": "g"}}
    assert settings["mbus"] == "nats://n"
    assert settings["ntp"] == ["ntp1"]
    assert "blobstore" not in settings


def test_every_agent_key_is_copied_but_the_cpi_keys_stay_the_cpis():
    agent_config = {"mbus": "nats://n", "blobstore": {"provider": "dav"}, "parallel": 5}
    settings = agent_settings.build(
        server_name="vm-1",
        agent_id="agent-1",
        networks={"n": {"type": "dynamic"}},
        has_ephemeral_disk=False,
        env={"bosh": {"group": "g"}},
        agent_config={**agent_config, "env": {"x": 1}, "agent_id": "other"},
    )
    assert {k: settings[k] for k in agent_config} == agent_config
    assert settings["env"] == {"bosh": {"group": "g"}}
    assert settings["agent_id"] == "agent-1"
    assert agent_settings.shadowed_agent_keys({"env": {}, "agent_id": "x", "ntp": []}) == [
        "agent_id",
        "env",
    ]


def test_no_ephemeral_key_without_an_ephemeral_disk_and_no_dns_without_any():
    settings = agent_settings.build(
        server_name="vm-1",
        agent_id="a",
        networks={"n": {"type": "dynamic"}},
        has_ephemeral_disk=False,
        env={},
        agent_config={},
    )
    assert "ephemeral" not in settings["disks"]
    assert "dns" not in settings


def test_dns_of_the_last_network_when_none_is_default_for_dns():
    networks = {"a": {"dns": ["1.1.1.1"]}, "b": {"dns": ["2.2.2.2"]}}
    assert agent_settings.nameservers(networks) == ["2.2.2.2"]


def test_encoded_user_data_is_base64_json():
    encoded = agent_settings.encode({"agent_id": "a"})
    assert json.loads(base64.b64decode(encoded)) == {"agent_id": "a"}


def test_too_large_settings_name_the_largest_parts_and_not_their_content():
    secret = "s" * 60000
    with pytest.raises(CloudError) as raised:
        agent_settings.encode({"env": {"bosh": {"password": secret}}, "agent_id": "a"})
    message = raised.value.message
    assert "65535" in message
    assert "env" in message
    assert "no resource was created" in message
    assert secret not in message


def test_placeholder_mac_has_the_length_of_a_real_one():
    assert len(agent_settings.PLACEHOLDER_MAC) == len("fa:16:3e:7e:7b:06")


def test_encoded_user_data_is_a_secret_wherever_it_is_quoted():
    """Nova's validation errors quote the values they refuse, user_data too."""
    from bosh_openstack_cpi.protocol import redaction

    try:
        encoded = agent_settings.encode({"env": {"bosh": {"password": "x"}}})
        quoted = f"Invalid input for field/attribute user_data. Value: {encoded}."
        assert encoded not in redaction.redact(quoted)
    finally:
        redaction.forget_secrets()
