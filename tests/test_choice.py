"""The validated choice of "auto" among UniverSeg views, the pixel classifier and their blend, and
the pixel classifier itself, on small synthetic images of bright disks (no model weights needed)."""

import numpy as np
import pytest

from napari_universeg.choice import Plan, class_labels, clear_winner, fit_classifier, halves, labels_from_probs, validated_plan
from napari_universeg.metrics import class_dice, dice
from napari_universeg.pixel_classifier import FeatureCache, PixelClassifier, working_shape
from napari_universeg.support import Example


def _disks(seed: int, size: int = 200, label: int = 1) -> Example:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), np.uint8)
    for cy, cx in rng.integers(15, size - 15, (6, 2)):
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(36, 120)] = label
    image = 0.2 + 0.6 * (mask > 0) + 0.05 * rng.standard_normal((size, size))
    return Example(image.astype(np.float32), mask)


def _useless_universeg(examples, image, plan):
    """A stand-in for a model that has not understood the task: confident background everywhere."""
    return np.zeros((1, *image.shape), np.float32)


def _perfect_universeg_on(truths):
    def probs(examples, image, plan):
        for ex in truths:
            if ex.image is image or np.array_equal(ex.image, image):
                return (ex.mask[None] > 0).astype(np.float32)
        raise AssertionError("unknown image")

    return probs


def test_working_shape_bounds_the_longer_side():
    assert working_shape((1024, 1344)) == (390, 512)
    assert working_shape((100, 80)) == (100, 80)
    assert working_shape((2000, 10), None) == (2000, 10)
    assert working_shape((16, 20000)) == (8, 10000)  # a strip is not thinned below 8 px


def test_pixel_classifier_learns_disks_and_reports_every_class():
    features = FeatureCache()
    train, test = [_disks(0), _disks(1)], _disks(2)
    clf = fit_classifier(train, [1], features)
    probs = clf.predict_proba(features(test.image), [1, 7])
    assert probs.shape == (2, 200, 200) and probs.dtype == np.float32
    assert not probs[1].any()  # a class the forest never saw has probability 0
    assert dice(probs[0] > 0.5, test.mask) > 0.9


def test_pixel_classifier_with_one_label_predicts_it_everywhere():
    clf = PixelClassifier().fit([np.zeros((10, 10, 3), np.float32)], [np.zeros((10, 10), np.int64)])
    probs = clf.predict_proba(np.zeros((4, 5, 3), np.float32), [1])
    assert probs.shape == (1, 4, 5) and not probs.any()


def test_auto_falls_back_on_the_pixel_classifier_when_universeg_fails():
    examples = [_disks(s) for s in range(3)]
    plan = validated_plan(examples, (200, 200), 64, [1], _useless_universeg, FeatureCache())
    assert plan.method == "pixels" and plan.estimate > 0.9 and plan.held_out == 3
    assert plan.classifier.n_trees == 50  # the held-out forests had 17 trees each
    by_method = {c.method: c.estimate for c in plan.candidates}
    assert by_method["universeg"] == 0.0  # nothing above the threshold: empty masks
    assert by_method["pixels"] == plan.estimate
    assert by_method["blend"] == 0.0  # half of the classifier's probability never passes 0.5
    # the chosen candidate is the best one, and every view of UniverSeg was tried
    assert plan.estimate == max(c.estimate for c in plan.candidates)
    assert {(c.mode, c.scale) for c in plan.candidates if c.method == "universeg"} == {("resize", 1.0), ("tiled", 0.5), ("tiled", 1.0)}


def test_auto_prefers_the_blend_unless_a_single_method_is_clearly_better():
    examples = [_disks(s) for s in range(3)]
    features = FeatureCache()
    # a perfect UniverSeg and a near-perfect classifier: the blend is within the margin
    plan = validated_plan(examples, (200, 200), 64, [1], _perfect_universeg_on(examples), features)
    assert plan == Plan("resize", 1.0, "blend") and plan.classifier is not None
    assert plan.estimate > 0.95
    # without the classifier's methods, the cheapest of equally good views is kept
    plan = validated_plan(examples, (200, 200), 64, [1], _perfect_universeg_on(examples), features, methods=("universeg",))
    assert plan == Plan("resize", 1.0, "universeg") and plan.estimate == 1.0 and plan.classifier is None


def test_methods_restrict_the_candidates_and_one_example_is_cut_in_halves():
    example = _disks(0, size=240)
    plan = validated_plan([example], (240, 240), 64, [1], _useless_universeg, FeatureCache(), methods=("universeg",))
    assert plan.method == "universeg" and plan.held_out == 2 and plan.estimate == 0.0
    assert {c.method for c in plan.candidates} == {"universeg"}
    plan = validated_plan([example], (240, 240), 64, [1], _useless_universeg, FeatureCache(), methods=("pixels",))
    assert [c.method for c in plan.candidates] == ["pixels"] and plan.method == "pixels"
    parts = halves(example)
    assert [p.image.shape for p in parts] == [(120, 240), (120, 240)]  # cut across rows when square


def test_one_example_never_drops_the_blend():
    """Its two halves are too little evidence: the blend stays even where the classifier alone
    scores far better on them."""
    plan = validated_plan([_disks(0, size=240)], (240, 240), 64, [1], _useless_universeg, FeatureCache())
    by_method = {c.method: c.estimate for c in plan.candidates}
    assert by_method["pixels"] > by_method["blend"] + 0.5 and plan.method == "blend"


def test_choice_can_be_cancelled():
    examples = [_disks(s) for s in range(2)]
    assert validated_plan(examples, (200, 200), 64, [1], _useless_universeg, FeatureCache(), cancel=lambda: True) is None


def test_multiclass_labels_and_scores():
    probs = np.zeros((2, 2, 3), np.float32)
    probs[0, 0, 0] = 0.9  # class 3 at (0, 0)
    probs[1, 1, :] = 0.7  # class 5 on the second row
    probs[1, 1, 2] = 0.4  # below the threshold
    labels = labels_from_probs(probs, [3, 5], 0.5)
    np.testing.assert_array_equal(labels, [[3, 0, 0], [5, 5, 0]])
    assert class_dice(labels, labels, [3, 5]) == 1.0
    np.testing.assert_array_equal(class_labels(np.array([[3, 4], [5, 0]]), [3, 5]), [[3, 0], [5, 0]])


@pytest.mark.parametrize("estimate,hint", [(0.91, False), (0.62, True)])
def test_estimate_message(estimate, hint):
    plan = Plan("resize", estimate=estimate)
    text = plan.estimate_message(4)
    assert text.startswith(f"expected Dice about {estimate:.2f} from your 4 examples")
    assert ("painting more slices should help" in text) == hint
    assert Plan("resize").estimate_message(4) == ""
    assert "rough guess from the two halves of your first example" in plan.estimate_message(1)
    plan.examples = 2  # chosen on 2, kept while the user added more
    assert "from your first 2 examples" in plan.estimate_message(5)


def test_finer_tile_scales_are_not_tried_once_held_out_dice_falls():
    examples = [_disks(s, size=400) for s in range(2)]
    tried = []

    def worse_when_finer(exs, image, plan):
        tried.append((plan.mode, plan.scale))
        quality = {"resize": 1.0, 0.25: 0.0}.get(plan.mode if plan.mode == "resize" else plan.scale, 1.0)
        return (ex_mask(image) * quality)[None].astype(np.float32)

    def ex_mask(image):
        return next(ex.mask for ex in examples if ex.image is image)

    plan = validated_plan(examples, (400, 400), 64, [1], worse_when_finer, FeatureCache(), methods=("universeg",))
    # candidate views: resize, tiles at 1, 0.5, 0.25; 0.25 (the coarsest) already falls below resize
    assert sorted(set(tried)) == [("resize", 1.0), ("tiled", 0.25)]
    assert plan == Plan("resize", 1.0, "universeg")


def _partial(mask: np.ndarray, kept: float) -> np.ndarray:
    """(1, H, W) probabilities that find a share ``kept`` of the mask's pixels (Dice 2k / (1 + k))."""
    rng = np.random.default_rng(0)
    return ((mask > 0) & (rng.random(mask.shape) < kept))[None].astype(np.float32)


@pytest.mark.parametrize(
    ("tiles_kept", "chosen"),
    [
        ((0.9, 0.6), "resize"),  # tiles lead by 0.04 on average, but win on one example and lose on the other
        ((0.9, 0.97), "tiled"),  # a clear gain on both examples
        ((0.52, 0.92), "tiled"),  # a small gain (Dice +0.018 and +0.011), but on both examples
    ],
)
def test_tiles_replace_resize_only_for_a_gain_beyond_the_examples_noise(tiles_kept, chosen):
    examples = [_disks(s, size=400) for s in range(2)]
    resize_kept = (0.5, 0.9)

    def probs(exs, image, plan):
        h = next(i for i, ex in enumerate(examples) if ex.image is image)
        return _partial(examples[h].mask, (resize_kept if plan.mode == "resize" else tiles_kept)[h])

    plan = validated_plan(examples, (400, 400), 64, [1], probs, FeatureCache(), methods=("universeg",))
    by_view = {(c.mode, c.scale): c.estimate for c in plan.candidates}
    assert max(by_view.values()) > by_view[("resize", 1.0)]  # some tile scale leads on average
    assert plan.mode == chosen


def test_clear_winner_takes_a_small_gain_seen_on_every_example_and_a_margin_on_top():
    resize, small, noisy = [0.50, 0.90], [0.52, 0.91], [0.90, 0.60]
    assert clear_winner([resize, small]) == 1
    assert clear_winner([resize, small], margin=0.02) == 0  # the earlier rule (benchmarks/view_choice.py)
    assert clear_winner([resize, noisy]) == 0  # wins on one example, loses on the other
    assert clear_winner([resize, small, [0.53, 0.93]]) == 2  # the best of the clear ones
