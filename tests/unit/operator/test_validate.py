import email.utils
import io
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest
from keystoneauth1 import noauth
from keystoneauth1 import session as ksa_session

from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack.connection import Connection
from bosh_openstack_cpi.operator.checks import PASSED, CheckFailed, Runner
from bosh_openstack_cpi.operator.session import Printer
from bosh_openstack_cpi.operator.validate import (
    Need,
    Validation,
    _covers_port,
    _rule_problems,
)

GROUP = "g-1"


def rule(**fields):
    return {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", **fields}


def port(number):
    return rule(port_range_min=number, port_range_max=number, remote_ip_prefix="0.0.0.0/0")


EVERYTHING_WITHIN = rule(protocol=None, remote_group_id=GROUP)


def test_a_group_with_the_director_ports_and_all_traffic_within_passes():
    rules = [port(22), port(6868), port(25555), EVERYTHING_WITHIN]
    assert _rule_problems(["bosh"], {GROUP}, rules) == []


def test_each_missing_port_is_named():
    problems = _rule_problems(["bosh"], {GROUP}, [port(22), EVERYTHING_WITHIN])
    assert problems == [
        "groups bosh: no ingress rule for TCP 6868",
        "groups bosh: no ingress rule for TCP 25555",
    ]


def test_a_rule_for_group_members_does_not_open_a_port_to_the_director():
    assert not _covers_port(EVERYTHING_WITHIN, 6868)
    assert _covers_port(rule(protocol=None), 6868)  # any protocol from anywhere
    assert _covers_port(rule(port_range_min=6000, port_range_max=7000), 6868)
    assert not _covers_port(rule(protocol="udp", port_range_min=6868, port_range_max=6868), 6868)
    assert not _covers_port({**port(6868), "direction": "egress"}, 6868)
    assert not _covers_port({**port(6868), "ethertype": "IPv6"}, 6868)


def test_within_the_group_every_tcp_and_udp_port_will_do():
    ports = [port(22), port(6868), port(25555)]
    tcp_and_udp = [rule(remote_group_id=GROUP), rule(protocol="udp", remote_group_id=GROUP)]
    assert _rule_problems(["bosh"], {GROUP}, ports + tcp_and_udp) == []
    only_tcp = _rule_problems(["bosh"], {GROUP}, [*ports, tcp_and_udp[0]])
    assert only_tcp == ["groups bosh: no rule allowing all traffic within the group"]
    other_group = _rule_problems(
        ["bosh"], {GROUP}, [*ports, rule(protocol=None, remote_group_id="x")]
    )
    assert other_group == only_tcp


def test_quota_needs():
    assert Need("instances", 2, -1, 40).free is None
    assert Need("instances", 2, 10, 9).free == 1
    assert Need("instances", 2, 10, 9).describe() == "instances 1 free of 10, need 2"


def _validation_with_keystone_date(requests_mock, date):
    """A Validation whose Keystone answers its version document with this Date header."""
    requests_mock.get("http://keystone/v3", headers={"Date": date} if date else {}, json={})
    connection = Connection(
        ksa_session.Session(auth=noauth.NoAuth()), region_name=None, interface="public"
    )
    call = SimpleNamespace(
        cloud=SimpleNamespace(connection=connection),
        config=SimpleNamespace(openstack=OpenStackConfig(auth_url="http://keystone/v3")),
    )
    return Validation(cast(Any, call), None, Runner(Printer(io.StringIO())))


def test_clock_skew_against_keystones_date_header(requests_mock):
    now = email.utils.formatdate(time.time(), usegmt=True)
    late = email.utils.formatdate(time.time() - 120, usegmt=True)
    outcome = _validation_with_keystone_date(requests_mock, now).clock_skew()
    assert outcome.status == PASSED and "(Date header)" in outcome.detail
    with pytest.raises(CheckFailed, match=r"this machine is 1[12][0-9]\.[0-9] s ahead of Keystone"):
        _validation_with_keystone_date(requests_mock, late).clock_skew()
