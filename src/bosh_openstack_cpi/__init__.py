"""BOSH Cloud Provider Interface for OpenStack.

Nothing heavy may be imported here: the director starts a new process for every
CPI call, and `info` must answer without loading keystoneauth.
"""

__version__ = "0.1.0"
