"""The go-patch subset the ops-file tests rely on: optional keys and items, removal of
what is missing, appends."""

from __future__ import annotations

from typing import Any

import pytest

from tests.release.ops_files import OpError, apply_ops

MANIFEST = {"items": [{"name": "a", "v": 1}, {"name": "b"}], "map": {"k": 1}}


def test_replace_an_existing_item_and_key():
    ops = [
        {"type": "replace", "path": "/items/name=a/v", "value": 2},
        {"type": "replace", "path": "/map/k", "value": 3},
    ]
    patched = apply_ops(MANIFEST, ops)
    assert patched == {"items": [{"name": "a", "v": 2}, {"name": "b"}], "map": {"k": 3}}
    assert MANIFEST["map"] == {"k": 1}  # the input is not changed


def test_optional_paths_are_created_and_optionality_carries_to_the_right():
    ops: list[dict[str, Any]] = [
        {"type": "replace", "path": "/new?/nested/leaf", "value": 1},
        {"type": "replace", "path": "/items/name=c?/v", "value": 3},
        {"type": "replace", "path": "/list?/-", "value": "x"},
    ]
    patched = apply_ops(MANIFEST, ops)
    assert patched["new"] == {"nested": {"leaf": 1}}
    assert patched["items"][-1] == {"name": "c", "v": 3}
    assert patched["list"] == ["x"]


def test_removing_what_is_missing_is_a_no_op_only_when_optional():
    ops = [
        {"type": "remove", "path": "/items/name=zz?"},
        {"type": "remove", "path": "/nothing?/here"},
        {"type": "remove", "path": "/items/name=b"},
    ]
    assert apply_ops(MANIFEST, ops)["items"] == [{"name": "a", "v": 1}]
    with pytest.raises(OpError, match=r"operation \[0\]"):
        apply_ops(MANIFEST, [{"type": "remove", "path": "/items/name=zz"}])


def test_a_missing_key_without_question_mark_is_an_error():
    with pytest.raises(OpError, match="no key 'absent'"):
        apply_ops(MANIFEST, [{"type": "replace", "path": "/map/absent", "value": 1}])


def test_two_matching_items_are_an_error():
    manifest = {"items": [{"name": "a"}, {"name": "a"}]}
    with pytest.raises(OpError, match="found 2"):
        apply_ops(manifest, [{"type": "replace", "path": "/items/name=a/v", "value": 1}])
