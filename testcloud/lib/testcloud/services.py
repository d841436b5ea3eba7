"""The processes of the test cloud: how each starts, what it waits for, how it is checked.

`up` runs the one-time database set-up steps and the service starts as a small
dependency graph: every step waits only for what it needs (a schema sync for its
own service, RabbitMQ, Keystone's catalog, ...), so the schema syncs run in parallel
and Keystone is up and cataloguing while Nova's migrations still run.
"""

import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

from . import procs
from . import settings as S

CHILD_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def child_env(**extra):
    """A clean environment: nothing from a venv/pyenv or OS_* leaks into services."""
    env = {
        "PATH": CHILD_PATH,
        "HOME": S.path("home"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": S.PYLIB,
        "TMPDIR": "/tmp",
    }
    env.update(extra)
    return env


def entry(prog, target, *args):
    """argv running a console-script entry point under Debian's python."""
    return [S.PYTHON, "-m", "bosh_testcloud.run", prog, target] + list(args)


def conf(*parts):
    return "--config-file=" + os.path.join(S.ETC, *parts)


def log_file(name):
    return "--log-file=" + os.path.join(S.LOGS, name + ".log")


# "Connection: close": uwsgi's http-socket closes each connection after one response
# but does not say so; keystoneauth/urllib3 then reuse the dead socket and fail with
# "Remote end closed connection without response" (nova-api/placement answer 503).
def uwsgi(name, port, wsgi_file, env_var=None, conf_dir=None, extra=(), pyargv=None):
    """uwsgi serving one WSGI app. In a PyPI release the app is a module of the
    release's venv (S.RELEASE.wsgi), and wsgi_file is not used. env_var/conf_dir: the app
    finds its config through that variable (keystone, placement); pyargv: the app parses
    sys.argv instead (octavia)."""
    module = S.RELEASE.wsgi.get(name)
    # worker-reload-mercy: nova-api's worker in 2026.2 can outlive SIGTERM (threads of its
    # own); uwsgi then kills it after 5 s instead of `down` after 20.
    app = (
        ["--module", module, "--virtualenv", S.RELEASE.venv(), "--pythonpath", S.PYLIB]
        + ["--worker-reload-mercy", "5"]
        if module
        else ["--wsgi-file", wsgi_file]
    )
    argv = [
        "/usr/bin/uwsgi-core",
        "--plugin",
        "python3",
        "--master",
        "--die-on-term",
        "--enable-threads",
        "--lazy-apps",
        "--processes",
        "1",
        "--threads",
        "4",
        "--buffer-size",
        "65535",
        "--no-orphans",
        "--listen",
        "64",
        "--add-header",
        "Connection: close",
        "--http-socket",
        "%s:%d" % (S.IP, port),
        *app,
        "--procname-prefix",
        "testcloud-%s-" % name,
        *extra,
    ]
    if env_var:
        argv += ["--env", "%s=%s" % (env_var, os.path.join(S.ETC, conf_dir))]
    if pyargv:
        argv += ["--pyargv", " ".join(pyargv)]
    return argv


# What a PyPI release's WSGI-only services need besides uwsgi() (releases.py).
# nova: its wsgi module takes the paste file first, then the configs; nova-api.conf
# only names nova-api's own log file (the other nova services pass --log-file).
# glance: image data arrives as chunked uploads; settings from glance's uwsgi guide.
WSGI_EXTRA = {
    "nova-api": ["--env", "OS_NOVA_CONFIG_FILES=api-paste.ini;nova.conf;nova-api.conf"],
    "glance-api": [
        "--chunked-input-limit",
        "4096000",
        "--wsgi-disable-file-wrapper",
    ],
    "neutron-server": ["--env", "OS_NEUTRON_CONFIG_FILES=neutron.conf"],
}


def wsgi_or_entry(name, port_name, env_var, conf_dir, argv):
    """A service that runs under its own server in zed (argv) and only as a WSGI app
    under uwsgi in a PyPI release."""
    if name not in S.RELEASE.wsgi:
        return argv
    return uwsgi(name, S.PORT[port_name], None, env_var, conf_dir, WSGI_EXTRA.get(name, ()))


class Service:
    """check: how health is probed once the process runs:
    tcp/http/amqp/mysql  the port answers (http: any status below 500);
    queue                its RPC queues exist in RabbitMQ, i.e. the service consumes
                         (or, if it restarted, messages wait for it: not lost)."""

    def __init__(
        self,
        name,
        argv,
        needs=(),
        check="queue",
        port=None,
        path="/",
        queues=(),
        env=None,
        timeout=120,
    ):
        self.name, self.argv, self.needs = name, argv, list(needs)
        self.check, self.port, self.path = check, port, path
        self.queues = list(queues)
        self.env = env
        self.timeout = timeout

    def probe(self):
        if self.check == "queue":
            return queues_exist(self.queues)
        return probe(self.check, self.port, self.path)

    def healthy(self):
        return procs.pid_of(self.name) is not None and self.probe()


def queues_exist(names):
    import amqp  # py-amqp, installed with oslo.messaging

    try:
        conn = amqp.Connection(
            host="%s:%d" % (S.IP, S.PORT["rabbitmq"]),
            userid="guest",
            password="guest",
            connect_timeout=3,
        )
        conn.connect()
    except (OSError, amqp.exceptions.AMQPError):
        return False
    try:
        for q in names:
            ch = conn.channel()
            try:
                ch.queue_declare(queue=q, passive=True)
            except amqp.exceptions.NotFound:
                return False
            try:
                ch.close()
            except Exception:
                pass
        return True
    except (OSError, amqp.exceptions.AMQPError):
        return False
    finally:
        try:
            conn.close()
        except Exception:
            pass


def probe(check, port, path="/"):
    if check == "proc":
        return True
    try:
        if check == "http":
            try:
                with urllib.request.urlopen("http://%s:%d%s" % (S.IP, port, path), timeout=3):
                    return True
            except urllib.error.HTTPError as e:
                return e.code < 500
        with socket.create_connection((S.IP, port), timeout=2) as s:
            if check == "amqp":
                s.sendall(b"AMQP\x00\x00\x09\x01")
                s.settimeout(3)
                return bool(s.recv(8))
            if check == "mysql":
                s.settimeout(3)
                return bool(s.recv(4))  # the server's greeting packet
            return True  # "tcp"
    except (OSError, urllib.error.URLError):
        return False


def port_taken(port):
    try:
        with socket.create_connection((S.IP, port), timeout=1):
            return True
    except OSError:
        return False


def rabbit_env():
    return child_env(
        HOME=S.path("rabbitmq", "home"),
        ERL_EPMD_ADDRESS=S.IP,
        ERL_EPMD_PORT=str(S.PORT["epmd"]),
        RABBITMQ_NODENAME="testcloud@localhost",
        RABBITMQ_NODE_IP_ADDRESS=S.IP,
        RABBITMQ_NODE_PORT=str(S.PORT["rabbitmq"]),
        RABBITMQ_DIST_PORT=str(S.PORT["rabbitmq-dist"]),
        # erlang distribution on loopback too
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        RABBITMQ_CONFIG_FILE=os.path.join(S.ETC, "rabbitmq.conf"),
        RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(S.ETC, "rabbitmq-enabled-plugins"),
        RABBITMQ_MNESIA_BASE=S.path("rabbitmq", "mnesia"),
        RABBITMQ_LOG_BASE=S.LOGS,
        RABBITMQ_PID_FILE=os.path.join(S.RUN, "rabbitmq.pid"),
    )


def all_services():
    nova = conf("nova", "nova.conf")
    cinder = conf("cinder", "cinder.conf")
    octavia = conf("octavia", "octavia.conf")
    svcs = [
        Service(
            "mariadb",
            ["/usr/sbin/mariadbd", "--defaults-file=" + os.path.join(S.ETC, "my.cnf")],
            needs=["db:datadir"],
            check="mysql",
            port=S.PORT["mariadb"],
            timeout=60,
        ),
        Service(
            "epmd",
            ["/usr/bin/epmd", "-address", S.IP, "-port", str(S.PORT["epmd"])],
            check="tcp",
            port=S.PORT["epmd"],
            timeout=20,
        ),
        Service(
            "rabbitmq",
            ["/usr/lib/rabbitmq/bin/rabbitmq-server"],
            needs=["svc:epmd"],
            check="amqp",
            port=S.PORT["rabbitmq"],
            env=rabbit_env(),
            timeout=120,
        ),
        Service(
            "keystone",
            uwsgi(
                "keystone",
                S.PORT["keystone"],
                "/usr/bin/keystone-wsgi-public",
                "OS_KEYSTONE_CONFIG_DIR",
                "keystone",
            ),
            needs=["db:keystone", "db:keystone-fernet", "db:keystone-credential"],
            check="http",
            port=S.PORT["keystone"],
            path="/v3",
            timeout=90,
        ),
        Service(
            "placement",
            uwsgi(
                "placement",
                S.PORT["placement"],
                "/usr/bin/placement-api",
                "OS_PLACEMENT_CONFIG_DIR",
                "placement",
            ),
            needs=["db:placement"],
            check="http",
            port=S.PORT["placement"],
        ),
        Service(
            "glance-api",
            wsgi_or_entry(
                "glance-api",
                "glance",
                "OS_GLANCE_CONFIG_DIR",
                "glance",
                entry("glance-api", "glance.cmd.api:main", conf("glance", "glance-api.conf")),
            ),
            needs=["db:glance"],
            check="http",
            port=S.PORT["glance"],
        ),
        Service(
            "neutron-server",
            wsgi_or_entry(
                "neutron-server",
                "neutron",
                "OS_NEUTRON_CONFIG_DIR",
                "neutron",
                entry(
                    "neutron-server",
                    "neutron.cmd.eventlet.server:main",
                    conf("neutron", "neutron.conf"),
                ),
            ),
            needs=["db:neutron", "svc:rabbitmq"],
            check="http",
            port=S.PORT["neutron"],
        ),
        Service(
            "nova-api",
            wsgi_or_entry(
                "nova-api",
                "nova",
                "OS_NOVA_CONFIG_DIR",
                "nova",
                entry("nova-api", "nova.cmd.api:main", nova, log_file("nova-api")),
            ),
            needs=NOVA_DB + ["svc:rabbitmq", "catalog"],
            check="http",
            port=S.PORT["nova"],
        ),
        Service(
            "nova-conductor",
            entry("nova-conductor", "nova.cmd.conductor:main", nova, log_file("nova-conductor")),
            needs=NOVA_DB + ["svc:rabbitmq", "catalog"],
            queues=["conductor.tc-controller"],
        ),
        Service(
            "nova-scheduler",
            entry("nova-scheduler", "nova.cmd.scheduler:main", nova, log_file("nova-scheduler")),
            needs=NOVA_DB + ["svc:rabbitmq", "catalog"],
            queues=["scheduler.tc-controller"],
        ),
    ]
    for host, _az in S.COMPUTES:
        # A compute reports its resources to placement right at start: it needs its
        # service user (the catalog) and placement, else it waits for the next
        # periodic update (60 s). It also pings the conductor first (10 s lost if
        # that ping goes to a queue nobody has declared yet).
        svcs.append(
            Service(
                "nova-compute-" + host,
                entry(
                    "nova-compute",
                    "nova.cmd.compute:main",
                    conf("nova", "nova-compute.conf"),
                    conf("nova", "compute-%s.conf" % host),
                    log_file("nova-compute-" + host),
                ),
                needs=NOVA_DB + ["svc:rabbitmq", "catalog", "svc:placement", "svc:nova-conductor"],
                queues=["compute." + host],
            )
        )
    svcs += [
        Service(
            "cinder-api",
            entry("cinder-api", "cinder.cmd.api:main", cinder, log_file("cinder-api")),
            needs=["db:cinder", "svc:rabbitmq"],
            check="http",
            port=S.PORT["cinder"],
        ),
        Service(
            "cinder-volume",
            entry("cinder-volume", "cinder.cmd.volume:main", cinder, log_file("cinder-volume")),
            needs=["db:cinder", "svc:rabbitmq"],
            queues=[
                "cinder-volume.%s@fake-%s" % (S.CINDER_HOST, az) for az in S.AVAILABILITY_ZONES
            ],
        ),
        # After the volume backends: at start the scheduler asks them for their
        # capabilities, and refuses to place volumes until it has them (or until a
        # backend's own periodic report, up to 2 minutes later).
        Service(
            "cinder-scheduler",
            entry(
                "cinder-scheduler",
                "cinder.cmd.scheduler:main",
                cinder,
                log_file("cinder-scheduler"),
            ),
            needs=["db:cinder", "svc:rabbitmq", "svc:cinder-volume"],
            queues=["cinder-scheduler.%s" % S.CINDER_HOST],
        ),
    ]
    if S.RELEASE.octavia:
        octavia_worker_conf = (
            [conf("octavia", "octavia-worker.conf")]
            if S.RELEASE.octavia_worker_network_driver
            else []
        )
        svcs += [
            # Octavia: the API casts to the worker, which runs the amphora flows with
            # no-op drivers (see configs.octavia); health manager and housekeeping do
            # not run.
            Service(
                "octavia-api",
                uwsgi(
                    "octavia-api",
                    S.PORT["octavia"],
                    "/usr/bin/octavia-wsgi",
                    pyargv=[octavia, log_file("octavia-api")],
                ),
                needs=["db:octavia", "svc:rabbitmq", "catalog"],
                check="http",
                port=S.PORT["octavia"],
            ),
            Service(
                "octavia-worker",
                entry(
                    "octavia-worker",
                    "bosh_testcloud.octavia_worker:main",
                    octavia,
                    *octavia_worker_conf,
                    log_file("octavia-worker"),
                ),
                needs=["db:octavia", "svc:rabbitmq"],
                queues=[S.OCTAVIA_TOPIC_V2],
            ),
        ]
    return svcs


# Order matters for `down`: these go last, after every OpenStack service stopped.
INFRA = ("rabbitmq", "epmd", "mariadb")


# nova's database set-up, split in three independent chains that run in parallel
NOVA_DB = ["db:nova-api", "db:nova-cell1", "db:nova-cell0"]


def db_jobs():
    """One-time set-up steps: {job: [(marker, argv, needs), ...]}, each list in order.

    A job's completion is the event "db:<job>"; a step's needs are events too.
    """
    ks = conf("keystone", "keystone.conf")
    nova = conf("nova", "nova.conf")
    manage = "keystone-manage", "keystone.cmd.manage:main"
    nmanage = "nova-manage", "nova.cmd.manage:main"
    jobs = {
        # the two key repositories: files only, independent of the database
        "keystone-fernet": [
            (
                "keystone-fernet",
                entry(
                    *manage,
                    ks,
                    "fernet_setup",
                    "--keystone-user",
                    "root",
                    "--keystone-group",
                    "root",
                ),
                [],
            )
        ],
        "keystone-credential": [
            (
                "keystone-credential",
                entry(
                    *manage,
                    ks,
                    "credential_setup",
                    "--keystone-user",
                    "root",
                    "--keystone-group",
                    "root",
                ),
                [],
            )
        ],
        "keystone": [
            ("keystone-db", entry(*manage, ks, "db_sync"), []),
            (
                "keystone-bootstrap",
                entry(
                    *manage,
                    ks,
                    "bootstrap",
                    "--bootstrap-password",
                    S.ADMIN_PASSWORD,
                    "--bootstrap-admin-url",
                    S.AUTH_URL + "/",
                    "--bootstrap-internal-url",
                    S.AUTH_URL + "/",
                    "--bootstrap-public-url",
                    S.AUTH_URL + "/",
                    "--bootstrap-region-id",
                    S.REGION,
                ),
                [],
            ),
        ],
        "placement": [
            (
                "placement-db",
                entry(
                    "placement-manage",
                    "placement.cmd.manage:main",
                    conf("placement", "placement.conf"),
                    "db",
                    "sync",
                ),
                [],
            )
        ],
        "glance": [
            (
                "glance-db",
                entry(
                    "glance-manage",
                    "glance.cmd.manage:main",
                    conf("glance", "glance-api.conf"),
                    "db_sync",
                ),
                [],
            )
        ],
        "neutron": [
            (
                "neutron-db",
                entry(
                    "neutron-db-manage",
                    "neutron.db.migration.cli:main",
                    conf("neutron", "neutron.conf"),
                    "upgrade",
                    "heads",
                ),
                [],
            )
        ],
        "cinder": [
            (
                "cinder-db",
                entry(
                    "cinder-manage",
                    "cinder.cmd.manage:main",
                    conf("cinder", "cinder.conf"),
                    "db",
                    "sync",
                ),
                [],
            )
        ],
        "octavia": [
            (
                "octavia-db",
                entry(
                    "octavia-db-manage",
                    "octavia.db.migration.cli:main",
                    conf("octavia", "octavia.conf"),
                    "upgrade",
                    "head",
                ),
                [],
            )
        ],
        "nova-api": [
            ("nova-api-db", entry(*nmanage, nova, "api_db", "sync"), []),
            (
                "nova-map-cell0",
                entry(
                    *nmanage,
                    nova,
                    "cell_v2",
                    "map_cell0",
                    "--database_connection",
                    S.DB_URL + "/nova_cell0",
                ),
                [],
            ),
            (
                "nova-create-cell1",
                entry(*nmanage, nova, "cell_v2", "create_cell", "--name=cell1"),
                [],
            ),
        ],
        # `db sync --local_cell` migrates only [database]; for cell0 a second config
        # file points [database] at nova_cell0
        "nova-cell1": [("nova-cell1-db", entry(*nmanage, nova, "db", "sync", "--local_cell"), [])],
        "nova-cell0": [
            (
                "nova-cell0-db",
                entry(*nmanage, nova, conf("nova", "cell0-db.conf"), "db", "sync", "--local_cell"),
                [],
            )
        ],
    }
    if not S.RELEASE.octavia:
        del jobs["octavia"]
    return jobs


DATABASES = (
    "keystone",
    "glance",
    "placement",
    "nova_api",
    "nova",
    "nova_cell0",
    "neutron",
    "cinder",
    "octavia",
)


def mysql_cli(sql):
    """Run SQL as MariaDB's root (unix socket auth); rows as lists of strings."""
    sock = os.path.join(S.RUN, "mysqld.sock")
    r = subprocess.run(
        ["mariadb", "--no-defaults", "-uroot", "--socket=" + sock, "-N", "-B", "-e", sql],
        env=child_env(),
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise RuntimeError("mariadb: %s" % r.stderr.strip())
    return [line.split("\t") for line in r.stdout.splitlines()]


def create_databases():
    databases = [d for d in DATABASES if d != "octavia" or S.RELEASE.octavia]
    sql = "".join("CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4;" % d for d in databases)
    for host in ("127.0.0.1", "localhost"):
        sql += (
            "CREATE USER IF NOT EXISTS '{u}'@'{h}' IDENTIFIED BY '{p}';"
            "GRANT ALL ON *.* TO '{u}'@'{h}';"
        ).format(u=S.DB_USER, h=host, p=S.DB_PASSWORD)
    mysql_cli(sql + "FLUSH PRIVILEGES;")


def init_datadir():
    """mariadb-install-db once; True if it ran."""
    datadir = S.path("mysql")
    if os.path.exists(os.path.join(S.DONE, "mariadb-datadir")):
        return False
    if os.path.exists(datadir):
        import shutil

        shutil.rmtree(datadir)  # a half-done earlier attempt
    os.makedirs(datadir)
    with open(os.path.join(S.LOGS, "mariadb-install-db.log"), "ab") as out:
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                "--datadir=" + datadir,
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            env=child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
        )
    open(os.path.join(S.DONE, "mariadb-datadir"), "w").close()
    return True


class Graph:
    """Named events + worker threads; the first failure stops everything waiting."""

    def __init__(self, log):
        self.log = log
        self.events = {}
        self.lock = threading.Lock()
        self.failure = None
        self.threads = []
        self.done_at = {}

    def event(self, name):
        with self.lock:
            return self.events.setdefault(name, threading.Event())

    def set(self, name):
        self.done_at[name] = time.time()
        self.event(name).set()

    def wait(self, names, timeout=600):
        deadline = time.time() + timeout
        for n in names:
            ev = self.event(n)
            while not ev.wait(0.1):
                if self.failure:
                    raise _Aborted()
                if time.time() > deadline:
                    raise RuntimeError("timed out waiting for %s" % n)

    def spawn(self, what, fn, *args):
        def body():
            try:
                fn(*args)
            except _Aborted:
                pass
            except Exception as e:
                with self.lock:
                    if not self.failure:
                        self.failure = "%s: %s" % (what, e)

        t = threading.Thread(target=body, name=what, daemon=True)
        t.start()
        self.threads.append(t)

    def join(self):
        for t in self.threads:
            while t.is_alive():
                t.join(0.2)
        if self.failure:
            raise SystemExit("up failed: " + self.failure)


class _Aborted(Exception):
    pass


def run_job(graph, name, steps):
    graph.wait(["svc:mariadb", "db:databases"])
    logpath = os.path.join(S.LOGS, "dbsync-%s.log" % name)
    for marker, argv, needs in steps:
        mpath = os.path.join(S.DONE, marker)
        if os.path.exists(mpath):
            continue
        graph.wait(needs)
        t = time.time()
        with open(logpath, "ab") as out:
            r = subprocess.run(
                argv, env=child_env(), stdout=out, stderr=subprocess.STDOUT, cwd=S.STATE
            )
        if r.returncode != 0:
            raise RuntimeError(
                "%s failed (exit %d), see %s:\n%s" % (marker, r.returncode, logpath, tail(logpath))
            )
        open(mpath, "w").close()
        graph.log("db: %s done (%.1fs)" % (marker, time.time() - t))
    graph.set("db:" + name)


def tail(path, n=25):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 16384))
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join("    " + line for line in lines[-n:])
    except OSError:
        return "    (no log)"


def ensure_service(graph, svc):
    graph.wait(svc.needs)
    pid = procs.pid_of(svc.name)
    if pid is None:
        if svc.port and port_taken(svc.port):
            raise RuntimeError(
                "%s: port %s:%d is in use by a process this tool did not "
                "start; stop that first" % (svc.name, S.IP, svc.port)
            )
        pid = procs.start(svc.name, svc.argv, svc.env or child_env())
        graph.log("started %s (pid %d)" % (svc.name, pid))
    deadline = time.time() + svc.timeout
    while not svc.probe():
        if graph.failure:
            raise _Aborted()
        if procs.pid_of(svc.name) is None:
            raise RuntimeError(
                "%s exited; last lines of %s:\n%s" % (svc.name, _log_of(svc), tail(_log_of(svc)))
            )
        if time.time() > deadline:
            raise RuntimeError(
                "%s not healthy after %ds; last lines of %s:\n%s"
                % (svc.name, svc.timeout, _log_of(svc), tail(_log_of(svc)))
            )
        time.sleep(0.25)
    graph.set("svc:" + svc.name)


def _log_of(svc):
    log = os.path.join(S.LOGS, svc.name + ".log")
    if svc.name.startswith("neutron"):
        log = os.path.join(S.LOGS, "neutron-server.log")
    if os.path.exists(log) and os.path.getsize(log):
        return log
    return os.path.join(S.LOGS, svc.name + ".out")
