"""Would session 25's test of the tiled view help examples given at once? The protocol's split
(N examples), segmented two ways with default settings:

- at once: all N examples (what the CLI and the protocol do: the view is the shipped model's
  leave-one-out choice, and the adapted model is never tested in it);
- grown: the first N - 1 examples (one query, to make the choice and the adaptation), then all N,
  as the annotation loop adds a slice: where the first choice was tiles, the N-th example tests
  the adapted tiles against a resized copy (adapted_models.AdaptedModels._tested_view).

    python -m benchmarks.grown_view_test [--data ../shared/evaldata] [--set pfcpn_brightfield_neurons] [--size 4] [--seeds 0,1,2]

Prints per protocol seed the mean Dice on the queries and the plan of each way.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.protocol_task import EVALDATA, protocol_task, timed_run
from napari_universeg.evaluate import load_dataset
from napari_universeg.predict import PredictOptions, Segmenter
from napari_universeg.support import SupportSet


def scored(seg: Segmenter, support: SupportSet, queries: list, truths: list, options: PredictOptions) -> tuple[float, str]:
    """Mean Dice on the queries and the plan, in words (protocol_task.timed_run)."""
    run = timed_run(seg, support, queries, truths, options)
    return run["dice"], run["plan"].describe()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=EVALDATA)
    p.add_argument("--set", default="pfcpn_brightfield_neurons")
    p.add_argument("--size", type=int, default=4)
    p.add_argument("--seeds", default="0,1,2", help="the protocol's seeds (which examples)")
    args = p.parse_args()
    ds, seg, options = load_dataset(args.data / args.set), Segmenter.from_weights("default"), PredictOptions()
    for seed in (int(s) for s in args.seeds.split(",")):
        support, queries, truths, _ = protocol_task(ds, args.size, seed)
        seg.forget_plans()
        at_once = scored(seg, support, queries, truths, options)
        seg.forget_plans()
        grown = SupportSet()
        for ex in support.enabled()[:-1]:
            grown.add(ex.image, ex.mask)
        first = seg.predict(grown, queries[:1], options)[0].plan.describe()
        last = support.enabled()[-1]
        grown.add(last.image, last.mask)
        print(
            json.dumps(
                {
                    "set": args.set,
                    "seed": seed,
                    "at_once": at_once,
                    f"first {args.size - 1}": first,
                    "grown": scored(seg, grown, queries, truths, options),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
