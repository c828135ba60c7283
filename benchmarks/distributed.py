"""Slices per second of an OME-Zarr run in one process and on a dask LocalCluster of 1 and 2 workers.

    python -m benchmarks.distributed [--slices 200] [--size 128] [--block-slices 20]

A synthetic OME-Zarr volume (sample_data.synthetic_stack, chunks of 10 slices) and a support set of
4 painted slices; UniverSeg alone in resize mode (the plan chosen once on the driver, as always).
Each case writes labels of its own name and is timed from the first block to the last (the
plan, the model load and the cluster's start-up are excluded and reported apart). Workers run one
thread each (dask's default for worker processes sets OMP_NUM_THREADS=1); the in-process run uses
every core torch sees. Writes benchmarks/results/distributed.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "distributed.md"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slices", type=int, default=200)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--block-slices", type=int, default=20)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)

    import numpy as np
    import torch
    import zarr
    from distributed import Client, LocalCluster
    from ome_zarr.writer import write_image

    from napari_universeg.distributed import segment_ome_zarr
    from napari_universeg.options import PredictOptions
    from napari_universeg.predict import Segmenter
    from napari_universeg.sample_data import synthetic_stack
    from napari_universeg.support import SupportSet

    image, labels = synthetic_stack(n_slices=args.slices, size=args.size, seed=0)
    support = SupportSet()
    for z in np.argsort(labels.sum((1, 2)))[-4:]:
        support.add(image[z], labels[z])
    options = PredictOptions(mode="resize", method="universeg", adapt=False)
    engine = Segmenter.from_weights("default", "cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.zarr")
        write_image(image, zarr.open_group(path, mode="w"), axes="zyx", storage_options={"chunks": (10, args.size, args.size)}, scale_factors=[])
        run_args = dict(segmenter=engine, block_slices=args.block_slices, progress=False, log=lambda m: None)
        run = segment_ome_zarr(path, support, options, labels_name="here", **run_args)
        rows.append(("in this process", f"{torch.get_num_threads()} torch threads", 0.0, run.slices / run.seconds))
        for n in (1, 2):
            start = time.perf_counter()
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, Client(cluster) as client:
                up = time.perf_counter() - start
                run = segment_ome_zarr(path, support, options, client=client, labels_name=f"workers{n}", **run_args)
                rows.append((f"LocalCluster, {n} worker{'s' * (n > 1)}", "1 thread each", up, run.slices / run.seconds))
            print(rows[-1])
    lines = [
        "# OME-Zarr runs: slices per second, one process and dask LocalCluster",
        "",
        f"`python -m benchmarks.distributed --slices {args.slices} --size {args.size} --block-slices {args.block_slices}`: "
        f"{args.slices} synthetic slices of {args.size} x {args.size} px (chunks of 10 slices), support of 4 examples, "
        f"UniverSeg in resize mode, blocks of {args.block_slices} slices, default weights on the CPU.",
        "",
        f"CPU: {_cpu()}, {os.cpu_count()} cores seen, load average {os.getloadavg()[0]:.1f} at the end (a shared machine); torch {torch.__version__}. Timed from the first block to the last "
        "(cluster start-up apart; the model and support set are sent to each worker once, inside the timed part).",
        "",
        "| run | threads | cluster start (s) | slices/s |",
        "|---|---|---:|---:|",
        *(f"| {name} | {threads} | {up:.1f} | {rate:.1f} |" for name, threads, up, rate in rows),
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
