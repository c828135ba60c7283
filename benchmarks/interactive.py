"""Time to the first result in a real napari, and how smooth the viewer stays during a run.

    xvfb-run -a python -m benchmarks.interactive [--data ../shared/evaldata] [--examples 8] [--json PATH]

The dock widget on a stack of 1024 x 1024 slices (fluo_nuclei_nih3t3, 1024 x 1344 images cropped
to their left 1024 columns: ``--examples`` painted slices, then one to segment), "Segment slice" in auto mode, in three situations:
- engine only, no preview: the first result of Segmenter.predict (the choice, then the slice);
- clicked at once: the user clicks right after adding the examples (a preview first, then the
  slice again with the chosen plan);
- clicked after painting: the plan was chosen in the background while the user went on.
Each prints seconds from the click to the first result written into the layer and to the end of
the run, and the event loop's latency during the run: the lateness of a 10 ms timer (the delay
a pan or a paint stroke would have), as median, 95th percentile and maximum.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from benchmarks.protocol_task import EVALDATA
from napari_universeg.evaluate import load_dataset
from napari_universeg.predict import PredictOptions
from napari_universeg.support import SupportSet

TICK_MS = 10
SET = "fluo_nuclei_nih3t3"
SIDE = 1024


def _stack(data: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    ds = load_dataset(data / SET)
    ids = ds.ids[: n + 1]
    image = np.stack([ds.image(i)[:SIDE, :SIDE] for i in ids])
    painted = np.stack([ds.mask(i)[:SIDE, :SIDE] for i in ids]).astype(np.uint8)
    painted[-1] = 0  # the slice to segment
    return image, painted


def _run_loop(app, done, timeout_s: float = 600) -> list[float]:
    """Process events until done(); the lateness (ms) of each tick of a TICK_MS timer meanwhile."""
    from qtpy.QtCore import QEventLoop, QTimer

    late, last = [], [time.perf_counter()]
    loop = QEventLoop()

    def tick():
        now = time.perf_counter()
        late.append(max(0.0, (now - last[0]) * 1000 - TICK_MS))
        last[0] = now
        if done() or now - start > timeout_s:
            loop.quit()

    timer = QTimer(interval=TICK_MS)
    timer.timeout.connect(tick)
    start = time.perf_counter()
    timer.start()
    loop.exec_()
    timer.stop()
    return late


def _latency(late: list[float]) -> dict:
    return {"median": round(float(np.median(late)), 1), "p95": round(float(np.percentile(late, 95)), 1), "max": round(float(max(late)), 1)}


def _widget(viewer, image, painted):
    from napari_universeg._widget import UniverSegWidget

    viewer.layers.clear()
    viewer.add_image(image, name="cells")
    viewer.add_labels(painted, name="painted")
    w = UniverSegWidget(viewer)
    w.image_combo.setCurrentText("cells")
    w.labels_combo.setCurrentText("painted")
    w.session.segmenter()  # the model loads once per session, before the first click
    viewer.dims.set_current_step(0, len(image) - 1)
    return w


def _click(app, w) -> dict:
    """Segment the current slice; seconds to the first write and to the end, and tick lateness."""
    writes = []
    write = w.session.write
    w.session.write = lambda *a, **k: writes.append(time.perf_counter()) or write(*a, **k)
    start = time.perf_counter()
    w.segment("current")
    late = _run_loop(app, lambda: w._worker is None)
    w.session.write = write
    return {
        "first_s": round(writes[0] - start, 2),
        "done_s": round(time.perf_counter() - start, 2),
        "results_written": len(writes),
        "plan": w.session.last_plan.describe(),
        "latency_ms": _latency(late),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=EVALDATA)
    p.add_argument("--examples", type=int, default=8)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    import napari
    from qtpy.QtWidgets import QApplication

    image, painted = _stack(args.data, args.examples)
    rows = {"cpu": f"{platform.machine()}, {__import__('os').cpu_count()} cores", "image": list(image.shape), "set": SET}

    # engine only, as before the preview: the first result waits for the choice
    from napari_universeg.predict import Segmenter

    seg = Segmenter.from_weights("default")
    support = SupportSet()
    for im, m in zip(image[:-1], painted[:-1]):
        support.add(im, m)
    start = time.perf_counter()
    first = next(seg.iter_predict(support, image, PredictOptions(), indices=[len(image) - 1]))
    rows["engine_no_preview"] = {"first_s": round(time.perf_counter() - start, 2), "plan": first.plan.describe()}
    print(json.dumps({"engine_no_preview": rows["engine_no_preview"]}), flush=True)
    del seg

    viewer = napari.Viewer()
    app = QApplication.instance()
    w = _widget(viewer, image, painted)
    w.add_painted_slices()
    rows["clicked_at_once"] = _click(app, w)  # before the background choice starts (1 s pause)
    print(json.dumps({"clicked_at_once": rows["clicked_at_once"]}), flush=True)

    w.close()
    w = _widget(viewer, image, painted)  # a new session: nothing chosen yet
    start = time.perf_counter()
    w.add_painted_slices()
    late = _run_loop(app, lambda: w.preparer.worker is None and not w.preparer._timer.isActive() and time.perf_counter() - start > 2)
    rows["background_choice"] = {
        "s": round(time.perf_counter() - start, 2),
        "latency_ms": _latency(late),
    }
    print(json.dumps({"background_choice": rows["background_choice"]}), flush=True)
    rows["clicked_after_painting"] = _click(app, w)
    print(json.dumps({"clicked_after_painting": rows["clicked_after_painting"]}), flush=True)
    w.close()
    viewer.close()
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


def table(rows: dict) -> str:
    """The results as the README shows them."""
    lines = [
        f"\nCPU: {rows['cpu']}; {rows['image'][0] - 1} examples and 1 slice to segment, {rows['image'][1]} x {rows['image'][2]} px ({rows['set']})\n",
        "| situation | first result s | run done s | event loop lateness ms: median / p95 / max |",
        "|---|---|---|---|",
        f"| engine alone, no preview (before) | {rows['engine_no_preview']['first_s']} | {rows['engine_no_preview']['first_s']} | - |",
    ]
    for key, words in (
        ("clicked_at_once", "clicked right after adding the examples"),
        ("clicked_after_painting", "clicked after the background choice"),
    ):
        r, lat = rows[key], rows[key]["latency_ms"]
        lines.append(f"| {words} | {r['first_s']} | {r['done_s']} | {lat['median']} / {lat['p95']} / {lat['max']} |")
    lat = rows["background_choice"]["latency_ms"]
    lines.append(
        f"| the background choice itself, while the user paints | - | {rows['background_choice']['s']} | {lat['median']} / {lat['p95']} / {lat['max']} |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
