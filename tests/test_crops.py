"""The crop rule shared by the support of a tiled view and the adaptation's episodes."""

import numpy as np
import torch

from napari_universeg.crops import ANYWHERE_EVERY, crops, pad_to, random_crop


def _example(h=200, w=300):
    """A (1, 1, h, w) image and its mask with one 20 x 20 foreground square at rows/cols 150-170."""
    image = torch.rand(1, 1, h, w)
    mask = torch.zeros(1, 1, h, w)
    mask[..., 150:170, 150:170] = 1
    return image, mask


def test_random_crop_is_fresh_each_draw_mostly_near_the_foreground():
    image, mask = _example()
    rng = np.random.default_rng(0)
    draws = [random_crop(image[0], mask[0], 64, rng) for _ in range(200)]
    assert all(c.shape == (1, 64, 64) and m.shape == (1, 64, 64) for c, m in draws)
    with_fg = sum(bool(m.any()) for _, m in draws)
    # ANYWHERE_EVERY - 1 in ANYWHERE_EVERY are centred within a quarter crop of a foreground pixel
    assert with_fg / len(draws) > (ANYWHERE_EVERY - 1) / ANYWHERE_EVERY - 0.1
    assert len({float(c.sum()) for c, _ in draws}) > 100  # new crops, not a few fixed ones
    # image and mask cut at the same place: an image that holds each pixel's own position
    rows, cols = torch.meshgrid(torch.arange(200.0), torch.arange(300.0), indexing="ij")
    where = (rows * 300 + cols)[None]
    for _ in range(20):
        c, m = random_crop(where, mask[0], 64, rng)
        inside = c[m > 0]
        assert torch.all((inside // 300 >= 150) & (inside // 300 < 170) & (inside % 300 >= 150) & (inside % 300 < 170))


def test_random_crop_of_an_example_no_larger_than_the_crop_is_the_whole_of_it():
    image, mask = _example(64, 64)
    c, m = random_crop(image[0], mask[0], 64, np.random.default_rng(0))
    assert torch.equal(c, image[0]) and torch.equal(m, mask[0])


def test_crops_pads_small_examples_and_places_every_fourth_anywhere():
    image, mask = _example(40, 300)
    out = list(crops(image, mask > 0, 64, 8, np.random.default_rng(1)))
    assert len(out) == 8 and all(c.shape == (1, 1, 64, 64) and m.dtype == torch.bool for c, m in out)
    assert pad_to(image, 64).shape[-2:] == (64, 300)
