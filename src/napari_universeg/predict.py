"""Segmenting images and stacks from a support set.

Two ways to bring an image to the model's size (``mode``):
- "resize": the whole image is resized to size x size (global context, loses fine detail);
- "tiled": the image is rescaled by ``scale`` and the fully convolutional model runs over
  overlapping size x size tiles, blended; support examples are cropped at the same scale,
  preferring crops that contain foreground.
"auto" chooses among these and the pixel classifier, alone or blended with UniverSeg, by
leave-one-out on the examples (choice.py); "tiled" without a scale takes it from the size of the
objects in the support masks (``choose_plan``).

Labels 1..C become C binary tasks; each pixel gets the most probable class above the threshold.
With ``task="instances"`` the painted objects give two tasks, their union and their cores
(instances.py), and each slice's result is one label per object, 1..K.
Support ensembling averages probabilities over K random subsets of at most S examples.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from .adapt import Adaptation
from .adapted_models import AdaptedModels
from .choice import (
    Plan,
    candidate_plans,
    choose_plan,
    classifier_probs,
    fit_classifier,
    labels_from_probs,
    object_thickness,
    validated_plan,
)
from .crops import crops, pad_to
from .device import autocast, autocast_dtype, pick_device, tune_malloc
from .instances import CORE, core_rim_task, fragment_sizes, instances_from_probs
from .model import UniverSeg
from .options import CHOOSING, MAX_ITEMS, METHODS, MODES, SEGMENTING, PredictOptions
from .pixel_classifier import FeatureCache
from .plausibility import classes_problem
from .preprocess import blank_problem, check_image, check_size, label_dtype, normalize, resize, to_grey
from .support import Example, SupportSet, content_key, ensemble_subsets, plan_task

__all__ = ["MODES", "Plan", "PredictOptions", "Segmenter", "SlicePrediction", "candidate_plans", "choose_plan", "object_thickness"]

MAX_CROPS_PER_EXAMPLE = 8  # more crops of one image add time, little information
TENSOR_CACHE_BYTES = 256 << 20  # examples' normalised tensors kept between calls
PLANS_KEPT = 8  # chosen plans kept (each holds a fitted classifier of a few MB)
TILE_OVERLAP = 0.25  # of a tile, shared with its neighbours; their blend hides the seams
# A preview's cost does not grow with the examples: this many support items at most, from the
# newest examples, and tiles without overlap. On the EM stack (512 px, tiles at scale 0.5, 2-4
# examples) a slice's UniverSeg part then takes 0.75 s instead of 5-9 s on a 2-core CPU without
# AVX-512, for 0.011-0.013 less Dice; the final result follows at full cost.
PREVIEW_SUPPORT = 4


@dataclass
class SlicePrediction:
    """The result for one slice: labels, the probability of the chosen class, and the plan used."""

    index: int
    labels: np.ndarray  # (H, W) uint16/uint8 class labels; int32 objects 1..K with task "instances"
    probability: np.ndarray  # (H, W) float32: probability of the chosen class (max over classes; instances: of any object)
    plan: Plan | None = None  # how the model saw the image (what "auto" chose)
    note: str = ""  # why the slice was left empty (a blank slice), for the user
    preview: bool = False  # a fast first result: the same slice comes again, refined (iter_predict)
    model: str = ""  # which model UniverSeg ran with, in words ("" where no adaptation applies; model_words)


def _window(size: int) -> torch.Tensor:
    """Blending weights for overlapping tiles: high in the middle, small but positive at the edges."""
    ramp = torch.sin(torch.linspace(0, math.pi, size + 2)[1:-1]) + 1e-3
    return ramp[:, None] * ramp[None, :]


def _tile_starts(length: int, tile: int, overlap: float = TILE_OVERLAP) -> list[int]:
    if length <= tile:
        return [0]
    step = max(1, int(tile * (1 - overlap)))
    starts = list(range(0, length - tile, step)) + [length - tile]
    return sorted(set(starts))


class Segmenter(AdaptedModels):
    """The engine: a model on a device, and the preprocessing around it; which model UniverSeg
    runs with (shipped or adapted to the examples) is AdaptedModels' part."""

    def __init__(self, model: UniverSeg, device: str | torch.device | None = None, precision: str = "auto", size: int = 128):
        tune_malloc()
        self.device = pick_device(device) if not isinstance(device, torch.device) else device
        # channels-last weights let oneDNN/cuDNN pick their fast NHWC kernels (1.7x on this CPU)
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()
        self.dtype = autocast_dtype(self.device, precision)
        if size % model.divisor:
            raise ValueError(f"model size {size} must be divisible by {model.divisor}")
        self.size = size
        self.weights_info = None  # set by from_weights
        # "auto" plans chosen by leave-one-out, per support set: (plan, options key, example keys)
        self._plans: dict[str, tuple[Plan, str, frozenset[str]]] = {}
        self.features = FeatureCache(512 << 20)  # pixel-classifier features of images seen, by content
        # The last adaptation: (view key, example keys, Adaptation); one is kept, models are large
        self._adapted: tuple[str, frozenset[str], Adaptation] | None = None
        self._tensors: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()  # _example_tensors
        self._tensor_bytes = 0
        # A plan may be chosen in the background (prepare) while a run makes its preview: the
        # caches are shared between threads, and one choice at a time is made (the other waits).
        self._cache_lock = threading.Lock()
        self._choosing = threading.Lock()
        self._adapting = threading.Lock()  # likewise, one adaptation at a time

    def forget_plans(self) -> None:
        """Drop the chosen plans and the last adaptation: the next call chooses (and adapts) anew
        even for a support set that grew from an earlier one (for independent tasks, such as the
        runs of the evaluation protocol)."""
        self._plans.clear()
        self._adapted = None

    @classmethod
    def from_weights(cls, weights: str = "default", device: str | None = None, precision: str = "auto", allow_download: bool = False) -> Segmenter:
        """A Segmenter with weights by name ("default", "official") or path, on ``device``."""
        from .weights import load_weights

        model, info = load_weights(weights, allow_download=allow_download)
        seg = cls(model, device, precision)
        seg.weights_info = info
        return seg

    @property
    def precision(self) -> str:
        """ "bf16" or "fp32": what the model computes in on this device."""
        return "bf16" if self.dtype is not None else "fp32"

    # -- tensors ------------------------------------------------------------------------------
    def _image_tensor(self, image: np.ndarray, scale: float | None) -> torch.Tensor:
        """(1, 1, h, w) normalised image, resized to the model size (scale None) or rescaled."""
        t = torch.from_numpy(normalize(image))[None, None]
        if scale is None:
            return resize(t, (self.size, self.size))
        return resize(t, _scaled(t.shape[-2:], scale)) if scale != 1 else t

    def _mask_tensor(self, mask: np.ndarray, scale: float | None) -> torch.Tensor:
        t = torch.from_numpy(mask.astype(np.float32))[None, None]
        if scale is None:
            return resize(t, (self.size, self.size), nearest=True)
        return resize(t, _scaled(t.shape[-2:], scale), nearest=True) if scale != 1 else t

    def _example_tensors(self, example: Example, scale: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The example's image and mask tensors in a view, cached by content: "auto" uses each
        example once per held-out example and view, and normalising a large image costs more
        than hashing it."""
        key = content_key([example], scale)
        with self._cache_lock:
            if key in self._tensors:
                self._tensors.move_to_end(key)
                return self._tensors[key]
        pair = self._image_tensor(example.image.astype(np.float32), scale), self._mask_tensor(example.mask, scale)
        with self._cache_lock:
            if key not in self._tensors:
                self._tensors[key] = pair
                self._tensor_bytes += sum(t.nbytes for t in pair)
            while self._tensor_bytes > TENSOR_CACHE_BYTES and len(self._tensors) > 1:
                self._tensor_bytes -= sum(t.nbytes for t in self._tensors.popitem(last=False)[1])
        return pair

    def _support_tensors(self, examples: Sequence[Example], classes: Sequence[int], plan: Plan, options: PredictOptions):
        """Per class: a list (one per ensemble member) of (images, masks) of shape (1, S, 1, size, size)."""
        scale = None if plan.mode == "resize" else plan.scale
        subsets = ensemble_subsets(len(examples), options)
        used = sorted(set(np.concatenate(subsets).tolist()))  # only these examples are prepared
        tensors = {i: self._example_tensors(examples[i], scale) for i in used}
        images, labels = {i: t[0] for i, t in tensors.items()}, {i: t[1] for i, t in tensors.items()}
        out = {}
        rng = np.random.default_rng(options.seed)
        for c in classes:
            members = []
            for idx in subsets:
                imgs, masks = [], []
                for i in idx:
                    if plan.mode == "resize":
                        imgs.append(images[i])
                        masks.append((labels[i] == c).float())
                    else:
                        n_crops = min(MAX_CROPS_PER_EXAMPLE, max(1, options.support_size // len(idx)))
                        for ci, cm in crops(images[i], labels[i] == c, self.size, n_crops, rng):
                            imgs.append(ci)
                            masks.append(cm.float())
                imgs, masks = imgs[: options.support_size], masks[: options.support_size]
                members.append((torch.cat(imgs)[None].to(self.device), torch.cat(masks)[None].to(self.device)))
            out[c] = members
        return out

    def _autocast(self):
        return autocast(self.device, self.dtype)

    def _forward(self, model: UniverSeg, queries: torch.Tensor, features: torch.Tensor, items: int) -> torch.Tensor:
        with torch.inference_mode(), self._autocast():
            return torch.sigmoid(model(queries.to(self.device), support_features=features, chunk=items).float()).cpu()

    def _items(self, options: PredictOptions) -> int:
        """Query x support items a pass computes at once (the memory budget, options.MAX_ITEMS)."""
        return options.max_items or MAX_ITEMS["cpu" if self.device.type == "cpu" else "gpu"]

    def _query_batches(self, support_items: int, options: PredictOptions) -> int:
        return max(1, self._items(options) // max(1, support_items))

    def iter_predict(
        self,
        support: SupportSet,
        images: Sequence[np.ndarray] | np.ndarray,
        options: PredictOptions | None = None,
        indices: Sequence[int] | None = None,
        channel: int | None = None,
        cancel: Callable[[], bool] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        preview: bool = False,
    ) -> Iterator[SlicePrediction]:
        """Yield one SlicePrediction per query slice as soon as it is done.

        ``images``: a sequence of 2D (or RGB/multichannel) slices, or a (N, H, W) stack; with
        ``indices`` only those slices are read (dask arrays stay lazy). ``cancel`` is checked
        between batches; when it returns True the iteration stops. ``progress(phase, done, total)``
        reports the choice of "auto" and adaptation (options.CHOOSING, ADAPTING) and each final
        slice (SEGMENTING). With ``preview`` (interactive use), when "auto" has not
        chosen its plan for these examples yet or the model is still to be adapted to them, the
        first slice comes at once (``preview=True``: with the plan and adaptation at hand, at a
        preview's cost, PREVIEW_SUPPORT), then again with the chosen plan and adapted model.
        """
        results = self._iter_predict(support, images, options, indices, channel, cancel, preview, progress)
        total = len(images) if indices is None else len(indices)
        done = 0
        for pred in results:
            done += not pred.preview
            if progress is not None and not pred.preview:
                progress(SEGMENTING, done, total)
            yield pred

    def _iter_predict(self, support, images, options, indices, channel, cancel, preview, progress) -> Iterator[SlicePrediction]:
        options = options or PredictOptions()
        options.validate()
        if not support.enabled():
            raise ValueError("the support set has no (enabled) examples: add at least one labelled example")
        if options.task == "instances":
            yield from self._iter_instances(support, images, options, indices, channel, cancel, progress)
            return
        classes = self._classes(support, options)
        indices = list(range(len(images))) if indices is None else list(indices)
        if not indices:
            return
        blank: dict[int, str] = {}  # slices with nothing to segment -> why; they come out empty
        first_index = indices[0]
        first = self._read_query(images, first_index, channel, blank)
        plan = self.plan(support, first.shape, options, cancel, preview or len(indices) > 1, preview, progress)
        if plan is None:  # cancelled while choosing
            return
        examples = support.enabled()

        def read(i: int) -> np.ndarray:
            return first if i == first_index else self._read_query(images, i, channel, blank)

        # With a preview, the first result comes with what is at hand (a provisional plan, the last
        # adaptation of a set these examples grew from), the rest with the chosen plan and the
        # model adapted to these examples.
        waits = preview and self._adaptation_pending(examples, classes, plan, options)
        if plan.provisional or waits:
            quick = list(self._predict_with(plan, examples, classes, options, indices[:1], read, cancel, blank, progress, preview))
            yield from (replace(pred, preview=preview) for pred in quick)
            if plan.provisional:
                plan = self.plan(support, first.shape, options, cancel, provisional=False, progress=progress)
            if plan is None or not quick:  # cancelled
                return
            if not preview:  # the provisional result stands (a grown set's previous plan)
                indices = indices[1:]
        yield from self._predict_with(plan, examples, classes, options, indices, read, cancel, blank, progress)

    def _read_query(self, images, i: int, channel: int | None, blank: dict[int, str]) -> np.ndarray:
        """A query slice as a 2D image; a blank one (constant, NaN) is noted in ``blank`` and
        replaced by zeros, so that one bad slice does not stop a stack."""
        im = to_grey(np.asarray(images[i]), channel, what=f"slice {i}")
        check_size(im, what=f"slice {i}")
        problem = blank_problem(im)
        if problem is None:
            return im
        blank[i] = f"slice {i} {problem}; it was left empty"
        return np.zeros(im.shape, np.float32)

    def _predict_with(
        self, plan: Plan, examples, classes, options, indices, read, cancel, blank, progress=None, preview: bool = False
    ) -> Iterator[SlicePrediction]:
        words = None  # known once the first slice is done (after any adaptation)
        for i, image, p in self._probs_with(plan, examples, classes, options, indices, read, cancel, progress, preview):
            if words is None:
                words = self.model_words(examples, classes, plan, options)
            if i in blank:
                yield SlicePrediction(
                    i, np.zeros(image.shape, label_dtype(max(classes))), np.zeros(image.shape, np.float32), plan, blank[i], model=words
                )
                continue
            yield replace(self._combine(i, p, classes, options.threshold, plan), model=words)

    def model_words(self, examples: Sequence[Example], classes: Sequence[int], plan: Plan, options: PredictOptions) -> str:
        """Which model UniverSeg runs with for these examples and plan, for the status line:
        "model adapted to your 3 examples", or why the shipped one runs although the run adapts
        ("" where no adaptation applies or none has been made yet)."""
        if not plan.uses_universeg or not self.adapts(examples, classes, options):
            return ""
        view, members = self._adaptation_key(examples, classes, plan, options)
        last = self._grown_from(view, members)
        if last is None:
            return ""
        if self._chosen(last[2], options) is self.model:
            return "shipped model: the adapted one did worse on the slices it was tested on"
        first = "first " if len(last[1]) < len(members) else ""
        return f"model adapted to your {first}{len(last[1])} example{'s' if len(last[1]) > 1 else ''}"

    def _probs_with(
        self, plan: Plan, examples, classes, options, indices, read, cancel, progress=None, preview: bool = False
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(index, image, (C, H, W) float32 probabilities) per query slice, by the plan's method
        (UniverSeg with the model adapted_model gives). A ``preview`` does not train (it takes the
        last adaptation) and computes UniverSeg at a preview's cost (PREVIEW_SUPPORT)."""
        if plan.uses_universeg:
            model = self.adapted_model(examples, classes, plan, options, cancel, progress, train=not preview)
            if model is None:  # cancelled while adapting
                return
            probs = self._iter_universeg_probs(examples, classes, plan, options, indices, read, cancel, model, preview)
        else:
            probs = ((i, read(i), None) for i in indices if cancel is None or not cancel())
        for i, image, p in probs:
            if plan.uses_classifier:
                q = classifier_probs(plan.classifier, image, classes, self.features)
                p = q if p is None else (p + q) / 2
            yield i, image, p

    def _iter_instances(self, support, images, options, indices, channel, cancel, progress) -> Iterator[SlicePrediction]:
        """Task "instances": the foreground (every painted object) is segmented as one class with the
        plan chosen for it, the objects' cores (instances.py) as another with the same view; the cores
        seed a watershed over the foreground. Each slice's objects are numbered 1..K."""
        examples = support.enabled()
        tasks = [core_rim_task(ex.mask) for ex in examples]
        fg_support, fg_options = plan_task(support, options)
        fg = fg_support.enabled()
        cores = [Example(ex.image, (task == CORE).astype(np.int32), ex.source, True, ex.meta) for ex, task in zip(examples, tasks)]
        min_seed, min_size = fragment_sizes([ex.mask for ex in examples], tasks)
        indices = list(range(len(images))) if indices is None else list(indices)
        if not indices:
            return
        blank: dict[int, str] = {}
        pending: dict[int, list] = {}  # slice -> [image, reads left]: each slice is read once for both tasks

        def read(i: int, count: bool = True) -> np.ndarray:
            entry = pending.setdefault(i, [None, 2])
            if entry[0] is None:
                entry[0] = self._read_query(images, i, channel, blank)
            entry[1] -= count
            if entry[1] == 0:
                del pending[i]
            return entry[0]

        plan = self.plan(fg_support, read(indices[0], count=False).shape, fg_options, cancel, provisional=False, progress=progress)
        if plan is None:
            return
        core_plan = replace(plan, provisional=False)
        if plan.uses_classifier:
            core_plan.classifier = fit_classifier(cores, [1], self.features, options.seed)
        fg_probs = self._probs_with(plan, fg, [1], fg_options, indices, read, cancel)
        core_probs = self._probs_with(core_plan, cores, [1], fg_options, indices, read, cancel)
        for (i, image, p_fg), (_, _, p_core) in zip(fg_probs, core_probs):
            if i in blank:
                yield SlicePrediction(i, np.zeros(image.shape, np.int32), np.zeros(image.shape, np.float32), plan, blank[i])
                continue
            labels = instances_from_probs(p_fg[0], p_core[0], options.threshold, min_seed, min_size)
            yield SlicePrediction(i, labels, p_fg[0].astype(np.float32), plan)

    @staticmethod
    def _classes(support: SupportSet, options: PredictOptions) -> list[int]:
        """The label values to segment: the options' (each must occur in a mask), or all present."""
        present = support.classes()
        if not options.classes:
            problem = classes_problem(present, options.task)
            if problem is not None:
                raise ValueError(problem)
            return present or [1]  # only empty masks: a valid (if unhelpful) binary task
        missing = set(options.classes) - set(present) - {1}
        if missing:
            raise ValueError(f"class(es) {sorted(missing)} do not occur in any support mask")
        return list(options.classes)

    def _iter_universeg_probs(self, examples, classes, plan, options, indices, read, cancel, model=None, preview: bool = False):
        """(index, image, (C, H, W) float32 probabilities) per query slice, with UniverSeg (``model``,
        or the Segmenter's); a ``preview`` with at most PREVIEW_SUPPORT support items from the newest
        examples (the one just accepted is last), one member and tiles without overlap."""
        model = model or self.model
        overlap = TILE_OVERLAP
        if preview:
            examples = examples[-PREVIEW_SUPPORT:]
            options, overlap = replace(options, support_size=min(options.support_size, PREVIEW_SUPPORT), ensemble=1), 0.0
        members = self._support_tensors(examples, classes, plan, options)
        # The support-only first-block term, computed once and reused for every batch.
        with torch.inference_mode(), self._autocast():
            features = {c: [model.support_features(si, sm) for si, sm in ms] for c, ms in members.items()}
        s_items = max(f.shape[1] for fs in features.values() for f in fs)
        if plan.mode == "resize":
            batch = self._query_batches(s_items, options)
            for start in range(0, len(indices), batch):
                if cancel is not None and cancel():
                    return
                chunk = indices[start : start + batch]
                imgs = [read(i) for i in chunk]
                q = torch.cat([self._image_tensor(im, None) for im in imgs])
                probs = self._class_probs(model, q, features, self._items(options))  # (C, B, 1, size, size)
                for j, (i, im) in enumerate(zip(chunk, imgs)):
                    yield i, im, resize(probs[:, j], im.shape, nearest=False)[:, 0].numpy()
        else:
            for i in indices:
                if cancel is not None and cancel():
                    return
                im = read(i)
                p = self._tiled_probs(model, im, plan.scale, features, s_items, options, cancel, overlap)
                if p is None:
                    return
                yield i, im, p

    def universeg_probs(
        self,
        examples: Sequence[Example],
        image: np.ndarray,
        plan: Plan,
        classes: Sequence[int],
        options: PredictOptions,
        model: UniverSeg | None = None,
    ) -> np.ndarray:
        """(C, H, W) float32 UniverSeg probabilities of ``classes`` for one 2D image, with
        ``model`` (default: the Segmenter's)."""
        image = self._read([image], 0, None)
        ((_, _, p),) = self._iter_universeg_probs(list(examples), classes, plan, replace(options, ensemble=1), [0], lambda i: image, None, model)
        return p

    def run_model(self, support: SupportSet, plan: Plan, options: PredictOptions) -> UniverSeg:
        """The model a run of ``options`` on these examples uses with ``plan`` once ``prepare`` has
        made it: the adapted copy where the run adapts, else the Segmenter's own."""
        support, options = plan_task(support, options)
        if not plan.uses_universeg:
            return self.model
        return self.adapted_model(support.enabled(), self._classes(support, options), plan, options, train=False)

    def plan(
        self,
        support: SupportSet,
        query_shape: tuple[int, int],
        options: PredictOptions,
        cancel: Callable[[], bool] | None = None,
        provisional: bool = True,
        quick: bool = False,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> Plan | None:
        """How images of query_shape will be segmented (cached per support set and options).

        With mode "auto", the view (and with method "auto" also the method) is chosen by
        leave-one-out on the examples (choice.validated_plan), which also gives the accuracy
        estimate. A support set that grew from one with a choice keeps that choice, with the
        pixel classifier fitted anew, until it has twice the examples the choice was made on:
        the annotation loop adds one example per round, and choosing again each time would cost
        far more than the round, while choosing at 1, 2, 4, 8... examples costs at most twice the
        last choice in all. Choosing again keeps the view the model is adapted in
        (``_adapted_view``). With ``provisional``, a grown set first gets the previous plan as it
        was (classifier included), marked ``provisional``: iter_predict makes the first result
        with it, then calls again with ``provisional=False`` for the rest, so the slice the user
        looks at after an accept comes without waiting for the update. With ``quick`` too, a set
        with nothing to carry over gets UniverSeg on the resized image, marked ``provisional``.
        One choice is made at a time: a call that needs one waits for a choice in progress in
        another thread (``prepare``) and takes its result. ``progress(CHOOSING, done, total)`` while
        choosing. None if ``cancel`` returned True."""
        examples = support.enabled()
        if options.plan_is_given():
            return choose_plan(examples, query_shape, self.size, options.mode, options.scale)
        context = content_key([], (query_shape, replace(options, adapt=False)))
        members = frozenset(content_key([ex], None) for ex in examples)
        key = content_key(examples, context)
        cached = self._cached_plan(key)
        if cached is not None:
            return cached
        # Only a choice made by "auto" carries over (a given mode has nothing to choose).
        with self._cache_lock:
            earlier = [(len(m), p) for p, c, m in self._plans.values() if c == context and m < members] if options.mode == "auto" else []
        grown = replace(max(earlier, key=lambda e: e[0])[1]) if earlier else None  # the largest set it grew from
        if grown is not None and provisional:
            grown.provisional = True  # as it was, classifier included (UniverSeg sees the new examples)
            return grown
        if quick and options.mode == "auto" and options.method != "pixels":
            return Plan("resize", method="universeg", examples=len(examples), provisional=True)
        with self._choosing:
            cached = self._cached_plan(key)  # chosen meanwhile by another thread
            if cached is not None:
                return cached
            plan = self._choose(examples, query_shape, options, self._classes(support, options), grown, cancel, progress)
            if plan is None:
                return None
            with self._cache_lock:
                self._plans[key] = (plan, context, members)
                while len(self._plans) > PLANS_KEPT:
                    self._plans.pop(next(iter(self._plans)))
        return plan

    def _cached_plan(self, key: str) -> Plan | None:
        with self._cache_lock:
            if key in self._plans:
                self._plans[key] = self._plans.pop(key)  # most recently used last
                return self._plans[key][0]
        return None

    def _choose(self, examples, query_shape, options: PredictOptions, classes, grown: Plan | None, cancel, progress) -> Plan | None:
        """Segmenter.plan's choice when nothing is cached: ``grown`` (the plan of a set these
        examples grew from) with its classifier refitted, or a new choice."""
        if grown is not None and len(examples) < 2 * grown.examples:
            plan = self._tested_view(grown, examples, classes, options, cancel, progress)
            if plan is None:
                return None
            plan.provisional = False
            if plan.uses_classifier:
                plan.classifier = fit_classifier(examples, classes, self.features, options.seed)
        elif options.mode == "auto":
            methods = METHODS if options.method == "auto" else (options.method,)
            kept = self._adapted_view(grown, examples, classes, options)
            plan = validated_plan(
                examples,
                query_shape,
                self.size,
                classes,
                lambda exs, image, view: self.universeg_probs(exs, image, view, classes, options),
                self.features,
                methods,
                options.threshold,
                options.seed,
                cancel,
                None if progress is None else lambda done, total: progress(CHOOSING, done, total),
                view=kept,
            )
            if plan is None:
                return None
        else:  # a given method (with a given view, where it uses UniverSeg)
            view = choose_plan(examples, query_shape, self.size, options.mode, options.scale)
            plan = Plan(view.mode, view.scale, options.method, examples=len(examples))
            plan.classifier = fit_classifier(examples, classes, self.features, options.seed)
        return plan

    def prepare(
        self,
        support: SupportSet,
        query_shape: tuple[int, int],
        options: PredictOptions,
        cancel: Callable[[], bool] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> Plan | None:
        """Choose (and cache) the plan that a run of these examples on images of ``query_shape``
        (H, W) will use, and adapt the model to them where the run would, e.g. in the background
        while the user paints; None if cancelled."""
        options.validate()
        if not support.enabled():
            return None
        support, options = plan_task(support, options)  # instances: the objects' union decides (_iter_instances)
        plan = self.plan(support, query_shape, options, cancel, provisional=False, progress=progress)
        if plan is not None and plan.uses_universeg:
            classes = self._classes(support, options)
            if self.adapted_model(support.enabled(), classes, plan, options, cancel, progress) is None:
                return None
        return plan

    def _read(self, images, i: int, channel: int | None) -> np.ndarray:
        im = to_grey(np.asarray(images[i]), channel, what=f"slice {i}")
        check_image(im, what=f"slice {i}")
        return im

    def _class_probs(self, model: UniverSeg, q: torch.Tensor, features: dict, items: int) -> torch.Tensor:
        """Mean probability over ensemble members, per class: (C, B, 1, h, w)."""
        return torch.stack([torch.stack([self._forward(model, q, f, items) for f in fs]).mean(0) for fs in features.values()])

    def _tiled_probs(self, model, image, scale, features, s_items, options, cancel, overlap: float = TILE_OVERLAP) -> np.ndarray | None:
        t = self._image_tensor(image, scale)  # (1, 1, h, w)
        h, w = t.shape[-2:]
        padded = pad_to(t, self.size)
        H, W = padded.shape[-2:]
        ys, xs = _tile_starts(H, self.size, overlap), _tile_starts(W, self.size, overlap)
        coords = [(y, x) for y in ys for x in xs]
        win = _window(self.size)
        acc = torch.zeros(len(features), H, W)
        norm = torch.zeros(H, W)
        batch = self._query_batches(s_items, options)
        for start in range(0, len(coords), batch):
            if start and cancel is not None and cancel():
                return None
            chunk = coords[start : start + batch]
            q = torch.cat([padded[..., y : y + self.size, x : x + self.size] for y, x in chunk])
            probs = self._class_probs(model, q, features, self._items(options))[:, :, 0]  # (C, B, size, size)
            for j, (y, x) in enumerate(chunk):
                acc[:, y : y + self.size, x : x + self.size] += probs[:, j] * win
                norm[y : y + self.size, x : x + self.size] += win
        p = (acc / norm)[:, :h, :w]
        return resize(p[:, None], image.shape)[:, 0].numpy()

    @staticmethod
    def _combine(index: int, probs: np.ndarray, classes: Sequence[int], threshold: float, plan: Plan | None = None) -> SlicePrediction:
        dtype = label_dtype(max(classes))
        labels = labels_from_probs(probs, classes, threshold).astype(dtype)
        return SlicePrediction(index, labels, probs.max(0).astype(np.float32), plan)

    def predict(self, support: SupportSet, images, options: PredictOptions | None = None, **kwargs) -> list[SlicePrediction]:
        """The final results of ``iter_predict`` as a list (same arguments; previews left out)."""
        return [p for p in self.iter_predict(support, images, options, **kwargs) if not p.preview]


def _scaled(shape, scale: float) -> tuple[int, int]:
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def make_universeg_method(
    weights: str = "default",
    model: UniverSeg | None = None,
    device: str | None = None,
    precision: str = "auto",
    progress: Callable[[str, int, int], None] | None = None,
    **options,
):
    """A PredictFn for the evaluation protocol (see evaluate.py). After each call its ``plan``
    attribute holds the plan used (with auto's held-out estimate). ``progress`` as in iter_predict."""
    seg = Segmenter(model, device, precision) if model is not None else Segmenter.from_weights(weights, device, precision)
    opts = PredictOptions(**options)

    def predict(support_images, support_masks, query_images):
        seg.forget_plans()  # each call is a task of its own
        support = SupportSet()
        instances = opts.task == "instances"  # masks and results are instance labels
        for i, (im, m) in enumerate(zip(support_images, support_masks)):
            support.add(im, m if instances else (m > 0).astype(np.uint8), source=f"support {i}")
        preds = list(seg.iter_predict(support, query_images, opts, progress=progress))
        predict.plan = preds[0].plan if preds else None
        return [p.labels if instances else p.labels > 0 for p in preds]

    predict.plan = None
    return predict
