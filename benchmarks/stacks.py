"""Stacks end to end: time per slice and peak memory above the loaded model, as a user runs them.

    python -m benchmarks.stacks [--slices 100] [--size 512] [--json out.json]

Each case runs in a fresh subprocess: Segmenter.from_weights("default") on the CPU, a support set
of S examples and a stack of synthetic 512 x 512 nuclei slices (sample_data.synthetic_stack), then
``Segmenter.predict`` with method "universeg" (no pixel classifier) in resize mode and in tiled mode
at scale 0.5. Memory is the process's resident size sampled every 2 ms during predict, minus its
size just before (model, support set and stack loaded). Cases: S = 16 and 64, the engine's default
batch (options.MAX_ITEMS) and the 96 items per pass it used before.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(s: int, slices: int, size: int, mode: str, max_items: int | None) -> dict:
    import numpy as np

    from napari_universeg import PredictOptions, Segmenter, SupportSet
    from napari_universeg.sample_data import synthetic_stack

    image, labels = synthetic_stack(n_slices=s, size=size, seed=0)
    support = SupportSet()
    for z in range(s):
        support.add(image[z], labels[z])
    stack = np.stack([image[z % s] for z in range(slices)])
    del image, labels
    seg = Segmenter.from_weights("default", "cpu")
    options = PredictOptions(mode=mode, method="universeg", support_size=s, scale=0.5 if mode == "tiled" else None, max_items=max_items, adapt=False)
    # no warm-up: memory the allocator keeps from a first call would hide the peak; the first
    # call's own overheads are part of what a user waits for
    base, peak, done = _rss_mb(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    seg.predict(support, stack, options)
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    return {
        "S": s,
        "mode": mode,
        "max_items": max_items,
        "slices": slices,
        "size": size,
        "seconds": seconds,
        "ms_per_slice": 1000 * seconds / slices,
        "peak_above_mb": max(peak[0], base) - base,
        "precision": seg.precision,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--slices", type=int, default=100)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--json", type=Path)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        s, mode, items = args.worker.split(",")
        print(json.dumps(worker(int(s), args.slices, args.size, mode, int(items) if items != "default" else None)))
        return 0
    rows = []
    for s, mode, items, slices in (
        (16, "resize", "default", args.slices),
        (16, "resize", "96", args.slices),
        (64, "resize", "default", 20),
        (16, "tiled", "default", 10),
        (16, "tiled", "96", 10),
        (64, "tiled", "default", 4),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.stacks", "--worker", f"{s},{mode},{items}", "--slices", str(slices), "--size", str(args.size)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(
            f"S={s} {mode} items={items}: {rows[-1]['ms_per_slice']:.0f} ms/slice, +{rows[-1]['peak_above_mb']:.0f} MB", file=sys.stderr, flush=True
        )
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {args.size} px slices; precision {rows[0]['precision']}\n")
    print("| S | mode | items per pass | slices | s in all | ms per slice | peak MB above the loaded model |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        items = r["max_items"] or "default"
        print(f"| {r['S']} | {r['mode']} | {items} | {r['slices']} | {r['seconds']:.1f} | {r['ms_per_slice']:.0f} | {r['peak_above_mb']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
