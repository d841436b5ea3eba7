"""operations/use-python-cpi.yml on a director manifest shaped like bosh-deployment's
bosh.yml + openstack/cpi.yml: the CPI job, the create-env CPI and the release are swapped
for ours, every property stays, and the properties render into a config our CPI loads."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from bosh_openstack_cpi import config
from bosh_openstack_cpi.config import CpiConfig, OpenStackConfig
from tests.release.job_templates import REPO, render_job
from tests.release.ops_files import OpError, apply_ops

OPS_FILE = REPO / "operations" / "use-python-cpi.yml"
RELEASE = "bosh-openstack-cpi-python"
REFERENCE_RELEASE = "bosh-openstack-cpi"
VARIABLES: dict[str, Any] = {
    "auth_url": "https://keystone.example.com:5000/v3",
    "openstack_username": "bosh",
    "openstack_password": "secret-password",
    "openstack_project": "bosh-project",
    "openstack_domain": "Default",
    "region": "RegionOne",
    "default_key_name": "bosh",
    "default_security_groups": ["bosh"],
    "internal_ip": "10.0.0.6",
    "nats_password": "nats-password",
    "mbus_bootstrap_password": "mbus-password",
}


def _openstack_properties() -> dict[str, Any]:
    """What openstack/cpi.yml sets for the director's CPI and for create-env's."""
    return {
        "auth_url": "((auth_url))",
        "username": "((openstack_username))",
        "api_key": "((openstack_password))",
        "project": "((openstack_project))",
        "domain": "((openstack_domain))",
        "region": "((region))",
        "default_key_name": "((default_key_name))",
        "default_security_groups": "((default_security_groups))",
        "human_readable_vm_names": True,
    }


def _director_manifest(reference_job: str) -> dict[str, Any]:
    """bosh.yml after openstack/cpi.yml, reduced to what the ops file touches or keeps."""
    cpi = {"name": reference_job, "release": REFERENCE_RELEASE}
    return {
        "releases": [
            {"name": "bosh", "version": "1", "url": "https://example.com/bosh.tgz", "sha1": "a"},
            {"name": REFERENCE_RELEASE, "version": "2", "url": "https://e.com/c.tgz", "sha1": "b"},
        ],
        "instance_groups": [
            {
                "name": "bosh",
                "jobs": [
                    {"name": "nats", "release": "bosh"},
                    {"name": "director", "release": "bosh"},
                    cpi,
                ],
                "properties": {
                    "agent": {"mbus": "nats://((internal_ip)):4222"},
                    "nats": {
                        "address": "((internal_ip))",
                        "user": "nats",
                        "password": "((nats_password))",
                    },
                    "director": {"name": "bosh", "cpi_job": reference_job},
                    "openstack": _openstack_properties(),
                },
            }
        ],
        "cloud_provider": {
            "template": dict(cpi),
            "properties": {
                "agent": {"mbus": "https://mbus:((mbus_bootstrap_password))@0.0.0.0:6868"},
                "openstack": _openstack_properties(),
            },
        },
    }


def _ops() -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = yaml.safe_load(OPS_FILE.read_text())
    return ops


def _interpolate(value: Any) -> Any:
    """Fill in ((variables)) as `bosh -v` does: a whole-string variable keeps its type."""
    if isinstance(value, dict):
        return {key: _interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item) for item in value]
    if isinstance(value, str):
        whole = re.fullmatch(r"\(\(([\w.]+)\)\)", value)
        if whole:
            return VARIABLES[whole.group(1)]
        return re.sub(r"\(\(([\w.]+)\)\)", lambda m: str(VARIABLES[m.group(1)]), value)
    return value


def _director_group(manifest: dict[str, Any]) -> dict[str, Any]:
    group: dict[str, Any] = manifest["instance_groups"][0]
    return group


REFERENCE_JOBS = ["openstack_cpi_golang", "openstack_cpi"]


@pytest.mark.parametrize("reference_job", REFERENCE_JOBS)
def test_the_cpi_job_is_swapped_in_the_director_and_in_create_env(reference_job: str):
    patched = apply_ops(_director_manifest(reference_job), _ops())
    ours = {"name": "openstack_cpi", "release": RELEASE}
    assert _director_group(patched)["jobs"] == [
        {"name": "nats", "release": "bosh"},
        {"name": "director", "release": "bosh"},
        ours,
    ]
    assert _director_group(patched)["properties"]["director"]["cpi_job"] == "openstack_cpi"
    assert patched["cloud_provider"]["template"] == ours


@pytest.mark.parametrize("reference_job", REFERENCE_JOBS)
def test_the_release_is_swapped_and_every_job_has_its_release(reference_job: str):
    patched = apply_ops(_director_manifest(reference_job), _ops())
    releases = {release["name"]: release for release in patched["releases"]}
    assert set(releases) == {"bosh", RELEASE}
    assert releases[RELEASE] == {
        "name": RELEASE,
        "version": "((python_cpi_release_version))",
        "url": "((python_cpi_release_url))",
        "sha1": "((python_cpi_release_sha1))",
    }
    used = {job["release"] for job in _director_group(patched)["jobs"]}
    assert used | {patched["cloud_provider"]["template"]["release"]} <= set(releases)


@pytest.mark.parametrize("reference_job", REFERENCE_JOBS)
def test_every_property_is_kept(reference_job: str):
    manifest = _director_manifest(reference_job)
    patched = apply_ops(manifest, _ops())
    kept = dict(_director_group(patched)["properties"])
    original = dict(_director_group(manifest)["properties"])
    assert kept.pop("director") == {**original.pop("director"), "cpi_job": "openstack_cpi"}
    assert kept == original
    assert patched["cloud_provider"]["properties"] == manifest["cloud_provider"]["properties"]


def test_a_manifest_without_a_director_group_is_refused():
    """The ops file needs bosh.yml's `bosh` instance group, as the reference cpi.yml does."""
    with pytest.raises(OpError, match="name=bosh"):
        apply_ops({"releases": [], "instance_groups": []}, _ops())


def _expected_openstack() -> OpenStackConfig:
    return OpenStackConfig(
        auth_url=VARIABLES["auth_url"],
        username="bosh",
        api_key="secret-password",
        project="bosh-project",
        user_domain_name="Default",
        project_domain_name="Default",
        region="RegionOne",
        default_key_name="bosh",
        default_security_groups=("bosh",),
        human_readable_vm_names=True,
    )


def test_the_directors_properties_render_into_a_config_our_cpi_loads():
    patched = apply_ops(_director_manifest("openstack_cpi_golang"), _ops())
    rendered = render_job(_interpolate(_director_group(patched)["properties"]))
    assert config.load(rendered.cpi_json, {}) == CpiConfig(
        openstack=_expected_openstack(), agent={"mbus": "nats://10.0.0.6:4222"}
    )


def test_create_envs_properties_render_into_a_config_our_cpi_loads():
    patched = apply_ops(_director_manifest("openstack_cpi_golang"), _ops())
    rendered = render_job(_interpolate(patched["cloud_provider"]["properties"]))
    assert config.load(rendered.cpi_json, {}) == CpiConfig(
        openstack=_expected_openstack(), agent={"mbus": "https://mbus:mbus-password@0.0.0.0:6868"}
    )


def test_the_ops_files_variables_are_the_documented_ones():
    named = set(re.findall(r"\(\(([\w.]+)\)\)", OPS_FILE.read_text()))
    assert named == {
        "python_cpi_release_url",
        "python_cpi_release_sha1",
        "python_cpi_release_version",
    }
    guide = (REPO / "docs" / "bosh-release.md").read_text()
    assert all(f"-v {variable}=" in guide for variable in named)
