"""Fixed facts of the test cloud: where its state lives, ports, names, credentials.

Everything listens on 127.0.0.1 and every subnet is inside 127.0.0.0/8, so nothing
a test does against this cloud can send a packet off the machine.
"""

import os

from . import releases

IP = "127.0.0.1"
REGION = "RegionOne"

STATE = os.path.abspath(os.environ.get("BOSH_CPI_TESTCLOUD_DIR") or "/var/tmp/bosh-cpi-testcloud")
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # testcloud/lib
PLUGINS_SRC = os.path.join(os.path.dirname(HERE), "plugins")  # testcloud/plugins

# The OpenStack release this process is about (testcloud/cloud resolves it, see
# releases.py) and the interpreter its services run under: Debian's for zed (the
# OpenStack packages are installed for it only), the release's venv for a PyPI release.
RELEASE = releases.get(os.environ.get("BOSH_CPI_TESTCLOUD_RELEASE") or releases.DEFAULT)
PYTHON = RELEASE.python()


def path(*parts):
    return os.path.join(STATE, *parts)


ETC = path("etc")
LOGS = path("logs")
PIDS = path("pids")
RUN = path("run")
DONE = path("done")
PYLIB = path("pylib")  # our plugins + their dist-info, on PYTHONPATH
DEBIAN_ROOT = path("debian", "root")  # unpacked *-common .debs (paste files)
CLOUD_JSON = path("cloud.json")
CLOUDS_YAML = path("clouds.yaml")
OPENRC = path("openrc")
APP_CRED_FILE = path("application-credential.json")
KEYPAIR_FILE = path("bosh-keypair.pem")

# ports (all on IP)
PORT = {
    "mariadb": 3306,
    "epmd": 4369,
    "rabbitmq": 5672,
    "rabbitmq-dist": 25672,
    "keystone": 5000,
    "placement": 8778,
    "glance": 9292,
    "neutron": 9696,
    "nova": 8774,
    "cinder": 8776,
    "octavia": 9876,
}

ADMIN_PASSWORD = "admin-secret"
SERVICE_PASSWORD = "service-secret"
DB_USER = "testcloud"
DB_PASSWORD = "testcloud-db-secret"
BOSH_PROJECT = "bosh"
BOSH_USER = "bosh"
BOSH_PASSWORD = "bosh-secret"
SERVICE_USERS = ("nova", "glance", "placement", "neutron", "cinder", "octavia")

DB_URL = "mysql+pymysql://%s:%s@%s:%d" % (DB_USER, DB_PASSWORD, IP, PORT["mariadb"])
RABBIT_URL = "rabbit://guest:guest@%s:%d/" % (IP, PORT["rabbitmq"])
KEYSTONE_URL = "http://%s:%d" % (IP, PORT["keystone"])
AUTH_URL = KEYSTONE_URL + "/v3"

# fake nova-compute hosts and their availability zones (two in z1 so that
# anti-affinity groups of two fit in one AZ); one fake cinder backend per AZ.
COMPUTES = (("tc-compute-1", "z1"), ("tc-compute-2", "z1"), ("tc-compute-3", "z2"))
AVAILABILITY_ZONES = ("z1", "z2")
CINDER_HOST = "tc-volume"

# networks (all in 127.0.0.0/8, see module docstring)
PUBLIC_CIDR = "127.201.0.0/24"
NETWORKS = {
    # key in cloud.json: (network name, cidr, dhcp)
    "dhcp": ("bosh-dhcp", "127.200.0.0/24", True),
    "manual_1": ("bosh-manual-1", "127.200.1.0/24", False),
    "manual_2": ("bosh-manual-2", "127.200.2.0/24", False),
}
# On every bosh subnet: .1 gateway, .2-.99 never handed out by neutron (tests pick
# static IPs there), .100-.250 the allocation pool.
POOL_FIRST, POOL_LAST = 100, 250
STATIC_IPS = range(10, 20)  # the handful listed in cloud.json as static_ips
FLOATING_IP_COUNT = 3

FLAVORS = (  # name, vcpus, ram MB, root disk GB, ephemeral GB
    ("m1.tiny", 1, 512, 1, 0),
    ("m1.small", 1, 2048, 20, 0),
    ("m1.medium", 2, 4096, 40, 0),
    ("m1.large", 4, 8192, 80, 0),
    ("m1.ephemeral", 1, 2048, 10, 10),
    ("m1.noroot", 1, 1024, 0, 0),
)
IMAGE_NAME = "testcloud-tiny"
VOLUME_TYPE = "fake"
MARKER = "bosh-cpi-testcloud"  # description put on resources the bootstrap owns

# Debian packages whose files are taken from the unpacked *-common .debs
PASTE_FILES = {  # service -> path inside DEBIAN_ROOT
    "nova": "usr/share/nova-common/api-paste.ini",
    "glance": "usr/share/glance-common/glance-api-paste.ini",
    "cinder": "usr/share/cinder-common/api-paste.ini",
    "neutron": "usr/share/neutron-common/api-paste.ini",
}
CINDER_RESOURCE_FILTERS = "etc/cinder/resource_filters.json"

# Octavia: the amphora provider with no-op compute, network and amphora drivers, so
# objects pass through Octavia's real flows and provisioning states without any VM.
# The base load balancer made by `up` (see bootstrap.loadbalancer): its VIP is on
# this bosh network's subnet, held by a Neutron port so no server gets that address.
LB_NETWORK = "manual_1"
LB_NAME = "bosh-lb"
LB_VIP_PORT = "bosh-lb-vip"
LB_LISTENER = "bosh-listener"  # HTTP :80, default pool LB_POOL_WEB
LB_POOL_WEB = "bosh-pool-web"
LB_POOL_MONITORED = "bosh-pool-monitored"  # the one with a health monitor
LB_HEALTH_MONITOR = "bosh-hm"
# the RPC topic octavia-api casts to for the amphora (v2) provider
OCTAVIA_TOPIC_V2 = "octavia_provisioning_v2"
