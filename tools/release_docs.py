"""Write the generated parts of docs/bosh-release.md from the job spec, so the property
table and package list are never written twice: `python -m tools.release_docs` (in .venv).

The parts live between `<!-- generated: <name> -->` and `<!-- end generated: <name> -->`
markers; tests/tools/test_release_docs.py fails while the document is out of date."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

NO_DEFAULT = "\N{EN DASH}"  # as in the other property tables of docs/
REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "jobs" / "openstack_cpi" / "spec"
DOC = REPO / "docs" / "bosh-release.md"


def _cell(text: str) -> str:
    """One Markdown table cell: on one line, pipes escaped, `<x>` not taken for HTML."""
    one_line = " ".join(text.split())
    return one_line.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _inline(value: Any) -> str:
    return f"`{json.dumps(value)}`"


def _example(definition: dict[str, Any]) -> str:
    """A scalar or list example, inline; a hash example is too long for a table."""
    example = definition.get("example")
    if example is None or isinstance(example, dict):
        return ""
    return f" Example: {_inline(example)}."


def property_table(spec: dict[str, Any]) -> str:
    rows = ["| property | default | meaning |", "|---|---|---|"]
    for name, definition in spec["properties"].items():
        definition = definition or {}
        default = _inline(definition["default"]) if "default" in definition else NO_DEFAULT
        meaning = _cell(definition.get("description", "") + _example(definition))
        rows.append(f"| `{name}` | {default} | {meaning} |")
    return "\n".join(rows)


def package_list(spec: dict[str, Any]) -> str:
    return "\n".join(f"- `{package}`" for package in spec["packages"])


def generated_parts(spec: dict[str, Any]) -> dict[str, str]:
    return {"job properties": property_table(spec), "job packages": package_list(spec)}


def _section(name: str) -> re.Pattern[str]:
    """The markers of one generated part and what lies between them."""
    marker = re.escape(name)
    return re.compile(
        rf"(<!-- generated: {marker} -->\n).*?(<!-- end generated: {marker} -->)", re.DOTALL
    )


def fill(document: str, parts: dict[str, str]) -> str:
    """`document` with each generated part replaced; a missing marker is an error."""
    for name, body in parts.items():
        document, count = _section(name).subn(
            lambda found: f"{found[1]}{body}\n{found[2]}",  # noqa: B023 (used at once)
            document,
        )
        if count != 1:
            raise ValueError(f"expected one '{name}' section in the document, found {count}")
    return document


def up_to_date_document(doc: Path = DOC, spec_path: Path = SPEC) -> str:
    spec = yaml.safe_load(spec_path.read_text())
    return fill(doc.read_text(), generated_parts(spec))


def main() -> int:
    DOC.write_text(up_to_date_document())
    print(f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
