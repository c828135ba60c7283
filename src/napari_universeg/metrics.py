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


def _overlaps(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel counts of every (truth object, predicted object) pair, and of each object: (T+1, P+1),
    (T+1,), (P+1,) with row/column 0 for the background; objects renumbered 1..T, 1..P."""
    _, t = np.unique(np.asarray(truth).ravel(), return_inverse=True)
    _, p = np.unique(np.asarray(pred).ravel(), return_inverse=True)
    # the background is value 0 where present: keep it at index 0
    t = t + (0 if np.asarray(truth).min() == 0 else 1)
    p = p + (0 if np.asarray(pred).min() == 0 else 1)
    nt, np_ = int(t.max()) + 1, int(p.max()) + 1
    inter = np.bincount(t * np_ + p, minlength=nt * np_).reshape(nt, np_)
    return inter, inter.sum(1), inter.sum(0)


def average_precision(pred: np.ndarray, truth: np.ndarray, iou: float = 0.5) -> float:
    """TP / (TP + FP + FN) of two (H, W) instance label images (0 = background), matching objects
    whose IoU exceeds ``iou`` (>= 0.5 makes matches unique), as in the Data Science Bowl 2018 and
    StarDist's evaluation; 1.0 when neither has objects."""
    inter, t_size, p_size = _overlaps(pred, truth)
    inter, t_size, p_size = inter[1:, 1:], t_size[1:], p_size[1:]
    n_t, n_p = len(t_size), len(p_size)
    if n_t + n_p == 0:
        return 1.0
    union = t_size[:, None] + p_size[None, :] - inter
    tp = int((inter > iou * union).sum()) if n_t and n_p else 0
    return tp / (n_t + n_p - tp)


def aggregated_jaccard(pred: np.ndarray, truth: np.ndarray) -> float:
    """Aggregated Jaccard index (Kumar et al. 2017) of (H, W) instance label images: each true
    object with its best-IoU predicted object, summed intersections over summed unions; true objects
    that overlap nothing and predicted objects never chosen add their areas to the unions; 1.0 when
    neither has objects."""
    inter, t_size, p_size = _overlaps(pred, truth)
    inter, t_size, p_size = inter[1:, 1:], t_size[1:], p_size[1:]
    if len(t_size) == 0:
        return 1.0 if len(p_size) == 0 else 0.0
    if len(p_size) == 0:
        return 0.0
    union = t_size[:, None] + p_size[None, :] - inter
    iou = inter / union
    best = np.argmax(iou, axis=1)
    paired = iou[np.arange(len(t_size)), best] > 0  # a true object that overlaps nothing adds its own area
    rows, cols = np.flatnonzero(paired), best[paired]
    c = inter[rows, cols].sum()
    u = union[rows, cols].sum() + t_size[~paired].sum() + p_size[np.setdiff1d(np.arange(len(p_size)), cols)].sum()
    return float(c / u)
