"""Operator tools: `bosh-openstack-cpi validate` and `bosh-openstack-cpi orphans`.

They live inside the CPI's package so that the BOSH package (packages/bosh_openstack_cpi,
whose files are `bosh_openstack_cpi/**/*.py`) ships them next to the CPI: an operator runs
them on the director VM or a jumpbox with the very cpi.json the director uses. Nothing on
the path of a CPI call imports this package (cli.py imports it only when the first argument
names a tool; a contract test pins it), so the director's calls pay nothing for it.

Both tools talk to OpenStack only through the CPI's own adapters (bosh_openstack_cpi.openstack):
the same authentication, TLS settings, retries and id checks as the CPI's calls.
"""
