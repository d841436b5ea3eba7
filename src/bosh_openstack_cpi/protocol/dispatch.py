"""Method table and dispatch: which action module answers which CPI method,
what arguments it takes, and how every outcome becomes one response.

Action modules are imported only when their method is called, so `info` loads
neither `logging` nor keystoneauth.
"""

from __future__ import annotations

import importlib

from bosh_openstack_cpi.protocol import envelope
from bosh_openstack_cpi.protocol.errors import (
    CloudError,
    CpiError,
    InvalidRequest,
    MethodNotImplemented,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

# An argument: (name, accepted JSON types, required). "object?" also accepts null.
Arg = tuple[str, str, bool]
STR: str = "string"
INT: str = "integer"
OBJ: str = "object?"
ARR: str = "array?"
STR_OR_NULL: str = "string?"


def _args(*spec: tuple[str, str] | tuple[str, str, bool]) -> tuple[Arg, ...]:
    return tuple((s[0], s[1], s[2] if len(s) == 3 else True) for s in spec)


class Method:
    __slots__ = (
        "absent_when_malformed",
        "args",
        "function",
        "module",
        "needs_cloud",
        "unavailable",
    )

    def __init__(
        self,
        module: str | None,
        function: str,
        args: tuple[Arg, ...],
        *,
        needs_cloud: bool = True,
        unavailable: str = "",
        absent_when_malformed: bool = False,
    ) -> None:
        self.module = module
        self.function = function
        self.args = args
        self.needs_cloud = needs_cloud
        self.unavailable = unavailable
        # has_vm/has_disk: a malformed cid names nothing that can exist, so the answer is
        # false (sent without a request); every other method fails on it.
        self.absent_when_malformed = absent_when_malformed


_NOT_YET = "is not implemented by this CPI yet"
_NEVER = "is not supported by the OpenStack CPI"

METHODS: dict[str, Method] = {
    "info": Method("info", "info", (), needs_cloud=False),
    # stemcells
    "create_stemcell": Method(
        "stemcells",
        "create_stemcell",
        _args(("image_path", STR), ("cloud_properties", OBJ), ("env", OBJ, False)),
    ),
    "delete_stemcell": Method("stemcells", "delete_stemcell", _args(("stemcell_cid", STR))),
    # VMs
    "create_vm": Method(
        "vms",
        "create_vm",
        _args(
            ("agent_id", STR),
            ("stemcell_cid", STR),
            ("cloud_properties", OBJ),
            ("networks", OBJ),
            ("disk_cids", ARR, False),
            ("env", OBJ, False),
        ),
    ),
    "delete_vm": Method("vms", "delete_vm", _args(("vm_cid", STR))),
    "has_vm": Method("vms", "has_vm", _args(("vm_cid", STR)), absent_when_malformed=True),
    "reboot_vm": Method("vms", "reboot_vm", _args(("vm_cid", STR))),
    "set_vm_metadata": Method("vms", "set_vm_metadata", _args(("vm_cid", STR), ("metadata", OBJ))),
    "calculate_vm_cloud_properties": Method(
        "vms", "calculate_vm_cloud_properties", _args(("vm_resources", OBJ))
    ),
    # disks
    "create_disk": Method(
        "disks",
        "create_disk",
        _args(("size", INT), ("cloud_properties", OBJ), ("vm_cid", STR_OR_NULL, False)),
    ),
    "delete_disk": Method("disks", "delete_disk", _args(("disk_cid", STR))),
    "has_disk": Method("disks", "has_disk", _args(("disk_cid", STR)), absent_when_malformed=True),
    "attach_disk": Method("disks", "attach_disk", _args(("vm_cid", STR), ("disk_cid", STR))),
    "detach_disk": Method("disks", "detach_disk", _args(("vm_cid", STR), ("disk_cid", STR))),
    "get_disks": Method("disks", "get_disks", _args(("vm_cid", STR))),
    "set_disk_metadata": Method(
        "disks", "set_disk_metadata", _args(("disk_cid", STR), ("metadata", OBJ))
    ),
    "resize_disk": Method("disks", "resize_disk", _args(("disk_cid", STR), ("new_size", INT))),
    "update_disk": Method(
        "disks",
        "update_disk",
        _args(("disk_cid", STR), ("new_size", INT), ("cloud_properties", OBJ)),
    ),
    "snapshot_disk": Method(
        "snapshots", "snapshot_disk", _args(("disk_cid", STR), ("metadata", OBJ, False))
    ),
    "delete_snapshot": Method("snapshots", "delete_snapshot", _args(("snapshot_cid", STR))),
    # never part of the OpenStack CPI (the reference answers NotImplemented as well)
    "current_vm_id": Method(None, "current_vm_id", (), unavailable=_NEVER),
    "create_network": Method(
        None, "create_network", _args(("network_definition", OBJ)), unavailable=_NEVER
    ),
    "delete_network": Method(
        None, "delete_network", _args(("network_cid", STR)), unavailable=_NEVER
    ),
    "ping": Method(None, "ping", (), unavailable=_NEVER),
}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def check_arguments(name: str, method: Method, arguments: list[Any]) -> list[Any]:
    """Arity and JSON types, with null normalised to {} / [] where the director may send it."""
    required = sum(1 for _, _, is_required in method.args if is_required)
    signature = ", ".join(arg for arg, _, _ in method.args)
    if not required <= len(arguments) <= len(method.args):
        expected = (
            str(required) if required == len(method.args) else (f"{required} to {len(method.args)}")
        )
        raise InvalidRequest(
            f"'{name}' takes {expected} argument(s) ({signature}), got {len(arguments)}"
        )
    checked: list[Any] = []
    for position, (value, (arg, kind, _)) in enumerate(
        zip(arguments, method.args, strict=False), start=1
    ):
        actual = _json_type(value)
        base = kind.rstrip("?")
        if value is None and kind.endswith("?"):
            value = {} if base == "object" else ([] if base == "array" else None)
        elif actual != base:
            raise InvalidRequest(
                f"'{name}' argument {position} ({arg}) must be {_article(base)}, got {actual}"
            )
        checked.append(value)
    return checked


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def handle(raw: bytes, config_path: str, ca_cert_path: str | None, stderr: TextIO) -> bytes:
    """One request in, one encoded response out. Never raises (but on BaseExit)."""
    try:
        request = envelope.parse_request(raw)
    except CpiError as invalid:
        return envelope.encode(envelope.failure(invalid, ""))

    method = METHODS.get(request.method)
    if method is None:
        unknown = MethodNotImplemented(f"Method is not known, got: '{request.method}'")
        return envelope.encode(envelope.failure(unknown, ""))
    if not method.needs_cloud:
        return _run_local(request, method)
    return _run_with_cloud(request, method, config_path, ca_cert_path, stderr)


def _run_local(request: envelope.Request, method: Method) -> bytes:
    try:
        arguments = check_arguments(request.method, method, request.arguments)
        function = getattr(importlib.import_module(_module_path(method)), method.function)
        return envelope.encode(envelope.success(function(request, *arguments), ""))
    except CpiError as error:
        return envelope.encode(envelope.failure(error, ""))


def _malformed_cid(method: Method, arguments: list[Any]) -> CpiError | None:
    """The error for the first cid argument that is not a well-formed OpenStack id (the
    one place every method's cids are checked, before any request)."""
    from bosh_openstack_cpi import cids

    for (name, kind, _), value in zip(method.args, arguments, strict=False):
        if value is None and kind.endswith("?"):
            continue  # create_disk without a VM
        if name in cids.KINDS and not cids.is_valid(name, value):
            return cids.error_for(name, value)
        if name == "disk_cids":  # create_vm: the disks the VM will get
            for disk_cid in value:
                if not cids.is_valid(name, disk_cid):
                    return cids.error_for(name, disk_cid)
    return None


def _module_path(method: Method) -> str:
    return f"bosh_openstack_cpi.actions.{method.module}"


def _run_with_cloud(
    request: envelope.Request,
    method: Method,
    config_path: str,
    ca_cert_path: str | None,
    stderr: TextIO,
) -> bytes:
    from bosh_openstack_cpi.call import Call
    from bosh_openstack_cpi.protocol.logs import CallLog
    from bosh_openstack_cpi.protocol.redaction import redact, register_secrets_in

    # Agent settings in create_vm's env carry passwords and NATS keys; `mbus` holds the
    # agent's NATS certificate and its URLs, with credentials.
    register_secrets_in(
        request.arguments, frozenset({"password", "private_key", "certificate", "secret", "mbus"})
    )
    call_log = CallLog(request.request_id, stderr)
    import logging

    log = logging.getLogger("bosh_openstack_cpi")
    error: CpiError | None = None
    result: Any = None
    try:
        if method.unavailable:
            raise MethodNotImplemented(f"Method '{request.method}' {method.unavailable}")
        arguments = check_arguments(request.method, method, request.arguments)
        log.info("%s started (api_version %d)", request.method, request.api_version)
        malformed = _malformed_cid(method, arguments)
        if malformed is not None and method.absent_when_malformed:
            log.info("%s: %s", request.method, malformed.message)
            result = False
        elif malformed is not None:
            raise malformed
        else:
            function = getattr(importlib.import_module(_module_path(method)), method.function)
            with Call(request, config_path, ca_cert_path) as call:
                result = function(call, *arguments)
        log.info("%s finished", request.method)
    except CpiError as caught:
        error = caught
        log.error("%s failed: %s: %s", request.method, caught.bosh_type, caught.message)
    except KeyboardInterrupt:
        log.error("%s interrupted by a signal", request.method)
        error = CloudError(
            f"{request.method} was interrupted by a signal (SIGTERM or SIGINT) before it finished"
        )
    except Exception as caught:
        log.exception("%s failed unexpectedly", request.method)
        error = CloudError(
            f"{request.method} failed unexpectedly ({type(caught).__name__}: {caught}); "
            "the CPI log of this task has the details"
        )
    finally:
        call_log.close()
    # The log lines went to stderr only (protocol/logs.py says why).
    if error is not None:
        error.message = redact(error.message)
        return envelope.encode(envelope.failure(error, ""))
    return envelope.encode(envelope.success(result, ""))
