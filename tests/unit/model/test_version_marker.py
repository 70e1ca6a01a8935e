from corral.model.layers import parse_layer_version_arn
from corral.model.limits import VERSION_MAX, version_marker


def test_version_markers_are_ascii_digits_clamped_to_a_long():
    assert version_marker(None) is None
    assert version_marker("") is None
    assert version_marker("abc") is None
    assert version_marker("\u00b2") is None  # str.isdigit() is true, int() fails
    assert version_marker("12") == 12
    assert version_marker("9" * 30) == VERSION_MAX


def test_a_layer_version_arn_beyond_a_long_names_nothing():
    arn = "arn:aws:lambda:us-east-1:000000000000:layer:x:"
    assert parse_layer_version_arn(arn + "7") == ("us-east-1", "000000000000", "x", 7)
    assert parse_layer_version_arn(arn + str(VERSION_MAX)) is not None
    assert parse_layer_version_arn(arn + str(VERSION_MAX + 1)) is None
