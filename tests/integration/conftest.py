"""Integration tests run against a real OpenStack: the local test cloud (testcloud/)
by default, or the cloud described by $BOSH_CPI_TEST_CLOUD (docs/testing.md)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.leaks import resources_of_director
from tools.cloud_description import (
    cpi_document,
    load_description,
    project_connection,
    write_cpi_json,
)
from tools.cpi_process import CpiProcess, cpi_command


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def cloud() -> dict[str, Any]:
    try:
        return load_description()
    except (FileNotFoundError, OSError) as error:
        pytest.fail(f"{error}", pytrace=False)


# Director UUID prefixes of the suite's own runs (tests, the fault campaign).
TEST_DIRECTOR_PREFIXES = ("test-", "campaign-")


@pytest.fixture(scope="session", autouse=True)
def leftovers_of_interrupted_runs(cloud: dict[str, Any], request: pytest.FixtureRequest) -> None:
    """A run that was stopped half-way (a session's end, Ctrl-C, a killed CI job) leaves
    VMs that hold the static IPs the next run wants: remove everything the suite's own
    director UUIDs left before the first test. Two suites must not share a cloud at the
    same time (docs/testing.md)."""
    from tools.fault_campaign import sweep

    removed: dict[str, int] = {}
    for prefix in TEST_DIRECTOR_PREFIXES:
        for kind, count in sweep(cloud, prefix).items():
            removed[kind] = removed.get(kind, 0) + count
    found = {kind: count for kind, count in removed.items() if count}
    if found:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"removed what earlier, interrupted runs left: {found}")


@pytest.fixture
def director_uuid() -> str:
    """A fresh director UUID per test: everything the CPI creates in it carries this UUID."""
    return f"{TEST_DIRECTOR_PREFIXES[0]}{uuid.uuid4()}"


# BOSH_CPI_TEST_LAYOUT=path-prefixed: the CPIs of `cpi`/`cpi_for` reach the cloud through
# a front that publishes every service under a path prefix (`/compute/v2.1`, `/volume/v3`,
# ..., tools/fault_proxy.py with no faults), as devstack and single-endpoint fronts do.
# scripts/test runs the VM, disk and stemcell suites once more that way (issue 15).
LAYOUT_VARIABLE = "BOSH_CPI_TEST_LAYOUT"
LAYOUTS = ("direct", "path-prefixed")


@pytest.fixture(scope="session")
def cpi_auth_url(cloud: dict[str, Any], admin: Any) -> Iterator[str | None]:
    """The auth URL the suite's CPIs use: None (the cloud's own) or the front's."""
    layout = os.environ.get(LAYOUT_VARIABLE) or "direct"
    if layout not in LAYOUTS:
        pytest.fail(f"{LAYOUT_VARIABLE}={layout!r}: expected one of {LAYOUTS}", pytrace=False)
    if layout == "direct":
        yield None
        return
    from tests.integration.faults import faulty_cloud, proxied_auth_url
    from tools.fault_proxy import FaultPlan

    with faulty_cloud(admin, cloud, FaultPlan(), path_prefixes=True) as front:
        yield proxied_auth_url(front, cloud)


@pytest.fixture
def cpi_for(
    cloud: dict[str, Any], tmp_path: Path, director_uuid: str, cpi_auth_url: str | None
) -> Callable[..., CpiProcess]:
    """A CPI configured for the test cloud; keyword arguments override `openstack` keys
    (None removes one)."""

    def make(ca_cert_path: Path | None = None, **openstack: Any) -> CpiProcess:
        if cpi_auth_url is not None:
            openstack.setdefault("auth_url", cpi_auth_url)
        directory = tmp_path / f"job-{len(list(tmp_path.glob('job-*')))}"
        directory.mkdir()
        config = write_cpi_json(directory, cpi_document(cloud, **openstack))
        return CpiProcess(cpi_command(config, ca_cert_path), director_uuid=director_uuid)

    return make


@pytest.fixture
def cpi(cpi_for: Callable[..., CpiProcess]) -> CpiProcess:
    return cpi_for()


@pytest.fixture(scope="session")
def admin(cloud: dict[str, Any]) -> Iterator[Any]:
    """An admin SDK connection, for checking the cloud's state behind the CPI's back."""
    import openstack

    connection = openstack.connect(load_yaml_config=False, load_envvars=False, **cloud["admin"])
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def project_sdk(cloud: dict[str, Any]) -> Iterator[Any]:
    """An SDK connection as the CPI's own user and project, for arranging test fixtures."""
    connection = project_connection(cloud)
    yield connection
    connection.close()


@pytest.fixture
def leak_check(admin: Any, cloud: dict[str, Any], director_uuid: str) -> Iterator[None]:
    """Use in every test that creates resources through the CPI: after the test, nothing
    carrying this test's director UUID may remain on the cloud."""
    yield
    left = resources_of_director(admin, cloud["project_id"], director_uuid)
    assert left == {}, f"resources left behind: {left}"
