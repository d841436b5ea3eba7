"""BOSH Cloud Provider Interface for OpenStack.

Nothing heavy may be imported here: the director starts a new process for every
CPI call, and `info` must answer without loading keystoneauth.
"""

__version__ = "0.1.0"

# The answer to SIGTERM/SIGINT before a request reached the dispatcher (which answers a
# signal during a call itself, after the call's clean-up). Here because __main__ must be
# able to send it while any other module is still being imported.
SIGNALLED_AT_START = (
    b'{"result":null,"error":{"type":"Bosh::Clouds::CloudError","message":'
    b'"The CPI was stopped by a signal (SIGTERM or SIGINT) while starting, before it handled '
    b'the request: nothing was done","ok_to_retry":false},"log":""}'
)
