"""`python -m bosh_openstack_cpi <cpi.json> [<cacert.pem>]`."""

from bosh_openstack_cpi.cli import main

raise SystemExit(main())
