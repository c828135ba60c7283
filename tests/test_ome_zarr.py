"""OME-Zarr in and out, in one process: real stores on disk, written and read by ome-zarr-py."""

import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr.writer import write_image

from napari_universeg.cli import main
from napari_universeg.distributed import segment_ome_zarr
from napari_universeg.ome_zarr_io import ZarrSlices, open_ome_zarr, plan_blocks
from napari_universeg.options import PredictOptions
from napari_universeg.predict import Segmenter
from napari_universeg.sample_data import synthetic_stack
from napari_universeg.support import SupportSet

SCALE = {"z": 2.0, "y": 0.5, "x": 0.5}


def write_volume(path, image, chunks=(4, 64, 64), axes="zyx", levels=1):
    """An OME-Zarr image as ome-zarr-py writes it (``levels`` resolution levels)."""
    write_image(
        image,
        zarr.open_group(str(path), mode="w"),
        axes=axes,
        scale={a: SCALE.get(a, 1.0) for a in axes},
        storage_options={"chunks": chunks},
        scale_factors=[2 ** (k + 1) for k in range(levels - 1)],
    )
    return path


@pytest.fixture(scope="module")
def engine():
    return Segmenter.from_weights("default", "cpu")


@pytest.fixture
def volume(tmp_path):
    image, labels = synthetic_stack(n_slices=12, size=64)
    support = SupportSet()
    for z in (0, 6):
        support.add(image[z], labels[z])
        tifffile.imwrite(tmp_path / f"ex{z}.tif", image[z])
        tifffile.imwrite(tmp_path / f"ex{z}_mask.tif", labels[z])
    return write_volume(tmp_path / "vol.zarr", image, levels=2), image, support


def _support_args(d):
    return ["--support-images", str(d / "ex0.tif"), str(d / "ex6.tif"), "--support-masks", str(d / "ex0_mask.tif"), str(d / "ex6_mask.tif")]


def test_slices_are_read_lazily_one_at_a_time(tmp_path):
    image = np.arange(2 * 3 * 5 * 64 * 64, dtype=np.uint16).reshape(2, 3, 5, 64, 64)
    vol = open_ome_zarr(write_volume(tmp_path / "tczyx.zarr", image, chunks=(1, 1, 2, 64, 64), axes="tczyx"))
    assert vol.n_slices == 10 and vol.slice_shape == (64, 64) and vol.label_axes == ("t", "z", "y", "x")
    slices = ZarrSlices(vol, channel=2)
    assert np.array_equal(slices[7], image[1, 2, 2]) and slices[7].dtype == np.uint16
    assert ZarrSlices(vol)[0].shape == (64, 64, 3)  # all channels, last (to_grey picks or asks)
    blocks = plan_blocks(vol, 3)  # rounded up to whole chunks (2), never across t
    assert [(b.start, b.stop) for b in blocks] == [(0, 4), (4, 5), (5, 9), (9, 10)]
    with pytest.raises(ValueError, match="channel 3 does not exist"):
        ZarrSlices(vol, channel=3)


def test_labels_in_the_labels_group_equal_the_single_process_result(volume, engine):
    path, image, support = volume
    options = PredictOptions(seed=0)  # auto: the plan is chosen once, then fixed for every block
    reference = np.stack([p.labels for p in engine.iter_predict(support, image, options)])
    run = segment_ome_zarr(str(path), support, options, segmenter=engine, block_slices=4, progress=False)
    assert run.computed == [0, 1, 2] and np.array_equal(run.labels.read(), reference)
    root = zarr.open_group(str(path), mode="r")
    assert dict(root["labels"].attrs)["ome"]["labels"] == ["universeg"]
    ms = dict(root["labels/universeg"].attrs)["ome"]["multiscales"][0]
    assert [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]] == [[2.0, 0.5, 0.5], [2.0, 1.0, 1.0]]  # the image's
    assert root["labels/universeg/s0"].chunks == root["s0"].chunks
    assert np.array_equal(root["labels/universeg/s1"][:], reference[:, 1::2, 1::2])  # nearest to each 2x2 centre
    assert np.array_equal(root["s0"][:], image)  # the image itself untouched
    again = segment_ome_zarr(str(path), support, options, segmenter=engine, block_slices=4, progress=False)
    assert again.skipped == 3 and again.computed == []  # resumed: nothing left to do


def test_cli_resumes_checks_and_refuses_to_clobber(volume, capsys):
    path, _, _ = volume
    args = ["segment", str(path), *_support_args(path.parent), "--mode", "resize", "--no-adapt", "--block-slices", "4"]
    assert main(args) == 0
    done = zarr.open_array(str(path / "labels/universeg/napari-universeg-done"), mode="r+")
    done[1] = 0  # as if the run had stopped before the second block
    assert main(["segment", str(path), "--check"]) == 2
    assert "incomplete: 1 of 3 blocks missing (slices 4-7)" in capsys.readouterr().err
    assert main(args) == 0
    assert "1 blocks computed, 2 already written" in capsys.readouterr().err
    assert main(["segment", str(path), "--check"]) == 0
    assert main([*args[:-2], "--block-slices", "8"]) == 2  # other settings: not a resume
    assert "already has labels 'universeg' from another run; give --overwrite" in capsys.readouterr().err
    assert main([*args[:-2], "--block-slices", "8", "--overwrite"]) == 0
    assert main([*args, "--labels-name", "other"]) == 0
    assert dict(zarr.open_group(str(path / "labels"), mode="r").attrs)["ome"]["labels"] == ["universeg", "other"]


@pytest.mark.parametrize(
    "make, extra, message",
    [
        (lambda d: d.mkdir() or d, [], "is not a Zarr store"),
        (lambda d: zarr.open_group(str(d), mode="w").store_path and d, [], "is not an OME-Zarr image: no multiscales metadata"),
        (lambda d: write_volume(d, np.zeros((4, 64, 64), np.uint8)), ["--out", "x.tif"], "name them with --labels-name, not --out"),
        (lambda d: write_volume(d, np.zeros((4, 64, 64), np.uint8)), ["--probabilities", "p.tif"], "not available for OME-Zarr"),
        (lambda d: write_volume(d, np.zeros((4, 64, 64), np.uint8)), ["--labels-name", "a/b"], "must be a plain name"),
    ],
)
def test_bad_ome_zarr_input_is_one_line(tmp_path, capsys, make, extra, message):
    path = make(tmp_path / "bad.zarr")
    (tmp_path / "ex.tif").write_bytes(b"")
    rc = main(["segment", str(path), "--support-images", "a.tif", "--support-masks", "b.tif", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_missing_array_and_cluster_flags_on_a_tiff(tmp_path, capsys):
    path = write_volume(tmp_path / "v.zarr", np.zeros((4, 64, 64), np.uint8))
    import shutil

    shutil.rmtree(path / "s0")
    assert main(["segment", str(path), "--check"]) == 2
    assert "the array 's0' listed in its multiscales metadata is missing" in capsys.readouterr().err
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((2, 64, 64), np.uint8))
    assert main(["segment", str(tmp_path / "s.tif"), "--out", str(tmp_path / "o.tif"), "--workers", "2"]) == 2
    assert "--workers work on an OME-Zarr input" in capsys.readouterr().err


@pytest.mark.gui
def test_labels_open_in_napari_on_the_image(volume, make_napari_viewer):
    path, image, support = volume
    assert main(["segment", str(path), *_support_args(path.parent), "--mode", "resize", "--no-adapt"]) == 0
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-ome-zarr")
    image_layer, labels_layer = viewer.layers
    assert type(labels_layer).__name__ == "Labels" and labels_layer.name.endswith("universeg")
    assert list(labels_layer.scale) == list(image_layer.scale) == [2.0, 0.5, 0.5]
    stored = zarr.open_array(str(path / "labels/universeg/s0"), mode="r")[:]
    assert stored.any() and np.array_equal(np.asarray(labels_layer.data[0]), stored)
