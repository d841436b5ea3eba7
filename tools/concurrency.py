"""Many CPI processes at once against one cloud, as a director with many workers runs them
(tests/integration/test_concurrency.py, RELIABILITY.md).

- `lifecycles`: N disk+VM lifecycles in parallel, each create_disk -> create_vm (next to
  the disk) -> attach_disk -> delete_vm -> delete_disk, half on a manual network (a static
  IP each), half on a dynamic one.
- `race`: two create_vm calls at the same moment that want the same floating IP or the
  same fixed IP.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tools.cpi_process import CpiProcess

AGENT_ENV: dict[str, Any] = {"bosh": {"group": "concurrency"}}


def manual_network(
    cloud: dict[str, Any], address: str, network: str = "manual_1"
) -> dict[str, Any]:
    description = cloud["resources"]["networks"][network]
    return {
        "type": "manual",
        "ip": address,
        "netmask": "255.255.255.0",
        "gateway": description.get("gateway"),
        "dns": ["127.0.0.53"],
        "default": ["dns", "gateway"],
        "cloud_properties": {"net_id": description["id"]},
    }


def dynamic_network(cloud: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "dynamic",
        "default": ["dns", "gateway"],
        "dns": ["127.0.0.53"],
        "cloud_properties": {"net_id": cloud["resources"]["networks"]["dhcp"]["id"]},
    }


def create_vm_arguments(
    cloud: dict[str, Any], networks: dict[str, Any], disk_cids: list[str] | None = None
) -> list[Any]:
    flavor = {"instance_type": cloud["resources"]["flavors"]["default"]}
    image = cloud["resources"]["image_id"]
    return [f"agent-{uuid.uuid4().hex[:8]}", image, flavor, networks, disk_cids or [], AGENT_ENV]


@dataclass
class Step:
    method: str
    seconds: float
    error: dict[str, Any] | None


@dataclass
class Lifecycle:
    index: int
    network: str
    steps: list[Step] = field(default_factory=list)

    @property
    def failures(self) -> list[Step]:
        return [s for s in self.steps if s.error is not None]


def _run(cpi: CpiProcess, record: Lifecycle, method: str, *arguments: Any) -> Any:
    result = cpi.call(method, *arguments)
    record.steps.append(Step(method, round(result.seconds, 2), result.error))
    if result.error is not None:
        raise RuntimeError(f"{method}: {result.error}")
    return result.result


def one_lifecycle(
    cpi: CpiProcess, cloud: dict[str, Any], index: int, address: str | None
) -> Lifecycle:
    """create_disk -> create_vm -> attach_disk -> delete_vm -> delete_disk; on a failure,
    whatever exists is still deleted (the failure stays recorded)."""
    networks = (
        {"private": manual_network(cloud, address)}
        if address
        else {"default": dynamic_network(cloud)}
    )
    record = Lifecycle(index, "manual" if address else "dynamic")
    disk_cid = vm_cid = None
    try:
        disk_cid = _run(cpi, record, "create_disk", 1024, {}, None)
        arguments = create_vm_arguments(cloud, networks, [disk_cid])
        vm_cid = _run(cpi, record, "create_vm", *arguments)[0]
        _run(cpi, record, "attach_disk", vm_cid, disk_cid)
    except RuntimeError:
        pass  # recorded; what exists is deleted below
    finally:
        if vm_cid is not None:
            with contextlib.suppress(RuntimeError):
                _run(cpi, record, "delete_vm", vm_cid)
        if disk_cid is not None:
            with contextlib.suppress(RuntimeError):
                _run(cpi, record, "delete_disk", disk_cid)
    return record


@dataclass
class LifecycleRun:
    lifecycles: list[Lifecycle]
    seconds: float

    @property
    def failures(self) -> list[str]:
        return [
            f"#{lc.index} ({lc.network}) {step.method}: {step.error}"
            for lc in self.lifecycles
            for step in lc.failures
        ]

    def latencies(self) -> dict[str, dict[str, float]]:
        """Per method: median, 95th percentile and maximum seconds of the calls."""
        by_method: dict[str, list[float]] = {}
        for lifecycle in self.lifecycles:
            for step in lifecycle.steps:
                by_method.setdefault(step.method, []).append(step.seconds)
        figures = {}
        for method, seconds in by_method.items():
            ordered = sorted(seconds)
            p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
            figures[method] = {
                "calls": float(len(ordered)),
                "median": round(statistics.median(ordered), 2),
                "p95": round(p95, 2),
                "max": round(ordered[-1], 2),
            }
        return figures


def lifecycles(cpis: list[CpiProcess], cloud: dict[str, Any], addresses: list[str]) -> LifecycleRun:
    """One lifecycle per CPI, all at once (a barrier): those with an address from
    `addresses` on the manual network, the others on the dynamic one."""
    barrier = threading.Barrier(len(cpis))

    def worker(index: int) -> Lifecycle:
        address = addresses[index] if index < len(addresses) else None
        barrier.wait(timeout=120)
        return one_lifecycle(cpis[index], cloud, index, address)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(cpis)) as pool:
        done = list(pool.map(worker, range(len(cpis))))
    return LifecycleRun(done, round(time.monotonic() - started, 1))


@dataclass
class RaceResult:
    outcomes: list[tuple[Any, dict[str, Any] | None]]  # (result, error) of each create_vm

    @property
    def winners(self) -> list[str]:
        return [result[0] for result, error in self.outcomes if error is None]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [error for _, error in self.outcomes if error is not None]


def race(cpis: list[CpiProcess], arguments: list[list[Any]]) -> RaceResult:
    """create_vm with each argument list (and CPI), all released at the same moment."""
    barrier = threading.Barrier(len(arguments))

    def attempt(index: int) -> tuple[Any, dict[str, Any] | None]:
        barrier.wait(timeout=60)
        result = cpis[index].call("create_vm", *arguments[index])
        return result.result, result.error

    with ThreadPoolExecutor(max_workers=len(arguments)) as pool:
        return RaceResult(list(pool.map(attempt, range(len(arguments)))))
