"""`bosh-openstack-cpi validate` against the real cloud: every check passes on the healthy
cloud, and each one fails when the cloud or the configuration is broken the way it names."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.integration.operator_support import (
    check_lines,
    cloud_config,
    remedy_after,
    run_tool,
    write_config,
)

# Only the checks that create nothing: a failure of theirs is then the only one.
STATIC = "--no-end-to-end"


def validate(
    tmp_path: Path,
    cloud: dict[str, Any],
    director_uuid: str,
    config: dict[str, Any] | None,
    *extra: str,
    **openstack: Any,
) -> subprocess.CompletedProcess[str]:
    cpi_json, config_path = write_config(tmp_path / "job", cloud, config, **openstack)
    arguments = ["validate", str(cpi_json), "--director-uuid", director_uuid, *extra]
    if config_path is not None:
        arguments += ["--cloud-config", str(config_path)]
    return run_tool(*arguments)


def test_a_healthy_cloud_passes_every_check_and_the_end_to_end_run(
    tmp_path, cloud, director_uuid, leak_check
):
    reports = [tmp_path / "report.md", tmp_path / "report.xml", tmp_path / "report.html"]
    arguments = [a for r in reports for a in ("--report", str(r))]

    completed = validate(tmp_path, cloud, director_uuid, cloud_config(cloud), *arguments)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert check_lines(completed.stdout, "FAIL") == []
    assert check_lines(completed.stdout, "skip") == []
    passed = "\n".join(check_lines(completed.stdout, "ok  "))
    for step in (
        "Keystone authentication",
        "create_stemcell (a 1 MiB image it builds)",  # uploaded to Glance
        "quotas",
        "security groups",
        "create_vm on network 'manual' with floating IP",
        "create_vm on network 'dynamic'",
        "attach_disk",
        "snapshot_disk",
        "detach_disk",
        "nothing left on the cloud",
    ):
        assert step in passed, step
    markdown = reports[0].read_text()
    assert "| pass | end-to-end | snapshot_disk |" in markdown
    suite = ElementTree.parse(reports[1]).getroot().find("testsuite")  # noqa: S314 (ours)
    assert suite is not None and suite.get("failures") == "0"
    assert len(suite.findall("testcase")) == len(check_lines(completed.stdout, "ok  "))


def test_a_flavor_that_does_not_exist_fails_the_flavor_check(tmp_path, cloud, director_uuid):
    completed = validate(
        tmp_path,
        cloud,
        director_uuid,
        cloud_config(cloud, instance_type="m1.no-such-flavor"),
        STATIC,
    )

    assert completed.returncode == 1
    [failure] = check_lines(completed.stdout, "FAIL")
    assert "compute: flavors" in failure and "m1.no-such-flavor" in failure
    assert remedy_after(completed.stdout, "compute: flavors").startswith(
        "remedy: set instance_type"
    )


def test_load_balancer_pools_are_checked_by_name(tmp_path, cloud, director_uuid):
    """Needs Octavia (resources.loadbalancer): the pool that exists passes, the other is
    named in the failure."""
    existing = sorted(cloud["resources"]["loadbalancer"]["pools"])[0]
    pools = [{"name": existing, "port": 80}, {"name": "no-such-pool", "port": 80}]
    completed = validate(
        tmp_path, cloud, director_uuid, cloud_config(cloud, loadbalancer_pools=pools), STATIC
    )

    assert completed.returncode == 1
    [failure] = check_lines(completed.stdout, "FAIL")
    assert "network: load balancer pools" in failure
    assert "Load balancer pool 'no-such-pool' does not exist" in failure
    assert remedy_after(completed.stdout, "network: load balancer pools").startswith(
        "remedy: create the pools in Octavia"
    )


@contextlib.contextmanager
def security_group(project_sdk: Any, ports: tuple[int, ...]) -> Iterator[str]:
    """A group allowing these TCP ports from anywhere and everything from itself."""
    group = project_sdk.network.create_security_group(name=f"test-operator-{uuid.uuid4().hex[:8]}")
    try:
        for port in ports:
            project_sdk.network.create_security_group_rule(
                security_group_id=group.id,
                direction="ingress",
                protocol="tcp",
                port_range_min=port,
                port_range_max=port,
                remote_ip_prefix="0.0.0.0/0",
            )
        project_sdk.network.create_security_group_rule(
            security_group_id=group.id, direction="ingress", remote_group_id=group.id
        )
        yield str(group.name)
    finally:
        project_sdk.network.delete_security_group(group.id)


def test_a_security_group_without_6868_fails_the_security_group_check(
    tmp_path, cloud, director_uuid, project_sdk
):
    with security_group(project_sdk, (22, 25555)) as name:
        completed = validate(
            tmp_path,
            cloud,
            director_uuid,
            cloud_config(cloud),
            STATIC,
            default_security_groups=[name],
        )

    assert completed.returncode == 1
    [failure] = check_lines(completed.stdout, "FAIL")
    assert "network: security groups" in failure
    assert f"groups {name}: no ingress rule for TCP 6868" in failure
    assert failure.count("no ingress rule") == 1  # 22 and 25555 are open


def test_a_compute_quota_below_the_compilation_workers_fails_the_quota_check(
    tmp_path, cloud, director_uuid, admin
):
    project = cloud["project_id"]
    before = admin.get_compute_quotas(project)
    admin.set_compute_quotas(project, instances=1)  # two compilation workers need two
    try:
        completed = validate(tmp_path, cloud, director_uuid, cloud_config(cloud), STATIC)
    finally:
        admin.set_compute_quotas(project, instances=before.instances)
    assert admin.get_compute_quotas(project).instances == before.instances

    assert completed.returncode == 1
    [failure] = check_lines(completed.stdout, "FAIL")
    assert "capacity: quotas" in failure and "too little left for instances" in failure
    assert "need 2" in failure
    assert "openstack quota set" in remedy_after(completed.stdout, "capacity: quotas")


def test_a_subnet_without_dhcp_fails_when_use_dhcp_is_on(tmp_path, cloud, director_uuid):
    completed = validate(tmp_path, cloud, director_uuid, cloud_config(cloud), STATIC, use_dhcp=True)

    assert completed.returncode == 1
    [failure] = check_lines(completed.stdout, "FAIL")
    subnet = cloud["resources"]["networks"]["manual_1"]
    assert "network: networks and subnets" in failure
    assert f"subnet {subnet['cidr']} ({subnet['subnet_id']}) has DHCP off" in failure
    assert "openstack.use_dhcp: false" in remedy_after(completed.stdout, "networks and subnets")


def test_wrong_credentials_fail_authentication_and_are_not_printed(tmp_path, cloud, director_uuid):
    wrong = "not-the-password-8d1f"
    completed = validate(tmp_path, cloud, director_uuid, cloud_config(cloud), api_key=wrong)
    assert "end-to-end" not in completed.stdout  # nothing after authentication failed

    assert completed.returncode == 1
    [failure] = check_lines(completed.stdout, "FAIL")
    assert "identity: Keystone authentication" in failure and "HTTP 401" in failure
    assert "openstack.api_key" in remedy_after(completed.stdout, "Keystone authentication")
    assert check_lines(completed.stdout, "ok  ")[0].startswith("[ok  ] configuration")
    assert wrong not in completed.stdout + completed.stderr


def test_an_unreachable_endpoint_fails_authentication(tmp_path, cloud, director_uuid):
    with contextlib.closing(__import__("socket").socket()) as unused:
        unused.bind(("127.0.0.1", 0))  # a port nothing listens on
        port = unused.getsockname()[1]
        completed = validate(
            tmp_path, cloud, director_uuid, None, auth_url=f"http://127.0.0.1:{port}/v3"
        )

    assert completed.returncode == 1
    [failure] = check_lines(completed.stdout, "FAIL")
    assert "Keystone authentication" in failure and "Cannot connect" in failure
    assert "openstack.auth_url" in remedy_after(completed.stdout, "Keystone authentication")


def test_a_failed_end_to_end_step_still_deletes_what_it_made(
    tmp_path, cloud, director_uuid, leak_check
):
    config = cloud_config(cloud)
    config["disk_types"][0]["cloud_properties"]["type"] = "no-such-volume-type"
    image = cloud["resources"]["image_id"]

    completed = validate(tmp_path, cloud, director_uuid, config, "--image", image)

    assert completed.returncode == 1
    failed = "\n".join(check_lines(completed.stdout, "FAIL"))
    assert "end-to-end: create_disk" in failed
    assert "block storage: volume types" in failed  # the static check saw it coming
    assert "[skip] end-to-end: attach_disk" in completed.stdout
    cleaned = "\n".join(check_lines(completed.stdout, "ok  "))
    assert "end-to-end: clean up after the failure" in cleaned
    assert "end-to-end: nothing left on the cloud" in cleaned
    # leak_check: nothing with this director UUID is left on the cloud


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Debian's chromium is not installed: run scripts/setup", pytrace=False)
    return found


class _Rows(HTMLParser):
    """The body rows of one table of a DOM: (the row's class, the cells' texts)."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.inside, self.in_body = table_id, False, False
        self.rows: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table":
            self.inside = found.get("id") == self.table_id
        elif tag == "tbody" and self.inside:
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.rows.append((found.get("class") or "", []))
        elif tag == "td" and self.in_body:
            self.rows[-1][1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("tbody", "table"):
            self.in_body = False

    def handle_data(self, data: str) -> None:
        if self.in_body and self.rows and self.rows[-1][1]:
            self.rows[-1][1][-1] += data


def table_rows(dom: str, table_id: str) -> list[tuple[str, list[str]]]:
    parser = _Rows(table_id)
    parser.feed(dom)
    return parser.rows


def test_the_html_report_renders_its_table_in_a_headless_browser(tmp_path, cloud, director_uuid):
    report = tmp_path / "report.html"
    completed = validate(
        tmp_path,
        cloud,
        director_uuid,
        cloud_config(cloud, instance_type="m1.no-such-flavor"),
        STATIC,
        "--report",
        str(report),
    )
    assert completed.returncode == 1
    checks = sum(len(check_lines(completed.stdout, s)) for s in ("ok  ", "WARN", "FAIL"))

    browser = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [*browser, "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [*browser, f"--screenshot={screenshot}", "--window-size=1400,900", report.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )

    # the DOM the browser built: one row per check, the failure marked, its remedy shown
    rows = table_rows(dom, "checks")
    assert len(rows) == checks
    [failed] = [cells for css, cells in rows if css == "fail"]
    assert failed[:3] == ["FAIL", "compute", "flavors"]
    assert failed[5].startswith("set instance_type")
    for fetching in ("<script", "<link", "src=", "url("):  # self-contained: nothing fetched
        assert fetching not in dom
    assert (
        screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
    )


def test_the_reports_are_written_in_the_format_their_name_says(tmp_path, cloud, director_uuid):
    markdown, xml = tmp_path / "r.md", tmp_path / "r.xml"
    completed = validate(
        tmp_path, cloud, director_uuid, None, "--report", str(markdown), "--report", str(xml)
    )

    assert completed.returncode == 0, completed.stdout  # warnings do not fail
    assert check_lines(completed.stdout, "WARN")  # no cloud config: flavors etc. not checked
    assert markdown.read_text().startswith("# bosh-openstack-cpi validate\n")
    suite = ElementTree.parse(xml).getroot().find("testsuite")  # noqa: S314 (our report)
    assert suite is not None and suite.get("failures") == "0"
    checks = sum(len(check_lines(completed.stdout, s)) for s in ("ok  ", "WARN"))
    assert suite.get("tests") == str(checks)


def test_validate_runs_from_the_bosh_package_with_the_jobs_own_files(
    tmp_path, cloud, director_uuid, leak_check
):
    """As an operator runs it on a director VM: the package's venv python, the rendered
    job's cpi.json and cacert.pem, a nearly empty environment."""
    from tests.release.job_templates import render_job
    from tests.release.packaged import build_packages_root, venv_python
    from tools.cloud_description import cpi_document

    packages = build_packages_root(tmp_path / "vcap")
    properties = cpi_document(cloud, use_dhcp=False)["cloud"]["properties"]
    bin_cpi = render_job(properties).install(tmp_path / "vcap" / "jobs")
    config = bin_cpi.parent.parent / "config"
    _, cloud_config_path = write_config(tmp_path / "operator", cloud, cloud_config(cloud))
    assert cloud_config_path is not None

    completed = subprocess.run(
        [
            str(venv_python(packages)),
            "-m",
            "bosh_openstack_cpi",
            "validate",
            str(config / "cpi.json"),
            "--ca-cert",
            str(config / "cacert.pem"),
            "--cloud-config",
            str(cloud_config_path),
            "--director-uuid",
            director_uuid,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)},
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "[ok  ] end-to-end: nothing left on the cloud" in completed.stdout
