"""Turning user images into what the model expects: one channel, [0, 1], model size.

numpy in, numpy out; the resizing uses torch (imported lazily) for its antialiased bilinear mode.
"""

from __future__ import annotations

import math
import os

import numpy as np

MIN_SIZE = 8
LUMINANCE = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601
MAX_LABEL = 2**31 - 1  # masks are kept as int32
# Largest image or support-set array read from a file, checked against the size the file
# declares before anything is allocated (a small file can declare a huge image). Raise it with
# the environment variable NAPARI_UNIVERSEG_MAX_PIXELS for truly huge images.
MAX_PIXELS = 1 << 27  # 134M pixels, e.g. a 512-slice stack of 512 x 512 px
MAX_PIXELS_ENV = "NAPARI_UNIVERSEG_MAX_PIXELS"


class SizeLimitError(ValueError):
    """A file declares an array larger than MAX_PIXELS."""


def check_declared_size(shape: tuple[int, ...], what: str) -> None:
    """Refuse an array of ``shape`` bigger than MAX_PIXELS (or the environment's override)."""
    limit = int(os.environ.get(MAX_PIXELS_ENV) or MAX_PIXELS)
    n = math.prod(int(x) for x in shape)
    if n > limit:
        raise SizeLimitError(
            f"{what} declares {' x '.join(map(str, shape))} = {n:,} pixels, more than the limit of {limit:,}; "
            f"set {MAX_PIXELS_ENV} to read larger images"
        )


def to_grey(image: np.ndarray, channel: int | None = None, what: str = "image") -> np.ndarray:
    """A 2D float32 image from a 2D greyscale, (H, W, 3|4) RGB(A) or (H, W, C) multichannel array.

    ``channel`` picks one channel of the last axis; the default for RGB(A) is luminance.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        if channel not in (None, 0):
            raise ValueError(f"{what} is greyscale; channel {channel} does not exist")
        grey = image
    elif image.ndim == 3 and image.shape[-1] <= 16 and image.shape[-1] < min(image.shape[:2]):
        if channel is not None:
            if not 0 <= channel < image.shape[-1]:
                raise ValueError(f"{what} has {image.shape[-1]} channels; channel {channel} does not exist")
            grey = image[..., channel]
        elif image.shape[-1] in (3, 4):
            grey = image[..., :3].astype(np.float32) @ LUMINANCE
        elif image.shape[-1] == 1:
            grey = image[..., 0]
        else:
            raise ValueError(f"{what} has {image.shape[-1]} channels: choose one channel")
    else:
        raise ValueError(f"{what} must be a 2D image (H, W) or (H, W, channels), got an array of shape {image.shape}")
    if not np.issubdtype(grey.dtype, np.number) or np.iscomplexobj(grey):
        raise ValueError(f"{what} must be numeric, got dtype {grey.dtype}")
    if grey.dtype.itemsize > 4 and np.issubdtype(grey.dtype, np.floating):
        finite = np.isfinite(grey)
        peak = float(np.abs(grey[finite]).max(initial=0.0))
        if peak > float(np.finfo(np.float32).max) / 4:  # finite values float32 cannot hold: rescale (only
            grey = grey / peak  # the percentiles matter downstream), keeping NaN/inf as they are
    return grey.astype(np.float32, copy=False)


def check_image(image: np.ndarray, what: str = "image") -> None:
    """Errors for images the model cannot use: too small, NaN/Inf, constant."""
    check_size(image, what)
    problem = blank_problem(image)
    if problem:
        raise ValueError(f"{what} {problem}")


def check_size(image: np.ndarray, what: str = "image") -> None:
    """A ValueError if a 2D image is smaller than MIN_SIZE on a side."""
    h, w = image.shape
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"{what} is {h}x{w} px; at least {MIN_SIZE}x{MIN_SIZE} is needed")


def blank_problem(image: np.ndarray) -> str | None:
    """Why an image holds nothing to segment ("contains NaN or infinite values", "is constant
    ..."), or None."""
    if not np.isfinite(image).all():
        return "contains NaN or infinite values"
    if image.min() == image.max():
        return f"is constant (every pixel is {image.flat[0]:g}): nothing to segment"
    return None


def normalize(image: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Robust scaling to [0, 1] by the low/high percentiles (min/max where those coincide)."""
    lo, hi = np.percentile(image, [low, high])
    if hi <= lo:
        lo, hi = float(image.min()), float(image.max())
    if hi <= lo:
        return np.zeros_like(image, dtype=np.float32)
    return np.clip((image - lo) / (hi - lo), 0, 1).astype(np.float32)


def check_mask(mask: np.ndarray, shape: tuple[int, ...], what: str = "mask") -> np.ndarray:
    """Integer labels (0 = background) of the given shape, as int32."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{what} must be a 2D label image, got an array of shape {mask.shape}")
    if mask.shape != tuple(shape):
        raise ValueError(f"{what} has shape {mask.shape} but its image has shape {tuple(shape)}")
    if mask.dtype == bool:
        return mask.astype(np.int32)
    if not np.issubdtype(mask.dtype, np.integer):
        if not np.issubdtype(mask.dtype, np.floating) or not np.isfinite(mask).all() or (mask != np.round(mask)).any():
            raise ValueError(f"{what} must hold integer labels (0 = background), got dtype {mask.dtype} with non-integer values")
    if mask.min() < 0:
        raise ValueError(f"{what} has negative labels")
    if mask.max() > MAX_LABEL:
        raise ValueError(f"{what} has label {int(mask.max())}; labels must be at most {MAX_LABEL}")
    return mask.astype(np.int32)


def label_dtype(max_label: int) -> np.dtype:
    """The smallest unsigned dtype that holds labels up to ``max_label`` (at most MAX_LABEL)."""
    return np.dtype(np.uint8 if max_label < 2**8 else np.uint16 if max_label < 2**16 else np.uint32)


def resize(arrays, size: tuple[int, int], nearest: bool = False):
    """Resize a torch tensor (N, C, H, W): antialiased bilinear for images, nearest for masks."""
    import torch.nn.functional as F

    if tuple(arrays.shape[-2:]) == tuple(size):
        return arrays
    if nearest:
        return F.interpolate(arrays, size=size, mode="nearest-exact")
    down = size[0] < arrays.shape[-2] or size[1] < arrays.shape[-1]
    return F.interpolate(arrays, size=size, mode="bilinear", align_corners=False, antialias=down)
