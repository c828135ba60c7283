"""Instances: objects painted each with its own label value, segmented as separate objects.

A painted instance image gives two binary tasks that the in-context model and the pixel classifier
learn like any other: the foreground (every object), and the cores of the objects (their pixels
deeper than CORE_DEPTH of the object's own inscribed radius). The cores of touching objects are
kept apart by their rims, so the cores predicted on a query separate its objects; a seeded
watershed then grows each core over the predicted foreground. Because the core is relative to each
object's size, the task looks the same at any image scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

CORE, RIM = 1, 2
CORE_DEPTH = 0.4  # share of an object's inscribed radius that is rim
# A predicted core, or object, smaller than this share of the smallest painted one is a fragment:
# the painted objects show the scale of the objects wanted.
MIN_SHARE = 0.1


def core_rim_task(instances: np.ndarray) -> np.ndarray:
    """(H, W) uint8 {0, CORE, RIM} from (H, W) instance labels (0 = background, any values).

    Every object keeps a non-empty core (at least its deepest pixels), however small it is.
    """
    instances = np.asarray(instances)
    out = np.zeros(instances.shape, np.uint8)
    for value, box in enumerate(ndi.find_objects(instances.astype(np.int64, copy=False)), start=1):
        if box is None:
            continue
        box = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in box)  # a border: depth 1 at the edge
        obj = instances[box] == value
        depth = ndi.distance_transform_edt(np.pad(obj, 1))[1:-1, 1:-1]
        core = depth > CORE_DEPTH * depth.max()
        out[box][obj] = RIM
        out[box][core & obj] = CORE
    return out


def fragment_sizes(masks: Sequence[np.ndarray], tasks: Sequence[np.ndarray]) -> tuple[int, int]:
    """(min_seed, min_size) for instances_from_probs: MIN_SHARE of the smallest painted core and
    of the smallest painted object of ``masks`` ((H, W) instance labels, with their core_rim_task
    ``tasks``); 1 without objects."""
    cores, objects = [], []
    for mask, task in zip(masks, tasks):
        labels = np.asarray(mask).astype(np.int64, copy=False)
        cores += [c for c in np.bincount(labels[task == CORE].ravel())[1:] if c]
        objects += [c for c in np.bincount(labels.ravel())[1:] if c]
    return tuple(max(1, int(MIN_SHARE * min(sizes, default=0))) for sizes in (cores, objects))


def instances_from_probs(p_fg: np.ndarray, p_core: np.ndarray, threshold: float = 0.5, min_seed: int = 1, min_size: int = 1) -> np.ndarray:
    """(H, W) int32 objects 1..K from (H, W) float probabilities of the foreground and of cores.

    Seeds are the connected regions of at least ``min_seed`` px where the core probability passes
    0.5 inside the foreground (probability above ``threshold``); each grows over its part of the
    foreground by a watershed on the core probability. Foreground that no seed reaches keeps its
    connected regions as objects, so without cores the result is the foreground's components.
    Objects under ``min_size`` px are dropped.
    """
    from skimage.segmentation import watershed

    p_core = np.asarray(p_core, np.float32)
    fg = np.asarray(p_fg) > threshold
    seeds, n = ndi.label((p_core > 0.5) & fg)
    if n and min_seed > 1:
        keep = np.bincount(seeds.ravel()) >= min_seed
        keep[0] = False
        seeds = np.where(keep[seeds], seeds, 0)
    labels = watershed(-p_core, markers=seeds, mask=fg) if seeds.any() else np.zeros(fg.shape, np.int64)
    rest, _ = ndi.label(fg & (labels == 0), structure=np.ones((3, 3)))
    labels = np.where(rest > 0, rest + labels.max(), labels)
    if min_size > 1:
        small = np.bincount(labels.ravel()) < min_size
        small[0] = False
        labels = np.where(small[labels], 0, labels)
    return _sequential(labels)


def _sequential(labels: np.ndarray) -> np.ndarray:
    values = np.unique(labels)
    values = values[values > 0]
    lut = np.zeros(int(labels.max(initial=0)) + 1, np.int32)
    lut[values] = np.arange(1, len(values) + 1, dtype=np.int32)
    return lut[labels]


def offset_ids(labels: np.ndarray, first: int) -> tuple[np.ndarray, int]:
    """Objects 1..K of one slice renumbered first..first+K-1 (background stays 0); returns them
    (int64) and the next free id, so that ids are unique across a stack."""
    labels = np.asarray(labels)
    count = int(labels.max(initial=0))
    return np.where(labels > 0, labels.astype(np.int64) + (first - 1), 0), first + count


def guess_task(masks: Sequence[np.ndarray]) -> str:
    """ "instances" when the painted masks look like objects painted each with its own value (some
    mask with 3 or more values, and at least 80 % of the values one connected blob), else "classes"."""
    blobs = values = 0
    many = False
    for mask in masks:
        mask = np.asarray(mask).astype(np.int64, copy=False)
        boxes = ndi.find_objects(np.maximum(mask, 0))
        present = [(v, box) for v, box in enumerate(boxes, start=1) if box is not None]
        many |= len(present) >= 3
        for value, box in present:
            values += 1
            blobs += ndi.label(mask[box] == value)[1] == 1
    return "instances" if many and blobs >= 0.8 * values else "classes"
