"""Real segmentation tasks from the prepared cache (training/data/prepare.py), drawn as episodes.

A task is (source, scale, task index): e.g. the contours of the nuclei of one data set seen as
whole images. An episode draws S + 1 images of that task (distinct while there are enough), a
random square view of each (task-level zoom, per-image position), then the same task-level and
per-image augmentations as the synthetic tasks (TaskGenerator.augment).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .synth import MAX_FG, MAX_REDRAWS, MIN_FG, TaskGenerator, valid_tasks

MIN_TASK_IMAGES = 4  # a task with fewer usable images is not drawn


class RealSource:
    """One cached data set in memory: images (N, H, W) uint8 and task bits (N, H, W) uint8."""

    def __init__(self, folder: Path):
        self.meta = json.loads((folder / "meta.json").read_text())
        self.name = self.meta["name"]
        files = sorted(folder.glob("img_*.jpg"))
        self.images = np.stack([np.asarray(Image.open(f).convert("L")) for f in files])
        self.bits = np.stack([np.asarray(Image.open(f.with_name(f.name.replace("img_", "mask_")).with_suffix(".png"))) for f in files])
        whole = self.meta["scales"].get("whole", len(files))
        scale_of = np.array([0] * whole + [1] * (len(files) - whole))
        # (scale, task) -> indices of images where the task's foreground is neither empty nor full
        self.tasks: list[tuple[int, int, np.ndarray]] = []
        for k in range(len(self.meta["tasks"])):
            frac = ((self.bits >> k) & 1).reshape(len(files), -1).mean(1)
            for scale in (0, 1):
                idx = np.flatnonzero((scale_of == scale) & (frac >= MIN_FG) & (frac <= MAX_FG))
                if len(idx) >= MIN_TASK_IMAGES:
                    self.tasks.append((scale, k, idx))


def load_sources(cache: Path, names: list[str] | None = None, exclude: list[str] | None = None) -> list[RealSource]:
    """The cached sources named (default: those in ``cache`` whose meta.json says split
    "train"), minus ``exclude``; only those with tasks. So a folder cached before the split was
    recorded, or of a held-out source, is not trained on by default (and prepare-data removes
    the copy of a source put on hold, e.g. a "pending" licence)."""
    folders = sorted(p for p in Path(cache).iterdir() if (p / "meta.json").is_file()) if Path(cache).is_dir() else []
    if names is None:
        folders = [p for p in folders if json.loads((p / "meta.json").read_text()).get("split") == "train"]
    else:
        missing = set(names) - {p.name for p in folders}
        if missing:
            raise FileNotFoundError(f"{cache}: no cached source(s) {sorted(missing)} (run napari-universeg-prepare-data)")
        folders = [p for p in folders if p.name in names]
    folders = [p for p in folders if p.name not in (exclude or [])]
    return [s for s in map(RealSource, folders) if s.tasks]


class RealTaskSampler:
    """Episodes of real tasks at ``size`` px, reproducible from a seed."""

    def __init__(self, sources: list[RealSource], size: int = 128, seed: int = 0):
        if not sources:
            raise ValueError("no real sources with usable tasks")
        self.sources, self.size = sources, size
        self.rng = np.random.default_rng(seed)
        self.gen = TaskGenerator(size, seed=seed)

    def sample(self, batch: int, support_size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Like TaskGenerator.sample: (B,1,H,W), (B,1,H,W), (B,S,1,H,W), (B,S,1,H,W) float32 on the CPU."""
        n = support_size + 1
        xs, ms = zip(*(self._task(n) for _ in range(batch)))
        x, m = self.gen.augment(torch.cat(xs), torch.cat(ms), n)
        x = x.view(batch, n, 1, self.size, self.size)
        m = m.view(batch, n, 1, self.size, self.size)
        return x[:, 0], m[:, 0], x[:, 1:], m[:, 1:]

    def _task(self, n: int) -> tuple[Tensor, Tensor]:
        """(n, 1, size, size) images in [0, 1] and binary masks of one task, before augmentation."""
        rng = self.rng
        for _ in range(MAX_REDRAWS):
            src = self.sources[rng.integers(len(self.sources))]  # sources equally often, whatever their size
            _, k, idx = src.tasks[rng.integers(len(src.tasks))]
            pick = rng.choice(idx, n, replace=len(idx) < n)
            x = torch.from_numpy(src.images[pick]).float().div_(255)[:, None]
            m = torch.from_numpy((src.bits[pick] >> k) & 1).float()[:, None]
            x, m = self._views(x, m)
            if valid_tasks(m, n)[0]:
                return x, m
        return x, m

    def _views(self, x: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
        """A square crop of side zoom * H per image (zoom drawn per task from [0.5, 1], position
        per image), resized to size: whole images and tiles both occur."""
        n, _, h, _ = x.shape
        zoom = float(self.rng.uniform(0.5, 1.0)) if self.rng.random() < 0.5 else 1.0
        c = max(8, round(zoom * h))
        ys = self.rng.integers(0, h - c + 1, n)
        xs_ = self.rng.integers(0, h - c + 1, n)
        xc = torch.stack([x[i, :, y : y + c, z : z + c] for i, (y, z) in enumerate(zip(ys, xs_))])
        mc = torch.stack([m[i, :, y : y + c, z : z + c] for i, (y, z) in enumerate(zip(ys, xs_))])
        xc = F.interpolate(xc, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        mc = F.interpolate(mc, size=(self.size, self.size), mode="nearest-exact")  # as the plugin resizes masks
        return xc, mc
