"""Glance: images (stemcells).

Requests go straight to the Glance v2 REST API through a transport adapter, so that
the request bodies are exactly what the CPI means (openstacksdk's image resource converted
some properties to booleans, and its create_image helper looked up images by name first).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bosh_openstack_cpi.config import OpenStackConfig
from bosh_openstack_cpi.openstack import http, paths, retry
from bosh_openstack_cpi.openstack.errors import api_errors, describe_http_error
from bosh_openstack_cpi.openstack.waiting import wait_for
from bosh_openstack_cpi.protocol.errors import CloudError

log = logging.getLogger(__name__)

# A create whose fate is unknown is looked up, then sent again at most this often.
CREATE_ATTEMPTS = 3
# Statuses after which an image will never become active.
DEAD_STATUSES = frozenset({"killed", "deleted", "pending_delete", "deactivated"})
# Answers to an upload after which a second attempt (with the data read again) may work
# (429: a rate limit turned it away).
TRANSIENT_UPLOAD_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class ImageState:
    id: str
    name: str
    status: str
    size: int | None
    checksum: str | None
    hash_algo: str | None
    hash_value: str | None

    def describe(self) -> str:
        return f"status '{self.status}'"


class TransientUploadError(CloudError):
    """An upload failed in a way a second attempt, with the data read again, may fix
    (a 502/503/504 answer, a dropped connection). `answer_lost`: no answer came (the
    connection broke, timed out or was cut short), so Glance may have all the data."""

    def __init__(self, message: str, *, answer_lost: bool = False) -> None:
        super().__init__(message)
        self.answer_lost = answer_lost


class UploadBody:
    """A request body that requests sends with a Content-Length (no chunked encoding) and
    iterates exactly once. A second iteration, which only an automatic retry could cause,
    raises instead of silently sending nothing."""

    def __init__(self, chunks: Iterator[bytes], size: int) -> None:
        self._chunks = chunks
        self._size = size
        self._iterated = False

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        if self._iterated:
            raise CloudError(
                "Internal error: an image upload would have re-sent its (consumed) data stream"
            )
        self._iterated = True
        return self._chunks

    def __repr__(self) -> str:  # keystoneauth's debug log prints the body with str()
        return f"<{self._size} bytes streamed from the stemcell archive>"


def _state(body: Mapping[str, Any]) -> ImageState:
    size = body.get("size")
    return ImageState(
        id=str(body["id"]),
        name=str(body.get("name") or ""),
        status=str(body.get("status") or "unknown"),
        size=size if isinstance(size, int) else None,
        checksum=body.get("checksum"),
        hash_algo=body.get("os_hash_algo"),
        hash_value=body.get("os_hash_value"),
    )


class Image:
    def __init__(self, connection: http.Services, config: OpenStackConfig) -> None:
        self._glance = connection.image
        self._config = config

    def _send(self, method: str, url: str, **kwargs: Any) -> http.Response:
        response = self._glance.request(url, method, **kwargs)
        http.raise_from_response(response)
        return response

    def create(self, attributes: Mapping[str, str]) -> ImageState:
        """A new (queued) image with these attributes and properties.

        With an `id` among the attributes (Glance accepts one chosen by the client), a
        request whose fate is unknown (lost or cut-off answer, 5xx, rate limit) is followed
        by a lookup of that id, and sent again only when the image does not exist."""
        name = attributes.get("name", "")
        image_id = attributes.get("id")
        what = f"create image '{name}'"
        with api_errors("Image", what):
            for attempt in range(1, CREATE_ATTEMPTS + 1):
                try:
                    response = retry.refused_only(
                        lambda: self._send("POST", "/images", json=dict(attributes)), what
                    )
                    return _state(response.json())
                except http.ConflictException:
                    found = self.get(image_id) if image_id and attempt > 1 else None
                    if found is None:
                        raise
                    return found  # an earlier attempt made it after all
                except Exception as error:
                    unknown = retry.is_transient(error) or isinstance(error, ValueError)
                    if not image_id or not unknown or attempt == CREATE_ATTEMPTS:
                        raise
                    found = self.get(image_id)
                    if found is not None:
                        log.info("%s: the request did reach Glance, using %s", what, image_id)
                        return found
                    log.warning("%s failed (%s), sending it again", what, type(error).__name__)
                    time.sleep(attempt)
        raise AssertionError("unreachable")

    def get(self, image_id: str) -> ImageState | None:
        """The image, or None when Glance does not know it (or it is not visible to us)."""
        with api_errors("Image", f"look up image '{image_id}'"):
            try:
                response = retry.idempotent(
                    lambda: self._send("GET", paths.path("/images/{}", image_id)),
                    f"get image '{image_id}'",
                )
            except http.NotFoundException:
                return None
            return _state(response.json())

    def delete(self, image_id: str) -> bool:
        """Delete the image; False when it was already gone."""
        with api_errors("Image", f"delete image '{image_id}'"):
            try:
                retry.idempotent(
                    lambda: self._send("DELETE", paths.path("/images/{}", image_id)),
                    f"delete image '{image_id}'",
                )
            except http.NotFoundException:
                return False
        return True

    def images_with_property(self, key: str, value: str) -> list[dict[str, Any]]:
        """Images (of any visibility we can see) whose property `key` is `value`, page by
        page: the operator tools find a director's stemcells by `director_uuid`."""
        what = f"list images with {key}={value}"

        def page(*after: tuple[str, str]) -> dict[str, Any]:
            params = paths.filters((key, value), *after)
            body: dict[str, Any] = retry.idempotent(
                lambda: self._send("GET", "/images", params=params), what
            ).json()
            return body

        found: list[dict[str, Any]] = []
        with api_errors("Image", what):
            body = page()
            while True:
                images = body.get("images") or []
                found.extend(images)
                if not images or not body.get("next"):
                    return found
                body = page(("marker", str(images[-1]["id"])))

    def upload(self, image_id: str, chunks: Iterator[bytes], size: int) -> None:
        """Stream `size` bytes into the image's data, in one PUT that is never repeated.

        keystoneauth would re-send a consumed stream (an empty body) on a 503, a dropped
        connection, a redirect or a 401, and could then report success; all of these are
        switched off for this request. A failure a second attempt may fix raises
        TransientUploadError: the caller decides whether to read the data again.
        """
        action = f"upload the data of image '{image_id}'"
        with api_errors("Image", action):
            try:
                response = self._glance.put(
                    paths.path("/images/{}/file", image_id),
                    data=UploadBody(chunks, size),
                    headers={"Content-Type": "application/octet-stream"},
                    connect_retries=0,
                    status_code_retries=0,
                    allow_reauth=False,
                    redirect=False,
                )
            except (http.NotSent, http.AnswerLost, http.ReadTimedOut) as error:
                raise TransientUploadError(
                    f"OpenStack Image API: {action} failed, the connection broke: {error}",
                    answer_lost=True,
                ) from None
            if response.status_code in TRANSIENT_UPLOAD_STATUSES:
                raise TransientUploadError(
                    f"OpenStack Image API: {action} failed, {_describe(response)}"
                )
            if response.status_code == 413:
                raise CloudError(
                    f"OpenStack Image API: {action} failed, {_describe(response)}: the image "
                    f"({size} bytes) is larger than Glance's image_size_cap or the project's "
                    "image storage quota allows"
                )
            http.raise_from_response(response)
            if not 200 <= response.status_code < 300:  # a redirect, which is not followed
                raise CloudError(
                    f"OpenStack Image API: {action} failed, unexpected answer "
                    f"HTTP {response.status_code}"
                )

    def wait_until_active(self, image_id: str) -> ImageState:
        what = f"image '{image_id}' to become active"

        def fetch() -> ImageState:
            state = self.get(image_id)
            if state is None:
                raise CloudError(f"Failed waiting for {what}: the image was deleted")
            return state

        def failure(state: ImageState) -> str | None:
            if state.status in DEAD_STATUSES:
                return f"Glance set its status to '{state.status}'"
            if state.status == "queued":  # an upload Glance accepted never leaves 'queued'
                return "Glance holds no data for it after the upload (status 'queued')"
            return None

        return wait_for(
            what,
            fetch,
            lambda state: state.status == "active",
            timeout=self._config.state_timeout,
            max_interval=self._config.wait_resource_poll_interval,
            failure=failure,
            describe=ImageState.describe,
        )


def _describe(response: http.Response) -> str:
    try:
        http.raise_from_response(response)
    except http.HttpException as error:
        return describe_http_error(error)
    return f"HTTP {response.status_code}"
