"""The annotation session without Qt and without a viewer: which slices a run segments and in what
order, what it writes, its undo step, the support set it loads, and the slice it suggests."""

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from napari.layers import Labels

from napari_universeg import session as S
from napari_universeg.choice import Plan
from napari_universeg.options import PredictOptions
from napari_universeg.sample_data import synthetic_stack
from napari_universeg.session import AnnotationSession, SliceResult
from napari_universeg.suggest import expected_errors
from napari_universeg.support import FORMAT, VERSION, SupportSet


@pytest.fixture
def stack():
    """A (5, 16, 16) image with slices 1 and 3 painted."""
    rng = np.random.default_rng(0)
    image = rng.random((5, 16, 16)).astype(np.float32)
    labels = np.zeros((5, 16, 16), np.uint8)
    labels[1, 4:8, 4:8] = 1
    labels[3, 2:6, 8:12] = 2
    return image, labels


def result(index, value=1, p=1.0, note=""):
    """A 16 x 16 result: the top-left 4 x 4 square is ``value`` with probability ``p``."""
    labels = np.zeros((16, 16), np.uint8)
    labels[:4, :4] = value
    probability = np.where(labels > 0, p, 0.0).astype(np.float32)
    return SliceResult(index, labels, probability, note)


def test_the_session_module_imports_neither_qt_nor_napari_nor_torch():
    code = (
        "import sys, napari_universeg.session;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'torch')];"
        "assert not bad, bad"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_which_slices_each_run_segments_nearest_first(stack):
    image, labels = stack
    s = AnnotationSession()
    here = (2,)
    assert s.slices_to_run("current", image.shape, here, labels) == [(2,)]
    assert s.slices_to_run("all", image.shape, here, labels) == [(2,), (1,), (3,), (0,), (4,)]
    assert s.slices_to_run("all", image.shape, (4,), labels) == [(4,), (3,), (2,), (1,), (0,)]
    assert s.slices_to_run("unpainted", image.shape, here, labels) == [(2,), (0,), (4,)]
    assert s.slices_to_run("rest", image.shape, here, labels) == [(2,), (1,), (3,), (0,), (4,)]  # no examples, no runs yet
    with pytest.raises(ValueError, match="which must be one of"):
        s.slices_to_run("everything", image.shape, here, labels)


def test_nearest_first_in_4d_rgb_and_2d():
    s = AnnotationSession()
    shape = (2, 3, 8, 8)
    labels = np.zeros(shape, np.uint8)
    # city-block distance to (1, 1), then the index
    assert s.slices_to_run("all", shape, (1, 1), labels) == [(1, 1), (0, 1), (1, 0), (1, 2), (0, 0), (0, 2)]
    assert s.slices_to_run("all", (3, 8, 8, 3), (1,), np.zeros((3, 8, 8), np.uint8), rgb=True) == [(1,), (0,), (2,)]
    assert s.slices_to_run("all", (8, 8), (), np.zeros((8, 8), np.uint8)) == [()]
    assert s.slices_to_run("current", (8, 8), (), np.ones((8, 8), np.uint8), fill_painted=True) == []


def test_fill_painted_drops_the_painted_slices_whatever_was_asked(stack):
    image, labels = stack
    s = AnnotationSession()
    assert s.slices_to_run("all", image.shape, (2,), labels, fill_painted=True) == [(2,), (0,), (4,)]
    assert s.slices_to_run("current", image.shape, (3,), labels, fill_painted=True) == []
    assert s.slices_to_run("current", image.shape, (4,), labels, fill_painted=True) == [(4,)]


def test_rest_skips_this_images_examples_and_the_slices_the_user_edited(stack):
    image, labels = stack
    s = AnnotationSession()
    s.add(image, labels, (1,), image_name="img", labels_name="painted")
    s.add(image, labels, (3,), image_name="img", labels_name="painted")
    s.add(image, labels, (0,), image_name="other", labels_name="painted")  # another image's example: no reason to skip 0
    out = Labels(np.zeros(image.shape, np.uint8), name="img universeg")
    for z in range(5):
        s.write(out, result((z,)))
    out.data[4, 10, 10] = 3  # the user's correction
    out.data[2, 0, 0] = 1  # the same value as written: no edit
    assert s.edited(out, (4,)) and not s.edited(out, (2,)) and not s.edited(Labels(out.data.copy(), name="x"), (4,))
    assert s.slices_to_run("rest", image.shape, (3,), labels, output=out, image_name="img") == [(2,), (0,)]
    assert s.slices_to_run("rest", image.shape, (3,), labels, output=None, image_name="img") == [(2,), (4,), (0,)]


def test_write_records_what_it_wrote_and_keeps_slices_painted_meanwhile(stack):
    image, labels = stack
    s = AnnotationSession()
    layer = Labels(labels.copy(), name="painted")
    r = result((2,), value=2, p=0.75, note="slice 2 is constant")
    assert s.write(layer, r, fill_painted=True)
    assert layer.data.dtype == np.uint8 and layer.data[2, :4, :4].tolist() == [[2] * 4] * 4 and layer.data[2].sum() == 32
    assert s.unsure == {(2,): expected_errors(r.labels, r.probability)} and s.unsure[(2,)] == pytest.approx(16 * 0.25 / 256)
    assert s.written == {("painted", (2,)): S.digest(layer.data[2])}
    assert s.notes == ["slice 2 is constant"]
    # a slice painted meanwhile is kept, and nothing is recorded for it
    assert not s.write(layer, result((1,), value=5), fill_painted=True)
    np.testing.assert_array_equal(layer.data[1], labels[1])
    assert set(s.unsure) == {(2,)} and set(s.written) == {("painted", (2,))}
    # without fill_painted the slice is written over
    assert s.write(layer, result((1,), value=5))
    assert layer.data[1, 0, 0] == 5


def test_the_writes_of_one_undo_group_are_undone_in_one_step(stack):
    image, labels = stack
    s = AnnotationSession()
    layer = Labels(np.zeros(image.shape, np.uint8), name="out")
    S.write_slice(layer, (0,), np.full((16, 16), 7, np.uint8))  # the user's edit: an undo step of its own
    before = layer.data.copy()
    with s.undo_group(layer):
        for z in (1, 2, 4):
            s.write(layer, result((z,)))
    assert [bool(layer.data[z].any()) for z in range(5)] == [True, True, True, False, True]
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)
    layer.undo()
    assert not layer.data.any()


def test_add_refuses_a_bad_example_and_keeps_the_set(stack):
    image, labels = stack
    s = AnnotationSession()
    ex = s.add(image, labels, (3,), image_name="img", labels_name="painted")
    assert ex.source == "painted / img, slice 3" and ex.meta == {"image": "img", "index": [3]} and ex.classes == [2]
    with pytest.raises(ValueError, match=r"^cannot add painted / tiny, slice 0: .*at least 8x8"):
        s.add(np.zeros((2, 4, 4), np.float32), np.zeros((2, 4, 4), np.uint8), (0,), image_name="tiny", labels_name="painted")
    assert len(s.support) == 1


def _write_support_file(path, examples):
    arrays = {}
    for i, (image, mask) in enumerate(examples):
        arrays[f"image_{i}"], arrays[f"mask_{i}"] = image, mask
    items = [{"source": f"ex{i}", "enabled": True, "meta": {"image": "img", "index": [i]}} for i in range(len(examples))]
    arrays["metadata"] = np.array(json.dumps({"format": FORMAT, "version": VERSION, "examples": items}))
    np.savez(path, **arrays)


def test_load_checks_every_example_as_add_does_and_adds_all_or_none(stack, tmp_path):
    image, labels = stack
    s = AnnotationSession()
    s.add(image, labels, (1,), image_name="img", labels_name="painted")
    good = (image[3], labels[3])
    tiny = (np.random.default_rng(1).random((4, 4)).astype(np.float32), np.zeros((4, 4), np.uint8))
    _write_support_file(tmp_path / "bad.npz", [good, tiny])
    with pytest.raises(ValueError) as loaded:
        s.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError) as added:
        SupportSet().add(*tiny, source="ex1")
    assert str(loaded.value) == str(added.value) and "at least 8x8" in str(added.value)
    assert [ex.source for ex in s.support] == ["painted / img, slice 1"]  # the good example was not added either
    wrong_mask = (image[3], np.zeros((8, 8), np.uint8))
    _write_support_file(tmp_path / "mask.npz", [wrong_mask])
    with pytest.raises(ValueError) as loaded:
        s.load(tmp_path / "mask.npz")
    with pytest.raises(ValueError) as added:
        SupportSet().add(*wrong_mask, source="ex0")
    assert str(loaded.value) == str(added.value)
    _write_support_file(tmp_path / "good.npz", [good, good])
    new = s.load(tmp_path / "good.npz")
    assert [ex.source for ex in new] == ["ex0", "ex1"] and [ex.source for ex in s.support] == ["painted / img, slice 1", "ex0", "ex1"]
    assert s.example_indices("img") == {(1,), (0,)}
    with pytest.raises(ValueError, match="not found"):
        s.load(tmp_path / "missing.npz")


def test_suggest_is_the_least_certain_slice_that_is_not_an_example(stack):
    image, labels = stack
    s = AnnotationSession()
    assert s.suggest() is None
    out = Labels(np.zeros(image.shape, np.uint8), name="out")
    for z, p in ((0, 0.9), (2, 0.6), (3, 0.2), (4, 1.0)):
        s.write(out, result((z,), p=p))
    assert s.suggest() == (3,)
    s.add(image, labels, (3,), image_name="img", labels_name="painted")
    assert s.suggest() == (2,)


def test_check_ready_and_summary(stack):
    image, labels = stack
    s = AnnotationSession()
    with pytest.raises(ValueError, match="no examples in the support set"):
        s.check_ready()
    s.add(image, labels, (0,), image_name="img", labels_name="painted")  # background only
    with pytest.raises(ValueError, match="background only"):
        s.check_ready()
    s.add(image, labels, (1,), image_name="img", labels_name="painted")
    s.check_ready()
    assert s.summary(cancelled=True) == "cancelled"
    assert s.summary(cancelled=False) == "done. Correct a slice and 'Accept slice as example' to improve the rest"
    out = Labels(np.zeros((2, 16, 16), np.uint8), name="out")
    s.write(out, replace(result((1,)), plan=Plan("tiled", 0.5, "blend"), model="model adapted to your 2 examples"))
    assert s.summary(cancelled=False) == (
        "done (UniverSeg (tiles at scale 0.5) + pixel classifier; model adapted to your 2 examples)."
        " Correct a slice and 'Accept slice as example' to improve the rest"
    )


@pytest.mark.slow
def test_predictions_address_slices_by_their_index_in_the_image_and_name_blank_ones():
    image, truth = synthetic_stack(n_slices=4, size=48, seed=2)
    image = image.reshape(2, 2, 48, 48).copy()
    truth = truth.reshape(2, 2, 48, 48)
    image[1, 0] = 0.0  # a blank slice
    s = AnnotationSession()
    s.add(image, truth, (0, 0), image_name="img", labels_name="truth")
    todo = [(1, 1), (1, 0), (0, 1)]
    results = s.predictions(image, todo, PredictOptions(method="pixels"), device="cpu")
    out = Labels(np.zeros(truth.shape, np.uint8), name="out")
    got = []
    for r in results:
        assert r.labels.shape == r.probability.shape == (48, 48) and r.probability.dtype == np.float32
        s.write(out, r)
        got.append(r.index)
    assert got == todo
    assert s.notes == ["slice (1, 0) is constant (every pixel is 0): nothing to segment; it was left empty"]
    assert not out.data[1, 0].any() and out.data[1, 1].any() and out.data[0, 1].any()
    assert s.last_plan is not None and s.last_plan.describe() == "pixel classifier"
    assert s.segmenter("cpu") is s.segmenter("cpu")


def test_suggest_in_a_stack_counts_the_neighbours_of_an_example_less():
    image, labels = synthetic_stack(n_slices=12, size=64)
    s = AnnotationSession()
    out = Labels(np.zeros(image.shape, np.uint8), name="out")
    for z in range(12):  # slice 6 least certain, then 4 (next to the example 5), then 9
        p = {6: 0.5, 4: 0.55, 9: 0.6}.get(z, 0.95)
        s.write(out, result((z,), p=p))
    s.add(image, labels, (5,), image_name="img", labels_name="painted")
    s.add(image, labels, (6,), image_name="img", labels_name="painted")
    assert s.suggest() == (4,)  # no image given: expected errors alone
    assert s.suggest(image) == (9,)  # 4 is next to 5: counted less
    series = np.random.default_rng(0).random(image.shape).astype(np.float32)  # unrelated slices
    assert s.suggest(series) == (4,)


class CountedReads:
    """A stack that records the slices read from it, as a lazy (dask) array would load them."""

    def __init__(self, data: np.ndarray):
        self.data, self.shape, self.dtype, self.ndim, self.reads = data, data.shape, data.dtype, data.ndim, []

    def __getitem__(self, index):
        self.reads.append(index)
        return self.data[index]


@pytest.mark.slow
def test_a_run_over_a_stack_keeps_the_thumbnails_so_a_suggestion_reads_nothing():
    image, labels = synthetic_stack(n_slices=8, size=48, seed=1)
    stack = CountedReads(image)
    s = AnnotationSession()
    s.add(image, labels, (3,), image_name="img", labels_name="painted")
    out = Labels(np.zeros(labels.shape, np.uint8), name="out")
    for r in s.predictions(stack, [(z,) for z in range(8) if z != 3], PredictOptions(method="pixels"), device="cpu"):
        s.write(out, r)
    assert sorted(set(stack.reads)) == [(z,) for z in range(8)]  # the example's slice too, once the rest was done
    assert stack.reads.count((3,)) == 1
    stack.reads.clear()
    assert s.suggest(stack) not in (None, (3,))
    assert stack.reads == []  # in the GUI thread: nothing read
    expected = S.likeness_by_distance([S.thumbnail(image[z]) for z in range(8)])
    assert np.array_equal(s.read_thumbnails(stack), expected)  # the same as reading the stack afresh


def test_a_suggestion_reads_the_slices_no_run_read_and_a_cancelled_read_keeps_what_it_read():
    image, labels = synthetic_stack(n_slices=6, size=32, seed=1)
    stack = CountedReads(image)
    s = AnnotationSession()
    calls = iter(range(100))
    assert s.read_thumbnails(stack, cancel=lambda: next(calls) >= 2) is None  # stopped after two slices
    assert stack.reads == [(0,), (1,)]
    for z in range(6):
        s.write(Labels(np.zeros(labels.shape, np.uint8), name="out"), result((z,), p=0.5 + z / 20))
    s.add(image, labels, (0,), image_name="img", labels_name="painted")
    assert s.suggest(stack) is not None
    assert stack.reads == [(z,) for z in range(6)]  # the other four, once each
