"""Generated report sections: replaced in place, appended when new, others untouched."""

from pathlib import Path

from tools.markdown_sections import replace_section


def test_a_section_is_replaced_in_place_and_a_new_one_appended(tmp_path: Path):
    report = tmp_path / "REPORT.md"
    replace_section(report, "# Report\n", "first", "1")
    replace_section(report, "# Report\n", "second", "2")
    report.write_text(report.read_text() + "\n## hand-written\n\nkept\n")
    replace_section(report, "# Report\n", "first", "one")
    assert report.read_text() == (
        "# Report\n\n## first\n\none\n\n## second\n\n2\n\n## hand-written\n\nkept\n"
    )
