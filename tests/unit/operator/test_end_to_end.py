from bosh_openstack_cpi.operator.end_to_end import (
    TINY_IMAGE_BYTES,
    TINY_STEMCELL,
    tiny_stemcell_image,
)
from bosh_openstack_cpi.stemcell_archive import check_disk_format, open_root_image


def test_the_tiny_stemcell_is_one_the_cpi_accepts(tmp_path):
    image = tiny_stemcell_image(str(tmp_path))
    with open_root_image(image) as root:
        check_disk_format(image, TINY_STEMCELL["disk_format"], root.head)
        assert root.size == TINY_IMAGE_BYTES
