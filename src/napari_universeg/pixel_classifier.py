"""An ilastik-style pixel classifier: a random forest on multiscale intensity, edge and texture
features, trained on the pixels of the support examples.

It is one of the candidates that "auto" validates on the user's examples (see choice.py), and the
random-forest baseline of the evaluation protocol. Features are computed on images brought to at
most ``MAX_SIDE`` px across, so the cost per image is bounded whatever the image size; the
probabilities are resized back to the image.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from skimage.feature import multiscale_basic_features
from skimage.transform import resize as sk_resize

from .preprocess import MIN_SIZE

MAX_SIDE = 512  # features and the forest work on images at most this many px across
SIGMA_MAX = 16  # largest feature scale, px at the working size (sigmas 1, 2, 4, 8, 16)
N_TREES = 50  # 100 trees on 100k pixels scored within 0.01 Dice on nuclei, 3x slower
# Training pixels over all examples: 20k scored within 0.005 Dice of 50k on held-out nuclei and EM
# examples, and fits 3x faster (1.2 s against 3.9 s on 2 cores).
MAX_SAMPLES = 20_000
_PREDICT_CHUNK = 1 << 18  # rows classified at once: bounds predict_proba's temporaries


def working_shape(shape: Sequence[int], max_side: int | None = MAX_SIDE) -> tuple[int, int]:
    """(h, w) of an image of ``shape`` brought to at most ``max_side`` px across (never enlarged;
    None: full size), but no side under MIN_SIZE px: a narrow strip keeps more of its length."""
    h, w = int(shape[0]), int(shape[1])
    factor = 1.0 if max_side is None else min(1.0, max(max_side / max(h, w), MIN_SIZE / min(h, w)))
    return max(1, round(h * factor)), max(1, round(w * factor))


def pixel_features(image: np.ndarray, sigma_max: float = SIGMA_MAX) -> np.ndarray:
    """(H, W, F) float32 multiscale features of a 2D image scaled by its 1st/99th percentiles."""
    image = image.astype(np.float32)
    low, high = np.percentile(image, [1, 99])
    image = (image - low) / (high - low if high > low else 1.0)
    feats = multiscale_basic_features(image, intensity=True, edges=True, texture=True, sigma_min=1, sigma_max=sigma_max)
    return feats.astype(np.float32, copy=False)


def to_working(array: np.ndarray, shape: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """A 2D image (or (H, W, ...) stack) resized to ``shape``; labels with ``nearest``."""
    if array.shape[:2] == tuple(shape):
        return array
    if nearest:
        return sk_resize(array, shape, order=0, preserve_range=True, anti_aliasing=False).astype(array.dtype)
    return sk_resize(array.astype(np.float32), shape, order=1, preserve_range=True, anti_aliasing=True).astype(np.float32)


def from_working(probs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(C, h, w) probabilities resized (bilinear) to (C, *shape), float32."""
    if probs.shape[1:] == tuple(shape):
        return probs.astype(np.float32, copy=False)
    return np.stack([sk_resize(p, shape, order=1, preserve_range=True, anti_aliasing=False) for p in probs]).astype(np.float32)


class FeatureCache:
    """Working-size features by image content; least recently used first out, within a byte budget."""

    def __init__(self, max_bytes: int = 1 << 30, max_side: int | None = MAX_SIDE):
        self.max_bytes = max_bytes
        self.max_side = max_side
        self.items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.bytes = 0
        self._lock = threading.Lock()  # a run and a plan chosen in the background share the cache

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(h, w, F) float32 features of a 2D image at its working shape."""
        image = np.ascontiguousarray(image)
        key = (image.shape, image.dtype.str, self.max_side, hashlib.blake2b(image.data, digest_size=16).digest())
        with self._lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        feats = pixel_features(to_working(image, working_shape(image.shape, self.max_side)))
        with self._lock:
            if feats.nbytes <= self.max_bytes and key not in self.items:
                while self.bytes + feats.nbytes > self.max_bytes:
                    self.bytes -= self.items.popitem(last=False)[1].nbytes
                self.items[key] = feats
                self.bytes += feats.nbytes
        return feats


class PixelClassifier:
    """A random forest from pixel features (plus optional extra channels) to labels 0..C.

    ``fit`` takes per-example (h, w, F) features and (h, w) integer labels at the same size and
    trains on at most ``max_samples`` pixels, drawn in equal parts per example and, within an
    example, in equal parts per label where there are enough pixels, so small objects count.
    """

    def __init__(self, n_trees: int = N_TREES, max_samples: int = MAX_SAMPLES, seed: int = 0):
        self.n_trees, self.max_samples, self.seed = n_trees, max_samples, seed
        self.forest = None
        self.constant: int | None = None  # the one label seen, when there was nothing to learn

    def fit(self, features: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> PixelClassifier:
        """Train on per-example (h, w, F) float32 features and (h, w) int labels; returns self."""
        from sklearn.ensemble import RandomForestClassifier

        rng = np.random.default_rng(self.seed)
        per_image = max(1, self.max_samples // max(1, len(features)))
        xs, ys = zip(*(_sample_pixels(f, m, per_image, rng) for f, m in zip(features, labels)))
        x, y = np.concatenate(xs), np.concatenate(ys)
        present = np.unique(y)
        if present.size == 1:
            self.constant, self.forest = int(present[0]), None
            return self
        self.constant = None
        self.forest = RandomForestClassifier(n_estimators=self.n_trees, n_jobs=-1, random_state=self.seed, min_samples_leaf=2)
        self.forest.fit(x, y)
        return self

    def predict_proba(self, features: np.ndarray, classes: Sequence[int]) -> np.ndarray:
        """(C, h, w) float32 probability of each of ``classes`` for (h, w, F) features."""
        h, w = features.shape[:2]
        out = np.zeros((len(classes), h, w), np.float32)
        if self.forest is None:
            if self.constant in classes:
                out[list(classes).index(self.constant)] = 1.0
            return out
        flat = features.reshape(-1, features.shape[-1])
        proba = np.concatenate([self.forest.predict_proba(flat[i : i + _PREDICT_CHUNK]) for i in range(0, len(flat), _PREDICT_CHUNK)])
        known = list(self.forest.classes_)
        for k, c in enumerate(classes):
            if c in known:
                out[k] = proba[:, known.index(c)].reshape(h, w)
        return out


def _sample_pixels(feats: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` (features, label) rows, split evenly between the labels present."""
    flat = labels.ravel()
    values = np.unique(flat)
    chosen = []
    left = count
    for k, v in enumerate(sorted(values, key=lambda v: (flat == v).sum())):  # smallest label first
        where = np.flatnonzero(flat == v)
        take = min(where.size, left // (len(values) - k))  # unused shares pass to the larger labels
        chosen.append(rng.choice(where, take, replace=False))
        left -= take
    idx = np.concatenate(chosen)
    return feats.reshape(-1, feats.shape[-1])[idx], flat[idx]
