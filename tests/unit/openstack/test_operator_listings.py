"""The adapters' list calls for the operator tools (bosh_openstack_cpi/operator): pages
are followed by marker, filters and ids go through paths, answers are read as documented."""

from __future__ import annotations

import re

import pytest
from keystoneauth1 import noauth
from keystoneauth1 import session as ksa_session

from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack.compute import Compute
from bosh_openstack_cpi.openstack.connection import Connection
from bosh_openstack_cpi.openstack.image import Image
from bosh_openstack_cpi.openstack.network import Network
from bosh_openstack_cpi.openstack.paths import UnsafeRequest
from bosh_openstack_cpi.openstack.volume import Volume
from tests.unit.openstack.fakes import CINDER, NEUTRON, NOVA, connection, requests_to

CONFIG = OpenStackConfig(auth_url="http://keystone/v3")
GLANCE = "http://glance/v2"


def test_servers_are_listed_page_by_page(requests_mock):
    compute = Compute(connection(requests_mock))
    requests_mock.get(
        f"{NOVA}/servers/detail",
        [
            {"json": {"servers": [{"id": "a"}, {"id": "b"}], "servers_links": [{"rel": "next"}]}},
            {"json": {"servers": [{"id": "c"}]}},
        ],
    )
    assert [s["id"] for s in compute.list_servers()] == ["a", "b", "c"]
    assert requests_to(requests_mock, "nova") == [
        ("GET", "/v2.1/servers/detail"),
        ("GET", "/v2.1/servers/detail?marker=b"),
    ]


def test_limits_zones_and_key_pairs(requests_mock):
    compute = Compute(connection(requests_mock))
    requests_mock.get(
        f"{NOVA}/limits",
        json={
            "limits": {"absolute": {"maxTotalInstances": 10, "totalInstancesUsed": 3, "x": None}}
        },
    )
    requests_mock.get(
        f"{NOVA}/os-availability-zone",
        json={
            "availabilityZoneInfo": [
                {"zoneName": "z1", "zoneState": {"available": True}},
                {"zoneName": "z2", "zoneState": {"available": False}},
            ]
        },
    )
    requests_mock.get(f"{NOVA}/os-keypairs/bosh", json={"keypair": {"name": "bosh"}})
    requests_mock.get(f"{NOVA}/os-keypairs/gone", status_code=404, json={})
    assert compute.absolute_limits() == {"maxTotalInstances": 10, "totalInstancesUsed": 3}
    assert compute.availability_zones() == ["z1"]
    assert compute.key_pair_exists("bosh") is True
    assert compute.key_pair_exists("gone") is False
    with pytest.raises(UnsafeRequest):
        compute.key_pair_exists("../servers")


def test_volumes_and_snapshots_are_listed_page_by_page(requests_mock):
    volume = Volume(connection(requests_mock), CONFIG)
    requests_mock.get(
        f"{CINDER}/volumes/detail",
        [
            {"json": {"volumes": [{"id": "v1"}], "volumes_links": [{"rel": "next"}]}},
            {"json": {"volumes": [{"id": "v2"}]}},
        ],
    )
    requests_mock.get(f"{CINDER}/snapshots/detail", json={"snapshots": [{"id": "s1"}]})
    assert [v["id"] for v in volume.list_volumes()] == ["v1", "v2"]
    assert [s["id"] for s in volume.list_snapshots()] == ["s1"]
    assert ("GET", "/v3/volumes/detail?marker=v1") in requests_to(requests_mock, "cinder")


def test_cinder_limits_zones_and_types(requests_mock):
    volume = Volume(connection(requests_mock), CONFIG)
    requests_mock.get(f"{CINDER}/limits", json={"limits": {"absolute": {"maxTotalVolumes": -1}}})
    requests_mock.get(
        f"{CINDER}/os-availability-zone",
        json={"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": True}}]},
    )
    requests_mock.get(f"{CINDER}/types", json={"volume_types": [{"name": "b"}, {"name": "a"}]})
    assert volume.absolute_limits() == {"maxTotalVolumes": -1}
    assert volume.availability_zones() == ["nova"]
    assert volume.volume_type_names() == ["a", "b"]


def test_neutron_listings_filter_by_value(requests_mock):
    network = Network(connection(requests_mock), CONFIG)
    requests_mock.get(f"{NEUTRON}/ports", json={"ports": [{"id": "p", "mac_address": "m"}]})
    requests_mock.get(f"{NEUTRON}/subnets", json={"subnets": [{"id": "s"}]})
    requests_mock.get(f"{NEUTRON}/security-group-rules", json={"security_group_rules": []})
    requests_mock.get(f"{NEUTRON}/floatingips", json={"floatingips": [{"id": "f"}]})
    requests_mock.get(
        f"{NEUTRON}/quotas/proj/details.json",
        json={"quota": {"port": {"limit": 50, "used": 3, "reserved": 0}}},
    )
    assert [p.id for p in network.ports_described("bosh-openstack-cpi director_uuid=d")] == ["p"]
    assert network.subnets_of(["n1", "n2"]) == [{"id": "s"}]
    assert network.security_group_rules(["g"]) == []
    assert network.floating_ips_of_project("proj") == [{"id": "f"}]
    assert network.quota_details("proj") == {"port": {"limit": 50, "used": 3, "reserved": 0}}
    sent = [path for _, path in requests_to(requests_mock, "neutron")]
    assert sent[0].startswith("/v2.0/ports?description=bosh-openstack-cpi+director_uuid%3dd")
    assert sent[1] == "/v2.0/subnets?network_id=n1&network_id=n2"
    assert network.subnets_of([]) == [] and network.security_group_rules([]) == []
    with pytest.raises(UnsafeRequest):
        network.floating_ips_of_project("")  # would list every floating IP


def test_images_are_found_by_property_page_by_page(requests_mock):
    requests_mock.get(re.compile(r"^http://glance/v2/?$"), json={"versions": []})
    session = ksa_session.Session(auth=noauth.NoAuth())
    services = Connection(
        session, region_name=None, interface="public", endpoint_overrides={"image": GLANCE}
    )
    requests_mock.get(
        f"{GLANCE}/images",
        [
            {"json": {"images": [{"id": "i1"}], "next": "/v2/images?marker=i1"}},
            {"json": {"images": [{"id": "i2"}]}},
        ],
    )
    image = Image(services, CONFIG)
    assert [i["id"] for i in image.images_with_property("director_uuid", "d-1")] == ["i1", "i2"]
    sent = [r.path + "?" + r.query for r in requests_mock.request_history if r.hostname == "glance"]
    assert sent[-2:] == [
        "/v2/images?director_uuid=d-1",
        "/v2/images?director_uuid=d-1&marker=i1",
    ]
