"""What the adaptation benchmarks (adapt_crops, adapt_spread) share: a fixed set of painted slices
of an evaldata series, the plugin's plan for them, the adaptation pairs in that view, and Dice of
a model on the unpainted slices.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.annotation_loop import painted_support, series
from benchmarks.protocol_task import EVALDATA
from napari_universeg.choice import Plan
from napari_universeg.evaluate import dice
from napari_universeg.predict import PredictOptions, Segmenter
from napari_universeg.support import Example

SLICES = 30  # the series' first slices, as in the annotation loop


def parser(doc: str, example: str) -> argparse.ArgumentParser:
    """Arguments SET PAINTED (e.g. ``example``), --data and --json; a benchmark adds its own."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("set")
    p.add_argument("painted", help=f"slice indices, e.g. {example}")
    p.add_argument("--data", type=Path, default=EVALDATA)
    p.add_argument("--json", type=Path)
    return p


@dataclass
class PaintedSeries:
    """The painted slices of a series and what an adaptation on them needs."""

    images: list[np.ndarray]
    masks: list[np.ndarray]
    painted: list[int]
    seg: Segmenter
    options: PredictOptions
    examples: list[Example]
    plan: Plan
    pairs: list[tuple[torch.Tensor, torch.Tensor]]  # (1, 1, h, w) image and 0/1 mask per example, in the plan's view

    @classmethod
    def load(cls, folder: Path, painted: str, options: PredictOptions) -> PaintedSeries:
        """The shipped weights, the series in ``folder``, ``painted`` ("15,3") as examples and the
        plugin's plan for them under ``options``."""
        images, masks = series(folder, SLICES)
        slices = [int(x) for x in painted.split(",")]
        seg = Segmenter.from_weights("default")
        support = painted_support(images, masks, slices)
        plan = seg.plan(support, images[0].shape[:2], options, provisional=False)
        examples = support.enabled()
        pairs = [(image, mask) for _, image, mask in seg._adaptation_pairs(examples, 1, plan, options)]
        return cls(images, masks, slices, seg, options, examples, plan, pairs)

    def rest(self, every: int = 1) -> list[int]:
        """Every ``every``-th unpainted slice."""
        return [i for i in range(len(self.images)) if i not in self.painted][::every]

    def score(self, model, slices: list[int]) -> float:
        """Mean Dice of UniverSeg with ``model`` on ``slices``, the painted slices as support."""
        seg, opts = self.seg, self.options
        return float(
            np.mean(
                [dice(seg.universeg_probs(self.examples, self.images[i], self.plan, [1], opts, model)[0] > 0.5, self.masks[i] > 0) for i in slices]
            )
        )
