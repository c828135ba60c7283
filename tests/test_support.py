"""SupportSet validation and its file format."""

import numpy as np
import pytest

from napari_universeg.support import SupportSet, is_support_file


def _example(rng, shape=(32, 40)):
    image = rng.random(shape).astype(np.float32)
    mask = (image > 0.7).astype(np.uint8)
    return image, mask


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    s = SupportSet()
    for i in range(3):
        s.add(*_example(rng), source=f"layer 'cells' slice {i}")
    s[1].enabled = False
    rgb = (rng.random((32, 40, 3)) * 255).astype(np.uint8)
    s.add(rgb, np.zeros((32, 40), np.uint8), source="rgb")  # RGB -> luminance; empty mask is valid
    path = s.save(tmp_path / "set")
    assert path.name == "set.npz" and is_support_file(path)
    loaded = SupportSet.load(path)
    assert len(loaded) == 4 and [e.enabled for e in loaded] == [True, False, True, True]
    assert loaded[0].source == "layer 'cells' slice 0"
    for a, b in zip(s, loaded):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.mask, b.mask)
    assert loaded[3].image.ndim == 2 and len(loaded.enabled()) == 3


@pytest.mark.parametrize(
    "image,mask,message",
    [
        (np.zeros((4, 4)), np.zeros((4, 4)), "at least 8x8"),
        (np.ones((16, 16)), np.zeros((16, 16)), "constant"),
        (np.full((16, 16), np.nan), np.zeros((16, 16)), "NaN"),
        (np.random.rand(16, 16), np.zeros((16, 17)), "shape"),
        (np.random.rand(16, 16), np.full((16, 16), 0.5), "integer labels"),
        (np.random.rand(5, 16, 16), np.zeros((16, 16)), "2D image"),
        (np.random.rand(16, 16, 6), np.zeros((16, 16)), "choose one channel"),
        (np.random.rand(16, 16), np.zeros((2, 16, 16)), "2D label image"),
        (np.random.rand(16, 16), np.full((16, 16), 2**40, np.int64), "has label 1099511627776; labels must be at most 2147483647"),
        (np.random.rand(16, 16), np.full((16, 16), 2**63, np.uint64), "has label 9223372036854775808"),
    ],
)
def test_bad_examples_are_refused_with_a_clear_message(image, mask, message):
    s = SupportSet()
    with pytest.raises(ValueError, match=message):
        s.add(image, mask)
    assert len(s) == 0


def test_all_foreground_and_float_integer_masks_are_valid():
    s = SupportSet()
    s.add(np.random.rand(16, 16), np.ones((16, 16), np.float32))
    s.add(np.random.rand(16, 16), np.full((16, 16), 2, np.int64))
    assert s.classes() == [1, 2]


def test_files_that_are_not_support_sets(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a napari-universeg support-set file"):
        SupportSet.load(tmp_path / "other.npz")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="not an .npz archive"):
        SupportSet.load(tmp_path / "broken.npz")
    import tifffile

    tifffile.imwrite(tmp_path / "image.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="image.tif is not a napari-universeg support-set file \\(not an .npz archive\\)"):
        SupportSet.load(tmp_path / "image.tif")
    assert not is_support_file(tmp_path / "other.npz") and not is_support_file(tmp_path / "broken.npz")


@pytest.mark.parametrize(
    "metadata,message",
    [
        ("[1, 2]", "is not a napari-universeg support-set file"),
        ('{"format": "napari-universeg-support", "version": 99, "examples": []}', "version 99 is not supported"),
        ('{"format": "napari-universeg-support", "version": 1, "examples": "abc"}', "'examples' must be a list, not str"),
        ('{"format": "napari-universeg-support", "version": 1, "examples": [{"enabled": "false"}]}', "example 0 must have"),
        ('{"format": "napari-universeg-support", "version": 1, "examples": [3]}', "example 0 must have"),
        (
            '{"format": "napari-universeg-support", "version": 1, "examples": [{"meta": ' + "[" * 100_000 + "]" * 100_000 + "}]}",
            "cannot read support-set file",
        ),
    ],
)
def test_metadata_of_the_wrong_shape_is_one_clear_error(tmp_path, metadata, message):
    rng = np.random.default_rng(0)
    image, mask = _example(rng)
    np.savez(tmp_path / "odd.npz", image_0=image, mask_0=mask, metadata=np.array(metadata))
    with pytest.raises(ValueError, match=message):
        SupportSet.load(tmp_path / "odd.npz")


def test_missing_member_is_named(tmp_path):
    rng = np.random.default_rng(1)
    s = SupportSet()
    s.add(*_example(rng))
    s.add(*_example(rng))
    path = s.save(tmp_path / "set.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != "mask_1"}
    np.savez(tmp_path / "incomplete.npz", **arrays)
    with pytest.raises(ValueError, match="mask_1 is missing"):
        SupportSet.load(tmp_path / "incomplete.npz")


def test_object_arrays_are_not_unpickled(tmp_path):
    np.savez(tmp_path / "evil.npz", metadata=np.array([{"format": "x"}], dtype=object))
    with pytest.raises(ValueError):
        SupportSet.load(tmp_path / "evil.npz")


def test_large_labels_are_kept_not_wrapped(tmp_path):
    s = SupportSet()
    mask = np.zeros((16, 16), np.int64)
    mask[4:8] = 70000
    s.add(np.random.rand(16, 16), mask)
    loaded = SupportSet.load(s.save(tmp_path / "big.npz"))
    assert loaded.classes() == [70000] and loaded[0].mask.max() == 70000


def test_a_small_archive_declaring_huge_arrays_is_refused_before_decompressing(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_UNIVERSEG_MAX_PIXELS", str(10_000))
    rng = np.random.default_rng(0)
    s = SupportSet()
    s.add(np.zeros((64, 64)) + rng.random((64, 64)), np.zeros((64, 64), np.uint8))  # 2 x 4096 elements
    s.add(np.zeros((64, 64)) + rng.random((64, 64)), np.zeros((64, 64), np.uint8))
    path = s.save(tmp_path / "set.npz")
    with pytest.raises(ValueError, match="set.npz declares .* more than the limit of 10,000; set NAPARI_UNIVERSEG_MAX_PIXELS"):
        SupportSet.load(path)
    monkeypatch.setenv("NAPARI_UNIVERSEG_MAX_PIXELS", str(1 << 20))  # the documented override
    assert len(SupportSet.load(path)) == 2
