"""Nova adapter: failure paths the real cloud cannot produce on demand."""

import functools

import pytest
import requests

from bosh_openstack_cpi.openstack.compute import (
    Compute,
    ServerCreateRefused,
    ServerCreateUnanswered,
)
from bosh_openstack_cpi.protocol.errors import CloudError, VMNotFound
from tests.unit.openstack.fakes import NOVA, connection, requests_to


@pytest.fixture
def nova(requests_mock):
    return Compute(connection(requests_mock))


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr("bosh_openstack_cpi.openstack.retry.time.sleep", lambda _: None)


BODY = {"name": "vm-1", "flavorRef": "f", "imageRef": "i"}


def test_create_server_posts_once_and_returns_the_id(nova, requests_mock):
    post = requests_mock.post(f"{NOVA}/servers", status_code=202, json={"server": {"id": "s-1"}})
    assert nova.create_server(BODY, scheduler_hints={"group": "g"}) == "s-1"
    assert post.call_count == 1
    assert post.last_request.json() == {"server": BODY, "os:scheduler_hints": {"group": "g"}}
    assert "OpenStack-API-Version" not in post.last_request.headers


def test_create_server_with_a_microversion(nova, requests_mock):
    post = requests_mock.post(f"{NOVA}/servers", status_code=202, json={"server": {"id": "s-1"}})
    nova.create_server(BODY, microversion="2.67")
    assert post.last_request.headers["OpenStack-API-Version"] == "compute 2.67"


def test_a_read_timeout_is_not_replayed_but_reported_as_unanswered(nova, requests_mock):
    post = requests_mock.post(f"{NOVA}/servers", exc=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(ServerCreateUnanswered) as raised:
        nova.create_server(BODY)
    assert post.call_count == 1
    assert raised.value.settle_seconds == 60.0
    assert "vm-1" in raised.value.message


def test_a_dropped_connection_is_unanswered(nova, requests_mock):
    requests_mock.post(
        f"{NOVA}/servers",
        exc=requests.exceptions.ConnectionError("('Connection aborted.', RemoteDisconnected())"),
    )
    with pytest.raises(ServerCreateUnanswered):
        nova.create_server(BODY)


@pytest.mark.parametrize(("status", "settle"), [(500, 3.0), (503, 3.0), (504, 60.0)])
def test_server_errors_are_unanswered(nova, requests_mock, status, settle):
    post = requests_mock.post(
        f"{NOVA}/servers", status_code=status, json={"computeFault": {"message": "boom"}}
    )
    with pytest.raises(ServerCreateUnanswered) as raised:
        nova.create_server(BODY)
    assert post.call_count == 1
    assert raised.value.settle_seconds == settle


def test_a_refused_connection_is_retried_because_nothing_was_sent(nova, requests_mock):
    refused = requests.exceptions.ConnectionError(
        "HTTPConnectionPool: Max retries exceeded "
        "(Caused by NewConnectionError('[Errno 111] Connection refused'))"
    )
    post = requests_mock.post(
        f"{NOVA}/servers",
        [{"exc": refused}, {"status_code": 202, "json": {"server": {"id": "s-2"}}}],
    )
    assert nova.create_server(BODY) == "s-2"
    assert post.call_count == 2


def test_a_4xx_is_a_refusal_with_novas_message(nova, requests_mock):
    requests_mock.post(
        f"{NOVA}/servers",
        status_code=400,
        json={"badRequest": {"code": 400, "message": "Invalid key_name provided."}},
    )
    with pytest.raises(ServerCreateRefused) as raised:
        nova.create_server(BODY)
    assert raised.value.status == 400
    assert "Invalid key_name provided." in raised.value.details


def test_wait_until_active_reports_novas_fault(nova, requests_mock):
    requests_mock.get(
        f"{NOVA}/servers/s-1",
        [
            {
                "json": {
                    "server": {"id": "s-1", "status": "BUILD", "OS-EXT-STS:task_state": "spawning"}
                }
            },
            {
                "json": {
                    "server": {
                        "id": "s-1",
                        "status": "ERROR",
                        "fault": {"code": 500, "message": "No valid host was found."},
                    }
                }
            },
        ],
    )
    with pytest.raises(CloudError, match=r"state ERROR: No valid host was found\. \(code 500\)"):
        nova.wait_until_active("s-1", timeout=10, max_interval=0.01)


def test_active_with_a_task_running_is_not_done(nova, requests_mock):
    requests_mock.get(
        f"{NOVA}/servers/s-1",
        [
            {
                "json": {
                    "server": {
                        "id": "s-1",
                        "status": "REBOOT",
                        "OS-EXT-STS:task_state": "rebooting",
                    }
                }
            },
            {
                "json": {
                    "server": {
                        "id": "s-1",
                        "status": "ACTIVE",
                        "OS-EXT-STS:task_state": "reboot_started",
                    }
                }
            },
            {
                "json": {
                    "server": {
                        "id": "s-1",
                        "status": "ACTIVE",
                        "OS-EXT-STS:task_state": None,
                        "OS-EXT-AZ:availability_zone": "z1",
                    }
                }
            },
        ],
    )
    server = nova.wait_until_active("s-1", timeout=10, max_interval=0.01)
    assert server.availability_zone == "z1"
    assert requests_mock.call_count >= 3


def test_transient_errors_of_polls_are_retried(nova, requests_mock):
    requests_mock.get(
        f"{NOVA}/servers/s-1",
        [{"status_code": 503}, {"json": {"server": {"id": "s-1", "status": "ACTIVE"}}}],
    )
    assert nova.wait_until_active("s-1", timeout=10, max_interval=0.01).id == "s-1"


def test_gone_after_404_or_deleted_state(nova, requests_mock):
    requests_mock.get(
        f"{NOVA}/servers/s-1",
        [
            {
                "json": {
                    "server": {"id": "s-1", "status": "ACTIVE", "OS-EXT-STS:task_state": "deleting"}
                }
            },
            {"status_code": 404},
        ],
    )
    nova.wait_until_gone("s-1", timeout=10, max_interval=0.01)


def test_a_failed_delete_is_reported(nova, requests_mock):
    requests_mock.get(
        f"{NOVA}/servers/s-1",
        json={
            "server": {
                "id": "s-1",
                "status": "ERROR",
                "fault": {"code": 500, "message": "disk busy"},
            }
        },
    )
    with pytest.raises(CloudError, match="Nova could not delete it: disk busy"):
        nova.wait_until_gone("s-1", timeout=10, max_interval=0.01)


def test_delete_of_a_missing_server_is_false(nova, requests_mock):
    requests_mock.delete(f"{NOVA}/servers/s-1", status_code=404)
    assert nova.delete_server("s-1") is False


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("POST", lambda n: n.reboot_server("s-1")),
        ("POST", lambda n: n.update_server_metadata("s-1", {"a": "b"})),
        ("PUT", lambda n: n.rename_server("s-1", "job/0")),
    ],
)
def test_missing_servers_are_vm_not_found(nova, requests_mock, method, call):
    requests_mock.register_uri(method, f"{NOVA}/servers/s-1/action", status_code=404)
    requests_mock.register_uri(method, f"{NOVA}/servers/s-1/metadata", status_code=404)
    requests_mock.register_uri(method, f"{NOVA}/servers/s-1", status_code=404)
    with pytest.raises(VMNotFound, match="'s-1' not found"):
        call(nova)


def test_servers_named_filters_by_exact_name(nova, requests_mock):
    requests_mock.get(
        f"{NOVA}/servers/detail",
        json={"servers": [{"id": "s-1", "name": "vm-1", "status": "BUILD"}]},
    )
    found = nova.servers_named("vm-1")
    assert [s.id for s in found] == ["s-1"]
    assert requests_to(requests_mock, "nova") == [("GET", "/v2.1/servers/detail?name=%5evm-1%24")]


def test_flavors_include_private_ones(nova, requests_mock):
    requests_mock.get(
        f"{NOVA}/flavors/detail",
        json={
            "flavors": [
                {
                    "id": "1",
                    "name": "m1",
                    "vcpus": 1,
                    "ram": 512,
                    "disk": 1,
                    "OS-FLV-EXT-DATA:ephemeral": 0,
                    "swap": "",
                }
            ]
        },
    )
    assert [f.name for f in nova.flavors()] == ["m1"]
    assert "is_public=none" in requests_mock.last_request.url.lower()


def test_an_unreadable_answer_is_unanswered(nova, requests_mock):
    requests_mock.post(f"{NOVA}/servers", status_code=202, text="{not json")
    with pytest.raises(ServerCreateUnanswered, match="unreadable"):
        nova.create_server(BODY)


def test_a_rate_limited_create_is_sent_again(nova, requests_mock, monkeypatch):
    from bosh_openstack_cpi.openstack import retry

    monkeypatch.setattr(
        retry, "refused_only", functools.partial(retry.refused_only, sleep=lambda _: None)
    )
    post = requests_mock.post(
        f"{NOVA}/servers",
        [
            {"status_code": 429, "headers": {"Retry-After": "1"}, "json": {}},
            {"status_code": 202, "json": {"server": {"id": "s-3"}}},
        ],
    )
    assert nova.create_server(BODY) == "s-3"
    assert post.call_count == 2


@pytest.fixture
def no_retry_sleep(monkeypatch):
    from bosh_openstack_cpi.openstack import retry

    for name in ("idempotent", "refused_only"):
        fast = functools.partial(getattr(retry, name), sleep=lambda _: None)
        monkeypatch.setattr(retry, name, fast)


def test_a_reboot_whose_answer_was_lost_is_not_an_error(nova, requests_mock, no_retry_sleep):
    """The first request did arrive (its answer was a 500): Nova refuses the second while it
    reboots, which means the reboot is under way."""
    post = requests_mock.post(
        f"{NOVA}/servers/s-1/action",
        [{"status_code": 500, "json": {}}, {"status_code": 409, "json": {}}],
    )
    requests_mock.get(
        f"{NOVA}/servers/s-1",
        json={"server": {"id": "s-1", "status": "REBOOT", "OS-EXT-STS:task_state": "rebooting"}},
    )
    nova.reboot_server("s-1")
    assert post.call_count == 2


def test_a_reboot_refused_at_once_is_an_error(nova, requests_mock, no_retry_sleep):
    requests_mock.post(f"{NOVA}/servers/s-1/action", status_code=409, json={})
    with pytest.raises(CloudError, match="reboot server 's-1' failed, HTTP 409"):
        nova.reboot_server("s-1")


def test_an_attachment_whose_answer_was_lost_is_found_not_sent_again(
    nova, requests_mock, no_retry_sleep
):
    post = requests_mock.post(
        f"{NOVA}/servers/s-1/os-volume_attachments",
        exc=requests.exceptions.ConnectionError("('Connection aborted.', RemoteDisconnected())"),
    )
    requests_mock.get(
        f"{NOVA}/servers/s-1/os-volume_attachments",
        json={"volumeAttachments": [{"volumeId": "v-1", "device": "/dev/sdb"}]},
    )
    assert nova.attach_volume("s-1", "v-1", "/dev/sdb") == "/dev/sdb"
    assert post.call_count == 1


def test_an_attachment_that_did_not_arrive_is_sent_again(nova, requests_mock, no_retry_sleep):
    post = requests_mock.post(
        f"{NOVA}/servers/s-1/os-volume_attachments",
        [
            {"status_code": 502, "json": {}},
            {"status_code": 200, "json": {"volumeAttachment": {"device": "/dev/sdb"}}},
        ],
    )
    requests_mock.get(f"{NOVA}/servers/s-1/os-volume_attachments", json={"volumeAttachments": []})
    assert nova.attach_volume("s-1", "v-1", "/dev/sdb") == "/dev/sdb"
    assert post.call_count == 2


def test_status_deleted_is_waited_out_until_nova_drops_the_server(nova, requests_mock):
    """DELETED shows for a moment while server lists still hold the server: a leak check
    (or the operator) right after delete_vm found it."""
    deleted = {"json": {"server": {"id": "s-1", "status": "DELETED"}}}
    polls = requests_mock.get(f"{NOVA}/servers/s-1", [deleted, deleted, {"status_code": 404}])
    nova.wait_until_gone("s-1", timeout=10, max_interval=0.01)
    assert polls.call_count == 3


def test_status_deleted_that_stays_counts_as_gone_after_a_grace(nova, requests_mock, monkeypatch):
    monkeypatch.setattr("bosh_openstack_cpi.openstack.compute.DELETED_GRACE_SECONDS", 0.05)
    requests_mock.get(f"{NOVA}/servers/s-1", json={"server": {"id": "s-1", "status": "DELETED"}})
    nova.wait_until_gone("s-1", timeout=10, max_interval=0.01)
