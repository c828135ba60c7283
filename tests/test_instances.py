"""Instances: painted objects -> core task -> objects of a query; metrics; CLI, evaluation, file."""

import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from napari_universeg import PredictOptions, Segmenter, SupportSet
from napari_universeg.cli import main
from napari_universeg.instances import CORE, RIM, core_rim_task, guess_task, instances_from_probs, offset_ids
from napari_universeg.metrics import aggregated_jaccard, average_precision
from napari_universeg.sample_data import synthetic_stack


def _touching_discs(size=64):
    """Two touching discs (ids 7 and 3) and a separate small one (id 12)."""
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.int32)
    labels[(yy - 30) ** 2 + (xx - 20) ** 2 < 12**2] = 7
    labels[(yy - 30) ** 2 + (xx - 42) ** 2 < 12**2] = 3
    labels[(yy - 55) ** 2 + (xx - 55) ** 2 < 4**2] = 12
    return labels


def test_every_object_gets_a_core_and_touching_objects_keep_their_cores_apart():
    labels = _touching_discs()
    task = core_rim_task(labels)
    assert set(np.unique(task)) == {0, CORE, RIM}
    assert np.array_equal(task > 0, labels > 0)
    cores, n = ndi.label(task == CORE)
    assert n == 3  # one core per object, the two touching discs' cores apart
    for value in (7, 3, 12):
        assert len(np.unique(cores[(labels == value) & (task == CORE)])) == 1


def test_perfect_probabilities_give_back_the_objects():
    labels = _touching_discs()
    task = core_rim_task(labels)
    objects = instances_from_probs((labels > 0).astype(np.float32), (task == CORE).astype(np.float32))
    # flat probabilities: the touching discs are split where their cores' floods meet, near the true line
    assert objects.max() == 3 and average_precision(objects, labels) == 1.0 and aggregated_jaccard(objects, labels) > 0.98
    # without cores the objects are the foreground's connected regions: the touching discs merge
    merged = instances_from_probs((labels > 0).astype(np.float32), np.zeros(labels.shape, np.float32))
    assert merged.max() == 2


def test_metrics_on_known_cases():
    truth = np.zeros((10, 10), int)
    truth[1:4, 1:4], truth[5:9, 5:9] = 1, 2
    half = np.where(truth == 2, 0, truth)
    assert average_precision(truth, truth) == 1.0 and aggregated_jaccard(truth, truth) == 1.0
    assert average_precision(half, truth) == 0.5  # 1 TP, 1 FN
    assert aggregated_jaccard(half, truth) == pytest.approx(9 / 25)  # the missed object adds its area
    merged = (truth > 0) * 5
    assert average_precision(merged, truth) == 0.5 and aggregated_jaccard(merged, truth) == pytest.approx(0.5)
    assert average_precision(np.zeros_like(truth), np.zeros_like(truth)) == 1.0


def test_guess_and_ids():
    labels = _touching_discs()
    assert guess_task([labels]) == "instances"
    assert guess_task([(labels > 0).astype(int)]) == "classes"
    two_classes = np.zeros((20, 20), int)
    two_classes[:, :5], two_classes[:, 10:], two_classes[2, 7] = 1, 2, 3  # 3 values but class 2 is not one blob...
    two_classes[:, 15:17] = 0  # ...it is two
    assert guess_task([two_classes]) == "classes"
    out, nxt = offset_ids(np.array([[0, 1], [2, 0]]), 10)
    assert out.tolist() == [[0, 10], [11, 0]] and nxt == 12


def _instance_stack():
    image, labels = synthetic_stack(n_slices=6, size=96, seed=3, instances=True)
    return image, labels


def test_segmenter_separates_touching_objects_better_than_connected_components():
    image, labels = _instance_stack()
    support = SupportSet()
    for z in (0, 3):
        support.add(image[z], labels[z])
    seg = Segmenter.from_weights("default", "cpu")
    options = PredictOptions(task="instances", method="pixels", mode="resize")
    preds = seg.predict(support, image[[1, 2, 4, 5]], options)
    semantic = seg.predict(SupportSet([*support]), image[[1, 2, 4, 5]], PredictOptions(method="pixels", mode="resize"))
    ap_inst = np.mean([average_precision(p.labels, labels[z]) for p, z in zip(preds, (1, 2, 4, 5))])
    ap_cc = np.mean([average_precision(ndi.label(p.labels > 0)[0], labels[z]) for p, z in zip(semantic, (1, 2, 4, 5))])
    assert all(p.labels.dtype == np.int32 and p.labels.max() == len(np.unique(p.labels)) - 1 for p in preds)  # 1..K
    assert ap_inst > ap_cc


def test_support_file_records_the_task(tmp_path):
    image, labels = _instance_stack()
    support = SupportSet(task="instances")
    support.add(image[0], labels[0])
    path = support.save(tmp_path / "s.npz")
    assert SupportSet.load(path).task == "instances"
    meta = json.loads(str(np.load(path)["metadata"]))
    assert meta["task"] == "instances"


@pytest.mark.slow
def test_cli_segment_instances_gives_ids_unique_in_the_stack_and_evaluate_scores_them(tmp_path, capsys):
    image, labels = _instance_stack()
    tifffile.imwrite(tmp_path / "stack.tif", image)
    for z in (0, 3):
        tifffile.imwrite(tmp_path / f"ex{z}.tif", image[z])
        tifffile.imwrite(tmp_path / f"m{z}.tif", labels[z])
    args = ["segment", str(tmp_path / "stack.tif"), "--out", str(tmp_path / "out.tif"), "--mode", "resize", "--predictor", "pixels"]
    args += [
        "--support-images",
        str(tmp_path / "ex0.tif"),
        str(tmp_path / "ex3.tif"),
        "--support-masks",
        str(tmp_path / "m0.tif"),
        str(tmp_path / "m3.tif"),
    ]
    assert main(args) == 0
    assert "task: instances (guessed" in capsys.readouterr().err
    out = tifffile.imread(tmp_path / "out.tif")
    per_slice = [set(np.unique(s)) - {0} for s in out]
    assert all(per_slice) and sum(len(s) for s in per_slice) == len(set().union(*per_slice))  # no id in two slices
    # evaluate --task instances on a data set folder with instances/
    root = tmp_path / "set"
    for sub in ("images", "masks", "instances"):
        (root / sub).mkdir(parents=True)
    for z in range(6):
        tifffile.imwrite(root / "masks" / f"{z:03d}.tif", (labels[z] > 0).astype(np.uint8))
        tifffile.imwrite(root / "instances" / f"{z:03d}.tif", labels[z])
        import imageio.v3 as iio

        iio.imwrite(root / "images" / f"{z:03d}.png", (image[z] / image.max() * 255).clip(0, 255).astype(np.uint8))
    js = tmp_path / "r.json"
    assert (
        main(["evaluate", str(root), "--task", "instances", "--method", "watershed", "--support-sizes", "2", "--seeds", "0", "--json", str(js)]) == 0
    )
    result = json.loads(js.read_text())
    assert result["metric"] == "AP@0.5" and 0 <= result["summary"]["2"]["mean"] <= 1 and 0 <= result["summary"]["2"]["aji"] <= 1
    assert set(result["runs"][0]["ap50_per_query"]) == {"003", "004", "005"}
