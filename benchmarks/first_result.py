"""Time to the first result of "auto" (its choice plus the first query) and per query after it.

    python -m benchmarks.first_result [--data ../shared/evaldata] [--sizes 4,16] [--seed 0] [--queries 3]

One line of JSON per data set and support size (standard protocol split): the plan, seconds to
the first result, seconds per further query and mean Dice of the queries. To compare with an
older version, run it with that version's src/ first on PYTHONPATH, in the same session.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.protocol_task import EVALDATA, evaluation_sets, protocol_task, timed_run
from napari_universeg.predict import PredictOptions, Segmenter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=EVALDATA)
    p.add_argument("--sizes", default="4,16")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--queries", type=int, default=3)
    args = p.parse_args()
    seg = Segmenter.from_weights("default")
    for ds in evaluation_sets(args.data):
        for n in (int(s) for s in args.sizes.split(",")):
            support, queries, truths, n_used = protocol_task(ds, n, args.seed, args.queries)
            seg.forget_plans()
            r = timed_run(seg, support, queries, truths, PredictOptions())
            print(
                json.dumps(
                    {
                        "dataset": ds.name,
                        "n": n_used,
                        "plan": r["plan"].describe(),
                        "first_s": round(r["first_s"], 1),
                        "per_query_s": round(r["per_query_s"], 2),
                        "dice": round(r["dice"], 3),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
