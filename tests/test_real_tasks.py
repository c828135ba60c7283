"""The real-task corpus: a source in a real git repository -> the cache -> episodes for training."""

import gzip
import subprocess

import h5py
import imageio.v3 as iio
import numpy as np
import pytest
import torch

from napari_universeg.training.data.prepare import mask_values, prepare_source, read_sources, task_names, tasks_of
from napari_universeg.training.real import RealTaskSampler, load_sources
from napari_universeg.training.train import TrainConfig, Trainer, step_tasks

HEADER = "name,split,repo,commit,images,mask_regex,mask_replace,include,mask_rule,mask_kind,classes,image_channel,modality,n_pairs,licence,licence_evidence,attribution,notes\n"


def _publish(work, mirrors, name):
    """Commit the folder ``work`` and leave a bare clone as the fetch tool does: mirrors/name/repo."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "data"], check=True)
    (mirrors / name).mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(mirrors / name / "repo")], check=True)


def _instance_repo(root, n=6, size=300):
    """A git repository (bare, as fetched) with n images of bright discs and their instance labels."""
    work = root / "work"
    (work / "data" / "img").mkdir(parents=True)
    (work / "data" / "lab").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        labels = np.zeros((size, size), np.uint16)
        for k in range(1, 9):
            cy, cx = rng.integers(30, size - 30, 2)
            labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 18**2] = k
        image = (60 + 120 * (labels > 0) + rng.normal(0, 10, labels.shape)).clip(0, 255).astype(np.uint8)
        iio.imwrite(work / "data" / "img" / f"cell{i}.png", np.stack([image] * 3, -1))  # RGB on disk
        iio.imwrite(work / "data" / "lab" / f"cell{i}_label.tif", labels)
    _publish(work, root / "mirrors", "lab+cells")
    return root / "mirrors"


@pytest.fixture
def cache(tmp_path):
    mirrors = _instance_repo(tmp_path)
    csv = tmp_path / "sources.csv"
    row = "discs,train,lab/cells,,data/img/*.png,img/(.*)\\.png$,lab/\\1_label.tif,,,instances,,,fluorescence nuclei,6,CC0-1.0,LICENSE,test,\n"
    csv.write_text(HEADER + row)
    (source,) = read_sources(csv)
    meta = prepare_source(source, mirrors, tmp_path / "cache")
    return tmp_path / "cache", meta


def test_prepare_builds_a_cache_of_images_and_task_bits(cache):
    folder, meta = cache
    assert meta["tasks"] == ["foreground", "contours"]
    assert meta["scales"] == {"whole": 6, "zoom": 0}  # 300 px < 2 x 256: no zoomed crop
    (src,) = load_sources(folder)
    assert src.images.shape == (6, 256, 256) and src.images.dtype == np.uint8
    fg, edge = src.bits & 1, (src.bits >> 1) & 1
    assert set(np.unique(src.bits)) <= {0, 1, 3}  # contours lie on the foreground
    assert 0.05 < fg.mean() < 0.4 and 0 < edge.mean() < fg.mean() / 2
    # the foreground is bright in the image: the labels were paired with their own images
    assert src.images[fg == 1].mean() > src.images[fg == 0].mean() + 60


def test_a_colour_coded_class_mask_maps_each_exact_colour_to_its_class():
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[0, :2] = (255, 0, 0)  # red: class "16711680"
    rgb[1, :3] = (0, 0, 255)  # blue: class "255"
    rgb[2, :1] = (128, 128, 128)  # a colour the row does not list: background
    labels = mask_values(rgb, "rgb24")
    assert labels[0, 0] == 16711680 and labels[1, 0] == 255 and labels[3, 0] == 0
    row = {"mask_kind": "classes", "classes": {"16711680": "left ventricle", "255": "right ventricle"}}
    assert task_names(row) == ["class 16711680: left ventricle", "class 255: right ventricle", "union of left ventricle, right ventricle"]
    bits = tasks_of(labels, row)
    assert (bits & 1).sum() == 2 and ((bits >> 1) & 1).sum() == 3 and ((bits >> 2) & 1).sum() == 5


def test_episodes_have_the_training_shapes_and_binary_masks(cache):
    folder, _ = cache
    sampler = RealTaskSampler(load_sources(folder), size=64, seed=3)
    q, qm, si, sm = sampler.sample(batch=3, support_size=4)
    assert q.shape == qm.shape == (3, 1, 64, 64) and si.shape == sm.shape == (3, 4, 1, 64, 64)
    assert q.dtype == torch.float32 and set(torch.unique(torch.cat([qm.flatten(), sm.flatten()])).tolist()) <= {0.0, 1.0}
    assert 0 <= q.min() and q.max() <= 1
    again = RealTaskSampler(load_sources(folder), size=64, seed=3).sample(batch=3, support_size=4)
    assert all(torch.equal(a, b) for a, b in zip((q, qm, si, sm), again))


def test_training_draws_only_from_sources_of_split_train(cache, tmp_path):
    import json

    from napari_universeg.training.data.prepare import main

    folder, meta = cache
    assert meta["split"] == "train" and [s.name for s in load_sources(folder)] == ["discs"]
    pending = tmp_path / "pending.csv"  # the same source, its licence now in doubt
    pending.write_text(HEADER + "discs,pending,lab/cells,,data/img/*.png,img/(.*)\\.png$,lab/\\1_label.tif,,,instances,,,x,6,CC0-1.0,?,test,\n")
    (folder / "discs" / "meta.json").write_text(json.dumps({**meta, "split": "pending"}))
    assert load_sources(folder) == []  # a copy cached while it was in use is not trained on
    assert [s.name for s in load_sources(folder, ["discs"])] == ["discs"]  # named: validation may read it
    main(["--sources", str(pending), "--out", str(folder), "--mirrors", str(tmp_path / "mirrors")])
    assert not (folder / "discs").exists()  # and preparing again removes it


def test_a_step_mixes_real_and_synthetic_tasks_and_validates_heldout_sources_apart(cache, tmp_path):
    folder, _ = cache
    cfg = TrainConfig(model={"encoder_widths": [8] * 4, "decoder_widths": [8] * 3}, size=64, real_ratio=0.5, real_cache=str(folder), val_batch=2)
    q, qm, si, sm = step_tasks(cfg, step=7, batch=6, support_size=2)
    assert q.shape == (6, 1, 64, 64) and si.shape == (6, 2, 1, 64, 64)
    cfg.real_heldout = ["discs"]  # the only source, held out: validation uses it, training may not
    row = Trainer(cfg, tmp_path / "run", torch.device("cpu")).validate()
    assert {"dice_S1", "dice_S4", "dice_S16", "real_dice_S1", "real_dice_S4", "real_dice_S16"} <= set(row)
    with pytest.raises(FileNotFoundError):
        step_tasks(cfg, step=7, batch=6, support_size=2)


def test_the_model_card_names_every_real_source_and_its_licence_and_counts_all_gpu_minutes(tmp_path):
    from napari_universeg.training.data.prepare import read_sources
    from napari_universeg.training.export import export

    cfg = TrainConfig(
        model={"encoder_widths": [8] * 4, "decoder_widths": [8] * 3}, size=64, real_ratio=0.5, real_heldout=["cytounet_a549_phase_nuclei"]
    )
    trainer = Trainer(cfg, tmp_path / "run", torch.device("cpu"))
    trainer.before, trainer.elapsed, trainer.step = {"minutes": 23.2, "steps": 10418}, 180.0, 500
    trainer.elapsed_by_device = {"cuda": 120.0, "cpu": 60.0}  # CPU minutes are not GPU minutes
    trainer.out.mkdir()
    trainer.save()
    resumed = Trainer(cfg, tmp_path / "run", torch.device("cpu"))
    resumed.load()
    assert resumed.before == {"minutes": 23.2, "steps": 10418} and resumed.elapsed_by_device == {"cuda": 120.0, "cpu": 60.0}
    card = export(tmp_path / "run", tmp_path / "w.safetensors", "test CPU", None)
    trained = [r for r in read_sources() if r["split"] == "train"]
    assert [s["name"] for s in card["sources"]] == [r["name"] for r in trained] and len(trained) >= 5
    assert card["gpu_minutes"] == 25.2 and card["steps"] == 10918
    text = (tmp_path / "w.md").read_text()
    assert "3.0 min in this run (cpu 1.0, cuda 2.0); 25.2 GPU minutes in all" in text
    for r in trained:
        assert f"| {r['name']} |" in text and r["licence"] in text
    assert "cytounet_a549_phase_nuclei" not in text


def test_slices_in_files_pair_in_order_with_one_hdf5_label_volume(tmp_path):
    """FlyEM's layout: one PNG per slice, the labels one gzipped HDF5 volume of supervoxels
    ('stack') and their objects ('transforms'): slice k of the volume labels the k-th image."""
    work, n, size = tmp_path / "work", 5, 64
    (work / "gray").mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size]
    stack = np.zeros((n, size, size), np.uint32)
    for z in range(n):
        disc = (yy - 16 - 8 * z) ** 2 + (xx - 32) ** 2 < 12**2  # each slice's object elsewhere
        stack[z][disc & (xx < 32)], stack[z][disc & (xx >= 32)] = 2 * z + 1, 2 * z + 2  # two supervoxels
        iio.imwrite(work / "gray" / f"iso.{100 + z}.png", np.where(disc, 200, 40).astype(np.uint8))
    transforms = np.array([[2 * z + h, z + 1] for z in range(n) for h in (1, 2)], np.uint32)  # -> one object
    with h5py.File(tmp_path / "gt.h5", "w") as f:
        f["stack"], f["transforms"] = stack, transforms
    (work / "gt.h5.gz").write_bytes(gzip.compress((tmp_path / "gt.h5").read_bytes()))
    _publish(work, tmp_path / "mirrors", "lab+em")
    csv = tmp_path / "sources.csv"
    csv.write_text(HEADER + "em,train,lab/em,,gray/iso.*.png,^gray/iso\\.\\d+\\.png$,gt.h5.gz,,,instances,,,FIB-SEM,5,CC-BY-3.0,LICENSE,test,\n")
    (source,) = read_sources(csv)
    meta = prepare_source(source, tmp_path / "mirrors", tmp_path / "cache")
    assert meta["scales"] == {"whole": n, "zoom": 0}
    (src,) = load_sources(tmp_path / "cache")
    fg, edge = src.bits & 1, (src.bits >> 1) & 1
    bright = src.images > 120
    for k in range(n):  # the k-th image's disc is the k-th slice's object
        assert (fg[k] == bright[k]).mean() > 0.98
    # the supervoxels were merged: across each disc's centre row, contours at its rim only
    for k in range(n):
        row = edge[k, 4 * (16 + 8 * k) + 2]
        assert row[60:100].any() and row[160:200].any() and not row[100:160].any()
    (tmp_path / "cache").rename(tmp_path / "old")
    csv.write_text(
        HEADER + "em,train,lab/em,,gray/iso.10[0-3].png,^gray/iso\\.\\d+\\.png$,gt.h5.gz,,,instances,,,FIB-SEM,4,CC-BY-3.0,LICENSE,test,\n"
    )
    (source,) = read_sources(csv)
    with pytest.raises(ValueError, match="5 slices for 4 images"):
        prepare_source(source, tmp_path / "mirrors", tmp_path / "cache")


def test_image_and_labels_as_two_datasets_of_one_hdf5_file(tmp_path):
    """PlantSeg's layout: one HDF5 file holds the image volume ('raw') and its instance labels
    ('label'); the manifest names each as FILE::DATASET."""
    work, n, size = tmp_path / "work", 4, 64
    work.mkdir()
    yy, xx = np.mgrid[:size, :size]
    labels = np.stack([np.where(xx < 20 + 5 * z, 1, 2) for z in range(n)]).astype(np.uint16)  # two cells, the wall moves
    raw = np.where(np.abs(xx - (20 + 5 * np.arange(n)[:, None, None])) < 2, 230, 50).astype(np.uint8)  # bright walls
    with h5py.File(work / "sample.h5", "w") as f:
        f["raw"], f["label"] = raw, labels
    _publish(work, tmp_path / "mirrors", "lab+plant")
    csv = tmp_path / "sources.csv"
    csv.write_text(HEADER + "plant,train,lab/plant,,sample.h5::raw,::raw$,::label,,,instances,,,confocal,4,MIT,LICENSE,test,\n")
    (source,) = read_sources(csv)
    meta = prepare_source(source, tmp_path / "mirrors", tmp_path / "cache")
    assert meta["scales"] == {"whole": n, "zoom": 0}
    (src,) = load_sources(tmp_path / "cache")
    edge = (src.bits >> 1) & 1
    for z in range(n):  # slice z's wall, between the two cells, at x = 20 + 5 z (x 4 at 256 px)
        wall = np.flatnonzero(edge[z, 128])
        assert wall.size and abs(wall.mean() - 4 * (20 + 5 * z)) <= 4
        assert (src.images[z, 128, wall] > 120).all()  # on the image's wall
    csv.write_text(HEADER + "plant,train,lab/plant,,sample.h5::raw,::raw$,::labels,,,instances,,,confocal,4,MIT,LICENSE,test,\n")
    (source,) = read_sources(csv)
    with pytest.raises(ValueError, match="no 2D or 3D dataset 'labels'"):
        prepare_source(source, tmp_path / "mirrors", tmp_path / "cache2")
