"""Sample data shipped with the package (numpy only; the napari wrappers live in _sample_data.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NEURONS = Path(__file__).parent / "neurons"


def neurons() -> tuple[np.ndarray, np.ndarray]:
    """12 brightfield neuron images (12, 480, 640) uint8 and their masks (CC0, see ATTRIBUTION.txt)."""
    from ..io import read_image

    images = np.stack([read_image(p) for p in sorted(NEURONS.glob("[0-9][0-9][0-9].png"))])
    masks = np.stack([read_image(p) for p in sorted(NEURONS.glob("*_mask.tif"))])
    return images, masks.astype(np.uint8)


def neuron_files() -> tuple[list[Path], list[Path]]:
    """The bundled sample's image and mask files (CC0 neurons), sorted, as paths."""
    return sorted(NEURONS.glob("[0-9][0-9][0-9].png")), sorted(NEURONS.glob("*_mask.tif"))


def synthetic_stack(n_slices: int = 24, size: int = 192, seed: int = 0, instances: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A fluorescence-like z-stack of blobs (nuclei) whose sizes and positions drift through z,
    and its true labels. Returns (image float32 (Z, Y, X), labels uint8 (Z, Y, X)); with
    ``instances`` the labels are uint16, one value per nucleus (the same image)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[0:n_slices, 0:size, 0:size].astype(np.float32)
    labels = np.zeros((n_slices, size, size), np.uint16 if instances else np.uint8)
    for k in range(1, int(size * size / 900) + 1):
        c = rng.uniform([0, 10, 10], [n_slices, size - 10, size - 10])
        r = rng.uniform(6, 14)
        rz = rng.uniform(4, 10)
        inside = ((zz - c[0]) / rz) ** 2 + ((yy - c[1]) / r) ** 2 + ((xx - c[2]) / (r * rng.uniform(0.7, 1.3))) ** 2 < 1
        labels[inside] = k if instances else 1
    image = gaussian_filter((labels > 0).astype(np.float32), (0, 1.5, 1.5)) * rng.uniform(0.6, 1.0)
    image += gaussian_filter(rng.normal(0, 1, image.shape).astype(np.float32), (0, 20, 20)) * 0.3 + 0.1
    image = rng.poisson(np.clip(image, 0, None) * 200) / 200 + rng.normal(0, 0.03, image.shape)
    return image.astype(np.float32), labels
