"""Segmenting an OME-Zarr image block by block, in this process or on a dask.distributed cluster.

``segment_ome_zarr`` is the whole run:

1. The plan (how the model sees the slices, who predicts) is chosen once, here, before any block,
   and the model adapted once where the options adapt (``Segmenter.prepare``); the plan is turned
   into fixed options (``fixed_options``) that every worker follows with the adapted model: a
   worker never chooses or adapts for itself, so "auto" gives the same answer on any number of
   workers.
2. The labels image is created in the image's ``labels/`` group (ome_zarr_io.create_labels), or,
   when a run with the same settings already wrote part of it, reopened: the blocks flagged done
   are skipped (resume after a crash or a preemption).
3. Each block of slices is a task (``run_block``). On a cluster, the support set and the model are
   scattered to every worker once; each worker builds its Segmenter on the first task and keeps it
   (``_ENGINES``), with its plan cache, for the next ones. A block writes its slices, then its done
   flag, so a block cut short by a lost worker is simply run again. A failed block is retried and
   then reported with its slice range; the other blocks go on and stay written.

Results equal the single-process ``Segmenter.iter_predict`` over the same slices, slice for slice.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .ome_zarr_io import Block, LabelsTarget, ZarrSlices, ZarrVolume, create_labels, open_labels, open_ome_zarr, plan_blocks
from .options import PredictOptions
from .support import SupportSet

RETRIES = 2  # tries of a failed block after the first
_ENGINES: dict[tuple, object] = {}  # per worker process: (model key, device, precision) -> Segmenter


class BlocksFailed(ValueError):
    """Some blocks failed after their retries; the others are written. ``failures``: (block, error)."""

    def __init__(self, path: str, failures: list[tuple[Block, str]], total: int):
        self.failures = failures
        ranges = "; ".join(f"{b.describe()}: {err}" for b, err in failures)
        super().__init__(
            f"{path}: {len(failures)} of {total} blocks failed ({ranges}); the other blocks are written: run the same command again to redo only the missing ones"
        )


@dataclass
class RunResult:
    """What a run did: the labels image, the plan it followed, and its counts."""

    labels: LabelsTarget
    plan: object  # choice.Plan (with "auto"'s estimate)
    blocks: int = 0  # blocks in the volume
    skipped: int = 0  # blocks already written by an earlier run (resumed)
    computed: list[int] = field(default_factory=list)  # indices of the blocks computed by this run
    slices: int = 0  # slices computed by this run
    seconds: float = 0.0


def support_digest(support: SupportSet) -> str:
    """A digest of the enabled examples (images, masks, their shapes and dtypes) and the task."""
    h = hashlib.blake2b(support.task.encode(), digest_size=16)
    for ex in support.enabled():
        for a in (ex.image, ex.mask):
            h.update(repr((a.shape, a.dtype.str)).encode())
            h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def fixed_options(plan, options: PredictOptions) -> PredictOptions:
    """``options`` with the plan's choice written in (mode, scale, method) and no adaptation (the
    blocks run with the model adapted on the driver): with them, a Segmenter anywhere makes the
    same plan without choosing (the pixel classifier, where the plan uses one, is fitted on all
    examples with the same seed, as "auto" fits it)."""
    scale = plan.scale if plan.mode == "tiled" else None
    return replace(options, mode=plan.mode, scale=scale, method=plan.method, adapt=False)


def label_dtype_for(support: SupportSet, options: PredictOptions) -> np.dtype:
    """The labels' dtype: the smallest unsigned integer for the classes; int32 for instances."""
    from .preprocess import label_dtype

    if options.task == "instances":
        return np.dtype(np.int32)
    classes = list(options.classes or support.classes() or [1])
    return np.dtype(label_dtype(max(classes)))


def _engine(model, model_key: str, device: str | None, precision: str):
    """This process's Segmenter for the model (built once, kept with its plan cache)."""
    from .predict import Segmenter

    key = (model_key, device, precision)
    if key not in _ENGINES:
        import warnings

        # scikit-learn in a (daemon) dask worker: the forest runs on one core, as the worker has
        warnings.filterwarnings("ignore", message="Inside a Dask worker with daemon=True")
        _ENGINES.clear()  # one model per worker: a new run's model replaces the last
        _ENGINES[key] = Segmenter(model, device if device != "auto" else None, precision)
    return _ENGINES[key]


def segment_block(segmenter, block: Block, slices: ZarrSlices, target: LabelsTarget, support: SupportSet, options: PredictOptions) -> list[str]:
    """Segment one block with ``segmenter`` and write it (labels, then its done flag); returns the
    notes about blank slices. ``options`` are fixed (``fixed_options``)."""
    h, w = slices.volume.slice_shape
    out = np.zeros((block.stop - block.start, h, w), np.dtype(target.dtype))  # (slices, H, W)
    notes = []
    for pred in segmenter.iter_predict(support, slices, options, indices=range(block.start, block.stop)):
        out[pred.index - block.start] = pred.labels
        if pred.note:
            notes.append(pred.note)
    target.write(block, out)
    return notes


def run_block(
    block: Block,
    slices: ZarrSlices,
    target: LabelsTarget,
    support: SupportSet,
    options: PredictOptions,
    model,
    model_key: str,
    device: str | None = None,
    precision: str = "auto",
) -> tuple[int, int, float, list[str]]:
    """A cluster task: one block with this worker's Segmenter for ``model`` (built on its first
    task, kept for the next). Returns (block index, slices, seconds, notes about blank slices)."""
    start = time.perf_counter()
    notes = segment_block(_engine(model, model_key, device, precision), block, slices, target, support, options)
    return block.index, block.stop - block.start, time.perf_counter() - start, notes


def run_signature(volume: ZarrVolume, support: SupportSet, options: PredictOptions, weights: str, block_slices: int | None) -> dict:
    """What makes two runs the same (so that one may resume the other): JSON."""
    return {
        "image": [volume.dataset, list(volume.shape)],
        "support": support_digest(support),
        "options": asdict(options),
        "weights": str(weights),
        "block_slices": block_slices,
    }


def segment_ome_zarr(
    image: str,
    support: SupportSet,
    options: PredictOptions | None = None,
    *,
    labels_name: str = "universeg",
    weights: str = "default",
    device: str | None = None,
    precision: str = "auto",
    channel: int | None = None,
    client=None,
    block_slices: int | None = None,
    overwrite: bool = False,
    retries: int = RETRIES,
    segmenter=None,
    progress: bool = True,
    on_block: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Segment every slice of the OME-Zarr image ``image`` into ``<image>/labels/<labels_name>``.

    Slices are (H, W) planes of the image (module ome_zarr_io); labels come out as (..., H, W)
    unsigned integers (int32 objects, numbered per slice, for the task "instances"). ``client``: a
    ``dask.distributed.Client`` to run the blocks on its workers (None: here, one block after the
    other). A run with the same settings that stopped part way is resumed (its written blocks are
    skipped); labels of that name from a different run are replaced only with ``overwrite``.
    ``on_block(block index, blocks done)`` is called as blocks finish. ``segmenter``: a loaded
    Segmenter to use here (default: built from ``weights``). Raises BlocksFailed (a ValueError)
    after every other block is done if some blocks failed after ``retries``.
    """
    from tqdm import tqdm

    from .predict import Segmenter

    log = log or (lambda msg: print(msg, file=sys.stderr))
    options = replace(options or PredictOptions())
    options.validate()
    volume = open_ome_zarr(image)
    slices = ZarrSlices(volume, channel)
    if not support.enabled():
        raise ValueError("the support set has no (enabled) examples: add at least one labelled example")
    seg = segmenter or Segmenter.from_weights(weights, device, precision)
    plan = seg.prepare(support, tuple(volume.slice_shape), options)
    fixed = fixed_options(plan, options)
    model = seg.run_model(support, plan, options)
    if model is not seg.model:  # adapted: the blocks run with the tuned copy
        seg = Segmenter(model, seg.device, seg.precision, seg.size)
    if plan.estimate is not None:
        log(f"{plan.describe()}: {plan.estimate_message(len(support.enabled()))}")
    blocks = plan_blocks(volume, block_slices)
    run = run_signature(volume, support, fixed, weights, block_slices)
    target = open_labels(volume, labels_name)
    if target is not None and target.record().get("run") == json.loads(json.dumps(run)):
        done = target.done()
    else:
        target = create_labels(volume, labels_name, label_dtype_for(support, options), blocks, run, replace=overwrite)
        done = np.zeros(len(blocks), bool)
    pending = [b for b in blocks if not done[b.index]]
    result = RunResult(target, plan, len(blocks), len(blocks) - len(pending))
    if result.skipped:
        log(f"resuming: {result.skipped} of {len(blocks)} blocks already written, {len(pending)} to go")
    total = volume.n_slices
    finished = sum(b.stop - b.start for b in blocks if done[b.index])
    failures: list[tuple[Block, str]] = []
    start = time.perf_counter()
    with tqdm(total=total, initial=finished, unit="slice", desc="segmenting", file=sys.stderr, disable=not progress, smoothing=0) as bar:

        def finish(block: Block, notes: list[str]) -> None:
            result.computed.append(block.index)
            result.slices += block.stop - block.start
            bar.update(block.stop - block.start)
            for note in notes:
                bar.write(f"warning: {image}: {note}", file=sys.stderr)
            if on_block is not None:
                on_block(block.index, result.skipped + len(result.computed))

        if client is None:
            for block in pending:
                finish(block, segment_block(seg, block, slices, target, support, fixed))
        else:
            _run_on_cluster(client, pending, slices, target, support, fixed, model, (device, precision), retries, finish, failures)
    result.seconds = time.perf_counter() - start
    if failures:
        raise BlocksFailed(image, failures, len(blocks))
    target.mark_complete()
    return result


def _run_on_cluster(client, pending, slices, target, support, fixed, model, engine, retries, finish, failures) -> None:
    """The blocks as tasks on the client's workers; the support set and the model are sent to each
    worker once (scattered, broadcast), the engine settings (device, precision) as given."""
    import copy
    import uuid

    from distributed import as_completed

    if not pending:
        return
    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).cpu()  # device-neutral: each worker moves it to its own device
    model_key = uuid.uuid4().hex  # this run's model: a worker keeps one Segmenter per run
    support_f, model_f = client.scatter([support, model], broadcast=True, hash=False)
    by_key = {}
    futures = []
    try:
        for block in pending:
            f = client.submit(
                run_block,
                block,
                slices,
                target,
                support_f,
                fixed,
                model_f,
                model_key,
                *engine,
                retries=retries,
                key=f"universeg-block-{block.index}-{model_key}",
            )
            by_key[f.key] = block
            futures.append(f)
        for f in as_completed(futures):
            block = by_key[f.key]
            if f.status == "finished":
                finish(block, f.result()[3])
            else:
                err = f.exception()
                failures.append((block, f"{type(err).__name__}: {err}"))
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        client.cancel([support_f, model_f])
