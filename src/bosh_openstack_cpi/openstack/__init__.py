"""OpenStack adapters, one module per service. The only package that imports
the OpenStack SDK; it hands back plain values and raises only CPI errors."""
