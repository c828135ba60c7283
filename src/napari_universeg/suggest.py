"""Which slice to paint next: the one whose correction teaches the model the most.

A slice's score is the expected fraction of its pixels that are labelled wrongly, if the model's
probabilities were right: the mean of 1 - p over the pixels labelled foreground and of p over the
rest. Painting a slice and accepting it corrects about that many pixels, so the slice with the
highest score is the one whose correction gives the model the most new evidence. With the blend,
pixels where UniverSeg and the pixel classifier disagree get probabilities near 1/2, so their
disagreement counts too.

Not the slice with the lowest expected Dice (the earlier rule): Dice divides by the size of the
objects, so that ranked slices with a few small, unsure objects first, and they taught the model
the least (README, the annotation loop).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)


def expected_errors(labels: np.ndarray, probability: np.ndarray) -> float:
    """The expected fraction of wrongly labelled pixels of a result, in [0, 1].

    labels: (H, W) ints, > 0 where something was found; probability: (H, W) float, the
    probability of the most probable class (as in SlicePrediction; for one class, the
    foreground's). 0.0 for a certain result, 0.5 where every pixel sits at p = 1/2.
    """
    found = np.asarray(labels) > 0
    p = np.asarray(probability, np.float64)
    return float(np.where(found, 1.0 - p, p).mean()) if p.size else 0.0


def next_slice(scores: Mapping[K, float], painted: Iterable[K]) -> K | None:
    """The slice with the most expected errors that is not painted yet; None if there is none."""
    painted = set(painted)
    open_ = {k: v for k, v in scores.items() if k not in painted}
    return max(open_, key=open_.get) if open_ else None
