"""Neutron adapter: lookups by filter and the failure paths of port creation."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import requests

from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack.network import Network
from bosh_openstack_cpi.protocol.errors import CloudError, VMCreationFailed
from tests.unit.openstack.fakes import NEUTRON, connection, requests_to

OURS = "project-ours"
SG_ID = "3c032934-2f4f-4903-ac57-d3851db7c2e3"


@pytest.fixture
def neutron(requests_mock, monkeypatch):
    fake = connection(requests_mock)
    monkeypatch.setattr(type(fake), "current_project_id", property(lambda _: OURS))
    monkeypatch.setattr("bosh_openstack_cpi.openstack.network.time.sleep", lambda _: None)
    monkeypatch.setattr("bosh_openstack_cpi.openstack.retry.time.sleep", lambda _: None)
    return Network(fake, OpenStackConfig(auth_url="http://k/v3"))


def _group(group_id, name, project=OURS):
    return {"id": group_id, "name": name, "project_id": project}


def test_security_groups_by_name_prefer_this_projects(neutron, requests_mock):
    requests_mock.get(
        f"{NEUTRON}/security-groups",
        json={"security_groups": [_group("other", "default", "p2"), _group("mine", "default")]},
    )
    groups = neutron.security_groups(["default"])
    assert [(g.id, g.name) for g in groups] == [("mine", "default")]
    ((_method, path),) = requests_to(requests_mock, "neutron")
    assert path.startswith("/v2.0/security-groups?name=default&fields=id")


def test_security_groups_by_uuid_and_name_keep_the_order_given(neutron, requests_mock):
    requests_mock.get(
        f"{NEUTRON}/security-groups",
        [
            {"json": {"security_groups": [_group(SG_ID, "bosh")]}},
            {"json": {"security_groups": [_group("x-id", "extra")]}},
        ],
    )
    groups = neutron.security_groups(["extra", SG_ID])
    assert [g.id for g in groups] == ["x-id", SG_ID]
    paths = [p for _, p in requests_to(requests_mock, "neutron")]
    assert paths[0].startswith(f"/v2.0/security-groups?id={SG_ID}")
    assert paths[1].startswith("/v2.0/security-groups?name=extra")


def test_a_name_shared_by_two_groups_asks_for_the_uuid(neutron, requests_mock):
    requests_mock.get(
        f"{NEUTRON}/security-groups",
        json={"security_groups": [_group("a", "web"), _group("b", "web")]},
    )
    with pytest.raises(CloudError, match="matches 2 groups \\(a, b\\): use the UUID"):
        neutron.security_groups(["web"])


def test_missing_security_groups_are_all_named(neutron, requests_mock):
    requests_mock.get(f"{NEUTRON}/security-groups", json={"security_groups": []})
    with pytest.raises(CloudError, match="'web', 'db' not found in Neutron"):
        neutron.security_groups(["web", "db"])


PORT = {
    "id": "p-1",
    "mac_address": "fa:16:3e:00:00:01",
    "status": "DOWN",
    "device_id": "",
    "device_owner": "",
    "description": "d",
    "network_id": "n",
    "fixed_ips": [{"ip_address": "10.0.0.5"}],
}


def _create(neutron, **extra):
    return neutron.create_port(
        network_id="n", ip="10.0.0.5", security_group_ids=["sg"], description="d", **extra
    )


def test_create_port_sends_everything_in_one_request(neutron, requests_mock):
    post = requests_mock.post(f"{NEUTRON}/ports", status_code=201, json={"port": PORT})
    port = _create(neutron, allowed_address_pairs=["10.0.0.9"])
    assert port.mac_address == "fa:16:3e:00:00:01"
    assert post.last_request.json() == {
        "port": {
            "network_id": "n",
            "fixed_ips": [{"ip_address": "10.0.0.5"}],
            "description": "d",
            "security_groups": ["sg"],
            "allowed_address_pairs": [{"ip_address": "10.0.0.9"}],
        }
    }


def test_no_security_groups_leaves_neutrons_default(neutron, requests_mock):
    post = requests_mock.post(f"{NEUTRON}/ports", status_code=201, json={"port": PORT})
    neutron.create_port(network_id="n", ip="10.0.0.5", security_group_ids=[], description="d")
    assert "security_groups" not in post.last_request.json()["port"]


def test_a_stale_port_holding_the_ip_is_deleted_once(neutron, requests_mock):
    conflict = {
        "status_code": 409,
        "json": {"NeutronError": {"type": "IpAddressAlreadyAllocated", "message": "IP in use"}},
    }
    post = requests_mock.post(
        f"{NEUTRON}/ports", [conflict, {"status_code": 201, "json": {"port": PORT}}]
    )
    requests_mock.get(f"{NEUTRON}/ports", json={"ports": [dict(PORT, id="stale")]})
    delete = requests_mock.delete(f"{NEUTRON}/ports/stale", status_code=204)
    assert _create(neutron).id == "p-1"
    assert post.call_count == 2
    assert delete.call_count == 1
    lookup = next(p for m, p in requests_to(requests_mock, "neutron") if m == "GET")
    assert "fixed_ips=ip_address%3d10.0.0.5" in lookup and "network_id=n" in lookup


def test_an_ip_used_by_a_live_port_is_an_error_naming_it(neutron, requests_mock):
    requests_mock.post(
        f"{NEUTRON}/ports", status_code=409, json={"NeutronError": {"message": "IP in use"}}
    )
    requests_mock.get(
        f"{NEUTRON}/ports",
        json={
            "ports": [
                dict(PORT, id="live", status="ACTIVE", device_id="srv", device_owner="compute:z1")
            ]
        },
    )
    with pytest.raises(
        CloudError,
        match=r"IP 10\.0\.0\.5 in network 'n' is in use: port live \(ACTIVE, device 'srv'",
    ):
        _create(neutron)


def test_a_port_that_stays_in_conflict_after_cleanup_is_an_error(neutron, requests_mock):
    requests_mock.post(
        f"{NEUTRON}/ports", status_code=409, json={"NeutronError": {"message": "IP in use"}}
    )
    requests_mock.get(f"{NEUTRON}/ports", json={"ports": [dict(PORT, id="stale")]})
    requests_mock.delete(f"{NEUTRON}/ports/stale", status_code=204)
    with pytest.raises(CloudError, match="is in use"):
        _create(neutron)
    assert requests_mock.call_count < 10


def test_an_unknown_network_says_it_must_be_a_network_uuid(neutron, requests_mock):
    requests_mock.post(
        f"{NEUTRON}/ports",
        status_code=404,
        json={"NeutronError": {"message": "Network n could not be found."}},
    )
    with pytest.raises(VMCreationFailed, match="not a subnet UUID") as raised:
        _create(neutron)
    assert raised.value.ok_to_retry is False


def test_a_lost_answer_is_repeated_and_the_orphan_port_replaced(neutron, requests_mock):
    conflict = {"status_code": 409, "json": {"NeutronError": {"message": "IP in use"}}}
    post = requests_mock.post(
        f"{NEUTRON}/ports",
        [
            {"exc": requests.exceptions.ReadTimeout("slow")},
            conflict,
            {"status_code": 201, "json": {"port": PORT}},
        ],
    )
    requests_mock.get(f"{NEUTRON}/ports", json={"ports": [dict(PORT, id="orphan")]})
    requests_mock.delete(f"{NEUTRON}/ports/orphan", status_code=204)
    assert _create(neutron).id == "p-1"
    assert post.call_count == 3


def test_floating_ip_not_allocated(neutron, requests_mock):
    requests_mock.get(f"{NEUTRON}/floatingips", json={"floatingips": []})
    with pytest.raises(VMCreationFailed, match=r"Floating IP '255\.255\.255\.255' not allocated"):
        neutron.floating_ip("255.255.255.255")


def test_floating_ip_in_several_networks(neutron, requests_mock):
    found = [{"id": "a", "floating_network_id": "n1"}, {"id": "b", "floating_network_id": "n2"}]
    requests_mock.get(f"{NEUTRON}/floatingips", json={"floatingips": found})
    with pytest.raises(CloudError, match="multiple networks: 'n1', 'n2'"):
        neutron.floating_ip("1.2.3.4")


def test_missing_networks_in_one_query(neutron, requests_mock):
    requests_mock.get(f"{NEUTRON}/networks", json={"networks": [{"id": "a"}]})
    assert neutron.missing_networks(["a", "b"]) == ["b"]
    assert requests_mock.call_count == 1  # one query (no version discovery for Neutron)


def test_a_cut_off_answer_is_repeated_and_the_orphan_port_replaced(neutron, requests_mock):
    """An answer cut short (keystoneauth's UnknownConnectionError) came from a request that
    made the port: it used to end the call with the port left behind."""
    conflict = {"status_code": 409, "json": {"NeutronError": {"message": "IP in use"}}}
    post = requests_mock.post(
        f"{NEUTRON}/ports",
        [
            {"exc": requests.exceptions.ChunkedEncodingError("IncompleteRead(100 bytes read)")},
            conflict,
            {"status_code": 201, "json": {"port": PORT}},
        ],
    )
    requests_mock.get(f"{NEUTRON}/ports", json={"ports": [dict(PORT, id="orphan")]})
    requests_mock.delete(f"{NEUTRON}/ports/orphan", status_code=204)
    assert _create(neutron).id == "p-1"
    assert post.call_count == 3


def test_a_rate_limited_port_create_is_sent_again(neutron, requests_mock):
    post = requests_mock.post(
        f"{NEUTRON}/ports",
        [
            {"status_code": 429, "headers": {"Retry-After": "1"}, "json": {}},
            {"status_code": 201, "json": {"port": PORT}},
        ],
    )
    assert _create(neutron).id == "p-1"
    assert post.call_count == 2


# --- two create_vm calls wanting the same IP (tests/integration/test_concurrency.py) ------
def _made(seconds_ago: float) -> str:
    moment = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


CONFLICT = {"status_code": 409, "json": {"NeutronError": {"message": "IP in use"}}}


def test_an_unused_port_of_a_create_vm_at_work_is_kept_and_named(neutron, requests_mock):
    """Another create_vm made it a moment ago and has yet to create its server: deleting it
    made that call fail with a port Nova could not find."""
    other = dict(PORT, id="other", name="vm-other", created_at=_made(2))
    requests_mock.post(f"{NEUTRON}/ports", [CONFLICT])
    requests_mock.get(f"{NEUTRON}/ports", json={"ports": [other]})
    deleted = requests_mock.delete(f"{NEUTRON}/ports/other", status_code=204)
    with pytest.raises(CloudError) as raised:
        _create(neutron, name="vm-mine", in_use=lambda port: port.name == "vm-other")
    message = raised.value.message
    assert "IP 10.0.0.5 in network 'n' is in use" in message
    assert re.search(r"made [0-9] s ago for VM 'vm-other'", message)
    assert deleted.call_count == 0


def test_an_old_unused_port_whose_server_is_being_built_is_kept(neutron, requests_mock):
    other = dict(PORT, id="other", name="vm-other", created_at=_made(600))
    requests_mock.post(f"{NEUTRON}/ports", [CONFLICT])
    requests_mock.get(f"{NEUTRON}/ports", json={"ports": [other]})
    deleted = requests_mock.delete(f"{NEUTRON}/ports/other", status_code=204)
    asked: list[str] = []

    def building(port):
        asked.append(port.name)
        return True

    with pytest.raises(CloudError, match="is in use"):
        _create(neutron, name="vm-mine", in_use=building)
    assert asked == ["vm-other"] and deleted.call_count == 0


def test_our_own_port_holding_the_ip_is_used_not_replaced(neutron, requests_mock):
    """A 409 because a request of ours whose answer was lost did make the port (it carries
    our VM's name): that port is the one."""
    ours = dict(PORT, id="ours", name="vm-mine", created_at=_made(1))
    post = requests_mock.post(f"{NEUTRON}/ports", [CONFLICT])
    requests_mock.get(f"{NEUTRON}/ports", json={"ports": [ours]})
    assert _create(neutron, name="vm-mine").id == "ours"
    assert post.call_count == 1
    assert post.last_request.json()["port"]["name"] == "vm-mine"


def test_timed_out_requests_whose_port_shows_up_use_it(neutron, requests_mock):
    """Neutron made the port after the CPI stopped waiting: found by our name and IP, it is
    used; before, the call failed with the port left behind."""
    timeout = {"exc": requests.exceptions.ReadTimeout("slow")}
    post = requests_mock.post(f"{NEUTRON}/ports", [timeout, timeout, timeout])
    lookups = requests_mock.get(
        f"{NEUTRON}/ports",
        [
            {"json": {"ports": []}},
            {"json": {"ports": []}},
            {"json": {"ports": [dict(PORT, id="late", name="vm-mine")]}},
        ],
    )
    assert _create(neutron, name="vm-mine").id == "late"
    assert post.call_count == 3 and lookups.call_count == 3
