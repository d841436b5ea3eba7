"""Per-call logging: every line goes to stderr, tagged with the request id and passed
through redaction, and nowhere else.

The director captures the CPI's stdout and stderr (Open3.capture3) and, after the call,
writes the response's `log` field and then stderr into the task's CPI log (`bosh task N
--cpi`); its debug log gets both again, stderr and the whole response. A line in both
would show twice. Stderr is the one kept: `bosh create-env` and the director's debug log
record it even when there is no valid answer to read a `log` from. The response's `log`
is the empty string the protocol requires.

Imported only by calls that do real work; `info` never pays for `logging`.
"""

from __future__ import annotations

import logging
import os
import time

from bosh_openstack_cpi.protocol.redaction import redact

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

# keystoneauth logs full request bodies at DEBUG (user_data holds agent secrets);
# redaction covers them, but they are noise at the levels operators use.
_NOISY_LIBRARIES = ("keystoneauth", "openstack", "urllib3", "stevedore")

LOG_LEVEL_VARIABLE = "BOSH_OPENSTACK_CPI_LOG_LEVEL"


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


class _CallHandler(logging.Handler):
    def __init__(self, stderr: TextIO) -> None:
        super().__init__()
        self._stderr = stderr

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = redact(self.format(record)) + "\n"
            self._stderr.write(line)
            self._stderr.flush()
        except Exception:  # a logging failure must never break the call
            self.handleError(record)


class CallLog:
    """Installs the call's handler on the root logger."""

    def __init__(self, request_id: str, stderr: TextIO) -> None:
        handler = _CallHandler(stderr)
        handler.setFormatter(
            _UtcFormatter(f"%(asctime)s [{request_id}] %(levelname)s %(name)s: %(message)s")
        )
        root = logging.getLogger()
        for old in list(root.handlers):
            root.removeHandler(old)
        root.addHandler(handler)
        level = os.environ.get(LOG_LEVEL_VARIABLE, "INFO").upper()
        root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
        library_level = logging.DEBUG if level == "DEBUG" else logging.WARNING
        for name in _NOISY_LIBRARIES:
            logging.getLogger(name).setLevel(library_level)
        logging.captureWarnings(True)
        self._handler = handler

    def close(self) -> None:
        logging.getLogger().removeHandler(self._handler)
