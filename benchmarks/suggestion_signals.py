"""Which per-slice signal predicts where the annotation loop's results are wrong, once the model is
adapted: the expected Dice of the result (the plugin's suggestion before the expected-errors
rule), the agreement (Dice) between the adapted result and the shipped model's (adaptation off),
or their product.

    python -m benchmarks.suggestion_signals [--pick product|agree|ed] [--json out.json]

The annotation loop of benchmarks.annotation_loop (start at the middle slice of the first 30
images of each series, four rounds, default settings) with each round segmenting the rest twice,
adapted and not. Prints per round the Dice on the rest and the Spearman correlation of each
signal with the true Dice per slice; the next slice is the lowest by ``--pick``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.annotation_loop import nearest_first, painted_support, rank_corr, series
from benchmarks.protocol_task import EVALDATA
from napari_universeg.evaluate import dice
from napari_universeg.predict import PredictOptions, Segmenter


def expected_dice(labels: np.ndarray, probability: np.ndarray) -> float:
    """E[Dice] of ``labels`` > 0 if each pixel were foreground with its ``probability`` ((H, W)
    each): the ratio of expectations 2 sum_pred p / (|pred| + sum p); 1.0 when nothing is
    predicted or expected."""
    pred = np.asarray(labels) > 0
    p = np.asarray(probability, np.float64)
    denominator = float(pred.sum()) + float(p.sum())
    return 1.0 if denominator < 1e-6 else 2.0 * float(p[pred].sum()) / denominator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pick", default="product", choices=("product", "agree", "ed"))
    p.add_argument("--sets", default="isbi2012_em_membranes,pfcpn_brightfield_neurons")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    seg, out = Segmenter.from_weights("default"), {}
    for name in args.sets.split(","):
        images, masks = series(EVALDATA / name, 30)
        n, painted, rows = len(images), [len(images) // 2], []
        seg.forget_plans()
        for r in range(1, 5):
            support = painted_support(images, masks, painted)
            rest = nearest_first([i for i in range(n) if i not in painted], painted[-1])
            start = time.perf_counter()
            ed, true, labels = {}, {}, {}
            for pred in seg.iter_predict(support, images, PredictOptions(), indices=rest, preview=True):
                if not pred.preview:
                    ed[pred.index] = expected_dice(pred.labels, pred.probability)
                    true[pred.index] = dice(pred.labels > 0, masks[pred.index] > 0)
                    labels[pred.index] = pred.labels > 0
            adapted_s = time.perf_counter() - start
            agree = {
                pred.index: dice(pred.labels > 0, labels[pred.index])
                for pred in seg.iter_predict(support, images, PredictOptions(adapt=False), indices=rest)
            }
            product = {k: ed[k] * agree[k] for k in rest}
            row = {
                "round": r,
                "painted": list(painted),
                "dice_rest": float(np.mean([true[k] for k in rest])),
                "corr_ed": rank_corr(ed, true),
                "corr_agree": rank_corr(agree, true),
                "corr_prod": rank_corr(product, true),
                "s_adapted": adapted_s,
                "s_shipped": time.perf_counter() - start - adapted_s,
            }
            print(name, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
            rows.append(row)
            score = {"ed": ed, "agree": agree, "product": product}[args.pick]
            painted.append(min(rest, key=lambda i: (score[i], i)))
        out[name] = rows
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
