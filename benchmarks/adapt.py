"""What test-time adaptation gains and costs: UniverSeg with and without ``adapt`` on the same plan.

    python -m benchmarks.adapt [--data ../shared/evaldata] [--sizes 1,4,16] [--seed 0] [--json out.json]

For each data set and support size N (standard protocol split, one seed): the UniverSeg plan that
"auto" validates for method "universeg", then Dice on the queries without adaptation, and with a
copy of the model fine-tuned on episodes from the N examples, as a fresh start takes it (adapt.py:
STEPS_PER_EXAMPLE per example up to MAX_STEPS; at N=1 on the halves of the one image, which "auto"
does not do); "adapt s" is the time the fine-tuning took. Progress goes to stderr, a markdown table to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.protocol_task import EVALDATA, evaluation_sets, protocol_task
from napari_universeg.metrics import dice
from napari_universeg.predict import PredictOptions, Segmenter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=EVALDATA)
    p.add_argument("--sizes", default="1,4,16")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    seg = Segmenter.from_weights("default")
    rows = []
    for ds in evaluation_sets(args.data):
        for size in (int(s) for s in args.sizes.split(",")):
            support, queries, truths, n_used = protocol_task(ds, size, args.seed)
            seg.forget_plans()  # an independent task: no adaptation to continue
            base = PredictOptions(method="universeg", seed=args.seed)
            plan = seg.plan(support, queries[0].shape, base)
            row = {"dataset": ds.name, "n": n_used, "plan": plan.describe()}
            for adapt in (False, True):
                options = PredictOptions(method="universeg", seed=args.seed, adapt=adapt)
                start = time.perf_counter()
                if adapt:
                    seg.adapted_model(support.enabled(), support.classes(), plan, options)
                    row["adapt_s"] = time.perf_counter() - start
                    row["steps"] = seg.adaptation.steps
                preds = seg.predict(support, queries, options)
                row["adapted" if adapt else "plain"] = float(np.mean([dice(pr.labels > 0, t > 0) for pr, t in zip(preds, truths)]))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))
    print(f"| data set | N | plan | Dice | adapted | steps | adapt s |  (seed {args.seed})")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['n']} | {r['plan']} | {r['plain']:.3f} | {r['adapted']:.3f} | {r['steps']} | {r['adapt_s']:.1f} |")


if __name__ == "__main__":
    main()
