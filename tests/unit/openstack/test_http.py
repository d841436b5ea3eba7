"""Error answers of each service -> our HTTP exceptions, and microversion checks."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from keystoneauth1 import adapter, noauth, session

from bosh_openstack_cpi.openstack import http
from bosh_openstack_cpi.openstack.connection import KeystoneauthAdapter


def _answer(
    status: int,
    body: Any = None,
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    text: str | None = None,
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = {404: "Not Found", 409: "Conflict"}.get(status, "Error")
    response.headers.update({"Content-Type": content_type, **(headers or {})})
    response._content = (text if text is not None else json.dumps(body)).encode()
    response.request = requests.Request("GET", "http://nova/v2.1/servers/x").prepare()
    return response


def _raised(response: requests.Response) -> http.HttpException:
    with pytest.raises(http.HttpException) as raised:
        http.raise_from_response(response)
    return raised.value


def test_success_raises_nothing():
    http.raise_from_response(_answer(204, text=""))
    http.raise_from_response(_answer(300, text=""))  # Glance's version document


@pytest.mark.parametrize("status", [301, 302, 303, 305, 307, 308])
def test_a_redirect_not_followed_is_an_error(status):
    with pytest.raises(http.HttpException, match=f"Redirect HTTP {status} .*not followed"):
        http.raise_from_response(_answer(status, text=""))


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, http.BadRequestException),
        (403, http.ForbiddenException),
        (404, http.NotFoundException),
        (409, http.ConflictException),
        (413, http.HttpException),
        (503, http.HttpException),
    ],
)
def test_the_class_follows_the_status(status, kind):
    error = _raised(_answer(status, {"x": {"message": "m"}}))
    assert type(error) is kind
    assert error.status_code == status


@pytest.mark.parametrize(
    "body",
    [
        {"itemNotFound": {"code": 404, "message": "Instance x could not be found."}},  # Nova
        {"NeutronError": {"type": "PortNotFound", "message": "Instance x could not be found."}},
        {"error": {"code": 404, "title": "Not Found", "message": "Instance x could not be found."}},
        {"message": "Instance x could not be found.", "code": 404},  # bare
    ],
)
def test_details_are_the_services_own_words(body):
    error = _raised(_answer(404, body))
    assert error.details == "Instance x could not be found."
    assert "could not be found" in str(error)


def test_glance_html_pages_lose_their_tags():
    page = (
        "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n"
        "  <h1>404 Not Found</h1>\n  No image found with ID x<br /><br />\n </body>\n</html>"
    )
    error = _raised(_answer(404, text=page, content_type="text/html; charset=UTF-8"))
    assert error.details == "404 Not Found: No image found with ID x"


def test_an_empty_or_unreadable_body_gives_the_reason_phrase_or_the_text():
    assert _raised(_answer(409, text="")).details == "Conflict"
    assert _raised(_answer(404, text="{not json")).details == "{not json"


@pytest.mark.parametrize("header", ["x-openstack-request-id", "x-compute-request-id"])
def test_the_request_id_is_kept(header):
    error = _raised(_answer(404, {}, headers={header: "req-1"}))
    assert error.request_id == "req-1"
    assert error.response is not None
    assert "GET http://nova/v2.1/servers/x" in error.message


def _adapter(requests_mock: Any, version: dict[str, Any]) -> KeystoneauthAdapter:
    requests_mock.get("http://cinder/v3/", json={"version": version})
    return KeystoneauthAdapter(
        adapter.Adapter(
            session.Session(auth=noauth.NoAuth()),
            service_type="block-storage",
            endpoint_override="http://cinder/v3/",
            min_version="3",
            max_version="3.latest",
        )
    )


def _cinder(max_version: str) -> dict[str, Any]:
    return {
        "id": "v3.0",
        "status": "CURRENT",
        "version": max_version,
        "min_version": "3.0",
        "links": [{"rel": "self", "href": "http://cinder/v3/"}],
    }


def test_microversions_within_the_services_range(requests_mock):
    cinder = _adapter(requests_mock, _cinder("3.60"))
    assert http.supports_microversion(cinder, "3.42")
    assert not http.supports_microversion(cinder, "3.61")
    assert http.best_microversion(cinder, "3.42") == "3.42"
    assert http.best_microversion(cinder, "3.71") == "3.60"


def test_a_service_without_microversions(requests_mock):
    cinder = _adapter(requests_mock, _cinder("") | {"min_version": ""})
    assert not http.supports_microversion(cinder, "3.0")
    assert http.best_microversion(cinder, "3.71") is None
