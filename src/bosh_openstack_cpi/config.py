"""The CPI configuration: the `cpi.json` the reference release renders.

    {"cloud": {"plugin": "openstack",
               "properties": {"openstack": {...}, "agent": {...}, "registry": {...}}}}

Every property of the reference job spec is accepted with its default. For
multi-CPI setups the director sends the cpi-config properties at the top level
of each request's `context`; they are merged (one level) over `openstack`.
Invalid values are all reported at once, each naming its key and what is expected.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bosh_openstack_cpi.protocol.errors import ConfigError
from bosh_openstack_cpi.protocol.redaction import register_secret

# Context keys that describe the request rather than the cloud.
REQUEST_CONTEXT_KEYS = frozenset({"director_uuid", "request_id", "vm"})

ENDPOINT_TYPES = {
    "publicURL": "public",
    "internalURL": "internal",
    "adminURL": "admin",
    "public": "public",
    "internal": "internal",
    "admin": "admin",
}

# Keys the reference job spec defines; anything else in `openstack` is logged and ignored.
KNOWN_OPENSTACK_KEYS = frozenset(
    {
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
        "endpoint_type",
        "state_timeout",
        "wait_resource_poll_interval",
        "boot_from_volume",
        "stemcell_public_visibility",
        "connection_options",
        "default_key_name",
        "default_security_groups",
        "default_volume_type",
        "config_drive",
        "use_dhcp",
        "ignore_server_availability_zone",
        "human_readable_vm_names",
        "use_nova_networking",
        "enable_auto_anti_affinity",
        "token_cache",
        "vm",
    }
)

# The excon options of the reference CPI this CPI reads; any other is ignored with a warning.
KNOWN_CONNECTION_OPTIONS = frozenset(
    {
        "ca_cert",
        "ssl_verify_peer",
        "ssl_verify_hostname",
        "ssl_ca_file",
        "ssl_ca_path",
        "client_cert",
        "client_key",
        "connect_timeout",
        "read_timeout",
        "write_timeout",
    }
)

DEFAULT_HTTP_TIMEOUT = 120.0

_AUTH_KEYS = (
    "username",
    "api_key",
    "application_credential_id",
    "application_credential_secret",
)


@dataclass(frozen=True)
class ConnectionOptions:
    ca_cert: str | None = None
    ssl_verify_peer: bool = True
    ssl_verify_hostname: bool = True
    # Paths on the machine the CPI runs on, as excon takes them.
    ssl_ca_file: str | None = None
    ssl_ca_path: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None
    write_timeout: float | None = None

    @property
    def http_timeout(self) -> float:
        """keystoneauth takes one timeout per request: the longest one configured."""
        given = [t for t in (self.connect_timeout, self.read_timeout, self.write_timeout) if t]
        return max(given) if given else DEFAULT_HTTP_TIMEOUT


@dataclass(frozen=True)
class OpenStackConfig:
    auth_url: str
    username: str | None = None
    api_key: str | None = field(default=None, repr=False)
    application_credential_id: str | None = None
    application_credential_secret: str | None = field(default=None, repr=False)
    project: str | None = None
    project_id: str | None = None
    user_domain_name: str | None = None
    project_domain_name: str | None = None
    region: str | None = None
    endpoint_type: str = "public"
    state_timeout: float = 300.0
    wait_resource_poll_interval: float = 5.0
    boot_from_volume: bool = False
    stemcell_public_visibility: bool = False
    connection: ConnectionOptions = field(default_factory=ConnectionOptions)
    default_key_name: str | None = None
    default_security_groups: tuple[str, ...] = ()
    default_volume_type: str | None = None
    config_drive: str | None = None
    use_dhcp: bool = True
    ignore_server_availability_zone: bool = False
    human_readable_vm_names: bool = False
    # Not in the reference CPI: reuse the Keystone token across calls (session_cache.py).
    token_cache: bool = True

    @property
    def uses_application_credential(self) -> bool:
        return self.application_credential_id is not None


@dataclass(frozen=True)
class CpiConfig:
    openstack: OpenStackConfig
    # Copied into the agent settings (mbus, ntp, blobstore, ...; agent_settings.py).
    agent: dict[str, Any]
    ignored_keys: tuple[str, ...] = ()
    # Values read leniently, as the reference reads them; each call logs them as warnings.
    warnings: tuple[str, ...] = ()


def read_config_file(path: str) -> dict[str, Any]:
    if not path:
        raise ConfigError(
            "No CPI config file given: the CPI runs as "
            "`bosh-openstack-cpi <cpi.json> [<cacert.pem>]`"
        )
    try:
        with open(path, "rb") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"CPI config file '{path}' does not exist") from None
    except OSError as error:
        raise ConfigError(f"CPI config file '{path}' cannot be read: {error.strerror}") from None
    except ValueError as error:
        raise ConfigError(f"CPI config file '{path}' is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"CPI config file '{path}' must hold a JSON object")
    return document


def load(document: dict[str, Any], context: dict[str, Any]) -> CpiConfig:
    """Validate the cpi.json document with the request context merged over `openstack`."""
    properties = _cloud_properties(document)
    openstack = properties.get("openstack")
    if not isinstance(openstack, dict):
        raise ConfigError("cpi.json: cloud.properties.openstack must be an object")
    merged = dict(openstack)
    merged.update((k, v) for k, v in context.items() if k not in REQUEST_CONTEXT_KEYS)
    _register_secrets(merged, properties)

    checker = _Checker()
    config = checker.openstack(merged)
    agent = properties.get("agent")
    if agent is None:
        agent = {}
    elif not isinstance(agent, dict):
        checker.fail("agent", "must be an object (mbus, ntp, blobstore, ...)", agent)
        agent = {}
    checker.raise_if_failed()
    if config is None:  # every path that leaves it None recorded a problem
        raise ConfigError("Invalid CPI configuration")
    ignored = tuple(sorted(k for k in merged if k not in KNOWN_OPENSTACK_KEYS))
    return CpiConfig(
        openstack=config, agent=agent, ignored_keys=ignored, warnings=tuple(checker.warnings)
    )


def _cloud_properties(document: dict[str, Any]) -> dict[str, Any]:
    cloud = document.get("cloud")
    if not isinstance(cloud, dict):
        raise ConfigError(
            'cpi.json must have the shape {"cloud": {"plugin": "openstack", '
            '"properties": {"openstack": {...}}}}: the "cloud" object is missing'
        )
    plugin = cloud.get("plugin", "openstack")
    if plugin != "openstack":
        raise ConfigError(f"cpi.json: cloud.plugin must be 'openstack', got {json.dumps(plugin)}")
    properties = cloud.get("properties")
    if not isinstance(properties, dict):
        raise ConfigError("cpi.json: cloud.properties must be an object")
    return properties


def _register_secrets(openstack: dict[str, Any], properties: dict[str, Any]) -> None:
    register_secret(openstack.get("api_key"))
    register_secret(openstack.get("application_credential_secret"))
    registry = properties.get("registry")
    if isinstance(registry, dict):
        register_secret(registry.get("password"))
    agent = properties.get("agent")
    if isinstance(agent, dict) and isinstance(agent.get("mbus"), str):
        with contextlib.suppress(ValueError):
            register_secret(urlsplit(agent["mbus"]).password)


def _blank(value: object) -> bool:
    """Unset: absent, null, or a string of nothing but white space."""
    return value is None or (isinstance(value, str) and not value.strip())


def _describe(value: object, reveal: bool = True) -> str:
    """What was given, by type; the value itself only where it cannot be a secret."""
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return json.dumps(value)
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return f"the number {value}" if reveal else "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _Checker:
    """Collects every problem so the operator can fix the config in one go."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def fail(
        self,
        key: str,
        expectation: str,
        value: object = None,
        *,
        show: bool = True,
        reveal: bool = True,
    ) -> None:
        got = f", got {_describe(value, reveal)}" if show else ""
        self.problems.append(f"{key} {expectation}{got}")

    def raise_if_failed(self) -> None:
        if self.problems:
            listing = "\n".join(f"  - {problem}" for problem in self.problems)
            raise ConfigError(
                f"Invalid CPI configuration (cpi.json or multi-CPI context):\n{listing}"
            )

    def string(self, section: dict[str, Any], key: str, prefix: str = "openstack") -> str | None:
        value = section.get(key)
        if value is None:
            return None
        if _blank(value):
            # The reference passed "" on; it names nothing, so it can only mean unset.
            self.warnings.append(f"{prefix}.{key} is an empty string: read as unset")
            return None
        if not isinstance(value, str):
            # string-valued keys include passwords: never echo their value
            self.fail(f"{prefix}.{key}", "must be a non-empty string", value, reveal=False)
            return None
        return value

    def boolean(
        self, section: dict[str, Any], key: str, default: bool, prefix: str = "openstack"
    ) -> bool:
        value = section.get(key)
        if value is None:
            return default
        if value in ("true", "false"):
            # A quoted boolean in a manifest: the reference let it through; read it as written.
            self.warnings.append(
                f"{prefix}.{key} is the string '{value}': read as the boolean {value}"
            )
            return bool(value == "true")
        if not isinstance(value, bool):
            self.fail(f"{prefix}.{key}", "must be true or false", value)
            return default
        return value

    def poll_interval(self, section: dict[str, Any]) -> float:
        """0 means the shortest pause (the reference slept 0 s between polls)."""
        from bosh_openstack_cpi.openstack.waiting import FIRST_INTERVAL

        if section.get("wait_resource_poll_interval") == 0:
            return FIRST_INTERVAL
        return self.seconds(section, "wait_resource_poll_interval", 5.0) or 5.0

    def seconds(
        self, section: dict[str, Any], key: str, default: float | None, prefix: str = "openstack"
    ) -> float | None:
        value = section.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.fail(f"{prefix}.{key}", "must be a positive number of seconds", value)
            return default
        return float(value)

    def openstack(self, section: dict[str, Any]) -> OpenStackConfig | None:
        self._removed_features(section)
        auth_url = self._auth_url(section)
        auth = self._auth(section)
        endpoint_type = self._endpoint_type(section)
        config_drive = section.get("config_drive")
        if config_drive is not None and config_drive not in ("cdrom", "disk"):
            self.fail(
                "openstack.config_drive", "must be 'cdrom' or 'disk' (or unset)", config_drive
            )
            config_drive = None
        state_timeout = self.seconds(section, "state_timeout", 300.0)
        poll_interval = self.poll_interval(section)
        connection = self._connection_options(section.get("connection_options"))
        if auth_url is None or auth is None:
            return None
        return OpenStackConfig(
            auth_url=auth_url,
            **auth,
            region=self.string(section, "region"),
            endpoint_type=endpoint_type,
            state_timeout=state_timeout or 300.0,
            wait_resource_poll_interval=poll_interval,
            boot_from_volume=self.boolean(section, "boot_from_volume", False),
            stemcell_public_visibility=self.boolean(section, "stemcell_public_visibility", False),
            connection=connection,
            default_key_name=self.string(section, "default_key_name"),
            default_security_groups=self._security_groups(section),
            default_volume_type=self.string(section, "default_volume_type"),
            config_drive=config_drive,
            use_dhcp=self.boolean(section, "use_dhcp", True),
            ignore_server_availability_zone=self.boolean(
                section, "ignore_server_availability_zone", False
            ),
            human_readable_vm_names=self.boolean(section, "human_readable_vm_names", False),
            token_cache=self.boolean(section, "token_cache", True),
        )

    def _removed_features(self, section: dict[str, Any]) -> None:
        if section.get("use_nova_networking") is True:
            self.fail(
                "openstack.use_nova_networking",
                "must be false: nova-network was removed from OpenStack (Nova dropped it in "
                "the Rocky release); this CPI always uses Neutron, remove the property",
                show=False,
            )
        if section.get("enable_auto_anti_affinity") is not None:
            self.fail(
                "openstack.enable_auto_anti_affinity",
                "is no longer supported: create a server group with the anti-affinity policy "
                "and set scheduler_hints: {group: <server-group-uuid>} on the VM type",
                show=False,
            )

    def _auth_url(self, section: dict[str, Any]) -> str | None:
        url = self.string(section, "auth_url")
        if url is None:
            if _blank(section.get("auth_url")):
                self.fail("openstack.auth_url", "is required: the Keystone v3 URL", show=False)
            return None
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            self.fail(
                "openstack.auth_url",
                "must be an http(s) URL such as https://keystone:5000/v3",
                show=False,
            )
            return None
        segments = [s for s in parts.path.split("/") if s]
        if any(s.startswith("v2") for s in segments):
            self.fail(
                "openstack.auth_url",
                f"points to Keystone v2 ('{url}'), which was removed from OpenStack (Queens): "
                "use the v3 endpoint, e.g. https://keystone:5000/v3",
                show=False,
            )
            return None
        # Keep everything up to the version segment; add /v3 when there is none.
        if "v3" in segments:
            segments = segments[: segments.index("v3") + 1]
        else:
            segments.append("v3")
        return urlunsplit((parts.scheme, parts.netloc, "/" + "/".join(segments), "", ""))

    def _endpoint_type(self, section: dict[str, Any]) -> str:
        value = section.get("endpoint_type")
        if value is None:
            return "public"
        if value not in ENDPOINT_TYPES:
            self.fail(
                "openstack.endpoint_type",
                "must be one of publicURL, internalURL, adminURL (or public, internal, admin)",
                value,
            )
            return "public"
        return ENDPOINT_TYPES[value]

    def _auth(self, section: dict[str, Any]) -> dict[str, Any] | None:
        username = self.string(section, "username")
        api_key = self.string(section, "api_key")
        credential_id = self.string(section, "application_credential_id")
        credential_secret = self.string(section, "application_credential_secret")
        given = {k for k in _AUTH_KEYS if not _blank(section.get(k))}
        password_given = bool(given & {"username", "api_key"})
        credential_given = bool(
            given & {"application_credential_id", "application_credential_secret"}
        )
        if password_given and credential_given:
            self.fail(
                "openstack",
                "must use either username + api_key or application_credential_id + "
                "application_credential_secret, not both",
                show=False,
            )
            return None
        if credential_given:
            if credential_id is None or credential_secret is None:
                for missing in ("application_credential_id", "application_credential_secret"):
                    if missing not in given:
                        self.fail(
                            f"openstack.{missing}",
                            "is required with application credentials",
                            show=False,
                        )
                return None
            return {
                "application_credential_id": credential_id,
                "application_credential_secret": credential_secret,
            }
        if username is None or api_key is None:
            if not password_given:
                self.fail(
                    "openstack",
                    "needs credentials: username + api_key, or application_credential_id + "
                    "application_credential_secret",
                    show=False,
                )
            for missing in ("username", "api_key"):
                if missing not in given:
                    self.fail(
                        f"openstack.{missing}",
                        "is required with password authentication",
                        show=False,
                    )
            return None
        return {"username": username, "api_key": api_key, **self._scope(section)}

    def _scope(self, section: dict[str, Any]) -> dict[str, Any]:
        project = self.string(section, "project")
        project_id = self.string(section, "project_id")
        domain = self.string(section, "domain")
        user_domain = self.string(section, "user_domain_name")
        project_domain = self.string(section, "project_domain_name")
        if project is None and project_id is None:
            if section.get("tenant") is not None:
                self.fail(
                    "openstack.tenant",
                    "is the Keystone v2 name of a project, and Keystone v2 was removed: "
                    "use openstack.project (or openstack.project_id)",
                    show=False,
                )
            else:
                self.fail("openstack.project", "(or openstack.project_id) is required", show=False)
        if (user_domain is None) != (project_domain is None) and domain is None:
            missing = "user_domain_name" if user_domain is None else "project_domain_name"
            self.fail(
                f"openstack.{missing}",
                "is required too: set both user_domain_name and project_domain_name, "
                "or openstack.domain for both",
                show=False,
            )
        elif user_domain is None and domain is None:
            self.fail(
                "openstack.domain",
                "(or user_domain_name + project_domain_name) is required for Keystone v3",
                show=False,
            )
        return {
            "project": project,
            "project_id": project_id,
            "user_domain_name": user_domain or domain,
            "project_domain_name": project_domain or domain,
        }

    def _security_groups(self, section: dict[str, Any]) -> tuple[str, ...]:
        value = section.get("default_security_groups")
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(g, str) and g for g in value):
            self.fail(
                "openstack.default_security_groups",
                "must be an array of security group names or UUIDs",
                value,
            )
            return ()
        return tuple(value)

    def _connection_options(self, value: object) -> ConnectionOptions:
        if value is None:
            return ConnectionOptions()
        if not isinstance(value, dict):
            self.fail("openstack.connection_options", "must be an object", value)
            return ConnectionOptions()
        prefix = "openstack.connection_options"
        ca_cert = value.get("ca_cert")
        if ca_cert is not None and (
            not isinstance(ca_cert, str) or "-----BEGIN CERTIFICATE-----" not in ca_cert
        ):
            if not _blank(ca_cert):
                self.fail(f"{prefix}.ca_cert", "must hold one or more PEM certificates", ca_cert)
            ca_cert = None
        ignored = sorted(k for k in value if k not in KNOWN_CONNECTION_OPTIONS)
        if ignored:
            self.warnings.append(
                f"Ignoring {prefix} this CPI does not read: {', '.join(ignored)} (read: "
                f"{', '.join(sorted(KNOWN_CONNECTION_OPTIONS))})"
            )
        client_cert = self.string(value, "client_cert", prefix)
        client_key = self.string(value, "client_key", prefix)
        if client_key is not None and client_cert is None:
            self.fail(
                f"{prefix}.client_key", "needs client_cert (the certificate file)", show=False
            )
        return ConnectionOptions(
            ca_cert=ca_cert or None,
            ssl_verify_peer=self.boolean(value, "ssl_verify_peer", True, prefix),
            ssl_verify_hostname=self.boolean(value, "ssl_verify_hostname", True, prefix),
            ssl_ca_file=self.string(value, "ssl_ca_file", prefix),
            ssl_ca_path=self.string(value, "ssl_ca_path", prefix),
            client_cert=client_cert,
            client_key=client_key,
            connect_timeout=self.seconds(value, "connect_timeout", None, prefix),
            read_timeout=self.seconds(value, "read_timeout", None, prefix),
            write_timeout=self.seconds(value, "write_timeout", None, prefix),
        )
