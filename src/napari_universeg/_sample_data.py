"""napari sample data: File > Open Sample > napari-universeg."""

from __future__ import annotations

import numpy as np

from .sample_data import neurons, synthetic_stack

PAINTED_NEURONS = (0, 1, 2)
PAINTED_SYNTHETIC = (4, 12, 20)


def _painted(labels: np.ndarray, slices) -> np.ndarray:
    """Labels with only the given slices painted, as a user would have done."""
    painted = np.zeros_like(labels)
    painted[list(slices)] = labels[list(slices)]
    return painted


def neurons_sample() -> list:
    images, masks = neurons()
    return [
        (images, {"name": "neurons"}, "image"),
        (_painted(masks, PAINTED_NEURONS), {"name": "neurons painted"}, "labels"),
    ]


def synthetic_sample() -> list:
    image, labels = synthetic_stack()
    return [
        (image, {"name": "synthetic nuclei", "scale": (2.0, 1.0, 1.0)}, "image"),
        (_painted(labels, PAINTED_SYNTHETIC), {"name": "synthetic nuclei painted", "scale": (2.0, 1.0, 1.0)}, "labels"),
    ]


def synthetic_instances_sample() -> list:
    image, labels = synthetic_stack(instances=True)
    return [
        (image, {"name": "synthetic nuclei", "scale": (2.0, 1.0, 1.0)}, "image"),
        (_painted(labels, PAINTED_SYNTHETIC), {"name": "synthetic nuclei painted objects", "scale": (2.0, 1.0, 1.0)}, "labels"),
    ]
