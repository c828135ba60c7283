"""Which way of showing an image to the model works where: resize vs tiled at several scales.

    python benchmarks/modes.py [--data ../shared/evaldata] [--sizes 4] [--seeds 0] [--weights default]

Prints Dice (standard protocol) and seconds per query for each data set and mode, plus the
automatic choice (mode "auto": leave-one-out on the examples) and the plan it picked for the
first seed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from napari_universeg.evaluate import load_dataset, protocol_split, run_protocol
from napari_universeg.predict import PredictOptions, Segmenter
from napari_universeg.support import SupportSet

EVALDATA = Path(__file__).resolve().parents[2] / "shared" / "evaldata"
MODES = [("resize", None), ("tiled", 1.0), ("tiled", 0.5), ("tiled", 0.25), ("auto", None)]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, default=EVALDATA)
    p.add_argument("--sizes", default="4")
    p.add_argument("--seeds", default="0")
    p.add_argument("--weights", default="default")
    p.add_argument("--support-size", type=int, default=16)
    args = p.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    seeds = tuple(int(s) for s in args.seeds.split(","))
    seg = Segmenter.from_weights(args.weights)
    rows = []
    for folder in sorted(d for d in args.data.iterdir() if (d / "images").is_dir()):
        ds = load_dataset(folder)
        support_ids, query_ids, _ = protocol_split(ds.ids, sizes[0], seeds[0])
        sup = SupportSet()
        for i in support_ids:
            sup.add(ds.image(i), ds.mask(i))
        auto = seg.plan(sup, ds.image(query_ids[0]).shape[:2], PredictOptions(support_size=args.support_size))
        for mode, scale in MODES:
            opts = dict(mode=mode, scale=scale, support_size=args.support_size)

            def predict(si, sm, qi):
                s = SupportSet()
                for im, m in zip(si, sm):
                    s.add(im, m)
                return [r.labels > 0 for r in seg.iter_predict(s, qi, PredictOptions(**opts))]

            t = time.time()
            r = run_protocol(ds, predict, f"{mode}@{scale}", support_sizes=sizes, seeds=seeds)
            n_queries = sum(len(run["dice_per_query"]) for run in r["runs"])
            dice = np.mean([v["mean"] for v in r["summary"].values()])
            label = f"{mode} {scale}" if scale else (f"auto -> {auto.mode} {auto.scale:.2f}" if mode == "auto" else mode)
            rows.append((folder.name, label, dice, (time.time() - t) / n_queries))
            print(f"{folder.name:28s} {label:24s} Dice {dice:.3f}  {rows[-1][3]:.2f} s/query", file=sys.stderr, flush=True)
    print(f"| data set | mode | Dice (N={args.sizes}, seeds {args.seeds}) | s/query |")
    print("|---|---|---|---|")
    for name, label, dice, sec in rows:
        print(f"| {name} | {label} | {dice:.3f} | {sec:.2f} |")


if __name__ == "__main__":
    main()
