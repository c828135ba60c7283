"""Dice of weight files on held-out synthetic tasks, per task family and generator.

    python -m benchmarks.synthetic --weights OLD.safetensors default [--generator OLD_SYNTH.py]

24 tasks per family and support size 1, 4 and 16 (seeds far beyond any training step), bf16 on
CPUs that support it. --generator adds rows for another version of training/synth.py, e.g.
`git show 4ce8f6e:training/synth.py > /tmp/synth_old.py` (the generator before distractors).
The current generator is the installed napari_universeg.training.synth (training/synth.py).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import torch

from napari_universeg.device import autocast_dtype
from napari_universeg.training import synth
from napari_universeg.weights import load_weights

TASKS, SIZES = 24, (1, 4, 16)


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dice(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    pred = (logits > 0).float()
    inter, total = (pred * mask).sum((-2, -1)), pred.sum((-2, -1)) + mask.sum((-2, -1))
    return torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total)).flatten()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", nargs="+", default=["default"])
    p.add_argument("--generator", type=Path, action="append", default=[], help="another synth.py to draw tasks from")
    args = p.parse_args()
    models = {w: load_weights(w)[0].eval() for w in args.weights}
    dtype = autocast_dtype(torch.device("cpu"))
    generators = {"current": synth}
    generators.update({str(g): _module(g) for g in args.generator})
    print("| generator | family | " + " | ".join(args.weights) + " |")
    print("|---|---|" + "---|" * len(models))
    for name, gen in generators.items():
        for family in gen.FAMILIES:
            scores = {w: [] for w in models}
            for s in SIZES:
                q, qm, si, sm = gen.TaskGenerator(128, seed=10**9 + s, families=[family]).sample(TASKS, s)
                for w, model in models.items():
                    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                        scores[w].append(_dice(model(q, si, sm).float(), qm))
            print(f"| {name} | {family} | " + " | ".join(f"{torch.cat(v).mean():.3f}" for v in scores.values()) + " |", flush=True)


if __name__ == "__main__":
    main()
