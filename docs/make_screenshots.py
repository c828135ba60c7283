"""Make the README screenshot from a real napari viewer (run under Xvfb: xvfb-run -a python docs/make_screenshots.py).

Opens the bundled neuron sample (3 painted images), segments the other 9 with the engine, adds
the result as "<image> universeg" and saves docs/screenshot.png with the viewer on image 4.
"""

from pathlib import Path

import napari
import numpy as np

from napari_universeg._sample_data import neurons_sample
from napari_universeg.predict import PredictOptions, Segmenter
from napari_universeg.support import SupportSet

OUT = Path(__file__).parent / "screenshot.png"


def main() -> None:
    viewer = napari.Viewer(show=True)
    (images, img_kw, _), (painted, lab_kw, _) = neurons_sample()
    viewer.add_image(images, **img_kw)
    viewer.add_labels(painted, **lab_kw)
    support = SupportSet()
    for z in range(images.shape[0]):
        if painted[z].any():
            support.add(images[z], painted[z], source=f"neurons painted, slice {z}")
    result = np.zeros_like(painted)
    seg = Segmenter.from_weights("default")
    todo = [z for z in range(images.shape[0]) if not painted[z].any()]
    for pred in seg.iter_predict(support, images, PredictOptions(), indices=todo):
        result[pred.index] = pred.labels * 2  # a second colour, to tell results from painting
    viewer.add_labels(result, name="neurons universeg", opacity=0.5)
    viewer.dims.set_point(0, 4)
    viewer.window._qt_window.resize(1200, 800)
    napari.qt.get_qapp().processEvents()
    viewer.screenshot(str(OUT), canvas_only=False)
    print(f"saved {OUT}")
    viewer.close()


if __name__ == "__main__":
    main()
