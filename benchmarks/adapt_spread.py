"""How much an adaptation's result varies with its random episodes, and whether averaging the
weights over its last half of steps (tail averaging) steadies it: UniverSeg alone (no pixel
classifier) in the plugin's view for the painted slices, adapted from the shipped weights on them
with seeds 0 .. K-1 (the episodes' draws; the support's crops stay those of seed 0), as the loop's
first adaptation (adapt.steps_for), scored on every unpainted slice of the series.

    python -m benchmarks.adapt_spread SET PAINTED [--seeds 5] [--json out.json]

e.g. ``python -m benchmarks.adapt_spread pfcpn_brightfield_neurons 15,3``.
"""

from __future__ import annotations

import json
import time

import numpy as np

from benchmarks.painted_adaptation import PaintedSeries, parser
from napari_universeg import adapt
from napari_universeg.adapt import Adaptation, fine_tune
from napari_universeg.predict import PredictOptions


def main() -> None:
    p = parser(__doc__, "15,3")
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args()
    task = PaintedSeries.load(args.data / args.set, args.painted, PredictOptions(method="universeg"))
    seg, pairs, rest = task.seg, task.pairs, task.rest()
    steps = adapt.steps_for([seg._inputs(pair) for pair in pairs], continued=False)
    out = {"set": args.set, "painted": task.painted, "plan": task.plan.describe(), "steps": steps, "shipped": task.score(seg.model, rest), "runs": []}
    print(f"{args.set} {task.painted}: {task.plan.describe()}, {steps} steps; shipped model {out['shipped']:.3f}", flush=True)
    for averaged in (False, True):
        for seed in range(args.seeds):
            start = time.perf_counter()
            tuned = fine_tune(Adaptation(seg.model), pairs, steps, seg.size, seed=seed, dtype=seg.dtype, tail_average=averaged)
            row = {"tail_average": averaged, "seed": seed, "dice_rest": task.score(tuned.model, rest), "seconds": time.perf_counter() - start}
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
