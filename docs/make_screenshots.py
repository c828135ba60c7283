"""Make the README screenshots from a real napari viewer, running the plugin's workflow.

    xvfb-run -a python docs/make_screenshots.py [--only neurons|instances]

Opens the bundled neuron sample (File > Open Sample), docks the UniverSeg widget, adds the three
painted images as examples, segments the rest, and saves docs/screenshot.png (the result on
image 4) and docs/screenshot_examples.png (the support set after adding the examples). Then the
same with the synthetic nuclei painted object by object (task "instances"):
docs/screenshot_instances.png, every nucleus of the stack its own label.
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
    _shot(viewer, HERE / "screenshot_examples.png")
    _segment_unpainted(viewer, widget, "neurons painted")
    viewer.dims.set_point(0, 4)
    _shot(viewer, HERE / "screenshot.png")
    viewer.close()


def run_instances() -> None:
    viewer, widget = _open("synthetic_instances", "synthetic nuclei", "synthetic nuclei painted objects")
    widget.add_painted_slices()  # the task is guessed: instances
    _segment_unpainted(viewer, widget, "synthetic nuclei painted objects")
    viewer.dims.set_point(0, 16)  # slice 8 (z scale 2)
    _shot(viewer, HERE / "screenshot_instances.png")
    viewer.close()


def _open(sample: str, image: str, labels: str):
    """A viewer with a bundled sample (File > Open Sample) and the widget docked on its layers."""
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
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
    app = napari.qt.get_qapp()
    while widget._worker is not None:
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
