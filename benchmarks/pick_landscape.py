"""How much the second painted slice can matter: every candidate tried once.

    python -m benchmarks.pick_landscape [--data ../shared/evaldata] [--set pfcpn_brightfield_neurons] [--slices 30] [--seed 0] [--json out.json]
    python -m benchmarks.pick_landscape --compare seed0.json seed1.json ...

The annotation loop's start (the middle slice painted, benchmarks/annotation_loop.py), then for
each other slice j a fresh session with the middle slice and j painted, default settings: Dice on
the slices painted in neither. The spread of these Dice is the most any rule for the second pick
can gain over a random pick (their mean); the table sets them against two signals a rule could
rank by: the round-1 expected errors the plugin's suggestion uses (suggest.expected_errors), and
the slice's typicality (mean thumbnail correlation with the other unpainted slices; the
low-budget active-learning literature, e.g. Hacohen et al., ICML 2022, reports that typical
examples teach more than uncertain ones when labels are few).

``--compare`` sets runs with other plugin seeds (``--seed``) side by side: how far a pick's value
is the pick's own (the rank correlation of the Dice between seeds) and how far the plan the
session chose (each pick's run records it).
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


def compare(paths: list[Path]) -> None:
    """Print the picks of several runs (one --json each: other plugin seeds, or a given view) side by side."""
    runs = [json.loads(path.read_text()) for path in paths]
    picks = sorted(set.intersection(*(set(run["picks"]) for run in runs)), key=int)
    names = [f"seed {run['seed']}" + ("" if run.get("mode", "auto") == "auto" else f", {run['mode']}, {run['method']}") for run in runs]
    print("| second slice | " + " | ".join(names) + " |")
    print("|---" * (1 + len(runs)) + "|")
    for j in picks:
        cells = [f"{run['picks'][j]['dice_rest']:.3f} ({'tiles' if 'tiles' in run['picks'][j]['plan'] else 'resized'})" for run in runs]
        print(f"| {j} | " + " | ".join(cells) + " |")
    for a in range(len(runs)):
        for b in range(a + 1, len(runs)):
            dice_a, dice_b = ({j: run["picks"][j]["dice_rest"] for j in picks} for run in (runs[a], runs[b]))
            same = [j for j in picks if runs[a]["picks"][j]["plan"] == runs[b]["picks"][j]["plan"]]
            print(
                f"{names[a]} and {names[b]}: rank correlation of the Dice {rank_corr(dice_a, dice_b):+.2f} over {len(picks)} picks, "
                f"{rank_corr({j: dice_a[j] for j in same}, {j: dice_b[j] for j in same}):+.2f} over the {len(same)} with the same plan in both"
            )
    rows = [r for run in runs for j, r in run["picks"].items() if j in picks]
    for plan in sorted({r["plan"] for r in rows}):
        ds = [r["dice_rest"] for r in rows if r["plan"] == plan]
        print(f"{plan}: {len(ds)} of {len(rows)} runs, mean Dice on the rest {np.mean(ds):.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=EVALDATA)
    p.add_argument("--set", default="pfcpn_brightfield_neurons")
    p.add_argument("--slices", type=int, default=30)
    p.add_argument("--seed", type=int, default=0, help="the plugin's seed (PredictOptions.seed)")
    p.add_argument("--mode", default="auto", help="PredictOptions.mode: a given view (with --method blend: the blend in that view)")
    p.add_argument("--method", default="auto", help="PredictOptions.method")
    p.add_argument("--json", type=Path)
    p.add_argument("--compare", type=Path, nargs="+", help="runs (--json files) to set side by side, instead of a run")
    args = p.parse_args()
    if args.compare:
        return compare(args.compare)
    images, masks = series(args.data / args.set, args.slices)
    seg, options = Segmenter.from_weights("default"), PredictOptions(seed=args.seed, mode=args.mode, method=args.method)
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
            args.json.write_text(
                json.dumps(
                    {
                        "set": args.set,
                        "seed": args.seed,
                        "mode": args.mode,
                        "method": args.method,
                        "start": start,
                        "dice_rest_1": first,
                        "picks": rows,
                    },
                    indent=1,
                )
            )
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
