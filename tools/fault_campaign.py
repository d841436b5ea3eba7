"""The fault campaign: every CPI method that talks to the cloud, run through the fault
proxy (tools/fault_proxy.py) with one fault injected per run (RELIABILITY.md).

For each scenario (a CPI method and the state it needs):

1. a clean run through the proxy learns the method's request sequence;
2. one run per (request position, fault kind), all of them (`full`) or a sample, each
   with a director UUID of its own:
   - the faulted call runs as the director runs it (a new process, a wiped environment,
     one JSON request on stdin), with the fault at the n-th request of one kind;
   - its answer must be a success or one of the ten Bosh::Clouds types, never an
     "unexpected" failure, and there must be an answer unless the CPI was SIGKILLed;
   - `ok_to_retry: true` must mean that the same call, made again at once, succeeds, and
     that nothing was left behind;
   - a failed create must have left nothing behind, a successful delete too;
   - after a SIGKILL, whatever was left must carry the run's director UUID, and what the
     director does next (delete_vm/delete_disk/... of the ids found by that UUID, the
     create again) must remove it;
   - then the director's follow-up (delete what was created, retry a failed delete) and
     the leak check: nothing carrying the run's director UUID may remain on the cloud
     (counted with admin rights: servers, ports, floating-IP associations, volumes,
     snapshots, images, Octavia pool members).

Runs of one scenario share a fixture (a VM, a disk) in chains; chains run in parallel.

    .venv/bin/python -m tools.reliability_report --full     # the whole campaign
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bosh_openstack_cpi.protocol.errors import BOSH_ERROR_TYPES
from tests.integration.faults import cloud_upstreams, proxied_auth_url
from tests.integration.leaks import resources_of_director
from tools import fault_proxy as fp
from tools.cloud_description import cpi_document, project_connection, write_cpi_json
from tools.cpi_process import CpiProcess, cpi_command
from tools.stemcell_builder import build_stemcell

MIB = 1 << 20
AGENT_PASSWORD = "campaign-agent-password-1f3a"  # noqa: S105 (a canary)
# A request slower than the CPI's read timeout: the CPI gives up, the cloud still acts.
READ_TIMEOUT = 3.0
SLOW_SECONDS = 5.0
# Requests of one kind that repeat (polls) get faults at their first occurrences only.
MAX_OCCURRENCE = 2
# The campaign's own static IPs (positions in vm_support's list for manual_2): other
# suites take theirs from the end of the range.
CAMPAIGN_IP_POSITIONS = range(20, 60)
CALL_TIMEOUT = 900


# --- fault kinds -------------------------------------------------------------------------
class PidBox:
    """The pid of the CPI process running right now (for kill and term faults)."""

    def __init__(self) -> None:
        self.pid: int | None = None

    def __call__(self) -> int | None:
        return self.pid


FAULT_KINDS: dict[str, Callable[[PidBox], fp.Fault]] = {
    "500": lambda _: fp.error(500),
    "502": lambda _: fp.error(502),
    "503": lambda _: fp.error(503),
    "504": lambda _: fp.error(504),
    "500 after forwarding": lambda _: fp.error_after(500),
    "429 Retry-After": lambda _: fp.error(429, retry_after=1),
    "413 overLimit": lambda _: fp.error(413, retry_after=1),
    "reset": lambda _: fp.reset(),
    "reset after forwarding": lambda _: fp.reset_after(),
    "slow (read timeout)": lambda _: fp.slow(SLOW_SECONDS),
    "truncated": lambda _: fp.truncate(),
    "SIGKILL": fp.kill,
    "SIGKILL after forwarding": fp.kill_after,
    "SIGTERM": fp.term,
}
KILLS = frozenset({"SIGKILL", "SIGKILL after forwarding"})
# Faults the request never arrives with, and faults that lose the answer of a request that did.
BEFORE_FORWARDING = ("500", "502", "503", "504", "429 Retry-After", "413 overLimit", "reset")
AFTER_FORWARDING = (
    "500 after forwarding",
    "reset after forwarding",
    "slow (read timeout)",
    "truncated",
)
LEFT_AFTER_FOLLOW_UP = "left on the cloud after the director's follow-up"
# The types whose ok_to_retry the director reads (its RetriableCloudError).
RETRIABLE = frozenset(
    f"Bosh::Clouds::{name}"
    for name in ("NoDiskSpace", "DiskNotAttached", "DiskNotFound", "VMCreationFailed")
)


# --- request positions -------------------------------------------------------------------
_IDS = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|\b[0-9a-fA-F]{32}\b"
)
_ADDRESSES = re.compile(r"\d+\.\d+\.\d+\.\d+")


def signature(service: str, method: str, path: str) -> str:
    """A request with its ids and addresses taken out: "compute GET /v2.1/servers/{id}"."""
    return f"{service} {method} {_ADDRESSES.sub('{ip}', _IDS.sub('{id}', path))}"


_DISCOVERY = re.compile(r"^\S+ GET /(v[\d.]+/?)?$")


@dataclass(frozen=True)
class Position:
    signature: str
    occurrence: int

    @property
    def auth(self) -> bool:
        return self.signature.startswith("identity ")

    @property
    def discovery(self) -> bool:
        """A version-discovery GET (keystoneauth's, before the first request to a service)."""
        return bool(_DISCOVERY.match(self.signature))

    @property
    def mutating(self) -> bool:
        """Changes something on the cloud (token requests do not)."""
        return not self.auth and self.signature.split(" ")[1] != "GET"

    def describe(self) -> str:
        return self.signature + (f" #{self.occurrence}" if self.occurrence > 1 else "")


def positions_of(records: list[fp.Record]) -> list[Position]:
    seen: dict[str, int] = {}
    found: list[Position] = []
    for record in sorted(records, key=lambda r: r.sequence):
        key = signature(record.service, record.method, record.path)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= MAX_OCCURRENCE:
            found.append(Position(key, seen[key]))
    return found


def at_position(position: Position, fault: fp.Fault) -> fp.FaultPlan:
    count = [0]

    def rule(_sequence: int, service: str, method: str, path: str) -> fp.Fault | None:
        if signature(service, method, path) != position.signature:
            return None
        count[0] += 1
        return fault if count[0] == position.occurrence else None

    plan = fp.FaultPlan()
    plan.rules.append(rule)
    return plan


# --- results -----------------------------------------------------------------------------
@dataclass
class Invocation:
    """One CPI process: its response (None when it gave none) and output."""

    response: dict[str, Any] | None
    stdout: str
    stderr: str
    returncode: int
    seconds: float

    @property
    def error(self) -> dict[str, Any] | None:
        return None if self.response is None else self.response.get("error")

    @property
    def result(self) -> Any:
        return None if self.response is None else self.response.get("result")

    @property
    def outcome(self) -> str:
        if self.response is None:
            return "no response"
        error = self.error
        if error is None:
            return "success"
        return str(error.get("type", "?")).removeprefix("Bosh::Clouds::")


@dataclass
class RunRecord:
    scenario: str
    method: str
    position: str
    fault: str | None
    injected: bool = False
    injected_at: str = ""
    outcome: str = ""
    ok_to_retry: bool | None = None
    message: str = ""
    seconds: float = 0.0
    run_seconds: float = 0.0
    requests: int = 0
    retried_ok: bool | None = None
    left_after_kill: dict[str, list[str]] = field(default_factory=dict)
    recovered_by: str = ""
    problems: list[str] = field(default_factory=list)


class CampaignProblem(Exception):
    """A follow-up the director would make failed, or the cloud's state is wrong."""


# --- the environment ---------------------------------------------------------------------
class Environment:
    """The cloud, admin connections (one per thread), CPI configs, static and floating IPs."""

    def __init__(self, cloud: dict[str, Any], workdir: Path, source: Path | None = None) -> None:
        self.cloud = cloud
        self.workdir = workdir
        self.source = source
        self._local = threading.local()
        self._lock = threading.Lock()
        self._free_ips = _campaign_ips(cloud)
        self._stemcell: tuple[Path, dict[str, Any]] | None = None

    # connections
    def admin(self) -> Any:
        connection = getattr(self._local, "admin", None)
        if connection is None:
            import openstack

            connection = openstack.connect(
                load_yaml_config=False, load_envvars=False, **self.cloud["admin"]
            )
            self._local.admin = connection
        return connection

    def project(self) -> Any:
        connection = getattr(self._local, "project", None)
        if connection is None:
            connection = project_connection(self.cloud)
            self._local.project = connection
        return connection

    def leaks(self, director_uuid: str) -> dict[str, list[str]]:
        return resources_of_director(self.admin(), self.cloud["project_id"], director_uuid)

    # CPIs
    def cpi(self, director_uuid: str, **openstack: Any) -> CpiProcess:
        directory = Path(tempfile.mkdtemp(prefix="job-", dir=self.workdir))
        config = write_cpi_json(directory, cpi_document(self.cloud, **openstack))
        command = cpi_command(config)
        if self.source is not None:  # a copy of src/, e.g. the CPI before a fix
            start = (
                f"import sys; sys.path.insert(0, {str(self.source)!r}); "
                "from bosh_openstack_cpi.cli import main; raise SystemExit(main())"
            )
            command = [sys.executable, "-I", "-c", start, str(config)]
        return CpiProcess(command, director_uuid=director_uuid)

    def director(self, director_uuid: str) -> Director:
        return Director(self.cpi(director_uuid))

    # addresses
    def take_ip(self) -> str:
        with self._lock:
            if not self._free_ips:
                raise CampaignProblem("the campaign ran out of static IPs")
            return self._free_ips.pop(0)

    def give_back_ip(self, address: str) -> None:
        with self._lock:
            self._free_ips.append(address)

    def allocate_floating_ip(self) -> tuple[str, str]:
        public = self.cloud["resources"]["networks"]["public"]["id"]
        created = self.project().network.create_ip(
            floating_network_id=public, description=FLOATING_IP_DESCRIPTION
        )
        return str(created.id), str(created.floating_ip_address)

    def release_floating_ip(self, floating_ip_id: str) -> None:
        self.project().network.delete_ip(floating_ip_id, ignore_missing=True)

    # a small stemcell, built once
    def stemcell(self) -> tuple[Path, dict[str, Any]]:
        with self._lock:
            if self._stemcell is None:
                built = build_stemcell(self.workdir / "stemcell", "raw", MIB)
                self._stemcell = (built.image, dict(built.cloud_properties))
            return self._stemcell

    # waiting for the cloud to settle between runs
    def server_idle(self, server_id: str, timeout: float = 120.0) -> None:
        def idle() -> bool:
            server = self.admin().compute.get_server(server_id)
            return bool(server.status == "ACTIVE" and not server.task_state)

        _wait(idle, f"server {server_id} to be ACTIVE with no task", timeout)

    def volume_idle(self, volume_id: str, timeout: float = 120.0) -> str:
        """Wait until the volume is available or in-use; its status."""
        status = [""]

        def idle() -> bool:
            status[0] = str(self.admin().block_storage.get_volume(volume_id).status)
            return status[0] in ("available", "in-use")

        _wait(idle, f"volume {volume_id} to be available or in-use", timeout)
        return status[0]

    def volume_size(self, volume_id: str) -> int:
        return int(self.admin().block_storage.get_volume(volume_id).size)


def _campaign_ips(cloud: dict[str, Any]) -> list[str]:
    network = cloud["resources"]["networks"]["manual_2"]
    taken = set(network.get("static_ips", []))
    if "static_range" not in network:
        raise CampaignProblem("the cloud description's manual_2 network has no static_range")
    first, last = (ipaddress.ip_address(a) for a in network["static_range"].split("-"))
    addresses = [
        str(first + n) for n in range(int(last) - int(first) + 1) if str(first + n) not in taken
    ]
    return [addresses[p] for p in CAMPAIGN_IP_POSITIONS if p < len(addresses)]


def _wait(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise CampaignProblem(f"timed out waiting for {what}")
        time.sleep(0.3)


class Director:
    """Fault-free CPI calls, as the director makes them around the faulted one."""

    def __init__(self, cpi: CpiProcess) -> None:
        self.cpi = cpi

    def call(self, method: str, *arguments: Any, attempts: int = 1) -> Any:
        """The result; CampaignProblem when the call keeps failing. `attempts` > 1 for
        follow-ups the director would repeat (a resource still settling after a fault)."""
        for attempt in range(1, attempts + 1):
            result = self.cpi.call(method, *arguments)
            if result.error is None:
                return result.result
            if attempt == attempts:
                raise CampaignProblem(f"clean {method}{tuple(arguments)!r} failed: {result.error}")
            time.sleep(2.0 * attempt)
        raise AssertionError("unreachable")


# --- families and scenarios ---------------------------------------------------------------
Fixture = dict[str, Any]


class Family:
    """A fixture several scenarios share (a VM, a disk), made with fault-free CPI calls."""

    name = "none"

    def prepare(self, env: Environment, director: Director) -> Fixture:
        return {}

    def release(self, env: Environment, director: Director, fixture: Fixture) -> None:
        """Remove the fixture."""


NO_FIXTURE = Family()


@dataclass
class Context:
    """What one run's hooks work with: the fixture of its chain, the run's own state, and
    fault-free CPI calls with the run's director UUID."""

    env: Environment
    director: Director
    fixture: Fixture
    director_uuid: str
    state: dict[str, Any] = field(default_factory=dict)
    _left: dict[str, list[str]] | None = None

    @property
    def vm(self) -> str:
        return str(self.fixture["vm"])

    @property
    def disk(self) -> str:
        return str(self.fixture["disk"])

    @property
    def ip(self) -> str:
        return str(self.fixture["ip"])

    def left(self, *, again: bool = False) -> dict[str, list[str]]:
        """What carries this run's director UUID on the cloud (looked up once per step)."""
        if self._left is None or again:
            self._left = self.env.leaks(self.director_uuid)
        return self._left

    def mine(self, kind: str) -> list[str]:
        return self.left().get(kind, [])

    def expect(self, condition: bool, what: str) -> None:
        if not condition:
            raise CampaignProblem(f"success, but {what}")


class Scenario:
    """One CPI method with the state it needs. `kind`: create, delete or other. Faults at
    the token request and at version discovery run the same code for every method: only
    the scenarios with `auth_faults` / `discovery_faults` get them."""

    name = ""
    method = ""
    kind = "other"
    family: Family = NO_FIXTURE
    auth_faults = False
    discovery_faults = False
    overrides: dict[str, Any] = {}  # noqa: RUF012 (read-only, per class)

    def before(self, run: Context) -> None:
        """Per-run state (made with the run's director UUID), e.g. the VM to delete."""

    def arguments(self, run: Context) -> list[Any]:
        raise NotImplementedError

    def known(self, run: Context) -> set[str]:
        """Ids the director knows about (per-run state), as opposed to leaked ones."""
        return {str(v) for v in run.state.values() if isinstance(v, str)}

    def verify(self, run: Context, result: Any) -> None:
        """A success must have done the job: CampaignProblem when the cloud's state (or the
        result) says otherwise."""

    def after(self, run: Context, outcome: Invocation) -> None:
        """The director's follow-up to the faulted call."""

    def recover(self, run: Context, left: dict[str, list[str]]) -> str:
        """After a SIGKILL: remove what was left (found by the director UUID) the way the
        director or an operator would; a sentence saying how."""
        done: list[str] = []
        for kind, method in (
            ("servers", "delete_vm"),
            ("snapshots", "delete_snapshot"),
            ("volumes", "delete_disk"),
            ("images", "delete_stemcell"),
        ):
            for resource_id in left.get(kind, []):
                run.director.call(method, resource_id, attempts=5)
                done.append(method)
        return ", ".join(f"{m} of the id found by director_uuid" for m in dict.fromkeys(done))

    def positions(self, learned: list[Position]) -> list[Position]:
        return [
            p
            for p in learned
            if (self.auth_faults or not p.auth) and (self.discovery_faults or not p.discovery)
        ]


# --- one run -------------------------------------------------------------------------------
def invoke(cpi: CpiProcess, method: str, arguments: list[Any], pid: PidBox) -> Invocation:
    """The CPI as the director runs it, with its pid known while it runs."""
    raw = json.dumps(cpi.request(method, *arguments)).encode()
    started = time.perf_counter()
    process = subprocess.Popen(
        cpi.command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cpi.env,
    )
    pid.pid = process.pid
    try:
        stdout, stderr = process.communicate(raw, timeout=CALL_TIMEOUT)
    finally:
        pid.pid = None
    seconds = time.perf_counter() - started
    text = stdout.decode("utf-8", "replace")
    response = json.loads(text) if text.strip() else None
    return Invocation(
        response, text, stderr.decode("utf-8", "replace"), process.returncode, seconds
    )


@dataclass
class Chain:
    """Runs that share one fixture (of one family), one after the other."""

    family: Family
    env: Environment
    secrets: tuple[str, ...]
    warm_cache: bool = False
    fixture: Fixture | None = None
    director_uuid: str = field(default_factory=lambda: f"campaign-{uuid.uuid4()}")

    def open(self) -> None:
        if self.fixture is None:
            director = self.env.director(self.director_uuid)
            self.fixture = self.family.prepare(self.env, director)

    def close(self) -> list[str]:
        """Remove the fixture; problems found (a leak of the fixture's director UUID)."""
        problems = []
        try:
            if self.fixture is not None:
                director = self.env.director(self.director_uuid)
                self.family.release(self.env, director, self.fixture)
        except CampaignProblem as problem:
            problems.append(f"fixture '{self.family.name}': removing it: {problem}")
        left = self.env.leaks(self.director_uuid)
        if left:
            problems.append(f"fixture '{self.family.name}': its resources are left: {left}")
        return problems

    def run(
        self, scenario: Scenario, position: Position | None, kind: str | None
    ) -> tuple[RunRecord, list[fp.Record]]:
        """One call of the scenario's method with `kind` at `position` (none: a clean run)."""
        env = self.env
        record = RunRecord(
            scenario.name, scenario.method, position.describe() if position else "(clean)", kind
        )
        started = time.monotonic()
        run_uuid = f"campaign-{uuid.uuid4()}"
        run = Context(env, env.director(run_uuid), self.fixture or {}, run_uuid)
        pid = PidBox()
        records: list[fp.Record] = []
        try:
            scenario.before(run)
            plan = fp.FaultPlan()
            if position is not None and kind is not None:
                plan = at_position(position, FAULT_KINDS[kind](pid))
            overrides: dict[str, Any] = {"token_cache": self.warm_cache, **scenario.overrides}
            if kind == "slow (read timeout)":
                overrides["connection_options"] = {"read_timeout": READ_TIMEOUT}
            arguments = scenario.arguments(run)
            first_plan = fp.FaultPlan() if self.warm_cache else plan
            with fp.FaultProxy(cloud_upstreams(env.admin(), env.cloud), first_plan) as proxy:
                cpi = env.cpi(run_uuid, auth_url=proxied_auth_url(proxy, env.cloud), **overrides)
                if self.warm_cache:
                    _fill_token_cache(cpi, env.workdir)
                    proxy.restart(plan)
                outcome = invoke(cpi, scenario.method, arguments, pid)
                time.sleep(0.2)  # a request the proxy still forwards (slow, term) is recorded
                records = list(proxy.records)
            self._check(record, outcome, records, kind)
            outcome = self._follow_up(scenario, record, outcome, run, arguments)
            if outcome.outcome == "success":
                scenario.verify(run, outcome.result)
            scenario.after(run, outcome)
        except CampaignProblem as problem:
            record.problems.append(str(problem))
        except Exception as unexpected:  # the campaign itself must go on
            record.problems.append(f"campaign error: {type(unexpected).__name__}: {unexpected}")
        try:
            left = run.left(again=True)
        except Exception as unexpected:
            left = {"(leak check failed)": [str(unexpected)]}
        if left:
            record.problems.append(f"{LEFT_AFTER_FOLLOW_UP}: {left}")
        record.run_seconds = round(time.monotonic() - started, 2)
        return record, records

    def _check(
        self,
        record: RunRecord,
        outcome: Invocation,
        records: list[fp.Record],
        kind: str | None,
    ) -> None:
        injected = [r for r in records if r.fault]
        record.injected = bool(injected)
        if injected:
            first = injected[0]
            record.injected_at = signature(first.service, first.method, first.path)
        record.requests = len(records)
        record.outcome = outcome.outcome
        record.seconds = round(outcome.seconds, 2)
        error = outcome.error
        if error is not None:
            record.ok_to_retry = bool(error.get("ok_to_retry"))
            record.message = str(error.get("message", ""))[:500]
        problems = record.problems
        if outcome.response is None:
            if not (record.injected and kind in KILLS):
                problems.append(f"no response (exit {outcome.returncode}): {outcome.stderr[-600:]}")
        elif outcome.returncode != 0:
            problems.append(f"exit status {outcome.returncode} with a response")
        if error is not None:
            if error.get("type") not in BOSH_ERROR_TYPES:
                problems.append(f"error type {error.get('type')!r} is not one the director knows")
            if not isinstance(error.get("ok_to_retry"), bool):
                problems.append("ok_to_retry is not a boolean")
            if "unexpectedly" in record.message or "Traceback" in record.message:
                problems.append("an unexpected (internal) failure")
        if "Traceback" in outcome.stderr:
            problems.append("a traceback in the log")
        for secret in self.secrets:
            if secret and secret in outcome.stdout + outcome.stderr:
                problems.append("a secret in the output")

    def _follow_up(
        self,
        scenario: Scenario,
        record: RunRecord,
        outcome: Invocation,
        run: Context,
        arguments: list[Any],
    ) -> Invocation:
        """Leak rules right after the call, the retry ok_to_retry promises, the recovery
        after a SIGKILL. The outcome the director's follow-up should act on."""
        if outcome.response is None:  # SIGKILL: what is left, and what removes it
            left = run.left()
            record.left_after_kill = left
            unknown = _unknown(left, scenario.known(run))
            if unknown or scenario.kind == "create":
                record.recovered_by = scenario.recover(run, unknown)
            return outcome
        failed = outcome.error is not None
        if (scenario.kind == "create" and failed) or (scenario.kind == "delete" and not failed):
            left = run.left()
            if left:
                verb = "failed create" if failed else "successful delete"
                record.problems.append(f"a {verb} left {left}")
                return outcome
        if failed and record.ok_to_retry:
            if outcome.error and outcome.error.get("type") not in RETRIABLE:
                record.problems.append("ok_to_retry on a type the director does not retry")
            again = invoke(run.director.cpi, scenario.method, arguments, PidBox())
            record.retried_ok = again.error is None
            if not record.retried_ok:
                record.problems.append(f"ok_to_retry was true but the retry failed: {again.error}")
            run.left(again=True)
            return again
        return outcome


WARM_MODE = ", token cache warm"


def _fill_token_cache(cpi: CpiProcess, workdir: Path) -> None:
    """Fault-free calls that leave a token, the catalog and the version discovery of
    Nova, Cinder and Glance in the CPI's token cache, so that the faulted call takes the
    fast path (the stdlib transport) as most calls under a director do. Nothing is made."""
    # A cache of its own: the cache is keyed by the auth URL, and a later proxy may get
    # the port of an earlier one, whose cached catalog points at listeners now closed.
    own = Path(tempfile.mkdtemp(prefix="cache-", dir=workdir))
    cpi.env["TMPDIR"] = str(own)
    missing = str(uuid.uuid4())
    for method in ("has_vm", "has_disk", "delete_stemcell"):
        result = cpi.call(method, missing)
        if result.error is not None:
            raise CampaignProblem(f"filling the token cache: {method} failed: {result.error}")


def _unknown(left: dict[str, list[str]], known: set[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for kind, ids in left.items():
        unknown = [i for i in ids if i not in known]
        if unknown:
            found[kind] = unknown
    return found


# --- the campaign ----------------------------------------------------------------------------
@dataclass
class Campaign:
    records: list[RunRecord]
    problems: list[str]
    learned: dict[str, list[str]]
    seconds: float
    mode: str
    seed: int

    @property
    def injected(self) -> list[RunRecord]:
        return [r for r in self.records if r.injected]

    def failures(self) -> list[str]:
        found = list(self.problems)
        for r in self.records:
            for problem in r.problems:
                found.append(f"{r.scenario} | {r.fault} at {r.position}: {problem}")
        return found

    def dump(self, path: Path) -> None:
        document = {
            "mode": self.mode,
            "seed": self.seed,
            "seconds": self.seconds,
            "learned": self.learned,
            "problems": self.problems,
            "records": [asdict(r) for r in self.records],
        }
        path.write_text(json.dumps(document, indent=1))

    @classmethod
    def load(cls, path: Path) -> Campaign:
        document = json.loads(path.read_text())
        return cls(
            [RunRecord(**r) for r in document["records"]],
            document["problems"],
            document["learned"],
            document["seconds"],
            document["mode"],
            document["seed"],
        )


class KindCycle:
    """Fault kinds handed out in shuffled rounds, so that a sample covers them evenly."""

    def __init__(self, kinds: list[str], rng: random.Random) -> None:
        self._kinds = kinds
        self._rng = rng
        self._round: list[str] = []

    def next(self) -> str:
        if not self._round:
            self._round = list(self._kinds)
            self._rng.shuffle(self._round)
        return self._round.pop()


def plan_runs(
    positions: list[Position], *, full: bool, rng: random.Random, cycles: dict[str, KindCycle]
) -> list[tuple[Position, str]]:
    """Full: every kind at requests that change something, and at reads (retried the same
    way whatever the fault) one fault the request never arrived with, one whose answer
    was lost, SIGKILL and SIGTERM. Sampled: two positions (those that change something
    first), a kind each from the campaign-wide cycle (but the minute-long ones)."""
    if full:
        runs: list[tuple[Position, str]] = []
        for position in positions:
            if position.mutating:
                runs += [(position, kind) for kind in FAULT_KINDS]
            else:
                kinds = [cycles["before"].next(), cycles["after"].next(), "SIGKILL", "SIGTERM"]
                runs += [(position, kind) for kind in kinds]
        return runs
    mutating = [p for p in positions if p.mutating and p.occurrence == 1]
    reads = [p for p in positions if not p.mutating]
    rng.shuffle(mutating)
    rng.shuffle(reads)
    picked = (mutating + reads)[:2] if mutating else reads[:1]
    return [(p, _affordable(p, cycles["all"])) for p in picked]


# Creates answered by these faults (the request may be on its way) are looked for during
# a minute before anything else happens: the full campaign has them, a sample does not.
_MINUTE_LONG = {"504", "reset"}
_CREATES = re.compile(r"^\S+ POST /\S*/(servers|volumes|snapshots)$")


def _affordable(position: Position, cycle: KindCycle) -> str:
    kind = cycle.next()
    while kind in _MINUTE_LONG and _CREATES.match(position.signature):
        kind = cycle.next()
    return kind


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


Runs = list[tuple[Scenario, Position, str]]


def run_campaign(
    cloud: dict[str, Any],
    scenarios: list[Scenario],
    *,
    full: bool = False,
    warm_cache: bool = False,
    workers: int = 6,
    chain_size: int | None = None,
    seed: int = 0,
    source: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Campaign:
    """Learn each scenario's requests (one chain per family), then run the planned faults
    in chains of at most `chain_size` runs (10 for the full campaign, 4 for a sample, whose
    few runs then spread over more workers), `workers` chains at a time."""
    chain_size = chain_size or (10 if full else 4)
    started = time.monotonic()
    rng = random.Random(seed)  # noqa: S311 (sampling, not security)
    cycles = {
        "all": KindCycle(list(FAULT_KINDS), rng),
        "before": KindCycle(list(BEFORE_FORWARDING), rng),
        "after": KindCycle(list(AFTER_FORWARDING), rng),
    }
    secrets = (str(cloud["openstack"].get("api_key") or ""), AGENT_PASSWORD)
    records: list[RunRecord] = []
    problems: list[str] = []
    learned: dict[str, list[str]] = {}
    lock = threading.Lock()
    families = list(dict.fromkeys(s.family for s in scenarios))

    def keep(record: RunRecord) -> None:
        with lock:
            records.append(record)
        flag = f" PROBLEM: {' | '.join(record.problems)[:400]}" if record.problems else ""
        progress(
            f"{record.scenario:30} {record.fault or '(clean)':25} {record.position[:60]:60} "
            f"-> {record.outcome}{flag} ({record.run_seconds:.0f} s)"
        )

    with tempfile.TemporaryDirectory(prefix="bosh-cpi-campaign-") as scratch:
        env = Environment(cloud, Path(scratch), source)

        def learn(family: Family) -> tuple[Chain, dict[str, list[Position]]]:
            chain = Chain(family, env, secrets, warm_cache)
            found: dict[str, list[Position]] = {}
            try:
                chain.open()
                for scenario in [s for s in scenarios if s.family is family]:
                    record, requests = chain.run(scenario, None, None)
                    keep(record)
                    if record.problems or record.outcome != "success":
                        raise CampaignProblem(
                            f"{scenario.name}: the clean run failed: {record.outcome} "
                            f"{record.message} {record.problems}"
                        )
                    found[scenario.name] = positions_of(requests)
            except BaseException:
                with lock:
                    problems.extend(chain.close())
                raise
            return chain, found

        def run_chain(chain: Chain, runs: Runs) -> None:
            try:
                chain.open()
                for scenario, position, kind in runs:
                    keep(chain.run(scenario, position, kind)[0])
            except Exception as error:
                with lock:
                    problems.append(f"fixture '{chain.family.name}': chain failed: {error}")
            finally:
                found = chain.close()
                with lock:
                    problems.extend(found)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            learning = {family: pool.submit(learn, family) for family in families}
            chains: list[Future[None]] = []
            for family in families:
                try:
                    chain, positions = learning[family].result()
                except Exception as error:
                    problems.append(str(error))
                    continue
                runs: Runs = []
                for scenario in [s for s in scenarios if s.family is family]:
                    chosen = scenario.positions(positions[scenario.name])
                    learned[scenario.name] = [p.describe() for p in chosen]
                    planned = plan_runs(chosen, full=full, rng=rng, cycles=cycles)
                    runs += [(scenario, p, k) for p, k in planned]
                rng.shuffle(runs)  # the scenarios of a family take turns
                pieces = list(_chunks(runs, chain_size)) or [[]]
                chains.append(pool.submit(run_chain, chain, pieces[0]))
                for piece in pieces[1:]:
                    chains.append(
                        pool.submit(run_chain, Chain(family, env, secrets, warm_cache), piece)
                    )
            for future in chains:
                future.result()
    return Campaign(
        records,
        problems,
        learned,
        round(time.monotonic() - started, 1),
        ("full" if full else "sampled") + (WARM_MODE if warm_cache else ""),
        seed,
    )


# --- clean-up after an interrupted campaign ---------------------------------------------------
FLOATING_IP_DESCRIPTION = "bosh-openstack-cpi fault campaign"


def sweep(cloud: dict[str, Any], prefix: str = "campaign-") -> dict[str, int]:
    """Remove what an interrupted campaign left: everything whose director UUID starts with
    `prefix`, and the floating IPs it allocated. Counts per kind."""
    import openstack

    from bosh_openstack_cpi.tagging import DIRECTOR_UUID_KEY, director_of_port

    admin: Any = openstack.connect(load_yaml_config=False, load_envvars=False, **cloud["admin"])
    project = cloud["project_id"]

    def ours(value: str | None) -> bool:
        return bool(value and value.startswith(prefix))

    counts: dict[str, int] = {"load balancer pool members": _sweep_members(admin, ours)}
    servers = [
        s
        for s in admin.compute.servers(all_projects=True, project_id=project)
        if ours((s.metadata or {}).get(DIRECTOR_UUID_KEY))
    ]
    for server in servers:
        admin.compute.delete_server(server, ignore_missing=True)
    for server in servers:
        admin.compute.wait_for_delete(server, wait=300)
    counts["servers"] = len(servers)
    ports = [
        p for p in admin.network.ports(project_id=project) if ours(director_of_port(p.description))
    ]
    for port in ports:
        admin.network.delete_port(port, ignore_missing=True)
    counts["ports"] = len(ports)
    snapshots = [
        s
        for s in admin.block_storage.snapshots(all_projects=True, project_id=project)
        if ours((s.metadata or {}).get(DIRECTOR_UUID_KEY))
    ]
    for snapshot in snapshots:
        admin.block_storage.delete_snapshot(snapshot, ignore_missing=True)
    for snapshot in snapshots:
        admin.block_storage.wait_for_delete(snapshot, wait=300)
    counts["snapshots"] = len(snapshots)
    volumes = [
        v
        for v in admin.block_storage.volumes(all_projects=True, project_id=project)
        if ours((v.metadata or {}).get(DIRECTOR_UUID_KEY))
    ]
    for volume in volumes:
        volume_id = str(volume.id)
        _wait(
            partial(_settled_volume, admin, volume_id),
            f"volume {volume_id} to be deletable (available or error)",
            300,
        )
        admin.block_storage.delete_volume(volume, ignore_missing=True)
    counts["volumes"] = len(volumes)
    images = [i for i in admin.image.images() if ours((i.properties or {}).get(DIRECTOR_UUID_KEY))]
    for image in images:
        admin.image.delete_image(image, ignore_missing=True)
    counts["images"] = len(images)
    floating = [
        f for f in admin.network.ips(project_id=project) if f.description == FLOATING_IP_DESCRIPTION
    ]
    for address in floating:
        admin.network.delete_ip(address, ignore_missing=True)
    counts["floating IPs"] = len(floating)
    return counts


def _sweep_members(admin: Any, ours: Callable[[str | None], bool]) -> int:
    """Remove the Octavia members named with a matching director UUID (none without
    Octavia), each once its load balancer accepts changes."""
    from bosh_openstack_cpi.tagging import director_of_port
    from tests.integration.leaks import has_load_balancer

    if not has_load_balancer(admin):
        return 0
    removed = 0
    for pool in admin.load_balancer.pools():
        for member in admin.load_balancer.members(pool):
            if not ours(director_of_port(member.name)):
                continue
            for balancer in pool.loadbalancers or []:
                admin.load_balancer.wait_for_load_balancer(balancer["id"], wait=300)
            admin.load_balancer.delete_member(member, pool, ignore_missing=True)
            removed += 1
    for pool in admin.load_balancer.pools():
        for balancer in pool.loadbalancers or []:
            admin.load_balancer.wait_for_load_balancer(balancer["id"], wait=300)
    return removed


def _settled_volume(admin: Any, volume_id: str) -> bool:
    """True once the volume can be deleted (or is gone): detached after its server went."""
    import openstack

    try:
        volume = admin.block_storage.get_volume(volume_id)
    except openstack.exceptions.NotFoundException:
        return True
    return volume.status in ("available", "error", "error_extending", "error_restoring")
