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


# The reference job's properties and their defaults (cloudfoundry/bosh-openstack-cpi-release,
# jobs/openstack_cpi/spec, identical in jobs/openstack_cpi_golang/spec): a drop-in job must
# declare every one, with the same default, so that every manifest renders the same.
NO_DEFAULT = object()
REFERENCE_PROPERTIES: dict[str, object] = {
    **dict.fromkeys(
        [
            f"openstack.{name}"
            for name in [
                "auth_url",
                "username",
                "api_key",
                "application_credential_id",
                "application_credential_secret",
                "tenant",
                "project",
                "project_id",
                "domain",
                "user_domain_name",
                "project_domain_name",
                "region",
                "connection_options",
                "default_key_name",
                "default_security_groups",
                "default_volume_type",
                "config_drive",
                "enable_auto_anti_affinity",
            ]
        ],
        NO_DEFAULT,
    ),
    "openstack.endpoint_type": "publicURL",
    "openstack.state_timeout": 300,
    "openstack.wait_resource_poll_interval": 5,
    "openstack.boot_from_volume": False,
    "openstack.stemcell_public_visibility": False,
    "openstack.use_dhcp": True,
    "openstack.ignore_server_availability_zone": False,
    "openstack.human_readable_vm_names": False,
    "openstack.use_nova_networking": False,
    **dict.fromkeys(
        ["registry.host", "registry.username", "registry.password", "registry.endpoint"],
        NO_DEFAULT,
    ),
    "registry.port": 25777,
    **dict.fromkeys(
        ["ntp", "agent.mbus", "nats.user", "nats.password", "nats.address"], NO_DEFAULT
    ),
    "nats.port": 4222,
    **dict.fromkeys(["env.http_proxy", "env.https_proxy", "env.no_proxy"], NO_DEFAULT),
}


def test_every_property_of_the_reference_job_is_declared_with_its_default():
    assert len(REFERENCE_PROPERTIES) == 41
    declared = SPEC["properties"]
    missing = sorted(set(REFERENCE_PROPERTIES) - set(declared))
    assert missing == []
    defaults = {name: declared[name].get("default", NO_DEFAULT) for name in REFERENCE_PROPERTIES}
    assert defaults == REFERENCE_PROPERTIES
    # One property beyond the reference's, documented in docs/configuration.md.
    assert set(declared) - set(REFERENCE_PROPERTIES) == {"openstack.token_cache"}
