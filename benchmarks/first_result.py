"""Time to the first result of "auto" (its choice plus the first query) and per query after it.

    python benchmarks/first_result.py [--data ../shared/evaldata] [--sizes 4,16] [--seed 0] [--queries 3]

One line of JSON per data set and support size (standard protocol split): the plan, seconds to
the first result, seconds per further query and mean Dice of the queries. To compare with an
older version, run it with that version's src/ first on PYTHONPATH, in the same session.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from napari_universeg.evaluate import load_dataset, protocol_split
from napari_universeg.metrics import dice
from napari_universeg.predict import PredictOptions, Segmenter
from napari_universeg.support import SupportSet

EVALDATA = Path(__file__).resolve().parents[2] / "shared" / "evaldata"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=EVALDATA)
    p.add_argument("--sizes", default="4,16")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--queries", type=int, default=3)
    args = p.parse_args()
    seg = Segmenter.from_weights("default")
    for folder in sorted(d for d in args.data.iterdir() if (d / "images").is_dir()):
        ds = load_dataset(folder)
        for n in (int(s) for s in args.sizes.split(",")):
            support_ids, query_ids, n_used = protocol_split(ds.ids, n, args.seed)
            support = SupportSet()
            for i in support_ids:
                support.add(ds.image(i), ds.mask(i))
            queries = [ds.image(i) for i in query_ids[: args.queries]]
            seg._plans.clear()
            start = time.perf_counter()
            preds = seg.iter_predict(support, queries, PredictOptions())
            first = next(preds)
            first_s = time.perf_counter() - start
            rest = list(preds)
            per_query = (time.perf_counter() - start - first_s) / max(1, len(rest))
            scores = [dice(r.labels > 0, ds.mask(i) > 0) for r, i in zip([first, *rest], query_ids)]
            print(json.dumps({"dataset": ds.name, "n": n_used, "plan": first.plan.describe(), "first_s": round(first_s, 1),
                              "per_query_s": round(per_query, 2), "dice": round(float(np.mean(scores)), 3)}), flush=True)


if __name__ == "__main__":
    main()
