"""The executable: `bosh-openstack-cpi <cpi.json> [<cacert.pem>]`.

The director runs the job's bin/cpi with no arguments and a wiped environment,
writes one JSON request to stdin and closes it, then parses all of stdout as
one JSON document. So: read stdin to EOF, and make sure that nothing but the
response ever reaches file descriptor 1, whatever a library prints.
"""

from __future__ import annotations

import os
import signal
import sys

from bosh_openstack_cpi import SIGNALLED_AT_START

USAGE = """usage: bosh-openstack-cpi <cpi.json> [<cacert.pem>]
       bosh-openstack-cpi validate|orphans <cpi.json> ...   (operator tools, --help)
Reads one CPI request (JSON) on stdin and writes one JSON response on stdout.
Logs go to stderr. See README.md.
"""
# Operator tools (docs/operator-tools.md): selected by a first argument that is not a file.
TOOLS = ("validate", "orphans")

_LAST_RESORT = (
    b'{"result":null,"error":{"type":"Bosh::Clouds::CloudError","message":'
    b'"The CPI failed internally before it could answer; see its stderr","ok_to_retry":false},'
    b'"log":""}'
)


def catch_signals() -> None:
    """SIGTERM (the director's timeout, an operator) becomes KeyboardInterrupt, which is
    answered with an error response; SIGINT too, even if the process started with it
    ignored. __main__ calls this before importing anything else of the package."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def write_response(fd: int, response: bytes) -> int:
    """Write the one answer with signals ignored: a signal now could only cut it short,
    and once an answer is written the process exits 0 whatever arrives."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return _write_all(fd, response + b"\n")


def main(argv: list[str] | None = None) -> int:
    catch_signals()  # again: the console script enters here, not through __main__
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in TOOLS and not os.path.exists(args[0]):
        from bosh_openstack_cpi.operator.main import main as run_tool

        return run_tool(args)
    response_fd = 1
    try:
        if args and args[0] in ("-h", "--help"):
            sys.stderr.write(USAGE)
            return 2
        config_path = args[0] if args else ""
        ca_cert_path = args[1] if len(args) > 1 else None
        raw = sys.stdin.buffer.read()

        response_fd = os.dup(1)
        os.dup2(2, 1)  # anything printed from now on, even by C code, lands on stderr
        sys.stdout = sys.stderr
        from bosh_openstack_cpi.protocol.dispatch import handle

        response = handle(raw, config_path, ca_cert_path, sys.stderr)
    except KeyboardInterrupt:  # a signal before the dispatcher took over
        response = SIGNALLED_AT_START
    except BaseException:  # the director must get a response in every case
        response = _LAST_RESORT
    return write_response(response_fd, response)


def _write_all(fd: int, data: bytes) -> int:
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError:
        return 1
    return 0
