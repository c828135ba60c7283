"""Overlap scores, and the signature of a few-shot method, shared by the evaluation protocol,
its baselines and the validated choice of "auto"."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# (support_images, support_masks, query_images) -> one binary HxW mask per query.
PredictFn = Callable[[list[np.ndarray], list[np.ndarray], list[np.ndarray]], list[np.ndarray]]


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
