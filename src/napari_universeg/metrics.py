"""Overlap scores shared by the evaluation protocol and the validated choice of "auto"."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """2|P&G| / (|P|+|G|) of two binary masks of the same shape; 1.0 when both are empty."""
    p = np.asarray(pred).astype(bool)
    g = np.asarray(gt).astype(bool)
    total = int(p.sum()) + int(g.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(p, g).sum()) / total


def class_dice(labels: np.ndarray, truth: np.ndarray, classes: Sequence[int]) -> float:
    """Mean over ``classes`` of the Dice of (labels == c) and (truth == c); (H, W) int arrays."""
    return float(np.mean([dice(labels == c, truth == c) for c in classes]))
