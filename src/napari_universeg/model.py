"""UniverSeg (Butoi et al., ICCV 2023), written from the paper's equations.

CrossConv(u, v_i) = Conv(u || v_i), one weight shared by every support item v_i. A convolution
is linear in its input channels, so Conv(u || v) = W_u * u + W_v * v + b: the query term is
computed once per query instead of once per support item (the "split cross-conv"). This is the
model's only code path; a test compares it with the literal concatenation.

CrossBlock(u, V):  z_i  = CrossConv(u, v_i)
                   u'   = LeakyReLU(Conv_target(mean_i z_i))
                   v_i' = LeakyReLU(Conv_support(z_i))
The mean is taken before the target conv, as in the official weights. In the last block only
that mean reaches the head, and it is linear in the support items up to there (upsampling and
W_v * v), so the items are averaged first and convolved once (exact; 1.5x per support item).

Shapes: query (B, C, H, W); support (Bs, S, C, H, W) with Bs = B, or Bs = 1 for a support set
shared by all B queries (its first-block term is then computed once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

LEAKY_SLOPE = 0.01


def _act(x: Tensor) -> Tensor:
    return F.leaky_relu(x, LEAKY_SLOPE, inplace=True)


def _conv5d(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """Apply a 2D conv to every item of a (B, S, C, H, W) tensor."""
    b, s = x.shape[:2]
    y = conv(x.flatten(0, 1))
    return y.view(b, s, *y.shape[1:])


def _mean_over_support(t: Tensor) -> Tensor:
    """Mean over dim 1 of (B, S, C, H, W) by elementwise adds: conv outputs come in blocked or
    channels-last layouts for which a reduction over dim 1 was up to 10x slower on CPU."""
    acc = t[:, 0].clone()
    for i in range(1, t.shape[1]):
        acc.add_(t[:, i])
    return acc.div_(t.shape[1])


def _split_conv(groups: Sequence[Tensor], weight: Tensor) -> Tensor:
    """Conv of the channel-concatenation of ``groups`` without building it: sum_k W_k * g_k.
    Groups are 4D (N, c, H, W) or 5D (B, S, c, H, W)."""
    out, start = None, 0
    for g in groups:
        c = g.shape[-3]
        flat = g.flatten(0, 1) if g.dim() == 5 else g
        part = F.conv2d(flat, weight[:, start : start + c], padding=1)
        out = part if out is None else out.add_(part)
        start += c
    if groups[0].dim() == 5:
        out = out.view(*groups[0].shape[:2], *out.shape[1:])
    return out


class CrossBlock(nn.Module):
    """One UniverSeg block; the cross-conv weight's input channels are query first, then support."""

    def __init__(self, query_in: int, support_in: int, out: int):
        super().__init__()
        self.query_in = query_in
        cross = nn.Conv2d(query_in + support_in, out, 3, padding=1)  # for its default init
        self.cross_weight = nn.Parameter(cross.weight.detach().clone())
        self.cross_bias = nn.Parameter(cross.bias.detach().clone())
        self.target_conv = nn.Conv2d(out, out, 3, padding=1)
        self.support_conv = nn.Conv2d(out, out, 3, padding=1)

    def support_term(self, support: Sequence[Tensor]) -> Tensor:
        """W_v * v for support groups of shape (Bs, S, c, H, W); bias excluded."""
        return _split_conv(support, self.cross_weight[:, self.query_in :])

    def forward(self, query: Sequence[Tensor], support_term: Tensor, need_support: bool = True) -> tuple[Tensor, Tensor | None]:
        """(u', V') from query groups (B, c, H, W) and the support term (Bs, S, C, H, W) of
        ``support_term``; V' is None when ``need_support`` is False."""
        zu = _split_conv(query, self.cross_weight[:, : self.query_in])
        zu = zu + self.cross_bias[:, None, None]  # (B, C, H, W)
        u = _act(self.target_conv(zu + _mean_over_support(support_term)))  # mean_i (zu + zv_i)
        if not need_support:
            return u, None
        z = zu[:, None] + support_term  # (B, S, C, H, W), broadcast over a shared support
        return u, _act(_conv5d(z, self.support_conv))


@dataclass(frozen=True)
class ModelConfig:
    """Channel widths of the encoder and decoder blocks (the official model: 4 x 64 and 3 x 64)."""

    encoder_widths: tuple[int, ...] = (64, 64, 64, 64)
    decoder_widths: tuple[int, ...] = (64, 64, 64)

    def to_dict(self) -> dict:
        """JSON-ready widths, as stored in a weights file's metadata."""
        return {"encoder_widths": list(self.encoder_widths), "decoder_widths": list(self.decoder_widths)}

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """The config of ``to_dict``'s output."""
        return cls(tuple(int(w) for w in d["encoder_widths"]), tuple(int(w) for w in d["decoder_widths"]))


class UniverSeg(nn.Module):
    """UniverSeg: query (B,1,H,W), support images and labels (B,S,1,H,W) -> logits (B,1,H,W).

    H and W must be divisible by 2**(len(encoder_widths)-1) (8 for the standard model).
    """

    def __init__(
        self,
        encoder_widths: Sequence[int] = (64, 64, 64, 64),
        decoder_widths: Sequence[int] = (64, 64, 64),
    ):
        super().__init__()
        if len(decoder_widths) != len(encoder_widths) - 1:
            raise ValueError("need exactly one decoder block fewer than encoder blocks")
        self.config = ModelConfig(tuple(encoder_widths), tuple(decoder_widths))
        self.encoder = nn.ModuleList()
        q_in, s_in = 1, 2  # query image; support image + mask
        for w in encoder_widths:
            self.encoder.append(CrossBlock(q_in, s_in, w))
            q_in = s_in = w
        self.decoder = nn.ModuleList()
        for w, skip in zip(decoder_widths, reversed(encoder_widths[:-1])):
            self.decoder.append(CrossBlock(q_in + skip, s_in + skip, w))
            q_in = s_in = w
        self.head = nn.Conv2d(q_in, 1, 1)

    @property
    def divisor(self) -> int:
        """Height and width must be multiples of this (2 per pooling level)."""
        return 2 ** (len(self.encoder) - 1)

    def support_features(self, support_images: Tensor, support_labels: Tensor) -> Tensor:
        """The only support-only part of the network: the first block's support term.
        Pass it to ``forward(..., support_features=...)`` to reuse it across query batches."""
        return self.encoder[0].support_term([support_images, support_labels])

    def forward(
        self,
        target_image: Tensor,
        support_images: Tensor | None = None,
        support_labels: Tensor | None = None,
        *,
        support_features: Tensor | None = None,
    ) -> Tensor:
        """Logits (B, 1, H, W) float for query images (B, 1, H, W) from support images and binary
        labels (B or 1, S, 1, H, W) float in [0, 1], or from ``support_features`` (precomputed with
        ``support_features()``). H and W must be multiples of ``divisor``."""
        if support_features is None:
            if support_images is None or support_labels is None:
                raise ValueError("give support_images and support_labels, or support_features")
            support_features = self.support_features(support_images, support_labels)
        h, w = target_image.shape[-2:]
        if h % self.divisor or w % self.divisor:
            raise ValueError(f"image size {h}x{w} must be divisible by {self.divisor}")

        u: Tensor = target_image
        v: Tensor | None = None
        skips: list[tuple[Tensor, Tensor]] = []
        for i, block in enumerate(self.encoder):
            if i > 0:
                u = F.max_pool2d(u, 2)
                v = F.max_pool2d(v.flatten(0, 1), 2).view(*v.shape[:3], u.shape[-2], u.shape[-1])
            term = support_features if i == 0 else block.support_term([v])
            u, v = block([u], term)
            if i < len(self.encoder) - 1:
                skips.append((u, v))
        for j, block in enumerate(self.decoder):
            skip_u, skip_v = skips.pop()
            last = j == len(self.decoder) - 1
            if last:
                # Only the support items' mean reaches the head from here, and upsampling and the
                # cross-conv's support term are linear: average the items first, then one conv
                # instead of S (the largest conv per item, 40% of the work at S=24).
                v, skip_v = _mean_over_support(v)[:, None], _mean_over_support(skip_v)[:, None]
            u = F.interpolate(u, scale_factor=2, mode="bilinear", align_corners=True)
            v = F.interpolate(v.flatten(0, 1), scale_factor=2, mode="bilinear", align_corners=True)
            v = v.view(*skip_v.shape[:2], *v.shape[1:])
            # The last block's support output never reaches the head: skip computing it.
            u, v = block([u, skip_u], block.support_term([v, skip_v]), need_support=not last)
        return self.head(u)
