"""Segmenting images and stacks from a support set.

Two ways to bring an image to the model's size (``mode``):
- "resize": the whole image is resized to size x size (global context, loses fine detail);
- "tiled": the image is rescaled by ``scale`` and the fully convolutional model runs over
  overlapping size x size tiles, blended; support examples are cropped at the same scale,
  preferring crops that contain foreground.
"auto" picks one by leave-one-out on the examples (``Segmenter.validated_plan``); "tiled" without
a scale takes it from the size of the objects in the support masks (``choose_plan``).

Labels 1..C become C binary tasks; each pixel gets the most probable class above the threshold.
Support ensembling averages probabilities over K random subsets of at most S examples.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from .device import autocast_dtype, pick_device, tune_malloc
from .model import UniverSeg
from .preprocess import check_image, normalize, resize, to_grey
from .support import Example, SupportSet

MODES = ("auto", "resize", "tiled")
MAX_CROPS_PER_EXAMPLE = 8  # more crops of one image add time, little information
MAX_HELD_OUT = 6  # examples that "auto" predicts from the others to choose the plan
MAX_TILED_SIDE = 5  # "auto" tries tiled scales up to this many model sizes across the image
TILED_MARGIN = 0.02  # Dice by which tiles must beat the (cheaper, global) resize to be chosen


@dataclass
class PredictOptions:
    support_size: int = 64  # at most this many examples per forward pass
    ensemble: int = 1  # K support subsets whose probabilities are averaged
    threshold: float = 0.5
    classes: Sequence[int] | None = None  # default: every label in the support set
    mode: str = "auto"
    scale: float | None = None  # tiled mode: image scale factor (None: automatic)
    seed: int = 0
    max_items: int = 96  # queries x support items per forward pass (bounds memory)

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.support_size < 1 or self.ensemble < 1:
            raise ValueError("support size and ensemble size must be at least 1")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        if self.scale is not None and not 0.02 <= self.scale <= 4:
            raise ValueError(f"scale must be between 0.02 and 4, got {self.scale}")


@dataclass
class SlicePrediction:
    index: int
    labels: np.ndarray  # (H, W) uint16/uint8 class labels
    probability: np.ndarray  # (H, W) float32: probability of the chosen class (max over classes)
    plan: Plan | None = None  # how the model saw the image (what "auto" chose)


@dataclass
class Plan:
    """How the model sees the images: resize everything, or tiles at a scale."""

    mode: str
    scale: float = 1.0

    def describe(self) -> str:
        return "whole image resized" if self.mode == "resize" else f"tiles at scale {self.scale:.2g}"


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


# Scaled object thickness for "tiled" without a scale: best on 3 of the 4 evaldata sets when
# this rule was "auto" (before leave-one-out; see git history of benchmarks/results/modes.md).
TARGET_THICKNESS = 6.0


def choose_plan(support: SupportSet, query_shape: tuple[int, int], size: int, options: PredictOptions) -> Plan:
    """The options' mode and scale, with a missing scale (and "auto") resolved from the support
    masks' object size. Segmenter resolves "auto" by leave-one-out instead, and falls back on this."""
    if options.mode == "resize":
        return Plan("resize")
    if options.mode == "tiled" and options.scale is not None:
        return Plan("tiled", options.scale)
    examples = support.enabled()
    thick = object_thickness([ex.mask for ex in examples])
    big = max(max(query_shape), *(max(ex.image.shape) for ex in examples))
    resize_factor = size / big
    if thick is None:  # nothing to measure: keep the global view
        return Plan("resize") if options.mode == "auto" else Plan("tiled", 1.0)
    scale = float(np.clip(TARGET_THICKNESS / thick, resize_factor, 1.0))
    if options.mode == "auto" and scale <= resize_factor * 1.5:
        return Plan("resize")
    return Plan("tiled", scale)


def candidate_plans(shapes: Sequence[tuple[int, int]], size: int) -> list[Plan]:
    """What "auto" validates: resize, and tiles at the power-of-two scales that keep the largest
    image between 1.5 and MAX_TILED_SIDE model sizes across."""
    big = max(max(s) for s in shapes)
    scales = [2.0**-k for k in range(8) if 1.5 * size < big * 2.0**-k < MAX_TILED_SIDE * size]
    return [Plan("resize")] + [Plan("tiled", s) for s in scales]


def _subsets(n: int, options: PredictOptions) -> list[np.ndarray]:
    """K index subsets of at most S of n examples (one subset if all fit)."""
    s = min(options.support_size, n)
    if s == n:
        return [np.arange(n)]
    rng = np.random.default_rng(options.seed)
    return [np.sort(rng.choice(n, s, replace=False)) for _ in range(options.ensemble)]


def _window(size: int) -> torch.Tensor:
    """Blending weights for overlapping tiles: high in the middle, small but positive at the edges."""
    ramp = torch.sin(torch.linspace(0, math.pi, size + 2)[1:-1]) + 1e-3
    return ramp[:, None] * ramp[None, :]


def _tile_starts(length: int, tile: int, overlap: float = 0.25) -> list[int]:
    if length <= tile:
        return [0]
    step = max(1, int(tile * (1 - overlap)))
    starts = list(range(0, length - tile, step)) + [length - tile]
    return sorted(set(starts))


def _pad_to(t: torch.Tensor, size: int) -> torch.Tensor:
    """Reflect-pad (N, C, H, W) at the bottom/right up to size (constant where reflection cannot)."""
    ph, pw = max(0, size - t.shape[-2]), max(0, size - t.shape[-1])
    if not ph and not pw:
        return t
    mode = "reflect" if ph < t.shape[-2] and pw < t.shape[-1] else "replicate"
    return torch.nn.functional.pad(t, (0, pw, 0, ph), mode=mode)


class Segmenter:
    """The engine: a model on a device, and the preprocessing around it."""

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
        self._plans: dict[str, Plan] = {}  # "auto" plans chosen by leave-one-out, per support set

    @classmethod
    def from_weights(cls, weights: str = "default", device: str | None = None, precision: str = "auto", allow_download: bool = False) -> "Segmenter":
        from .weights import load_weights

        model, info = load_weights(weights, allow_download=allow_download)
        seg = cls(model, device, precision)
        seg.weights_info = info
        return seg

    @property
    def precision(self) -> str:
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

    def _support_tensors(self, support: SupportSet, classes: Sequence[int], plan: Plan, options: PredictOptions):
        """Per class: a list (one per ensemble member) of (images, masks) of shape (1, S, 1, size, size)."""
        examples = support.enabled()
        scale = None if plan.mode == "resize" else plan.scale
        images = [self._image_tensor(ex.image.astype(np.float32), scale) for ex in examples]
        labels = [self._mask_tensor(ex.mask, scale) for ex in examples]
        subsets = _subsets(len(examples), options)
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
                        for ci, cm in _crops(images[i], labels[i] == c, self.size, n_crops, rng):
                            imgs.append(ci)
                            masks.append(cm.float())
                imgs, masks = imgs[: options.support_size], masks[: options.support_size]
                members.append((torch.cat(imgs)[None].to(self.device), torch.cat(masks)[None].to(self.device)))
            out[c] = members
        return out

    # -- prediction ---------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)

    def _forward(self, queries: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), self._autocast():
            return torch.sigmoid(self.model(queries.to(self.device), support_features=features).float()).cpu()

    def _query_batches(self, support_items: int, options: PredictOptions) -> int:
        return max(1, options.max_items // max(1, support_items))

    def iter_predict(
        self,
        support: SupportSet,
        images: Sequence[np.ndarray] | np.ndarray,
        options: PredictOptions | None = None,
        indices: Sequence[int] | None = None,
        channel: int | None = None,
        cancel: Callable[[], bool] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[SlicePrediction]:
        """Yield one SlicePrediction per query slice as soon as it is done.

        ``images``: a sequence of 2D (or RGB/multichannel) slices, or a (N, H, W) stack; with
        ``indices`` only those slices are read (dask arrays stay lazy). ``cancel`` is checked
        between batches; when it returns True the iteration stops. ``progress(done, total)`` is
        called after each slice.
        """
        results = self._iter_predict(support, images, options, indices, channel, cancel)
        total = len(images) if indices is None else len(indices)
        for done, pred in enumerate(results, 1):
            if progress is not None:
                progress(done, total)
            yield pred

    def _iter_predict(self, support, images, options, indices, channel, cancel) -> Iterator[SlicePrediction]:
        options = options or PredictOptions()
        options.validate()
        if not support.enabled():
            raise ValueError("the support set has no (enabled) examples: add at least one labelled example")
        classes = list(options.classes) if options.classes else support.classes()
        if not classes:
            classes = [1]  # only empty masks: a valid (if unhelpful) binary task
        missing = set(classes) - set(support.classes()) - {1}
        if missing and options.classes:
            raise ValueError(f"class(es) {sorted(missing)} do not occur in any support mask")
        indices = list(range(len(images))) if indices is None else list(indices)
        if not indices:
            return
        first = self._read(images, indices[0], channel)
        plan = self.plan(support, first.shape, options, cancel)
        if plan is None:  # cancelled while choosing
            return
        members = self._support_tensors(support, classes, plan, options)
        # The support-only first-block term, computed once and reused for every batch.
        with torch.inference_mode(), self._autocast():
            features = {c: [self.model.support_features(si, sm) for si, sm in ms] for c, ms in members.items()}
        s_items = max(f.shape[1] for fs in features.values() for f in fs)
        if plan.mode == "resize":
            batch = self._query_batches(s_items, options)
            for start in range(0, len(indices), batch):
                if cancel is not None and cancel():
                    return
                chunk = indices[start : start + batch]
                imgs = [first if i == indices[0] else self._read(images, i, channel) for i in chunk]
                q = torch.cat([self._image_tensor(im, None) for im in imgs])
                probs = self._class_probs(q, features)  # (C, B, 1, size, size)
                for j, (i, im) in enumerate(zip(chunk, imgs)):
                    p = resize(probs[:, j], im.shape, nearest=False)[:, 0].numpy()
                    yield self._combine(i, p, classes, options.threshold, plan)
        else:
            for i in indices:
                if cancel is not None and cancel():
                    return
                im = first if i == indices[0] else self._read(images, i, channel)
                p = self._tiled_probs(im, plan.scale, features, s_items, options, cancel)
                if p is None:
                    return
                yield self._combine(i, p, classes, options.threshold, plan)

    def plan(
        self, support: SupportSet, query_shape: tuple[int, int], options: PredictOptions, cancel: Callable[[], bool] | None = None
    ) -> Plan | None:
        """How images of query_shape will be shown to the model: the options' mode, with "auto"
        resolved (and cached per support set). None if ``cancel`` returned True."""
        examples = support.enabled()
        if options.mode != "auto":
            return choose_plan(support, query_shape, self.size, options)
        key = hashlib.blake2b(repr((query_shape, options.support_size, options.classes)).encode())
        for ex in examples:
            for a in (ex.image, ex.mask):
                key.update(repr((a.shape, a.dtype.str)).encode())
                key.update(np.ascontiguousarray(a).data)
        key = key.hexdigest()
        if key not in self._plans:
            plan = self.validated_plan(support, query_shape, options, cancel)
            if plan is None:
                return None
            self._plans[key] = plan
        return self._plans[key]

    def validated_plan(
        self, support: SupportSet, query_shape: tuple[int, int], options: PredictOptions, cancel: Callable[[], bool] | None = None
    ) -> Plan | None:
        """Leave-one-out on the examples: predict up to MAX_HELD_OUT of them, whole, from the
        others with each candidate plan, and keep the best by mean Dice; tiles must beat resize
        by TILED_MARGIN. A single example is cut into two halves that predict each other. This
        sees the user's images and targets, which object size alone misjudges (e.g. thin lines
        in large images, or objects that need fine detail). None if ``cancel`` returned True."""
        from .evaluate import dice

        examples = support.enabled()
        candidates = candidate_plans([query_shape] + [ex.image.shape[:2] for ex in examples], self.size)
        if len(candidates) == 1:
            return candidates[0]
        if len(examples) == 1:
            examples = _halves(examples[0])
        scores = []
        for plan in candidates:
            opts = replace(options, mode=plan.mode, scale=plan.scale if plan.mode == "tiled" else None, ensemble=1)
            dices = []
            for h in range(min(len(examples), MAX_HELD_OUT)):
                if cancel is not None and cancel():
                    return None
                rest = SupportSet([ex for i, ex in enumerate(examples) if i != h])
                try:
                    pred = next(self._iter_predict(rest, [examples[h].image], opts, None, None, None))
                except ValueError:  # e.g. a chosen class occurs only in the held-out example
                    continue
                dices.append(dice(pred.labels > 0, examples[h].mask > 0))
            if not dices:
                return choose_plan(support, query_shape, self.size, options)
            scores.append(float(np.mean(dices)) + (TILED_MARGIN if plan.mode == "resize" else 0.0))
        return candidates[int(np.argmax(scores))]

    def _read(self, images, i: int, channel: int | None) -> np.ndarray:
        im = to_grey(np.asarray(images[i]), channel, what=f"slice {i}")
        check_image(im, what=f"slice {i}")
        return im

    def _class_probs(self, q: torch.Tensor, features: dict) -> torch.Tensor:
        """Mean probability over ensemble members, per class: (C, B, 1, h, w)."""
        return torch.stack([torch.stack([self._forward(q, f) for f in fs]).mean(0) for fs in features.values()])

    def _tiled_probs(self, image, scale, features, s_items, options, cancel) -> np.ndarray | None:
        t = self._image_tensor(image, scale)  # (1, 1, h, w)
        h, w = t.shape[-2:]
        padded = _pad_to(t, self.size)
        H, W = padded.shape[-2:]
        ys, xs = _tile_starts(H, self.size), _tile_starts(W, self.size)
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
            probs = self._class_probs(q, features)[:, :, 0]  # (C, B, size, size)
            for j, (y, x) in enumerate(chunk):
                acc[:, y : y + self.size, x : x + self.size] += probs[:, j] * win
                norm[y : y + self.size, x : x + self.size] += win
        p = (acc / norm)[:, :h, :w]
        return resize(p[:, None], image.shape)[:, 0].numpy()

    @staticmethod
    def _combine(index: int, probs: np.ndarray, classes: Sequence[int], threshold: float, plan: Plan | None = None) -> SlicePrediction:
        best = probs.argmax(0)
        pmax = np.take_along_axis(probs, best[None], 0)[0]
        dtype = np.uint8 if max(classes) < 256 else np.uint16
        labels = np.where(pmax > threshold, np.asarray(classes)[best], 0).astype(dtype)
        return SlicePrediction(index, labels, pmax.astype(np.float32), plan)

    def predict(self, support: SupportSet, images, options: PredictOptions | None = None, **kwargs) -> list[SlicePrediction]:
        return list(self.iter_predict(support, images, options, **kwargs))


def _scaled(shape, scale: float) -> tuple[int, int]:
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def _halves(example: Example) -> list[Example]:
    """The example cut across its longer side into two examples."""
    axis = int(example.image.shape[1] > example.image.shape[0])
    cut = example.image.shape[axis] // 2
    parts = [np.split(a, [cut], axis=axis) for a in (example.image, example.mask)]
    return [Example(np.ascontiguousarray(im), np.ascontiguousarray(m)) for im, m in zip(*parts)]


def _crops(image: torch.Tensor, mask: torch.Tensor, size: int, n: int, rng: np.random.Generator):
    """n size x size crops of (1, 1, h, w) tensors; crop centres are foreground pixels when there are any."""
    image, mask = _pad_to(image, size), _pad_to(mask.float(), size)
    h, w = image.shape[-2:]
    fg = torch.nonzero(mask[0, 0] > 0).numpy()
    for k in range(n):
        if len(fg) and k % 4 != 3:  # mostly foreground-centred, some random for background context
            cy, cx = fg[rng.integers(len(fg))]
            y = int(np.clip(cy - size // 2 + rng.integers(-size // 4, size // 4 + 1), 0, h - size))
            x = int(np.clip(cx - size // 2 + rng.integers(-size // 4, size // 4 + 1), 0, w - size))
        else:
            y, x = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        yield image[..., y : y + size, x : x + size], mask[..., y : y + size, x : x + size] > 0


def make_universeg_method(
    weights: str = "default",
    model: UniverSeg | None = None,
    device: str | None = None,
    precision: str = "auto",
    **options,
):
    """A PredictFn for the evaluation protocol (see evaluate.py)."""
    seg = Segmenter(model, device, precision) if model is not None else Segmenter.from_weights(weights, device, precision)
    opts = PredictOptions(**options)

    def predict(support_images, support_masks, query_images):
        support = SupportSet()
        for i, (im, m) in enumerate(zip(support_images, support_masks)):
            support.add(im, (m > 0).astype(np.uint8), source=f"support {i}")
        return [p.labels > 0 for p in seg.iter_predict(support, query_images, opts)]

    return predict
