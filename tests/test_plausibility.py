"""Mistakes caught before any work: swapped images and masks, and too many classes."""

import time

import numpy as np
import pytest
import tifffile

from napari_universeg.cli import main
from napari_universeg.evaluate import load_dataset
from napari_universeg.plausibility import MAX_CLASSES, classes_problem, mask_problem, pair_problem
from napari_universeg.sample_data import neurons, synthetic_stack
from napari_universeg.session import AnnotationSession
from napari_universeg.support import SupportSet


def test_real_masks_and_object_labels_pass_and_images_do_not():
    image, labels = synthetic_stack(n_slices=2, size=128, seed=0)
    _, objects = synthetic_stack(n_slices=2, size=128, seed=0, instances=True)
    images, masks = neurons()
    for im, m in [(image[0], labels[0]), (image[0], objects[0]), (images[0], masks[0]), (image[0], np.zeros((128, 128), int))]:
        assert pair_problem(im, m) is None
    grey = (image[0] / image[0].max() * 170).astype(np.uint8)
    assert "looks like an image" in mask_problem(grey)
    swapped = pair_problem(labels[0].astype(np.uint8), grey)
    assert "looks like an image" in swapped and swapped.endswith("did you swap the images and the masks (--support-images and --support-masks)?")
    assert "only the values 0 and 1" in pair_problem(labels[0] > 0, objects[0])  # a binary "image" with objects


def test_the_evaluation_sets_masks_and_instances_pass(evaldata):
    for folder in sorted(d for d in evaldata.iterdir() if (d / "images").is_dir()):
        ds = load_dataset(folder)
        for i in ds.ids[:10]:
            assert pair_problem(ds.image(i), ds.mask(i)) is None, (folder.name, i)
            objects = folder / "instances" / f"{i}.tif"
            if objects.is_file():
                assert mask_problem(tifffile.imread(objects)) is None, (folder.name, i)


def test_a_swapped_pair_is_refused_by_the_cli_within_a_second(tmp_path, capsys):
    image, labels = synthetic_stack(n_slices=2, size=256, seed=0)
    grey = (image[0] / image[0].max() * 170).astype(np.uint8)
    tifffile.imwrite(tmp_path / "slice00.tif", grey)
    tifffile.imwrite(tmp_path / "slice00_mask.tif", labels[0].astype(np.uint8))
    tifffile.imwrite(tmp_path / "stack.tif", image)
    start = time.perf_counter()
    rc = main(
        [
            "segment",
            str(tmp_path / "stack.tif"),
            "--out",
            str(tmp_path / "out.tif"),
            "--support-images",
            str(tmp_path / "slice00_mask.tif"),
            "--support-masks",
            str(tmp_path / "slice00.tif"),
        ]
    )
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err.strip()
    assert rc == 2 and seconds < 1.0 and len(err.splitlines()) == 1
    assert "looks like an image" in err and "did you swap the images and the masks" in err
    assert not (tmp_path / "out.tif").exists()


def test_too_many_classes_are_refused_before_the_run_with_the_way_out():
    mask = np.kron(np.arange(1, 26).reshape(5, 5), np.ones((20, 20), int))  # 25 patches, one value each
    image = np.random.default_rng(0).random(mask.shape)
    session = AnnotationSession()
    session.support.add(image, mask)
    with pytest.raises(ValueError, match=f"25 label values.*at most {MAX_CLASSES}.*task 'instances'"):
        session.check_ready()
    session.support.task = "instances"
    session.check_ready()  # objects: fine
    assert classes_problem(list(range(1, MAX_CLASSES + 1)), "classes") is None


def test_a_file_with_pickled_objects_says_what_it_is_and_what_was_expected(tmp_path):
    path = tmp_path / "not_a_set.npz"
    np.savez(path, metadata=np.array([{"format": "napari-universeg-support"}], dtype=object))
    with pytest.raises(ValueError, match=r"not_a_set.npz is not a napari-universeg support-set file: it holds Python objects \(pickled data\)"):
        SupportSet.load(path)
