"""The options of a segmentation run, and their limits: torch-free, so the widget can use them
without loading the engine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MODES = ("auto", "resize", "tiled")  # how UniverSeg sees images (predict.py)
METHODS = ("universeg", "pixels", "blend")  # who predicts (choice.py); "auto" chooses among them
PRECISIONS = ("auto", "bf16", "fp32")  # device.py
DEVICES = ("auto", "cpu", "cuda", "mps")  # device.py
MAX_SUPPORT_SIZE = 256  # support items per forward pass: memory grows with it
MAX_ENSEMBLE = 16  # support subsets averaged; time grows with it
# Queries x support items computed at once, from a memory budget. Queries are batched up to it, and
# larger support sets go through each block this many items at a time (model.py), so that only the
# blocks' outputs are held for every item. Measured on a 2-core AVX512-BF16 CPU (512 px stacks,
# benchmarks/stacks.py): 8 items against 16 cost 0-4 % more time per slice and saved 90-130 MB
# (S=64: +365 MB resize, +394 MB tiled above the loaded model); 96 were about 10 % faster than 16
# but took three times the memory. A GPU keeps its larger batches.
MAX_ITEMS = {"cpu": 8, "gpu": 96}
# What a run is doing, as its progress callback reports it: progress(phase, done, total), with
# total 0 where the amount of work is not known (Segmenter.iter_predict, the widget, the CLI).
CHOOSING = "choosing how to show images to the model"
ADAPTING = "adapting the model to your examples"
SEGMENTING = "segmenting"
TASKS = ("classes", "instances")  # what painted label values mean: one class each, or one object each (instances.py)


@dataclass
class PredictOptions:
    """How a run segments: who predicts, how UniverSeg sees the images, and the limits of a pass.

    ``validate()`` checks every field against the limits in this module.
    """

    support_size: int = 64  # at most this many examples per forward pass
    ensemble: int = 1  # K support subsets whose probabilities are averaged
    threshold: float = 0.5
    classes: Sequence[int] | None = None  # default: every label in the support set
    mode: str = "auto"  # how UniverSeg sees images: "auto", "resize" or "tiled"
    scale: float | None = None  # tiled mode: image scale factor (None: automatic)
    # Who predicts: "universeg", "pixels" (pixel classifier), "blend" (their mean), or "auto":
    # chosen by leave-one-out on the examples when mode is "auto", else "universeg".
    method: str = "auto"
    # Fine-tune a copy of the model on the examples first (adapt.py): True always, False never,
    # None ("auto") from two examples of one class (Segmenter.adapts)
    adapt: bool | None = None
    # "classes": each label value is a class; "instances": each value one object of one class,
    # and the result has one value per object (instances.py)
    task: str = "classes"
    seed: int = 0
    max_items: int | None = None  # queries x support items per forward pass (bounds memory); None: MAX_ITEMS of the device

    def plan_is_given(self) -> bool:
        """True when these options fix how UniverSeg sees the images and who predicts: a run has
        nothing to choose or fit first (Segmenter.plan)."""
        return self.mode != "auto" and self.method in ("auto", "universeg")

    def validate(self) -> None:
        """A ValueError naming the first field out of range; nothing otherwise."""
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, not {self.task!r}")
        if self.task == "instances" and self.classes:
            raise ValueError("instances are objects of one class: leave classes empty")
        if self.task == "instances" and self.adapt:
            raise ValueError("adaptation works on one class; instances use two (object cores and rims)")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.method not in ("auto", *METHODS):
            raise ValueError(f"method must be one of {('auto', *METHODS)}, not {self.method!r}")
        if not 1 <= self.support_size <= MAX_SUPPORT_SIZE:
            raise ValueError(f"support size must be between 1 and {MAX_SUPPORT_SIZE}, got {self.support_size}")
        if not 1 <= self.ensemble <= MAX_ENSEMBLE:
            raise ValueError(f"ensemble size must be between 1 and {MAX_ENSEMBLE}, got {self.ensemble}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        if self.max_items is not None and self.max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {self.max_items}")
        if self.scale is not None and not 0.02 <= self.scale <= 4:
            raise ValueError(f"scale must be between 0.02 and 4, got {self.scale}")


def parse_int_list(text: str, what: str = "values") -> list[int]:
    """[1, 2] from "1,2" (spaces allowed, empty items skipped); a clear ValueError otherwise."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, not {text!r}") from None
