"""Crops of an example at the model's input size, mostly centred on its foreground.

The support of a tiled view (predict.py) and the episodes of an adaptation in that view
(adapt.py) draw their crops here, the same way: one crop in ``ANYWHERE_EVERY`` is placed anywhere
(background context), the others around a random foreground pixel, shifted by up to a quarter of
the crop.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

ANYWHERE_EVERY = 4


def pad_to(t: torch.Tensor, size: int) -> torch.Tensor:
    """Reflect-pad (N, C, H, W) at the bottom/right up to size (constant where reflection cannot)."""
    ph, pw = max(0, size - t.shape[-2]), max(0, size - t.shape[-1])
    if not ph and not pw:
        return t
    mode = "reflect" if ph < t.shape[-2] and pw < t.shape[-1] else "replicate"
    return torch.nn.functional.pad(t, (0, pw, 0, ph), mode=mode)


def _corner(fg: np.ndarray, h: int, w: int, size: int, centred: bool, rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner of a size x size crop of an h x w image; ``fg``: (n, 2) foreground pixels."""
    if len(fg) and centred:
        cy, cx = fg[rng.integers(len(fg))]
        y = int(np.clip(cy - size // 2 + rng.integers(-size // 4, size // 4 + 1), 0, h - size))
        x = int(np.clip(cx - size // 2 + rng.integers(-size // 4, size // 4 + 1), 0, w - size))
        return y, x
    return int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))


def crops(image: torch.Tensor, mask: torch.Tensor, size: int, n: int, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """n size x size crops of (1, 1, h, w) tensors (padded up to size first), as (1, 1, size, size)
    float32 image and bool mask; every ANYWHERE_EVERY-th crop is placed anywhere."""
    image, mask = pad_to(image, size), pad_to(mask.float(), size)
    h, w = image.shape[-2:]
    fg = torch.nonzero(mask[0, 0] > 0).numpy()
    for k in range(n):
        y, x = _corner(fg, h, w, size, k % ANYWHERE_EVERY != ANYWHERE_EVERY - 1, rng)
        yield image[..., y : y + size, x : x + size], mask[..., y : y + size, x : x + size] > 0


def random_crop(image: torch.Tensor, mask: torch.Tensor, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One size x size crop of a (C, h, w) image and its mask (h, w >= size), placed anywhere one
    time in ANYWHERE_EVERY; the whole of them when they are no larger than the crop."""
    h, w = image.shape[-2:]
    if h <= size and w <= size:
        return image, mask
    fg = torch.nonzero(mask[0] > 0).numpy()
    centred = bool(len(fg)) and rng.integers(ANYWHERE_EVERY) != ANYWHERE_EVERY - 1
    y, x = _corner(fg, h, w, size, centred, rng)
    return image[..., y : y + size, x : x + size], mask[..., y : y + size, x : x + size]
