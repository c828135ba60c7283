"""Every interactive-speed target in one run: the measurements, the target and whether it is met.

    python -m benchmarks.speed_targets [--skip-interactive]

Runs, one after the other and each in its own process (nothing else should run meanwhile):
benchmarks.interactive (under xvfb-run when there is no display; about 4 min), end_to_end
(2 min), speed's engine forward at S=16 (seconds) and stacks (3.5 min), then prints one table.
The GPU target needs a CUDA device; without one it says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], json_out: Path | None = None) -> str:
    cmd = [sys.executable, "-m", *args] + (["--json", str(json_out)] if json_out else [])
    if args[0] == "benchmarks.interactive" and not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        cmd = ["xvfb-run", "-a", *cmd]
    print(f"running {' '.join(args)}...", file=sys.stderr, flush=True)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--skip-interactive", action="store_true", help="leave out the napari measurement (no X server)")
    args = p.parse_args()
    rows = []  # (target, measured, met)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_interactive:
            _run(["benchmarks.interactive"], tmp / "interactive.json")
            r = json.loads((tmp / "interactive.json").read_text())
            first = r["clicked_at_once"]["first_s"]
            rows.append(
                (
                    "first result in napari, 1024 px, 8 examples, auto: at most 1.5 s",
                    f"{first} s (before: {r['engine_no_preview']['first_s']} s)",
                    first <= 1.5,
                )
            )
            lat = max(r[k]["latency_ms"]["p95"] for k in ("clicked_at_once", "background_choice", "clicked_after_painting"))
            rows.append(("viewer stays smooth during runs (10 ms timer lateness, p95)", f"{lat} ms", None))
        engine = json.loads(_run(["benchmarks.speed", "--worker", "engine-auto", "16", "20"]).strip().splitlines()[-1])
        rows.append(("engine forward, S=16, one 128 px query: at most 100 ms", f"{engine['ms']:.0f} ms", engine["ms"] <= 100))
        _run(["benchmarks.end_to_end"], tmp / "end_to_end.json")
        for r in json.loads((tmp / "end_to_end.json").read_text()):
            rows.append((f"end to end against the paper's formula, S={r['S']}, 512 px", f"{r['literal_ms'] / r['engine_ms']:.1f}x faster", None))
        _run(["benchmarks.stacks"], tmp / "stacks.json")
        stacks = {(r["S"], r["mode"], r["max_items"]): r for r in json.loads((tmp / "stacks.json").read_text())}
        resize16, tiled16 = stacks[16, "resize", None], stacks[16, "tiled", None]
        seconds = resize16["ms_per_slice"] * 100 / 1000
        rows.append(("100 slices of 512 px, S=16, resize: at most 20 s", f"{seconds:.1f} s", seconds <= 20))
        ratio = tiled16["ms_per_slice"] / resize16["ms_per_slice"]
        rows.append(("tiled at most 3x resize per input pixel (scale 0.5: 9 tiles)", f"{ratio:.1f}x", ratio <= 3))
        for mode in ("resize", "tiled"):
            mb = stacks[64, mode, None]["peak_above_mb"]
            rows.append((f"peak memory at S=64, {mode}: at most 500 MB above the model", f"{mb:.0f} MB", mb <= 500))
    try:
        import torch

        gpu = torch.cuda.is_available()
    except ImportError:
        gpu = False
    rows.append(("GPU: 200 slices/s at S=16, 128 px (H100)", "run benchmarks.stacks on the GPU" if gpu else "no GPU here: not measured", None))
    print(f"\nCPU: {platform.machine()}, {os.cpu_count()} cores\n")
    print("| target | measured | met |")
    print("|---|---|---|")
    for target, measured, met in rows:
        print(f"| {target} | {measured} | {'-' if met is None else 'yes' if met else 'no'} |")


if __name__ == "__main__":
    main()
