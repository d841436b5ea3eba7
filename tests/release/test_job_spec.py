"""The job's templates and spec agree: every property a template asks for is declared
(BOSH silently hands templates nil for an undeclared one), and every declared property is
used by a template, or listed here with the reason it is not."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.release.job_templates import JOB_DIR, render_attempt

SPEC = yaml.safe_load((JOB_DIR / "spec").read_text())
DECLARED = frozenset(SPEC["properties"])
UNUSED = {
    # Its default is always there, so it cannot say that a registry is meant (the other
    # registry properties make rendering fail: this CPI has no registry).
    "registry.port",
}
OPENSTACK = {
    "auth_url": "https://keystone.example.com:5000/v3",
    "username": "bosh",
    "api_key": "secret",
    "project": "bosh",
    "domain": "Default",
    "default_key_name": "bosh",
    "default_security_groups": ["bosh"],
    "connection_options": {"ca_cert": "pem"},
}
# Together these renders take every branch of the templates.
RENDERS: list[dict[str, Any]] = [
    {"openstack": OPENSTACK, "env": {"http_proxy": "h", "https_proxy": "s", "no_proxy": "n"}},
    {"openstack": OPENSTACK, "nats": {"user": "u", "password": "p", "address": "a"}},
    {"openstack": {**OPENSTACK, "enable_auto_anti_affinity": True}},
]
# A dotted name in quotes: how a template spells a property.
QUOTED_PROPERTY = re.compile(r"'([a-z_]+(?:\.[a-z_]+)+)'")


def _declared_or_inside_one(name: str) -> bool:
    """`openstack.connection_options.ca_cert` is a key inside a declared hash property."""
    return name in DECLARED or any(name.startswith(f"{parent}.") for parent in DECLARED)


def _looked_up() -> set[str]:
    names: set[str] = set()
    for properties in RENDERS:
        names.update(render_attempt(properties)["looked_up"])
    return names


def test_every_property_a_template_asks_for_is_declared():
    undeclared = {name for name in _looked_up() if not _declared_or_inside_one(name)}
    assert undeclared == set()


def test_every_property_spelled_in_a_template_is_declared():
    """Also covers branches no render above takes."""
    spelled = {
        name
        for template in (JOB_DIR / "templates").glob("*.erb")
        for name in QUOTED_PROPERTY.findall(template.read_text())
    }
    assert spelled, "the pattern must find the templates' property names"
    assert {name for name in spelled if not _declared_or_inside_one(name)} == set()


def test_every_declared_property_is_used_or_its_absence_explained():
    assert DECLARED - _looked_up() == UNUSED


def test_the_spec_lists_each_template_once_and_the_files_exist():
    templates = SPEC["templates"]
    assert sorted(path.name for path in (JOB_DIR / "templates").iterdir()) == sorted(templates)
    assert sorted(templates.values()) == ["bin/cpi", "config/cacert.pem", "config/cpi.json"]
