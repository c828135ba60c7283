"""Few-shot accuracy of each method on each evaluation set, with the standard protocol.

    python -m benchmarks.accuracy [--data ../shared/evaldata] [--methods universeg,random-forest,otsu]
                                  [--predictor auto] [--adapt auto] [--mode auto] [--weights default] [--sizes 1,4,16] [--seeds 0,1,2]
                                  [--task classes|instances] [--json out.json]

--task instances runs the data sets that have instance labels (instances/) with the methods
universeg (instance mode), universeg-cc (connected components of its semantic output) and
watershed (Otsu + distance-transform watershed) unless --methods says otherwise, and prints an
AP@0.5 table and an aggregated-Jaccard table.

"universeg" is the plugin with its default settings: --predictor auto lets it choose among
UniverSeg, the pixel classifier and their blend; --predictor universeg is UniverSeg alone. The
table labels it "plugin (PREDICTOR)". --adapt off compares weights as they are (no test-time
adaptation to the examples). --mode resize or tiled fixes how UniverSeg sees the images (auto: the
plugin's choice on the examples), so that two sets of weights can be compared without the choice.

Progress goes to stderr; the table of Dice "mean ± std over seeds" (with a last row per method: the
mean over data sets) goes to stdout; --json keeps every run, rewritten after each (data set, method).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from napari_universeg.evaluate import comparison_table, evaldata_dir, get_method, load_dataset, run_protocol
from napari_universeg.options import MODES

DEFAULT_DATA = evaldata_dir()
ADAPT = {"auto": None, "on": True, "off": False}  # --adapt -> PredictOptions.adapt


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of evaluation sets")
    parser.add_argument(
        "--methods", help="comma-separated (default: universeg,random-forest,otsu; with --task instances universeg,universeg-cc,watershed)"
    )
    parser.add_argument("--task", default="classes", choices=("classes", "instances"))
    parser.add_argument("--weights", default="default", help="UniverSeg weights, as make_universeg_method takes them")
    parser.add_argument("--predictor", default="auto", choices=("auto", "universeg", "pixels", "blend"))
    parser.add_argument("--adapt", default="auto", choices=("auto", "on", "off"), help="test-time adaptation (auto: the plugin's default)")
    parser.add_argument("--mode", default="auto", choices=MODES, help="how UniverSeg sees the images (auto: chosen on the examples)")
    parser.add_argument("--sizes", default="1,4,16", help="support sizes, comma-separated")
    parser.add_argument("--seeds", default="0,1,2", help="seeds, comma-separated")
    parser.add_argument("--json", type=Path, help="write all results to this JSON file")
    parser.add_argument("--table-from", type=Path, nargs="+", metavar="JSON", help="only print the table of saved results")
    return parser.parse_args(argv)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def method_options(name: str, args: argparse.Namespace) -> dict:
    if name == "universeg":
        return {"weights": args.weights, "method": args.predictor, "task": args.task, "adapt": ADAPT[args.adapt], "mode": args.mode}
    return {"weights": args.weights, "method": args.predictor} if name == "universeg-cc" else {}


def tables(results: list[dict]) -> str:
    """The comparison table; for instance results also one of the aggregated Jaccard index."""
    text = comparison_table(results)
    if results and results[0].get("task") == "instances":
        aji = [{**r, "summary": {n: {"mean": v["aji"]} for n, v in r["summary"].items()}} for r in results]
        text = f"AP@0.5:\n\n{text}\n\nAggregated Jaccard index:\n\n{comparison_table(aji)}"
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table_from:
        print(tables([r for path in args.table_from for r in json.loads(path.read_text())]))
        return 0
    needed = "instances" if args.task == "instances" else "images"
    folders = sorted(p for p in args.data.iterdir() if (p / needed).is_dir()) if args.data.is_dir() else []
    if not folders:
        print(f"no evaluation sets (folders with images/) under {args.data}", file=sys.stderr)
        return 1
    datasets = [load_dataset(folder) for folder in folders]

    methods = {}
    names = args.methods or ("universeg,universeg-cc,watershed" if args.task == "instances" else "universeg,random-forest,otsu")
    for name in (m.strip() for m in names.split(",") if m.strip()):
        try:
            plugin = f"plugin ({args.predictor}{'' if args.mode == 'auto' else ', ' + args.mode})"
            label = plugin if name == "universeg" else f"{plugin} + connected components" if name == "universeg-cc" else name
            methods[label] = get_method(name, **method_options(name, args))
        except Exception as error:  # e.g. missing weights or package: report and go on without it
            print(f"skipping method {name!r}: {type(error).__name__}: {error}", file=sys.stderr)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results = []
    for dataset in datasets:
        for name, predict in methods.items():
            result = run_protocol(dataset, predict, name, _ints(args.sizes), _ints(args.seeds), progress, task=args.task)
            progress(f"{dataset.name} / {name}: done in {result['seconds']:.1f} s")
            results.append(result)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))

    if results:
        print(tables(results))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
