from bosh_openstack_cpi import tagging


def test_metadata_is_stringified_and_cut_to_255():
    clean = tagging.sanitize_metadata(
        {"index": 0, "compiling": True, "k" * 300: "v" * 300, "none": None, "tags": {"b": 1}}
    )
    assert clean["index"] == "0"
    assert clean["compiling"] == "true"
    assert clean["k" * 255] == "v" * 255
    assert "none" not in clean
    assert clean["tags"] == '{"b":1}'


def test_port_description_round_trip():
    description = tagging.port_description("d-1")
    assert tagging.director_of_port(description) == "d-1"
    assert tagging.director_of_port("something else") is None
    assert tagging.director_of_port(None) is None
