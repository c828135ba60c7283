"""Reader for support-set files (.npz): drag a saved support set onto napari.

The examples arrive as image/labels layer pairs (one stacked pair per image size); the UniverSeg
widget, when open, also loads them into its support set.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ._widget_keys import SUPPORT_METADATA
from .preprocess import label_dtype
from .support import SupportSet, is_support_file


def get_reader(path):
    if isinstance(path, list):
        path = path[0] if len(path) == 1 else None
    if path is None or not is_support_file(path):
        return None  # not ours: napari tries other readers
    return read_support


def read_support(path) -> list:
    path = path[0] if isinstance(path, list) else path
    support = SupportSet.load(path)
    groups: dict[tuple, list] = defaultdict(list)
    for ex in support:
        groups[ex.image.shape].append(ex)
    layers = []
    stem = str(path).rsplit("/", 1)[-1]
    for n, examples in enumerate(groups.values()):
        suffix = f" {n + 1}" if len(groups) > 1 else ""
        sources = [ex.source for ex in examples]
        images = np.stack([ex.image for ex in examples])
        masks = np.stack([ex.mask for ex in examples]).astype(label_dtype(max(ex.mask.max(initial=0) for ex in examples)))
        meta = {SUPPORT_METADATA: {"path": str(path), "sources": sources, "role": "image"}}
        layers.append((images, {"name": f"{stem} examples{suffix}", "metadata": meta}, "image"))
        # only the first labels layer asks the widget to load the file, so it is loaded once
        role = "labels" if n == 0 else "labels-more"
        layers.append(
            (
                masks,
                {"name": f"{stem} masks{suffix}", "metadata": {SUPPORT_METADATA: {"path": str(path), "sources": sources, "role": role}}},
                "labels",
            )
        )
    return layers
