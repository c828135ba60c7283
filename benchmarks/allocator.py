"""Does glibc's allocator churn cost time in a long-lived process? Engine forward at S=16, fp32,
with and without the engine's mallopt setting, each in a fresh process, one run.

    python -m benchmarks.allocator
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

WORKER = """
import sys, time, statistics, torch
from napari_universeg.device import tune_malloc
from napari_universeg.model import UniverSeg
if sys.argv[1] == "tuned":
    assert tune_malloc()
torch.manual_seed(0)
m = UniverSeg().eval()
q = torch.rand(1, 1, 128, 128); si = torch.rand(1, 16, 1, 128, 128); sl = (si > 0.5).float()
with torch.inference_mode():
    m(q, si, sl)
    ts = []
    for _ in range(7):
        t = time.perf_counter(); m(q, si, sl); ts.append(time.perf_counter() - t)
print(statistics.median(ts))
"""


def run(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", WORKER, mode], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    times = {mode: [] for mode in ("plain", "tuned")}
    for _ in range(2):  # alternate, so drifting machine load hits both
        for mode in times:
            times[mode].append(run(mode))
    plain, tuned = (statistics.median(times[m]) for m in ("plain", "tuned"))
    print("| allocator | s per forward (S=16, fp32) |\n|---|---|")
    print(f"| glibc default | {plain:.3f} |\n| engine (mallopt: no mmap, no trim) | {tuned:.3f} |")
    print(f"\nspeed-up {plain / tuned:.2f}x")


if __name__ == "__main__":
    t = time.time()
    main()
    print(f"({time.time() - t:.0f} s)", file=sys.stderr)
