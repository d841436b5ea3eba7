"""Call: the private CA file and what happens to the cached token at the end of a call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bosh_openstack_cpi.call import Call
from bosh_openstack_cpi.openstack.errors import EndpointUnreachable, ServiceNotInCatalog
from bosh_openstack_cpi.protocol.envelope import parse_request
from bosh_openstack_cpi.protocol.errors import CloudError

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class FakeCloud:
    def __init__(self) -> None:
        self.closed_with: list[bool] = []

    def close(self, *, keep_token: bool = True) -> None:
        self.closed_with.append(keep_token)


def _call(tmp_path: Path, **openstack: Any) -> Call:
    document = {
        "cloud": {
            "properties": {
                "openstack": {
                    "auth_url": "http://127.0.0.1:1/v3",
                    "username": "u",
                    "api_key": "secret-1",
                    "project": "p",
                    "domain": "d",
                    **openstack,
                }
            }
        }
    }
    config = tmp_path / "cpi.json"
    config.write_text(json.dumps(document))
    request = parse_request(
        b'{"method":"has_vm","arguments":["x"],"context":{"director_uuid":"d"}}'
    )
    return Call(request, str(config), None)


def test_token_is_kept_after_ordinary_errors_and_dropped_when_the_catalog_looks_stale(
    tmp_path: Path,
):
    cases = (
        (None, True),
        (CloudError("x"), True),
        (ServiceNotInCatalog("x"), False),
        (EndpointUnreachable("x"), False),
    )
    for error, kept in cases:
        call = _call(tmp_path)
        cloud = FakeCloud()
        call._cloud = cloud  # type: ignore[assignment]
        call.close(error)
        assert cloud.closed_with == [kept]


def test_ca_pem_goes_to_a_private_file_removed_at_the_end(tmp_path: Path, monkeypatch: Any):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    call = _call(tmp_path, connection_options={"ca_cert": PEM})
    path = Path(call._ca_file() or "")
    assert path.read_text() == PEM
    assert path.stat().st_mode & 0o777 == 0o600
    call.close()
    assert not path.exists()


def test_job_ca_file_is_used_when_the_config_has_no_pem(tmp_path: Path):
    job_ca = tmp_path / "cacert.pem"
    job_ca.write_text(PEM)
    call = _call(tmp_path)
    call._ca_cert_path = str(job_ca)
    assert call._ca_file() == str(job_ca)
    job_ca.write_text("")
    assert call._ca_file() is None  # the job renders an empty file when no CA is set


def test_lenient_config_readings_are_logged_as_warnings(tmp_path: Path, caplog: Any):
    call = _call(tmp_path, region="", flux=1)
    with caplog.at_level("WARNING"):
        assert call.config.openstack.region is None
    assert "Ignoring unknown openstack properties: flux" in caplog.text
    assert "openstack.region is an empty string: read as unset" in caplog.text
