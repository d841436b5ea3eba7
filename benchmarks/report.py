"""Write one `## <title>` section of BENCHMARKS.md, leaving the other sections alone."""

from __future__ import annotations

from pathlib import Path

from tools.markdown_sections import replace_section

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\n"
    "Each section is written by the script named in it; rerun the command to refresh it, or\n"
    "run `scripts/benchmarks` to refresh them all (`scripts/benchmarks <name> …` for some).\n"
    "Figures are medians of interleaved runs on one machine, side by side in one run.\n"
)


def write_section(title: str, body: str) -> None:
    replace_section(BENCHMARKS, HEADER, title, body)


def publish(title: str, body: str, write: bool) -> int:
    """Print a benchmark's section and, with --write, put it into BENCHMARKS.md; the exit
    status for its main()."""
    print(body)
    if write:
        write_section(title, body)
    return 0
