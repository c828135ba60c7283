"""Evaluation protocol and classical baselines, on a tiny synthetic data set of bright disks."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_universeg.evaluate import (
    dice,
    evaldata_dir,
    format_table,
    get_method,
    load_dataset,
    protocol_split,
    run_protocol,
)

EVALDATA = evaldata_dir()


def _disks(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), bool)
    for _ in range(3):
        cy, cx = rng.integers(12, size - 12, 2)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.integers(5, 10) ** 2
    image = np.where(mask, 170, 60) + rng.normal(0, 12, mask.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask.astype(np.uint8)


def _write_dataset(root: Path, n: int = 8) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(42)
    for i in range(n):
        image, mask = _disks(rng)
        iio.imwrite(root / "images" / f"{i:03d}.png", image)
        tifffile.imwrite(root / "masks" / f"{i:03d}.tif", mask)
    return root


@pytest.fixture
def disks(tmp_path: Path):
    return load_dataset(_write_dataset(tmp_path / "disks"))


def test_load_dataset(disks):
    assert disks.name == "disks"
    assert disks.ids == tuple(f"{i:03d}" for i in range(8))
    assert disks.image("000").dtype == np.uint8 and disks.image("000").shape == (64, 64)
    assert set(np.unique(disks.mask("000"))) <= {0, 1} and disks.mask("000").dtype == np.uint8


def test_rgb_png_is_read_as_grey(tmp_path):
    root = _write_dataset(tmp_path / "rgb", n=2)
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 1] = 200
    iio.imwrite(root / "images" / "000.png", rgb)
    image = load_dataset(root).image("000")
    assert image.shape == (64, 64)
    assert abs(image[0, 0] - 0.587 * 200) < 1e-3  # ITU-R 601 luminance, as everywhere in the package


def test_split_rules():
    ids = [f"{i:03d}" for i in range(50)][::-1]  # unsorted on purpose
    support, queries, n_used = protocol_split(ids, 4, seed=1)
    pool = [f"{i:03d}" for i in range(25)]
    assert queries == [f"{i:03d}" for i in range(25, 45)]  # at most 20 queries, the first ones
    assert n_used == 4
    assert support == list(np.random.default_rng(1).choice(pool, 4, replace=False))
    assert all(isinstance(i, str) for i in support)

    support, queries, n_used = protocol_split([f"{i:03d}" for i in range(7)], 16, seed=0)
    assert n_used == 3 and sorted(support) == ["000", "001", "002"]  # N capped at the pool
    assert queries == ["003", "004", "005", "006"]
    with pytest.raises(ValueError):
        protocol_split(["000"], 1, seed=0)


def test_dice_edge_cases():
    empty = np.zeros((4, 4), np.uint8)
    full = np.ones((4, 4), np.uint8)
    half = np.zeros((4, 4), bool)
    half[:2] = True
    assert dice(empty, empty) == 1.0
    assert dice(empty, full) == 0.0
    assert dice(full, full) == 1.0
    assert dice(half, full) == pytest.approx(2 * 8 / (8 + 16))


def test_run_protocol_structure(disks):
    masks = {disks.image(i).tobytes(): disks.mask(i) for i in disks.ids}

    def oracle(support_images, support_masks, query_images):
        return [masks[q.tobytes()] for q in query_images]

    messages = []
    result = run_protocol(disks, oracle, "oracle", (1, 16), (0, 1), progress=messages.append)
    json.dumps(result)  # JSON-serialisable as is
    assert set(result) == {"dataset", "method", "task", "metric", "summary", "runs", "seconds"} and result["metric"] == "Dice"
    assert result["dataset"] == "disks" and result["method"] == "oracle"
    assert result["summary"] == {
        "1": {"mean": 1.0, "std": 0.0, "worst": 1.0, "n_used": 1},
        "16": {"mean": 1.0, "std": 0.0, "worst": 1.0, "n_used": 4},
    }
    assert len(result["runs"]) == 4 and len(messages) == 4
    run = result["runs"][0]
    assert set(run) == {"support_size", "n_used", "seed", "support_ids", "dice_per_query", "mean_dice", "estimate", "plan", "seconds"}
    assert run["estimate"] is None and run["plan"] is None  # the oracle has no plan
    assert list(run["dice_per_query"]) == ["004", "005", "006", "007"]
    pool = ["000", "001", "002", "003"]
    assert run["support_ids"] == list(np.random.default_rng(0).choice(pool, 1, replace=False))

    empty = run_protocol(disks, lambda s, m, q: [np.zeros_like(x) for x in q], "empty", (1,), (0,))
    assert empty["summary"]["1"]["mean"] == 0.0
    table = format_table([result, empty])
    assert "N=1" in table and "N=16" in table and "1.000 ± 0.000, worst 1.000 (N=4)" in table and "empty" in table


def test_wrong_mask_shape_names_method_and_query(disks):
    with pytest.raises(ValueError, match=r"'bad'.*query 004"):
        run_protocol(disks, lambda s, m, q: [np.zeros((3, 3))] * len(q), "bad", (1,), (0,))


def test_bad_layouts(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "no_masks" / "images").mkdir(parents=True)
    with pytest.raises(ValueError, match="masks/"):
        load_dataset(tmp_path / "no_masks")

    root = _write_dataset(tmp_path / "orphan", n=3)
    (root / "masks" / "001.tif").unlink()
    with pytest.raises(ValueError, match="without a mask.*001"):
        load_dataset(root)

    root = _write_dataset(tmp_path / "corrupt", n=3)
    (root / "images" / "002.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read.*002\.png"):
        load_dataset(root).image("002")


@pytest.mark.parametrize("name, options", [("otsu", {}), ("random-forest", {"n_estimators": 20})])
def test_baselines_segment_disks(disks, name, options):
    result = run_protocol(disks, get_method(name, **options), name, support_sizes=(1, 4), seeds=(0,))
    assert all(entry["mean"] > 0.8 for entry in result["summary"].values())


def test_otsu_polarity_follows_support(disks):
    otsu = get_method("otsu")
    images = [255 - disks.image(i) for i in disks.ids]  # dark disks
    masks = [disks.mask(i) for i in disks.ids]
    preds = otsu(images[:2], masks[:2], images[2:])
    assert np.mean([dice(p, m) for p, m in zip(preds, masks[2:])]) > 0.8
    assert not otsu(images[:1], masks[:1], [np.full((8, 8), 7, np.uint8)])[0].any()  # constant image


def test_random_forest_single_class_support(disks):
    rf = get_method("random-forest", n_estimators=5)
    image = disks.image("000")
    assert not rf([image], [np.zeros_like(image)], [image])[0].any()
    assert rf([image], [np.ones_like(image)], [image])[0].all()


def test_unknown_method():
    with pytest.raises(ValueError, match="random-forest"):
        get_method("nope")


def test_otsu_on_real_em_membranes():
    folder = EVALDATA / "isbi2012_em_membranes"
    if not folder.is_dir():
        pytest.skip(f"{folder} is not available")
    result = run_protocol(load_dataset(folder), get_method("otsu"), "otsu", support_sizes=(1,), seeds=(0,))
    assert result["summary"]["1"]["n_used"] == 1
    assert len(result["runs"][0]["dice_per_query"]) == 15
    assert 0.0 < result["summary"]["1"]["mean"] <= 1.0


def test_plugin_runs_carry_auto_estimate_and_plan(disks):
    import torch

    from napari_universeg.model import UniverSeg

    torch.manual_seed(0)
    method = get_method("universeg", model=UniverSeg((8, 8, 8, 8), (8, 8, 8)), device="cpu", precision="fp32")
    result = run_protocol(disks, method, "universeg", support_sizes=(1, 4), seeds=(0,))
    for run in result["runs"]:
        assert 0.0 <= run["estimate"] <= 1.0 and isinstance(run["plan"], str)
    for n in ("1", "4"):
        assert result["summary"][n]["estimate"] == result["runs"][int(n == "4")]["estimate"]
    # a random model cannot segment; the blend or the pixel classifier still finds bright disks
    assert result["summary"]["4"]["mean"] > 0.8


@pytest.mark.parametrize("name", ["otsu", "random-forest", "universeg"])
def test_a_blank_query_does_not_stop_the_protocol(tmp_path, name):
    root = _write_dataset(tmp_path / "blank")
    iio.imwrite(root / "images" / "006.png", np.full((64, 64), 7, np.uint8))  # a query
    options = {"mode": "resize", "method": "universeg"} if name == "universeg" else {}
    result = run_protocol(load_dataset(root), get_method(name, **options), name, support_sizes=(1,), seeds=(0,))
    scores = result["runs"][0]["dice_per_query"]
    assert sorted(scores) == ["004", "005", "006", "007"]  # every query scored
    if name == "universeg":  # left empty (with a note), against a mask with disks
        assert scores["006"] == 0.0 and min(scores[q] for q in ("004", "005", "007")) > 0.5
