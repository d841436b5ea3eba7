from collections.abc import Iterator

import pytest

from bosh_openstack_cpi.openstack.waiting import poll_intervals, wait_for
from bosh_openstack_cpi.protocol.errors import CloudError


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_pauses_are_a_quarter_of_the_elapsed_time_between_the_bounds():
    clock = FakeClock()
    next_interval = poll_intervals(1.0, started=0.0, clock=clock)
    assert next_interval() == pytest.approx(0.1)  # at the start: the shortest pause
    clock.now = 0.8
    assert next_interval() == pytest.approx(0.2)
    clock.now = 9.0
    assert next_interval() == 1.0  # the configured maximum


def test_a_maximum_below_the_first_interval_wins():
    assert poll_intervals(0.05, started=0.0, clock=FakeClock())() == pytest.approx(0.05)


def _until_active(clock: FakeClock, states: Iterator[str], started: float | None = None) -> str:
    """wait_for a server through `states` on the fake clock (5 s maximum interval)."""
    return wait_for(
        "server to become ACTIVE",
        lambda: next(states),
        lambda s: s == "ACTIVE",
        timeout=300,
        max_interval=5,
        clock=clock,
        sleep=clock.sleep,
        started=started,
    )


def test_pauses_count_from_the_request_when_it_is_given():
    clock = FakeClock()
    clock.now = 4.0  # the request went out at 0; work in between took 4 s
    _until_active(clock, iter(["BUILD", "ACTIVE"]), started=0.0)
    assert clock.sleeps == [pytest.approx(1.0)]


def test_a_long_wait_polls_about_31_times():
    clock = FakeClock()

    def states() -> Iterator[str]:
        while clock.now < 60:
            yield "BUILD"
        yield "ACTIVE"

    _until_active(clock, states())
    assert 60 <= clock.now <= 65
    # 31 polls; the reference CPI: 13, 5 s apart, but up to 5 s late instead of 1.25 s
    assert len(clock.sleeps) + 1 <= 32


def test_returns_as_soon_as_done_with_short_first_polls():
    clock = FakeClock()
    result = _until_active(clock, iter(["BUILD", "BUILD", "ACTIVE"]))
    assert result == "ACTIVE"
    assert clock.now < 0.5  # the reference CPI would have slept 10 s here


def test_error_state_raises_with_the_fault_message():
    with pytest.raises(CloudError, match=r"Failed waiting for server 'x'.*No valid host"):
        wait_for(
            "server 'x' to become ACTIVE",
            lambda: "ERROR",
            lambda s: s == "ACTIVE",
            failure=lambda s: "state ERROR: No valid host was found" if s == "ERROR" else None,
            timeout=10,
            max_interval=1,
        )


def test_timeout_names_what_and_the_last_state():
    clock = FakeClock()
    with pytest.raises(CloudError) as raised:
        wait_for(
            "volume 'v' to become available",
            lambda: "creating",
            lambda s: s == "available",
            timeout=30,
            max_interval=5,
            clock=clock,
            sleep=clock.sleep,
        )
    assert "Timed out after 30 s waiting for volume 'v' to become available" in str(raised.value)
    assert "last seen: creating" in str(raised.value)
    assert "openstack.state_timeout" in str(raised.value)
    assert clock.now == pytest.approx(30)
    assert max(clock.sleeps) <= 5
