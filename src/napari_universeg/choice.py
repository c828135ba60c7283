"""How a support set is turned into predictions (a ``Plan``), and how "auto" chooses one.

Candidates:
- UniverSeg with the whole image resized to the model size, or over tiles at a scale;
- the pixel classifier (random forest on multiscale features, pixel_classifier.py);
- their blend: the mean of the best UniverSeg plan's probabilities and the classifier's.

"auto" judges every candidate by leave-one-out on the user's own examples (``validated_plan``):
each of up to MAX_HELD_OUT examples is predicted, whole, from the others, and scored by Dice. A
single example is cut into two halves that predict each other. The winner's held-out Dice is the
accuracy estimate shown to the user. This module knows nothing of torch: the UniverSeg
predictions come from the caller (predict.Segmenter).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .metrics import class_dice
from .options import METHODS
from .pixel_classifier import N_TREES, FeatureCache, PixelClassifier, from_working, to_working
from .preprocess import MIN_SIZE
from .support import Example

MAX_HELD_OUT = 6  # examples that "auto" predicts from the others to choose the plan
MAX_TILED_SIDE = 5  # "auto" tries tiled scales up to this many model sizes across the image
MARGIN = 0.02  # held-out Dice by which a view may trail the best after two examples before it is dropped
# Held-out Dice by which a single method must beat the blend to replace it. The blend's failure is
# a collapse (one model confidently wrong halves the other's probability and loses most of the
# foreground), which costs far more than this; between working methods, held-out differences of
# a few hundredths did not carry over to new images (validated_plan).
BLEND_LOSS = 0.1
# Scaled object thickness for "tiled" without a scale: best on 3 of the 4 evaldata sets when
# this rule was "auto" (before leave-one-out; see git history of benchmarks/results/modes.md).
TARGET_THICKNESS = 6.0


@dataclass
class Plan:
    """How predictions are made: ``method`` says who predicts; ``mode`` and ``scale`` how UniverSeg
    sees the images (unused by "pixels"). "auto" also fills ``estimate`` (held-out Dice of this plan
    on the examples), ``candidates`` (every plan it tried, with theirs) and the fitted
    ``classifier``."""

    mode: str
    scale: float = 1.0
    method: str = "universeg"
    estimate: float | None = field(default=None, compare=False)
    candidates: list[Plan] = field(default_factory=list, compare=False, repr=False)
    classifier: Any = field(default=None, compare=False, repr=False)
    held_out: int = field(default=0, compare=False)  # examples (or halves) the estimate was made on
    examples: int = field(default=0, compare=False)  # examples in the support set when chosen
    provisional: bool = field(default=False, compare=False)  # kept for a first result only (Segmenter.plan)

    @property
    def uses_universeg(self) -> bool:
        """True when UniverSeg predicts (alone or in the blend)."""
        return self.method != "pixels"

    @property
    def uses_classifier(self) -> bool:
        """True when the pixel classifier predicts (alone or in the blend)."""
        return self.method != "universeg"

    def view(self) -> str:
        """How UniverSeg sees the images, in words ("tiles at scale 0.5")."""
        return "whole image resized" if self.mode == "resize" else f"tiles at scale {self.scale:.2g}"

    def describe(self, model: str = "") -> str:
        """The plan in words, as the widget and the CLI show it, followed by ``model`` (which
        model UniverSeg ran with, predict.SlicePrediction.model) where it says something."""
        if self.method == "pixels":
            words = "pixel classifier"
        elif self.method == "blend":
            words = f"UniverSeg ({self.view()}) + pixel classifier"
        else:
            words = self.view()
        return f"{words}; {model}" if model else words

    def estimate_message(self, n_examples: int) -> str:
        """One line for the user, e.g. "expected Dice about 0.81 from your 4 examples";
        ``n_examples``: how many there are now (the plan may have been chosen on fewer)."""
        if self.estimate is None:
            return ""
        chosen_on = self.examples or n_examples
        if chosen_on == 1:  # the two halves of one example can differ a lot (one may be empty)
            text = f"expected Dice about {self.estimate:.2f}, a rough guess from the two halves of your first example"
        else:
            text = f"expected Dice about {self.estimate:.2f} from your {'first ' if chosen_on < n_examples else ''}{chosen_on} examples"
        if self.estimate < 0.8 or chosen_on == 1:
            text += "; painting more slices should help"
        return text


def object_thickness(masks: Sequence[np.ndarray]) -> float | None:
    """Typical foreground thickness in px: 4 x mean distance to the background over foreground
    pixels (the width of a line; about 2/3 of a disk's diameter). None if all masks are empty."""
    from scipy.ndimage import distance_transform_edt

    values = []
    for m in masks:
        fg = m > 0
        if fg.any() and not fg.all():
            values.append(4 * distance_transform_edt(fg)[fg].mean())
    return float(np.median(values)) if values else None


def choose_plan(examples: Sequence[Example], query_shape: tuple[int, int], size: int, mode: str, scale: float | None) -> Plan:
    """A UniverSeg plan from the mode and scale, with a missing scale (and "auto") taken from the
    masks' object size. "auto" is normally resolved by ``validated_plan``; this is its fallback."""
    if mode == "resize":
        return Plan("resize")
    if mode == "tiled" and scale is not None:
        return Plan("tiled", scale)
    thick = object_thickness([ex.mask for ex in examples])
    big = max(max(query_shape), *(max(ex.image.shape) for ex in examples))
    resize_factor = size / big
    if thick is None:  # nothing to measure: keep the global view
        return Plan("resize") if mode == "auto" else Plan("tiled", 1.0)
    chosen = float(np.clip(TARGET_THICKNESS / thick, resize_factor, 1.0))
    if mode == "auto" and chosen <= resize_factor * 1.5:
        return Plan("resize")
    return Plan("tiled", chosen)


def candidate_plans(shapes: Sequence[tuple[int, int]], size: int) -> list[Plan]:
    """The UniverSeg views "auto" validates: resize, and tiles at the power-of-two scales that keep
    the largest image between 1.5 and MAX_TILED_SIDE model sizes across and no side of an image
    under MIN_SIZE px."""
    big = max(max(s) for s in shapes)
    small = min(min(s) for s in shapes)
    scales = [2.0**-k for k in range(8) if 1.5 * size < big * 2.0**-k < MAX_TILED_SIDE * size and small * 2.0**-k >= MIN_SIZE]
    return [Plan("resize")] + [Plan("tiled", s) for s in scales]


def halves(example: Example) -> list[Example]:
    """The example cut across its longer side into two examples."""
    axis = int(example.image.shape[1] > example.image.shape[0])
    cut = example.image.shape[axis] // 2
    parts = [np.split(a, [cut], axis=axis) for a in (example.image, example.mask)]
    return [Example(np.ascontiguousarray(im), np.ascontiguousarray(m)) for im, m in zip(*parts)]


def class_labels(mask: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """(H, W) int64 labels: the mask's value where it is one of ``classes``, else 0."""
    mask = np.asarray(mask).astype(np.int64)
    return np.where(np.isin(mask, list(classes)), mask, 0)


def labels_from_probs(probs: np.ndarray, classes: Sequence[int], threshold: float) -> np.ndarray:
    """(H, W) int64 labels from (C, H, W) probabilities: the most probable class where it passes
    the threshold, else 0."""
    best = probs.argmax(0)
    pmax = np.take_along_axis(probs, best[None], 0)[0]
    return np.where(pmax > threshold, np.asarray(classes)[best], 0)


def fit_classifier(
    examples: Sequence[Example], classes: Sequence[int], features: FeatureCache, seed: int = 0, n_trees: int = N_TREES
) -> PixelClassifier:
    """A pixel classifier trained on the examples (features from the cache, at working size)."""
    feats = [features(ex.image) for ex in examples]
    labels = [to_working(class_labels(ex.mask, classes), f.shape[:2], nearest=True) for ex, f in zip(examples, feats)]
    return PixelClassifier(n_trees, seed=seed).fit(feats, labels)


def classifier_probs(classifier: PixelClassifier, image: np.ndarray, classes: Sequence[int], features: FeatureCache) -> np.ndarray:
    """(C, H, W) float32 probabilities of the classes for a 2D image."""
    return from_working(classifier.predict_proba(features(image), classes), image.shape[:2])


def clear_gain(dices: Sequence[float], baseline: Sequence[float]) -> float:
    """The mean gain in held-out Dice over ``baseline`` (paired, per held-out example) if it
    exceeds its standard error, else 0: the one-standard-error rule of model selection (the
    simpler choice stands unless the other beats it by more than the noise of the estimate).
    With two held-out examples (or halves) that disagree, a gain is mostly noise: on the first
    two neuron images of a series, tiles led resize by 0.036 on average, with +0.13 on one
    image and -0.06 on the other."""
    diff = np.asarray(dices, float) - np.asarray(baseline, float)
    se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
    return float(diff.mean()) if diff.mean() > se else 0.0


def clear_winner(dices: Sequence[Sequence[float]], margin: float = 0.0) -> int:
    """The view chosen from held-out Dice (per view, per held-out example; resize first): the
    best mean among the views whose ``clear_gain`` over resize exceeds ``margin``, else 0 (resize).
    validated_plan uses no margin (its docstring says why); benchmarks/view_choice.py compares."""
    clear = [i for i in range(1, len(dices)) if clear_gain(dices[i], dices[0]) > margin]
    return max(clear, key=lambda i: float(np.mean(dices[i])), default=0)


def validated_plan(
    examples: Sequence[Example],
    query_shape: tuple[int, int],
    size: int,
    classes: Sequence[int],
    universeg_probs: Callable[[list[Example], np.ndarray, Plan], np.ndarray],
    features: FeatureCache,
    methods: Sequence[str] = METHODS,
    threshold: float = 0.5,
    seed: int = 0,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
    view: Plan | None = None,
) -> Plan | None:
    """Leave-one-out choice among the candidates (module docstring); None if ``cancel`` fired.
    ``progress(done, total)`` after each held-out prediction (total: the most there can be).
    With ``view``, UniverSeg is tried in that view only (one the model is adapted in; only the
    method is chosen).

    ``universeg_probs(support, image, plan)`` gives (C, H, W) probabilities of ``classes`` for a 2D
    image from a list of examples. Only ``methods`` are tried ("pixels" needs no UniverSeg view).
    Tiles replace resize when their gain is beyond the noise of the held-out examples
    (``clear_gain``), however small: the held-out examples share their images' object size, and
    a view that wins on them by a clear few hundredths can win by far more on images whose
    objects are smaller (on the two-cell-line nuclei set, tiles at 1/2 led resize by 0.017-0.020
    on the examples and by 0.12-0.14 on the other images, where the nuclei are 2.4x smaller in
    pixels; benchmarks/results/view_choice.md). Tiles cost more time; that is no reason to lose
    accuracy. Tile scales
    are tried from coarse to fine until held-out Dice falls, and a view that trails the best
    complete one by more than MARGIN after two held-out examples is dropped with the finer ones.
    The blend uses the best UniverSeg view and is the default: a single method must beat it by
    BLEND_LOSS. Held-out examples come from the same images as the training examples, so they
    cannot show how a method copes with images that differ from the examples (another day,
    another cell line); the pixel classifier, which fits the examples' intensities closely,
    suffers most from that (on a two-cell-line set it won on the examples by 0.02 and lost on
    the other line by 0.06), and averaging it with UniverSeg hedges.
    """
    originals = list(examples)
    examples = halves(originals[0]) if len(originals) == 1 else originals
    held = range(min(len(examples), MAX_HELD_OUT))
    truths = [class_labels(examples[h].mask, classes) for h in held]

    def score(probs: list[np.ndarray], against: list[np.ndarray] = truths) -> float:
        return float(np.mean([class_dice(labels_from_probs(p, classes, threshold), t, classes) for p, t in zip(probs, against)]))

    def others(h: int) -> list[Example]:
        return [ex for i, ex in enumerate(examples) if i != h]

    if methods == ("pixels",):
        views = []
    else:
        views = [view] if view is not None else candidate_plans([query_shape] + [ex.image.shape[:2] for ex in examples], size)
    views = views[:1] + views[:0:-1]  # resize, then tiles from the coarsest scale to the finest
    steps = [0, len(held) * (len(views) + ("pixels" in methods or "blend" in methods))]

    def step() -> None:
        steps[0] += 1
        if progress is not None:
            progress(*steps)

    tried: list[Plan] = []  # every candidate, with its held-out Dice as estimate
    view_probs = []
    dices: list[list[float]] = []  # per view tried, per held-out example
    for view in views:
        probs, mine = [], []
        for h in held:
            if cancel is not None and cancel():
                return None
            probs.append(universeg_probs(others(h), examples[h].image, view))
            step()
            mine.append(score(probs[-1:], truths[h : h + 1]))
            leader = max((d for d in dices if len(d) == len(held)), key=np.mean, default=None)
            if len(mine) >= 2 and leader is not None and np.mean(mine) < np.mean(leader[: len(mine)]) - MARGIN:
                break  # behind the best view by more than the margin after two examples: drop it
        if len(mine) < len(held):
            tried.append(Plan(view.mode, view.scale, "universeg", estimate=float(np.mean(mine)), held_out=len(mine)))
            break  # dropped: the finer scales are not tried either (below)
        view_probs.append(probs)
        dices.append(mine)
        tried.append(Plan(view.mode, view.scale, "universeg", estimate=float(np.mean(mine)), held_out=len(mine)))
        if len(tried) > 1 and tried[-1].estimate < tried[-2].estimate:
            break  # finer scales lose more context: held-out Dice is taken to fall from here on
    if views:
        complete = tried[: len(view_probs)]  # the views validated on every held-out example (resize first, unless ``view``)
        best = clear_winner(dices)
        view = complete[best]
    if "pixels" in methods or "blend" in methods:
        # One forest per held-out example, without it, with a share of the trees: together they
        # cost one forest's fit. (Their union as the classifier for the queries would save
        # another fit, but each of its trees misses an example: on nih3t3 it lost 0.016 Dice.)
        pixel_probs = []
        for h in held:
            if cancel is not None and cancel():
                return None
            forest = fit_classifier(others(h), classes, features, seed + h, -(-N_TREES // len(held)))
            pixel_probs.append(classifier_probs(forest, examples[h].image, classes, features))
            step()
        tried.append(Plan("resize", 1.0, "pixels", estimate=score(pixel_probs), held_out=len(held)))
        if views:
            blend = [(u + p) / 2 for u, p in zip(view_probs[best], pixel_probs)]
            tried.append(Plan(view.mode, view.scale, "blend", estimate=score(blend), held_out=len(held)))
    singles = [p for p in tried if p.method in methods and p.method != "blend" and (p.method != "universeg" or p is view)]
    chosen = max(singles, key=lambda p: p.estimate, default=None)  # the first (cheapest) wins a tie
    # Two halves of one image are too little evidence to drop the blend: they are not independent,
    # and one may hold little of the objects (on one neuron image the halves rated the classifier
    # alone 0.35 and the blend over 0.1 lower; on the other images the classifier then scored
    # 0.50, where the blend from any one image of that set scored 0.68-0.72 in the protocol).
    weak = len(originals) == 1
    if "blend" in methods and views and (chosen is None or weak or chosen.estimate <= tried[-1].estimate + BLEND_LOSS):
        chosen = tried[-1]
    plan = replace(chosen, candidates=tried, held_out=len(held), examples=len(originals))
    if plan.uses_classifier:
        plan.classifier = fit_classifier(originals, classes, features, seed)
    if progress is not None:
        progress(steps[1], steps[1])  # views dropped early leave steps out
    return plan
