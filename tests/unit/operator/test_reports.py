import xml.etree.ElementTree as ElementTree

import pytest

from bosh_openstack_cpi.operator import reports
from bosh_openstack_cpi.operator.checks import FAILED, PASSED, SKIPPED, WARNED, CheckResult

RESULTS = [
    CheckResult("identity", "auth", PASSED, "token for p", "", 0.25),
    CheckResult("compute", "flavors", FAILED, "no 'm1.<x>' | here", "pick a flavor & retry", 0.5),
    CheckResult("network", "groups", WARNED, "none", "set them", 0.0),
    CheckResult("end-to-end", "attach", SKIPPED, "an earlier step failed", "fix it", 0.0),
]


def test_markdown_has_one_row_per_check_with_pipes_escaped():
    text = reports.markdown(RESULTS, "title")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + len(RESULTS)
    assert "no 'm1.<x>' \\| here" in text
    assert "1 passed, 1 warnings, 1 failed, 1 skipped in 0.8 s" in text


def test_junit_marks_failures_and_skips():
    root = ElementTree.fromstring(reports.junit_xml(RESULTS, "title"))  # noqa: S314 (ours)
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "1")
    cases = suite.findall("testcase")
    assert cases[1].find("failure") is not None and cases[0].find("failure") is None
    assert cases[3].find("skipped") is not None
    failure = cases[1].find("failure")
    assert failure is not None and "pick a flavor & retry" in (failure.text or "")


def test_html_is_one_escaped_page_with_nothing_to_fetch():
    page = reports.html_page(RESULTS, "title")
    assert "no &#x27;m1.&lt;x&gt;&#x27; | here" in page
    assert page.count('<tr class="') == len(RESULTS)
    for fetching in ("<script", "<link", "src=", "url(", "http"):
        assert fetching not in page


def test_the_format_comes_from_the_name(tmp_path):
    for suffix in (".md", ".xml", ".html"):
        reports.write(str(tmp_path / f"r{suffix}"), RESULTS, "t")
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(reports.ReportFormatError):
        reports.write(str(tmp_path / "r.txt"), RESULTS, "t")
