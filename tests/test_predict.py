"""The inference engine with a tiny random model: shapes, modes, batching, classes, cancel."""

import numpy as np
import pytest
import torch

from napari_universeg import PredictOptions, Segmenter, SupportSet, UniverSeg
from napari_universeg.options import CHOOSING
from napari_universeg.predict import Plan, candidate_plans, choose_plan, object_thickness
from napari_universeg.sample_data import synthetic_stack


@pytest.fixture(scope="module")
def segmenter():
    torch.manual_seed(0)
    return Segmenter(UniverSeg((8, 8, 8, 8), (8, 8, 8)), device="cpu", precision="fp32", size=64)


@pytest.fixture(scope="module")
def stack():
    image, labels = synthetic_stack(n_slices=6, size=96)
    return image, labels


def _count_choices(monkeypatch) -> list:
    """A list that gets an item each time "auto" makes its leave-one-out choice."""
    import napari_universeg.predict as predict_module

    calls = []
    validated = predict_module.validated_plan
    monkeypatch.setattr(predict_module, "validated_plan", lambda *a, **kw: calls.append(1) or validated(*a, **kw))
    return calls


def _support(image, labels, slices=(0, 3)):
    s = SupportSet()
    for z in slices:
        s.add(image[z], labels[z], source=f"slice {z}")
    return s


@pytest.mark.parametrize("mode,scale", [("resize", None), ("tiled", 1.0), ("tiled", 0.5), ("auto", None)])
def test_full_resolution_output_for_every_slice(segmenter, stack, mode, scale):
    image, labels = stack
    preds = segmenter.predict(_support(image, labels), image, PredictOptions(mode=mode, scale=scale))
    assert [p.index for p in preds] == list(range(6))
    for p in preds:
        assert p.labels.shape == (96, 96) and p.labels.dtype == np.uint8
        assert p.probability.shape == (96, 96) and 0 <= p.probability.min() <= p.probability.max() <= 1
        assert set(np.unique(p.labels)) <= {0, 1}


def test_batching_and_cached_support_features_do_not_change_results(segmenter, stack):
    image, labels = stack
    support = _support(image, labels)
    one = segmenter.predict(support, image, PredictOptions(mode="resize", max_items=1))
    many = segmenter.predict(support, image, PredictOptions(mode="resize", max_items=1000))
    for a, b in zip(one, many):
        np.testing.assert_allclose(a.probability, b.probability, atol=1e-5)


def test_only_requested_slices_are_read(segmenter, stack):
    image, labels = stack

    class Lazy:
        def __init__(self):
            self.read = []

        def __len__(self):
            return len(image)

        def __getitem__(self, i):
            self.read.append(i)
            return image[i]

    lazy = Lazy()
    preds = segmenter.predict(_support(image, labels), lazy, PredictOptions(mode="resize"), indices=[1, 4])
    assert [p.index for p in preds] == [1, 4] and sorted(set(lazy.read)) == [1, 4]


def test_progress_is_reported_per_slice(segmenter, stack):
    image, labels = stack
    seen = []
    segmenter.predict(_support(image, labels), image, PredictOptions(mode="resize"), indices=[0, 2, 4], progress=lambda *p: seen.append(p))
    assert seen == [("segmenting", 1, 3), ("segmenting", 2, 3), ("segmenting", 3, 3)]


def test_cancel_stops_between_batches(segmenter, stack):
    image, labels = stack
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    preds = list(segmenter.iter_predict(_support(image, labels), image, PredictOptions(mode="resize", max_items=2), cancel=cancel))
    assert 0 < len(preds) < 6


def test_multiclass_labels_take_the_most_probable_class(segmenter, stack):
    image, labels = stack
    multi = labels.astype(np.uint8).copy()
    multi[:, :, 48:] *= 3  # right half: class 3
    support = SupportSet()
    for z in (0, 3):
        support.add(image[z], multi[z])
    assert support.classes() == [1, 3]
    preds = segmenter.predict(support, image[:2], PredictOptions(mode="resize", threshold=0.01))
    assert set(np.unique(preds[0].labels)) <= {0, 1, 3}
    only3 = segmenter.predict(support, image[:1], PredictOptions(mode="resize", classes=[3], threshold=0.01))
    assert set(np.unique(only3[0].labels)) <= {0, 3}
    with pytest.raises(ValueError, match="do not occur"):
        segmenter.predict(support, image[:1], PredictOptions(classes=[7]))


def test_combine_picks_argmax_above_threshold():
    probs = np.array([[[0.2, 0.7], [0.6, 0.1]], [[0.3, 0.6], [0.9, 0.4]]], np.float32)  # classes 2, 5
    out = Segmenter._combine(0, probs, [2, 5], 0.5)
    np.testing.assert_array_equal(out.labels, [[0, 2], [5, 0]])
    np.testing.assert_allclose(out.probability, [[0.3, 0.7], [0.9, 0.4]])


def test_ensemble_is_seeded(segmenter, stack):
    image, labels = stack
    support = _support(image, labels, slices=(0, 1, 2, 3, 5))
    opts = dict(mode="resize", support_size=2, ensemble=3)
    a = segmenter.predict(support, image[4:5], PredictOptions(seed=1, **opts))[0]
    b = segmenter.predict(support, image[4:5], PredictOptions(seed=1, **opts))[0]
    c = segmenter.predict(support, image[4:5], PredictOptions(seed=2, **opts))[0]
    np.testing.assert_array_equal(a.probability, b.probability)
    assert not np.array_equal(a.probability, c.probability)


def test_bad_queries_and_empty_support(segmenter, stack):
    image, labels = stack
    with pytest.raises(ValueError, match="no \\(enabled\\) examples"):
        segmenter.predict(SupportSet(), image)
    support = _support(image, labels)
    with pytest.raises(ValueError, match="at least 8x8"):
        segmenter.predict(support, np.random.rand(1, 4, 32))


@pytest.mark.parametrize("mode", ["resize", "auto"])
def test_blank_slices_come_out_empty_with_a_note_and_the_rest_is_segmented(segmenter, stack, mode):
    image, labels = stack
    queries = image[:4].astype(np.float32).copy()
    queries[1] = 7.0  # constant
    queries[2, 5, 5] = np.nan
    preds = segmenter.predict(_support(image, labels), queries, PredictOptions(mode=mode))
    assert [p.index for p in preds] == [0, 1, 2, 3]
    assert preds[1].note == "slice 1 is constant (every pixel is 7): nothing to segment; it was left empty"
    assert preds[2].note == "slice 2 contains NaN or infinite values; it was left empty"
    for p in preds[1:3]:
        assert not p.labels.any() and not p.probability.any() and p.labels.shape == queries.shape[1:]
    assert preds[0].note == preds[3].note == ""
    reference = segmenter.predict(_support(image, labels), image[[0, 3]], PredictOptions(mode=mode))
    for got, want in zip((preds[0], preds[3]), reference):
        np.testing.assert_array_equal(got.labels, want.labels)


def test_empty_masks_are_a_valid_support(segmenter, stack):
    image, _ = stack
    support = SupportSet()
    support.add(image[0], np.zeros(image[0].shape, np.uint8))
    preds = segmenter.predict(support, image[:1], PredictOptions(mode="resize"))
    assert preds[0].labels.shape == image[0].shape


def test_auto_plan_follows_object_size():
    support = SupportSet()
    big = np.zeros((1024, 1024), np.uint8)
    yy, xx = np.mgrid[:1024, :1024]
    for cy, cx in [(200, 200), (600, 700), (800, 300)]:
        big[(yy - cy) ** 2 + (xx - cx) ** 2 < 12**2] = 1  # small nuclei in a large image
    support.add(np.random.rand(1024, 1024), big)
    plan = choose_plan(support.enabled(), (1024, 1024), 128, "auto", None)
    assert plan.mode == "tiled" and 128 / 1024 < plan.scale <= 1
    huge = np.zeros((256, 256), np.uint8)
    huge[40:200, 60:220] = 1  # one object filling the image
    support2 = SupportSet()
    support2.add(np.random.rand(256, 256), huge)
    assert choose_plan(support2.enabled(), (256, 256), 128, "auto", None) == Plan("resize")
    assert choose_plan(support2.enabled(), (256, 256), 128, "tiled", 0.7) == Plan("tiled", 0.7)
    assert object_thickness([np.zeros((8, 8))]) is None


def test_candidate_plans_are_resize_and_the_feasible_tile_scales():
    assert candidate_plans([(100, 100)], 128) == [Plan("resize")]
    assert candidate_plans([(512, 512)], 128) == [Plan("resize"), Plan("tiled", 1.0), Plan("tiled", 0.5)]
    # the largest image decides: 1100 px at 0.5 is 550 px, under 5 tiles across
    assert candidate_plans([(256, 256), (1100, 900)], 128) == [Plan("resize"), Plan("tiled", 0.5), Plan("tiled", 0.25)]
    # a 16 px wide strip: no scale below 1/2 keeps it 8 px wide, and 1/2 leaves it 10000 px long
    assert candidate_plans([(16, 20000)], 128) == [Plan("resize")]


def test_auto_plan_is_validated_once_per_support_set(segmenter, stack, monkeypatch):
    image, labels = stack
    seg = Segmenter(segmenter.model, "cpu", "fp32", size=64)  # a fresh plan cache
    calls = _count_choices(monkeypatch)
    support = _support(image, labels)
    seg.predict(support, image[:2])
    seg.predict(support, image[2:4])
    assert len(calls) == 1
    support[0].mask[:5] = 1 - support[0].mask[:5]  # an edited example is a new support set
    seg.predict(support, image[:1])
    assert len(calls) == 2
    seg.predict(_support(image, labels, slices=(2,)), image[:1])  # one example: its two halves
    assert len(calls) == 3
    seg.predict(support, image[:1], PredictOptions(mode="resize"))
    assert len(calls) == 3


@pytest.mark.slow
def test_a_support_set_that_grew_keeps_its_choice_with_a_new_classifier(segmenter, stack, monkeypatch):
    image, labels = stack
    seg = Segmenter(segmenter.model, "cpu", "fp32", size=64)
    calls = _count_choices(monkeypatch)
    first = seg.predict(_support(image, labels, (0, 3)), image[:1])[0].plan
    preds = seg.predict(_support(image, labels, (0, 3, 5)), image[:2])
    # the first result with the plan as it was, the rest with the classifier fitted anew
    assert preds[0].plan.provisional and preds[0].plan.classifier is first.classifier
    grown = preds[1].plan
    assert len(calls) == 1 and grown == first and grown.examples == first.examples == 2 and not grown.provisional
    assert grown.estimate == first.estimate and grown.classifier is not first.classifier
    assert seg.predict(_support(image, labels, (0, 3, 5)), image[:1])[0].plan is grown  # one slice: updated plan
    seg.predict(_support(image, labels, (0, 5)), image[:1])  # not a superset of a chosen one: choose
    assert len(calls) == 2
    # twice the examples of the choice: the first result with the old choice, then a new one
    queries = [image[0], image[1][:, :80], image[2]]  # each result is its own image's
    preds = seg.predict(_support(image, labels, (0, 1, 3, 5)), queries)
    assert [p.labels.shape for p in preds] == [q.shape for q in queries]
    assert len(calls) == 3 and preds[0].plan.provisional and preds[0].plan.examples == 2
    assert not preds[1].plan.provisional and preds[1].plan.examples == preds[2].plan.examples == 4
    seg.predict(_support(image, labels, (0, 1, 3, 5)), queries)
    assert len(calls) == 3
    seg.forget_plans()  # an independent task: chosen anew
    seg.predict(_support(image, labels, (0, 1, 3, 5)), queries)
    assert len(calls) == 4


@pytest.mark.slow
def test_auto_chooses_tiles_for_small_spots_in_large_images():
    """Spots 9 px across in 512 px images vanish when resized to 128 px; leave-one-out on the
    examples (or on the halves of a single one) must notice that and choose tiles for UniverSeg.
    The pixel classifier finds such spots too, so auto with every method may choose it instead."""
    from napari_universeg.evaluate import dice

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:512, :512]

    def spots():
        mask = np.zeros((512, 512), np.uint8)
        for cy, cx in rng.integers(10, 502, (40, 2)):
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= 16] = 1
        image = 0.1 + 0.8 * mask + 0.05 * rng.standard_normal((512, 512))
        return image.astype(np.float32), mask

    support = SupportSet()
    for _ in range(3):
        support.add(*spots())
    seg = Segmenter.from_weights("default", device="cpu")
    universeg = PredictOptions(method="universeg", adapt=False)  # the choice of view, for the shipped model
    plan = seg.plan(support, (512, 512), universeg)
    assert plan.mode == "tiled" and plan.method == "universeg"
    assert seg.plan(SupportSet(support.examples[:1]), (512, 512), universeg).mode == "tiled"  # halves
    query, truth = spots()
    result = seg.predict(support, [query], universeg)[0]
    assert result.plan == plan
    resized = seg.predict(support, [query], PredictOptions(mode="resize", adapt=False))[0].labels  # the shipped model's view
    assert dice(result.labels, truth) > 0.6 and dice(resized, truth) < 0.3
    auto = seg.predict(support, [query], PredictOptions(adapt=False))[0]
    assert dice(auto.labels, truth) > 0.6 and auto.plan.estimate > 0.6


def test_bf16_and_fp32_give_the_same_masks_with_the_default_weights():
    from napari_universeg.evaluate import dice
    from napari_universeg.sample_data import neurons
    from napari_universeg.weights import load_weights

    images, masks = neurons()
    support = SupportSet()
    for i in range(3):
        support.add(images[i], masks[i])
    model, _ = load_weights("default")
    opts = PredictOptions(mode="resize", adapt=False)  # the shipped weights in both precisions
    fp32 = Segmenter(model, "cpu", "fp32").predict(support, images, opts, indices=[4, 7])
    bf16 = Segmenter(model, "cpu", "bf16").predict(support, images, opts, indices=[4, 7])
    for a, b in zip(fp32, bf16):
        assert a.labels.any() and dice(a.labels > 0, b.labels > 0) >= 0.99


def test_labels_above_uint16_come_out_unwrapped(segmenter, stack):
    image, labels = stack
    support = SupportSet()
    for z in (0, 3):
        support.add(image[z], np.where(labels[z] > 0, 70000, 0))
    pred = segmenter.predict(support, image[:1], PredictOptions(mode="resize", method="pixels"))[0]
    assert pred.labels.dtype == np.uint32 and set(np.unique(pred.labels)) <= {0, 70000} and pred.labels.max() == 70000


@pytest.mark.parametrize(
    "field,value,message",
    [("ensemble", 1_000_000, "ensemble size must be between 1 and 16"), ("support_size", 0, "support size must be between 1 and 256")],
)
def test_options_out_of_range_are_refused_before_any_work(field, value, message):
    with pytest.raises(ValueError, match=message):
        PredictOptions(**{field: value}).validate()


def test_only_the_examples_a_pass_uses_are_prepared(segmenter, stack):
    """With more examples than the support size, the others cost no memory (10,000 tiny ones used
    2 GB when every example was normalised first)."""
    image, labels = stack
    seg = Segmenter(segmenter.model, "cpu", "fp32", size=64)
    support = SupportSet()
    for k in range(300):
        support.add(np.roll(image[k % 6], k, axis=1), np.roll(labels[k % 6], k, axis=1))
    seg.predict(support, image[:1], PredictOptions(mode="resize", method="universeg", support_size=16, ensemble=2))
    assert len(seg._tensors) <= 32


def test_preview_comes_first_then_the_same_slice_with_the_chosen_plan(segmenter, stack, monkeypatch):
    image, labels = stack
    seg = Segmenter(segmenter.model, "cpu", "fp32", size=64)  # a fresh plan cache
    calls = _count_choices(monkeypatch)
    support, progress = _support(image, labels), []
    preds = list(seg.iter_predict(support, image, indices=[4, 1], preview=True, progress=lambda *p: progress.append(p)))
    assert [(p.index, p.preview) for p in preds] == [(4, True), (4, False), (1, False)]
    assert preds[0].plan.provisional and preds[0].plan.describe() == "whole image resized" and len(calls) == 1
    assert not preds[1].plan.provisional and preds[1].plan.estimate is not None
    assert [p for p in progress if p[0] == "segmenting"] == [("segmenting", 1, 2), ("segmenting", 2, 2)]  # final results only
    chose = [p for p in progress if p[0] != "segmenting"]
    assert chose[0][0] == CHOOSING and chose[-1][1] == chose[-1][2] > 0  # the choice, to its end
    # once chosen there is nothing to preview, and predict() never returns previews
    again = list(seg.iter_predict(support, image, indices=[4, 1], preview=True))
    assert [(p.index, p.preview) for p in again] == [(4, False), (1, False)] and len(calls) == 1
    np.testing.assert_array_equal(again[0].labels, preds[1].labels)
    seg.forget_plans()
    assert [p.index for p in seg.predict(support, image, indices=[4, 1], preview=True)] == [4, 1]


def test_a_plan_prepared_in_another_thread_is_chosen_once_and_used(segmenter, stack, monkeypatch):
    import threading

    image, labels = stack
    seg = Segmenter(segmenter.model, "cpu", "fp32", size=64)
    calls = _count_choices(monkeypatch)
    support = _support(image, labels)
    chosen = []
    t = threading.Thread(target=lambda: chosen.append(seg.prepare(support, image.shape[-2:], PredictOptions())))
    t.start()
    preds = list(seg.iter_predict(support, image, indices=[2, 3], preview=True))  # meanwhile: waits for it
    t.join()
    assert len(calls) == 1 and chosen[0] is not None
    assert all(p.plan is chosen[0] for p in preds if not p.preview)
    assert seg.prepare(support, image.shape[-2:], PredictOptions(), cancel=lambda: True) is chosen[0]  # cached
    fresh = Segmenter(segmenter.model, "cpu", "fp32", size=64)
    assert fresh.prepare(support, image.shape[-2:], PredictOptions(), cancel=lambda: True) is None  # cancelled
