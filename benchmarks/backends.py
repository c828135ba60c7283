"""Other ways to run the engine's forward pass on a CPU, against the one it uses, in one run.

    python -m benchmarks.backends [--s 16] [--repeats 20]

One query of 128 x 128 with S support items and the shipped weights, support features computed
once (as for every slice of a stack after the first). Each way: median ms per forward after a
warm-up, the one-off cost of its first call (compiling, exporting), and the Dice of its mask
against the engine's fp32 mask (the engine keeps a change only at Dice >= 0.99 and more than
10 % faster). Ways: the engine as it runs (auto precision) and in fp32; 1 thread instead of all;
torch.compile (inductor) in both precisions; ONNX Runtime and OpenVINO from an ONNX export in
fp32, when those packages are installed (they are not dependencies).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_universeg import Segmenter
from napari_universeg.evaluate import dice


def _time(run, repeats: int) -> tuple[float, float, np.ndarray]:
    """(first call s, median ms of the next ``repeats``, mask of the last)."""
    start = time.perf_counter()
    out = run()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        times.append(1000 * (time.perf_counter() - start))
    return first, statistics.median(times), np.asarray(out).reshape(128, 128) > 0


class _Forward(torch.nn.Module):
    """The engine's pass as a module of (query, support features), for compilers and exporters."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, query, features):
        return self.model(query, support_features=features)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--s", type=int, default=16)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    seg = Segmenter.from_weights("default", "cpu")
    g = torch.Generator().manual_seed(0)
    q = torch.rand(1, 1, 128, 128, generator=g)
    si = torch.rand(1, args.s, 1, 128, 128, generator=g)
    sl = (torch.rand(1, args.s, 1, 128, 128, generator=g) > 0.5).float()
    model = seg.model
    with torch.inference_mode():
        f32 = model.support_features(si, sl)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model.support_features(si, sl)
    rows = []

    def add(name: str, run, precision: str) -> None:
        try:
            first, ms, mask = _time(run, args.repeats)
        except Exception as e:  # a backend that cannot run this model: say why, go on
            rows.append({"way": name, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"})
        else:
            ref = rows[0]["mask"] if rows else mask
            rows.append(
                {
                    "way": name,
                    "precision": precision,
                    "first_s": round(first, 2),
                    "ms": round(ms, 1),
                    "dice_vs_fp32": round(dice(mask, ref), 4),
                    "mask": mask,
                }
            )
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "mask"}), flush=True)

    def eager(features, bf16_on: bool):
        def run():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_on):
                return model(q, support_features=features).float()

        return run

    add("engine, fp32", eager(f32, False), "fp32")
    add(f"engine, {seg.precision} (as it runs)", eager(bf16 if seg.precision == "bf16" else f32, seg.precision == "bf16"), seg.precision)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    add("engine, 1 thread", eager(bf16 if seg.precision == "bf16" else f32, seg.precision == "bf16"), seg.precision)
    torch.set_num_threads(threads)
    compiled = torch.compile(_Forward(model))
    for precision, features in (("fp32", f32), ("bf16", bf16)):

        def run(features=features, on=precision == "bf16"):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=on):
                return compiled(q, features).float()

        add(f"torch.compile (inductor), {precision}", run, precision)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "universeg.onnx"
        try:
            torch.onnx.export(
                _Forward(model).eval(), (q, f32), str(onnx_path), input_names=["query", "features"], output_names=["logits"], dynamo=False
            )
        except Exception as e:
            rows.append({"way": "ONNX export", "error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"})
            print(json.dumps(rows[-1]), flush=True)
        if onnx_path.exists():
            try:
                import onnxruntime as ort

                session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
                feeds = {"query": q.numpy(), "features": f32.numpy()}
                add("ONNX Runtime, fp32", lambda: session.run(None, feeds)[0], "fp32")
            except ImportError:
                rows.append({"way": "ONNX Runtime", "error": "not installed"})
            try:
                import openvino as ov

                compiled_ov = ov.Core().compile_model(str(onnx_path), "CPU")
                add("OpenVINO (its default CPU precision)", lambda: compiled_ov([q.numpy(), f32.numpy()])[0], "auto")
            except ImportError:
                rows.append({"way": "OpenVINO", "error": "not installed"})
    print(f"\nCPU: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; S={args.s}, one 128 x 128 query\n")
    print("| way | precision | ms per forward | first call s | Dice against engine fp32 |")
    print("|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['way']} | - | failed: {r['error']} | - | - |")
        else:
            print(f"| {r['way']} | {r['precision']} | {r['ms']} | {r['first_s']} | {r['dice_vs_fp32']} |")
    if args.json:
        args.json.write_text(json.dumps([{k: v for k, v in r.items() if k != "mask"} for r in rows], indent=1) + "\n")


if __name__ == "__main__":
    main()
