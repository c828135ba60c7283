"""Make the README screenshots from a real napari viewer, running the plugin's workflow.

    xvfb-run -a -s "-screen 0 1600x1300x24" python docs/make_screenshots.py [--only neurons|instances]

Opens the bundled neuron sample (File > Open Sample), docks the UniverSeg widget, adds the three
painted images as examples and segments the rest: docs/screenshot_progress.png during that run
(the dock's progress line). Then it accepts five results as examples, as a user who checked them
would: docs/screenshot.png (the result on image 10, in its own colour, and the support list of 8
examples) and docs/screenshot_examples.png (the dock alone). Then the same with the synthetic
nuclei painted object by object (task "instances"): docs/screenshot_instances.png, every nucleus
of the stack its own outline.
"""

import argparse
import time
from pathlib import Path

import napari
from napari.settings import get_settings

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("neurons", "instances"))
    only = parser.parse_args().only
    # keep napari's own warning toasts (e.g. the PyQt5 deprecation) out of the picture
    settings = get_settings().application
    level, settings.gui_notification_level = settings.gui_notification_level, "error"
    try:
        if only in (None, "neurons"):
            run()
        if only in (None, "instances"):
            run_instances()
    finally:
        settings.gui_notification_level = level  # napari saves settings: put the user's back


def run() -> None:
    viewer, widget = _open("neurons", "neurons", "neurons painted")
    viewer.dims.set_point(0, 1)
    widget.add_painted_slices()
    widget.segment("unpainted")
    _until(lambda: widget.progress.label.text().startswith("segmenting 3/"))
    _shot(viewer, HERE / "screenshot_progress.png")
    _wait(widget)
    for z in (3, 4, 5, 6, 7):  # results the user checked, accepted as examples (each re-runs the rest)
        viewer.dims.set_point(0, z)
        widget.accept_current_slice()
        _wait(widget)
    viewer.layers["neurons painted"].visible = False
    viewer.dims.set_point(0, 10)
    _shot(viewer, HERE / "screenshot.png")
    widget.grab().save(str(HERE / "screenshot_examples.png"))
    print(f"saved {HERE / 'screenshot_examples.png'}")
    _close(viewer, widget)


def run_instances() -> None:
    viewer, widget = _open("synthetic_instances", "synthetic nuclei", "synthetic nuclei painted objects")
    widget.add_painted_slices()  # the task is guessed: instances
    _segment_unpainted(viewer, widget, "synthetic nuclei painted objects")
    viewer.dims.set_point(0, 16)  # slice 8 (z scale 2)
    _shot(viewer, HERE / "screenshot_instances.png")
    _close(viewer, widget)


def _open(sample: str, image: str, labels: str):
    """A viewer with a bundled sample (File > Open Sample) and the widget docked on its layers."""
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 1150)
    viewer.open_sample("napari-universeg", sample)
    _, widget = viewer.window.add_plugin_dock_widget("napari-universeg", "UniverSeg")
    widget.image_combo.setCurrentText(image)
    widget.labels_combo.setCurrentText(labels)
    return viewer, widget


def _segment_unpainted(viewer, widget, labels: str) -> None:
    """Segment the unpainted slices, wait for the run, hide the painting to show the result."""
    widget.segment("unpainted")
    _wait(widget)
    viewer.layers[labels].visible = False


def _wait(widget) -> None:
    """Until the widget's background run has finished (its results arrive through Qt events)."""
    _until(lambda: widget._worker is None)


def _close(viewer, widget) -> None:
    """Close the viewer once the widget's background choice has stopped."""
    widget.preparer.stop()
    _until(lambda: widget.preparer.worker is None)
    viewer.close()


def _until(done) -> None:
    """Process Qt events until ``done()``."""
    app = napari.qt.get_qapp()
    while not done():
        app.processEvents()
        time.sleep(0.05)


def _shot(viewer, path: Path) -> None:
    app = napari.qt.get_qapp()
    for _ in range(10):  # let the canvas settle
        app.processEvents()
        time.sleep(0.1)
    viewer.reset_view()
    viewer.screenshot(str(path), canvas_only=False)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
