"""The error types the BOSH director knows.

The director accepts exactly ten `Bosh::Clouds::*` type names; any other type
fails its task without a useful message. Every failure in this CPI is raised
as one of the classes below, and the dispatcher turns anything else into a
`CloudError`.
"""

from __future__ import annotations

BOSH_ERROR_TYPES = frozenset(
    "Bosh::Clouds::" + name
    for name in (
        "CpiError",
        "NotSupported",
        "NotImplemented",
        "CloudError",
        "VMNotFound",
        "NetworkNotFound",
        "NoDiskSpace",
        "DiskNotAttached",
        "DiskNotFound",
        "VMCreationFailed",
    )
)


class CpiError(Exception):
    """Base class; also used for requests the CPI cannot understand."""

    bosh_type = "Bosh::Clouds::CpiError"

    def __init__(self, message: str, *, ok_to_retry: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.ok_to_retry = ok_to_retry


class InvalidRequest(CpiError):
    """The request itself is malformed (not JSON, wrong types, missing keys)."""


class MethodNotImplemented(CpiError):
    bosh_type = "Bosh::Clouds::NotImplemented"


class NotSupported(CpiError):
    bosh_type = "Bosh::Clouds::NotSupported"


class CloudError(CpiError):
    bosh_type = "Bosh::Clouds::CloudError"


class ConfigError(CloudError):
    """cpi.json (or the multi-CPI context merged over it) is invalid."""


class VMNotFound(CloudError):
    bosh_type = "Bosh::Clouds::VMNotFound"


class NetworkNotFound(CloudError):
    bosh_type = "Bosh::Clouds::NetworkNotFound"


# The director reads ok_to_retry only for these four (its RetriableCloudError).
class NoDiskSpace(CloudError):
    bosh_type = "Bosh::Clouds::NoDiskSpace"


class DiskNotAttached(CloudError):
    bosh_type = "Bosh::Clouds::DiskNotAttached"


class DiskNotFound(CloudError):
    bosh_type = "Bosh::Clouds::DiskNotFound"


class VMCreationFailed(CloudError):
    bosh_type = "Bosh::Clouds::VMCreationFailed"
