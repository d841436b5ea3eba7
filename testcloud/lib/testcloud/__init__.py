"""The bosh-openstack-cpi test cloud: a minimal real OpenStack on 127.0.0.1."""
