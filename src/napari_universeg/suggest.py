"""Which slice to paint next: one whose result is likely wrong, away from the painted ones.

A slice's score is the Dice its result would have if the model's probabilities were right (the
"expected Dice" of the labels under the probabilities). It is low where many pixels sit near the
threshold relative to the size of the objects, so a slice with a few small, unsure objects ranks
as unsure as one that is uncertain everywhere, and a confidently empty slice ranks as certain.
With the blend, pixels where UniverSeg and the pixel classifier disagree get probabilities near
1/2, so their disagreement counts too.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)


def expected_dice(labels: np.ndarray, probability: np.ndarray) -> float:
    """E[Dice] of ``labels`` > 0 if each pixel were foreground with its ``probability``.

    labels: (H, W) ints; probability: (H, W) float, the probability of the most probable class
    (as in SlicePrediction; for one class, the foreground's). The ratio of expectations
    2 sum_pred p / (|pred| + sum p); 1.0 when nothing is predicted or expected.
    """
    pred = np.asarray(labels) > 0
    p = np.asarray(probability, np.float64)
    denominator = float(pred.sum()) + float(p.sum())
    return 1.0 if denominator < 1e-6 else 2.0 * float(p[pred].sum()) / denominator


def next_slice(scores: Mapping[K, float], painted: Iterable[K]) -> K | None:
    """The slice to paint next: the lowest expected Dice among the unpainted slices that are at
    least half as far from the nearest painted slice as the farthest slice is; None if none is left.

    Neighbouring sections of a stack look alike, so a slice next to a painted one teaches the
    model little that the painted one did not, however unsure its result. Keys are slice
    indices (ints or tuples of ints); distance is the sum of the index differences.
    """
    painted = list(painted)
    open_ = {k: v for k, v in scores.items() if k not in set(painted)}
    if not open_:
        return None
    if painted:
        far = {k: _distance(k, painted) for k in open_}
        reach = max(far.values())
        open_ = {k: v for k, v in open_.items() if far[k] >= reach / 2}
    return min(open_, key=open_.get)


def _distance(index: Hashable, painted: list) -> float:
    """Index distance to the nearest painted slice of the same dimensionality (inf if none)."""
    here = np.atleast_1d(np.asarray(index, float))
    others = [np.atleast_1d(np.asarray(p, float)) for p in painted]
    return min((float(np.abs(here - p).sum()) for p in others if p.shape == here.shape), default=float("inf"))
