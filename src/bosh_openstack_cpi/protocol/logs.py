"""Per-call logging: every line goes to stderr (the director streams it into the
task's CPI log) and into the response's `log` field, tagged with the request id
and passed through redaction.

Imported only by calls that do real work; `info` never pays for `logging`.
"""

from __future__ import annotations

import io
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
    def __init__(self, stderr: TextIO, buffer: io.StringIO) -> None:
        super().__init__()
        self._stderr = stderr
        self._buffer = buffer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = redact(self.format(record)) + "\n"
            self._buffer.write(line)
            self._stderr.write(line)
            self._stderr.flush()
        except Exception:  # a logging failure must never break the call
            self.handleError(record)


class CallLog:
    """Installs the call's handler on the root logger; `text()` is the response's `log`."""

    def __init__(self, request_id: str, stderr: TextIO) -> None:
        self._buffer = io.StringIO()
        handler = _CallHandler(stderr, self._buffer)
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

    def text(self) -> str:
        return self._buffer.getvalue()

    def close(self) -> None:
        logging.getLogger().removeHandler(self._handler)
