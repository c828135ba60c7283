"""Mistakes caught before any work starts: a mask that is really an image (the files swapped), an
image that is really a mask, and more classes than anyone paints.

A label mask holds a few values, or many (one per object) that each fill a patch: most labelled
pixels have a right-hand neighbour with the same value. A grey-level image has many values that
change from pixel to pixel. Reading 170 grey levels as 170 classes once ran for over 15 minutes
with 4.7 GB before anyone noticed.
"""

from __future__ import annotations

import numpy as np

SWAP_HINT = "did you swap the images and the masks (--support-images and --support-masks)?"
# Label values above which a mask must look like patches to be taken for labels (objects).
FEW_VALUES = 16
# Share of labelled pixels whose right-hand neighbour has the same value: labels 0.8-1.0 (a
# neighbour differs only at object borders); grey-level images well below (noise).
MIN_SAME_NEIGHBOUR = 0.5
SAMPLE = 512  # masks are judged on at most this many rows and columns (evenly spaced)


def _sample(a: np.ndarray) -> np.ndarray:
    """At most SAMPLE x SAMPLE pixels, every k-th row and column: the checks stay under a few ms."""
    step = max(1, -(-max(a.shape) // SAMPLE))
    return a[::step, ::step] if step > 1 else a


def mask_problem(mask: np.ndarray) -> str | None:
    """Why an integer (H, W) mask looks like an image rather than labels, or None if it does not."""
    m = _sample(np.asarray(mask))
    values = np.unique(m)
    if len(values) <= FEW_VALUES:
        return None
    labelled = m[:, :-1] != 0
    same = ((m[:, 1:] == m[:, :-1]) & labelled).sum() / max(1, labelled.sum())
    if same >= MIN_SAME_NEIGHBOUR:
        return None  # many values, each a patch: objects
    return f"its mask looks like an image, not labels ({len(values)}+ values that change from pixel to pixel)"


def image_problem(image: np.ndarray, mask: np.ndarray) -> str | None:
    """Why a (H, W) image looks like a mask (two values or fewer, while its "mask" has more), or None."""
    values = np.unique(_sample(np.asarray(image)))
    if len(values) > 2 or len(np.unique(_sample(np.asarray(mask)))) <= len(values):
        return None
    shown = " and ".join(f"{v:g}" for v in values.astype(float))
    return f"the image holds only the values {shown}: it looks like a mask, and its mask like an image"


def pair_problem(image: np.ndarray, mask: np.ndarray) -> str | None:
    """The first of mask_problem and image_problem for an example, with the likely fix."""
    problem = mask_problem(mask) or image_problem(image, mask)
    return None if problem is None else f"{problem}; {SWAP_HINT}"


MAX_CLASSES = 20  # label values of task "classes": each is its own pass over every slice


def classes_problem(classes: list[int], task: str) -> str | None:
    """Why these label values cannot be segmented as classes (too many), or None."""
    if task != "classes" or len(classes) <= MAX_CLASSES:
        return None
    return (
        f"the examples hold {len(classes)} label values, and each would be segmented as its own class "
        f"(at most {MAX_CLASSES}); if they are objects of one kind, choose the task 'instances'; "
        f"if the masks are images, {SWAP_HINT}"
    )
