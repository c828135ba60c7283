"""A literal implementation of the paper's formulas, kept only as a reference for tests and
benchmarks: CrossConv concatenates the query with every support item and convolves each pair.
It reads parameters from an official-layout state_dict, so it also checks the key map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _cross_block(sd: dict, prefix: str, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    b, s = v.shape[:2]
    pairs = torch.cat([u[:, None].expand(b, s, *u.shape[1:]), v], dim=2)  # (B, S, Cu+Cv, H, W)
    z = F.conv2d(pairs.flatten(0, 1), sd[f"{prefix}.cross.cross_conv.weight"], sd[f"{prefix}.cross.cross_conv.bias"], padding=1)
    z = z.view(b, s, *z.shape[1:])
    u_new = F.leaky_relu(F.conv2d(z.mean(1), sd[f"{prefix}.target.vmapped.conv.weight"], sd[f"{prefix}.target.vmapped.conv.bias"], padding=1), 0.01)
    v_new = F.leaky_relu(
        F.conv2d(z.flatten(0, 1), sd[f"{prefix}.support.vmapped.conv.weight"], sd[f"{prefix}.support.vmapped.conv.bias"], padding=1), 0.01
    )
    return u_new, v_new.view(b, s, *v_new.shape[1:])


def naive_forward(sd: dict, query: torch.Tensor, support_images: torch.Tensor, support_labels: torch.Tensor) -> torch.Tensor:
    n_enc = len({k.split(".")[1] for k in sd if k.startswith("enc_blocks.")})
    n_dec = len({k.split(".")[1] for k in sd if k.startswith("dec_blocks.")})
    u, v = query, torch.cat([support_images, support_labels], dim=2)
    skips = []
    for i in range(n_enc):
        if i:
            u = F.max_pool2d(u, 2)
            v = F.max_pool2d(v.flatten(0, 1), 2).view(*v.shape[:3], *u.shape[-2:])
        u, v = _cross_block(sd, f"enc_blocks.{i}", u, v)
        if i < n_enc - 1:
            skips.append((u, v))
    for i in range(n_dec):
        su, sv = skips.pop()
        u = torch.cat([F.interpolate(u, scale_factor=2, mode="bilinear", align_corners=True), su], dim=1)
        up = F.interpolate(v.flatten(0, 1), scale_factor=2, mode="bilinear", align_corners=True)
        v = torch.cat([up.view(*sv.shape[:2], *up.shape[1:]), sv], dim=2)
        u, v = _cross_block(sd, f"dec_blocks.{i}", u, v)
    return F.conv2d(u, sd["out_conv.conv.weight"], sd["out_conv.conv.bias"])


def official_shapes(enc=(64, 64, 64, 64), dec=(64, 64, 64)) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an official-layout state_dict for the given widths."""
    shapes = {}
    q = s = None
    for i, w in enumerate(enc):
        cin = 3 if i == 0 else q + s
        shapes.update(_block_shapes(f"enc_blocks.{i}", cin, w))
        q = s = w
    for i, (w, skip) in enumerate(zip(dec, reversed(enc[:-1]))):
        shapes.update(_block_shapes(f"dec_blocks.{i}", 2 * (q + skip), w))
        q = s = w
    shapes["out_conv.conv.weight"] = (1, q, 1, 1)
    shapes["out_conv.conv.bias"] = (1,)
    return shapes


def _block_shapes(prefix: str, cin: int, w: int) -> dict:
    return {
        f"{prefix}.cross.cross_conv.weight": (w, cin, 3, 3),
        f"{prefix}.cross.cross_conv.bias": (w,),
        f"{prefix}.target.vmapped.conv.weight": (w, w, 3, 3),
        f"{prefix}.target.vmapped.conv.bias": (w,),
        f"{prefix}.support.vmapped.conv.weight": (w, w, 3, 3),
        f"{prefix}.support.vmapped.conv.bias": (w,),
    }


def random_official_state_dict(enc=(64, 64, 64, 64), dec=(64, 64, 64), seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in official_shapes(enc, dec).items():
        fan_in = shape[1] * shape[2] * shape[3] if len(shape) == 4 else 10
        out[k] = torch.randn(shape, generator=g) * (1 / (3 * fan_in)) ** 0.5  # PyTorch default init scale
    return out
