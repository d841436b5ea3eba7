"""Write one `## <title>` section of BENCHMARKS.md, leaving the other sections alone."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\n"
    "Each section is written by the script named in it; rerun the command to refresh it, or\n"
    "run `scripts/benchmarks` to refresh them all (`scripts/benchmarks <name> …` for some).\n"
    "Figures are medians of interleaved runs on one machine, side by side in one run.\n"
)


def write_section(title: str, body: str) -> None:
    heading = f"## {title}"
    section = f"{heading}\n\n{body.strip()}\n"
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else HEADER
    start = text.find(heading + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        following = text.find("\n## ", start + len(heading))
        end = len(text) if following == -1 else following + 1
        text = text[:start] + section + ("\n" + text[end:] if following != -1 else "")
    BENCHMARKS.write_text(text)
