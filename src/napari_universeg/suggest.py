"""Which slice to paint next: the one whose correction teaches the model the most.

A slice's score is the expected fraction of its pixels that are labelled wrongly, if the model's
probabilities were right: the mean of 1 - p over the pixels labelled foreground and of p over the
rest. Painting a slice and accepting it corrects about that many pixels, so the slice with the
highest score is the one whose correction gives the model the most new evidence. With the blend,
pixels where UniverSeg and the pixel classifier disagree get probabilities near 1/2, so their
disagreement counts too.

In a stack, neighbouring slices look alike, and painting the neighbour of a painted slice shows
the model much that it has seen (the EM stack: after section 4 the rule chose 6 and 5, and trailed
random picks). So a slice's score is discounted by how alike slices are at its distance along the
stack from a painted one (the most alike), measured on the stack itself: the mean correlation of
slices that far apart in excess of a typical pair's, for as long as that excess is clear (two
standard errors) from the neighbours on (``likeness_by_distance``). A series of unrelated images
has no such excess, and its scores are not discounted.

Not the slice with the lowest expected Dice (the earlier rule): Dice divides by the size of the
objects, so that ranked slices with a few small, unsure objects first, and they taught the model
the least (README, the annotation loop).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)
# Pixels a side of the thumbnails slices are compared by: coarse enough that structures shifting by
# a few pixels from one section to the next still overlap.
THUMBNAIL = 64


def expected_errors(labels: np.ndarray, probability: np.ndarray) -> float:
    """The expected fraction of wrongly labelled pixels of a result, in [0, 1].

    labels: (H, W) ints, > 0 where something was found; probability: (H, W) float, the
    probability of the most probable class (as in SlicePrediction; for one class, the
    foreground's). 0.0 for a certain result, 0.5 where every pixel sits at p = 1/2.
    """
    found = np.asarray(labels) > 0
    p = np.asarray(probability, np.float64)
    return float(np.where(found, 1.0 - p, p).mean()) if p.size else 0.0


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A slice ((H, W), or (H, W, C) averaged over C) averaged over THUMBNAIL x THUMBNAIL blocks,
    float64, zero mean and unit variance (all zeros where it is flat)."""
    t = np.asarray(image, np.float64)
    t = t.mean(-1) if t.ndim == 3 else t
    for axis in (0, 1):  # block means; a side shorter than THUMBNAIL repeats its pixels
        starts = np.arange(THUMBNAIL) * t.shape[axis] // THUMBNAIL
        counts = np.maximum(np.diff(np.append(starts, t.shape[axis])), 1)
        t = np.add.reduceat(t, starts, axis=axis) / np.expand_dims(counts, 1 - axis)
    sd = t.std()
    return (t - t.mean()) / sd if sd > 0 else np.zeros_like(t)


def likeness_by_distance(thumbnails: Sequence[np.ndarray]) -> np.ndarray:
    """How much alike slices ``d`` apart along a stack are, beyond a typical pair: (n,) float64
    for d = 0 .. n-1, with r[0] = 1. ``thumbnails``: the slices' thumbnails in stack order.

    r[d] = (c(d) - m) / (1 - m), where c(d) is the mean correlation of the pairs d apart and m the
    median over all pairs; from d = 1 on, r[d] is kept while c(d) - m exceeds two standard errors
    of c(d), and 0 from the first d where it does not (a series of unrelated images: 0 for all d).
    """
    n = len(thumbnails)
    r = np.zeros(n)
    if n == 0:
        return r
    r[0] = 1.0
    if n < 3:
        return r
    flat = np.stack([np.ravel(t) for t in thumbnails])
    corr = flat @ flat.T / flat.shape[1]
    typical = float(np.median(corr[~np.eye(n, dtype=bool)]))
    for d in range(1, n - 1):
        pairs = np.diagonal(corr, d)
        excess = float(pairs.mean()) - typical
        if excess <= 2 * pairs.std(ddof=1) / np.sqrt(len(pairs)) or typical >= 1:
            break
        r[d] = min(1.0, excess / (1 - typical))
    return r


def next_slice(scores: Mapping[K, float], painted: Iterable[K], order: Sequence[K] = (), likeness: np.ndarray | None = None) -> K | None:
    """The slice with the most expected errors that is not painted yet; None if there is none.

    With ``order`` (the slices of a stack in order) and ``likeness`` (likeness_by_distance of
    their thumbnails), a slice's score is multiplied by 1 - r[d] for the painted slice most like
    it, d slices away; slices missing from ``order`` are not discounted.
    """
    painted = set(painted)
    open_ = {k: v for k, v in scores.items() if k not in painted}
    if likeness is not None and order:
        at = {k: i for i, k in enumerate(order)}
        marks = [at[k] for k in painted if k in at]
        for k in open_:
            if k in at and marks:
                open_[k] *= 1.0 - max(likeness[abs(at[k] - m)] for m in marks)
    return max(open_, key=open_.get) if open_ else None
