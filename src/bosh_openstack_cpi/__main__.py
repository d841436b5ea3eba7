"""`python -m bosh_openstack_cpi <cpi.json> [<cacert.pem>]`.

The director may stop a call with SIGTERM at any moment, also while Python is still
importing: the handlers go in before anything else of the package is imported, so that
every signal after these lines gets an answer (README states the window before them, the
interpreter's own start). A parent that started the CPI with the signals blocked has
them delivered here, once they can be answered.
"""

import signal

WATCHED = {signal.SIGTERM, signal.SIGINT}

try:
    for number in WATCHED:
        signal.signal(number, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WATCHED)
    from bosh_openstack_cpi.cli import main

    status = main()
except KeyboardInterrupt:  # before main() had a response to give
    import os

    from bosh_openstack_cpi import SIGNALLED_AT_START

    for number in WATCHED:
        signal.signal(number, signal.SIG_IGN)
    os.write(1, SIGNALLED_AT_START + b"\n")
    status = 0
raise SystemExit(status)
