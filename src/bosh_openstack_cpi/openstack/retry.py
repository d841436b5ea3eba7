"""Retry policy, chosen per call.

- Reads and deletes (`idempotent`): retried on connection failures, 429 and 413
  `overLimit` (honouring Retry-After / retryAfter), and 500/502/503/504, with capped
  exponential backoff and jitter, within a time budget.
- Creates are never blindly replayed: a create whose request may have reached the cloud
  is looked up (by its request-unique name) before any new attempt; that logic lives
  with each create. Only a connection that was refused (the request never left) or a
  rate-limit answer (429, 413 overLimit: turned away unprocessed) may be retried
  directly (`refused_only`).
- Uploads are never retried automatically.

The keystoneauth connection is built with keystoneauth's own retries switched off (and
the stdlib transport has none), so that this module is the only place where requests are
repeated. Failures are openstack/http.py's classes, whichever transport sent the request.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

from bosh_openstack_cpi.openstack.http import HttpException, NotSent, TlsFailure, TransportError

T = TypeVar("T")
log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 10.0
MAX_ATTEMPTS = 6
DEFAULT_BUDGET = 60.0


def _status(error: Exception) -> int | None:
    if isinstance(error, HttpException):
        return error.status_code
    return None


def _over_limit(error: Exception) -> bool:
    """Nova's rate limit answers 413 with an `overLimit` body (a plain 413 is a size error)."""
    if _status(error) != 413:
        return False
    response = getattr(error, "response", None)
    body = response.text if response is not None else ""
    return "overlimit" in f"{body} {getattr(error, 'details', None) or ''}".lower()


def rate_limited(error: Exception) -> bool:
    """429, or 413 `overLimit`: the cloud turned the request away without acting on it."""
    return _status(error) == 429 or _over_limit(error)


def retry_after(error: Exception) -> float | None:
    """Seconds the cloud asked us to wait (Retry-After header or Nova's retryAfter)."""
    response = getattr(error, "response", None)
    if response is None:
        return None
    header = response.headers.get("Retry-After")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    try:
        body = json.loads(response.text or "{}")
    except ValueError:
        return None
    for fault in body.values() if isinstance(body, dict) else ():
        if isinstance(fault, dict) and "retryAfter" in fault:
            try:
                return max(0.0, float(fault["retryAfter"]))
            except (TypeError, ValueError):
                return None
    return None


def is_transient(error: Exception) -> bool:
    if isinstance(error, HttpException):  # token requests included
        # 408: the server gave up waiting for the request, it did not act on it
        return error.status_code in TRANSIENT_STATUS | {408} or _over_limit(error)
    if isinstance(error, TlsFailure):  # a certificate problem does not go away
        return False
    # refused or reset connections, cut-off answers, connect and read timeouts
    return isinstance(error, TransportError)


def _is_refused(error: Exception) -> bool:
    """No connection was made (refused, or not made in time): the request never reached
    the server, so sending it again cannot duplicate anything, even a create. (A read
    timeout or a connection reset after the request was sent may mean it arrived.)"""
    return isinstance(error, NotSent)


def _run(
    action: Callable[[], T],
    what: str,
    retryable: Callable[[Exception], bool],
    budget: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> T:
    deadline = clock() + budget
    attempt = 1
    while True:
        try:
            return action()
        except Exception as error:
            if not retryable(error) or attempt >= MAX_ATTEMPTS:
                raise
            backoff = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (attempt - 1))
            delay = retry_after(error) or backoff * random.uniform(0.8, 1.2)  # noqa: S311
            if clock() + delay > deadline:
                raise
            log.warning(
                "%s: transient failure (%s), attempt %d, retrying in %.1f s",
                what,
                _short(error),
                attempt,
                delay,
            )
            sleep(delay)
            attempt += 1


def _short(error: Exception) -> str:
    if isinstance(error, HttpException):
        return f"HTTP {error.status_code}"
    return type(error).__name__


def idempotent(
    action: Callable[[], T],
    what: str,
    *,
    budget: float = DEFAULT_BUDGET,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run a read or a delete, retrying transient failures within `budget` seconds."""
    return _run(action, what, is_transient, budget, sleep, clock)


def refused_only(
    action: Callable[[], T],
    what: str,
    *,
    budget: float = DEFAULT_BUDGET,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run a create: retried only when the connection was refused or the cloud rate-limited
    the request (429, 413 overLimit), honouring Retry-After: nothing was acted on."""
    return _run(action, what, lambda e: _is_refused(e) or rate_limited(e), budget, sleep, clock)
