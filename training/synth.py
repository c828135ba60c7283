"""Synthetic segmentation tasks for episodic in-context training.

A task is a family of images that share one segmentation rule (e.g. "the nuclei", "the
membranes", "the region with the vertical stripes"). Each task yields S + 1 "subjects": a query
and S support examples. Every batch element is a separately drawn task.

Pipeline per task, all batched in torch (runs unchanged on CPU or CUDA):
  1. a structure family draws a structure map s in [0, 1] (object-ness) and a binary mask;
  2. an intensity model renders s as fluorescence, brightfield/phase, EM or a plain image;
  3. geometric augmentation: task-level and per-subject affine + elastic (one grid_sample);
  4. intensity augmentation: task-level and per-subject inversion, brightness/contrast, blur,
     sharpening, noise; then per-image min-max to [0, 1];
  5. target variation (task-level): the object, its boundary band, or its inverse.
Degenerate tasks (query or too many supports almost empty or almost full) are redrawn.

Pixel sizes below are quoted for 128 px images and scaled with `size`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

FAMILIES = ("synthmorph", "blobs", "membranes", "curvilinear", "texture")

MIN_FG, MAX_FG = 0.005, 0.95  # accepted foreground fraction of one mask
MIN_VALID_SUPPORTS = 0.75  # share of supports that must be non-degenerate
MAX_REDRAWS = 10
EMPTY_P = 0.04  # per subject, for families where a field without objects is natural


class _Rng:
    """All random draws go through one device generator, so a seed fixes the output."""

    def __init__(self, seed: int, device: torch.device):
        self.device = device
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(seed)

    def uniform(self, shape: int | tuple[int, ...], lo: float = 0.0, hi: float = 1.0) -> Tensor:
        return lo + (hi - lo) * torch.rand(shape, generator=self.gen, device=self.device)

    def log_uniform(self, shape: int | tuple[int, ...], lo: float, hi: float) -> Tensor:
        return self.uniform(shape, math.log(lo), math.log(hi)).exp()

    def normal(self, shape: int | tuple[int, ...]) -> Tensor:
        return torch.randn(shape, generator=self.gen, device=self.device)

    def coin(self, shape: int | tuple[int, ...], p: float) -> Tensor:
        return self.uniform(shape) < p

    def randint(self, shape: int | tuple[int, ...], lo: int, hi: int) -> Tensor:
        """Integers in [lo, hi] inclusive."""
        shape = (shape,) if isinstance(shape, int) else shape
        return torch.randint(lo, hi + 1, shape, generator=self.gen, device=self.device)

    def choice(self, probs: Sequence[float], k: int) -> list[int]:
        p = torch.tensor(probs, dtype=torch.float32, device=self.device)
        return torch.multinomial(p, k, replacement=True, generator=self.gen).tolist()

    def maybe(self, count: int, p: float, lo: float, hi: float, off: float) -> Tensor:
        """Uniform(lo, hi) with probability p, else `off` (augmentation parameters)."""
        return torch.where(self.coin(count, p), self.uniform(count, lo, hi), off)


def _rep(v: Tensor, n: int) -> Tensor:
    """Per-task values -> per-subject values (subjects of a task are contiguous)."""
    return v.repeat_interleave(n, 0)


def _img(v: Tensor) -> Tensor:
    return v.reshape(-1, 1, 1, 1)


def _task_param(rng: _Rng, t: int, n: int, lo: float, hi: float, jitter: float = 0.05) -> Tensor:
    """A per-task uniform draw with small multiplicative per-subject jitter, (T*n, 1, 1, 1)."""
    v = _rep(rng.uniform(t, lo, hi), n)
    return _img(v * (1 + jitter * rng.normal(t * n)))


# ----------------------------------------------------------------------------- filtering


def blur(x: Tensor, sigma: Tensor | float, pad: bool = True) -> Tensor:
    """Gaussian blur of (N, C, H, W) with a per-image sigma in px, via FFT (cost independent of
    sigma). Reflect-padded, unless `pad` is False: periodic, which suits stationary noise."""
    h0, w0 = x.shape[-2:]
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
    p = min(math.ceil(3 * float(sigma.max())), h0 - 1, w0 - 1) if pad else 0
    if p > 0:
        x = F.pad(x, (p, p, p, p), mode="reflect")
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h, device=x.device)[:, None]
    fx = torch.fft.rfftfreq(w, device=x.device)[None, :]
    transfer = torch.exp(-2 * math.pi**2 * sigma**2 * (fy**2 + fx**2))
    y = torch.fft.irfft2(torch.fft.rfft2(x) * transfer, s=(h, w))
    return y[..., p : p + h0, p : p + w0]


def _standardise(x: Tensor) -> Tensor:
    x = x - x.mean((-2, -1), keepdim=True)
    return x / x.std((-2, -1), keepdim=True).clamp_min(1e-8)


def _coarse_noise(rng: _Rng, count: int, size: int, sigma: Tensor | float) -> tuple[Tensor, int]:
    """Zero-mean unit-std smoothed Gaussian noise (count, 1, h, h) on a grid `factor` times
    coarser than `size`, chosen so that sigma is still >= 2 coarse px: bilinear upsampling of
    such a smooth field is invisible and much cheaper than filtering at full size."""
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=rng.device).reshape(-1)
    factor = 2 ** max(0, math.floor(math.log2(float(sigma.min()) / 2)))
    low = math.ceil(size / factor)
    z = blur(rng.normal((count, 1, low, low)), sigma / factor, pad=False)
    return _standardise(z), factor


def _upsample(z: Tensor, size: int) -> Tensor:
    """Bilinear resize of every channel; channels folded into the batch (far faster on CPU)."""
    if z.shape[-1] == size:
        return z
    up = F.interpolate(z.reshape(-1, 1, *z.shape[-2:]), size=(size, size), mode="bilinear", align_corners=False)
    return up.view(*z.shape[:-2], size, size)


def smooth_noise(rng: _Rng, count: int, size: int, sigma: Tensor | float) -> Tensor:
    """(count, 1, size, size) zero-mean unit-std Gaussian noise smoothed with per-map sigma
    (px, scalar or one per map)."""
    return _upsample(_coarse_noise(rng, count, size, sigma)[0], size)


def _grad_mag(x: Tensor) -> Tensor:
    gy, gx = torch.gradient(x, dim=(-2, -1))
    return torch.sqrt(gy.square() + gx.square())


def _dilate(m: Tensor, r: int) -> Tensor:
    """Binary max filter over a (2r+1)^2 square, separable, zero outside the image
    (shifted slices: much faster than max_pool2d on CPU)."""
    h, w = m.shape[-2:]
    p = F.pad(m, (r, r, 0, 0))
    m = torch.stack([p[..., i : i + w] for i in range(2 * r + 1)]).amax(0)
    p = F.pad(m, (0, 0, r, r))
    return torch.stack([p[..., i : i + h, :] for i in range(2 * r + 1)]).amax(0)


def _erode(m: Tensor, r: int) -> Tensor:
    """Binary min filter; outside the image counts as foreground, so the border does not erode."""
    return 1 - _dilate(1 - m, r)


def _minmax(x: Tensor) -> Tensor:
    lo = x.amin((-2, -1), keepdim=True)
    hi = x.amax((-2, -1), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-8)


def _pixel_coords(size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates (y, x) in px, each (size, size)."""
    r = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    return torch.meshgrid(r, r, indexing="ij")


# ----------------------------------------------------------------------------- geometry


def _identity_grid(count: int, size: int, device: torch.device) -> Tensor:
    eye = torch.eye(2, 3, device=device).expand(count, 2, 3)
    return F.affine_grid(eye, [count, 1, size, size], align_corners=False)


def _displacement(rng: _Rng, count: int, size: int, sigma: Tensor, amp_px: Tensor) -> Tensor:
    """Smooth random displacement (count, H, W, 2) in grid_sample units; amp_px is its std."""
    d = smooth_noise(rng, 2 * count, size, sigma.repeat_interleave(2))
    d = d.view(count, 2, size, size).permute(0, 2, 3, 1)
    return d * _img(amp_px * 2 / size)


def _warp(x: Tensor, grid: Tensor, mode: str) -> Tensor:
    return F.grid_sample(x, grid, mode=mode, padding_mode="reflection", align_corners=False)


def _affine(rng: _Rng, count: int, p: float, max_rot: float, scale: tuple[float, float], shift: float, flip: bool) -> Tensor:
    """(count, 3, 3) random affine matrices in normalised coordinates (identity with prob 1-p)."""
    on = rng.coin(count, p)
    ang = rng.uniform(count, -max_rot, max_rot) * on
    s = torch.where(on, rng.uniform(count, *scale), 1.0)
    t = rng.uniform((count, 2), -2 * shift, 2 * shift) * on[:, None]  # [-1, 1] spans 2 units
    fy, fx = (torch.where(rng.coin(count, 0.5 if flip else 0.0), -1.0, 1.0) for _ in range(2))
    cos, sin = torch.cos(ang) * s, torch.sin(ang) * s
    a = torch.zeros(count, 3, 3, device=rng.device)
    a[:, 0, 0], a[:, 0, 1], a[:, 0, 2] = cos * fx, -sin * fy, t[:, 0]
    a[:, 1, 0], a[:, 1, 1], a[:, 1, 2] = sin * fx, cos * fy, t[:, 1]
    a[:, 2, 2] = 1
    return a


# ----------------------------------------------------------------------------- families
# Each family: (rng, tasks T, subjects per task n, size) -> structure (T*n,1,H,W) in [0,1] and
# binary mask (T*n,1,H,W). Parameters are drawn per task; subjects of a task are contiguous.


def _synthmorph(rng: _Rng, t: int, n: int, size: int) -> tuple[Tensor, Tensor]:
    """Argmax of K smoothed noise maps -> label map; per-subject smooth deformation; one label
    is the target; per-label intensities around per-task means."""
    sc, kmax, num = size / 128, 16, t * n
    sigma = _rep(rng.uniform(t, 5, 15) * sc, kmax)
    maps = smooth_noise(rng, t * kmax, size, sigma).view(t, kmax, size, size)
    k = rng.randint(t, 8, kmax)
    unused = torch.arange(kmax, device=rng.device)[None, :] >= k[:, None]
    maps = maps.masked_fill(unused[..., None, None], -torch.inf)
    template = maps.max(1, keepdim=True).indices.float()  # max(): far faster than argmax on CPU

    grid = _identity_grid(num, size, rng.device) + _displacement(
        rng, num, size, _rep(rng.uniform(t, 10, 20) * sc, n), _rep(rng.uniform(t, 1, 4) * sc, n)
    )
    labels = _warp(_rep(template, n), grid, "nearest").long()

    # target: a label covering a sensible share of the template (falls back to any present one)
    frac = F.one_hot(template.long().flatten(1), kmax).float().mean(1)
    weights = ((frac > 0.02) & (frac < 0.5)).float() + 1e-4 * (frac > 0)
    target = _rep(torch.multinomial(weights, 1, generator=rng.gen), n)
    mask = (labels == _img(target)).float()

    means = _rep(rng.uniform((t, kmax)), n)
    spread = _rep(rng.uniform(t, 0.01, 0.05), n)[:, None]
    levels = (means + spread * rng.normal((num, kmax))).clamp(0, 1)
    struct = levels.gather(1, labels.flatten(1)).view_as(mask)
    return struct, mask


def _render_ellipses(
    centres: Tensor, ra: Tensor, rb: Tensor, angle: Tensor, value: Tensor, dome: float, active: Tensor, size: int
) -> tuple[Tensor, Tensor]:
    """Rasterise (n, M) ellipses into (n, 1, H, W) by scattering local patches (cost ~ area
    covered, not M*H*W); overlaps take the maximum. Returns structure and mask."""
    n = ra.shape[0]
    r = math.ceil(float(torch.maximum(ra, rb).max())) + 1
    off = torch.arange(-r, r + 1, device=centres.device, dtype=torch.float32)
    cy, cx = centres[..., 0, None, None], centres[..., 1, None, None]
    py = cy.round() + off[:, None]  # (n, M, P, 1)
    px = cx.round() + off[None, :]  # (n, M, 1, P)
    # centres are pixel-centre coordinates, pixel i spans [i, i+1)
    dy, dx = py + 0.5 - cy, px + 0.5 - cx
    cos, sin = torch.cos(angle)[..., None, None], torch.sin(angle)[..., None, None]
    rb_ = rb[..., None, None]
    d = torch.sqrt(((dx * cos + dy * sin) / ra[..., None, None]).square() + ((dy * cos - dx * sin) / rb_).square())
    edge = ((1 - d) * rb_ + 0.5).clamp(0, 1)  # ~1 px anti-aliased rim
    val = value[..., None, None] * (1 - dome * d**2).clamp_min(0) * edge
    inside = (d < 1).float()
    ok = active[..., None, None] & (py >= 0) & (py < size) & (px >= 0) & (px < size)
    idx = torch.where(ok, py * size + px, size * size).long().flatten(1)  # spare slot for misses

    def splat(v: Tensor) -> Tensor:
        buf = torch.zeros(n, size * size + 1, device=centres.device)
        buf.scatter_reduce_(1, idx, (v * ok).flatten(1), reduce="amax")
        return buf[:, :-1].view(n, 1, size, size)

    return splat(val), splat(inside)


CLUTTER_P = 0.4  # share of blob, membrane and curvilinear tasks with distractor objects


def _add_clutter(rng: _Rng, struct: Tensor, mask: Tensor, t: int, n: int) -> Tensor:
    """For some tasks, distractors drawn into the structure map off the target mask but not into
    the mask (organelles, vesicles, debris, out-of-focus cells): the target is not simply
    "everything that stands out". Per task a size, elongation, brightness and style (filled,
    outlined, or clusters of specks); the support set shows what is not the target."""
    tasks = torch.nonzero(rng.coin(t, CLUTTER_P)).flatten().tolist()
    if not tasks:
        return struct
    size, sc, m, k, dev = mask.shape[-1], mask.shape[-1] / 128, 32, len(tasks), rng.device
    num = k * n
    speck = _rep(rng.coin(k, 0.25), n)[:, None]
    r_lo = torch.where(speck, _rep(rng.uniform(k, 0.6, 1.5), n)[:, None], _rep(rng.log_uniform(k, 1.0, 8.0), n)[:, None]) * sc
    radius = r_lo * rng.uniform((num, m), 1.0, 1.8)
    elong = _rep(rng.uniform(k, 1.0, 3.0), n)[:, None]
    aspect = (1 + (elong - 1) * rng.uniform((num, m))).sqrt()
    count = _rep(rng.uniform(k, 3, m), n)[:, None] * rng.uniform((num, 1), 0.5, 1.0)
    active = torch.arange(m, device=dev)[None, :] < count
    centres = rng.uniform((num, m, 2), 0, size)
    hubs = rng.uniform((num, 3, 2), 0, size).gather(1, rng.randint((num, m), 0, 2)[..., None].expand(num, m, 2))
    spread = _rep(rng.uniform(k, 3, 12) * sc, n)[:, None, None]
    centres = torch.where(speck[..., None], hubs + spread * rng.normal((num, m, 2)), centres)
    value = _rep(rng.uniform(k, 0.3, 1.0), n)[:, None] * (1 - 0.3 * rng.uniform((num, m)))
    s, inside = _render_ellipses(centres, radius * aspect, radius / aspect, rng.uniform((num, m), 0, math.pi), value, 0.3, active, size)
    ring = _img(_rep(rng.coin(k, 0.35), n)) & ~_img(speck)
    s = torch.where(ring, s * (inside - _erode(inside, 1)), s)
    idx = _subjects(tasks, n, dev)
    struct = struct.clone()
    struct[idx] = torch.maximum(struct[idx], s * (1 - mask[idx]))
    return struct


def _blobs(rng: _Rng, t: int, n: int, size: int) -> tuple[Tensor, Tensor]:
    """Nuclei / cells: fields of elliptical blobs; per task a radius range, density, elongation,
    clustering and brightness variation; per subject new positions and counts."""
    sc = size / 128
    structs, masks = [], []
    for _ in range(t):  # tasks differ in blob size and count, which do not batch well
        r_min = float(rng.log_uniform(1, 2, 18)) * sc
        r_max = min(r_min * float(rng.uniform(1, 1.1, 2.0)), 25 * sc)
        elong = float(rng.uniform(1, 1.0, 2.2))
        cover = float(rng.uniform(1, 0.04, 0.4))
        mean_area = math.pi * ((r_min + r_max) / 2) ** 2
        count = max(4, min(400, round(cover * size * size / mean_area)))
        m = math.ceil(count * 1.4)
        count_i = count * rng.uniform((n, 1), 0.6, 1.4) * ~rng.coin((n, 1), EMPTY_P)
        active = torch.arange(m, device=rng.device)[None, :] < count_i

        lo, hi = -0.3 * r_max, size + 0.3 * r_max
        centres = rng.uniform((n, m, 2), lo, hi)
        if float(rng.uniform(1)) < 0.3:  # clustered colonies: blobs touch and overlap
            hubs = rng.uniform((n, 4, 2), 0, size)
            pick = rng.randint((n, m), 0, 3)
            spread = float(rng.uniform(1, 1.5, 4)) * r_max
            hub = hubs.gather(1, pick[..., None].expand(n, m, 2))
            centres = lo + (hub + spread * rng.normal((n, m, 2)) - lo) % (hi - lo)  # wrap

        radius = rng.uniform((n, m), r_min, r_max)
        aspect = rng.uniform((n, m), 1.0, elong).sqrt()
        value = 1 - float(rng.uniform(1, 0, 0.6)) * rng.uniform((n, m))
        s, mask = _render_ellipses(
            centres, radius * aspect, radius / aspect, rng.uniform((n, m), 0, math.pi), value, float(rng.uniform(1, 0, 0.6)), active, size
        )
        # chromatin-like internal texture
        tex = smooth_noise(rng, n, size, float(rng.uniform(1, 0.8, 2.0)) * sc)
        s = s * (1 + float(rng.uniform(1, 0, 0.3)) * tex).clamp(0, 2)
        structs.append(s.clamp(0, 1))
        masks.append(mask)
    struct, mask = torch.cat(structs), torch.cat(masks)
    return _add_clutter(rng, struct, mask, t, n), mask


def _membranes(rng: _Rng, t: int, n: int, size: int) -> tuple[Tensor, Tensor]:
    """EM / epithelia: Voronoi tessellation of jittered-grid seeds (Worley noise: only the 3x3
    neighbouring grid cells can hold the nearest seeds); boundary where the nearest and
    second-nearest seed distances differ by less than the membrane width."""
    sc, num, dev = size / 128, t * n, rng.device
    cell = _img(_rep(rng.uniform(t, 9, 40) * sc, n))
    jitter = _img(_rep(rng.uniform(t, 0.6, 0.95), n))
    width = _img(_rep((rng.uniform(t, 1, 4) * sc).clamp_min(1), n))
    margin = 2  # grid cells around the image, room for the domain warp
    g = math.ceil(size / float(cell.min())) + 2 * margin + 1

    # domain warp makes cells irregular; amplitude relative to the cell size
    warp = _displacement(rng, num, size, cell.flatten() * rng.uniform(num, 0.5, 1.0), cell.flatten() * _rep(rng.uniform(t, 0, 0.25), n))
    yy, xx = _pixel_coords(size, dev)
    py = yy + warp[..., 1] * size / 2  # back from grid_sample units to px
    px = xx + warp[..., 0] * size / 2
    gy = (torch.floor(py / cell[:, 0]).long() + margin).clamp(1, g - 2)
    gx = (torch.floor(px / cell[:, 0]).long() + margin).clamp(1, g - 2)
    home = (gy * g + gx).flatten(1)

    k = torch.arange(g, device=dev, dtype=torch.float32) - margin + 0.5
    seed_y = (k[:, None] + jitter[:, 0] * (rng.uniform((num, g, g)) - 0.5)) * cell[:, 0]
    seed_x = (k[None, :] + jitter[:, 0] * (rng.uniform((num, g, g)) - 0.5)) * cell[:, 0]
    # running nearest (d1, its cell id) and second-nearest (d2) squared distances
    py, px, seed_y, seed_x = py.flatten(1), px.flatten(1), seed_y.flatten(1), seed_x.flatten(1)
    d1 = d2 = torch.full_like(py, torch.inf)
    nearest = home
    for oy in (-1, 0, 1):
        for ox in (-1, 0, 1):
            cid = home + (oy * g + ox)
            d = (seed_y.gather(1, cid) - py).square() + (seed_x.gather(1, cid) - px).square()
            closer = d < d1
            d2 = torch.where(closer, d1, torch.minimum(d2, d))
            d1 = torch.where(closer, d, d1)
            nearest = torch.where(closer, cid, nearest)
    gap = (d2.sqrt() - d1.sqrt()).view(num, 1, size, size)  # ~2x distance to the cell border

    membrane = ((width - gap) / 2 + 0.5).clamp(0, 1)
    mask = (gap < width).float()
    # per-cell tint (cytoplasm / organelle density differs between cells)
    tint = rng.uniform((num, g * g)).gather(1, nearest).view_as(mask)
    struct = torch.maximum(membrane, _img(_rep(rng.uniform(t, 0, 0.35), n)) * tint)
    struct = _add_clutter(rng, struct, mask, t, n)  # organelles inside the cells
    interiors = _img(_rep(rng.coin(t, 0.4), n))
    return struct, torch.where(interiors, 1 - mask, mask)


def _curvilinear(rng: _Rng, t: int, n: int, size: int) -> tuple[Tensor, Tensor]:
    """Vessels / neurites / filaments: zero-level curves of smoothed noise fields, drawn with a
    width via the first-order distance |f| / |grad f|; up to 3 fields of different scale and
    width, optionally tapered off by a gate field, optionally with soma-like blobs."""
    sc, num, nf = size / 128, t * n, 3
    sigma = _rep(rng.uniform((t, nf), 6, 22) * sc, n)
    z, factor = _coarse_noise(rng, num * nf, size, sigma.flatten())
    gy, gx = torch.gradient(z, dim=(-2, -1))
    z, gy, gx = _upsample(torch.stack([z, gy / factor, gx / factor]), size).view(3, num, nf, size, size)
    dist = z.abs() / torch.sqrt(gy.square() + gx.square()).clamp_min(1e-6)

    on = torch.cat([torch.ones(t, 1, dtype=torch.bool, device=rng.device), rng.coin((t, nf - 1), 0.5)], 1)
    width = rng.uniform((t, 1), 1, 5) * sc * torch.cat([torch.ones(t, 1, device=rng.device), rng.uniform((t, nf - 1), 0.4, 1.0)], 1)
    half = _rep((width / 2).clamp_min(0.5) * on, n)[..., None, None]  # >= 1 px wide
    # gate: lines end (with a short taper) where a coarse field is low: free ends, sparse networks
    gate = smooth_noise(rng, num, size, _rep(rng.uniform(t, 15, 30) * sc, n))
    gate = (4 * (gate - _img(_rep(rng.uniform(t, -0.5, 0.3), n)))).clamp(0, 1)
    half = half * torch.where(_img(_rep(rng.coin(t, 0.5), n)), gate, 1.0)
    half = torch.where(half < 0.4, 0.0, half)  # no sub-pixel specks at the tapered ends

    bright = _rep(rng.uniform((t, nf), 0.6, 1.0), n)[..., None, None]
    struct = (bright * (half - dist + 0.5).clamp(0, 1)).amax(1, keepdim=True)
    mask = (dist < half).float().amax(1, keepdim=True)
    struct, mask = _add_somata(rng, struct, mask, t, n, sc)
    struct = _add_clutter(rng, struct, mask, t, n)
    keep = _img(~rng.coin(num, EMPTY_P)).float()
    return struct * keep, mask * keep


def _add_somata(rng: _Rng, struct: Tensor, mask: Tensor, t: int, n: int, sc: float) -> tuple[Tensor, Tensor]:
    """For some tasks, attach 1-3 round cell bodies per subject at random points on the lines."""
    size, k = mask.shape[-1], 3
    pos = torch.multinomial(mask.flatten(1) + 1e-6, k, replacement=True, generator=rng.gen)
    cy, cx = (pos // size).float() + 0.5, (pos % size).float() + 0.5
    yy, xx = _pixel_coords(size, rng.device)
    d = torch.sqrt((yy.flatten() - cy[..., None]).square() + (xx.flatten() - cx[..., None]).square())
    radius = _rep(rng.uniform(t, 3, 8) * sc, n)[:, None, None]
    count = _rep(rng.coin(t, 0.35) * rng.randint(t, 1, k), n)
    used = (torch.arange(k, device=rng.device)[None, :] < count[:, None])[..., None]
    soma = ((radius - d + 0.5).clamp(0, 1) * used).amax(1).view_as(mask)
    return torch.maximum(struct, soma), torch.maximum(mask, (soma >= 0.5).float())


def _texture(rng: _Rng, t: int, n: int, size: int) -> tuple[Tensor, Tensor]:
    """Regions of a smoothed-noise partition that differ by texture (oriented or isotropic
    band-pass noise, optionally binarised or rectified), not by mean intensity."""
    sc, num, kmax, dev = size / 128, t * n, 4, rng.device
    maps = smooth_noise(rng, num * kmax, size, _rep(rng.uniform(t, 12, 30) * sc, n * kmax))
    k = rng.randint(t, 2, kmax)
    unused = torch.arange(kmax, device=dev)[None, :] >= k[:, None]  # (t, kmax)
    maps = maps.view(num, kmax, size, size)
    maps = maps.masked_fill(_rep(unused, n)[..., None, None], -torch.inf)
    labels = maps.max(1, keepdim=True).indices

    # per task and region, a spectral peak: frequency (cycles/px), orientation, bandwidth
    def per_region(x: Tensor) -> Tensor:
        return x.view(t, 1, kmax, 1, 1)

    # region frequencies differ by factors of 1.6, so no two regions look alike
    rank = torch.rand((t, kmax), generator=rng.gen, device=dev).argsort(1)
    freq = per_region(rng.log_uniform((t, 1), 0.03, 0.07) * 1.6**rank / sc)
    theta = per_region(rng.uniform((t, kmax), 0, math.pi))
    bw = freq * per_region(rng.uniform((t, kmax), 0.1, 0.5))
    fy = torch.fft.fftfreq(size, device=dev)[:, None]
    fx = torch.fft.rfftfreq(size, device=dev)[None, :]
    py, px = freq * torch.sin(theta), freq * torch.cos(theta)
    # the half spectrum of a real signal: a bump at +f0 or at -f0 (mirrored into fx >= 0)
    bump = torch.exp(-((fy - py) ** 2 + (fx - px) ** 2) / (2 * bw**2)) + torch.exp(-((fy + py) ** 2 + (fx + px) ** 2) / (2 * bw**2))
    ring = torch.exp(-((torch.sqrt(fy**2 + fx**2) - freq) ** 2) / (2 * bw**2))
    spectrum = torch.where(per_region(rng.coin((t, kmax), 0.6)), bump, ring)
    # white noise drawn directly as its (complex Gaussian) half spectrum: saves a forward FFT
    noise = torch.complex(*rng.normal((2, t, n, kmax, size, size // 2 + 1)))
    tex = _standardise(torch.fft.irfft2(noise * spectrum, s=(size, size)))
    shape = per_region(rng.randint((t, kmax), 0, 2))  # linear, binarised, rectified
    tex = torch.where(shape == 1, torch.sign(tex), torch.where(shape == 2, tex.abs() * 1.5 - 1.2, tex))

    # nearly equal means; regions differ by their texture
    level = per_region(rng.uniform((t, 1), 0.35, 0.65) + rng.uniform((t, kmax), -0.04, 0.04))
    contrast = per_region(rng.uniform((t, kmax), 0.1, 0.25))
    regions = (level + contrast * tex).clamp(0, 1).view(num, kmax, size, size)
    target = _rep(torch.multinomial((~unused).float(), 1, generator=rng.gen), n)
    return regions.gather(1, labels), (labels == _img(target)).float()


# ----------------------------------------------------------------------------- intensity models
# (rng, structure (T*n,1,H,W), n, size) -> image; parameters per task with per-subject jitter.


def _fluorescence(rng: _Rng, s: Tensor, n: int, size: int) -> Tensor:
    """Bright objects on dark: PSF blur, out-of-focus haze, uneven background, Poisson-Gaussian
    noise."""
    t, sc = s.shape[0] // n, size / 128
    p = partial(_task_param, rng, t, n)  # p(lo, hi)
    x = blur(s, p(0.5, 2.0) * sc)
    x = x + p(0.0, 0.3) * blur(s, p(3, 10) * sc)
    bg = p(0.0, 0.15) * (1 + 0.5 * smooth_noise(rng, s.shape[0], size, p(15, 40) * sc)).clamp_min(0)
    x = bg + x * p(0.8, 1.0)
    photons = _img(_rep(rng.log_uniform(t, 8, 500), n))
    x = torch.poisson(x.clamp_min(0) * photons, generator=rng.gen) / photons
    return x + p(0.0, 0.04) * rng.normal(x.shape)


def _brightfield(rng: _Rng, s: Tensor, n: int, size: int) -> Tensor:
    """Grey background with either dark outlines (brightfield) or dark objects with a bright
    halo (phase contrast), uneven illumination and mild noise."""
    t, sc, dev = s.shape[0] // n, size / 128, s.device
    p = partial(_task_param, rng, t, n)  # p(lo, hi)
    sigma = p(0.7, 1.5) * sc
    sb = blur(s, sigma)
    edge = _grad_mag(sb) * sigma * math.sqrt(2 * math.pi)  # ~1 across a unit step
    grey = p(0.45, 0.7)
    sign = _img(_rep(torch.where(rng.coin(t, 0.5), -1.0, 1.0), n))  # darker or lighter inside
    bright = grey + sign * p(0.03, 0.15) * sb - p(0.15, 0.45) * edge
    halo = (blur(s, p(2, 5) * sc) - sb).clamp_min(0)
    phase = grey - p(0.1, 0.35) * sb + p(0.4, 1.0) * halo
    x = torch.where(_img(_rep(rng.coin(t, 0.5), n)), phase, bright)

    yy, xx = (c / size * 2 - 1 for c in _pixel_coords(size, dev))
    ramp = p(-0.2, 0.2) * yy + p(-0.2, 0.2) * xx
    illum = 1 + ramp + 0.05 * smooth_noise(rng, s.shape[0], size, 30 * sc)
    debris = p(0.0, 0.025) * smooth_noise(rng, s.shape[0], size, p(1.5, 4) * sc)
    return x * illum + debris + p(0.005, 0.04) * rng.normal(x.shape)


def _em(rng: _Rng, s: Tensor, n: int, size: int) -> Tensor:
    """Dark objects / membranes on a mid-grey, finely textured background, with grain noise."""
    t, sc, num = s.shape[0] // n, size / 128, s.shape[0]
    p = partial(_task_param, rng, t, n)  # p(lo, hi)
    tex = p(0.03, 0.1) * smooth_noise(rng, num, size, p(0.7, 2) * sc) + p(0.0, 0.08) * smooth_noise(rng, num, size, p(6, 20) * sc)
    x = p(0.45, 0.65) + tex - p(0.25, 0.5) * blur(s, p(0.3, 1.0) * sc)
    return blur(x + p(0.02, 0.08) * rng.normal(x.shape), 0.5 * sc)


def _plain(rng: _Rng, s: Tensor, n: int, size: int) -> Tensor:
    """The structure map's own intensities with a smooth multiplicative bias field and noise."""
    t, sc = s.shape[0] // n, size / 128
    p = partial(_task_param, rng, t, n)  # p(lo, hi)
    bias = torch.exp(p(0.0, 0.3) * smooth_noise(rng, s.shape[0], size, p(20, 40) * sc))
    return s * bias + p(0.0, 0.05) * rng.normal(s.shape)


Family = Callable[[_Rng, int, int, int], tuple[Tensor, Tensor]]
Model = Callable[[_Rng, Tensor, int, int], Tensor]
_FAMILY_FNS: dict[str, Family] = {
    "synthmorph": _synthmorph,
    "blobs": _blobs,
    "membranes": _membranes,
    "curvilinear": _curvilinear,
    "texture": _texture,
}
_MODELS: dict[str, Model] = {
    "plain": _plain,
    "fluorescence": _fluorescence,
    "brightfield": _brightfield,
    "em": _em,
}
# probability of each intensity model per family
_FAMILY_MODELS: dict[str, dict[str, float]] = {
    "synthmorph": {"plain": 0.8, "fluorescence": 0.07, "brightfield": 0.07, "em": 0.06},
    "blobs": {"fluorescence": 0.5, "brightfield": 0.3, "em": 0.2},
    "membranes": {"em": 0.5, "fluorescence": 0.3, "brightfield": 0.2},
    "curvilinear": {"fluorescence": 0.5, "brightfield": 0.3, "em": 0.2},
    "texture": {"plain": 1.0},  # microscopy models blur or drown fine texture
}


def _subjects(tasks: Sequence[int], n: int, device: torch.device) -> Tensor:
    """Subject indices of the given tasks."""
    t = torch.as_tensor(list(tasks), device=device)
    return (t[:, None] * n + torch.arange(n, device=device)).flatten()


class TaskGenerator:
    """Draws batches of synthetic segmentation tasks (see the module docstring)."""

    def __init__(self, size: int = 128, seed: int = 0, device: str | torch.device = "cpu", families: Sequence[str] | None = None):
        names = tuple(dict.fromkeys(FAMILIES if families is None else families))
        unknown = [f for f in names if f not in _FAMILY_FNS]
        if unknown or not names:
            raise ValueError(f"unknown or no families {unknown}; choose from {FAMILIES}")
        self.families: tuple[str, ...] = names
        self.size = size
        self.device = torch.device(device)
        self._rng = _Rng(seed, self.device)

    def sample(self, batch: int, support_size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Returns query_images (B,1,H,W), query_masks (B,1,H,W), support_images (B,S,1,H,W),
        support_masks (B,S,1,H,W); float32 on `device`; images in [0,1]; masks exactly {0,1}."""
        if batch < 1 or support_size < 1:
            raise ValueError("batch and support_size must be >= 1")
        n = support_size + 1
        fams = [self.families[i] for i in self._rng.choice([1.0] * len(self.families), batch)]
        x, m = self._tasks(fams, n)
        for _ in range(MAX_REDRAWS):
            bad = torch.nonzero(~valid_tasks(m, n)).flatten().tolist()
            if not bad:
                break
            idx = _subjects(bad, n, self.device)
            x[idx], m[idx] = self._tasks([fams[i] for i in bad], n)
        x = x.view(batch, n, 1, self.size, self.size)
        m = m.view(batch, n, 1, self.size, self.size)
        return x[:, 0], m[:, 0], x[:, 1:], m[:, 1:]

    def _tasks(self, fams: list[str], n: int) -> tuple[Tensor, Tensor]:
        """Images and masks (T*n, 1, H, W) for one task per entry of `fams`."""
        num, size = len(fams) * n, self.size
        x = torch.empty(num, 1, size, size, device=self.device)
        m = torch.empty_like(x)
        for name in self.families:
            tasks = [i for i, f in enumerate(fams) if f == name]
            if not tasks:
                continue
            s, mask = _FAMILY_FNS[name](self._rng, len(tasks), n, size)
            img = torch.empty_like(s)
            models = _FAMILY_MODELS[name]
            picks = self._rng.choice(list(models.values()), len(tasks))
            for j, model in enumerate(models):
                sel = [i for i, k in enumerate(picks) if k == j]
                if sel:
                    idx = _subjects(sel, n, self.device)
                    img[idx] = _MODELS[model](self._rng, s[idx], n, size)
            idx = _subjects(tasks, n, self.device)
            x[idx], m[idx] = img, mask
        return self.augment(x, m, n)

    def augment(self, x: Tensor, m: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """The paper's task-level and per-image augmentations of tasks of n subjects each:
        x, m (T*n, 1, H, W) float32, images in [0, 1], masks {0, 1}; the same shapes back."""
        x, m = self._geometry(x.to(self.device), m.to(self.device), n)
        return self._intensity(x, n), self._target(m, n)

    def _geometry(self, x: Tensor, m: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """Task-level and per-subject affine + elastic deformation, composed into one warp.
        Elastic: displacement of std `alpha` px smoothed with `sigma` px."""
        rng, num, size, sc = self._rng, x.shape[0], self.size, self.size / 128
        t = num // n
        a = _rep(_affine(rng, t, 0.5, math.pi, (0.8, 1.1), 0.2, flip=True), n) @ _affine(rng, num, 0.5, math.pi / 12, (0.9, 1.1), 0.05, flip=False)
        grid = F.affine_grid(a[:, :2], [num, 1, size, size], align_corners=False)
        grid = grid + _rep(_displacement(rng, t, size, rng.uniform(t, 6, 8) * sc, rng.maybe(t, 0.25, 1, 2, 0) * sc), n)
        grid = grid + _displacement(rng, num, size, rng.uniform(num, 7, 8) * sc, rng.maybe(num, 0.8, 1, 2.5, 0) * sc)
        return _warp(x, grid, "bilinear"), _warp(m, grid, "nearest")

    def _intensity(self, x: Tensor, n: int) -> Tensor:
        """Task-level (same draw for the whole task) and per-subject intensity augmentation,
        composed: inversion, contrast/brightness, blur, sharpening, noise; then min-max."""
        rng, num, sc = self._rng, x.shape[0], self.size / 128
        t = num // n

        def both(p_task: float, p_subj: float, task: tuple[float, float], subj: tuple[float, float], off: float) -> tuple[Tensor, Tensor]:
            return (_img(_rep(rng.maybe(t, p_task, *task, off), n)), _img(rng.maybe(num, p_subj, *subj, off)))

        x = _minmax(x)
        x = torch.where(_img(_rep(rng.coin(t, 0.5), n)), 1 - x, x)
        ct, cs = both(0.5, 0.25, (0.8, 1.2), (0.5, 1.5), 1.0)
        bt, bs = both(0.5, 0.25, (-0.1, 0.1), (-0.1, 0.1), 0.0)
        mean = x.mean((-2, -1), keepdim=True)
        x = ((x - mean) * ct * cs + mean + bt + bs).clamp(0, 1)  # saturates, as on a camera
        st, ss = both(0.5, 0.25, (0.1, 1.1), (0.1, 1.1), 0.0)
        x = blur(x, torch.sqrt(st**2 + ss**2) * sc)  # Gaussian blurs compose in quadrature
        kt, ks = both(0.5, 0.25, (0.0, 1.0), (0.0, 1.0), 0.0)
        x = x + (kt + ks) * (x - blur(x, sc))  # unsharp mask
        # noise std log-uniform (variance <= 0.05 as in the paper, but mostly mild: the intensity
        # models already add realistic noise); log(std) = -inf means no noise
        lo = math.log(0.01)
        nt, ns = both(0.5, 0.25, (lo, math.log(0.05**0.5)), (lo, math.log(0.1)), -math.inf)
        x = x + torch.sqrt(nt.exp().square() + ns.exp().square()) * rng.normal(x.shape)
        return _minmax(x)

    def _target(self, m: Tensor, n: int) -> Tensor:
        """Task-level target: the object (0.6), its boundary band of 1-3 px (0.2), or the
        inverse (0.2). The image border is not a boundary."""
        rng, t = self._rng, m.shape[0] // n
        kind = _img(_rep(torch.as_tensor(rng.choice([0.6, 0.2, 0.2], t), device=m.device), n))
        width = _rep(rng.randint(t, 1, 3), n)
        out = torch.where(kind == 2, 1 - m, m)
        edge = (kind == 1).flatten()
        if edge.any():  # band: 1 px inside; 1 in + 1 out; 2 in + 1 out
            e, w = m[edge], _img(width[edge])
            inner = torch.where(w == 3, _erode(e, 2), _erode(e, 1))
            outer = torch.where(w == 1, e, _dilate(e, 1))
            out[edge] = outer - inner
        return out


def valid_tasks(m: Tensor, n: int) -> Tensor:
    """Per task: query and most supports have a non-degenerate foreground fraction."""
    frac = m.view(-1, n, m[0].numel()).mean(-1)
    ok = (frac >= MIN_FG) & (frac <= MAX_FG)
    return ok[:, 0] & (ok[:, 1:].float().mean(1) >= MIN_VALID_SUPPORTS)
