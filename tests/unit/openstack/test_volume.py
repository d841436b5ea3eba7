"""The Cinder adapter against a faked Cinder (requests-mock), for what the real cloud does
not do on demand: lost answers to creates, volumes stuck in `creating`, old microversions,
refusals and user messages."""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest
import requests
from keystoneauth1 import session
from keystoneauth1.identity import v3

from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack.connection import Connection
from bosh_openstack_cpi.openstack.errors import ServiceNotInCatalog
from bosh_openstack_cpi.openstack.retry import idempotent
from bosh_openstack_cpi.openstack.volume import Refused, Volume
from bosh_openstack_cpi.protocol.errors import CloudError

AUTH_URL = "http://keystone.test/v3"
CINDER = "http://cinder.test:8776/v3/p"
VOLUME_ID = "5a1f0c3e-0000-4000-8000-000000000001"
SNAPSHOT_ID = "5a1f0c3e-0000-4000-8000-0000000000aa"


def _token(region: str = "RegionOne") -> dict[str, Any]:
    domain = {"id": "default", "name": "Default"}
    endpoint = {"interface": "public", "region": region, "region_id": region}
    return {
        "token": {
            "methods": ["password"],
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "issued_at": "2020-01-01T00:00:00.000000Z",
            "user": {"id": "u", "name": "bosh", "domain": domain},
            "project": {"id": "p", "name": "bosh", "domain": domain},
            "catalog": [
                {
                    "type": kind,
                    "name": "cinder",
                    "id": kind,
                    "endpoints": [{**endpoint, "url": CINDER, "id": kind}],
                }
                for kind in ("block-storage", "volumev3")
            ],
        }
    }


def fake_cinder(
    requests_mock: Any, max_version: str = "3.70", region: str = "RegionOne", **config: Any
) -> Volume:
    requests_mock.post(
        f"{AUTH_URL}/auth/tokens", json=_token(region), headers={"X-Subject-Token": "t"}
    )
    versions = {
        "versions": [
            {
                "id": "v3.0",
                "status": "CURRENT",
                "version": max_version,
                "min_version": "3.0",
                "links": [{"rel": "self", "href": "http://cinder.test:8776/v3/"}],
            }
        ]
    }
    requests_mock.get(re.compile(r"http://cinder\.test:8776/(v3/?)?$"), json=versions)
    auth = v3.Password(
        auth_url=AUTH_URL,
        username="bosh",
        password="secret",
        project_name="bosh",
        user_domain_name="Default",
        project_domain_name="Default",
    )
    connection = Connection(session.Session(auth=auth), region_name="RegionOne", interface="public")
    settings = {"state_timeout": 2.0, "wait_resource_poll_interval": 0.01, **config}
    adapter = Volume(connection, OpenStackConfig(auth_url=AUTH_URL, **settings))
    adapter._sleep = lambda _: None
    return adapter


def volume_body(status: str = "available", **fields: Any) -> dict[str, Any]:
    return {
        "volume": {
            "id": VOLUME_ID,
            "name": "volume-x",
            "status": status,
            "size": 1,
            "attachments": [],
            **fields,
        }
    }


def _posts(requests_mock: Any, path: str) -> int:
    return sum(1 for r in requests_mock.request_history if r.method == "POST" and path in r.url)


def test_a_create_whose_answer_was_lost_is_found_by_name_not_sent_again(requests_mock):
    volumes = fake_cinder(requests_mock)
    requests_mock.post(f"{CINDER}/volumes", status_code=503)
    requests_mock.get(
        f"{CINDER}/volumes/detail?name=volume-x",
        json={"volumes": [volume_body("creating")["volume"]]},
    )
    found = volumes.create_volume(
        name="volume-x", size_gib=1, volume_type=None, availability_zone=None, metadata={}
    )
    assert found == VOLUME_ID
    assert _posts(requests_mock, "/volumes") == 1


def test_a_create_that_never_arrived_is_sent_again(requests_mock):
    volumes = fake_cinder(requests_mock)
    requests_mock.post(
        f"{CINDER}/volumes",
        [{"status_code": 503}, {"status_code": 202, "json": volume_body("creating")}],
    )
    requests_mock.get(f"{CINDER}/volumes/detail?name=volume-x", json={"volumes": []})
    found = volumes.create_volume(
        name="volume-x", size_gib=1, volume_type="fast", availability_zone="z1", metadata={}
    )
    assert found == VOLUME_ID
    assert _posts(requests_mock, "/volumes") == 2
    sent = requests_mock.request_history[-1].json()["volume"]
    assert sent["volume_type"] == "fast"
    assert sent["availability_zone"] == "z1"


def test_an_unknown_volume_type_lists_the_known_ones(requests_mock):
    volumes = fake_cinder(requests_mock)
    requests_mock.post(
        f"{CINDER}/volumes",
        status_code=404,
        json={"itemNotFound": {"code": 404, "message": "Volume type fast could not be found."}},
    )
    requests_mock.get(
        f"{CINDER}/types",
        json={"volume_types": [{"id": "1", "name": "ssd"}, {"id": "2", "name": "hdd"}]},
    )
    with pytest.raises(CloudError) as raised:
        volumes.create_volume(
            name="volume-x", size_gib=1, volume_type="fast", availability_zone=None, metadata={}
        )
    assert "no volume type 'fast'" in raised.value.message
    assert "hdd, ssd" in raised.value.message


def test_a_zone_cinder_does_not_know_points_to_ignore_server_availability_zone(requests_mock):
    volumes = fake_cinder(requests_mock)
    requests_mock.post(
        f"{CINDER}/volumes",
        status_code=400,
        json={"badRequest": {"code": 400, "message": "Availability zone 'nova-2' is invalid."}},
    )
    with pytest.raises(CloudError) as raised:
        volumes.create_volume(
            name="volume-x", size_gib=1, volume_type=None, availability_zone="nova-2", metadata={}
        )
    assert "ignore_server_availability_zone" in raised.value.message


def test_removal_waits_for_a_volume_still_being_created(requests_mock):
    volumes = fake_cinder(requests_mock)
    refusal = {"badRequest": {"code": 400, "message": "Volume status must be available"}}
    requests_mock.delete(
        f"{CINDER}/volumes/{VOLUME_ID}",
        [{"status_code": 400, "json": refusal}, {"status_code": 202}],
    )
    requests_mock.get(
        f"{CINDER}/volumes/{VOLUME_ID}",
        [
            {"json": volume_body("creating")},
            {"json": volume_body("available")},
            {"json": volume_body("deleting")},
            {"status_code": 404, "json": {}},
        ],
    )
    volumes.remove_volume(VOLUME_ID, timeout=5)
    deletes = [r for r in requests_mock.request_history if r.method == "DELETE"]
    assert len(deletes) == 2


def test_a_refused_delete_keeps_cinders_words(requests_mock):
    volumes = fake_cinder(requests_mock)
    refusal = {"badRequest": {"code": 400, "message": "Volume must not have snapshots."}}
    requests_mock.delete(f"{CINDER}/volumes/{VOLUME_ID}", status_code=400, json=refusal)
    with pytest.raises(Refused) as raised:
        volumes.delete_volume(VOLUME_ID)
    assert raised.value.detail == "Volume must not have snapshots."


def test_extending_attached_volumes_needs_microversion_3_42(requests_mock):
    assert fake_cinder(requests_mock, max_version="3.70").can_extend_attached()
    requests_mock.reset_mock()
    assert not fake_cinder(requests_mock, max_version="3.27").can_extend_attached()


def test_failure_reason_comes_from_cinder_messages(requests_mock):
    volumes = fake_cinder(requests_mock)
    words = "schedule allocate volume: Could not find any available weighted backend."
    requests_mock.get(
        f"{CINDER}/messages?resource_uuid={VOLUME_ID}",
        json={"messages": [{"user_message": words}, {"user_message": words}]},
    )
    assert volumes.failure_reason(VOLUME_ID) == words  # once, not twice
    sent = requests_mock.request_history[-1]
    assert sent.headers["OpenStack-API-Version"] == "volume 3.3"


def test_failure_reason_is_optional(requests_mock):
    volumes = fake_cinder(requests_mock, max_version="3.0")
    assert volumes.failure_reason(VOLUME_ID) is None  # no messages API before 3.3


def test_snapshot_create_sends_force_metadata_and_description(requests_mock):
    volumes = fake_cinder(requests_mock)
    requests_mock.post(
        f"{CINDER}/snapshots",
        status_code=202,
        json={"snapshot": {"id": SNAPSHOT_ID, "status": "creating", "volume_id": VOLUME_ID}},
    )
    snapshot_id = volumes.create_snapshot(
        volume_id=VOLUME_ID, name="snapshot-x", description="d/j/0/sdc", metadata={"a": "b"}
    )
    assert snapshot_id == SNAPSHOT_ID
    sent = requests_mock.request_history[-1].json()["snapshot"]
    assert sent == {
        "volume_id": VOLUME_ID,
        "name": "snapshot-x",
        "description": "d/j/0/sdc",
        "force": True,
        "metadata": {"a": "b"},
    }


def test_an_extend_whose_answer_was_lost_is_not_an_error(requests_mock, monkeypatch):
    """Sent again after a 500, the extend is refused because the first one is under way."""
    from bosh_openstack_cpi.openstack import volume as volume_module

    monkeypatch.setattr(
        volume_module, "idempotent", functools.partial(idempotent, sleep=lambda _: None)
    )
    volumes = fake_cinder(requests_mock)
    action = requests_mock.post(
        f"{CINDER}/volumes/{VOLUME_ID}/action",
        [
            {"status_code": 500, "json": {}},
            {"status_code": 400, "json": {"badRequest": {"message": "status must be available"}}},
        ],
    )
    requests_mock.get(f"{CINDER}/volumes/{VOLUME_ID}", json=volume_body("extending"))
    volumes.extend_volume(VOLUME_ID, 2)
    assert action.call_count == 2


def test_an_extend_refused_at_once_is_refused(requests_mock):
    volumes = fake_cinder(requests_mock)
    requests_mock.post(
        f"{CINDER}/volumes/{VOLUME_ID}/action",
        status_code=400,
        json={"badRequest": {"message": "status must be available"}},
    )
    with pytest.raises(Refused, match="status must be available"):
        volumes.extend_volume(VOLUME_ID, 2)


def test_a_create_that_timed_out_is_waited_for_not_sent_again(requests_mock):
    """A request that timed out may arrive later: sent again at once, it made a second
    volume. The volume is looked for until it shows up."""
    volumes = fake_cinder(requests_mock)
    post = requests_mock.post(f"{CINDER}/volumes", exc=requests.exceptions.ReadTimeout("slow"))
    lookups = requests_mock.get(
        f"{CINDER}/volumes/detail?name=volume-x",
        [
            {"json": {"volumes": []}},
            {"json": {"volumes": []}},
            {"json": {"volumes": [volume_body("creating")["volume"]]}},
        ],
    )
    found = volumes.create_volume(
        name="volume-x", size_gib=1, volume_type=None, availability_zone=None, metadata={}
    )
    assert found == VOLUME_ID
    assert post.call_count == 1 and lookups.call_count == 3


def test_volume_requests_use_the_newest_microversion_both_sides_know(requests_mock):
    volumes = fake_cinder(requests_mock, max_version="3.64")
    requests_mock.get(
        f"{CINDER}/volumes/{VOLUME_ID}",
        json=volume_body("in-use", volume_type="fast", volume_type_id="t-1"),
    )
    requests_mock.post(f"{CINDER}/volumes/{VOLUME_ID}/action", status_code=202)
    state = volumes.get_volume(VOLUME_ID)
    assert state is not None
    assert (state.status, state.volume_type, state.volume_type_id) == ("in-use", "fast", "t-1")
    assert requests_mock.last_request.headers["OpenStack-API-Version"] == "volume 3.64"
    volumes.extend_volume(VOLUME_ID, 3)
    assert requests_mock.last_request.json() == {"os-extend": {"new_size": 3}}
    assert requests_mock.last_request.headers["OpenStack-API-Version"] == "volume 3.64"


def test_a_missing_volume_or_snapshot_is_none_and_a_refused_extend_keeps_cinders_words(
    requests_mock,
):
    volumes = fake_cinder(requests_mock)
    missing = {"itemNotFound": {"code": 404, "message": "Volume could not be found."}}
    requests_mock.get(f"{CINDER}/volumes/{VOLUME_ID}", status_code=404, json=missing)
    requests_mock.get(f"{CINDER}/snapshots/{SNAPSHOT_ID}", status_code=404, json=missing)
    assert volumes.get_volume(VOLUME_ID) is None
    assert volumes.get_snapshot(SNAPSHOT_ID) is None
    refusal = {"badRequest": {"code": 400, "message": "New size must be greater."}}
    requests_mock.post(f"{CINDER}/volumes/{VOLUME_ID}/action", status_code=400, json=refusal)
    with pytest.raises(Refused) as raised:
        volumes.extend_volume(VOLUME_ID, 1)
    assert raised.value.detail == "New size must be greater."


def test_no_cinder_endpoint_in_the_region_names_the_settings_to_check(requests_mock):
    volumes = fake_cinder(requests_mock, region="Elsewhere")
    with pytest.raises(ServiceNotInCatalog, match="for this region and interface"):
        volumes.get_volume(VOLUME_ID)
