"""Cinder volume driver for the test cloud: volumes are records, never data.

Cinder ships cinder.tests.fake_driver.FakeLoggingVolumeDriver (in python3-cinder),
which handles create/delete/snapshot/attach/detach by logging. It lacks what the
CPI also needs:
  * extend: the parent (LVM) asks a fake volume group that cannot extend;
  * volume from image (boot from volume): the parent writes the image onto an LV;
  * volume to image (upload): the parent reads from an LV.
"""

import io
import os
import subprocess
import tempfile

from cinder.tests import fake_driver
from oslo_log import log

LOG = log.getLogger(__name__)


class TestCloudFakeDriver(fake_driver.FakeLoggingVolumeDriver):
    def extend_volume(self, volume, new_size):
        LOG.info("bosh-testcloud fake: volume %s extended to %s GiB", volume.id, new_size)

    def copy_image_to_volume(self, context, volume, image_service, image_id, *args, **kwargs):
        LOG.info("bosh-testcloud fake: image %s -> volume %s (no data copied)", image_id, volume.id)

    def copy_volume_to_image(self, context, volume, image_service, image_meta):
        """Upload a tiny image in the requested disk format as the volume's content."""
        data = b"\0" * (1024 * 1024)
        if image_meta.get("disk_format") == "qcow2":
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "volume.qcow2")
                try:
                    subprocess.run(
                        ["qemu-img", "create", "-f", "qcow2", path, "%dG" % volume.size],
                        check=True,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    with open(path, "rb") as f:
                        data = f.read()
                except (OSError, subprocess.CalledProcessError):
                    LOG.warning("bosh-testcloud fake: qemu-img failed, uploading raw zeros")
        LOG.info(
            "bosh-testcloud fake: volume %s -> image %s (%d bytes)",
            volume.id,
            image_meta["id"],
            len(data),
        )
        image_service.update(context, image_meta["id"], {}, io.BytesIO(data))
