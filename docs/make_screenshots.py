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
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.open_sample("napari-universeg", "neurons")
    _, widget = viewer.window.add_plugin_dock_widget("napari-universeg", "UniverSeg")
    widget.image_combo.setCurrentText("neurons")
    widget.labels_combo.setCurrentText("neurons painted")
    viewer.dims.set_point(0, 1)
    widget.add_painted_slices()
    _shot(viewer, HERE / "screenshot_examples.png")
    widget.segment("unpainted")
    _wait(widget)
    viewer.layers["neurons painted"].visible = False
    viewer.dims.set_point(0, 4)
    _shot(viewer, HERE / "screenshot.png")
    viewer.close()


def run_instances() -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.open_sample("napari-universeg", "synthetic_instances")
    _, widget = viewer.window.add_plugin_dock_widget("napari-universeg", "UniverSeg")
    widget.image_combo.setCurrentText("synthetic nuclei")
    widget.labels_combo.setCurrentText("synthetic nuclei painted objects")
    widget.add_painted_slices()  # the task is guessed: instances
    widget.segment("unpainted")
    _wait(widget)
    viewer.layers["synthetic nuclei painted objects"].visible = False
    viewer.dims.set_point(0, 16)  # slice 8 (z scale 2)
    _shot(viewer, HERE / "screenshot_instances.png")
    viewer.close()


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
