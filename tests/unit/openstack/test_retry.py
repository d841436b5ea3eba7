"""Retry policy against a faked HTTP cloud: failure paths a real cloud will not produce."""

import pytest
import requests
from keystoneauth1 import exceptions as ksa

from bosh_openstack_cpi.openstack import http, retry
from bosh_openstack_cpi.openstack.connection import translate


def _http_error(status, headers=None, body="{}"):
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    response._content = body.encode()
    return http.HttpException("boom", status_code=status, response=response, details=body)


class Flaky:
    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def _no_sleep():
    slept: list[float] = []
    return slept, slept.append


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_reads_retry_transient_statuses(status):
    slept, sleep = _no_sleep()
    action = Flaky(_http_error(status), _http_error(status))
    assert retry.idempotent(action, "get server", sleep=sleep) == "ok"
    assert action.calls == 3
    assert len(slept) == 2


def test_retry_after_header_is_honoured():
    slept, sleep = _no_sleep()
    action = Flaky(_http_error(429, {"Retry-After": "7"}))
    retry.idempotent(action, "list", sleep=sleep)
    assert slept == [7.0]


def test_over_limit_413_with_retry_after_in_body_is_retried():
    slept, sleep = _no_sleep()
    body = '{"overLimit": {"code": 413, "message": "slow down", "retryAfter": "3"}}'
    action = Flaky(_http_error(413, body=body))
    retry.idempotent(action, "metadata", sleep=sleep)
    assert slept == [3.0]


def test_plain_413_and_client_errors_are_not_retried():
    for error in (_http_error(413, body='{"badRequest": {}}'), _http_error(404), _http_error(409)):
        action = Flaky(error)
        with pytest.raises(http.HttpException):
            retry.idempotent(action, "x", sleep=lambda _: None)
        assert action.calls == 1


@pytest.mark.parametrize(
    "error",
    [
        translate(ksa.ConnectFailure("refused")),
        translate(ksa.UnknownConnectionError("cut off", ConnectionResetError())),
        translate(ksa.ConnectTimeout("slow")),
        translate(ksa.RequestTimeout("slow")),
    ],
)
def test_reads_retry_connection_problems(error):
    action = Flaky(error)
    assert retry.idempotent(action, "get", sleep=lambda _: None) == "ok"


def test_attempts_are_bounded():
    action = Flaky(*[_http_error(503) for _ in range(20)])
    with pytest.raises(http.HttpException):
        retry.idempotent(action, "x", sleep=lambda _: None)
    assert action.calls == retry.MAX_ATTEMPTS


def test_budget_bounds_the_waiting():
    now = [0.0]
    action = Flaky(_http_error(503, {"Retry-After": "100"}))
    with pytest.raises(http.HttpException):
        retry.idempotent(action, "x", budget=30, sleep=lambda s: None, clock=lambda: now[0])
    assert action.calls == 1


def test_creates_are_retried_only_when_no_connection_was_made():
    action = Flaky(translate(ksa.ConnectFailure("refused")))
    assert retry.refused_only(action, "create", sleep=lambda _: None) == "ok"
    # keystoneauth maps read timeouts to ConnectTimeout too: the request may have arrived
    for error in (
        _http_error(503),
        translate(ksa.ConnectTimeout("connect or read timeout")),
        translate(ksa.RequestTimeout("sent, no answer")),
        translate(ksa.SSLError("cert")),
    ):
        action = Flaky(error)
        with pytest.raises(type(error)):
            retry.refused_only(action, "create", sleep=lambda _: None)
        assert action.calls == 1


def test_tls_errors_are_never_retried():
    action = Flaky(translate(ksa.SSLError("certificate verify failed")))
    with pytest.raises(http.TlsFailure):
        retry.idempotent(action, "x", sleep=lambda _: None)
    assert action.calls == 1


# --- regressions from the fault campaign (RELIABILITY.md) --------------------------------


def test_a_connection_reset_after_sending_is_not_a_refused_connection():
    """keystoneauth reports both as ConnectFailure; only a refused one never reached the
    cloud. Repeating a create after a reset made a second image."""
    reset = translate(
        ksa.ConnectFailure(
            "Unable to establish connection to http://glance/v2/images: ('Connection aborted.', "
            "ConnectionResetError(104, 'Connection reset by peer'))"
        )
    )
    action = Flaky(reset)
    with pytest.raises(http.AnswerLost):
        retry.refused_only(action, "create", sleep=lambda _: None)
    assert action.calls == 1
    refused = translate(
        ksa.ConnectFailure(
            "Unable to establish connection to http://glance/v2/images: HTTPConnectionPool(...): "
            "Max retries exceeded (Caused by NewConnectionError('[Errno 111] Connection refused'))"
        )
    )
    assert retry.refused_only(Flaky(refused), "create", sleep=lambda _: None) == "ok"


@pytest.mark.parametrize(
    "error",
    [
        _http_error(429, {"Retry-After": "4"}),
        _http_error(413, {"Retry-After": "4"}, '{"overLimit": {"message": "slow down"}}'),
    ],
    ids=["429", "413 overLimit"],
)
def test_creates_are_sent_again_after_a_rate_limit(error):
    """A rate-limited request was turned away unprocessed: sending it again is safe."""
    slept, sleep = _no_sleep()
    action = Flaky(error)
    assert retry.refused_only(action, "create", sleep=sleep) == "ok"
    assert slept == [4.0]


def test_keystone_over_limit_is_transient():
    response = requests.Response()
    response.status_code = 413
    response._content = b'{"overLimit": {"code": 413, "retryAfter": "1"}}'
    error = translate(ksa.HttpError(http_status=413, response=response))
    assert retry.is_transient(error)
    assert not retry.is_transient(translate(ksa.HttpError(http_status=413)))


def _keystoneauth_timeout_over(cause: Exception) -> Exception:
    """Our translation of keystoneauth's ConnectTimeout raised while handling `cause`."""
    try:
        try:
            raise cause
        except type(cause):
            raise ksa.ConnectTimeout("Request timed out") from None
    except ksa.ConnectTimeout as error:
        return translate(error)


def test_keystoneauth_timeouts_count_as_sent_unless_requests_saw_the_connect_fail():
    """keystoneauth reports connect and read timeouts alike (ConnectTimeout): only the
    requests exception behind it tells that no connection was made."""
    connect = _keystoneauth_timeout_over(requests.exceptions.ConnectTimeout("connect timed out"))
    assert isinstance(connect, http.ConnectTimedOut)
    read = _keystoneauth_timeout_over(requests.exceptions.ReadTimeout("read timed out"))
    assert isinstance(read, http.ReadTimedOut)


@pytest.mark.parametrize(
    ("error", "retried_for_a_create"),
    [
        (http.NotSent("[Errno 111] Connection refused"), True),
        (http.ConnectTimedOut("connect timed out"), True),
        (http.ReadTimedOut("read timed out"), False),
        (http.AnswerLost("RemoteDisconnected"), False),
        (http.TlsFailure("certificate verify failed"), False),
    ],
)
def test_our_transport_failures(error, retried_for_a_create):
    """The stdlib transport raises these directly: reads retry all but TLS failures,
    creates only what was never sent."""
    assert retry.is_transient(error) is not isinstance(error, http.TlsFailure)
    action = Flaky(error)
    if retried_for_a_create:
        assert retry.refused_only(action, "create", sleep=lambda _: None) == "ok"
    else:
        with pytest.raises(type(error)):
            retry.refused_only(action, "create", sleep=lambda _: None)
        assert action.calls == 1
