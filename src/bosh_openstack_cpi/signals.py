"""SIGTERM/SIGINT held back while a create request is in flight.

cli.py turns SIGTERM into KeyboardInterrupt, so that a call removes what it created
before it answers. Raised in the middle of a create request, that exception would lose
the new resource: the cloud creates it, the CPI never learns its id. Such requests run
inside `SignalsDeferred`; a signal that arrives meanwhile is raised by `deliver()` once
the caller holds the id and can remove what it made.

    with SignalsDeferred() as signals:
        volume_id = create()
    try:
        signals.deliver()
        ...
    except KeyboardInterrupt:
        remove(volume_id)
        raise
"""

from __future__ import annotations

import signal
import threading
from typing import Any

DEFERRED = (signal.SIGTERM, signal.SIGINT)


class SignalsDeferred:
    def __init__(self) -> None:
        self._received: list[int] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalsDeferred:
        if threading.current_thread() is threading.main_thread():
            for number in DEFERRED:
                self._previous[number] = signal.signal(number, self._remember)
        return self

    def _remember(self, number: int, frame: Any) -> None:
        self._received.append(number)

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def deliver(self) -> None:
        """Raise the KeyboardInterrupt a signal received inside the block stands for."""
        if self._received:
            self._received.clear()
            raise KeyboardInterrupt
