"""Make the README screenshots from a real napari viewer, running the plugin's workflow.

    xvfb-run -a python docs/make_screenshots.py

Opens the bundled neuron sample (File > Open Sample), docks the UniverSeg widget, adds the three
painted images as examples, segments the rest, and saves docs/screenshot.png (the result on
image 4) and docs/screenshot_examples.png (the support set after adding the examples).
"""

import time
import warnings
from pathlib import Path

import napari

warnings.filterwarnings("ignore", message=".*PyQt5.*")  # keep napari's deprecation toast out of the picture

HERE = Path(__file__).parent


def main() -> None:
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    viewer.open_sample("napari-universeg", "neurons")
    _, widget = viewer.window.add_plugin_dock_widget("napari-universeg", "UniverSeg")
    widget.synchronous = True  # run in this thread so the script can wait for the result
    widget.image_combo.setCurrentText("neurons")
    widget.labels_combo.setCurrentText("neurons painted")
    viewer.dims.set_point(0, 1)
    widget.add_painted_slices()
    _shot(viewer, HERE / "screenshot_examples.png")
    widget.segment("unpainted")
    viewer.layers["neurons painted"].visible = False
    viewer.dims.set_point(0, 4)
    _shot(viewer, HERE / "screenshot.png")
    viewer.close()


def _shot(viewer, path: Path) -> None:
    app = napari.qt.get_qapp()
    for _ in range(100):  # ~10 s: let start-up notification toasts fade out
        app.processEvents()
        time.sleep(0.1)
    viewer.reset_view()
    viewer.screenshot(str(path), canvas_only=False)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
