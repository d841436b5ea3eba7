"""Octavia adapter: the failure paths the real test cloud cannot produce on demand (a
load balancer that stays busy or fails, lost answers, duplicates that differ, a catalog
without Octavia). The real Octavia's answers are in tests/integration/test_vm_pools.py."""

import pytest

from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack import errors
from bosh_openstack_cpi.openstack.connection import Connection
from bosh_openstack_cpi.openstack.octavia import LoadBalancer, Member, Pool
from bosh_openstack_cpi.protocol.errors import CloudError
from tests.unit.openstack.fakes import OCTAVIA, connection, requests_to

POOL = Pool("pool-1", "web", "lb-1")
MEMBERS = f"{OCTAVIA}/lbaas/pools/pool-1/members"
LB = f"{OCTAVIA}/lbaas/loadbalancers/lb-1"
BUSY = {"faultcode": "Client", "faultstring": "Pool pool-1 is immutable and cannot be updated."}
DUPLICATE = {
    "faultcode": "Client",
    "faultstring": "Another member on this pool is already using ip 10.0.0.5 on protocol_port 80",
}
MEMBER = {"id": "m-1", "address": "10.0.0.5", "protocol_port": 80, "subnet_id": "s-1"}


class Clock:
    """A clock that sleep advances: timeouts without waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def octavia(requests_mock, clock):
    config = OpenStackConfig(
        auth_url="http://k/v3", state_timeout=30, wait_resource_poll_interval=1
    )
    return LoadBalancer(connection(requests_mock), config, clock=clock, sleep=clock.sleep)


def _add(octavia, clock, monitor_port=None):
    return octavia.add_member(
        POOL,
        address="10.0.0.5",
        port=80,
        subnet_id="s-1",
        monitor_port=monitor_port,
    )


def test_a_pool_is_found_by_name_with_its_load_balancer(octavia, requests_mock):
    requests_mock.get(
        f"{OCTAVIA}/lbaas/pools",
        json={"pools": [{"id": "pool-1", "name": "web", "loadbalancers": [{"id": "lb-1"}]}]},
    )
    assert octavia.pool_named("web") == POOL
    assert requests_to(requests_mock, "octavia") == [("GET", "/v2/lbaas/pools?name=web")]


@pytest.mark.parametrize(
    ("pools", "problem"),
    [
        ([], "Load balancer pool 'web' does not exist"),
        (
            [{"id": "a", "name": "web", "loadbalancers": [{"id": "l"}]}] * 2,
            r"name 'web' matches 2 pools \(a, a\): make the pool names unique",
        ),
        ([{"id": "a", "name": "web", "loadbalancers": []}], "belongs to 0 load balancers"),
    ],
)
def test_a_pool_name_must_name_one_pool_of_one_load_balancer(
    octavia, requests_mock, pools, problem
):
    requests_mock.get(f"{OCTAVIA}/lbaas/pools", json={"pools": pools})
    with pytest.raises(CloudError, match=problem):
        octavia.pool_named("web")


def test_a_member_is_added_with_its_subnet_and_monitoring_port(octavia, requests_mock, clock):
    requests_mock.post(MEMBERS, status_code=201, json={"member": {**MEMBER, "monitor_port": 8080}})
    member = _add(octavia, clock, monitor_port=8080)
    assert member == Member("m-1", "pool-1", "10.0.0.5", 80, "s-1", 8080)
    assert member.reference == "pool-1/m-1"
    assert requests_mock.last_request.json() == {
        "member": {
            "address": "10.0.0.5",
            "protocol_port": 80,
            "subnet_id": "s-1",
            "monitor_port": 8080,
        }
    }


def test_a_busy_load_balancer_is_waited_for_and_the_member_sent_again(
    octavia, requests_mock, clock
):
    requests_mock.post(
        MEMBERS,
        [{"status_code": 409, "json": BUSY}, {"status_code": 201, "json": {"member": MEMBER}}],
    )
    requests_mock.get(MEMBERS, json={"members": []})
    requests_mock.get(
        LB,
        [
            {"json": {"loadbalancer": {"provisioning_status": "PENDING_UPDATE"}}},
            {"json": {"loadbalancer": {"provisioning_status": "ACTIVE"}}},
        ],
    )
    assert _add(octavia, clock).id == "m-1"
    assert [m for m, _ in requests_to(requests_mock, "octavia")] == [
        "POST",
        "GET",  # is it ours already? no
        "GET",  # the load balancer: PENDING_UPDATE
        "GET",  # ACTIVE
        "POST",
    ]


def test_a_load_balancer_busy_past_state_timeout_fails_naming_it(octavia, requests_mock, clock):
    requests_mock.post(MEMBERS, status_code=409, json=BUSY)
    requests_mock.get(MEMBERS, json={"members": []})
    requests_mock.get(LB, json={"loadbalancer": {"provisioning_status": "PENDING_UPDATE"}})
    with pytest.raises(CloudError, match="waiting for load balancer 'lb-1' to become ACTIVE") as e:
        _add(octavia, clock)
    assert "raise openstack.state_timeout" in e.value.message
    assert clock.now >= 30


def test_a_load_balancer_in_error_fails_at_once(octavia, requests_mock, clock):
    requests_mock.post(MEMBERS, status_code=409, json=BUSY)
    requests_mock.get(MEMBERS, json={"members": []})
    requests_mock.get(LB, json={"loadbalancer": {"provisioning_status": "ERROR"}})
    with pytest.raises(CloudError, match="provisioning_status is ERROR"):
        _add(octavia, clock)


def test_an_identical_member_is_adopted(octavia, requests_mock, clock):
    requests_mock.post(MEMBERS, status_code=409, json=DUPLICATE)
    requests_mock.get(MEMBERS, json={"members": [MEMBER]})
    assert _add(octavia, clock).id == "m-1"
    assert requests_to(requests_mock, "octavia")[-1] == (
        "GET",
        "/v2/lbaas/pools/pool-1/members?address=10.0.0.5&protocol_port=80",
    )


@pytest.mark.parametrize(
    "other", [{**MEMBER, "subnet_id": "s-2"}, {**MEMBER, "monitor_port": 9090}]
)
def test_a_member_that_differs_is_a_conflict_to_resolve(octavia, requests_mock, clock, other):
    requests_mock.post(MEMBERS, status_code=409, json=DUPLICATE)
    requests_mock.get(MEMBERS, json={"members": [other]})
    with pytest.raises(CloudError, match=r"Another member of the pool uses 10\.0\.0\.5:80"):
        _add(octavia, clock, monitor_port=8080 if "monitor_port" in other else None)


def test_a_lost_answer_finds_the_member_the_request_made(octavia, requests_mock, clock):
    requests_mock.post(MEMBERS, status_code=503)
    requests_mock.get(MEMBERS, json={"members": [MEMBER]})
    assert _add(octavia, clock).id == "m-1"
    assert [m for m, _ in requests_to(requests_mock, "octavia")] == ["POST", "GET"]


def test_a_lost_answer_without_a_member_is_sent_again(octavia, requests_mock, clock):
    requests_mock.post(
        MEMBERS, [{"status_code": 502}, {"status_code": 201, "json": {"member": MEMBER}}]
    )
    requests_mock.get(MEMBERS, json={"members": []})
    assert _add(octavia, clock).id == "m-1"


def test_a_member_already_gone_counts_as_removed(octavia, requests_mock, clock):
    requests_mock.delete(f"{MEMBERS}/m-1", status_code=404)
    assert octavia.delete_member("pool-1", "m-1") is False


def test_a_removal_waits_for_a_busy_load_balancer_found_through_the_pool(
    octavia, requests_mock, clock
):
    requests_mock.delete(
        f"{MEMBERS}/m-1", [{"status_code": 409, "json": BUSY}, {"status_code": 204}]
    )
    requests_mock.get(
        f"{OCTAVIA}/lbaas/pools/pool-1",
        json={"pool": {"id": "pool-1", "name": "web", "loadbalancers": [{"id": "lb-1"}]}},
    )
    requests_mock.get(LB, json={"loadbalancer": {"provisioning_status": "ACTIVE"}})
    requests_mock.get(f"{MEMBERS}/m-1", status_code=404)
    assert octavia.delete_member("pool-1", "m-1") is True
    assert [m for m, _ in requests_to(requests_mock, "octavia")] == [
        "DELETE",
        "GET",  # the pool: its load balancer
        "GET",  # the load balancer: ACTIVE
        "DELETE",
        "GET",  # the member: gone
    ]


def test_a_removal_from_a_deleted_pool_counts_as_done(octavia, requests_mock, clock):
    requests_mock.delete(f"{MEMBERS}/m-1", status_code=409, json=BUSY)
    requests_mock.get(f"{OCTAVIA}/lbaas/pools/pool-1", status_code=404)
    assert octavia.delete_member("pool-1", "m-1") is False


def test_a_removal_retries_a_5xx_as_any_delete(octavia, requests_mock, clock):
    requests_mock.delete(f"{MEMBERS}/m-1", [{"status_code": 503}, {"status_code": 204}])
    requests_mock.get(f"{MEMBERS}/m-1", status_code=404)
    assert octavia.delete_member("pool-1", "m-1") is True


def test_a_removal_waits_until_octavia_has_removed_the_member(octavia, requests_mock, clock):
    requests_mock.delete(f"{MEMBERS}/m-1", status_code=204)
    requests_mock.get(
        f"{MEMBERS}/m-1",
        [
            {"json": {"member": {**MEMBER, "provisioning_status": "PENDING_DELETE"}}},
            {"status_code": 404},
        ],
    )
    assert octavia.delete_member("pool-1", "m-1") is True
    assert [m for m, _ in requests_to(requests_mock, "octavia")] == ["DELETE", "GET", "GET"]


def test_a_removal_that_octavia_fails_is_an_error(octavia, requests_mock, clock):
    requests_mock.delete(f"{MEMBERS}/m-1", status_code=204)
    requests_mock.get(f"{MEMBERS}/m-1", json={"member": {**MEMBER, "provisioning_status": "ERROR"}})
    with pytest.raises(
        CloudError, match="member 'm-1' to be removed: its provisioning_status is ERROR"
    ):
        octavia.delete_member("pool-1", "m-1")


def test_a_cloud_without_octavia_says_what_needs_it(requests_mock, clock):
    from keystoneauth1 import noauth
    from keystoneauth1 import session as ksa_session

    catalogless = Connection(
        ksa_session.Session(auth=noauth.NoAuth()), region_name=None, interface="public"
    )
    octavia = LoadBalancer(catalogless, OpenStackConfig(auth_url="http://k/v3"))
    with pytest.raises(
        errors.ServiceNotInCatalog,
        match=r"no load-balancer \(Octavia\) endpoint.*loadbalancer_pools needs Octavia",
    ):
        octavia.pool_named("web")
