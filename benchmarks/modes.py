"""Every candidate "auto" chooses from, and auto itself: held-out estimate, Dice, time per query and
time to the first result, per data set (standard protocol split, one support size and seed).

    python -m benchmarks.modes [--data ../shared/evaldata] [--size 4] [--seed 0] [--json out.json]

Candidates are the plans auto tried (UniverSeg views, the pixel classifier, the blend), each run
alone on the queries. "estimate" is the candidate's leave-one-out Dice on the examples, what auto
chose by; "first s" is the time from the call to the first query's result (for auto, including
its choice); "s/query" is the time per query after the first. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.protocol_task import EVALDATA, evaluation_sets, protocol_task, timed_run
from napari_universeg.predict import PredictOptions, Segmenter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=EVALDATA)
    p.add_argument("--size", type=int, default=4, help="support size N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default="default")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    seg = Segmenter.from_weights(args.weights)
    rows = []
    for ds in evaluation_sets(args.data):
        support, queries, truths, n_used = protocol_task(ds, args.size, args.seed)
        seg.forget_plans()
        seg.features.items.clear()
        seg.features.bytes = 0
        auto = timed_run(seg, support, queries, truths, PredictOptions(adapt=False))  # views compared, as shipped
        runs = [("auto -> " + auto["plan"].describe(), auto["plan"].estimate, auto)]
        for cand in auto["plan"].candidates:
            options = PredictOptions(mode=cand.mode, scale=cand.scale if cand.mode == "tiled" else None, method=cand.method, adapt=False)
            seg.forget_plans()  # the classifier is fitted anew, as part of the first result
            runs.append((cand.describe(), cand.estimate, timed_run(seg, support, queries, truths, options)))
        for label, estimate, r in runs:
            row = {
                "dataset": ds.name,
                "n": n_used,
                "seed": args.seed,
                "candidate": label,
                "estimate": estimate,
                "dice": r["dice"],
                "first_s": r["first_s"],
                "per_query_s": r["per_query_s"],
            }
            rows.append(row)
            print(
                f"{ds.name:26s} {label:48s} est {estimate:.3f} Dice {r['dice']:.3f} first {r['first_s']:6.1f} s  {r['per_query_s']:5.2f} s/query",
                file=sys.stderr,
                flush=True,
            )
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    print(f"| data set | candidate | estimate | Dice (N={args.size}, seed {args.seed}) | first s | s/query |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['candidate']} | {r['estimate']:.3f} | {r['dice']:.3f} | {r['first_s']:.1f} | {r['per_query_s']:.2f} |")


if __name__ == "__main__":
    main()
