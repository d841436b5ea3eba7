"""One module per group of CPI methods. Actions orchestrate; they talk to
OpenStack only through `bosh_openstack_cpi.openstack` adapters (via `call.cloud`)."""
