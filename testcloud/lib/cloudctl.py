"""Entry point behind testcloud/cloud (run with Debian's /usr/bin/python3 -E -s -B)."""

import sys

from testcloud import cli

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
