"""Replace one `## <title>` section of a generated Markdown report, leaving the others."""

from __future__ import annotations

from pathlib import Path


def replace_section(path: Path, header: str, title: str, body: str) -> None:
    """Write `body` under `## title` in `path` (created with `header` when missing): the
    section is replaced where it is, or appended when the file has none."""
    heading = f"## {title}"
    section = f"{heading}\n\n{body.strip()}\n"
    text = path.read_text() if path.exists() else header
    start = text.find(heading + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        following = text.find("\n## ", start + len(heading))
        rest = text[following + 1 :] if following != -1 else ""
        text = text[:start] + section + ("\n" + rest if rest else "")
    path.write_text(text)
