"""The tools' entry: `bosh-openstack-cpi validate|orphans ...` next to the CPI executable
`bosh-openstack-cpi <cpi.json>`, which a tool name must never take away from the director."""

import json
import subprocess
import sys

import pytest

from bosh_openstack_cpi import cli
from bosh_openstack_cpi.operator.main import main

INFO = json.dumps({"method": "info", "arguments": [], "context": {"director_uuid": "d"}})


def test_a_tool_name_selects_the_tool(monkeypatch):
    seen = []

    def tool(arguments):
        seen.append(arguments)
        return 7

    monkeypatch.setattr("bosh_openstack_cpi.operator.main.main", tool)
    assert cli.main(["orphans", "cpi.json", "--director-uuid", "d"]) == 7
    assert seen == [["orphans", "cpi.json", "--director-uuid", "d"]]


def test_a_config_file_named_like_a_tool_is_still_the_cpis(tmp_path):
    (tmp_path / "validate").write_text("{}")  # the director's path wins
    completed = subprocess.run(
        [sys.executable, "-m", "bosh_openstack_cpi", "validate"],
        input=INFO,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
    assert json.loads(completed.stdout)["result"]["api_version"] == 3


def test_help(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["validate", "--help"])
    assert exited.value.code == 0
    assert "--cloud-config" in capsys.readouterr().out


def test_files_the_tool_cannot_read_end_it_before_any_request(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "cpi.json"), "--cloud-config", "/nonexistent"]) == 2
    assert capsys.readouterr().out.startswith("error: ")
    assert main(["orphans", "cpi.json", "--director-uuid", "d", "--known", "/nonexistent"]) == 2


def test_delete_needs_the_directors_lists(capsys):
    assert main(["orphans", "cpi.json", "--director-uuid", "d", "--delete", "--yes"]) == 2
    assert "--none-known" in capsys.readouterr().out
