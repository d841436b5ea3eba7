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

USAGE = """usage: bosh-openstack-cpi <cpi.json> [<cacert.pem>]
Reads one CPI request (JSON) on stdin and writes one JSON response on stdout.
Logs go to stderr. See README.md.
"""

_LAST_RESORT = (
    b'{"result":null,"error":{"type":"Bosh::Clouds::CloudError","message":'
    b'"The CPI failed internally before it could answer; see its stderr","ok_to_retry":false},'
    b'"log":""}'
)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        sys.stderr.write(USAGE)
        return 2
    config_path = args[0] if args else ""
    ca_cert_path = args[1] if len(args) > 1 else None

    # SIGTERM (the director's timeout, an operator) becomes KeyboardInterrupt, which the
    # dispatcher turns into an error response after the call's own clean-up ran.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    raw = sys.stdin.buffer.read()

    response_fd = os.dup(1)
    os.dup2(2, 1)  # anything printed from now on, even by C code, lands on stderr
    sys.stdout = sys.stderr
    try:
        from bosh_openstack_cpi.protocol.dispatch import handle

        response = handle(raw, config_path, ca_cert_path, sys.stderr)
    except BaseException:  # the director must get a response in every case
        response = _LAST_RESORT
    return _write_all(response_fd, response + b"\n")


def _write_all(fd: int, data: bytes) -> int:
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError:
        return 1
    return 0
