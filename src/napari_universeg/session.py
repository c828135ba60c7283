"""The annotation session behind the dock widget, free of Qt and napari.

It owns what a user builds up while annotating: the support set, which slices a run segments and in
what order, what the runs wrote (to spot the user's corrections and to suggest the next slice), the
undo grouping of a run, and the segmenter. Layers are duck-typed: anything with ``.name``, ``.data``,
``.data_setitem(indices, values)`` and ``.block_history()`` (a napari Labels layer) will do, and
plain arrays where only data is needed. The widget moves data between napari and this object.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._slicing import Index, SliceView, all_slices, describe_index, painted_slices, read_slice
from .instances import guess_task, offset_ids
from .options import PredictOptions
from .plausibility import classes_problem
from .suggest import expected_errors, likeness_by_distance, next_slice, thumbnail
from .support import Example, SupportSet

WHICH = ("current", "all", "unpainted", "rest")  # what a run segments (AnnotationSession.slices_to_run)


@dataclass
class SliceResult:
    """One segmented slice, addressed by its leading indices in the image."""

    index: Index  # leading (non-spatial) indices of the slice, () for a 2D image
    labels: np.ndarray  # (H, W) integer class labels (objects 1..K with ``objects``), 0 = background
    probability: np.ndarray  # (H, W) float32: probability of the chosen class
    note: str = ""  # why the slice was left empty (a blank slice), naming ``index``
    plan: object = None  # how the model saw the image (predict.Plan), None if unknown
    objects: bool = False  # task "instances": labels are objects, renumbered when written
    preview: bool = False  # a fast first result; the same slice comes again, refined
    model: str = ""  # which model UniverSeg ran with, in words (predict.SlicePrediction.model)


@dataclass
class StackThumbnails:
    """What suggest compares an image's slices by: their thumbnails as they are read, and their
    likeness by distance along the stack once all are read."""

    key: tuple  # (id, shape, rgb) of the image
    thumbnails: dict[Index, np.ndarray] = field(default_factory=dict)  # slice -> suggest.thumbnail
    likeness: np.ndarray | None = None  # suggest.likeness_by_distance, in all_slices order


def digest(labels: np.ndarray) -> str:
    """A short fingerprint of a label slice ((H, W) ints), to notice later edits."""
    return hashlib.blake2b(np.ascontiguousarray(labels).data, digest_size=16).hexdigest()


def write_slice(layer, index: Index, values: np.ndarray) -> None:
    """Write ``values`` ((H, W) ints) into slice ``index`` of ``layer`` through ``data_setitem``,
    so that the change is recorded for undo; cast to the layer's dtype."""
    yy, xx = np.indices(values.shape)
    indices = tuple(np.full(values.size, i) for i in index) + (yy.ravel(), xx.ravel())
    layer.data_setitem(indices, values.ravel().astype(layer.data.dtype))


class AnnotationSession:
    """The support set and the bookkeeping of the runs of one annotation session.

    ``support`` is one SupportSet for the whole session (cleared in place, never replaced), so views
    may keep a reference to it. ``unsure`` maps slice index -> expected fraction of wrong pixels of
    its last result; ``written`` maps (layer name, slice index) -> digest of what a run wrote there.
    """

    def __init__(self) -> None:
        self.support = SupportSet()
        self.unsure: dict[Index, float] = {}
        self.written: dict[tuple[str, Index], str] = {}
        self.notes: list[str] = []  # blank slices of the current run
        self.last_plan = None  # the plan of the current run's latest result (what "auto" chose)
        self.last_model = ""  # and which model UniverSeg ran with, in words
        self.task_chosen = False  # the user set the task: it is no longer guessed from the examples
        self._next_id: dict[str, int] = {}  # layer name -> first free object id in the current run
        self._segmenter = None
        self._segmenter_device: str | None = None
        self._loading = threading.Lock()  # a run and a background choice may both ask for it first
        self.axis_labels: tuple[str, ...] = ()  # names of the image's leading axes, for messages
        self._stack: StackThumbnails | None = None  # of the last image segmented, for suggest

    def where(self, index: Index) -> str:
        """A slice position in words ("slice 3", "t=2, z=14")."""
        return describe_index(index, self.axis_labels)

    # -- support set ------------------------------------------------------------------------
    def add(
        self,
        image,
        labels,
        index: Index = (),
        *,
        image_name: str = "",
        labels_name: str = "",
        channel: int | None = None,
    ) -> Example:
        """Add slice ``index`` of ``image`` ((..., H, W) or RGB (..., H, W, C), numpy or dask) with
        the same slice of ``labels`` ((..., H, W) ints, 0 = background) as an example.

        The example's source names both layers and the slice; its meta records ``image_name`` and
        the index (so runs and suggestions skip it). A ValueError "cannot add <source>: <why>"
        if SupportSet.add refuses it; the support set is unchanged then.
        """
        where = f"{labels_name} / {image_name}" + (f", {self.where(index)}" if index else "")
        try:
            return self.support.add(
                read_slice(image, index),
                read_slice(labels, index),
                source=where,
                channel=channel,
                meta={"image": image_name, "index": list(index)},
            )
        except ValueError as e:
            raise ValueError(f"cannot add {where}: {e}") from None

    def load(self, path: str | Path) -> list[Example]:
        """Append the examples of a support-set file (support.py); returns them, in order.

        Every example goes through SupportSet.add's checks; all or none are added: a ValueError
        (the file's or the first refused example's) leaves the support set unchanged.
        """
        loaded, staged = SupportSet.load(path), SupportSet()
        for ex in loaded:
            staged.add(ex.image, ex.mask, ex.source, enabled=ex.enabled, meta=ex.meta)
        if not len(self.support):  # a set started from a file keeps the file's task
            self.support.task, self.task_chosen = loaded.task, True
        self.support.examples.extend(staged)
        return list(staged)

    def choose_task(self, task: str) -> None:
        """The user's choice of task ("classes" or "instances"); it is no longer guessed."""
        self.support.task, self.task_chosen = task, True

    def update_task(self) -> str:
        """Unless the user chose it, guess the task from the enabled examples (instances.guess_task:
        many values, each one compact blob, are objects); returns the task, in words for the user."""
        if not self.task_chosen:
            self.support.task = guess_task([ex.mask for ex in self.support.enabled()])
        how = "chosen" if self.task_chosen else "guessed"
        return f"task: {self.support.task} ({how}; {'each painted value is one object' if self.support.task == 'instances' else 'each value is a class'})"

    def example_indices(self, image_name: str | None = None) -> set[Index]:
        """Slice indices of the examples taken from image ``image_name`` (of any image if None)."""
        return {tuple(ex.meta.get("index", ())) for ex in self.support if image_name is None or ex.meta.get("image") == image_name}

    def check_ready(self) -> None:
        """A ValueError saying why a run cannot start with these examples; nothing otherwise."""
        if not self.support.enabled():
            raise ValueError("no examples in the support set: paint a slice and click 'Add current slice'")
        if not self.support.classes():
            raise ValueError("every example is background only (empty masks): paint the objects on at least one example")
        problem = classes_problem(self.support.classes(), self.support.task)
        if problem is not None:
            raise ValueError(problem)

    # -- run policy -------------------------------------------------------------------------
    def slices_to_run(
        self,
        which: str,
        shape: Sequence[int],
        here: Index,
        labels,
        *,
        rgb: bool = False,
        output=None,
        image_name: str = "",
        fill_painted: bool = False,
    ) -> list[Index]:
        """The slices a run segments, nearest to ``here`` first (city-block distance, then index).

        ``shape``: the image's shape ((..., H, W), or (..., H, W, C) with ``rgb``); ``labels``: the
        painted (..., H, W) labels. ``which``: "current" (the slice ``here``), "all", "unpainted"
        (no label in ``labels``) or "rest": every slice that is not an example of ``image_name`` and
        that the user has not edited in ``output`` (a layer or None) since a run wrote it. With
        ``fill_painted`` the run writes into ``labels``: its painted slices are dropped.
        """
        if which not in WHICH:
            raise ValueError(f"which must be one of {WHICH}, not {which!r}")
        slices = all_slices(shape, rgb)
        if which == "current":
            todo = [tuple(here)]
        elif which == "unpainted":
            painted = set(painted_slices(labels))
            todo = [s for s in slices if s not in painted]
        elif which == "rest":
            examples = self.example_indices(image_name)
            todo = [s for s in slices if s not in examples and (output is None or not self.edited(output, s))]
        else:
            todo = slices
        if fill_painted:
            painted = set(painted_slices(labels))
            todo = [s for s in todo if s not in painted]
        return sorted(todo, key=lambda s: (sum(abs(a - b) for a, b in zip(s, here)), s))

    def edited(self, layer, index: Index) -> bool:
        """True if slice ``index`` of ``layer`` differs from what the last run wrote there."""
        written = self.written.get((layer.name, index))
        return written is not None and digest(read_slice(layer.data, index)) != written

    # -- running ----------------------------------------------------------------------------
    @contextmanager
    def undo_group(self, layer) -> Iterator[None]:
        """``with session.undo_group(layer): ...``: every write inside is one undo step of ``layer``."""
        with layer.block_history():
            yield

    def segmenter(self, device: str = "auto"):
        """The predict.Segmenter with the default weights on ``device``, loaded once (imports torch)."""
        from .predict import Segmenter

        with self._loading:
            if self.loaded(device) is None:
                self._segmenter = Segmenter.from_weights("default", device=device)
                self._segmenter_device = device
            return self._segmenter

    def loaded(self, device: str = "auto"):
        """The segmenter if it is loaded on ``device`` already, else None (nothing is loaded)."""
        return self._segmenter if self._segmenter_device == device else None

    def predictions(
        self,
        image,
        todo: Sequence[Index],
        options: PredictOptions,
        *,
        channel: int | None = None,
        rgb: bool = False,
        device: str = "auto",
        cancel: Callable[[], bool] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> Iterator[SliceResult]:
        """Segment slices ``todo`` of ``image`` ((..., H, W) or RGB (..., H, W, C), numpy or dask) with
        the enabled examples as they are now; yields a SliceResult per slice as it is done. While
        "auto" chooses its plan or the model adapts to new examples, the first slice comes as a
        quick preview first, then again (Segmenter.iter_predict).

        The examples and slices are taken when this is called; the model is loaded and the slices
        are read while iterating (in a worker thread). ``cancel`` is checked between batches;
        ``progress(phase, done, total)`` is called as the engine goes (Segmenter.iter_predict).
        The thumbnails ``suggest`` compares slices by are taken from the slices as they are read,
        and after a run of several slices the rest of the stack's are read too, in the worker,
        so that a suggestion does not read the stack in the GUI thread.
        """
        support = SupportSet(self.support.enabled(), task=self.support.task)
        thumbnails = self._stack_of(image, rgb).thumbnails

        def keep_thumbnail(index: Index, slice_: np.ndarray) -> None:
            if index not in thumbnails:
                thumbnails[index] = thumbnail(slice_)

        view = SliceView(image, todo, on_read=keep_thumbnail)
        self.notes, self.last_plan, self.last_model, self._next_id = [], None, "", {}

        def run() -> Iterator[SliceResult]:
            seg = self.segmenter(device)
            for pred in seg.iter_predict(support, view, options, channel=channel, cancel=cancel, progress=progress, preview=True):
                index = view.indices[pred.index]
                note = pred.note.replace(f"slice {pred.index}", self.where(index), 1) if pred.note else ""
                yield SliceResult(index, pred.labels, pred.probability, note, pred.plan, options.task == "instances", pred.preview, pred.model)
            if len(todo) > 1:  # a run over the stack: the few slices it did not read (the examples), for suggest
                self.read_thumbnails(image, rgb, cancel)

        return run()

    def write(self, layer, result: SliceResult, fill_painted: bool = False) -> bool:
        """Write a result into its slice of ``layer`` (undoable, see write_slice) and record its
        digest, expected errors, note and plan. Objects get ids no other label of the layer has. With ``fill_painted`` a slice that has labels
        (painted meanwhile) is kept and nothing is recorded; returns whether it was written."""
        if fill_painted and read_slice(layer.data, result.index).any():
            ours = (layer.name, result.index) in self.written and not self.edited(layer, result.index)
            if not ours:  # painted meanwhile (a preview this run wrote may be replaced)
                return False
        labels = result.labels
        if result.objects:  # ids unique in the layer: above every label it held when the run began
            first = self._next_id.get(layer.name) or int(np.max(layer.data)) + 1
            labels, self._next_id[layer.name] = offset_ids(labels, first)
        write_slice(layer, result.index, labels)
        self.written[layer.name, result.index] = digest(read_slice(layer.data, result.index))
        self.unsure[result.index] = expected_errors(labels, result.probability)
        if result.note and not result.preview:
            self.notes.append(result.note)
        if result.plan is not None:
            self.last_plan, self.last_model = result.plan, result.model
        return True

    def run_key(self, options: PredictOptions) -> tuple:
        """What a run's plan depends on besides the image size: the enabled examples and the options."""
        return [id(ex) for ex in self.support.enabled()], options

    def prepare(self, shape: tuple[int, int], options: PredictOptions, device: str = "auto", cancel=None, progress=None):
        """Choose the plan for the enabled examples and query slices of ``shape`` (H, W) now, so
        that the next run finds it (Segmenter.prepare, with its ``cancel`` and ``progress``; in a
        worker thread); None if cancelled."""
        support = SupportSet(self.support.enabled(), task=self.support.task)
        return self.segmenter(device).prepare(support, tuple(shape), options, cancel, progress)

    def summary(self, cancelled: bool) -> str:
        """The status line at the end of a run: what "auto" chose and how well it should do."""
        if cancelled:
            return "cancelled"
        plan = self.last_plan
        how = f" ({plan.describe(self.last_model)})" if plan is not None else ""
        estimate = f"; {plan.estimate_message(len(self.support.enabled()))}" if plan is not None and plan.estimate is not None else ""
        return f"done{how}{estimate}. Correct a slice and 'Accept slice as example' to improve the rest"

    def suggest(self, image=None, rgb: bool = False) -> Index | None:
        """The segmented slice with the most expected errors that is not an example (suggest.py).
        With ``image`` (the stack segmented, (..., H, W) or RGB (..., H, W, C), numpy or dask),
        slices near an example along the stack count less, as far as its slices are alike; the
        thumbnails that takes are those the runs read (``predictions``), and any missing are read
        here."""
        painted = self.example_indices()
        if image is None:
            return next_slice(self.unsure, painted)
        return next_slice(self.unsure, painted, all_slices(image.shape, rgb), self.read_thumbnails(image, rgb))

    def read_thumbnails(self, image, rgb: bool = False, cancel: Callable[[], bool] | None = None) -> np.ndarray | None:
        """Read the thumbnail (suggest.thumbnail) of each slice of ``image`` not read yet, one slice
        at a time, and compare them: suggest.likeness_by_distance, (n slices,) float64, kept per
        image; None if ``cancel`` stopped it."""
        stack = self._stack_of(image, rgb)
        order = all_slices(image.shape, rgb)
        for i in order:
            if cancel is not None and cancel():
                return None
            if i not in stack.thumbnails:
                stack.thumbnails[i] = thumbnail(read_slice(image, i))
        if stack.likeness is None:
            stack.likeness = likeness_by_distance([stack.thumbnails[i] for i in order])
        return stack.likeness

    def _stack_of(self, image, rgb: bool) -> StackThumbnails:
        """The thumbnails read so far of ``image`` (none for another image than the last)."""
        key = (id(image), tuple(image.shape), rgb)
        if self._stack is None or self._stack.key != key:
            self._stack = StackThumbnails(key)
        return self._stack
