"""Slice positions in words, as messages and example names show them."""

from napari_universeg._slicing import describe_index


def test_slice_positions_in_words():
    assert describe_index(()) == "the image"
    assert describe_index((3,)) == "slice 3"
    assert describe_index((3,), ("-3", "-2", "-1")) == "slice 3"  # napari's default labels are numbers
    assert describe_index((2, 14), ("t", "z")) == "t=2, z=14"
    assert describe_index((2, 14), ("0", "1")) == "slice (2, 14)"
