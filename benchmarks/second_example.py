"""What the second painted slice is worth, per candidate: a check of the suggestion's signal.

    python -m benchmarks.second_example [--set pfcpn_brightfield_neurons] [--mode resize]
        [--scale S] [--json out.json]

The first 30 images of a series, the middle one painted. Each other image in turn is added as the
second example, and the rest is segmented with adaptation off and the plan fixed (UniverSeg in
``--mode`` + pixel classifier, the blend), so that only the example differs. A candidate's value
is the mean Dice on the rest; the mean over candidates is what a random pick gives on average.
Prints each candidate's value with the signals of its first result (from the middle image
alone): expected errors (the suggestion, suggest.py), expected Dice (the earlier rule), true Dice,
foreground shares, and the Spearman correlation of each signal with the value.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.annotation_loop import painted_support, rank_corr, series
from benchmarks.protocol_task import EVALDATA
from benchmarks.suggestion_signals import expected_dice
from napari_universeg.evaluate import dice
from napari_universeg.predict import PredictOptions, Segmenter
from napari_universeg.suggest import expected_errors, next_slice
from napari_universeg.support import SupportSet

SIGNALS = ("expected_errors", "expected_dice", "dice", "found_share", "true_share")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--set", default="pfcpn_brightfield_neurons")
    p.add_argument("--mode", default="resize", choices=("resize", "tiled"))
    p.add_argument("--scale", type=float, default=None, help="tiled mode: the image scale")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    seg = Segmenter.from_weights("default")
    images, masks = series(EVALDATA / args.set, 30)
    n, first = len(images), len(images) // 2

    def support(*indices: int) -> SupportSet:
        return painted_support(images, masks, list(indices))

    signals = {}
    for pred in seg.iter_predict(support(first), images, PredictOptions(), indices=[i for i in range(n) if i != first]):
        truth = masks[pred.index] > 0
        signals[pred.index] = {
            "expected_errors": expected_errors(pred.labels, pred.probability),
            "expected_dice": expected_dice(pred.labels, pred.probability),
            "dice": dice(pred.labels > 0, truth),
            "found_share": float((pred.labels > 0).mean()),
            "true_share": float(truth.mean()),
        }
    fixed = PredictOptions(mode=args.mode, scale=args.scale, method="blend", adapt=False)
    out = {}
    for c in sorted(signals):
        rest = [i for i in range(n) if i not in (first, c)]
        value = np.mean([dice(p.labels > 0, masks[p.index] > 0) for p in seg.iter_predict(support(first, c), images, fixed, indices=rest)])
        out[c] = {**signals[c], "value": float(value)}
        print(c, json.dumps({k: round(v, 3) for k, v in out[c].items()}), flush=True)
    values = {c: r["value"] for c, r in out.items()}
    print(f"value: mean {np.mean(list(values.values())):.3f} (a random pick), best {max(values.values()):.3f}, worst {min(values.values()):.3f}")
    picks = {
        "most expected errors": next_slice({c: r["expected_errors"] for c, r in out.items()}, [first]),
        "lowest expected Dice": min(out, key=lambda c: out[c]["expected_dice"]),
    }
    for rule, c in picks.items():
        rank = 1 + sorted(values.values(), reverse=True).index(values[c])
        print(f"{rule}: slice {c}, value {values[c]:.3f} ({rank} of {len(values)})")
    for k in SIGNALS:
        print(f"Spearman of {k} with the value: {rank_corr({c: r[k] for c, r in out.items()}, values):+.2f}")
    if args.json:
        args.json.write_text(json.dumps({"set": args.set, "first": first, "candidates": out}, indent=1))


if __name__ == "__main__":
    main()
