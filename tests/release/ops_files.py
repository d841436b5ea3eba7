"""Apply BOSH ops files (go-patch `replace` and `remove`) to a manifest, for the tests of
operations/*.yml. Only the pointer forms our ops files and bosh-deployment's use: `/key`,
`/key?`, `/name=value`, `/name=value?` (a `?` makes that token and every one to its right
optional: created by replace, a no-op for remove when missing), `/-` (after the last
item) and `/<index>`."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any


class OpError(Exception):
    """The ops file does not apply to this manifest (the BOSH CLI would stop here too)."""


@dataclass(frozen=True)
class Token:
    text: str
    optional: bool

    @property
    def is_match(self) -> bool:
        return "=" in self.text

    @property
    def match(self) -> tuple[str, str]:
        key, _, value = self.text.partition("=")
        return key, value


def _tokens(path: str) -> list[Token]:
    if not path.startswith("/"):
        raise OpError(f"path '{path}' must start with /")
    tokens: list[Token] = []
    optional = False
    for raw in path[1:].split("/"):
        optional = optional or raw.endswith("?")
        text = raw.removesuffix("?").replace("~1", "/").replace("~0", "~")
        tokens.append(Token(text, optional))
    return tokens


def _matching_indexes(items: list[Any], token: Token) -> list[int]:
    key, value = token.match
    return [i for i, item in enumerate(items) if isinstance(item, dict) and item.get(key) == value]


def _child(node: Any, token: Token, create: bool, next_token: Token | None) -> Any:
    """The node under `token`, created (when allowed) for a replace."""
    if isinstance(node, dict) and not token.is_match:
        if token.text not in node:
            if not (create and token.optional):
                raise OpError(f"no key '{token.text}'")
            node[token.text] = [] if next_token and next_token.text == "-" else {}
        return node[token.text]
    if isinstance(node, list) and token.is_match:
        found = _matching_indexes(node, token)
        if not found and create and token.optional:
            key, value = token.match
            node.append({key: value})
            return node[-1]
        if len(found) != 1:
            raise OpError(f"expected one item matching '{token.text}', found {len(found)}")
        return node[found[0]]
    if isinstance(node, list) and token.text.lstrip("-").isdigit():
        return node[int(token.text)]
    raise OpError(f"'{token.text}' does not apply to a {type(node).__name__}")


def _replace(document: Any, tokens: list[Token], value: Any) -> None:
    node = document
    for position, token in enumerate(tokens[:-1]):
        node = _child(node, token, create=True, next_token=tokens[position + 1])
    last = tokens[-1]
    if isinstance(node, list) and last.text == "-":
        node.append(value)
    elif isinstance(node, list) and last.is_match:
        found = _matching_indexes(node, last)
        if not found and last.optional:
            node.append(value)
        elif len(found) == 1:
            node[found[0]] = value
        else:
            raise OpError(f"expected one item matching '{last.text}', found {len(found)}")
    elif isinstance(node, dict):
        if last.text not in node and not last.optional:
            raise OpError(f"no key '{last.text}'")
        node[last.text] = value
    else:
        raise OpError(f"cannot replace '{last.text}' in a {type(node).__name__}")


def _remove(document: Any, tokens: list[Token]) -> None:
    node = document
    for token in tokens[:-1]:
        try:
            node = _child(node, token, create=False, next_token=None)
        except OpError:
            if token.optional:
                return
            raise
    last = tokens[-1]
    if isinstance(node, dict) and not last.is_match:
        if last.text in node:
            del node[last.text]
        elif not last.optional:
            raise OpError(f"no key '{last.text}'")
    elif isinstance(node, list) and last.is_match:
        found = _matching_indexes(node, last)
        if len(found) == 1:
            del node[found[0]]
        elif found or not last.optional:
            raise OpError(f"expected one item matching '{last.text}', found {len(found)}")
    else:
        raise OpError(f"cannot remove '{last.text}' from a {type(node).__name__}")


def apply_ops(manifest: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """A patched copy of `manifest`; OpError names the first operation that does not apply."""
    document = copy.deepcopy(manifest)
    for number, op in enumerate(ops):
        try:
            tokens = _tokens(op["path"])
            if op["type"] == "replace":
                _replace(document, tokens, copy.deepcopy(op["value"]))
            elif op["type"] == "remove":
                _remove(document, tokens)
            else:
                raise OpError(f"unknown type '{op['type']}'")
        except OpError as error:
            raise OpError(f"operation [{number}] ({op['path']}): {error}") from None
    return document
