"""Run an entry point ("module:function") as if it were its console script.

    python3 -m bosh_testcloud.run PROGNAME module:function [args...]

Debian's python3-nova, python3-cinder, ... are libraries only: the /usr/bin/nova-api
style scripts come with the daemon packages, which the test cloud does not install.
PROGNAME becomes sys.argv[0], so logs and `ps` show the usual program name.
"""

import importlib
import sys


def main():
    if len(sys.argv) < 3 or ":" not in sys.argv[2]:
        sys.exit(__doc__)
    prog, target = sys.argv[1], sys.argv[2]
    module, func = target.split(":", 1)
    sys.argv = [prog] + sys.argv[3:]
    return getattr(importlib.import_module(module), func)()


if __name__ == "__main__":
    sys.exit(main())
