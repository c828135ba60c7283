"""The engine against the paper's formula used as a user of the reference code would, end to end.

    python -m benchmarks.end_to_end [--sizes 16,64] [--slices 10] [--json PATH]

Both segment the same stack of 512 x 512 slices from the same S examples with the same weights
(the shipped default weights; the literal path reads them in the official checkpoint layout):
- literal: each example and slice resized to 128 x 128 and scaled to [0, 1], then the paper's
  formula as written (tests/naive_universeg.py: every (query, support item) pair concatenated and
  convolved), fp32, one slice per call, sigmoid, resized back, thresholded at 0.5 -- what the
  official code's example notebook does;
- engine: ``Segmenter.predict`` in resize mode with UniverSeg alone, as the CLI and the widget run it.
Prints ms per slice of each, their ratio, and the Dice between their masks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from napari_universeg import PredictOptions, Segmenter, SupportSet
from napari_universeg.evaluate import dice
from napari_universeg.sample_data import synthetic_stack
from napari_universeg.weights import official_key_map
from tests.naive_universeg import naive_forward

SIZE = 128


def _to_model(a: np.ndarray, nearest: bool = False) -> torch.Tensor:
    t = torch.from_numpy(a.astype(np.float32))[None, None]
    if nearest:
        return F.interpolate(t, size=(SIZE, SIZE), mode="nearest")
    t = F.interpolate(t, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
    return (t - t.min()) / (t.max() - t.min() + 1e-8)


def literal(sd: dict, support: list[tuple[np.ndarray, np.ndarray]], stack: np.ndarray) -> list[np.ndarray]:
    """Masks of every slice, the reference way (module docstring)."""
    si = torch.cat([_to_model(im) for im, _ in support])[None]
    sl = torch.cat([_to_model((m > 0).astype(np.float32), nearest=True) for _, m in support])[None]
    out = []
    with torch.inference_mode():
        for im in stack:
            logits = naive_forward(sd, _to_model(im), si, sl)
            p = F.interpolate(torch.sigmoid(logits), size=im.shape, mode="bilinear", align_corners=False)
            out.append(p[0, 0].numpy() > 0.5)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="16,64")
    p.add_argument("--slices", type=int, default=10)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    seg = Segmenter.from_weights("default", "cpu")
    ours = seg.model.state_dict()
    sd = {off: ours[name].float() for off, name in official_key_map(seg.model.config).items()}
    rows = []
    for s in (int(x) for x in args.sizes.split(",")):
        image, labels = synthetic_stack(n_slices=s + args.slices, size=512, seed=0)
        examples = [(image[i], labels[i]) for i in range(s)]
        stack = image[s:]
        support = SupportSet()
        for im, m in examples:
            support.add(im, (m > 0).astype(np.uint8))
        options = PredictOptions(mode="resize", method="universeg", support_size=s, adapt=False)
        seg.predict(support, stack[:1], options)  # warm-up of both, as a running session would be
        literal(sd, examples, stack[:1])
        start = time.perf_counter()
        engine = [r.labels > 0 for r in seg.predict(support, stack, options)]
        engine_ms = 1000 * (time.perf_counter() - start) / len(stack)
        start = time.perf_counter()
        reference = literal(sd, examples, stack)
        literal_ms = 1000 * (time.perf_counter() - start) / len(stack)
        agree = float(np.mean([dice(a, b) for a, b in zip(engine, reference)]))
        rows.append({"S": s, "slices": len(stack), "literal_ms": round(literal_ms), "engine_ms": round(engine_ms), "agreement_dice": round(agree, 3)})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nCPU: {platform.machine()}, {os.cpu_count()} cores; engine precision {seg.precision}; 512 x 512 slices, resize mode\n")
    print("| S | slices | literal formula, fp32, one slice per call: ms/slice | engine: ms/slice | speed-up | Dice between their masks |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['S']} | {r['slices']} | {r['literal_ms']} | {r['engine_ms']} | {r['literal_ms'] / r['engine_ms']:.1f}x | {r['agreement_dice']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
