"""Checks a BOSH release directory for what `bosh create-release` would refuse, or would
build wrongly without a word, before the release is built elsewhere.

    .venv/bin/python -m tools.release_check [release_dir]

- config/final.yml names the release and a blobstore provider;
- every config/blobs.yml entry is in blobs/ with its size and checksum, blobs/ holds
  nothing else, and some package takes each blob;
- packages/*/spec: the name is the directory's, `packaging` exists, each `files` glob
  matches a file in src/ or blobs/ (as bosh-cli globs them), `dependencies` name
  packages that exist, without a cycle;
- jobs/*/spec: the name is the directory's, each template exists, `packages` exist, and
  every `p(...)`/`if_p(...)` in the templates names a property of the spec.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools.blobs import SHA1, SHA256, file_matches, load_blobs

ERB_TAG = re.compile(r"<%(?!#)(.*?)%>", re.DOTALL)
# p("a"), p(["a", "b"], default), if_p("a", "b") do ...; not link("x").p("y"), whose
# properties are the other job's.
PROPERTY_CALL = re.compile(r"(?<![\w.:@$])(?P<method>if_p|p)(?:\s*\(|\s+(?=[\"'\[]))")
STRING = re.compile(r"\s*(?P<quote>[\"'])(?P<value>(?:\\.|(?!(?P=quote)).)*)(?P=quote)")


@dataclass
class Release:
    root: Path
    problems: list[str] = field(default_factory=list)

    def problem(self, where: Path | str, what: str) -> None:
        location = where.relative_to(self.root) if isinstance(where, Path) else where
        self.problems.append(f"{location}: {what}")


def load_spec(release: Release, path: Path) -> dict[str, Any] | None:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        release.problem(path, f"cannot be read: {error}")
        return None
    if not isinstance(document, dict):
        release.problem(path, "is not a YAML mapping")
        return None
    return document


def glob_files(root: Path, pattern: str) -> list[Path]:
    """bosh-cli's RecursiveGlob under one root, keeping files only (`**` spans
    directories, zero included)."""
    if not root.is_dir():
        return []
    return sorted(path for path in root.glob(pattern) if path.is_file())


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A files glob as a regex over relative paths, for blobs that are only listed in
    config/blobs.yml (bosh-cli downloads those before globbing)."""
    parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern)
    wildcards = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(part, re.escape(part)) for part in parts) + r"\Z")


def blob_paths_taken(spec: dict[str, Any], blob_paths: set[str]) -> set[str]:
    taken = {
        path
        for pattern in spec.get("files") or []
        for path in blob_paths
        if glob_regex(pattern).match(path)
    }
    for pattern in spec.get("excluded_files") or []:
        taken = {path for path in taken if not glob_regex(pattern).match(path)}
    return taken


def package_files(root: Path, spec: dict[str, Any]) -> dict[str, Path]:
    """Relative path in the compile target -> file, as bosh-cli assembles a package: src/
    first, then blobs/, minus `excluded_files`."""
    files: dict[str, Path] = {}
    for pattern in spec.get("files") or []:
        for base in (root / "src", root / "blobs"):
            for path in glob_files(base, pattern):
                files.setdefault(str(path.relative_to(base)), path)
    for pattern in spec.get("excluded_files") or []:
        for base in (root / "src", root / "blobs"):
            for path in glob_files(base, pattern):
                files.pop(str(path.relative_to(base)), None)
    return files


def check_final_yml(release: Release) -> None:
    path = release.root / "config" / "final.yml"
    if not path.exists():
        release.problem(path, "missing (bosh-cli reads the release name from it)")
        return
    config = load_spec(release, path)
    if config is None:
        return
    if bool(config.get("name")) == bool(config.get("final_name")):
        release.problem(path, "expected exactly one of 'name' or 'final_name'")
    if not (config.get("blobstore") or {}).get("provider"):
        release.problem(path, "expected blobstore.provider")


def check_blobs(release: Release, package_specs: dict[str, dict[str, Any]]) -> None:
    blobs_yml = release.root / "config" / "blobs.yml"
    blobs_dir = release.root / "blobs"
    try:
        blobs = load_blobs(blobs_yml)
    except ValueError as error:
        release.problem(blobs_yml, str(error))
        return
    used = {path for spec in package_specs.values() for path in blob_paths_taken(spec, set(blobs))}
    for blob in blobs.values():
        where = f"config/blobs.yml: {blob.path}"
        if not (SHA256.match(blob.sha) or SHA1.match(blob.sha)):
            release.problem(where, f"sha is neither sha256:<hex> nor a SHA-1: {blob.sha!r}")
            continue
        local = blobs_dir / blob.path
        if not local.exists():
            if not blob.object_id:
                release.problem(where, "not in blobs/ and never uploaded (run scripts/release)")
        elif not file_matches(local, blob):
            release.problem(where, f"blobs/{blob.path} has another size or checksum")
        if blob.path not in used:
            release.problem(where, "no package's files take it")
    for path in glob_files(blobs_dir, "**/*"):
        if str(path.relative_to(blobs_dir)) not in blobs:
            release.problem(path, "is not in config/blobs.yml (bosh-cli would package it)")


def load_package_specs(release: Release) -> dict[str, dict[str, Any]]:
    specs = {}
    for spec_path in sorted((release.root / "packages").glob("*/spec")):
        spec = load_spec(release, spec_path)
        if spec is not None:
            specs[spec_path.parent.name] = spec
    return specs


def check_package(
    release: Release, directory: Path, spec: dict[str, Any], names: set[str], blob_paths: set[str]
) -> None:
    spec_path = directory / "spec"
    if spec.get("name") != directory.name:
        release.problem(spec_path, f"name {spec.get('name')!r} is not the directory's")
    if not (directory / "packaging").is_file():
        release.problem(directory, "has no packaging script")
    for pattern in spec.get("files") or []:
        bases = (release.root / "src", release.root / "blobs")
        on_disk = any(glob_files(base, pattern) for base in bases)
        if not on_disk and not blob_paths_taken({"files": [pattern]}, blob_paths):
            release.problem(spec_path, f"files: {pattern!r} matches nothing in src/ or blobs/")
    if "packaging" in package_files(release.root, spec):
        release.problem(spec_path, "files: takes a file named 'packaging' (bosh-cli refuses)")
    for dependency in spec.get("dependencies") or []:
        if dependency not in names:
            release.problem(spec_path, f"dependencies: no package {dependency!r}")


def check_dependency_cycles(release: Release, specs: dict[str, dict[str, Any]]) -> None:
    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            cycle = " -> ".join((*path[path.index(name) :], name))
            release.problem(f"packages/{name}/spec", f"dependency cycle: {cycle}")
            return
        for dependency in (specs.get(name) or {}).get("dependencies") or []:
            visit(dependency, (*path, name))

    for name in specs:
        visit(name, ())


def _strings(code: str, start: int, several: bool) -> list[str] | None:
    """The literal name(s) a property call starts with, None when not literal."""
    text = code[start:].lstrip()
    if text.startswith("["):
        names = re.findall(r"[\"']([^\"']+)[\"']", text[1 : text.find("]")])
        return names or None
    names = []
    while (match := STRING.match(text)) is not None:
        if "#{" in match["value"] and match["quote"] == '"':
            return None  # interpolated: known only when rendered
        names.append(match["value"])
        text = text[match.end() :].lstrip()
        if not several or not text.startswith(","):
            break
        text = text[1:]
    return names or None


def template_properties(text: str) -> tuple[set[str], int]:
    """Property names used by p/if_p in an ERB template, and how many calls had a name
    that is not a literal (not checked)."""
    names: set[str] = set()
    dynamic = 0
    for tag in ERB_TAG.finditer(text):
        code = tag[1]
        for call in PROPERTY_CALL.finditer(code):
            found = _strings(code, call.end(), several=call["method"] == "if_p")
            if found is None:
                dynamic += 1
            else:
                names.update(found)
    return names, dynamic


def declares(properties: set[str], name: str) -> bool:
    """Whether p(name) finds a spec property: BOSH looks names up in the nested hash of the
    declared properties, so p("a") returns "a.b" and "a.c" as a hash, and p("a.b.c")
    looks inside the value of a declared hash property "a.b"."""
    return any(
        declared == name or declared.startswith(f"{name}.") or name.startswith(f"{declared}.")
        for declared in properties
    )


def check_job(release: Release, directory: Path, spec: dict[str, Any], packages: set[str]) -> None:
    spec_path = directory / "spec"
    if spec.get("name") != directory.name:
        release.problem(spec_path, f"name {spec.get('name')!r} is not the directory's")
    properties = set((spec.get("properties") or {}).keys())
    for package in spec.get("packages") or []:
        if package not in packages:
            release.problem(spec_path, f"packages: no package {package!r}")
    for source in spec.get("templates") or {}:
        template = directory / "templates" / source
        if not template.is_file():
            release.problem(spec_path, f"templates: {source!r} is not in templates/")
            continue
        used, _ = template_properties(template.read_text())
        for name in sorted(used):
            if not declares(properties, name):
                release.problem(template, f"p/if_p uses {name!r}, which the spec does not declare")


def check(root: Path) -> list[str]:
    release = Release(root)
    check_final_yml(release)
    specs = load_package_specs(release)
    try:
        blob_paths = set(load_blobs(root / "config" / "blobs.yml"))
    except ValueError:
        blob_paths = set()  # check_blobs says why
    for name, spec in specs.items():
        check_package(release, root / "packages" / name, spec, set(specs), blob_paths)
    check_dependency_cycles(release, specs)
    check_blobs(release, specs)
    for spec_path in sorted((root / "jobs").glob("*/spec")):
        job_spec = load_spec(release, spec_path)
        if job_spec is not None:
            check_job(release, spec_path.parent, job_spec, set(specs))
    return release.problems


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    root = Path(arguments[0]) if arguments else Path(__file__).resolve().parent.parent
    problems = check(root.resolve())
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) `bosh create-release` would trip on", file=sys.stderr)
        return 1
    packages = len(list((root / "packages").glob("*/spec")))
    jobs = len(list((root / "jobs").glob("*/spec")))
    print(f"ready for `bosh create-release`: {packages} packages, {jobs} jobs, blobs verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
