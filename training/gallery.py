"""Save a PNG gallery of synthetic tasks and print the generator's speed.

    napari-universeg-gallery --out gallery.png --seed 0 --tasks 10

One row per task, cycling through the families: query image, query mask, then 4 support images
with their masks tinted in red.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from matplotlib.figure import Figure  # the object API needs no GUI backend

from .synth import FAMILIES, TaskGenerator

SHOWN_SUPPORTS = 4


def _overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.35) -> np.ndarray:
    """Grey image with the mask tinted red, as RGB."""
    rgb = np.repeat(image[..., None], 3, axis=-1)
    red = np.array([1.0, 0.15, 0.15])
    return np.where(mask[..., None] > 0.5, (1 - alpha) * rgb + alpha * red, rgb)


def tasks_per_second(size: int = 128, batch: int = 8, support: int = 8, repeats: int = 5, seed: int = 0) -> float:
    """Tasks per second of TaskGenerator.sample on the CPU (after one warm-up call)."""
    gen = TaskGenerator(size=size, seed=seed)
    gen.sample(batch, support)
    start = time.perf_counter()
    for _ in range(repeats):
        gen.sample(batch, support)
    return batch * repeats / (time.perf_counter() - start)


def save_gallery(out: str, seed: int = 0, tasks: int = 10, size: int = 128) -> None:
    """One row per task (families in turn): query, its mask, supports with tinted masks."""
    cols = 2 + SHOWN_SUPPORTS
    fig = Figure(figsize=(1.6 * cols, 1.6 * tasks))
    axes = fig.subplots(tasks, cols, squeeze=False)
    for row in range(tasks):
        family = FAMILIES[row % len(FAMILIES)]
        gen = TaskGenerator(size=size, seed=seed * 1000 + row, families=[family])
        q, qm, s, sm = (t[0, ..., 0, :, :].numpy() for t in gen.sample(1, SHOWN_SUPPORTS))
        panels = [q, qm] + [_overlay(s[i], sm[i]) for i in range(SHOWN_SUPPORTS)]
        for col, (ax, panel) in enumerate(zip(axes[row], panels)):
            ax.imshow(panel, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(family, fontsize=8)
    titles = ["query", "query mask"] + [f"support {i + 1}" for i in range(SHOWN_SUPPORTS)]
    for ax, title in zip(axes[0], titles):
        ax.set_title(title, fontsize=8)
    fig.tight_layout(pad=0.3)
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gallery.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args(argv)
    save_gallery(args.out, args.seed, args.tasks, args.size)
    print(f"wrote {args.out}")
    print(f"{tasks_per_second(args.size):.1f} tasks/s (batch 8, S=8, {args.size} px, CPU)")


if __name__ == "__main__":
    main()
