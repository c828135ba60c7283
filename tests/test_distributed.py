"""Runs on a real dask.distributed LocalCluster (worker processes), with workers killed mid-run and
a driver stopped and resumed: the labels must come out as one process makes them."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import tifffile
import zarr
from distributed import Client, LocalCluster

from napari_universeg.cli import main
from napari_universeg.distributed import segment_ome_zarr
from napari_universeg.options import PredictOptions
from napari_universeg.predict import Segmenter
from napari_universeg.sample_data import synthetic_stack
from napari_universeg.support import SupportSet
from tests.test_ome_zarr import write_volume

pytestmark = pytest.mark.slow


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def test_a_killed_worker_changes_nothing_in_the_labels(tmp_path):
    image, labels = synthetic_stack(n_slices=24, size=64)
    path = write_volume(tmp_path / "vol.zarr", image)
    support = SupportSet()
    for z in (0, 12):
        support.add(image[z], labels[z])
    options = PredictOptions(seed=0)  # auto: chosen once on the driver, followed by every worker
    engine = Segmenter.from_weights("default", "cpu")
    reference = np.stack([p.labels for p in engine.iter_predict(support, image, options)])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)
        victim = sorted(pids.values())[0]
        killed = []

        def kill_after_first(block, done):
            if not killed:
                _kill(victim)
                killed.append(block)

        run = segment_ome_zarr(
            str(path), support, options, segmenter=engine, client=client, block_slices=4, progress=False, on_block=kill_after_first
        )
        assert killed and victim not in client.run(os.getpid).values()  # the nanny started a new worker
    assert sorted(run.computed) == list(range(6)) and run.labels.done().all()
    assert np.array_equal(run.labels.read(), reference)


def _done_count(path: Path) -> int:
    try:
        return int(zarr.open_array(str(path / "labels/universeg/napari-universeg-done"), mode="r")[:].sum())
    except Exception:
        return 0


def _polite() -> None:
    """In the CLI's process: a lower priority, so that this test watches the run closely even on a
    busy machine (it must stop the run midway), and Ctrl-C as a user's terminal sends it."""
    os.nice(10)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _worker_pids(proc: subprocess.Popen) -> list[int]:
    """The dask worker processes under the CLI process (the ones that loaded torch)."""
    kids = psutil.Process(proc.pid).children(recursive=True)
    return [k.pid for k in kids if any("spawn_main" in part for part in k.cmdline())]


@pytest.mark.gui
def test_200_slices_through_the_cli_resumed_after_a_killed_worker_and_opened_in_napari(tmp_path, make_napari_viewer):
    stacks = [synthetic_stack(n_slices=20, size=64, seed=seed) for seed in range(10)]  # nuclei all along z
    image, labels = np.concatenate([s[0] for s in stacks]), np.concatenate([s[1] for s in stacks])
    path = write_volume(tmp_path / "big.zarr", image, chunks=(5, 64, 64))
    tifffile.imwrite(tmp_path / "every5th.tif", image[::5])  # the single-process reference (slices are independent)
    # the fullest slice of six stacks: enough work per block (about 1 s) that the run is still
    # going when the test interrupts it, even on a busy 2-core machine
    examples = [int(np.argmax(labels[a : a + 20].sum((1, 2)))) + a for a in (0, 40, 80, 100, 140, 180)]
    for z in examples:
        tifffile.imwrite(tmp_path / f"ex{z}.tif", image[z])
        tifffile.imwrite(tmp_path / f"ex{z}_mask.tif", labels[z])
    support = ["--support-images", *(str(tmp_path / f"ex{z}.tif") for z in examples)]
    support += ["--support-masks", *(str(tmp_path / f"ex{z}_mask.tif") for z in examples)]
    args = ["segment", str(path), *support, "--mode", "resize", "--no-adapt", "--block-slices", "10", "--workers", "2"]

    # 1. A run on its own LocalCluster: one worker killed after the first block, the driver
    #    stopped with Ctrl-C (SIGINT) a few blocks later, as a preempted job would be.
    proc = subprocess.Popen([sys.executable, "-m", "napari_universeg.cli", *args], stderr=subprocess.PIPE, text=True, preexec_fn=_polite)
    try:
        deadline, killed, done_at_kill = time.monotonic() + 120, False, 0
        while proc.poll() is None and time.monotonic() < deadline:
            done = _done_count(path)
            if not killed and done >= 1 and _worker_pids(proc):
                _kill(_worker_pids(proc)[0])
                killed, done_at_kill = True, done
            elif killed and done > done_at_kill:  # the run went on without that worker: stop it now
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert killed and proc.returncode == 130, err[-2000:]
    first = zarr.open_array(str(path / "labels/universeg/napari-universeg-done"), mode="r")[:].astype(bool)
    assert 2 <= first.sum() < 20
    chunk_files = {b: sorted((path / "labels/universeg/s0/c").glob(f"{2 * b}/*/*")) for b in np.flatnonzero(first)}
    stamps = {b: [f.stat().st_mtime_ns for f in files] for b, files in chunk_files.items()}
    assert all(stamps.values())  # every finished block has objects, so chunk files

    # 2. The same command again: only the missing blocks are computed.
    assert main(args) == 0
    assert main(["segment", str(path), "--check"]) == 0
    assert {b: [f.stat().st_mtime_ns for f in files] for b, files in chunk_files.items()} == stamps  # finished blocks untouched
    result = zarr.open_array(str(path / "labels/universeg/s0"), mode="r")[:]

    # 3. Same answers as one process (a TIFF of every 5th slice through the CLI), from blocks of both runs.
    assert main(["segment", str(tmp_path / "every5th.tif"), "--out", str(tmp_path / "one.tif"), *support, "--mode", "resize", "--no-adapt"]) == 0
    assert np.array_equal(result[::5], tifffile.imread(tmp_path / "one.tif"))
    assert 2 * np.sum((result > 0) & (labels > 0)) / (np.sum(result > 0) + np.sum(labels > 0)) > 0.7  # Dice: a real segmentation

    # 4. Opened in napari: the image and its labels, in place.
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-ome-zarr")
    image_layer, labels_layer = viewer.layers
    shown = labels_layer.data[0] if labels_layer.multiscale else labels_layer.data
    assert type(labels_layer).__name__ == "Labels" and shown.shape == (200, 64, 64)
    assert list(labels_layer.scale) == list(image_layer.scale)
    viewer.dims.set_point(0, 150 * image_layer.scale[0])
    assert np.array_equal(np.asarray(shown[150]), result[150])
