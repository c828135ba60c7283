"""Where the adaptation's data runs out in a tiled view: UniverSeg alone, adapted on a fixed set
of painted slices, with the crops it trains on drawn once (four per example, what the plugin did
until session 21) or afresh each time an example is drawn (what it does now, crops.random_crop),
scored on the unpainted slices after each number of
steps of ``--steps`` (one adaptation continued, as the annotation loop continues it).

    python -m benchmarks.adapt_crops SET PAINTED [--steps 160,320] [--every 2] [--json out.json]

e.g. ``python -m benchmarks.adapt_crops isbi2012_em_membranes 15,4,6,5`` (28 and 44 min for
the two sequences in benchmarks/results/adapt.md, 2-core AVX2 CPU). The plan (view) is the
plugin's choice for the painted slices; in a resized view both draws are the same. ``--every``:
score every n-th unpainted slice.
"""

from __future__ import annotations

import json
import time

import numpy as np

from benchmarks.painted_adaptation import PaintedSeries, parser
from napari_universeg import adapt
from napari_universeg.adapt import Adaptation, fine_tune
from napari_universeg.crops import crops
from napari_universeg.predict import PredictOptions


def drawn_once(pairs, size: int, seed: int):
    """A stand-in for crops.random_crop in adapt.py that picks one of four crops of each of
    ``pairs`` ((1, 1, h, w) tensors), drawn once as crops.crops draws them."""
    rng = np.random.default_rng(seed)
    fixed = {image.data_ptr(): [(c[0], m[0].float()) for c, m in crops(image, mask > 0, size, 4, rng)] for image, mask in pairs}

    def pick(image, mask, size, rng):
        options = fixed[image.data_ptr()]
        return options[int(rng.integers(len(options)))]

    return pick


def main() -> None:
    p = parser(__doc__, "15,4,6,5")
    p.add_argument("--steps", default="160,320")
    p.add_argument("--every", type=int, default=2)
    args = p.parse_args()
    task = PaintedSeries.load(args.data / args.set, args.painted, PredictOptions())
    seg, options, pairs, rest = task.seg, task.options, task.pairs, task.rest(args.every)
    draws = {"four crops drawn once": drawn_once(pairs, seg.size, options.seed), "a fresh crop each step": adapt.random_crop}
    result = {
        "set": args.set,
        "painted": task.painted,
        "plan": task.plan.describe(),
        "scored": rest,
        "shipped": task.score(seg.model, rest),
        "runs": [],
    }
    print(json.dumps({k: result[k] for k in ("plan", "shipped")}), flush=True)
    original = adapt.random_crop
    try:
        for name, pick in draws.items():
            adapt.random_crop = pick
            adaptation = Adaptation(seg.model)
            for steps in (int(s) for s in args.steps.split(",")):
                start = time.perf_counter()
                adaptation = fine_tune(adaptation, pairs, steps - adaptation.steps, seg.size, seed=options.seed, dtype=seg.dtype)
                row = {"draw": name, "steps": steps, "train_s": time.perf_counter() - start, "dice": task.score(adaptation.model, rest)}
                result["runs"].append(row)
                print(json.dumps(row), flush=True)
                if args.json:
                    args.json.write_text(json.dumps(result, indent=1))
    finally:
        adapt.random_crop = original


if __name__ == "__main__":
    main()
