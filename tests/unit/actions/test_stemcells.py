"""create_stemcell / delete_stemcell orchestration against a faked Glance: the failure paths
the real cloud does not produce on demand, and the image attributes in detail."""

import gzip
import hashlib
import io
import logging
import os
import re
import signal
import sys
import tarfile
from types import SimpleNamespace

import pytest
import requests

from bosh_openstack_cpi.actions import stemcells
from bosh_openstack_cpi.protocol.errors import CloudError
from tests.unit.openstack.test_image import IMAGE_ID, IMAGES, Receiver, fake_glance, image_body

DIRECTOR = "director-uuid-1"
ROOT_IMG = os.urandom((5 << 20) // 2)  # 2.5 MiB: three chunks
PROPERTIES = {"name": "bosh-stemcell", "version": "1.5", "disk_format": "raw"}


def _archive(path, *extra_members, data=ROOT_IMG):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("root.img")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for member in extra_members:
            tar.addfile(member)
    path.write_bytes(gzip.compress(buffer.getvalue(), compresslevel=1))
    return str(path)


class FakeCall:
    """What the actions use of a Call; the cloud (auth, discovery) only when touched."""

    def __init__(self, requests_mock, public=False):
        self._requests_mock = requests_mock
        self._cloud = None
        self.director_uuid = DIRECTOR
        self.config = SimpleNamespace(openstack=SimpleNamespace(stemcell_public_visibility=public))

    @property
    def cloud(self):
        if self._cloud is None:
            self._cloud = SimpleNamespace(image=fake_glance(self._requests_mock))
        return self._cloud

    @property
    def connected(self):
        return self._cloud is not None


@pytest.fixture
def call(requests_mock):
    return FakeCall(requests_mock)


@pytest.fixture
def image_path(tmp_path):
    return _archive(tmp_path / "image")


def _stored(data=ROOT_IMG, algo="sha512", **overrides):
    fields = {
        "size": len(data),
        "os_hash_algo": algo,
        "os_hash_value": hashlib.new(algo, data).hexdigest() if algo else None,
        **overrides,
    }
    return {"json": image_body("active", **fields)}


def _mock_glance(requests_mock, put_statuses=(204,), gets=None, delete_status=204):
    requests_mock.post(IMAGES, status_code=201, json=image_body("queued"))
    receiver = Receiver(*put_statuses)
    requests_mock.put(f"{IMAGES}/{IMAGE_ID}/file", text=receiver)
    requests_mock.get(f"{IMAGES}/{IMAGE_ID}", gets or [_stored()])
    requests_mock.delete(f"{IMAGES}/{IMAGE_ID}", status_code=delete_status)
    return receiver


def _glance_requests(requests_mock):
    return [
        f"{r.method} {r.path}"
        for r in requests_mock.request_history
        if r.path.startswith("/v2/images")
    ]


# --- image attributes ---------------------------------------------------------------------


def test_attributes_follow_the_reference_cpi():
    cloud_properties = {
        "name": "bosh-openstack-kvm-ubuntu-jammy-go_agent",
        "version": "1.123",
        "infrastructure": "openstack",
        "hypervisor": "kvm",
        "disk": 5120,
        "disk_format": "qcow2",
        "container_format": "bare",
        "os_type": "linux",
        "os_distro": "ubuntu",
        "architecture": "x86_64",
        "auto_disk_config": True,
        "hw_vif_multiqueue_enabled": False,
        "hw_disk_bus": "scsi",
        "vmware_adaptertype": "lsiLogic",
        "kernel_file": "kernel.img",
        "os_version": None,
    }
    attributes = stemcells.image_attributes(
        cloud_properties, director_uuid=DIRECTOR, public=False, tags={}
    )
    assert attributes == {
        "name": "bosh-openstack-kvm-ubuntu-jammy-go_agent/1.123",
        "disk_format": "qcow2",
        "container_format": "bare",
        "visibility": "private",
        "version": "1.123",
        "os_type": "linux",
        "os_distro": "ubuntu",
        "architecture": "x86_64",
        "auto_disk_config": "true",
        "hw_vif_multiqueue_enabled": "false",
        "hw_disk_bus": "scsi",
        "vmware_adaptertype": "lsiLogic",
        "hypervisor_type": "kvm",
        "director_uuid": DIRECTOR,
    }


def test_public_visibility_and_default_container_format():
    attributes = stemcells.image_attributes(
        {**PROPERTIES, "version": 3586.25}, director_uuid=DIRECTOR, public=True, tags={}
    )
    assert attributes["visibility"] == "public"
    assert attributes["container_format"] == "bare"
    assert attributes["name"] == "bosh-stemcell/3586.25"


def test_tags_become_properties_but_never_override_glance_or_the_cpi(caplog):
    tags = stemcells._tags(
        {"tags": {"team": "blue", "name": "x", "os_glance_x": "y", "director_uuid": "other"}}
    )
    attributes = stemcells.image_attributes(
        {**PROPERTIES, "os_type": "linux"},
        director_uuid=DIRECTOR,
        public=False,
        tags={**tags, "os_type": "windows"},
    )
    assert attributes["team"] == "blue"
    assert attributes["name"] == "bosh-stemcell/1.5"
    assert "os_glance_x" not in attributes
    assert attributes["director_uuid"] == DIRECTOR
    assert attributes["os_type"] == "linux"
    assert "Tag 'name' is not set" in caplog.text


def test_tag_values_are_strings_of_at_most_255_characters():
    assert stemcells._tags({"tags": {"long": "v" * 300, "flag": True, "none": None}}) == {
        "long": "v" * 255,
        "flag": "true",
    }


@pytest.mark.parametrize(
    ("cloud_properties", "expected"),
    [
        ({"version": "1", "disk_format": "raw"}, "cloud_properties.name is required"),
        ({"name": "s", "disk_format": "raw"}, "cloud_properties.version is required"),
        ({"name": "s", "version": "1"}, "disk_format must be one of qcow2, raw .*got null"),
        ({"name": "s", "version": "1", "disk_format": "vmdk"}, 'got "vmdk"'),
        ({**PROPERTIES, "container_format": 7}, "container_format must be a string"),
    ],
)
def test_invalid_cloud_properties(cloud_properties, expected):
    with pytest.raises(CloudError, match=expected):
        stemcells.image_attributes(cloud_properties, director_uuid="d", public=False, tags={})


# --- heavy stemcells --------------------------------------------------------------------


def test_upload_creates_streams_and_verifies_in_three_requests(call, image_path, requests_mock):
    receiver = _mock_glance(requests_mock)
    assert stemcells.create_stemcell(call, image_path, PROPERTIES) == IMAGE_ID
    assert receiver.bodies == [ROOT_IMG]
    assert _glance_requests(requests_mock) == [
        "POST /v2/images",
        f"PUT /v2/images/{IMAGE_ID}/file",
        f"GET /v2/images/{IMAGE_ID}",
    ]
    (create,) = [
        r for r in requests_mock.request_history if r.method == "POST" and "images" in r.path
    ]
    created = create.json()
    assert created["name"] == "bosh-stemcell/1.5"
    assert created["director_uuid"] == DIRECTOR


@pytest.mark.parametrize("status", [503, 429])
def test_a_503_is_retried_once_by_reading_the_archive_again(
    call, image_path, requests_mock, status
):
    receiver = _mock_glance(
        requests_mock, put_statuses=(status, 204), gets=[{"json": image_body("queued")}, _stored()]
    )
    assert stemcells.create_stemcell(call, image_path, PROPERTIES) == IMAGE_ID
    assert receiver.bodies == [ROOT_IMG, ROOT_IMG]  # two complete bodies, never an empty one


def test_a_second_503_fails_and_removes_the_image(call, image_path, requests_mock):
    receiver = _mock_glance(
        requests_mock, put_statuses=(503, 503), gets=[{"json": image_body("queued")}]
    )
    with pytest.raises(CloudError) as caught:
        stemcells.create_stemcell(call, image_path, PROPERTIES)
    assert "HTTP 503" in caught.value.message
    assert f"(the half-made image '{IMAGE_ID}' was deleted)" in caught.value.message
    assert receiver.bodies == [ROOT_IMG, ROOT_IMG]
    assert _glance_requests(requests_mock)[-1] == f"DELETE /v2/images/{IMAGE_ID}"


def test_no_second_attempt_unless_glance_kept_the_image_queued(call, image_path, requests_mock):
    receiver = _mock_glance(
        requests_mock, put_statuses=(503,), gets=[{"json": image_body("saving")}]
    )
    with pytest.raises(CloudError, match="HTTP 503"):
        stemcells.create_stemcell(call, image_path, PROPERTIES)
    assert len(receiver.bodies) == 1
    assert _glance_requests(requests_mock)[-1] == f"DELETE /v2/images/{IMAGE_ID}"


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (_stored(size=len(ROOT_IMG) - 1), "Glance stored 2621439 bytes"),
        (_stored(data=b"other", size=len(ROOT_IMG)), "sha512 of image .* differs"),
    ],
)
def test_a_mismatch_with_what_glance_stored_fails_and_removes_the_image(
    call, image_path, requests_mock, stored, expected
):
    _mock_glance(requests_mock, gets=[stored])
    with pytest.raises(CloudError, match=expected):
        stemcells.create_stemcell(call, image_path, PROPERTIES)
    assert _glance_requests(requests_mock)[-1] == f"DELETE /v2/images/{IMAGE_ID}"


def test_another_glance_hash_algorithm_verifies_the_size_only(
    call, image_path, requests_mock, caplog
):
    _mock_glance(requests_mock, gets=[_stored(algo="sha256")])
    caplog.set_level(logging.WARNING)
    assert stemcells.create_stemcell(call, image_path, PROPERTIES) == IMAGE_ID
    assert "hashes images with 'sha256'" in caplog.text


def test_corruption_after_root_img_aborts_the_upload_and_removes_the_image(
    call, tmp_path, requests_mock
):
    link = tarfile.TarInfo("escape")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc"
    path = _archive(tmp_path / "image", link)
    received = []

    def partial_reader(request, context):
        try:
            for chunk in request.body:
                received.append(chunk)
        finally:
            context.status_code = 204

    requests_mock.post(IMAGES, status_code=201, json=image_body("queued"))
    requests_mock.put(f"{IMAGES}/{IMAGE_ID}/file", text=partial_reader)
    requests_mock.delete(f"{IMAGES}/{IMAGE_ID}", status_code=204)
    with pytest.raises(CloudError) as caught:
        stemcells.create_stemcell(call, path, PROPERTIES)
    assert "holds a link 'escape' -> '/etc'" in caught.value.message
    assert "was deleted" in caught.value.message
    assert len(b"".join(received)) < len(ROOT_IMG)  # the last chunk was never sent
    assert _glance_requests(requests_mock)[-1] == f"DELETE /v2/images/{IMAGE_ID}"


def test_a_failed_cleanup_says_which_image_to_delete_by_hand(call, image_path, requests_mock):
    _mock_glance(requests_mock, put_statuses=(400,), delete_status=403)
    with pytest.raises(CloudError) as caught:
        stemcells.create_stemcell(call, image_path, PROPERTIES)
    message = caught.value.message
    assert "HTTP 400" in message
    assert f"could not delete the half-made image '{IMAGE_ID}'" in message
    assert "delete it by hand" in message


def test_a_signal_during_the_upload_still_removes_the_image(call, image_path, requests_mock):
    def interrupted(request, context):
        next(iter(request.body))
        raise KeyboardInterrupt

    requests_mock.post(IMAGES, status_code=201, json=image_body("queued"))
    requests_mock.put(f"{IMAGES}/{IMAGE_ID}/file", text=interrupted)
    requests_mock.delete(f"{IMAGES}/{IMAGE_ID}", status_code=204)
    with pytest.raises(KeyboardInterrupt):
        stemcells.create_stemcell(call, image_path, PROPERTIES)
    assert _glance_requests(requests_mock)[-1] == f"DELETE /v2/images/{IMAGE_ID}"


@pytest.mark.parametrize(
    ("make_path", "properties", "expected"),
    [
        (lambda tmp: str(tmp / "missing"), PROPERTIES, "does not exist"),
        (lambda tmp: _archive(tmp / "image"), {**PROPERTIES, "disk_format": "qcow2"}, "raw root"),
        (lambda tmp: _archive(tmp / "image"), {**PROPERTIES, "disk_format": "iso"}, "iso"),
    ],
)
def test_bad_input_is_refused_before_anything_is_created(
    call, tmp_path, requests_mock, make_path, properties, expected
):
    with pytest.raises(CloudError, match=expected):
        stemcells.create_stemcell(call, make_path(tmp_path), properties)
    assert not call.connected  # not even authenticated


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_only_on_a_terminal(call, image_path, requests_mock, monkeypatch, terminal):
    stderr = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    _mock_glance(requests_mock)
    stemcells.create_stemcell(call, image_path, PROPERTIES)
    progress = "Uploading root.img: 2 of 2 MiB (100%)"
    assert (progress in stderr.getvalue()) is terminal


# --- light stemcells and delete -------------------------------------------------------------


def test_light_stemcell_checks_the_image_and_uploads_nothing(call, requests_mock):
    requests_mock.get(f"{IMAGES}/{IMAGE_ID}", json=image_body("active"))
    result = stemcells.create_stemcell(call, "/no/image", {"image_id": IMAGE_ID, "name": "x"})
    assert result == f"{IMAGE_ID} light"
    assert _glance_requests(requests_mock) == [f"GET /v2/images/{IMAGE_ID}"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"status_code": 404}, "Glance does not know it"),
        ({"json": image_body("queued")}, "its status is 'queued'"),
    ],
)
def test_light_stemcell_of_a_missing_or_inactive_image(call, requests_mock, answer, expected):
    requests_mock.get(f"{IMAGES}/{IMAGE_ID}", **answer)
    with pytest.raises(CloudError) as caught:
        stemcells.create_stemcell(call, "", {"image_id": IMAGE_ID})
    assert caught.value.message.startswith(f"No active image with id '{IMAGE_ID}'")
    assert expected in caught.value.message


def test_light_stemcell_image_id_must_be_a_string(call, requests_mock):
    with pytest.raises(CloudError, match="image_id must be the id of a Glance image"):
        stemcells.create_stemcell(call, "", {"image_id": 42})
    assert not call.connected


def test_deleting_a_light_stemcell_touches_nothing(call, requests_mock):
    stemcells.delete_stemcell(call, f"{IMAGE_ID} light")
    assert not call.connected


@pytest.mark.parametrize("status", [204, 404])
def test_delete_is_idempotent(call, requests_mock, status):
    requests_mock.delete(f"{IMAGES}/{IMAGE_ID}", status_code=status)
    stemcells.delete_stemcell(call, IMAGE_ID)
    assert _glance_requests(requests_mock) == [f"DELETE /v2/images/{IMAGE_ID}"]


def test_delete_refused_is_an_error(call, requests_mock):
    requests_mock.delete(f"{IMAGES}/{IMAGE_ID}", status_code=403, json={"message": "protected"})
    with pytest.raises(CloudError, match=r"delete image .* HTTP 403"):
        stemcells.delete_stemcell(call, IMAGE_ID)


def test_a_signal_while_the_image_is_created_is_held_until_cleanup_is_possible(
    call, image_path, requests_mock
):
    def created_then_interrupted(request, context):
        os.kill(os.getpid(), signal.SIGINT)  # arrives before the CPI knows the image's id
        context.status_code = 201
        return image_body("queued")

    requests_mock.post(IMAGES, json=created_then_interrupted)
    requests_mock.delete(f"{IMAGES}/{IMAGE_ID}", status_code=204)
    # whatever this process inherited (a background job starts with SIGINT ignored)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        stemcells.create_stemcell(call, image_path, PROPERTIES)
    assert _glance_requests(requests_mock) == ["POST /v2/images", f"DELETE /v2/images/{IMAGE_ID}"]
    assert signal.getsignal(signal.SIGINT) is before


def test_when_the_image_cannot_be_looked_at_the_upload_error_is_kept(
    call, image_path, requests_mock
):
    receiver = _mock_glance(requests_mock, put_statuses=(503,), gets=[{"status_code": 403}])
    with pytest.raises(CloudError) as caught:
        stemcells.create_stemcell(call, image_path, PROPERTIES)
    assert "upload the data of image" in caught.value.message
    assert "HTTP 503" in caught.value.message
    assert len(receiver.bodies) == 1
    assert _glance_requests(requests_mock)[-1] == f"DELETE /v2/images/{IMAGE_ID}"


def test_a_create_that_keeps_failing_removes_the_image_it_may_have_made(
    call, image_path, requests_mock, monkeypatch
):
    """The image's id is chosen by the CPI: whatever happened to the create requests, the
    image is looked up and removed by that id."""
    monkeypatch.setattr("bosh_openstack_cpi.openstack.image.time.sleep", lambda _: None)
    post = requests_mock.post(IMAGES, status_code=500, json={"message": "boom"})
    requests_mock.get(re.compile(f"{IMAGES}/[-0-9a-f]+$"), status_code=404)
    deleted = requests_mock.delete(re.compile(f"{IMAGES}/[-0-9a-f]+$"), status_code=204)
    with pytest.raises(CloudError, match="HTTP 500"):
        stemcells.create_stemcell(call, image_path, PROPERTIES)
    chosen = {r.json()["id"] for r in post.request_history}
    assert len(chosen) == 1 and post.call_count == 3
    assert [r.path.rsplit("/", 1)[-1] for r in deleted.request_history] == list(chosen)


def test_a_lost_answer_to_a_complete_upload_is_checked_not_failed(call, image_path, requests_mock):
    """The connection broke after Glance got every byte: what Glance stored is checked
    (size, SHA-512) instead of failing and deleting a good image."""
    received: list[bytes] = []

    def consumed_then_reset(request, context):
        received.append(b"".join(request.body))
        raise requests.exceptions.ConnectionError("('Connection aborted.', RemoteDisconnected())")

    requests_mock.post(IMAGES, status_code=201, json=image_body("queued"))
    requests_mock.put(f"{IMAGES}/{IMAGE_ID}/file", text=consumed_then_reset)
    requests_mock.get(f"{IMAGES}/{IMAGE_ID}", [_stored()])
    assert stemcells.create_stemcell(call, image_path, PROPERTIES) == IMAGE_ID
    assert received == [ROOT_IMG]
    assert not any(r.method == "DELETE" for r in requests_mock.request_history)
