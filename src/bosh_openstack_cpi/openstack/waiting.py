"""Waiting for OpenStack resources to reach a state, polling adaptively.

The reference CPI sleeps `wait_resource_poll_interval` (5 s) between polls, so every
wait rounds up to 5 s. Here the first polls come quickly (most operations on a healthy
cloud finish in well under a second) and the pause grows geometrically up to that
interval, so a slow operation costs no more requests than with the reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from bosh_openstack_cpi.protocol.errors import CloudError

T = TypeVar("T")

FIRST_INTERVAL = 0.1
GROWTH = 1.5


def poll_intervals(max_interval: float) -> Callable[[], float]:
    """0.1, 0.15, 0.225, ... capped at max_interval."""
    current = min(FIRST_INTERVAL, max_interval) / GROWTH

    def next_interval() -> float:
        nonlocal current
        current = min(current * GROWTH, max_interval)
        return current

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
) -> T:
    """Poll `fetch` until `is_done`; raise CloudError when `failure` reports an error state
    (its text should carry OpenStack's own fault message) or after `timeout` seconds.

    `what` completes the sentence "waiting for ...", e.g. "server 'x' to become ACTIVE".
    """
    deadline = clock() + timeout
    next_interval = poll_intervals(max_interval)
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
