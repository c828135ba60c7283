"""Which slice to paint next: the one whose result is most likely wrong.

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
    """The slice with the lowest expected Dice that is not painted yet; None if there is none."""
    painted = set(painted)
    open_ = {k: v for k, v in scores.items() if k not in painted}
    return min(open_, key=open_.get) if open_ else None
