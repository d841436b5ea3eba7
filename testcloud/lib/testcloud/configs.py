"""Configuration files of every service, written into $STATE/etc on each `up`.

Only files whose content changed are rewritten. The paste pipelines and cinder's
resource_filters.json are not part of this repository: `cloud up` unpacks them from
Debian's nova/glance/cinder/neutron-common packages into $STATE/debian/root first.
"""

import json
import os
import subprocess

from . import settings as S


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(path) as f:
            if f.read() == text:
                if os.stat(path).st_mode & 0o777 != mode:
                    os.chmod(path, mode)
                return False
    except FileNotFoundError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def etc(*parts):
    return os.path.join(S.ETC, *parts)


def _keystone_client(user):
    """keystoneauth options for a service account (also used by [keystone_authtoken])."""
    return "\n".join(
        [
            "auth_url = %s" % S.KEYSTONE_URL,
            "auth_type = password",
            "user_domain_name = Default",
            "project_domain_name = Default",
            "project_name = service",
            "username = %s" % user,
            "password = %s" % S.SERVICE_PASSWORD,
            "region_name = %s" % S.REGION,
        ]
    )


def _authtoken(user):
    return "\n".join(
        [
            "[keystone_authtoken]",
            "www_authenticate_uri = %s" % S.KEYSTONE_URL,
            _keystone_client(user),
            "service_token_roles_required = true",
        ]
    )


def _common(log_name=None):
    """[DEFAULT] lines every oslo service gets.

    No log_dir: the *-manage commands share these files and, without a log_file of
    their own, would invent one from their program name. Services that share a
    config file (nova, cinder) get --log-file on their command line instead.
    """
    lines = [
        # a test cloud has nothing to drain on stop; do not wait the default 60 s
        "graceful_shutdown_timeout = 5",
    ]
    if log_name:
        lines += ["log_file = %s" % os.path.join(S.LOGS, log_name + ".log"), "use_stderr = false"]
    return "\n".join(lines)


def mariadb():
    return """\
[mysqld]
datadir = {state}/mysql
socket = {run}/mysqld.sock
pid-file = {run}/mysqld.pid
bind-address = {ip}
port = {port}
user = root
log-error = {logs}/mariadb.err
skip-name-resolve
performance_schema = OFF
max_connections = 1000
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
skip-log-bin
innodb_buffer_pool_size = 128M
innodb_log_file_size = 64M
# test data only: trade durability for speed (schema syncs are 3-4x faster)
innodb_flush_log_at_trx_commit = 0
innodb_doublewrite = 0
sync_binlog = 0
""".format(state=S.STATE, run=S.RUN, ip=S.IP, port=S.PORT["mariadb"], logs=S.LOGS)


def rabbitmq():
    return """\
listeners.tcp.default = {ip}:{port}
loopback_users.guest = true
vm_memory_high_watermark.absolute = 512MiB
disk_free_limit.absolute = 50MB
""".format(ip=S.IP, port=S.PORT["rabbitmq"])


def keystone():
    return """\
[DEFAULT]
{common}
[database]
connection = {db}/keystone
[token]
provider = fernet
[fernet_tokens]
key_repository = {state}/keystone/fernet-keys
[fernet_receipts]
key_repository = {state}/keystone/fernet-keys
[credential]
key_repository = {state}/keystone/credential-keys
[cache]
# Without a cache every token validation costs ~300 SQL queries (~0.4 s).
# An in-process cache is right for a single uwsgi worker.
enabled = true
backend = dogpile.cache.memory
""".format(common=_common("keystone"), db=S.DB_URL, state=S.STATE)


def placement():
    return """\
[DEFAULT]
{common}
[placement_database]
connection = {db}/placement
[api]
auth_strategy = keystone
{authtoken}
""".format(common=_common("placement"), db=S.DB_URL, authtoken=_authtoken("placement"))


def glance():
    return """\
[DEFAULT]
{common}
bind_host = {ip}
bind_port = {port}
workers = 1
enabled_backends = file:file
show_image_direct_url = false
[database]
connection = {db}/glance
[glance_store]
default_backend = file
[file]
filesystem_store_datadir = {state}/glance/images/
[os_glance_staging_store]
filesystem_store_datadir = {state}/glance/staging/
[os_glance_tasks_store]
filesystem_store_datadir = {state}/glance/tasks/
{authtoken}
[paste_deploy]
flavor = keystone
config_file = {paste}
[oslo_concurrency]
lock_path = {state}/oslo-locks
""".format(
        common=_common("glance-api"),
        ip=S.IP,
        port=S.PORT["glance"],
        db=S.DB_URL,
        state=S.STATE,
        authtoken=_authtoken("glance"),
        paste=etc("glance", "api-paste.ini"),
    )


def neutron():
    return """\
[DEFAULT]
{common}
bind_host = {ip}
bind_port = {port}
api_workers = 1
rpc_workers = 1
rpc_state_report_workers = 0
state_path = {state}/neutron
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
transport_url = {rabbit}
allow_overlapping_ips = true
notify_nova_on_port_status_changes = true
notify_nova_on_port_data_changes = true
# no DHCP agent runs (and none is needed: see bosh_testcloud.neutron_ml2)
dhcp_agent_notification = false
api_paste_config = {paste}
[database]
connection = {db}/neutron
{authtoken}
[nova]
{nova_client}
endpoint_type = public
[oslo_concurrency]
lock_path = {state}/oslo-locks
[ml2]
type_drivers = flat,vlan,vxlan,local
tenant_network_types = vxlan
# bosh_testcloud.neutron_ml2.BindAllDriver: binds every port, no agent needed
mechanism_drivers = bosh_testcloud_bindall
extension_drivers = port_security
[ml2_type_flat]
flat_networks = public
[ml2_type_vlan]
network_vlan_ranges = physnet1:100:199
[ml2_type_vxlan]
vni_ranges = 1:1000
[securitygroup]
enable_security_group = true
[agent]
report_interval = 0
""".format(
        common=_common("neutron-server"),
        ip=S.IP,
        port=S.PORT["neutron"],
        state=S.STATE,
        rabbit=S.RABBIT_URL,
        paste=etc("neutron", "api-paste.ini"),
        db=S.DB_URL,
        authtoken=_authtoken("neutron"),
        nova_client=_keystone_client("nova"),
    )


def nova(with_db=True):
    """nova.conf; nova-compute gets it without database access (with_db=False):
    computes go through the conductor, and with [api_database] set they try direct
    cell queries that nova then refuses ("No DB access allowed in nova-compute")."""
    # No "[notifications] notify_on_state_change =" line: an empty value is fatal.
    text = """\
[DEFAULT]
{common}
host = tc-controller
my_ip = {ip}
state_path = {state}/nova
instances_path = {state}/nova/instances
transport_url = {rabbit}
compute_driver = fake.FakeDriver
enabled_apis = osapi_compute
osapi_compute_listen = {ip}
osapi_compute_listen_port = {port}
osapi_compute_workers = 1
metadata_listen = {ip}
metadata_workers = 1
vif_plugging_is_fatal = false
vif_plugging_timeout = 0
heal_instance_info_cache_interval = -1
instance_usage_audit = false
allow_resize_to_same_host = true
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = {paste}
{db_sections}{authtoken}
[placement]
{placement_client}
valid_interfaces = public
[neutron]
{neutron_client}
valid_interfaces = public
[glance]
valid_interfaces = public
[cinder]
{cinder_client}
os_region_name = {region}
catalog_info = volumev3::publicURL
[service_user]
send_service_user_token = true
{nova_client}
[conductor]
workers = 1
[scheduler]
workers = 1
# (discover_hosts_in_cells_interval does not work here: nova reads it when the
# scheduler module is imported, before the config is parsed. `up` maps new compute
# hosts itself with nova-manage cell_v2 discover_hosts.)
[filter_scheduler]
track_instance_changes = false
# Nova's default list minus ImagePropertiesFilter: the fake driver reports
# hypervisor_type=fake, and stemcell images say hypervisor_type=kvm.
enabled_filters = {filters}
[oslo_concurrency]
lock_path = {state}/oslo-locks
[vnc]
enabled = false
[oslo_messaging_notifications]
driver = noop
""".format(
        common=_common(),
        ip=S.IP,
        port=S.PORT["nova"],
        state=S.STATE,
        filters=",".join(
            f
            for f in (
                "AvailabilityZoneFilter",
                "ComputeFilter",
                "ComputeCapabilitiesFilter",
                "ServerGroupAntiAffinityFilter",
                "ServerGroupAffinityFilter",
            )
            if f not in S.RELEASE.nova_filters_removed
        ),
        rabbit=S.RABBIT_URL,
        paste=etc("nova", "api-paste.ini"),
        db_sections=(
            "[api_database]\nconnection = {db}/nova_api\n[database]\nconnection = {db}/nova\n"
        ).format(db=S.DB_URL)
        if with_db
        else "",
        authtoken=_authtoken("nova"),
        region=S.REGION,
        placement_client=_keystone_client("placement"),
        neutron_client=_keystone_client("neutron"),
        cinder_client=_keystone_client("cinder"),
        nova_client=_keystone_client("nova"),
    )
    return text


def nova_api_log():
    return "[DEFAULT]\nlog_file = %s\nuse_stderr = false\n" % os.path.join(S.LOGS, "nova-api.log")


def nova_compute(host):
    text = "[DEFAULT]\nhost = %s\n" % host
    if S.RELEASE.from_pypi:
        # Since 2023.1 a compute keeps its node identity in <state_path>/compute_id and
        # refuses to restart without it. FakeDriver never writes one (fake nodes); its
        # single-node variant does, like a real driver. One state_path per host: the
        # three computes must not share one identity.
        text += "compute_driver = fake.FakeDriverWithoutFakeNodes\nstate_path = %s\n" % (
            S.path("nova", host)
        )
    return text


def cinder():
    backends = ["fake-%s" % az for az in S.AVAILABILITY_ZONES]
    text = """\
[DEFAULT]
{common}
host = {host}
my_ip = {ip}
state_path = {state}/cinder
transport_url = {rabbit}
auth_strategy = keystone
api_paste_config = {paste}
osapi_volume_listen = {ip}
osapi_volume_listen_port = {port}
osapi_volume_workers = 1
enabled_backends = {backends}
storage_availability_zone = {az}
default_availability_zone = {az}
glance_catalog_info = image:glance:publicURL
resource_query_filters_file = {filters}
[database]
connection = {db}/cinder
{authtoken}
[nova]
{nova_client}
interface = public
[service_user]
send_service_user_token = true
{cinder_client}
[oslo_concurrency]
lock_path = {state}/oslo-locks
[oslo_messaging_notifications]
driver = noop
""".format(
        common=_common(),
        host=S.CINDER_HOST,
        ip=S.IP,
        state=S.STATE,
        rabbit=S.RABBIT_URL,
        paste=etc("cinder", "api-paste.ini"),
        port=S.PORT["cinder"],
        backends=",".join(backends),
        az=S.AVAILABILITY_ZONES[0],
        filters=etc("cinder", "resource_filters.json"),
        db=S.DB_URL,
        authtoken=_authtoken("cinder"),
        nova_client=_keystone_client("nova"),
        cinder_client=_keystone_client("cinder"),
    )
    if S.RELEASE.from_pypi:
        # Newer cinder inspects an image's format (qemu-img, in its privsep daemon)
        # before any driver sees a volume-from-image. The daemon is started with sudo by
        # default; here, already root, it is the venv's own privsep-helper.
        text += "[cinder_sys_admin]\nhelper_command = %s --config-file %s\n" % (
            os.path.join(S.RELEASE.venv(), "bin", "privsep-helper"),
            etc("cinder", "cinder.conf"),
        )
    for az in S.AVAILABILITY_ZONES:
        text += """\
[fake-{az}]
# bosh_testcloud.cinder_fake: cinder's fake driver plus extend and image copies
volume_driver = bosh_testcloud.cinder_fake.TestCloudFakeDriver
volume_backend_name = {vt}
backend_availability_zone = {az}
""".format(az=az, vt=S.VOLUME_TYPE)
    return text


def octavia():
    """octavia.conf for octavia-api, octavia-worker and octavia-db-manage.

    The amphora provider (Octavia's v2 flows, run in the worker without a jobboard)
    with no-op compute, network, amphora and image drivers: every load balancer,
    listener, pool, member and health monitor goes through the real flows and
    provisioning states, but no VM boots and Neutron is never asked for ports. The
    health manager and housekeeping do not run: nothing sends heartbeats, and the
    health manager would fail over amphorae that stay silent.
    """
    return """\
[DEFAULT]
{common}
host = tc-controller
transport_url = {rabbit}
[api_settings]
bind_host = {ip}
bind_port = {port}
auth_strategy = keystone
default_provider_driver = amphora
enabled_provider_drivers = amphora:Octavia amphora provider (no-op compute/network/amphora)
[database]
connection = {db}/octavia
{authtoken}
[service_auth]
{octavia_client}
[controller_worker]
workers = 1
compute_driver = compute_noop_driver
network_driver = network_noop_driver
amphora_driver = amphora_noop_driver
image_driver = image_noop_driver
volume_driver = volume_noop_driver
loadbalancer_topology = SINGLE
amp_image_tag = amphora
amp_flavor_id = amphora-noop
amp_boot_network_list = noop-lb-mgmt-net
client_ca = {ca}
[task_flow]
jobboard_enabled = false
[certificates]
# amphora certificates are still generated (and signed by this CA) by the flows
cert_generator = local_cert_generator
ca_certificate = {ca}
ca_private_key = {ca_key}
server_certs_key_passphrase = testcloud-octavia-amphora-key-32
[health_manager]
# rendered into the (never booted) amphora's agent config only
controller_ip_port_list = {ip}:5555
heartbeat_key = testcloud
[oslo_messaging_notifications]
driver = noop
[oslo_concurrency]
lock_path = {state}/oslo-locks
[quotas]
default_load_balancer_quota = -1
default_listener_quota = -1
default_member_quota = -1
default_pool_quota = -1
default_health_monitor_quota = -1
default_l7policy_quota = -1
default_l7rule_quota = -1
""".format(
        common=_common(),
        rabbit=S.RABBIT_URL,
        ip=S.IP,
        port=S.PORT["octavia"],
        db=S.DB_URL,
        authtoken=_authtoken("octavia"),
        octavia_client=_keystone_client("octavia"),
        ca=etc("octavia", "ca.pem"),
        ca_key=etc("octavia", "ca.key"),
        state=S.STATE,
    )


def octavia_worker():
    """octavia-worker.conf, read after octavia.conf by the worker only (releases.py
    octavia_worker_network_driver): octavia-api keeps the plain no-op driver."""
    return "[controller_worker]\nnetwork_driver = %s\n" % S.RELEASE.octavia_worker_network_driver


def _octavia_ca():
    """A self-signed CA for the amphora certificates Octavia's flows sign (kept)."""
    cert, key = etc("octavia", "ca.pem"), etc("octavia", "ca.key")
    if os.path.exists(cert) and os.path.exists(key):
        return
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "3650",
            "-subj",
            "/CN=bosh-cpi-testcloud octavia CA",
            "-keyout",
            key + ".tmp",
            "-out",
            cert + ".tmp",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.chmod(key + ".tmp", 0o600)
    os.replace(key + ".tmp", key)
    os.replace(cert + ".tmp", cert)


def _from_debian(rel, service):
    """A file the release ships: from Debian's unpacked *-common package for zed, from
    the venv's etc/<service>/ (the wheels' data files) for a PyPI release."""
    src = S.RELEASE.config_file(service, os.path.basename(rel)) or os.path.join(S.DEBIAN_ROOT, rel)
    if not os.path.exists(src):
        raise SystemExit(
            "%s is missing: run `testcloud/cloud up` (it unpacks Debian's "
            "*-common packages) or delete %s/debian to fetch them again" % (src, S.STATE)
        )
    with open(src) as f:
        return f.read()


def _install_plugins():
    """Copy testcloud/plugins into $STATE/pylib and register the ML2 driver and the
    octavia-worker's network driver.

    neutron and octavia find drivers only through entry points, so a dist-info
    directory next to the package declares ours.
    """
    dst = os.path.join(S.PYLIB, "bosh_testcloud")
    src = os.path.join(S.PLUGINS_SRC, "bosh_testcloud")
    changed = False
    os.makedirs(dst, exist_ok=True)
    for fn in sorted(os.listdir(src)):
        if fn.endswith(".py"):
            with open(os.path.join(src, fn)) as f:
                changed |= write(os.path.join(dst, fn), f.read())
    info = os.path.join(S.PYLIB, "bosh_testcloud-0.1.dist-info")
    changed |= write(
        os.path.join(info, "METADATA"),
        "Metadata-Version: 2.1\nName: bosh-testcloud\nVersion: 0.1\n",
    )
    changed |= write(
        os.path.join(info, "entry_points.txt"),
        "[neutron.ml2.mechanism_drivers]\n"
        "bosh_testcloud_bindall = bosh_testcloud.neutron_ml2:BindAllDriver\n"
        "[octavia.network.drivers]\n"
        "bosh_testcloud_noop_neutron_subnets = "
        "bosh_testcloud.octavia_network:NoopNetworkDriverWithNeutronSubnets\n",
    )
    return changed


def write_all():
    for d in (
        "etc",
        "logs",
        "pids",
        "run",
        "done",
        "oslo-locks",
        "keystone",
        "nova/instances",
        "neutron",
        "cinder",
        "octavia",
        "glance/images",
        "glance/staging",
        "glance/tasks",
        "rabbitmq/home",
        "rabbitmq/mnesia",
        "home",
    ):
        os.makedirs(os.path.join(S.STATE, d), exist_ok=True)
    write(etc("my.cnf"), mariadb())
    write(etc("rabbitmq.conf"), rabbitmq())
    write(etc("rabbitmq-enabled-plugins"), "[].\n")
    write(etc("keystone", "keystone.conf"), keystone())
    write(etc("placement", "placement.conf"), placement())
    write(etc("glance", "glance-api.conf"), glance())
    write(etc("neutron", "neutron.conf"), neutron())
    write(etc("nova", "nova.conf"), nova())
    write(etc("nova", "nova-compute.conf"), nova(with_db=False))
    write(etc("nova", "cell0-db.conf"), "[database]\nconnection = %s/nova_cell0\n" % S.DB_URL)
    for host, _az in S.COMPUTES:
        os.makedirs(S.path("nova", host), exist_ok=True)
        write(etc("nova", "compute-%s.conf" % host), nova_compute(host))
    write(etc("cinder", "cinder.conf"), cinder())
    write(etc("octavia", "octavia.conf"), octavia())
    if S.RELEASE.octavia_worker_network_driver:
        write(etc("octavia", "octavia-worker.conf"), octavia_worker())
    _octavia_ca()
    for svc, rel in S.PASTE_FILES.items():
        text = _from_debian(rel, svc)
        # the healthcheck middleware's "disable" file: point it into the state dir
        text = text.replace("/etc/%s/healthcheck_disable" % svc, etc(svc, "healthcheck_disable"))
        write(etc(svc, "api-paste.ini"), text)
    write(etc("cinder", "resource_filters.json"), _from_debian(S.CINDER_RESOURCE_FILTERS, "cinder"))
    if "nova-api" in S.RELEASE.wsgi:  # nova-api under uwsgi: its log file (services.py)
        write(etc("nova", "nova-api.conf"), nova_api_log())
    _install_plugins()
    write_client_files(read_json(S.APP_CRED_FILE))


def write_client_files(app_cred=None):
    """clouds.yaml (admin, bosh, bosh by application credential) and an admin openrc."""
    write(
        S.OPENRC,
        """\
# admin credentials of the bosh-cpi test cloud:  . {openrc}
export OS_AUTH_URL={auth}
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=admin
export OS_PASSWORD={pw}
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME={region}
export OS_INTERFACE=public
""".format(openrc=S.OPENRC, auth=S.AUTH_URL, pw=S.ADMIN_PASSWORD, region=S.REGION),
    )
    cloud = """\
  {name}:
    auth:
      auth_url: {auth}
      username: {user}
      password: {pw}
      project_name: {project}
      user_domain_name: Default
      project_domain_name: Default
    region_name: {region}
    interface: public
    identity_api_version: 3
"""
    text = (
        "# unset OS_* first: they override this file\nclouds:\n"
        + cloud.format(
            name="testcloud-admin",
            auth=S.AUTH_URL,
            user="admin",
            pw=S.ADMIN_PASSWORD,
            project="admin",
            region=S.REGION,
        )
        + cloud.format(
            name="testcloud-bosh",
            auth=S.AUTH_URL,
            user=S.BOSH_USER,
            pw=S.BOSH_PASSWORD,
            project=S.BOSH_PROJECT,
            region=S.REGION,
        )
    )
    if app_cred:
        text += """\
  testcloud-bosh-appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: {auth}
      application_credential_id: {id}
      application_credential_secret: {secret}
    region_name: {region}
    interface: public
    identity_api_version: 3
""".format(auth=S.AUTH_URL, id=app_cred["id"], secret=app_cred["secret"], region=S.REGION)
    write(S.CLOUDS_YAML, text, mode=0o600)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
