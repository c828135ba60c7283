"""A simulated user in the annotation loop: paint one slice, segment the rest, then each round paint
one more slice perfectly (chosen by a strategy), accept it and segment the rest again.

    python -m benchmarks.annotation_loop [--data ../shared/evaldata]
        [--sets isbi2012_em_membranes,pfcpn_brightfield_neurons] [--slices 30] [--rounds 4]
        [--strategies suggest,random,spread] [--random-seeds 0,1,2] [--seed 0] [--json out.json] [--plot out.png]
    python -m benchmarks.annotation_loop --table-from newer.json older.json [--average] [--plot out.png]

Series: the first ``--slices`` images of each set (sorted ids; the EM set is one serial stack).
The start slice is the middle one. Strategies for the next slice: "suggest" (the plugin's
suggestion, suggest.py), "random" (one run per seed of --random-seeds; the table adds their mean
per round, what following a random pick gives on average) and "spread" (farthest from the
painted ones). Each round segments the unpainted slices nearest-first to the slice painted last,
as the widget does after an accept, with one Segmenter kept across rounds, as in a session.
Prints one line per round (Dice on the unpainted slices, seconds to the first result and to the
last) and a table; --json keeps every round, --plot draws Dice against painted slices.

``--seed`` is the plugin's own seed (PredictOptions.seed: the support's crops, the classifier, the
adaptation's episodes), which moves one run's Dice by about 0.01 (benchmarks/results/adapt.md); a
comparison of strategies should not rest on one. Runs with several seeds, one --json each, give
one table with ``--table-from a.json b.json --average``: per data set, strategy and round the mean
over the files that have it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.protocol_task import EVALDATA
from napari_universeg.evaluate import dice, load_dataset
from napari_universeg.predict import PredictOptions, Segmenter
from napari_universeg.suggest import expected_errors, likeness_by_distance, next_slice, thumbnail
from napari_universeg.support import SupportSet

STRATEGIES = ("suggest", "random", "spread")


def series(folder: Path, slices: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The images and masks of the first ``slices`` ids (sorted) of an evaldata folder."""
    ds = load_dataset(folder)
    ids = sorted(ds.ids)[:slices]
    return [ds.image(i) for i in ids], [ds.mask(i) for i in ids]


def painted_support(images: list, masks: list, painted: list[int]) -> SupportSet:
    """The painted slices as examples, in the order they were painted."""
    support = SupportSet()
    for i in painted:
        support.add(images[i], masks[i], source=f"slice {i}")
    return support


def nearest_first(indices: list[int], to: int) -> list[int]:
    """The indices ordered by distance to ``to`` (ties: the lower index first)."""
    return sorted(indices, key=lambda i: (abs(i - to), i))


def pick(strategy: str, scores: dict[int, float], painted: list[int], likeness: np.ndarray, rng: np.random.Generator) -> int:
    """The next slice to paint; ``likeness``: suggest.likeness_by_distance of the series."""
    n = len(likeness)
    rest = [i for i in range(n) if i not in painted]
    if strategy == "suggest":
        return next_slice(scores, painted, range(n), likeness)
    if strategy == "random":
        return int(rng.choice(rest))
    return max(rest, key=lambda i: (min(abs(i - p) for p in painted), -i))  # spread


def run_loop(seg: Segmenter, images: list, masks: list, strategy: str, rounds: int, seed: int, options: PredictOptions) -> list[dict]:
    """One simulated session; one dict per round."""
    n = len(images)
    painted = [n // 2]
    rng = np.random.default_rng(seed)
    likeness = likeness_by_distance([thumbnail(im) for im in images])  # as the plugin's suggestion
    seg.forget_plans()  # a new session chooses its plan anew
    out = []
    for r in range(1, rounds + 1):
        support = painted_support(images, masks, painted)
        rest = nearest_first([i for i in range(n) if i not in painted], painted[-1])
        start = time.perf_counter()
        scores, dices, wrong, first_s = {}, [], {}, None
        for pred in seg.iter_predict(support, images, options, indices=rest, preview=True):  # as the widget runs
            if first_s is None:
                first_s = time.perf_counter() - start
            if pred.preview:
                continue  # shown first, then the same slice again, final
            scores[pred.index] = expected_errors(pred.labels, pred.probability)
            dices.append(dice(pred.labels > 0, masks[pred.index] > 0))
            wrong[pred.index] = float(((pred.labels > 0) != (masks[pred.index] > 0)).mean())
        total_s = time.perf_counter() - start
        plan = pred.plan
        row = {
            "round": r,
            "painted": list(painted),
            "dice_rest": float(np.mean(dices)),
            "first_s": first_s,
            "round_s": total_s,
            "plan": plan.describe() if plan else None,
            "estimate": plan.estimate if plan else None,
            "model": pred.model,  # which model UniverSeg ran with, in words (adapted, or shipped where its tests said so)
            "checks": list(seg.adaptation.checks) if seg.adaptation else None,  # adapted minus shipped Dice per tested example
            "suggestion_rank_corr": rank_corr(scores, wrong),
            "expected_errors": {i: round(v, 5) for i, v in sorted(scores.items())},
        }
        out.append(row)
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        if r < rounds:
            painted.append(pick(strategy, scores, painted, likeness, rng))
    return out


def rank_corr(scores: dict[int, float], truth: dict[int, float]) -> float:
    """Spearman correlation of a per-slice score and the truth over the slices (e.g. expected and
    true fraction of wrong pixels: how well the score predicts where the errors are); nan for a
    constant score."""
    from scipy.stats import spearmanr

    keys = sorted(scores)
    return float(spearmanr([scores[k] for k in keys], [truth[k] for k in keys])[0])


def mean_rows(found: list[list[dict]]) -> list[dict]:
    """Runs of the same rounds as one: per round Dice on the rest averaged, first result the
    slowest, "runs" the number averaged, and the first run's painted slices."""
    return [
        {
            "painted": found[0][k]["painted"],
            "dice_rest": float(np.mean([rows[k]["dice_rest"] for rows in found])),
            "first_s": max(rows[k]["first_s"] for rows in found),
            "runs": len(found),
        }
        for k in range(min(len(rows) for rows in found))
    ]


def with_random_mean(results: dict) -> dict:
    """The results with a "random (mean)" entry per data set: the mean Dice per round over the
    random runs ("random (seed S)"), when there are several."""
    out = {}
    for name, by_strategy in results.items():
        runs = [rows for strategy, rows in by_strategy.items() if strategy.startswith("random (seed")]
        out[name] = dict(by_strategy)
        if len(runs) > 1:
            seeds = runs[0][0].get("runs", 1)  # plugin seeds each random run already averages (averaged)
            label = f"random (mean of {len(runs)})" if seeds == 1 else f"random (mean of {len(runs)} picks x {seeds} plugin seeds)"
            out[name][label] = mean_rows(runs)
    return out


def first_listed(runs: list[dict]) -> dict:
    """One result per data set and strategy: that of the first run (a --json file's dict) that has it."""
    results: dict = {}
    for run in runs:
        for name, by_strategy in run.items():
            for strategy, rows in by_strategy.items():
                results.setdefault(name, {}).setdefault(strategy, rows)
    return results


def averaged(runs: list[dict]) -> dict:
    """Per data set and strategy, the runs that have it (the same picks' strategy under other plugin
    seeds) as one (``mean_rows``; the painted slices are the first run's: random picks and the
    suggestion's may differ between seeds)."""
    results: dict = {}
    for name in dict.fromkeys(n for run in runs for n in run):
        for strategy in dict.fromkeys(s for run in runs for s in run.get(name, {})):
            results.setdefault(name, {})[strategy] = mean_rows([run[name][strategy] for run in runs if strategy in run.get(name, {})])
    return results


def table(results: dict) -> str:
    results = with_random_mean(results)
    lines = [
        "| data set | strategy | "
        + " | ".join(f"{k} painted" for k in range(1, 1 + max(len(r) for s in results.values() for r in s.values())))
        + " | first result s (rounds 2+) |"
    ]
    lines.append("|---" * (3 + max(len(r) for s in results.values() for r in s.values())) + "|")
    for name, by_strategy in results.items():
        for strategy, rows in by_strategy.items():
            cells = " | ".join(f"{row['dice_rest']:.3f}" for row in rows)
            firsts = [row["first_s"] for row in rows[1:]]
            seeds = rows[0].get("runs", 1)
            if seeds > 1 and not strategy.startswith("random (mean"):
                strategy += f", mean of {seeds} plugin seeds"
            lines.append(f"| {name} | {strategy} | {cells} | {max(firsts) if firsts else float('nan'):.1f} (max) |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = with_random_mean(results)
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6), squeeze=False)
    strategies = list(dict.fromkeys(s for by_strategy in results.values() for s in by_strategy))
    colour = {s: f"C{i % 10}" for i, s in enumerate(s for s in strategies if not s.startswith("random (seed"))}  # one per strategy in every panel
    for ax, (name, by_strategy) in zip(axes[0], results.items()):
        for strategy, rows in by_strategy.items():
            if strategy.startswith("random (seed") and any(s.startswith("random (mean") for s in by_strategy):
                continue  # the mean stands for them
            x, y = [len(r["painted"]) for r in rows], [r["dice_rest"] for r in rows]
            ax.plot(x, y, marker="o", label=strategy, color=colour.get(strategy))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("painted slices")
        ax.set_xticks(range(1, 1 + max(len(rows) for rows in by_strategy.values())))
        ax.set_ylabel("Dice on the other slices")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=EVALDATA)
    p.add_argument("--sets", default="isbi2012_em_membranes,pfcpn_brightfield_neurons")
    p.add_argument("--slices", type=int, default=30)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--random-seeds", default="0,1,2", help="one run of the random strategy per seed")
    p.add_argument("--seed", type=int, default=0, help="the plugin's seed (PredictOptions.seed) for every run")
    p.add_argument("--json", type=Path)
    p.add_argument("--plot", type=Path)
    p.add_argument("--average", action="store_true", help="with --table-from: average the files (runs with other --seed) instead of taking the first")
    p.add_argument(
        "--table-from",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="print the table (and --plot) from earlier --json files; for a strategy run in several, the first listed counts",
    )
    args = p.parse_args()
    if args.table_from:
        runs = [json.loads(path.read_text()) for path in args.table_from]
        results = averaged(runs) if args.average else first_listed(runs)
        print(table(results))
        if args.plot:
            plot(results, args.plot)
        return
    seg = Segmenter.from_weights("default")
    results: dict = {}
    for name in args.sets.split(","):
        images, masks = series(args.data / name, args.slices)
        runs = [(s, 0) for s in args.strategies.split(",") if s != "random"]
        if "random" in args.strategies.split(","):
            runs += [("random", int(seed)) for seed in args.random_seeds.split(",")]
        for strategy, seed in runs:
            label = f"random (seed {seed})" if strategy == "random" else strategy
            print(f"# {name}: {label}", flush=True)
            results.setdefault(name, {})[label] = run_loop(seg, images, masks, strategy, args.rounds, seed, PredictOptions(seed=args.seed))
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
    print(table(results))
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
