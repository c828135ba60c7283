"""Where the adaptation's data runs out in a tiled view: UniverSeg alone, adapted on a fixed set
of painted slices, with the crops it trains on drawn once (four per example, what the plugin
does, predict.ADAPT_CROPS) or afresh at every step (a crop anywhere in the example, mostly centred
on foreground, as predict._crops draws them), scored on the unpainted slices after each number of
steps of ``--steps`` (one adaptation continued, as the annotation loop continues it).

    python -m benchmarks.adapt_crops SET PAINTED [--steps 160,320] [--every 2] [--json out.json]

e.g. ``python -m benchmarks.adapt_crops isbi2012_em_membranes 15,4,6,5`` (28 and 44 min for
the two sequences in benchmarks/results/adapt.md, 2-core AVX2 CPU). The plan (view) is the
plugin's choice for the painted slices; in a resized view both draws are the same. ``--every``:
score every n-th unpainted slice.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.annotation_loop import painted_support, series
from benchmarks.protocol_task import EVALDATA
from napari_universeg import adapt
from napari_universeg.adapt import Adaptation, fine_tune
from napari_universeg.evaluate import dice
from napari_universeg.predict import PredictOptions, Segmenter, _crops


def fresh_crop(size: int):
    """An adapt._pick that draws a new size x size crop of a (1, 1, H, W) example at each call."""

    def pick(pair, rng):
        image, mask = pair
        n = 4 if rng.integers(4) == 3 else 1  # _crops' 4th crop is the random one, the others near foreground
        crop_image, crop_mask = list(_crops(image, mask > 0, size, n, rng))[-1]
        return crop_image[0], crop_mask[0].float()

    return pick


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("set")
    p.add_argument("painted", help="slice indices, e.g. 15,4,6,5")
    p.add_argument("--steps", default="160,320")
    p.add_argument("--every", type=int, default=2)
    p.add_argument("--data", type=Path, default=EVALDATA)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    painted = [int(x) for x in args.painted.split(",")]
    images, masks = series(args.data / args.set, 30)
    seg = Segmenter.from_weights("default")
    options = PredictOptions()
    support = painted_support(images, masks, painted)
    examples = support.enabled()
    plan = seg.plan(support, images[0].shape[:2], options, provisional=False)
    rest = [i for i in range(len(images)) if i not in painted][:: args.every]

    def score(model) -> float:
        return float(np.mean([dice(seg.universeg_probs(examples, images[i], plan, [1], options, model)[0] > 0.5, masks[i] > 0) for i in rest]))

    scale = None if plan.mode == "resize" else plan.scale
    whole = []
    for ex in examples:
        image, mask = seg._example_tensors(ex, scale)
        whole.append((image, (mask == 1).float()))
    draws = {
        "four crops drawn once": (adapt._pick, seg._adaptation_pairs(examples, 1, plan, options)),
        "a fresh crop each step": (fresh_crop(seg.size), whole),
    }
    result = {"set": args.set, "painted": painted, "plan": plan.describe(), "scored": rest, "shipped": score(seg.model), "runs": []}
    print(json.dumps({k: result[k] for k in ("plan", "shipped")}), flush=True)
    original = adapt._pick
    try:
        for name, (pick, pairs) in draws.items():
            adapt._pick = pick
            adaptation = Adaptation(seg.model)
            for steps in (int(s) for s in args.steps.split(",")):
                start = time.perf_counter()
                adaptation = fine_tune(adaptation, pairs, steps - adaptation.steps, seed=options.seed, dtype=seg.dtype)
                row = {"draw": name, "steps": steps, "train_s": time.perf_counter() - start, "dice": score(adaptation.model)}
                result["runs"].append(row)
                print(json.dumps(row), flush=True)
                if args.json:
                    args.json.write_text(json.dumps(result, indent=1))
    finally:
        adapt._pick = original


if __name__ == "__main__":
    main()
