"""The CPI's own configuration and connection, opened the way a CPI call opens them."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from bosh_openstack_cpi.call import Call
from bosh_openstack_cpi.protocol.envelope import Request
from bosh_openstack_cpi.protocol.redaction import redact


def open_call(
    config_path: str, ca_cert_path: str | None, director_uuid: str, *, fresh_token: bool
) -> Call:
    """A `Call` on cpi.json, as the director would make one. With `fresh_token` the token
    cache is bypassed (a context key overrides `openstack`, as for multi-CPI), so that
    authentication itself is exercised rather than a cached token."""
    context: dict[str, object] = {"director_uuid": director_uuid, "request_id": "operator"}
    if fresh_token:
        context["token_cache"] = False
    return Call(Request("operator", [], context, 2), config_path, ca_cert_path)


class RedactingHandler(logging.Handler):
    """Log records to stderr with every registered secret (passwords, application
    credential secrets, tokens) blanked, as the CPI's own call log does."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(redact(self.format(record)) + "\n")
        except Exception:  # a log line is never worth a crash
            self.handleError(record)


def set_up_logging(verbose: bool) -> None:
    root = logging.getLogger()
    root.handlers[:] = [RedactingHandler(sys.stderr)]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)


class Printer:
    """Every line a tool prints goes through the CPI's redaction."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def line(self, text: str = "") -> None:
        self.stream.write(redact(text) + "\n")
        self.stream.flush()
