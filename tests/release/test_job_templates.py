"""The openstack_cpi job's config/cpi.json and config/cacert.pem, rendered as BOSH renders
them, then read by the CPI's own config loader: each manifest must mean to this CPI what
it means to the reference CPI, and what this CPI refuses must fail at render time."""

from __future__ import annotations

from typing import Any

import pytest

from bosh_openstack_cpi import config
from bosh_openstack_cpi.call import Call
from bosh_openstack_cpi.config import ConnectionOptions, CpiConfig, OpenStackConfig
from bosh_openstack_cpi.protocol.envelope import Request
from bosh_openstack_cpi.protocol.errors import ConfigError
from tests.release.job_templates import RenderedJob, TemplateError, render_job

AUTH_URL = "https://keystone.example.com:5000/v3"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"

# The spec's required properties (no default): nothing renders without them.
REQUIRED = {
    "auth_url": AUTH_URL,
    "default_key_name": "bosh",
    "default_security_groups": ["bosh"],
}

# What bosh-deployment's openstack/cpi.yml sets (Keystone v3, one domain).
BOSH_DEPLOYMENT = {
    **REQUIRED,
    "username": "bosh",
    "api_key": "secret-password",
    "project": "bosh-project",
    "domain": "Default",
    "region": "RegionOne",
    "human_readable_vm_names": True,
}


def _properties(openstack: dict[str, Any], **others: Any) -> dict[str, Any]:
    return {"openstack": openstack, **others}


def _loaded(rendered: RenderedJob) -> CpiConfig:
    return config.load(rendered.cpi_json, {})


def _loader_problems(openstack: dict[str, Any]) -> list[str]:
    """The config loader's problems for a cpi.json whose `openstack` is this."""
    document = {"cloud": {"plugin": "openstack", "properties": {"openstack": openstack}}}
    with pytest.raises(ConfigError) as raised:
        config.load(document, {})
    return [line.removeprefix("  - ") for line in raised.value.message.splitlines()[1:]]


def _render_error(properties: dict[str, Any]) -> TemplateError:
    with pytest.raises(TemplateError) as raised:
        render_job(properties)
    return raised.value


def test_bosh_deployment_properties_mean_keystone_v3_with_one_domain():
    rendered = render_job(_properties(BOSH_DEPLOYMENT))
    assert _loaded(rendered) == CpiConfig(
        openstack=OpenStackConfig(
            auth_url=AUTH_URL,
            username="bosh",
            api_key="secret-password",
            project="bosh-project",
            user_domain_name="Default",
            project_domain_name="Default",
            region="RegionOne",
            default_key_name="bosh",
            default_security_groups=("bosh",),
            human_readable_vm_names=True,
        ),
        agent={},
    )
    assert rendered.files["config/cacert.pem"] == ""


def test_user_and_project_domains_with_a_project_id():
    openstack = {
        **REQUIRED,
        "username": "bosh",
        "api_key": "secret-password",
        "project_id": "0123456789abcdef0123456789abcdef",
        "user_domain_name": "users",
        "project_domain_name": "projects",
    }
    assert _loaded(render_job(_properties(openstack))).openstack == OpenStackConfig(
        auth_url=AUTH_URL,
        username="bosh",
        api_key="secret-password",
        project_id="0123456789abcdef0123456789abcdef",
        user_domain_name="users",
        project_domain_name="projects",
        default_key_name="bosh",
        default_security_groups=("bosh",),
    )


def test_application_credentials_need_no_user_project_or_domain():
    openstack = {
        **REQUIRED,
        "application_credential_id": "credential-id",
        "application_credential_secret": "credential-secret",
    }
    assert _loaded(render_job(_properties(openstack))).openstack == OpenStackConfig(
        auth_url=AUTH_URL,
        application_credential_id="credential-id",
        application_credential_secret="credential-secret",
        default_key_name="bosh",
        default_security_groups=("bosh",),
    )


def test_every_optional_property():
    openstack = {
        **BOSH_DEPLOYMENT,
        "auth_url": "https://keystone.example.com:5000/v3/",
        "tenant": "ignored-next-to-a-project",
        "endpoint_type": "internalURL",
        "state_timeout": 600,
        "boot_from_volume": True,
        "stemcell_public_visibility": True,
        "connection_options": {"ssl_verify_peer": False, "connect_timeout": 10},
        "default_security_groups": ["bosh", "ssh"],
        "default_volume_type": "ssd",
        "wait_resource_poll_interval": 2,
        "config_drive": "cdrom",
        "use_dhcp": False,
        "ignore_server_availability_zone": True,
        "human_readable_vm_names": False,
        "use_nova_networking": False,
        "token_cache": False,
    }
    properties = _properties(
        openstack,
        ntp=["0.pool.ntp.org", "1.pool.ntp.org"],
        agent={"mbus": "nats://nats:nats-password@10.0.0.6:4222"},
        env={"http_proxy": "http://proxy:3128"},
    )
    assert _loaded(render_job(properties)) == CpiConfig(
        openstack=OpenStackConfig(
            auth_url=AUTH_URL,
            username="bosh",
            api_key="secret-password",
            project="bosh-project",
            user_domain_name="Default",
            project_domain_name="Default",
            region="RegionOne",
            endpoint_type="internal",
            state_timeout=600.0,
            wait_resource_poll_interval=2.0,
            boot_from_volume=True,
            stemcell_public_visibility=True,
            connection=ConnectionOptions(ssl_verify_peer=False, connect_timeout=10.0),
            default_key_name="bosh",
            default_security_groups=("bosh", "ssh"),
            default_volume_type="ssd",
            config_drive="cdrom",
            use_dhcp=False,
            ignore_server_availability_zone=True,
            token_cache=False,
        ),
        agent={
            "ntp": ["0.pool.ntp.org", "1.pool.ntp.org"],
            "mbus": "nats://nats:nats-password@10.0.0.6:4222",
        },
    )


def test_only_the_required_properties_render_the_spec_defaults():
    rendered = render_job(_properties(REQUIRED))
    assert rendered.cpi_json == {
        "cloud": {
            "plugin": "openstack",
            "properties": {
                "openstack": {
                    **REQUIRED,
                    "endpoint_type": "publicURL",
                    "state_timeout": 300,
                    "wait_resource_poll_interval": 5,
                    "boot_from_volume": False,
                    "stemcell_public_visibility": False,
                    "use_dhcp": True,
                    "ignore_server_availability_zone": False,
                    "human_readable_vm_names": False,
                    "use_nova_networking": False,
                    "token_cache": True,
                }
            },
        }
    }
    # Credentials are checked by the CPI at run time, as the reference CPI does.
    with pytest.raises(ConfigError, match="openstack needs credentials"):
        _loaded(rendered)


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_a_missing_required_property_fails_rendering_and_names_it(missing: str):
    openstack = {key: value for key, value in BOSH_DEPLOYMENT.items() if key != missing}
    error = _render_error(_properties(openstack))
    assert error.template == "cpi.json.erb"
    assert f"'openstack.{missing}'" in error.message


def test_the_ca_certificate_goes_to_cacert_pem_which_the_cpi_trusts(tmp_path):
    openstack = {**BOSH_DEPLOYMENT, "connection_options": {"ca_cert": CA_PEM, "read_timeout": 9}}
    rendered = render_job(_properties(openstack))
    assert rendered.files["config/cacert.pem"] == CA_PEM
    assert (
        "ca_cert" not in rendered.cpi_json["cloud"]["properties"]["openstack"]["connection_options"]
    )
    assert _loaded(rendered).openstack.connection == ConnectionOptions(read_timeout=9.0)

    rendered.install(tmp_path)
    job_config = tmp_path / "openstack_cpi" / "config"
    request = Request("has_vm", ["vm"], {"director_uuid": "d"}, 2)
    with Call(request, str(job_config / "cpi.json"), str(job_config / "cacert.pem")) as call:
        assert call._ca_file() == str(job_config / "cacert.pem")


def test_agent_mbus_is_built_from_the_nats_properties_when_unset():
    nats = {"user": "nats", "password": "nats-password", "address": "10.0.0.6"}
    agent = _loaded(render_job(_properties(BOSH_DEPLOYMENT, nats=nats))).agent
    assert agent == {"mbus": "nats://nats:nats-password@10.0.0.6:4222"}


def test_agent_mbus_wins_over_the_nats_properties():
    properties = _properties(
        BOSH_DEPLOYMENT,
        agent={"mbus": "https://mbus:mbus-password@0.0.0.0:6868"},
        nats={"user": "nats", "password": "nats-password", "address": "10.0.0.6", "port": 4333},
    )
    assert _loaded(render_job(properties)).agent == {
        "mbus": "https://mbus:mbus-password@0.0.0.0:6868"
    }


def test_a_nats_address_without_its_user_fails_rendering_as_in_the_reference():
    error = _render_error(_properties(BOSH_DEPLOYMENT, nats={"address": "10.0.0.6"}))
    assert "'nats.user'" in error.message


REFUSED = {
    "a Keystone v2 auth_url": {"auth_url": "https://keystone.example.com:5000/v2.0"},
    "a tenant without a project": {"tenant": "bosh-project", "project": None},
    "nova-network": {"use_nova_networking": True},
    "auto anti-affinity": {"enable_auto_anti_affinity": True},
    "auto anti-affinity, even false": {"enable_auto_anti_affinity": False},
}


@pytest.mark.parametrize("change", REFUSED.values(), ids=REFUSED.keys())
def test_what_the_cpi_refuses_fails_rendering_with_the_loaders_words(change: dict[str, Any]):
    openstack = {
        key: value for key, value in {**BOSH_DEPLOYMENT, **change}.items() if value is not None
    }
    error = _render_error(_properties(openstack))
    assert error.template == "cpi.json.erb"
    assert [error.message] == _loader_problems(openstack)


@pytest.mark.parametrize("setting", ["host", "username", "password", "endpoint"])
def test_any_registry_property_fails_rendering(setting: str):
    """The loader ignores a `registry` section (reference-rendered cpi.json files carry one);
    a manifest that sets one expects a registry this CPI never uses, so it fails early."""
    error = _render_error(_properties(BOSH_DEPLOYMENT, registry={setting: "value"}))
    assert error.message.startswith(f"registry.{setting}: this CPI uses no registry")


def test_a_registry_port_alone_is_no_registry_as_in_the_reference():
    """registry.port always has a value (its default), so it cannot mean a registry."""
    rendered = render_job(_properties(BOSH_DEPLOYMENT, registry={"port": 6901}))
    assert "registry" not in rendered.cpi_json["cloud"]["properties"]
