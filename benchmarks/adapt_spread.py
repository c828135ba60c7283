"""How much an adaptation's result varies with its random episodes, and whether averaging the
weights over its last half of steps (tail averaging) steadies it: UniverSeg alone (no pixel
classifier) in the plugin's view for the painted slices, adapted from the shipped weights on them
with seeds 0 .. K-1 (the episodes' draws; the support's crops stay those of seed 0), as the loop's
first adaptation (adapt.steps_for), scored on every unpainted slice of the series.

    python -m benchmarks.adapt_spread SET PAINTED [--seeds 5] [--json out.json]

e.g. ``python -m benchmarks.adapt_spread pfcpn_brightfield_neurons 15,3``.
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
from napari_universeg.predict import PredictOptions, Segmenter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("set")
    p.add_argument("painted", help="slice indices, e.g. 15,3")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--data", type=Path, default=EVALDATA)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    painted = [int(x) for x in args.painted.split(",")]
    images, masks = series(args.data / args.set, 30)
    seg = Segmenter.from_weights("default")
    options = PredictOptions(method="universeg")
    support = painted_support(images, masks, painted)
    examples = support.enabled()
    plan = seg.plan(support, images[0].shape[:2], options, provisional=False)
    pairs = [(image, mask) for _, image, mask in seg._adaptation_pairs(examples, 1, plan, options)]
    steps = adapt.steps_for([seg._inputs(pair) for pair in pairs], continued=False)
    rest = [i for i in range(len(images)) if i not in painted]
    shipped = [dice(seg.universeg_probs(examples, images[i], plan, [1], options, seg.model)[0] > 0.5, masks[i] > 0) for i in rest]
    out = {"set": args.set, "painted": painted, "plan": plan.describe(), "steps": steps, "shipped": float(np.mean(shipped)), "runs": []}
    print(f"{args.set} {painted}: {plan.describe()}, {steps} steps; shipped model {out['shipped']:.3f}", flush=True)
    for averaged in (False, True):
        for seed in range(args.seeds):
            start = time.perf_counter()
            tuned = fine_tune(Adaptation(seg.model), pairs, steps, seg.size, seed=seed, dtype=seg.dtype, tail_average=averaged)
            d = [dice(seg.universeg_probs(examples, images[i], plan, [1], options, tuned.model)[0] > 0.5, masks[i] > 0) for i in rest]
            row = {"tail_average": averaged, "seed": seed, "dice_rest": float(np.mean(d)), "seconds": time.perf_counter() - start}
            out["runs"].append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                args.json.write_text(json.dumps(out, indent=1))
    for averaged in (False, True):
        v = [r["dice_rest"] for r in out["runs"] if r["tail_average"] == averaged]
        print(
            f"{'tail average' if averaged else 'last weights'}: mean {np.mean(v):.3f}, sd {np.std(v, ddof=1):.3f}, min {min(v):.3f}, max {max(v):.3f}"
        )


if __name__ == "__main__":
    main()
