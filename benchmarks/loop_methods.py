"""What each part of the plugin's blend gives in the annotation loop, once the model is adapted:
Dice on the unpainted slices of UniverSeg alone (adapted, and shipped), the pixel classifier
alone, and their blends, after each painted slice of a fixed sequence.

    python -m benchmarks.loop_methods SET PAINTED [--evaluate 2,4] [--slices 30] [--json out.json]

e.g. ``python -m benchmarks.loop_methods isbi2012_em_membranes 15,4,6,5`` (the EM picks of the
plugin's suggestion in benchmarks/results/annotation_loop.md). As benchmarks.annotation_loop, one
Segmenter is kept across rounds with default options, so the plan is chosen again when the
examples double and the adaptation continues with each new example (tested before it is trained
on). At the rounds of ``--evaluate`` every unpainted slice is predicted by each part (UniverSeg
with ensemble 1, the plan's view and classifier) and thresholded at 1/2.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.annotation_loop import painted_support, series
from benchmarks.protocol_task import EVALDATA
from napari_universeg.choice import classifier_probs, fit_classifier
from napari_universeg.evaluate import dice
from napari_universeg.predict import PredictOptions, Segmenter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("set")
    p.add_argument("painted", help="slice indices in the order they are painted, e.g. 15,4,6,5")
    p.add_argument("--evaluate", default="2,4", help="rounds (painted slices) at which every part is scored")
    p.add_argument("--data", type=Path, default=EVALDATA)
    p.add_argument("--slices", type=int, default=30)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    sequence = [int(x) for x in args.painted.split(",")]
    evaluate = {int(x) for x in args.evaluate.split(",")}
    images, masks = series(args.data / args.set, args.slices)
    seg = Segmenter.from_weights("default")
    options = PredictOptions()
    out = []
    for k in range(1, len(sequence) + 1):
        painted = sequence[:k]
        support = painted_support(images, masks, painted)
        examples = support.enabled()
        plan = seg.plan(support, images[0].shape[:2], options, provisional=False)
        start = time.perf_counter()
        model = seg.adapted_model(examples, [1], plan, options)
        adaptation = seg.adaptation
        row = {
            "painted": painted,
            "plan": plan.describe(),
            "adapt_s": time.perf_counter() - start,
            "checks": list(adaptation.checks) if adaptation else None,
            "candidates": [(c.describe(), round(c.estimate, 3)) for c in plan.candidates],
        }
        if k in evaluate:
            classifier = plan.classifier or fit_classifier(examples, [1], seg.features, options.seed)
            scores: dict[str, list[float]] = {}
            for i in (i for i in range(len(images)) if i not in painted):
                adapted = seg.universeg_probs(examples, images[i], plan, [1], options, model)[0]
                shipped = seg.universeg_probs(examples, images[i], plan, [1], options, seg.model)[0] if model is not seg.model else adapted
                pixels = classifier_probs(classifier, images[i], [1], seg.features)[0]
                parts = {
                    "universeg adapted": adapted,
                    "universeg shipped": shipped,
                    "pixel classifier": pixels,
                    "blend, adapted": (adapted + pixels) / 2,
                    "blend, shipped": (shipped + pixels) / 2,
                }
                for name, prob in parts.items():
                    scores.setdefault(name, []).append(dice(prob > 0.5, masks[i] > 0))
            row.update({name: float(np.mean(v)) for name, v in scores.items()})
        out.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
