"""Request parsing and response building for the director's JSON envelope.

Request:  {"method": str, "arguments": [...], "context": {"director_uuid": str, ...},
           "api_version": int?}
Response: {"result": any, "error": null | {"type", "message", "ok_to_retry"}, "log": str}

Only `json` is imported here: `info` runs through this module and must start fast.
"""

from __future__ import annotations

import json

from bosh_openstack_cpi.protocol.errors import CpiError, InvalidRequest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The director's preferred and highest version is 3; v3 only adds a create_stemcell argument.
HIGHEST_API_VERSION = 3


class Request:
    __slots__ = ("api_version", "arguments", "context", "method")

    def __init__(
        self, method: str, arguments: list[Any], context: dict[str, Any], api_version: int
    ) -> None:
        self.method = method
        self.arguments = arguments
        self.context = context
        self.api_version = api_version

    @property
    def request_id(self) -> str:
        value = self.context.get("request_id")
        return value if isinstance(value, str) and value else "-"

    @property
    def stemcell_api_version(self) -> int:
        """`context.vm.stemcell.api_version`, 1 when the director does not say."""
        vm = self.context.get("vm")
        stemcell = vm.get("stemcell") if isinstance(vm, dict) else None
        version = stemcell.get("api_version") if isinstance(stemcell, dict) else None
        if isinstance(version, int) and not isinstance(version, bool):
            return version
        return 1


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def parse_request(raw: bytes) -> Request:
    """Validate the envelope; argument types are checked per method by the dispatcher."""
    if not raw.strip():
        raise InvalidRequest("Request is empty: expected one JSON object on stdin")
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise InvalidRequest(f"Request is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidRequest(f"Request must be a JSON object, got {_type_name(document)}")

    method = document.get("method")
    if not isinstance(method, str) or not method:
        raise InvalidRequest(
            f"Request 'method' must be a non-empty string, got {_type_name(method)}"
        )
    arguments = document.get("arguments", [])
    if not isinstance(arguments, list):
        raise InvalidRequest(f"Request 'arguments' must be an array, got {_type_name(arguments)}")
    context = document.get("context")
    if not isinstance(context, dict):
        raise InvalidRequest(f"Request 'context' must be an object, got {_type_name(context)}")
    director_uuid = context.get("director_uuid")
    if not isinstance(director_uuid, str):
        raise InvalidRequest(
            f"Request 'context.director_uuid' must be a string, got {_type_name(director_uuid)}"
        )
    api_version = document.get("api_version", 1)
    if api_version is None:
        api_version = 1
    if not isinstance(api_version, int) or isinstance(api_version, bool) or api_version < 1:
        raise InvalidRequest(
            f"Request 'api_version' must be a positive integer, got {json.dumps(api_version)}"
        )
    return Request(method, arguments, context, min(api_version, HIGHEST_API_VERSION))


def success(result: Any, log: str) -> dict[str, Any]:
    return {"result": result, "error": None, "log": log}


def failure(error: CpiError, log: str) -> dict[str, Any]:
    return {
        "result": None,
        "error": {
            "type": error.bosh_type,
            "message": error.message,
            "ok_to_retry": bool(error.ok_to_retry),
        },
        "log": log,
    }


def encode(response: dict[str, Any]) -> bytes:
    # ensure_ascii keeps the output valid whatever bytes a message carries
    return json.dumps(response, ensure_ascii=True, default=str).encode("ascii")
