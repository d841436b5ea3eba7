"""OpenStack adapters, one module per service. The only package that imports
keystoneauth; it hands back plain values and raises only CPI errors."""
