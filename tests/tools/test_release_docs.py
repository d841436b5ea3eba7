"""docs/bosh-release.md carries the job spec's properties and packages as generated."""

from __future__ import annotations

import pytest

from tools.release_docs import DOC, NO_DEFAULT, fill, generated_parts, up_to_date_document

SPEC = {
    "packages": ["runtime", "cpi"],
    "properties": {
        "a.b": {"description": "Pipes | and\n  line <breaks>", "default": 5},
        "a.c": {"description": "Listed.", "example": ["x"]},
        "a.d": {"description": "Hash example left out.", "example": {"k": "v"}},
        "a.e": None,
    },
}


def test_the_table_has_one_row_per_property_with_defaults_and_examples():
    table = generated_parts(SPEC)["job properties"].splitlines()
    assert table[2:] == [
        "| `a.b` | `5` | Pipes \\| and line &lt;breaks&gt; |",
        f'| `a.c` | {NO_DEFAULT} | Listed. Example: `["x"]`. |',
        f"| `a.d` | {NO_DEFAULT} | Hash example left out. |",
        f"| `a.e` | {NO_DEFAULT} |  |",
    ]


def test_only_the_marked_parts_change():
    document = (
        "intro\n<!-- generated: job packages -->\nold\n<!-- end generated: job packages -->\n"
        "<!-- generated: job properties -->\n<!-- end generated: job properties -->\nend\n"
    )
    filled = fill(document, generated_parts(SPEC))
    assert filled.startswith("intro\n<!-- generated: job packages -->\n- `runtime`\n- `cpi`\n")
    assert filled.endswith("<!-- end generated: job properties -->\nend\n")
    assert fill(filled, generated_parts(SPEC)) == filled


def test_a_missing_marker_is_an_error():
    with pytest.raises(ValueError, match="job properties"):
        fill("no markers\n", generated_parts(SPEC))


def test_docs_bosh_release_md_is_up_to_date():
    assert DOC.read_text() == up_to_date_document(), "run: .venv/bin/python -m tools.release_docs"
