"""Render the release's job templates as BOSH does (Ruby's ERB, through render_job.rb),
for the release tests and for the contract tests that run the rendered bin/cpi."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
JOB_DIR = REPO / "jobs" / "openstack_cpi"
RENDERER = Path(__file__).with_name("render_job.rb")


class TemplateError(Exception):
    """A template failed to render, as `bosh deploy` / `bosh create-env` would fail."""

    def __init__(self, template: str, message: str) -> None:
        super().__init__(f"{template}: {message}")
        self.template = template
        self.message = message


@dataclass(frozen=True)
class RenderedJob:
    files: dict[str, str]  # rendered text by destination path, e.g. "config/cpi.json"
    looked_up: frozenset[str]  # every property name the templates asked for

    @property
    def cpi_json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.files["config/cpi.json"])
        return document

    def install(self, jobs_dir: Path) -> Path:
        """Lay the files out as the agent does under /var/vcap/jobs/<job>; returns bin/cpi."""
        job = jobs_dir / JOB_DIR.name
        for destination, text in self.files.items():
            path = job / destination
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        cpi = job / "bin" / "cpi"
        cpi.chmod(0o755)
        return cpi


def ruby() -> str | None:
    return shutil.which("ruby")


def render_attempt(properties: dict[str, Any], job_dir: Path = JOB_DIR) -> dict[str, Any]:
    """The renderer's answer: {"files": ...} or {"error": ...}, with "looked_up"."""
    interpreter = ruby()
    if interpreter is None:
        raise RuntimeError("ruby is needed to render job templates: run scripts/setup")
    with tempfile.NamedTemporaryFile("w", suffix=".json") as context:
        json.dump({"properties": properties}, context)
        context.flush()
        completed = subprocess.run(
            [interpreter, str(RENDERER), str(job_dir), context.name],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    answer: dict[str, Any] = json.loads(completed.stdout)
    return answer


def render_job(properties: dict[str, Any], job_dir: Path = JOB_DIR) -> RenderedJob:
    answer = render_attempt(properties, job_dir)
    if "error" in answer:
        raise TemplateError(answer["error"]["template"], answer["error"]["message"])
    return RenderedJob(files=answer["files"], looked_up=frozenset(answer["looked_up"]))
