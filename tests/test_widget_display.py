"""What the user sees (issue #16, items 3-4), in a real napari viewer (under Xvfb): results in
their own colours, the probability heat map shown, the painted layer kept selected, and a list
of 50 examples with a count, whole names as tooltips, no sideways scrolling and a sort order."""

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_universeg import _layers
from napari_universeg._support_list import EDGE, ORDERS, THUMB, ExampleItem, natural_key, thumbnail, thumbnail_rgb
from napari_universeg.sample_data import synthetic_stack

from . import test_widget

run, stack, widget = test_widget.run, test_widget.stack, test_widget.widget  # a helper, pytest fixtures

pytestmark = pytest.mark.gui


def colour(layer, value):
    """The RGBA colour ``layer`` shows for label ``value``."""
    return np.asarray(layer.colormap.map(np.array([value])))[0]


def test_results_in_their_own_colours_probabilities_shown_painted_layer_kept_selected(widget, qtbot):
    viewer, painted = widget.viewer, widget.labels_layer()
    viewer.layers.selection.active = painted  # the user paints
    widget.add_painted_slices()
    widget.method.setCurrentText("pixels")  # quick
    widget.probability_check.setChecked(True)
    run(widget, qtbot)
    assert viewer.layers.selection.active is painted and set(viewer.layers.selection) == {painted}
    out = viewer.layers["cells universeg"]
    assert out.data.any()
    assert not np.allclose(colour(out, 1), colour(painted, 1))  # not the painting's colour
    assert np.allclose(colour(out, 1)[:3], (1.0, 230 / 255, 0.0))  # yellow, class 1
    assert out.opacity == 0.5 and out.contour == 0 and out.opacity < painted.opacity
    assert colour(out, 0)[3] == 0  # background transparent
    assert type(painted.colormap).__name__ == "CyclicLabelColormap" and painted.contour == 0  # napari's defaults
    prob = viewer.layers["cells universeg probability"]
    assert prob.visible and tuple(prob.contrast_limits) == (0, 1) and prob.colormap.name == "magma"
    assert prob.colorbar.visible and float(prob.data.max()) > 0.5
    names = [layer.name for layer in viewer.layers]
    assert names.index("cells universeg probability") == names.index("cells") + 1  # under the labels
    prob.visible = False  # hidden by the user, asked for again: shown again
    run(widget, qtbot, "current")
    assert prob.visible and viewer.layers.selection.active is painted


def test_object_results_are_outlined_in_cycling_colours(make_napari_viewer):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((2, 16, 16), np.float32), name="cells")
    painted = viewer.add_labels(np.zeros((2, 16, 16), np.uint8), name="painted")
    viewer.layers.selection.active = painted
    out = _layers.output_layer(viewer, image, 2**31 - 1)  # task "instances": object ids
    assert viewer.layers.selection.active is painted
    assert out.contour > 0  # touching objects keep their own outline
    assert not np.allclose(colour(out, 1), colour(out, 2)) and not np.allclose(colour(out, 1), colour(painted, 1))
    out.colormap = painted.colormap  # the user's choice stays from run to run
    assert _layers.output_layer(viewer, image, 2**31 - 1) is out and out.colormap is painted.colormap
    _layers.output_layer(viewer, image, 2)  # back to two classes: filled, fixed colours
    assert out.contour == 0 and np.allclose(colour(out, 2)[:3], (1, 0, 1))
    assert _layers.output_layer(viewer, image, create=False) is out and out.contour == 0


@pytest.fixture
def fifty(make_napari_viewer):
    """The widget with 50 examples from layers with long names."""
    from napari_universeg import _widget as W

    viewer = make_napari_viewer()
    image, labels = synthetic_stack(n_slices=50, size=48, seed=2)
    labels[labels.reshape(50, -1).max(1) == 0, 0, 0] = 1  # every slice painted
    viewer.add_image(image, name="neurons of the second acquisition, left hemisphere")
    viewer.add_labels(labels, name="accepted neurons universeg painted by a careful annotator")
    w = W.UniverSegWidget(viewer)
    w.image_combo.setCurrentText("neurons of the second acquisition, left hemisphere")
    w.labels_combo.setCurrentText("accepted neurons universeg painted by a careful annotator")
    w.add_painted_slices()
    w.preparer.stop()  # no plan choice for 50 examples in the background
    w.show()
    w.resize(420, w.sizeHint().height())
    return w


def test_fifty_examples_counted_named_in_full_and_never_scrolled_sideways(fifty, qtbot):
    box, rows = fifty.support_box, fifty.support_list
    assert len(fifty.support) == 50 and rows.count() == 50
    assert box.title() == "Examples (50)"
    assert rows.horizontalScrollBarPolicy() == Qt.ScrollBarAlwaysOff
    qtbot.waitUntil(lambda: rows.viewport().width() > 100)
    width, fm = rows.text_width(), rows.fontMetrics()
    for i in range(50):
        item = rows.item(i)
        assert item.toolTip().startswith(fifty.support[i].source + "\n")  # the whole name
        assert all(fm.horizontalAdvance(line) <= width for line in item.text().split("\n"))
    assert "…" in rows.item(0).text() or "..." in rows.item(0).text()  # too long: shortened
    assert rows.height() >= rows.height_for(6) and rows.iconSize().height() == THUMB  # six rows of 64 px thumbnails
    height = rows.height()
    fifty.resize(420, fifty.height() + 300)  # a taller dock: a taller list
    qtbot.waitUntil(lambda: rows.height() > height + 100)
    rows.item(3).setCheckState(Qt.Unchecked)
    assert not fifty.support[3].enabled and box.title() == "Examples (50, 1 switched off)"
    rows.item(3).setSelected(True)
    box.remove_selected()
    assert box.title() == "Examples (49)" and all(ex.enabled for ex in fifty.support)
    box.grip.drag_to(rows.height_for(10))
    assert rows.minimumHeight() == rows.height_for(10)


def test_sort_by_source_and_slice_and_sorted_insertion(fifty):
    box, rows = fifty.support_box, fifty.support_list
    rows.item(0).setSelected(True)
    box.sort_combo.setCurrentText(ORDERS[1])  # source and slice
    box.sort_combo.setCurrentText(ORDERS[0])
    assert [rows.item(i).example for i in range(50)] == list(fifty.support)  # added order back
    image, labels = np.random.default_rng(0).random((8, 48, 48), np.float32), np.tile(np.eye(48, dtype=np.uint8), (8, 1, 1))
    ex = fifty.session.add(image, labels, (7,), image_name="a", labels_name="a")
    box.add_item(ex)
    assert rows.item(50).example is ex  # order added: last
    box.sort_combo.setCurrentText(ORDERS[1])
    sources = [rows.item(i).example.source for i in range(51)]
    assert sources == sorted(sources, key=natural_key) and sources[0] == "a / a, slice 7"
    assert sources[1].endswith("slice 0") and sources[10].endswith("slice 9") and sources[11].endswith("slice 10")  # numbers as numbers
    assert rows.item(1).isSelected() and sum(rows.item(i).isSelected() for i in range(51)) == 1  # selection kept
    ex = fifty.session.add(image, labels, (3,), image_name="a", labels_name="a")
    box.add_item(ex)
    assert rows.item(0).example is ex and box.title() == "Examples (52)"  # sorted insertion
    assert isinstance(rows.item(0), ExampleItem) and rows.item(0).checkState() == Qt.Checked


def test_thumbnail_is_large_and_shows_the_mask():
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 5:12], mask[5:15, 12:20] = 1, 2  # two touching objects
    image = np.random.default_rng(0).random((20, 30))
    pix = thumbnail(image, mask)
    assert (pix.width(), pix.height()) == (THUMB, round(20 * THUMB / 30))  # small images enlarged
    big = thumbnail(np.zeros((500, 250, 3), np.float32), np.zeros((500, 250), np.uint8))
    assert (big.width(), big.height()) == (THUMB // 2, THUMB)
    rgb = thumbnail_rgb(image, mask)
    x = round(12 * THUMB / 30)  # the border between the two objects is drawn
    assert tuple(rgb[round(10 * THUMB / 30), x]) == EDGE and tuple(rgb[0, 0]) != EDGE
    inside = rgb[round(7 * THUMB / 30), round(8 * THUMB / 30)]
    assert inside[0] >= 127 and inside[1] == inside[2] < 128  # tinted red
