"""Engine speed and peak memory against the naive fp32 concatenation path, as ratios in one run.

    python -m benchmarks.speed [--sizes 1,16,64] [--repeats 5]

Each (path, S) runs in a fresh subprocess, so peak RSS is its own and glibc settings do not leak.
- naive: the paper's literal formula (tests/naive_universeg.py), fp32, default allocator.
- engine: the package's model (split cross-conv, last block on the support items' mean), the engine's
  allocator setting, bf16 autocast where the CPU has AMX/AVX512-BF16, support features cached
  as for every slice of a stack after the first.
Query 128x128, batch 1, 64-channel model with the default weights' layout.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # workers run from here, where the packages tests and benchmarks are


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(path: str, s: int, repeats: int) -> dict:
    import torch

    from tests.naive_universeg import naive_forward, random_official_state_dict

    sd = random_official_state_dict(seed=0)
    g = torch.Generator().manual_seed(1)
    q = torch.rand(1, 1, 128, 128, generator=g)
    si = torch.rand(1, s, 1, 128, 128, generator=g)
    sl = (torch.rand(1, s, 1, 128, 128, generator=g) > 0.5).float()
    if path == "naive":
        run = lambda: naive_forward(sd, q, si, sl)  # noqa: E731
    else:
        from napari_universeg.predict import PredictOptions, Segmenter
        from napari_universeg.weights import from_official_state_dict

        seg = Segmenter(from_official_state_dict(sd), device="cpu", precision=path.split("-")[1])
        with torch.inference_mode(), seg._autocast():
            feats = seg.model.support_features(si, sl)
        run = lambda: seg._forward(seg.model, q, feats, seg._items(PredictOptions()))  # noqa: E731
    base = _rss_mb()
    with torch.inference_mode():
        out = run()  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            out = run()
            times.append(time.perf_counter() - t)
    return {"path": path, "S": s, "ms": 1000 * statistics.median(times), "peak_mb": _rss_mb() - base, "out": out.float().flatten()[:1].item()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="1,16,64")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), int(args.worker[2]))))
        return
    rows = []
    for s in (int(x) for x in args.sizes.split(",")):
        res = {}
        for path in ("naive", "engine-fp32", "engine-auto"):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.speed", "--worker", path, str(s), str(args.repeats)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            res[path] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"S={s} {path}: {res[path]['ms']:.0f} ms, peak +{res[path]['peak_mb']:.0f} MB", file=sys.stderr, flush=True)
        rows.append((s, res))
    print(
        "| S | naive fp32 ms | engine fp32 ms | engine (auto precision) ms | speed-up fp32 / auto | naive peak MB | engine peak MB (auto) | memory ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for s, r in rows:
        n, f, a = r["naive"], r["engine-fp32"], r["engine-auto"]
        print(
            f"| {s} | {n['ms']:.0f} | {f['ms']:.0f} | {a['ms']:.0f} | {n['ms'] / f['ms']:.1f}x / {n['ms'] / a['ms']:.1f}x | {n['peak_mb']:.0f} | {a['peak_mb']:.0f} | {a['peak_mb'] / max(n['peak_mb'], 1):.2f} |"
        )


if __name__ == "__main__":
    main()
