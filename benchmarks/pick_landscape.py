"""How much the second painted slice can matter: every candidate tried once.

    python -m benchmarks.pick_landscape [--data ../shared/evaldata] [--set pfcpn_brightfield_neurons] [--slices 30] [--seed 0] [--json out.json]

The annotation loop's start (the middle slice painted, benchmarks/annotation_loop.py), then for
each other slice j a fresh session with the middle slice and j painted, default settings: Dice on
the slices painted in neither. The spread of these Dice is the most any rule for the second pick
can gain over a random pick (their mean); the table sets them against two signals a rule could
rank by: the round-1 expected errors the plugin's suggestion uses (suggest.expected_errors), and
the slice's typicality (mean thumbnail correlation with the other unpainted slices; the
low-budget active-learning literature, e.g. Hacohen et al., ICML 2022, reports that typical
examples teach more than uncertain ones when labels are few).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.annotation_loop import painted_support, rank_corr, series
from benchmarks.protocol_task import EVALDATA
from napari_universeg.evaluate import dice
from napari_universeg.predict import PredictOptions, Segmenter
from napari_universeg.suggest import expected_errors, thumbnail


def rest_dice(seg: Segmenter, images: list, masks: list, painted: list[int], options: PredictOptions) -> tuple[float, dict[int, float], str]:
    """Mean Dice on the unpainted slices of a fresh session with ``painted``, each slice's
    expected errors, and the plan the session chose, in words."""
    seg.forget_plans()
    rest = [i for i in range(len(images)) if i not in painted]
    dices, scores = [], {}
    for pred in seg.iter_predict(painted_support(images, masks, painted), images, options, indices=rest):
        dices.append(dice(pred.labels > 0, masks[pred.index] > 0))
        scores[pred.index] = expected_errors(pred.labels, pred.probability)
    return float(np.mean(dices)), scores, pred.plan.describe()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=EVALDATA)
    p.add_argument("--set", default="pfcpn_brightfield_neurons")
    p.add_argument("--slices", type=int, default=30)
    p.add_argument("--seed", type=int, default=0, help="the plugin's seed (PredictOptions.seed)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    images, masks = series(args.data / args.set, args.slices)
    seg, options = Segmenter.from_weights("default"), PredictOptions(seed=args.seed)
    start = len(images) // 2
    first, scores, _ = rest_dice(seg, images, masks, [start], options)
    thumbs = {i: thumbnail(im).ravel() for i, im in enumerate(images)}
    rows = {}
    for j in scores:
        others = [k for k in scores if k != j]
        typical = float(np.mean([thumbs[j] @ thumbs[k] for k in others])) / thumbs[j].size  # zero mean, unit variance: a correlation
        d, _, plan = rest_dice(seg, images, masks, [start, j], options)
        rows[j] = {"dice_rest": d, "expected_errors": scores[j], "typicality": typical, "plan": plan}
        print(json.dumps({"slice": j, **{k: round(v, 4) if isinstance(v, float) else v for k, v in rows[j].items()}}), flush=True)
        if args.json:
            args.json.write_text(json.dumps({"set": args.set, "seed": args.seed, "start": start, "dice_rest_1": first, "picks": rows}, indent=1))
    d = np.array([r["dice_rest"] for r in rows.values()])
    suggested = max(rows, key=lambda j: rows[j]["expected_errors"])
    print(f"\n{args.set}, painted {start} then one more (plugin seed {args.seed}); Dice on the rest with {start} alone: {first:.3f}\n")
    print("| second slice | Dice on the rest |\n|---|---|")
    print(f"| best ({max(rows, key=lambda j: rows[j]['dice_rest'])}) | {d.max():.3f} |")
    print(f"| mean over all (a random pick) | {d.mean():.3f} (sd {d.std():.3f}) |")
    print(f"| worst ({min(rows, key=lambda j: rows[j]['dice_rest'])}) | {d.min():.3f} |")
    print(f"| most expected errors ({suggested}) | {rows[suggested]['dice_rest']:.3f} |")
    for plan in sorted({r["plan"] for r in rows.values()}):
        ds = [r["dice_rest"] for r in rows.values() if r["plan"] == plan]
        print(f"| picks after which the choice was {plan} ({len(ds)}) | {np.mean(ds):.3f} |")
    for signal in ("expected_errors", "typicality"):
        rho = rank_corr({j: r[signal] for j, r in rows.items()}, {j: r["dice_rest"] for j, r in rows.items()})
        print(f"| rank correlation of {signal} with Dice on the rest | {rho:+.2f} |")


if __name__ == "__main__":
    main()
