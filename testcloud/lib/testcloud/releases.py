"""The OpenStack releases the test cloud can run, and what differs between them.

* "zed": Debian 12's packages, run by Debian's /usr/bin/python3 (the default).
* "2026.2": the newest release, installed from PyPI into a virtualenv made from Debian's
  /usr/bin/python3 and pinned by testcloud/constraints/openstack-2026.2.txt. The venv is
  cached under VENV_ROOT by that file's content, so a second `up` installs nothing.

MariaDB, RabbitMQ and uwsgi come from Debian for both. `testcloud/cloud` resolves which
release an `up`/`status`/`smoke` is about (see there) and hands it over in
BOSH_CPI_TESTCLOUD_RELEASE; settings.py reads it once.
"""

import hashlib
import os

DEFAULT = "zed"
VENV_ROOT = "/var/tmp/bosh-cpi-openstack-venvs"
CONSTRAINTS_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "constraints"
)


class Release:
    """source: "debian" (Debian's library packages) or "pypi" (a cached venv).

    wsgi: services that run as WSGI apps under uwsgi in this release, with their
    "module:callable" (pypi) -- in the Debian release keystone and placement run from
    Debian's wsgi scripts, everything else under its own eventlet server."""

    def __init__(
        self,
        name,
        source,
        versions,
        constraints=None,
        requirements=(),
        wsgi=None,
        nova_filters_removed=(),
        octavia=False,
        octavia_worker_network_driver=None,
    ):
        self.name, self.source, self.versions = name, source, versions
        # Octavia (load-balancer) runs in this release's cloud: zed's from Debian's
        # python3-octavia, 2026.2's from the venv (octavia-api as a WSGI module).
        self.octavia = octavia
        # None: octavia-worker uses octavia.conf's no-op network driver, like octavia-api;
        # otherwise the driver it uses instead (bosh_testcloud.octavia_network).
        self.octavia_worker_network_driver = octavia_worker_network_driver
        self.nova_filters_removed = tuple(nova_filters_removed)
        self.constraints, self.requirements = constraints, list(requirements)
        self.wsgi = dict(wsgi or {})

    @property
    def from_pypi(self):
        return self.source == "pypi"

    def venv(self):
        """The venv this release runs in (pypi only): named by the content of its
        constraints file and its requirement list, so a change to either builds anew."""
        with open(self.constraints, "rb") as f:
            content = f.read() + "\n".join(self.requirements).encode()
        digest = hashlib.sha256(content).hexdigest()[:16]
        return os.path.join(VENV_ROOT, digest)

    def python(self):
        return os.path.join(self.venv(), "bin", "python3") if self.from_pypi else "/usr/bin/python3"

    def config_file(self, service, name):
        """A file the release ships for a service's etc/ (paste pipelines, cinder's
        resource filters): inside the venv for pypi. None: take it from Debian's
        unpacked *-common package instead (configs.py)."""
        if not self.from_pypi:
            return None
        return os.path.join(self.venv(), "etc", service, name)


RELEASES = {
    "zed": Release(
        "zed",
        "debian",
        {"nova": "26", "keystone": "22", "glance": "25", "cinder": "21", "neutron": "21"},
        octavia=True,
    ),
    "2026.2": Release(
        "2026.2",
        "pypi",
        {
            "nova": "34.0.0",
            "keystone": "30.0.0",
            "glance": "33.0.0",
            "cinder": "29.0.0",
            "neutron": "29.0.0",
            "placement": "16.0.0",
            "octavia": "19.0.0",
        },
        constraints=os.path.join(CONSTRAINTS_DIR, "openstack-2026.2.txt"),
        # pyroute2: neutron-server still imports it, but neutron 29 no longer requires it
        requirements=[
            "nova",
            "keystone",
            "glance",
            "cinder",
            "neutron",
            "openstack-placement",
            "octavia",
            "PyMySQL",
            "pyroute2",
        ],
        # AZs are placement's job there (query_placement_for_availability_zone), the
        # filter is gone; host aggregates are mirrored into placement by nova itself.
        nova_filters_removed=["AvailabilityZoneFilter"],
        # nova-api, glance-api and neutron-server lost their standalone (eventlet)
        # servers in these releases: they are WSGI applications only.
        wsgi={
            "keystone": "keystone.wsgi.api:application",
            "placement": "placement.wsgi.api:application",
            "nova-api": "nova.wsgi.osapi_compute:application",
            "glance-api": "glance.wsgi.api:application",
            "neutron-server": "neutron.wsgi.api:application",
            # octavia-api, like zed's octavia-wsgi script, reads its config from sys.argv
            "octavia-api": "octavia.wsgi.api:application",
        },
        octavia=True,
        # Octavia 19's member flows need the members' real networks: see
        # testcloud/plugins/bosh_testcloud/octavia_network.py
        octavia_worker_network_driver="bosh_testcloud_noop_neutron_subnets",
    ),
}


def get(name):
    try:
        return RELEASES[name]
    except KeyError:
        raise SystemExit(
            "unknown release %r: choose one of %s" % (name, ", ".join(sorted(RELEASES)))
        ) from None


def main(argv):
    """Helpers for the bash side: `releases.py venv NAME`, `python NAME`, `names`."""
    if argv[:1] == ["names"]:
        print(" ".join(sorted(RELEASES)))
        return 0
    what, release = argv[0], get(argv[1])
    if what == "venv":
        print(release.venv() if release.from_pypi else "")
    elif what == "constraints":
        print(release.constraints or "")
    elif what == "requirements":
        print(" ".join(release.requirements))
    elif what == "source":
        print(release.source)
    else:
        raise SystemExit("usage: releases.py names | venv|constraints|requirements|source NAME")
    return 0
