"""render_job.rb gives templates what BOSH gives them, so the template tests can trust it:
spec defaults merged, undeclared properties invisible, p() and if_p() as in bosh-cli."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.release.job_templates import TemplateError, render_job

SPEC = {
    "name": "probe",
    "templates": {"probe.erb": "out"},
    "properties": {
        "a.given": {"description": "set by the manifest"},
        "a.defaulted": {"default": 7},
        "a.flag": {"default": True},
        "a.unset": {},
        "a.table": {},
    },
}


def _render(tmp_path: Path, template: str, properties: dict[str, Any]) -> str:
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "spec").write_text(yaml.safe_dump(SPEC))
    (tmp_path / "templates" / "probe.erb").write_text(template)
    return render_job(properties, job_dir=tmp_path).files["out"]


def test_manifest_values_win_over_spec_defaults_and_false_is_a_value(tmp_path: Path):
    template = "<%= p('a.given') %> <%= p('a.defaulted') %> <%= p('a.flag') %>"
    manifest = {"a": {"given": "x", "flag": False}}
    assert _render(tmp_path, template, manifest) == "x 7 false"


def test_an_undeclared_property_never_reaches_the_template(tmp_path: Path):
    template = "<%= p('a.other', 'absent') %> <%= p(['a.other', 'a.given']) %>"
    assert _render(tmp_path, template, {"a": {"other": "set", "given": "x"}}) == "absent x"


def test_p_of_an_unset_property_without_default_fails_naming_it(tmp_path: Path):
    with pytest.raises(TemplateError) as raised:
        _render(tmp_path, "<%= p('a.unset') %>", {})
    assert raised.value.template == "probe.erb"
    assert "'a.unset'" in raised.value.message


def test_p_with_a_default_argument_even_nil(tmp_path: Path):
    template = "<%= p('a.unset', 'd') %> <%= p('a.unset', nil).inspect %>"
    assert _render(tmp_path, template, {}) == "d nil"


def test_if_p_runs_only_when_every_property_is_set_else_runs_otherwise(tmp_path: Path):
    template = (
        "<% if_p('a.given', 'a.defaulted') do |g, d| %>both <%= g %> <%= d %><% end %>|"
        "<% if_p('a.given', 'a.unset') do %>never<% end.else do %>else<% end %>|"
        "<% if_p('a.unset') do %>never<% end.else_if_p('a.given') do |g| %>elsif <%= g %><% end %>"
    )
    assert _render(tmp_path, template, {"a": {"given": "x"}}) == "both x 7|else|elsif x"


def test_a_nested_key_of_a_hash_property_and_the_properties_object(tmp_path: Path):
    template = "<%= p('a.table.key') %> <%= properties.a.table.key %> <%= spec.deployment %>"
    assert _render(tmp_path, template, {"a": {"table": {"key": "v"}}}) == "v v bosh"
