"""How well auto's accuracy estimate (held-out Dice on the examples) tracks the true Dice.

    python -m benchmarks.estimates benchmarks/results/plugin_auto.json

Reads the runs that benchmarks/accuracy.py (or ``napari-universeg evaluate --json``) wrote and
prints, per data set and support size, the mean estimate, the mean true Dice on the queries and
their mean absolute difference over seeds; then, over all runs and over the runs with two or more
examples (one example is judged on its two halves), the mean error (estimate minus truth), the
mean absolute error and the correlation.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main(paths: list[str]) -> int:
    results = [r for p in paths for r in json.loads(Path(p).read_text())]
    rows, pairs, pairs_many = [], [], []  # pairs_many: runs with 2+ examples (no halves)
    for r in results:
        for size in r["summary"]:
            runs = [x for x in r["runs"] if str(x["support_size"]) == size and x.get("estimate") is not None]
            if not runs:
                continue
            est = np.array([x["estimate"] for x in runs])
            true = np.array([x["mean_dice"] for x in runs])
            pairs += list(zip(est, true))
            if runs[0]["n_used"] > 1:
                pairs_many += list(zip(est, true))
            rows.append((r["dataset"], r["method"], runs[0]["n_used"], est.mean(), true.mean(), np.abs(est - true).mean()))
    if not pairs:
        print("no runs with an estimate", file=sys.stderr)
        return 1
    print("| data set | method | N | estimate | true Dice | mean abs. difference |")
    print("|---|---|---|---|---|---|")
    for name, method, n, e, t, a in rows:
        print(f"| {name} | {method} | {n} | {e:.3f} | {t:.3f} | {a:.3f} |")
    print()
    for label, chosen in (("all runs", pairs), ("runs with 2+ examples", pairs_many)):
        if len(chosen) > 1:
            est, true = np.array(chosen).T
            print(
                f"{label} ({len(chosen)}): estimate - truth {np.mean(est - true):+.3f} on average, "
                f"mean absolute difference {np.mean(np.abs(est - true)):.3f}, correlation {np.corrcoef(est, true)[0, 1]:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
