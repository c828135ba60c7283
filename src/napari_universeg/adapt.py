"""Test-time adaptation: fine-tuning on episodes built from the support set.

Each step, ``QUERIES_PER_STEP`` random examples are queries, each with up to
``MAX_EPISODE_SUPPORT`` of the others as its support, in the view the images will be segmented in
(resized whole, or crops at the tile scale), with random flips, 90-degree turns and contrast
changes; the loss is soft Dice + cross-entropy, as in training. A single example is cut into
halves that predict each other. Only a copy of the model is changed; the weights on disk never are.

The annotation loop adds one example at a time, so an adaptation continues where the last one
stopped when examples were only added (Segmenter.adapted_model): each new example buys
``STEPS_PER_EXAMPLE`` more steps on all of them, and the more examples, the longer the model is
tuned. Known from the literature on test-time tuning of few-shot segmenters (e.g. fine-tuning the
encoder on the support set with episodes, as in "Take a Peek", 2025): gains come with a risk of
overfitting the few examples. Measured here (benchmarks/results/adapt.md): from four examples on
it gained 0.02-0.09 Dice on three evaldata sets and lost up to 0.01 on the fourth (two cell
lines); from the halves of one image it lost 0.09 on two sets, so "auto" starts at ``MIN_EXAMPLES``.
Against that risk "auto" tests a continued adaptation on each new example before training on it,
and runs the shipped model where the adaptation clearly did worse (``Adaptation.helps``,
Segmenter.adapted_model).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .crops import random_crop
from .device import autocast
from .model import UniverSeg

# 3e-5 (the end of the training schedule) moved the model too little in tens of steps for the
# annotation loop to learn (EM membranes, 4 examples, 10 slices: 0.733 after 20 steps; 0.760
# after 60 steps at 3e-4, 0.789 after 150).
ADAPT_LR = 3e-4
STEPS_PER_EXAMPLE = 40  # steps a resized example adds (2 CPU cores: 0.43 s a step in fp32, 0.29 s with bf16)
# Steps an example adds in a tiled view, where it holds several inputs' worth of pixels (EM at 1/2:
# four) and each step crops it afresh: at most this many, so that a round's training stays within
# about a minute on 2 cores. On EM 320 steps of fresh crops beat 160 (benchmarks/results/adapt.md).
STEPS_PER_LARGE_EXAMPLE = 80
MAX_STEPS = 200  # most steps of one adaptation from the shipped model (many examples at once)
MIN_EXAMPLES = 2  # "auto" adapts from this many examples (the halves of one image overfit)
# Episodes per step and support items per episode: the cost of a step grows with their product
# (about 70 ms per item on 2 cores); 4 x 8 took 47 s for 20 steps, 2 x 4 keeps it near 10 s.
QUERIES_PER_STEP = 2
MAX_EPISODE_SUPPORT = 4


@dataclass
class Adaptation:
    """A tuned copy of the model (eval mode), its optimiser's state, the steps it took, and its
    record on examples it had not been trained on yet (``checks``)."""

    model: UniverSeg
    optimizer: dict[str, Any] | None = None  # Adam's state_dict; None before the first step
    steps: int = 0
    # Per example tested before it was trained on: Dice of this adaptation's model minus Dice of
    # the shipped model, both predicting it from the examples trained on so far ("test, then
    # train"; Segmenter.adapted_model). Carried on by continued adaptations.
    checks: tuple[float, ...] = ()

    @property
    def helps(self) -> bool:
        """True unless the tests so far clearly say it predicts new examples worse than the
        shipped model: their mean below 0 by more than its standard error (the rule the view
        choice uses, choice.clear_gain), which takes two tests at least. Where they do, "auto"
        runs the shipped model instead. One test is one image's Dice: on the neurons one came
        out at -0.06 for a model that did better on the other slices (that round gave 0.705
        with the shipped model, 0.743 with the adapted one), and the adaptation is the default
        because it helped on three of the four evaluation sets."""
        if len(self.checks) < 2:
            return True
        checks = np.asarray(self.checks, float)
        return -checks.mean() <= checks.std(ddof=1) / np.sqrt(len(checks))


def steps_for(inputs: Sequence[float], continued: bool) -> int:
    """Steps of an adaptation for the examples (or halves) it has not seen yet; ``inputs``: per
    example, how many model inputs' worth of pixels it holds in its view (1 when resized). Each adds
    STEPS_PER_EXAMPLE per input's worth, at least STEPS_PER_EXAMPLE and at most
    STEPS_PER_LARGE_EXAMPLE; a fresh adaptation stops at MAX_STEPS."""
    steps = sum(int(np.clip(round(STEPS_PER_EXAMPLE * n), STEPS_PER_EXAMPLE, STEPS_PER_LARGE_EXAMPLE)) for n in inputs)
    return steps if continued else min(steps, MAX_STEPS)


def fine_tune(
    start: Adaptation,
    pairs: Sequence[tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    size: int,
    lr: float = ADAPT_LR,
    seed: int = 0,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
    dtype: torch.dtype | None = None,
    tail_average: bool | None = None,
) -> Adaptation | None:
    """``steps`` more steps from ``start`` (a copy is trained; on the model's device); None if
    cancelled. ``progress(done, steps)`` after each step. ``dtype``: autocast the forward pass
    to it (bf16 where the device has fast bf16, device.autocast_dtype), else fp32; the weights
    and the optimiser stay fp32.

    ``pairs``: per example, a (1, 1, h, w) float32 image tensor and the same-shaped 0/1 mask of
    one class, h, w >= ``size``; each time an example is drawn (as a query, or in the support of
    another) a fresh size x size crop of it is taken (crops.random_crop), or the whole when it is
    size x size (a resized view).

    With ``tail_average`` the weights returned are the mean of the weights after each of the last
    half of the steps (Polyak-Ruppert tail averaging), not the last step's, and a continued
    adaptation starts from them; None (the plugin's rule): where every example is one input
    (size x size: a resized view). There each step shows the model the same few images, which it
    soon fits, and at a constant learning rate the last weights then wander with the episodes
    drawn; their mean lies nearer the middle. In a tiled view every step crops the examples afresh,
    so the model is still learning new pixels when it stops, and a mean over the last half lags
    behind. Measured (benchmarks.adapt_spread and the annotation loop; benchmarks/results/adapt.md):
    resized neurons, UniverSeg alone over five seeds +0.013 to +0.024 on three painted sets (14 of
    15 paired runs better); EM in tiles at 1/2, the same mean over three seeds, but in the loop
    lower in 12 of 15 rounds (by up to 0.011).
    """
    if len(pairs) < 2:
        raise ValueError("adaptation needs at least two examples (or halves of one)")
    device = next(start.model.parameters()).device
    tuned = copy.deepcopy(start.model).float().train()
    opt = torch.optim.Adam(tuned.parameters(), lr=lr)
    if start.optimizer is not None:
        opt.load_state_dict(copy.deepcopy(start.optimizer))
    # Seeded by the steps already taken, so that a continued adaptation draws new episodes.
    gen = torch.Generator().manual_seed(seed + start.steps)
    rng = np.random.default_rng(seed + start.steps)
    if tail_average is None:
        tail_average = all(image.shape[-2:] == (size, size) for image, _ in pairs)
    averaged, first_averaged = None, steps - max(1, steps // 2)
    for done in range(steps):
        if cancel is not None and cancel():
            return None
        queries = rng.permutation(len(pairs))[:QUERIES_PER_STEP]
        q_img, q_mask, s_img, s_mask = [], [], [], []
        for q in queries:
            img, mask = random_crop(pairs[q][0][0], pairs[q][1][0], size, rng)
            q_img.append(img)
            q_mask.append(mask)
            rest = [i for i in range(len(pairs)) if i != q]
            rest = rng.permutation(rest)[:MAX_EPISODE_SUPPORT]
            support = [random_crop(pairs[i][0][0], pairs[i][1][0], size, rng) for i in rest]
            s_img.append(torch.stack([s[0] for s in support]))
            s_mask.append(torch.stack([s[1] for s in support]))
        x, y = _augment(torch.stack(q_img), torch.stack(q_mask), gen)
        si, sm = _augment(torch.stack(s_img).flatten(0, 1), torch.stack(s_mask).flatten(0, 1), gen)
        si, sm = si.view(len(queries), -1, *si.shape[1:]), sm.view(len(queries), -1, *sm.shape[1:])
        with autocast(device, dtype):
            logits = tuned(x.to(device), si.to(device), sm.to(device))
        loss = _loss(logits, y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if tail_average and done >= first_averaged:
            with torch.no_grad():
                if averaged is None:
                    averaged = [p.detach().clone() for p in tuned.parameters()]
                else:
                    for a, p in zip(averaged, tuned.parameters()):
                        a.add_(p.detach() - a, alpha=1.0 / (done - first_averaged + 1))
        if progress is not None:
            progress(done + 1, steps)
    if averaged is not None:
        with torch.no_grad():
            for a, p in zip(averaged, tuned.parameters()):
                p.copy_(a)
    return Adaptation(tuned.eval(), opt.state_dict(), start.steps + steps, start.checks)


def _augment(images: torch.Tensor, masks: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per item: a random flip and 90-degree turn (images and masks alike), and a random gamma and
    contrast of the image. (N, 1, H, W) float32 in, the same out."""
    out_i, out_m = [], []
    for im, m in zip(images, masks):
        k = int(torch.randint(4, (1,), generator=gen))
        flip = bool(torch.randint(2, (1,), generator=gen))
        im, m = torch.rot90(im, k, (-2, -1)), torch.rot90(m, k, (-2, -1))
        if flip:
            im, m = im.flip(-1), m.flip(-1)
        gamma = float(torch.empty(1).uniform_(0.7, 1.4, generator=gen))
        gain = float(torch.empty(1).uniform_(0.8, 1.2, generator=gen))
        out_i.append((im.clamp(0, 1) ** gamma * gain).clamp(0, 1))
        out_m.append(m)
    return torch.stack(out_i), torch.stack(out_m)


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice + binary cross-entropy, averaged over the batch (as in training)."""
    logits, target = logits.float().flatten(1), target.float().flatten(1)
    p = torch.sigmoid(logits)
    soft_dice = (2 * (p * target).sum(1) + 1) / (p.sum(1) + target.sum(1) + 1)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(1)
    return (1 - soft_dice + bce).mean()
