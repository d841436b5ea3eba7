"""`validate`'s reports: Markdown, JUnit XML (CI pipelines show each check as a test case)
and one self-contained HTML page (inline style, no script, no external asset)."""

from __future__ import annotations

import html
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime
from pathlib import Path

from bosh_openstack_cpi.operator.checks import FAILED, PASSED, SKIPPED, WARNED, CheckResult

LABELS = {PASSED: "pass", WARNED: "warning", FAILED: "FAIL", SKIPPED: "skipped"}


class ReportFormatError(Exception):
    pass


def write(path: str, results: list[CheckResult], title: str) -> None:
    suffix = Path(path).suffix.lower()
    writers = {".md": markdown, ".xml": junit_xml, ".html": html_page, ".htm": html_page}
    if suffix not in writers:
        raise ReportFormatError(f"--report {path}: the name must end in .md, .xml or .html")
    Path(path).write_text(writers[suffix](results, title), encoding="utf-8")


def summary(results: list[CheckResult]) -> str:
    counts = {label: 0 for label in LABELS}
    for result in results:
        counts[result.status] += 1
    total = sum(r.seconds for r in results)
    return (
        f"{counts[PASSED]} passed, {counts[WARNED]} warnings, {counts[FAILED]} failed, "
        f"{counts[SKIPPED]} skipped in {total:.1f} s"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(results: list[CheckResult], title: str) -> str:
    lines = [
        f"# {title}",
        "",
        f"{_now()}: {summary(results)}",
        "",
        "| | group | check | seconds | found | remedy |",
        "|---|---|---|---:|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {LABELS[r.status]} | {_cell(r.group)} | {_cell(r.name)} | {r.seconds:.2f} "
            f"| {_cell(r.detail)} | {_cell(r.remedy if r.status != PASSED else '')} |"
        )
    return "\n".join(lines) + "\n"


def junit_xml(results: list[CheckResult], title: str) -> str:
    suite = ElementTree.Element(
        "testsuite",
        name=title,
        tests=str(len(results)),
        failures=str(sum(r.status == FAILED for r in results)),
        skipped=str(sum(r.status == SKIPPED for r in results)),
        errors="0",
        time=f"{sum(r.seconds for r in results):.3f}",
        timestamp=_now(),
    )
    for r in results:
        case = ElementTree.SubElement(
            suite, "testcase", classname=r.group, name=r.name, time=f"{r.seconds:.3f}"
        )
        if r.status == FAILED:
            failure = ElementTree.SubElement(case, "failure", message=r.detail)
            failure.text = f"{r.detail}\nremedy: {r.remedy}"
        elif r.status == SKIPPED:
            ElementTree.SubElement(case, "skipped", message=r.detail)
        output = ElementTree.SubElement(case, "system-out")
        output.text = r.detail if r.status != WARNED else f"WARNING: {r.detail}\n{r.remedy}"
    suites = ElementTree.Element("testsuites")
    suites.append(suite)
    ElementTree.indent(suites)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        + ElementTree.tostring(suites, encoding="unicode")
        + "\n"
    )


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
td.seconds { text-align: right; white-space: nowrap; }
tr.pass td.status { background: #d8f5d8; }
tr.warn td.status { background: #fff2c2; }
tr.fail td.status { background: #f8d0d0; font-weight: bold; }
tr.skip td.status { background: #e4e4e4; }
"""


def html_page(results: list[CheckResult], title: str) -> str:
    rows = "\n".join(
        f'<tr class="{r.status}"><td class="status">{LABELS[r.status]}</td>'
        f"<td>{html.escape(r.group)}</td><td>{html.escape(r.name)}</td>"
        f'<td class="seconds">{r.seconds:.2f}</td><td>{html.escape(r.detail)}</td>'
        f"<td>{html.escape(r.remedy if r.status != PASSED else '')}</td></tr>"
        for r in results
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p id="summary">{html.escape(_now())}: {html.escape(summary(results))}</p>
<table id="checks">
<thead><tr><th>result</th><th>group</th><th>check</th><th>seconds</th><th>found</th>\
<th>remedy</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
