"""What the view choice of "auto" gives against the best view, and what another rule would give.

    python -m benchmarks.view_choice --jobs new:fluo_nuclei_gowt1_hela:4:0 ... \\
        [--weights new=/path/w.safetensors] [--data ../shared/evaldata] --json out.json
    python -m benchmarks.view_choice --table-from out.json

A job is WEIGHTS:SET:N:SEED (WEIGHTS: "old" for the shipped weights or a name given with
--weights). For the standard protocol's split it runs UniverSeg alone (no adaptation, one
ensemble member) in every view auto may try (choice.candidate_plans), each in full: leave-one-out
Dice per held-out example, as choice.validated_plan computes it, and Dice per query. The JSON keeps
both (rerun jobs are skipped), so rules are compared on the same numbers: the plugin's rule
(choice.clear_winner, as validated_plan applies it; its early stops, which save the views that
fall behind, are left out: every view counts here), the earlier rule (tiles also had to lead by
0.02), the best held-out mean, resize, and the best view on the queries (no rule does better).
Prints one row per job and the mean Dice on the queries per weights and rule.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.protocol_task import EVALDATA
from napari_universeg.choice import MAX_HELD_OUT, Plan, candidate_plans, class_labels, clear_winner, halves, labels_from_probs
from napari_universeg.evaluate import load_dataset, protocol_split
from napari_universeg.metrics import class_dice
from napari_universeg.predict import PredictOptions, Segmenter
from napari_universeg.support import Example

OPTIONS = PredictOptions(adapt=False, method="universeg")


def _key(plan: Plan) -> str:
    return f"{plan.mode} {plan.scale}"


def _dice(probs: np.ndarray, mask: np.ndarray) -> float:
    return class_dice(labels_from_probs(probs, [1], OPTIONS.threshold), class_labels(mask, [1]), [1])


def run_job(seg: Segmenter, data: Path, name: str, n: int, seed: int) -> dict:
    """Every view's held-out Dice per example and Dice per query."""
    ds = load_dataset(data / name)
    support_ids, query_ids, _ = protocol_split(ds.ids, n, seed)
    examples = [Example(ds.image(i), ds.mask(i)) for i in support_ids]
    held_examples = halves(examples[0]) if len(examples) == 1 else examples
    held = range(min(len(held_examples), MAX_HELD_OUT))
    query_shape = ds.image(query_ids[0]).shape[:2]
    views = candidate_plans([query_shape] + [ex.image.shape[:2] for ex in held_examples], seg.size)
    out = {"support": list(support_ids), "views": {}}
    for view in views:
        loo = []
        for h in held:
            others = [ex for i, ex in enumerate(held_examples) if i != h]
            loo.append(_dice(seg.universeg_probs(others, held_examples[h].image, view, [1], OPTIONS), held_examples[h].mask))
        truth = [_dice(seg.universeg_probs(examples, ds.image(q), view, [1], OPTIONS), ds.mask(q)) for q in query_ids]
        out["views"][_key(view)] = {"loo": loo, "truth": truth}
        print(f"{name} N={n} seed {seed} {_key(view)}: held-out {np.mean(loo):.3f}, queries {np.mean(truth):.3f}", flush=True)
    return out


def by_rule(views: dict, margin: float = 0.0) -> str:
    """The view choice.clear_winner picks from the held-out Dice, views in the plugin's order
    (resize, then tiles from the coarsest scale)."""
    order = ["resize 1.0"] + sorted((k for k in views if k != "resize 1.0"), key=lambda k: float(k.split()[1]))
    return order[clear_winner([views[k]["loo"] for k in order], margin)]


RULES = {
    "plugin": lambda job: by_rule(job["views"]),
    "earlier rule (tiles +0.02)": lambda job: by_rule(job["views"], 0.02),
    "best held-out mean": lambda job: max(job["views"], key=lambda k: np.mean(job["views"][k]["loo"])),
    "resize": lambda job: "resize 1.0",
    "best view on the queries": lambda job: max(job["views"], key=lambda k: np.mean(job["views"][k]["truth"])),
}


def table(jobs: list[dict]) -> str:
    lines = ["| weights | set | N | seed | " + " | ".join(RULES) + " |", "|---" * (4 + len(RULES)) + "|"]
    means = defaultdict(list)
    for job in jobs:
        cells = []
        for rule, pick in RULES.items():
            view = pick(job)
            dice = float(np.mean(job["views"][view]["truth"]))
            means[job["weights"], rule].append(dice)
            cells.append(f"{dice:.3f} ({view.replace('tiled ', 'tiles ').replace('resize 1.0', 'resize')})")
        lines.append(f"| {job['weights']} | {job['set']} | {job['n']} | {job['seed']} | " + " | ".join(cells) + " |")
    for w in sorted({job["weights"] for job in jobs}):
        count = len(means[w, "plugin"])
        lines.append(f"| {w} | mean of {count} | | | " + " | ".join(f"{np.mean(means[w, r]):.3f}" for r in RULES) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", nargs="*", default=[], help="WEIGHTS:SET:N:SEED")
    p.add_argument("--weights", nargs="*", default=[], help="NAME=PATH (old: the shipped weights)")
    p.add_argument("--data", type=Path, default=EVALDATA)
    p.add_argument("--json", type=Path, help="results are added to this file (jobs in it are skipped)")
    p.add_argument("--table-from", type=Path, help="only print the table of a saved JSON")
    args = p.parse_args(argv)
    if args.table_from:
        print(table(json.loads(args.table_from.read_text())))
        return 0
    paths = {"old": "default", **dict(w.split("=", 1) for w in args.weights)}
    jobs = json.loads(args.json.read_text()) if args.json and args.json.exists() else []
    done = {(j["weights"], j["set"], j["n"], j["seed"]) for j in jobs}
    segmenters: dict[str, Segmenter] = {}
    for spec in args.jobs:
        weights, name, n, seed = spec.split(":")
        if (weights, name, int(n), int(seed)) in done:
            continue
        if weights not in segmenters:
            segmenters[weights] = Segmenter.from_weights(paths[weights], device="cpu")
        job = {"weights": weights, "set": name, "n": int(n), "seed": int(seed), **run_job(segmenters[weights], args.data, name, int(n), int(seed))}
        jobs.append(job)
        if args.json:
            args.json.write_text(json.dumps(jobs, indent=1))
    print(table(jobs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
