"""Checks: a name, an outcome (pass, warn, fail, skip), what was found, and for a failure
the one thing to do about it. The runner prints a progress line per check as it ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bosh_openstack_cpi.operator.session import Printer

PASSED = "pass"
WARNED = "warn"
FAILED = "fail"
SKIPPED = "skip"


@dataclass(frozen=True)
class Outcome:
    status: str
    detail: str
    remedy: str = ""


def passed(detail: str) -> Outcome:
    return Outcome(PASSED, detail)


def warning(detail: str, remedy: str = "") -> Outcome:
    return Outcome(WARNED, detail, remedy)


class CheckFailed(Exception):
    """Raised by a check: `str(self)` is what was found, `remedy` what to do."""

    def __init__(self, detail: str, remedy: str) -> None:
        super().__init__(detail)
        self.remedy = remedy


@dataclass(frozen=True)
class CheckResult:
    group: str
    name: str
    status: str
    detail: str
    remedy: str
    seconds: float

    @property
    def failed(self) -> bool:
        return self.status in (FAILED, SKIPPED)


# What to do about an error a check did not expect, by words in the CPI's message.
_GENERIC_REMEDIES = (
    (
        "rejected the credentials",
        "fix openstack.api_key (or the application credential) in cpi.json",
    ),
    (
        "Cannot connect",
        "check openstack.auth_url and that this machine reaches it (routes, firewall, proxy)",
    ),
    ("TLS", "set openstack.connection_options.ca_cert to the CA that signed the endpoints"),
    (
        "not in the catalog",
        "register the service's endpoint in Keystone, or fix openstack.region / endpoint_type",
    ),
)


def remedy_for(message: str) -> str:
    for words, remedy in _GENERIC_REMEDIES:
        if words.lower() in message.lower():
            return remedy
    return "read the message above; the CPI would fail the same way during a deploy"


class Runner:
    def __init__(self, printer: Printer) -> None:
        self.printer = printer
        self.results: list[CheckResult] = []

    def run(self, group: str, name: str, check: Callable[[], Outcome]) -> CheckResult:
        started = time.monotonic()
        try:
            outcome = check()
        except CheckFailed as failure:
            outcome = Outcome(FAILED, str(failure), failure.remedy)
        except Exception as error:  # any CPI error is a finding, not a crash of the tool
            message = f"{type(error).__name__}: {error}"
            outcome = Outcome(FAILED, message, remedy_for(message))
        result = CheckResult(
            group,
            name,
            outcome.status,
            outcome.detail,
            outcome.remedy,
            time.monotonic() - started,
        )
        self._record(result)
        return result

    def skip(self, group: str, name: str, reason: str) -> CheckResult:
        result = CheckResult(group, name, SKIPPED, reason, "fix the failure it depends on", 0.0)
        self._record(result)
        return result

    def _record(self, result: CheckResult) -> None:
        self.results.append(result)
        mark = {PASSED: "ok  ", WARNED: "WARN", FAILED: "FAIL", SKIPPED: "skip"}[result.status]
        self.printer.line(
            f"[{mark}] {result.group}: {result.name} ({result.seconds:.2f} s) {result.detail}"
        )
        if result.remedy and result.status != PASSED:
            self.printer.line(f"       remedy: {result.remedy}")

    @property
    def all_passed(self) -> bool:
        return not any(r.failed for r in self.results)
