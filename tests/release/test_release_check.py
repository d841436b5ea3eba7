"""tools/release_check.py on a small release of our own (tests/release/fixture_release),
broken one way at a time, and on this repository."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tools.blobs import REPO
from tools.release_check import check, glob_regex, package_files, template_properties

FIXTURE = Path(__file__).parent / "fixture_release"


@pytest.fixture
def release(tmp_path: Path) -> Path:
    copy = tmp_path / "release"
    shutil.copytree(FIXTURE, copy)
    return copy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_the_fixture_release_passes(release: Path) -> None:
    assert check(release) == []


def test_this_repository_passes() -> None:
    # Needs blobs/ filled: scripts/release (which scripts/test runs first) does that.
    assert check(REPO) == []


def test_package_files_as_bosh_cli_assembles_them(release: Path) -> None:
    spec = {"files": ["demo/**/*.py", "demo/payload.txt"], "excluded_files": ["**/skip_*.py"]}
    files = package_files(release, spec)
    assert sorted(files) == ["demo/main.py", "demo/payload.txt", "demo/sub/__init__.py"]
    assert files["demo/payload.txt"] == release / "blobs" / "demo" / "payload.txt"


def test_src_wins_over_blobs_for_the_same_path(release: Path) -> None:
    (release / "src" / "demo" / "payload.txt").write_text("from src\n")
    files = package_files(release, {"files": ["demo/payload.txt"]})
    assert files == {"demo/payload.txt": release / "src" / "demo" / "payload.txt"}


def test_a_property_the_spec_does_not_declare(release: Path) -> None:
    edit(release / "jobs/demo/templates/ctl.erb", 'p("demo.port")', 'p("demo.prot")')
    assert check(release) == [
        "jobs/demo/templates/ctl.erb: p/if_p uses 'demo.prot', which the spec does not declare"
    ]


def test_every_name_of_if_p_is_checked(release: Path) -> None:
    edit(release / "jobs/demo/templates/config.json.erb", '"demo.tls.key"', '"demo.tls.cert"')
    assert check(release) == [
        "jobs/demo/templates/config.json.erb: p/if_p uses 'demo.tls.cert', which the spec "
        "does not declare"
    ]


def test_a_template_missing_from_templates(release: Path) -> None:
    (release / "jobs/demo/templates/ctl.erb").unlink()
    assert check(release) == ["jobs/demo/spec: templates: 'ctl.erb' is not in templates/"]


def test_a_job_package_that_does_not_exist(release: Path) -> None:
    edit(release / "jobs/demo/spec", "- demo-runtime\nproperties", "- runtime\nproperties")
    assert check(release) == ["jobs/demo/spec: packages: no package 'runtime'"]


def test_a_files_glob_that_matches_nothing(release: Path) -> None:
    edit(release / "packages/demo-runtime/spec", "demo-runtime/env", "demo-runtime/*.env")
    assert check(release) == [
        "packages/demo-runtime/spec: files: 'demo-runtime/*.env' matches nothing in src/ or blobs/"
    ]


def test_a_missing_dependency_and_a_cycle(release: Path) -> None:
    edit(release / "packages/demo/spec", "- demo-runtime\nfiles", "- demo-rt\nfiles")
    (release / "packages/demo-runtime/spec").write_text(
        "name: demo-runtime\ndependencies: [demo-runtime]\nfiles: [demo-runtime/env]\n"
    )
    assert check(release) == [
        "packages/demo/spec: dependencies: no package 'demo-rt'",
        "packages/demo-runtime/spec: dependency cycle: demo-runtime -> demo-runtime",
    ]


def test_a_package_without_packaging_or_with_another_name(release: Path) -> None:
    (release / "packages/demo-runtime/packaging").unlink()
    edit(release / "packages/demo/spec", "name: demo\n", "name: demo2\n")
    assert check(release) == [
        "packages/demo: name 'demo2' is not the directory's".replace("demo:", "demo/spec:"),
        "packages/demo-runtime: has no packaging script",
    ]


def test_a_blob_with_other_content(release: Path) -> None:
    (release / "blobs/demo/payload.txt").write_text("a blot\n")
    assert check(release) == [
        "config/blobs.yml: demo/payload.txt: blobs/demo/payload.txt has another size or checksum"
    ]


def test_a_missing_blob_unless_uploaded(release: Path) -> None:
    (release / "blobs/demo/payload.txt").unlink()
    problems = check(release)
    assert "config/blobs.yml: demo/payload.txt: not in blobs/ and never uploaded " in problems[0]
    edit(release / "config/blobs.yml", "  size: 7\n", "  size: 7\n  object_id: 1234\n")
    assert not any("never uploaded" in problem for problem in check(release))


def test_a_file_in_blobs_that_blobs_yml_does_not_list(release: Path) -> None:
    (release / "blobs/demo/extra.txt").write_text("x")
    assert check(release) == [
        "blobs/demo/extra.txt: is not in config/blobs.yml (bosh-cli would package it)"
    ]


def test_a_blob_no_package_takes(release: Path) -> None:
    edit(release / "packages/demo/spec", "- demo/payload.txt\n", "")
    assert check(release) == ["config/blobs.yml: demo/payload.txt: no package's files take it"]


@pytest.mark.parametrize(
    ("final_yml", "problem"),
    [
        ("blobstore: {provider: local}\n", "expected exactly one of 'name' or 'final_name'"),
        ("name: a\nfinal_name: b\nblobstore: {provider: local}\n", "expected exactly one"),
        ("name: a\n", "expected blobstore.provider"),
    ],
)
def test_final_yml(release: Path, final_yml: str, problem: str) -> None:
    (release / "config/final.yml").write_text(final_yml)
    problems = check(release)
    assert len(problems) == 1 and problems[0].startswith(f"config/final.yml: {problem}")


@pytest.mark.parametrize(
    ("template", "names", "dynamic"),
    [
        ('<%= p("a.b") %>', {"a.b"}, 0),
        ("<%= p('a.b', 'default') %>", {"a.b"}, 0),
        ('<%= p(["a.new", "a.old"], nil) %>', {"a.new", "a.old"}, 0),
        ('<% if_p("a", "b") do |a, b| %>x<% end %>', {"a", "b"}, 0),
        ('<%= p "a.b" %>', {"a.b"}, 0),
        ('<%= link("db").p("db.host") %> <%= spec.p %>', set(), 0),
        ('<%# p("in.a.comment") %>', set(), 0),
        ('<%= p("a.#{name}") %>', set(), 1),
        ('p("outside.erb") <%= json_p(1) %>', set(), 0),
    ],
)
def test_template_properties(template: str, names: set[str], dynamic: int) -> None:
    assert template_properties(template) == (names, dynamic)


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("wheels/*.whl", "wheels/a-1-py3-none-any.whl", True),
        ("wheels/*.whl", "wheels/sub/a.whl", False),
        ("python-3.13/Python-3.13.*.tar.xz", "python-3.13/Python-3.13.5.tar.xz", True),
        ("a/**/*.py", "a/b.py", True),
        ("a/**/*.py", "a/b/c/d.py", True),
        ("a/?.py", "a/bc.py", False),
    ],
)
def test_glob_regex_for_listed_blobs(pattern: str, path: str, matches: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is matches


def test_a_property_prefix_is_not_a_declared_hash_when_nothing_is_under_it(
    release: Path,
) -> None:
    edit(release / "jobs/demo/templates/config.json.erb", 'p("demo.tls")', 'p("demo.tl")')
    assert check(release) == [
        "jobs/demo/templates/config.json.erb: p/if_p uses 'demo.tl', which the spec does not "
        "declare"
    ]


def test_a_name_inside_a_declared_property_needs_that_property(release: Path) -> None:
    edit(release / "jobs/demo/templates/config.json.erb", '"demo.tls.ca.path"', '"demo.tlz.ca"')
    assert check(release) == [
        "jobs/demo/templates/config.json.erb: p/if_p uses 'demo.tlz.ca', which the spec does "
        "not declare"
    ]
