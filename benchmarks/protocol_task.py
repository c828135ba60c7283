"""Shared by the benchmark scripts: the evaluation sets, one protocol split as a support set, and
a timed run of the plugin on its queries."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from napari_universeg.evaluate import EvalDataset, dice, evaldata_dir, load_dataset, protocol_split
from napari_universeg.predict import PredictOptions, Segmenter
from napari_universeg.support import SupportSet

EVALDATA = evaldata_dir()


def evaluation_sets(root: Path) -> list[EvalDataset]:
    """Every folder with images/ under root, sorted by name."""
    return [load_dataset(d) for d in sorted(d for d in root.iterdir() if (d / "images").is_dir())]


def protocol_task(ds: EvalDataset, size: int, seed: int, max_queries: int | None = None):
    """(support set, query images, query masks, N used) of the standard protocol's split."""
    support_ids, query_ids, n_used = protocol_split(ds.ids, size, seed)
    support = SupportSet()
    for i in support_ids:
        support.add(ds.image(i), ds.mask(i))
    query_ids = query_ids[:max_queries]
    return support, [ds.image(i) for i in query_ids], [ds.mask(i) for i in query_ids], n_used


def timed_run(seg: Segmenter, support: SupportSet, queries: list, truths: list, options: PredictOptions) -> dict:
    """Mean Dice, seconds to the first result (with any choice or adaptation) and per query after it."""
    start = time.perf_counter()
    preds = seg.iter_predict(support, queries, options)
    first = next(preds)
    first_s = time.perf_counter() - start
    rest = list(preds)
    per_query = (time.perf_counter() - start - first_s) / max(1, len(rest))
    scores = [dice(p.labels > 0, t > 0) for p, t in zip([first, *rest], truths)]
    return {"dice": float(np.mean(scores)), "first_s": first_s, "per_query_s": per_query, "plan": first.plan}
