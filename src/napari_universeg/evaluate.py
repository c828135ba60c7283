"""Few-shot segmentation accuracy on the shared evaluation sets, with their standard protocol.

A data set is a folder with ``images/NNN.png`` (native dtype, grey) and ``masks/NNN.tif`` (0/1, same
height and width). The protocol (shared/evaldata/README.md), kept exactly so that numbers are
comparable across methods:

1. sort the ids; support pool = the first floor(n/2) ids; queries = the remaining ids, at most 20;
2. for each support size N (capped at the pool size) and seed:
   support ids = numpy.random.default_rng(seed).choice(pool, N, replace=False);
3. predict a full-resolution binary mask for every query from the support pairs only;
4. Dice per query (1 when prediction and truth are both empty), mean over queries, then mean and
   standard deviation (ddof=0) over seeds.

With ``task="instances"`` the masks are the instance label images of ``instances/NNN.tif``, the
methods return one label per object, and the scores are AP at IoU 0.5 (the summary's "mean") and
the aggregated Jaccard index ("aji"), besides the Dice of the foreground ("dice").

Only numpy is imported here; image readers and methods are imported when used.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import PredictFn, aggregated_jaccard, average_precision, dice

EVALDATA_ENV = "NAPARI_UNIVERSEG_EVALDATA"


def evaldata_dir() -> Path:
    """Where the evaluation sets are: $NAPARI_UNIVERSEG_EVALDATA, else shared/evaldata beside this
    source tree's checkout (tests, benchmarks and training read it from there; it may not exist)."""
    env = os.environ.get(EVALDATA_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "evaldata"


__all__ = ["EvalDataset", "PredictFn", "comparison_table", "dice", "format_table", "get_method", "load_dataset", "protocol_split", "run_protocol"]


@dataclass(frozen=True)
class EvalDataset:
    """An evaluation folder: ``name`` is the folder name, ``ids`` the sorted image stems."""

    name: str
    root: Path
    ids: tuple[str, ...]

    def image_path(self, id: str) -> Path:
        """The image file of ``id``."""
        return self.root / "images" / f"{id}.png"

    def mask_path(self, id: str) -> Path:
        """The mask file of ``id``."""
        return self.root / "masks" / f"{id}.tif"

    def image(self, id: str) -> np.ndarray:
        """The image as a 2D array in its native dtype (RGB is converted to luminance)."""
        from .io import read_image
        from .preprocess import to_grey

        path = self.image_path(id)
        image = read_image(path)
        if image.ndim == 3 and image.shape[-1] in (3, 4):
            image = to_grey(image, what=str(path))
        if image.ndim != 2:
            raise ValueError(f"{path}: expected a 2D grey image, got shape {image.shape}")
        return image

    def instances(self, id: str) -> np.ndarray:
        """The instance labels of ``instances/<id>.tif`` as a 2D int64 array (0 = background)."""
        from .io import read_image

        path = self.root / "instances" / f"{id}.tif"
        if not path.is_file():
            raise ValueError(f"{self.root}: no instance labels instances/{id}.tif (this data set has no instances)")
        labels = np.squeeze(read_image(path))
        if labels.ndim != 2:
            raise ValueError(f"{path}: expected 2D instance labels, got shape {labels.shape}")
        return labels.astype(np.int64)

    def mask(self, id: str) -> np.ndarray:
        """The mask as a 2D uint8 array of 0/1."""
        from .io import read_image

        path = self.mask_path(id)
        mask = np.squeeze(read_image(path))
        if mask.ndim != 2:
            raise ValueError(f"{path}: expected a 2D mask, got shape {mask.shape}")
        return (mask > 0).astype(np.uint8)


def load_dataset(path: str | Path) -> EvalDataset:
    """Check the layout of an evaluation folder and list its ids (image files are read lazily)."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"{root}: evaluation folder not found")
    for sub in ("images", "masks"):
        if not (root / sub).is_dir():
            raise ValueError(f"{root}: no '{sub}/' folder (expected images/NNN.png and masks/NNN.tif)")
    ids = sorted(p.stem for p in (root / "images").glob("*.png"))
    if not ids:
        raise ValueError(f"{root / 'images'}: no .png images")
    missing = [i for i in ids if not (root / "masks" / f"{i}.tif").is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(f"{root}: {len(missing)} image(s) without a mask masks/<id>.tif: {shown}")
    return EvalDataset(name=root.name, root=root, ids=tuple(ids))


def protocol_split(ids: Sequence[str], support_size: int, seed: int, max_queries: int = 20) -> tuple[list[str], list[str], int]:
    """Return (support_ids, query_ids, n_used) for one support size and seed of the protocol."""
    ordered = sorted(ids)
    pool = ordered[: len(ordered) // 2]
    queries = ordered[len(pool) :][:max_queries]
    if not pool:
        raise ValueError(f"need at least 2 ids for a support pool and a query, got {len(ordered)}")
    if support_size < 1:
        raise ValueError(f"support size must be at least 1, got {support_size}")
    n_used = min(support_size, len(pool))
    support = np.random.default_rng(seed).choice(pool, n_used, replace=False)
    return [str(i) for i in support], queries, n_used


def run_protocol(
    dataset: EvalDataset,
    predict: PredictFn,
    method: str,
    support_sizes: Sequence[int] = (1, 4, 16),
    seeds: Sequence[int] = (0, 1, 2),
    progress: Callable[[str], None] | None = None,
    task: str = "classes",
) -> dict:
    """Run the standard protocol of one method on one data set; the result is JSON-serialisable."""
    start = time.perf_counter()
    load = _pair_loader(dataset, task)
    runs = []
    summary = {}
    for size in support_sizes:
        size_runs = []
        for seed in seeds:
            run = _run_once(dataset, predict, method, load, size, seed, task)
            size_runs.append(run)
            if progress is not None:
                scores = f"AP@0.5 {run['mean_ap50']:.3f}, AJI {run['mean_aji']:.3f}, " if task == "instances" else ""
                progress(
                    f"{dataset.name} / {method} N={size} (used {run['n_used']}) seed={seed}: "
                    f"{scores}Dice {run['mean_dice']:.3f} in {run['seconds']:.1f} s"
                    + (f" ({run['plan']}, estimate {run['estimate']:.3f})" if run["estimate"] is not None else "")
                )
        means = [run["mean_ap50" if task == "instances" else "mean_dice"] for run in size_runs]
        summary[str(size)] = {
            "mean": float(np.mean(means)),
            "std": float(np.std(means)),
            "worst": float(np.min(means)),
            "n_used": size_runs[0]["n_used"],
        }
        if task == "instances":
            summary[str(size)]["aji"] = float(np.mean([run["mean_aji"] for run in size_runs]))
            summary[str(size)]["dice"] = float(np.mean([run["mean_dice"] for run in size_runs]))
        estimates = [run["estimate"] for run in size_runs if run["estimate"] is not None]
        if estimates:
            summary[str(size)]["estimate"] = float(np.mean(estimates))
        runs.extend(size_runs)
    return {
        "dataset": dataset.name,
        "method": method,
        "task": task,
        "metric": "AP@0.5" if task == "instances" else "Dice",
        "summary": summary,
        "runs": runs,
        "seconds": time.perf_counter() - start,
    }


def _pair_loader(dataset: EvalDataset, task: str = "classes") -> Callable[[str], tuple[np.ndarray, np.ndarray]]:
    """Read each (image, mask) pair once and keep it for the other runs of the call; the masks are
    the instance labels for task "instances"."""
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def load(id: str) -> tuple[np.ndarray, np.ndarray]:
        if id not in cache:
            image, mask = dataset.image(id), (dataset.instances(id) if task == "instances" else dataset.mask(id))
            if image.shape != mask.shape:
                raise ValueError(
                    f"{dataset.mask_path(id)}: mask shape {mask.shape} differs from image shape {image.shape} of {dataset.image_path(id)}"
                )
            cache[id] = (image, mask)
        return cache[id]

    return load


def _run_once(
    dataset: EvalDataset,
    predict: PredictFn,
    method: str,
    load: Callable[[str], tuple[np.ndarray, np.ndarray]],
    size: int,
    seed: int,
    task: str = "classes",
) -> dict:
    support_ids, query_ids, n_used = protocol_split(dataset.ids, size, seed)
    support = [load(i) for i in support_ids]
    queries = [load(i) for i in query_ids]
    start = time.perf_counter()
    preds = predict([img for img, _ in support], [m for _, m in support], [img for img, _ in queries])
    seconds = time.perf_counter() - start
    if len(preds) != len(query_ids):
        raise ValueError(f"method {method!r} returned {len(preds)} masks for {len(query_ids)} queries ({dataset.name}, N={size}, seed={seed})")
    scores, ap50, aji = {}, {}, {}
    for query_id, pred, (image, mask) in zip(query_ids, preds, queries):
        pred = np.asarray(pred)
        if pred.shape != image.shape:
            raise ValueError(
                f"method {method!r} returned a mask of shape {pred.shape} for query {query_id} of {dataset.name}, whose image is {image.shape}"
            )
        scores[query_id] = dice(pred > 0, mask > 0)
        if task == "instances":
            ap50[query_id] = average_precision(pred, mask, 0.5)
            aji[query_id] = aggregated_jaccard(pred, mask)
    plan = getattr(predict, "plan", None)  # methods that choose a plan say which, and their estimate
    return {
        "support_size": size,
        "n_used": n_used,
        "seed": seed,
        "support_ids": support_ids,
        "dice_per_query": scores,
        "mean_dice": float(np.mean(list(scores.values()))),
        **(
            {
                "ap50_per_query": ap50,
                "aji_per_query": aji,
                "mean_ap50": float(np.mean(list(ap50.values()))),
                "mean_aji": float(np.mean(list(aji.values()))),
            }
            if task == "instances"
            else {}
        ),
        "estimate": getattr(plan, "estimate", None),
        "plan": plan.describe() if plan is not None else None,
        "seconds": seconds,
    }


def format_table(results: list[dict]) -> str:
    """A markdown table: one row per (dataset, method), one "mean ± std, worst" column per support
    size (mean and standard deviation over seeds, and the worst seed's mean).

    A cell whose support size was capped says so, e.g. "(N=5)"; a summary without "std" (such as a
    mean over data sets) shows the mean only.
    """
    sizes = sorted({key for r in results for key in r["summary"]}, key=int)
    header = ["dataset", "method"] + [f"N={s}" for s in sizes]
    rows = [[r["dataset"], r["method"]] + [_cell(r["summary"].get(s), s) for s in sizes] for r in results]
    widths = [max(len(str(row[c])) for row in [header] + rows) for c in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), separator] + [line(row) for row in rows])


def comparison_table(results: list[dict]) -> str:
    """format_table sorted by data set and method, plus each method's mean over the data sets."""
    results = sorted(results, key=lambda r: (r["dataset"], r["method"]))
    means = []
    for method in dict.fromkeys(r["method"] for r in results):
        mine = [r for r in results if r["method"] == method]
        sizes = dict.fromkeys(size for r in mine for size in r["summary"])
        summary = {n: {"mean": float(np.mean([r["summary"][n]["mean"] for r in mine if n in r["summary"]]))} for n in sizes}
        means.append({"dataset": f"mean of {len(mine)} data sets", "method": method, "summary": summary})
    return format_table(results + means)


def _cell(entry: dict | None, size: str) -> str:
    if entry is None:
        return "-"
    text = f"{entry['mean']:.3f}"
    if "std" in entry:
        text += f" ± {entry['std']:.3f}"
    if "worst" in entry:
        text += f", worst {entry['worst']:.3f}"
    if "n_used" in entry and entry["n_used"] != int(size):
        text += f" (N={entry['n_used']})"
    return text


def _universeg(**options: Any) -> PredictFn:
    from .predict import make_universeg_method

    return make_universeg_method(**options)


def _otsu(**options: Any) -> PredictFn:
    from .baselines import otsu_method

    return otsu_method(**options)


def _random_forest(**options: Any) -> PredictFn:
    from .baselines import random_forest_method

    return random_forest_method(**options)


def _universeg_cc(**options: Any) -> PredictFn:
    from .baselines import connected_components

    return connected_components(_universeg(**{**options, "task": "classes"}))


def _watershed(**options: Any) -> PredictFn:
    from .baselines import watershed_method

    return watershed_method(**options)


METHODS: dict[str, Callable[..., PredictFn]] = {
    "universeg": _universeg,
    "random-forest": _random_forest,
    "otsu": _otsu,
    # instance baselines (task "instances")
    "universeg-cc": _universeg_cc,
    "watershed": _watershed,
}


def get_method(name: str, **options: Any) -> PredictFn:
    """Build a registered method ("universeg", "random-forest", "otsu"; for instances also
    "universeg-cc" and "watershed") with its options."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    return METHODS[name](**options)
