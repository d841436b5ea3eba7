"""Waiting for OpenStack resources to reach a state, polling adaptively.

The reference CPI sleeps `wait_resource_poll_interval` (5 s) between polls, so every
wait rounds up to 5 s. Here the first polls come quickly (most operations on a healthy
cloud finish in well under a second) and each pause is a quarter of the time the
operation has taken so far, up to that interval: a poll sees the end at most a quarter of
the operation's time late. The price is requests: a 60 s wait polls 31 times where the
reference polls 13 (from 20 s on, the default 5 s interval caps the pause and both poll
alike); a GET of one resource is the cheapest request an API serves.
Time counts from the request that started the operation (when the caller knows it), so
work done between that request and the wait (a floating IP associated while Nova builds
the server) is not waited for twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from bosh_openstack_cpi.protocol.errors import CloudError

T = TypeVar("T")

FIRST_INTERVAL = 0.1
ELAPSED_FRACTION = 1 / 4


def poll_intervals(
    max_interval: float, started: float, clock: Callable[[], float] = time.monotonic
) -> Callable[[], float]:
    """The next pause: a quarter of the time since `started`, at least FIRST_INTERVAL, at
    most max_interval (0.1 s until 0.4 s have passed, 1 s at 4 s, ...)."""

    def next_interval() -> float:
        elapsed = clock() - started
        return min(max_interval, max(FIRST_INTERVAL, ELAPSED_FRACTION * elapsed))

    return next_interval


def wait_for(
    what: str,
    fetch: Callable[[], T],
    is_done: Callable[[T], bool],
    *,
    timeout: float,
    max_interval: float,
    failure: Callable[[T], str | None] = lambda _: None,
    describe: Callable[[T], str] = str,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    started: float | None = None,
) -> T:
    """Poll `fetch` until `is_done`; raise CloudError when `failure` reports an error state
    (its text should carry OpenStack's own fault message) or after `timeout` seconds.

    `what` completes the sentence "waiting for ...", e.g. "server 'x' to become ACTIVE".
    `started`: when the operation was requested (a `clock` reading); default now. The
    timeout counts from the start of the wait either way.
    """
    deadline = clock() + timeout
    next_interval = poll_intervals(max_interval, clock() if started is None else started, clock)
    while True:
        current = fetch()
        if is_done(current):
            return current
        problem = failure(current)
        if problem:
            raise CloudError(f"Failed waiting for {what}: {problem}")
        remaining = deadline - clock()
        if remaining <= 0:
            raise CloudError(
                f"Timed out after {timeout:g} s waiting for {what} (last seen: "
                f"{describe(current)}); raise openstack.state_timeout if the cloud is slow"
            )
        sleep(min(next_interval(), remaining))
