"""openstack/paths.py: ids enter URLs quoted as one segment; no empty list filter."""

import ast
import pathlib

import pytest

from bosh_openstack_cpi.openstack import paths

ADAPTERS = pathlib.Path(__file__).parents[3] / "src/bosh_openstack_cpi/openstack"


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("9f1c3a52-5d0e-4b8e-9a8c-2f4b6d7e8a10", "9f1c3a52-5d0e-4b8e-9a8c-2f4b6d7e8a10"),
        ("m1.small_x~y:z", "m1.small_x~y:z"),
        ("my flavor", "my%20flavor"),  # Nova's flavor ids may hold inner spaces
    ],
)
def test_an_id_stays_one_segment(value, quoted):
    assert paths.path("/flavors/{}/os-extra_specs", value) == f"/flavors/{quoted}/os-extra_specs"


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        ".",
        "..",
        " .. ",
        "a/b",
        "/a",
        "a?b",
        "a#b",
        "%2F",
        "%2e%2e",
        "a ",
        " a",
        "a\n",
        "é",
    ],
)
def test_an_id_that_a_client_or_server_would_resolve_is_refused(value):
    with pytest.raises(paths.UnsafeRequest):
        paths.path("/volumes/{}", value)


def test_the_template_takes_exactly_its_ids():
    with pytest.raises(ValueError, match="takes 2 ids"):
        paths.path("/servers/{}/os-volume_attachments/{}", "a")


@pytest.mark.parametrize("pairs", [(), (("device_id", ""),), (("name", "ok"), ("id", " "))])
def test_a_list_filter_without_a_value_is_refused(pairs):
    with pytest.raises(paths.UnsafeRequest):
        paths.filters(*pairs)


def _request_calls(tree):
    """Calls that send a request: `_send(method, url, ...)`, `_read(url, ...)`,
    `_get(url, ...)`, `_post_unless_sent(url, ...)`, and Cinder's `self._cinder.get(url)`."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name = node.func.attr
        if name == "_send" and len(node.args) >= 2:
            yield node, node.args[1]
        elif node.args and (
            name in {"_read", "_get", "_post_unless_sent"}
            or (name in {"get", "put", "request"} and _is_service(node.func.value))
        ):
            yield node, node.args[0]


def _is_service(node):
    """`self._nova`, `self._cinder`, ...: an adapter attribute, not a dict."""
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and node.attr in {"_nova", "_glance", "_neutron", "_cinder"}
    )


def _is_safe_url(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return "{" not in node.value
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "path"
        and isinstance(node.args[0], ast.Constant)
    )


def _is_safe_params(node):
    constant_dict = isinstance(node, ast.Dict) and all(
        isinstance(v, ast.Constant) for v in node.values
    )
    helper_parameter = isinstance(node, ast.Name) and node.id == "params"
    return constant_dict or helper_parameter or ast.unparse(node).startswith("paths.filters(")


@pytest.mark.parametrize("adapter", ["compute.py", "image.py", "network.py", "volume.py"])
def test_adapters_build_urls_and_filters_only_through_paths(adapter):
    """A new method cannot put an id into a URL or a filter by hand: every URL a request
    gets is a constant or paths.path(<constant>, ...), every params= goes through
    paths.filters (or is a constant dict)."""
    assert not _unsafe_requests((ADAPTERS / adapter).read_text())


def test_the_check_sees_an_id_put_into_a_url_by_hand():
    source = """
class Compute:
    def f(self, server_id, name):
        self._send("DELETE", f"/servers/{server_id}")
        self._read("/servers/" + server_id, "get")
        self._nova.get(f"/servers/{server_id}")
        self._get("/ports", "list", params={"device_id": server_id})
"""
    assert len(_unsafe_requests(source)) == 4


def _unsafe_requests(source):
    tree = ast.parse(source)
    unsafe = []
    for call, url in _request_calls(tree):
        if isinstance(url, ast.Name) and url.id in {"url", "path"}:
            continue  # the helpers' own parameter, checked at their call sites
        if not _is_safe_url(url):
            unsafe.append(f"line {call.lineno}: {ast.unparse(url)}")
        for keyword in call.keywords:
            if keyword.arg == "params" and not _is_safe_params(keyword.value):
                unsafe.append(f"line {call.lineno}: params={ast.unparse(keyword.value)}")
    return unsafe
