"""Classical few-shot baselines for the evaluation protocol (see evaluate.py).

- ``otsu_method``: Otsu threshold of each query, with the polarity (bright or dark foreground)
  that fits the support pairs best.
- ``random_forest_method``: an ilastik-style pixel classifier (pixel_classifier.py), a random
  forest on multiscale intensity, edge and texture features, trained on pixels of the support
  pairs, at full resolution by default.

Both return a ``PredictFn``: (support_images, support_masks, query_images) -> masks. For instance
labels (evaluate.py, task "instances"):

- ``watershed_method``: the classical pipeline: Otsu threshold (polarity from the support), then a
  watershed of the distance transform from its local maxima, at least half the typical radius of
  the support's objects apart.
- ``connected_components``: any semantic method's output split into its connected regions.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from .metrics import PredictFn, dice
from .pixel_classifier import N_TREES, FeatureCache, PixelClassifier, from_working, to_working


def otsu_method() -> PredictFn:
    """Otsu threshold per query; foreground is above or below it, whichever fits the support best."""

    def predict(support_images: list[np.ndarray], support_masks: list[np.ndarray], query_images: list[np.ndarray]) -> list[np.ndarray]:
        bright = _bright_foreground(support_images, support_masks)
        return [_otsu_mask(image, bright) for image in query_images]

    return predict


def _otsu_mask(image: np.ndarray, bright: bool) -> np.ndarray:
    if image.min() == image.max():
        return np.zeros(image.shape, np.uint8)
    above = image > threshold_otsu(image)
    return (above if bright else ~above).astype(np.uint8)


def _bright_foreground(images: list[np.ndarray], masks: list[np.ndarray]) -> bool:
    """Whether (image > t) fits the support masks at least as well as (image <= t), by mean Dice."""
    bright = np.mean([dice(_otsu_mask(img, True), m) for img, m in zip(images, masks)])
    dark = np.mean([dice(_otsu_mask(img, False), m) for img, m in zip(images, masks)])
    return bool(bright >= dark)


def random_forest_method(
    n_estimators: int = N_TREES,
    max_samples: int = 50_000,
    seed: int = 0,
    max_side: int | None = None,
    cache_bytes: int = 2 << 30,
) -> PredictFn:
    """Random-forest pixel classifier on multiscale features, as in ilastik.

    Each call trains a forest on up to ``max_samples`` pixels of the support pairs (the reference
    setting of the published tables) and labels a query pixel foreground where its
    probability exceeds 0.5. Features are computed on images of at most ``max_side`` px across
    (None: full resolution); up to ``cache_bytes`` of them are kept across calls, so repeated
    queries are cheap.
    """
    features = FeatureCache(cache_bytes, max_side)

    def predict(support_images: list[np.ndarray], support_masks: list[np.ndarray], query_images: list[np.ndarray]) -> list[np.ndarray]:
        feats = [features(img) for img in support_images]
        labels = [to_working((m > 0).astype(np.uint8), f.shape[:2], nearest=True) for m, f in zip(support_masks, feats)]
        forest = PixelClassifier(n_estimators, max_samples, seed).fit(feats, labels)
        return [(from_working(forest.predict_proba(features(img), [1]), img.shape[:2])[0] > 0.5).astype(np.uint8) for img in query_images]

    return predict


def connected_components(semantic: PredictFn) -> PredictFn:
    """Instances as the connected regions (8-connected) of ``semantic``'s masks; it sees the
    support masks binarised."""

    def predict(support_images: list[np.ndarray], support_masks: list[np.ndarray], query_images: list[np.ndarray]) -> list[np.ndarray]:
        masks = semantic(support_images, [(m > 0).astype(np.uint8) for m in support_masks], query_images)
        predict.plan = getattr(semantic, "plan", None)
        return [ndi.label(np.asarray(m) > 0, structure=np.ones((3, 3)))[0] for m in masks]

    predict.plan = None
    return predict


def watershed_method(smooth: float = 1.0) -> PredictFn:
    """Otsu + distance-transform watershed, with the seed spacing taken from the support objects."""
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian
    from skimage.segmentation import watershed

    def predict(support_images: list[np.ndarray], support_masks: list[np.ndarray], query_images: list[np.ndarray]) -> list[np.ndarray]:
        smoothed = [gaussian(img.astype(np.float32), smooth) for img in support_images]
        bright = _bright_foreground(smoothed, [(m > 0).astype(np.uint8) for m in support_masks])
        areas = [a for m in support_masks for a in np.bincount(np.asarray(m, np.int64).ravel())[1:] if a > 0]
        radius = float(np.sqrt(np.median(areas) / np.pi)) if areas else 5.0
        out = []
        for img in query_images:
            fg = _otsu_mask(gaussian(img.astype(np.float32), smooth), bright) > 0
            distance = ndi.distance_transform_edt(fg)
            regions, _ = ndi.label(fg)
            peaks = peak_local_max(distance, min_distance=max(1, int(radius / 2)), labels=regions, exclude_border=False)
            markers = np.zeros(fg.shape, np.int64)
            markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
            out.append(watershed(-distance, markers, mask=fg))
        return out

    return predict
