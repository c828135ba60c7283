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

With ``chunk`` (inference), each block takes the support items a few at a time (at most ``chunk``
query x support items), part after part in every block, so that only the blocks' outputs are
held for all items, not their intermediate terms; of the first block's outputs only what the rest
uses is kept (pooled, and their mean for the last decoder block). The same sums in the same order: at S = 64 a
512 px stack peaked under 0.4 GB instead of 0.94 GB above the loaded model (benchmarks/stacks.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

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


def _sum_over_support(t: Tensor, acc: Tensor | None = None) -> Tensor:
    """``acc`` plus the sum over dim 1 of (B, S, C, H, W), by elementwise adds in item order: conv
    outputs come in blocked or channels-last layouts for which a reduction over dim 1 was up to
    10x slower on CPU."""
    start = 0
    if acc is None:
        acc, start = t[:, 0].clone(), 1
    for i in range(start, t.shape[1]):
        acc.add_(t[:, i])
    return acc


def _pool5d(v: Tensor) -> Tensor:
    """2x2 max pooling of every item of (B, S, C, H, W)."""
    y = F.max_pool2d(v.flatten(0, 1), 2)
    return y.view(*v.shape[:3], *y.shape[-2:])


def _up5d(v: Tensor) -> Tensor:
    """2x bilinear upsampling of every item of (B, S, C, H, W)."""
    y = F.interpolate(v.flatten(0, 1), scale_factor=2, mode="bilinear", align_corners=True)
    return y.view(*v.shape[:3], *y.shape[-2:])


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


Parts = list[Tensor]  # the support items' features, part by part: (B, k, C, H, W) each


def _parts_of(t: Tensor, parts: Sequence[slice], k: int) -> Tensor:
    return t[:, parts[k]]


def _encoder_term(block: CrossBlock, v: Parts, pooled: bool, k: int) -> Tensor:
    """An encoder block's support term of part ``k`` of the previous block's output (pooled here
    unless it was kept ``pooled``)."""
    return block.support_term([v[k] if pooled else _pool5d(v[k])])


class _PooledAndMean:
    """What the network uses of the first block's support outputs: pooled, for the next block, and
    their mean over the items, for the last decoder block (which sees only the mean). Keeping
    these instead of the outputs saves the largest tensor of a pass (S x 64 x H x W)."""

    def __init__(self):
        self.total: Tensor | None = None

    def __call__(self, out: Tensor) -> Tensor:
        self.total = _sum_over_support(out, self.total)
        return _pool5d(out)


def _upsampled_term(block: CrossBlock, v: Parts, skip_v: Parts, k: int) -> Tensor:
    """A decoder block's support term of part ``k``: the block below, upsampled, and the skip."""
    return block.support_term([_up5d(v[k]), skip_v[k]])


def _mean_of_parts(v: Parts) -> Tensor:
    """(B, 1, C, H, W): the mean over every item of every part."""
    total = None
    for t in v:
        total = _sum_over_support(t, total)
    return total.div_(sum(t.shape[1] for t in v))[:, None]


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

    def forward(
        self,
        query: Sequence[Tensor],
        support_term: Callable[[int], Tensor],
        parts: Sequence[slice],
        need_support: bool = True,
        keep: Callable[[Tensor], Tensor] | None = None,
    ) -> tuple[Tensor, Parts | None]:
        """(u', V') from query groups (B, c, H, W) and ``support_term(k)``, the support term
        (Bs, k_items, C, H, W) of the items ``parts[k]``, one part after the other; V' is the
        list of (B, k_items, C, H, W) outputs per part (``keep(output)`` of each, with ``keep``),
        None when ``need_support`` is False."""
        zu = _split_conv(query, self.cross_weight[:, : self.query_in])
        zu = zu + self.cross_bias[:, None, None]  # (B, C, H, W)
        total, v = None, []
        for k in range(len(parts)):
            term = support_term(k)
            total = _sum_over_support(term, total)
            if need_support:  # z_i = zu + zv_i, broadcast over a shared support
                out = _act(_conv5d(zu[:, None] + term, self.support_conv))
                v.append(out if keep is None else keep(out))
        u = _act(self.target_conv(zu + total.div_(parts[-1].stop)))  # mean_i (zu + zv_i)
        return u, v if need_support else None


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
        chunk: int | None = None,
    ) -> Tensor:
        """Logits (B, 1, H, W) float for query images (B, 1, H, W) from support images and binary
        labels (B or 1, S, 1, H, W) float in [0, 1], or from ``support_features`` (precomputed with
        ``support_features()``). H and W must be multiples of ``divisor``. ``chunk``: at most this
        many query x support items at a time (bounds memory; for inference)."""
        if support_features is None:
            if support_images is None or support_labels is None:
                raise ValueError("give support_images and support_labels, or support_features")
            support_features = self.support_features(support_images, support_labels)
        h, w = target_image.shape[-2:]
        if h % self.divisor or w % self.divisor:
            raise ValueError(f"image size {h}x{w} must be divisible by {self.divisor}")

        items, b = support_features.shape[1], target_image.shape[0]
        step = items if chunk is None else max(1, chunk // b)
        parts = [slice(start, min(items, start + step)) for start in range(0, items, step)]
        first = _PooledAndMean() if self.decoder else None
        u, v = self.encoder[0]([target_image], partial(_parts_of, support_features, parts), parts, keep=first)
        skips: list[tuple[Tensor, Parts]] = [(u, [first.total.div_(items)[:, None]])] if first else []
        for i, block in enumerate(self.encoder[1:], 1):
            u = F.max_pool2d(u, 2)
            u, v = block([u], partial(_encoder_term, block, v, i == 1), parts)
            if i < len(self.encoder) - 1:
                skips.append((u, v))
        for j, block in enumerate(self.decoder):
            skip_u, skip_v = skips.pop()
            last = j == len(self.decoder) - 1
            if last:
                # Only the support items' mean reaches the head from here (the skip is the first
                # block's mean already), and upsampling and the cross-conv's support term are
                # linear: average the items first, then one conv instead of S (the largest conv
                # per item, 40% of the work at S=24).
                v, parts = [_mean_of_parts(v)], [slice(0, 1)]
            u = F.interpolate(u, scale_factor=2, mode="bilinear", align_corners=True)
            # The last block's support output never reaches the head: skip computing it.
            u, v = block([u, skip_u], partial(_upsampled_term, block, v, skip_v), parts, need_support=not last)
        return self.head(u)
