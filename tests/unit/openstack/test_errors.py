"""What the operator reads for each kind of failure, and which failures drop the cached
token (a catalog that may be stale)."""

from __future__ import annotations

import pytest

from bosh_openstack_cpi.openstack import http
from bosh_openstack_cpi.openstack.errors import EndpointUnreachable, api_errors
from bosh_openstack_cpi.protocol.errors import CloudError

REFUSED = "HTTPConnectionPool: Max retries ([Errno 111] Connection refused)"


def test_an_endpoint_nobody_listens_on_is_unreachable():
    with pytest.raises(EndpointUnreachable) as raised, api_errors("Compute", "look up server 'x'"):
        raise http.NotSent(REFUSED)
    assert str(raised.value) == (
        "Cannot reach OpenStack Compute to look up server 'x': [Errno 111] Connection refused"
    )


@pytest.mark.parametrize("error", [http.AnswerLost("reset"), http.ReadTimedOut("slow")])
def test_a_lost_answer_is_a_plain_cloud_error_that_keeps_the_token(error: Exception):
    with pytest.raises(CloudError) as raised, api_errors("Compute", "look up server 'x'"):
        raise error
    assert not isinstance(raised.value, EndpointUnreachable)
    assert "Cannot reach OpenStack Compute" in str(raised.value)
