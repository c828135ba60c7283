"""The dock widget in a real napari viewer (under Xvfb): the whole workflow and bad input."""

import numpy as np
import pytest

from napari_universeg import _support_actions as A
from napari_universeg import _widget as W
from napari_universeg import adapt
from napari_universeg import session as S
from napari_universeg._reader import get_reader
from napari_universeg._writer import write_support
from napari_universeg.sample_data import synthetic_stack

pytestmark = pytest.mark.gui


@pytest.fixture
def messages(monkeypatch):
    seen = []
    for module in (W, A):
        for name in ("show_error", "show_warning", "show_info"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, lambda msg, kind=name: seen.append((kind, msg)))
    return seen


@pytest.fixture
def stack():
    image, labels = synthetic_stack(n_slices=8, size=64, seed=1)
    painted = np.zeros_like(labels)
    painted[[1, 5]] = labels[[1, 5]]
    return image, painted


@pytest.fixture
def widget(make_napari_viewer, stack):
    viewer = make_napari_viewer()
    image, painted = stack
    viewer.add_image(image, name="cells", scale=(2.0, 0.5, 0.5), translate=(0, 10, 20))
    viewer.add_labels(painted, name="painted", scale=(2.0, 0.5, 0.5), translate=(0, 10, 20))
    w = W.UniverSegWidget(viewer)
    w.image_combo.setCurrentText("cells")
    w.labels_combo.setCurrentText("painted")
    # Adaptation (tens of seconds here) is on only in the tests about it and the accept loop
    w.adapt.setCurrentText("never")
    return w


def wait(widget, qtbot, timeout=300000):
    """Until the running job (and any live-mode retry it scheduled) has finished; the timeout is
    generous because on a busy 2-core machine the adapt run alone can take over a minute."""
    qtbot.waitUntil(lambda: widget._worker is None and not widget._live_timer.isActive(), timeout=timeout)


def run(widget, qtbot, which="all"):
    """Segment in the real background worker and wait for the result."""
    widget.segment(which)
    wait(widget, qtbot)


def test_whole_workflow_on_a_synthetic_stack(widget, stack, qtbot):
    image, painted = stack
    before = widget.labels_layer().data.copy()
    widget.add_painted_slices()
    assert len(widget.support) == 2 and widget.support_list.count() == 2
    assert "slice 1" in widget.support[0].source
    run(widget, qtbot)
    out = widget.viewer.layers["cells universeg"]
    assert out.data.shape == image.shape
    assert tuple(out.scale) == (2.0, 0.5, 0.5) and tuple(out.translate) == (0, 10, 20)
    written = [z for z in range(8) if out.data[z].any()]
    assert len(written) >= 6
    status = widget.status.text()  # what "auto" chose, and how well it predicted the examples
    assert status.startswith("done (") and "expected Dice about " in status and "from your 2 examples" in status
    np.testing.assert_array_equal(widget.labels_layer().data, before)  # painting untouched
    # one Ctrl+Z undoes the whole run
    out.undo()
    assert not out.data.any()


def test_predictor_choice_reaches_the_engine(widget, stack, qtbot):
    image, painted = stack
    widget.add_painted_slices()
    widget.method.setCurrentText("pixels")
    run(widget, qtbot)
    out = widget.viewer.layers["cells universeg"].data
    assert widget.status.text().startswith("done (pixel classifier); expected Dice about ")
    truth = synthetic_stack(n_slices=8, size=64, seed=1)[1]
    from napari_universeg.metrics import dice

    assert dice(out[3] > 0, truth[3] > 0) > 0.8  # bright disks: easy for the classifier


@pytest.mark.slow
def test_adapt_choice_reaches_the_engine(widget, qtbot):
    widget.add_painted_slices()
    widget.method.setCurrentText("universeg")
    widget.mode.setCurrentText("resize")
    seg = widget.session.segmenter(widget.device.currentText())
    widget.adapt.setCurrentText("never")
    run(widget, qtbot, "current")
    assert seg.adaptation is None
    widget.adapt.setCurrentText("always")
    run(widget, qtbot, "current")
    assert seg.adaptation is not None and seg.adaptation.model is not seg.model
    assert widget.status.text().startswith("done (whole image resized; model adapted to your 2 examples)")
    widget.adapt.setCurrentText("never")
    run(widget, qtbot, "current")
    assert widget.status.text().startswith("done (whole image resized).")  # no adaptation: nothing said of the model


def test_unpainted_only_and_fill_the_painted_layer(widget, stack, qtbot):
    image, painted = stack
    widget.add_painted_slices()
    widget.fill_painted_check.setChecked(True)
    run(widget, qtbot, "unpainted")
    data = widget.labels_layer().data
    np.testing.assert_array_equal(data[[1, 5]], painted[[1, 5]])  # painted slices kept
    assert sum(data[z].any() for z in (0, 2, 3, 4, 6, 7)) >= 4
    assert "cells universeg" not in widget.viewer.layers


def test_current_slice_accept_and_suggest(widget, qtbot):
    widget.adapt.setCurrentText("auto: from 2 examples")  # the default: the loop learns
    widget.add_painted_slices()
    widget.viewer.dims.set_point(0, 6.0)  # world z = 6 -> data slice 3 (scale 2)
    assert widget.current_index(widget.labels_layer()) == (3,)
    run(widget, qtbot, "current")
    out = widget.viewer.layers["cells universeg"]
    assert [z for z in range(8) if out.data[z].any()] == [3]
    out.data[3, :5, :5] = 1  # the user corrects the result
    widget.accept_current_slice()  # starts a run of the rest
    wait(widget, qtbot)
    assert len(widget.support) == 3 and widget.support[2].source.startswith("accepted")
    seg = widget.session.segmenter(widget.device.currentText())
    assert seg.adaptation.steps == 3 * adapt.STEPS_PER_EXAMPLE  # the model learned the accepted slice too
    run(widget, qtbot)
    idx = widget.suggest_next_slice()
    assert idx is not None and idx not in [(1,), (5,), (3,)]
    assert widget.status.text().startswith(f"least certain: slice {idx[0]} (about ")  # words, not (3,)
    assert "% of its pixels may be wrong" in widget.status.text()


def test_accept_segments_the_rest_nearest_first_and_keeps_the_users_corrections(widget, monkeypatch, qtbot):
    widget.add_painted_slices()
    run(widget, qtbot)
    out = widget.viewer.layers["cells universeg"]
    out.data[6] = 0  # a correction the user has not accepted yet
    out.data[3, :5, :5] = 2  # the correction to accept
    before = out.data.copy()
    order = []
    write = S.write_slice
    monkeypatch.setattr(S, "write_slice", lambda layer, idx, values: order.append(idx) or write(layer, idx, values))
    widget.viewer.dims.set_point(0, 6.0)  # data slice 3
    widget.accept_current_slice()
    wait(widget, qtbot)
    assert len(widget.support) == 3
    # every slice but the examples (1, 3, 5) and the corrected 6, nearest to slice 3 first; the
    # first at once with the plan as it was, then again with the plan updated for 3 examples
    assert order == [(2,), (2,), (4,), (0,), (7,)]
    np.testing.assert_array_equal(out.data[[1, 3, 5, 6]], before[[1, 3, 5, 6]])
    out.undo()  # the re-run is one undo step, back to the state the user had
    np.testing.assert_array_equal(out.data, before)


def test_background_worker_progress_and_cancel(widget, qtbot):
    widget.add_painted_slices()
    widget.segment("all")
    assert widget._worker is not None and not widget.run_all_btn.isEnabled()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60000)
    assert widget.viewer.layers["cells universeg"].data.any()
    # cancel: a long run stopped right away writes little and re-enables the buttons
    widget.viewer.layers["cells universeg"].data[:] = 0
    widget.segment("all")
    widget.cancel()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60000)
    assert widget.run_all_btn.isEnabled() and widget.status.text() == "cancelled"


def test_the_output_layer_is_locked_during_a_run_so_undo_returns_to_a_state_the_user_had(widget, qtbot, messages):
    widget.add_painted_slices()
    run(widget, qtbot)
    out = widget.viewer.layers["cells universeg"]
    yy, xx = np.mgrid[:4, :4]
    out.data_setitem((np.full(16, 3), yy.ravel(), xx.ravel()), 2)  # a correction, one undo step
    corrected = out.data.copy()
    widget.threshold.setValue(0.3)  # a second run that writes something else
    widget.segment("all")
    out.mode = "paint"  # the user picks the brush during the run: refused
    assert out.mode == "pan_zoom"
    out.undo()  # Ctrl+Z during the run: refused, with a message
    assert any("locked while a run writes" in m for _, m in messages)
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60000)
    assert "undo" not in out.__dict__
    out.mode = "paint"
    assert out.mode == "paint"
    out.undo()  # the whole second run, in one step
    np.testing.assert_array_equal(out.data, corrected)
    out.undo()  # then the correction
    assert out.data[3, 0, 0] != 2


def test_second_run_while_running_is_refused(widget, qtbot, messages):
    widget.add_painted_slices()
    widget.segment("all")
    widget.segment("all")
    assert any("in progress" in m for _, m in messages)
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60000)


def test_bad_input_gives_notifications_and_loses_nothing(widget, messages):
    widget.segment("all")
    assert "no examples" in messages[-1][1]
    widget.add_current_slice()  # slice 0 is unpainted: accepted as background-only, with a warning
    assert "no painted labels" in messages[-1][1]
    widget.viewer.add_labels(np.zeros((8, 32, 32), np.uint8), name="wrong")
    widget.labels_combo.setCurrentText("wrong")
    widget.add_painted_slices()
    assert messages[-1][0] == "show_error" and "shape" in messages[-1][1]
    widget.viewer.add_image(np.random.rand(4, 6, 6), name="tiny")
    widget.viewer.add_labels(np.ones((4, 6, 6), np.uint8), name="tiny labels")
    widget.image_combo.setCurrentText("tiny")
    widget.labels_combo.setCurrentText("tiny labels")
    widget.add_painted_slices()
    assert "at least 8x8" in messages[-1][1]
    assert len(widget.support) == 1


def test_removing_the_output_layer_during_a_run_cancels(widget, qtbot, messages):
    widget.add_painted_slices()
    widget.segment("all")
    widget.viewer.layers.remove("cells universeg")
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60000)
    assert any("removed" in m for _, m in messages)


def test_save_load_round_trip_through_writer_and_reader(widget, tmp_path, stack):
    image, painted = stack
    layers = [(image, {"name": "cells"}, "image"), (painted, {"name": "painted"}, "labels")]
    [path] = write_support(str(tmp_path / "set.npz"), layers)
    reader = get_reader(path)
    assert reader is not None and get_reader(str(tmp_path / "other.npz")) is None
    widget.viewer.open(path, plugin="napari-universeg")
    assert len(widget.support) == 2  # the widget picked up the dropped file
    assert widget.viewer.layers["set.npz examples"].data.shape == (2, 64, 64)
    widget.save_support(tmp_path / "again.npz")
    widget.clear_support()
    widget.load_support(tmp_path / "again.npz")
    assert len(widget.support) == 2 and widget.support_list.count() == 2


def test_not_a_support_file(widget, tmp_path, messages):
    np.savez(tmp_path / "x.npz", a=np.zeros(2))
    assert get_reader(str(tmp_path / "x.npz")) is None
    widget.load_support(tmp_path / "x.npz")
    assert "not a napari-universeg support-set file" in messages[-1][1]


def _run_on(widget, qtbot, data, labels, rgb=False, channel=0):
    v = widget.viewer
    v.layers.clear()
    v.add_image(data, name="img", rgb=rgb)
    v.add_labels(labels, name="lab")
    widget.image_combo.setCurrentText("img")
    widget.labels_combo.setCurrentText("lab")
    widget.channel_combo.setCurrentIndex(channel)
    widget.clear_support()
    widget.add_painted_slices()
    run(widget, qtbot)
    return v.layers["img universeg"].data


def test_2d_image(widget, qtbot):
    image, labels = synthetic_stack(n_slices=2, size=48)
    out = _run_on(widget, qtbot, image[0], labels[0].copy())
    assert out.shape == (48, 48) and out.any()


def test_4d_image(widget, qtbot):
    image, labels = synthetic_stack(n_slices=6, size=48)
    data, lab = image.reshape(2, 3, 48, 48), np.zeros((2, 3, 48, 48), np.uint8)
    lab[0, 1] = labels[1]
    out = _run_on(widget, qtbot, data, lab)
    assert out.shape == (2, 3, 48, 48) and sum(out[i, j].any() for i in range(2) for j in range(3)) >= 4


def test_rgb_image_with_a_channel(widget, qtbot):
    image, labels = synthetic_stack(n_slices=3, size=48)
    rgb = (np.stack([image, image * 0.5, image * 0.2], -1) / image.max() * 255).astype(np.uint8)
    lab = np.zeros((3, 48, 48), np.uint8)
    lab[0] = labels[0]
    out = _run_on(widget, qtbot, rgb, lab, rgb=True, channel=2)  # combo entry "1 (green)"
    assert out.shape == (3, 48, 48)
    np.testing.assert_array_equal(widget.support[0].image, rgb[0, ..., 1])  # the green channel, not luminance


def test_multichannel_layer_from_channel_axis(widget, qtbot):
    image, labels = synthetic_stack(n_slices=3, size=48)
    widget.viewer.layers.clear()
    widget.viewer.add_image(np.stack([image, image[::-1]]), channel_axis=0, name=["nuclei", "other"])
    widget.viewer.add_labels(np.where(np.arange(3)[:, None, None] == 0, labels, 0).astype(np.uint8), name="lab")
    assert widget.image_combo.count() == 2  # each channel is a layer to choose from
    widget.image_combo.setCurrentText("nuclei")
    widget.labels_combo.setCurrentText("lab")
    widget.add_painted_slices()
    run(widget, qtbot)
    assert widget.viewer.layers["nuclei universeg"].data.shape == (3, 48, 48)


def test_dask_image_reads_only_needed_slices(widget, qtbot):
    da = pytest.importorskip("dask.array")
    image, labels = synthetic_stack(n_slices=4, size=48)
    read = []

    def note_reads(block, block_info=None):
        read.append(block_info[0]["chunk-location"][0])
        return block

    lazy = da.from_array(image, chunks=(1, 48, 48)).map_blocks(note_reads, dtype=image.dtype)
    lab = np.zeros((4, 48, 48), np.uint8)
    lab[0] = labels[0]
    v = widget.viewer
    v.layers.clear()
    v.add_image(lazy, name="img")
    v.add_labels(lab, name="lab")
    widget.image_combo.setCurrentText("img")
    widget.labels_combo.setCurrentText("lab")
    widget.add_painted_slices()
    v.dims.set_point(0, 2)
    read.clear()  # napari itself reads the slice on display
    run(widget, qtbot, "current")
    assert set(read) <= {0, 2}  # the example's slice (for its tensors) and the current one only
    assert v.layers["img universeg"].data[2].any()


def test_all_empty_examples_are_refused(widget, messages):
    widget.add_current_slice()  # slice 0: nothing painted
    widget.segment("all")
    assert "background only" in messages[-1][1]
    assert "cells universeg" not in widget.viewer.layers


def test_labels_painted_on_the_colour_axis_of_an_rgb_image(widget, messages):
    rgb = (np.random.default_rng(0).random((3, 32, 32, 3)) * 255).astype(np.uint8)
    widget.viewer.add_image(rgb, name="rgb", rgb=True)
    widget.viewer.add_labels(np.ones((3, 32, 32, 3), np.uint8), name="wrong axis")
    widget.image_combo.setCurrentText("rgb")
    widget.labels_combo.setCurrentText("wrong axis")
    widget.add_painted_slices()
    assert "colour axis" in messages[-1][1] and len(widget.support) == 0


def _press(viewer, key):
    next(func for k, func in viewer.keymap.items() if str(k) == key)(viewer)


def test_keyboard_shortcuts_and_live_mode(widget, qtbot):
    widget.viewer.dims.set_point(0, 2.0)  # slice 1 (painted)
    _press(widget.viewer, "Shift+A")
    assert len(widget.support) == 1
    widget.live_check.setChecked(True)
    widget.viewer.dims.set_point(0, 12.0)  # slice 6
    widget._live_timer.stop()
    widget._live_timer.timeout.emit()  # the debounce timer firing
    wait(widget, qtbot)
    out = widget.viewer.layers["cells universeg"]
    assert [z for z in range(8) if out.data[z].any()] == [6]
    _press(widget.viewer, "Shift+R")
    wait(widget, qtbot)
    assert sum(out.data[z].any() for z in range(8)) >= 6


def test_renaming_a_layer_or_closing_the_widget_during_a_run(widget, qtbot):
    widget.add_painted_slices()
    widget.segment("all")
    widget.image_layer().name = "renamed"  # the run holds the layers, not their names
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60000)
    assert widget.viewer.layers["cells universeg"].data.any()
    widget.image_combo.setCurrentText("renamed")
    widget.segment("all")
    widget.close()  # closing cancels the run
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60000)
    assert widget._cancel


@pytest.mark.slow
def test_docked_through_the_manifest_on_the_sample_with_the_recommended_qt(make_napari_viewer, qtbot, recwarn):
    """As a user starts: napari's Plugins menu entry, the sample, two clicks; on the Qt binding
    napari recommends (no PyQt5 deprecation notice)."""
    import qtpy

    assert qtpy.API_NAME in ("PyQt6", "PySide6")
    viewer = make_napari_viewer()
    viewer.open_sample("napari-universeg", "neurons")
    _, widget = viewer.window.add_plugin_dock_widget("napari-universeg", "UniverSeg")
    widget.image_combo.setCurrentText("neurons")
    widget.labels_combo.setCurrentText("neurons painted")
    widget.add_painted_slices()
    assert len(widget.support) == 3
    viewer.dims.set_point(0, 5)
    widget.segment("current")
    qtbot.waitUntil(lambda: widget._worker is None, timeout=120000)
    out = viewer.layers["neurons universeg"].data
    assert out[5].any() and not out[[0, 1, 2, 3, 4, 6]].any()
    assert widget.status.text().startswith("done (") and "expected Dice about" in widget.status.text()
    assert not [w for w in recwarn if "PyQt5" in str(w.message)]


def test_instances_painted_object_by_object_are_guessed_segmented_corrected_and_accepted(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    image, objects = synthetic_stack(n_slices=6, size=96, seed=3, instances=True)
    painted = np.zeros_like(objects)
    painted[[0, 3]] = objects[[0, 3]]
    viewer.add_image(image, name="nuclei")
    viewer.add_labels(painted, name="objects")
    w = W.UniverSegWidget(viewer)
    w.image_combo.setCurrentText("nuclei")
    w.labels_combo.setCurrentText("objects")
    w.add_painted_slices()
    assert w.task.currentText() == "instances" and "task: instances (guessed" in w.status.text()
    w.method.setCurrentText("pixels")  # fast; the instance logic is the same for every predictor
    w.mode.setCurrentText("resize")
    run(w, qtbot, "all")
    out = viewer.layers["nuclei universeg"]
    ids = [set(np.unique(out.data[z])) - {0} for z in range(6)]
    assert out.data.dtype == np.uint32 and all(ids[z] for z in (1, 2, 4, 5))
    assert sum(len(s) for s in ids) == len(set().union(*ids))  # every object its own value in the stack
    # correct one object of slice 2 (remove it) and accept the slice: the rest is segmented again
    viewer.dims.set_point(0, 2.0)
    removed = min(ids[2])
    out.data[2][out.data[2] == removed] = 0
    corrected = out.data.copy()
    w.accept_current_slice()
    wait(w, qtbot)
    assert len(w.support) == 3 and w.support[2].source.startswith("accepted") and w.support.task == "instances"
    np.testing.assert_array_equal(out.data[2], corrected[2])
    ids = [set(np.unique(out.data[z])) - {0} for z in range(6)]
    assert sum(len(s) for s in ids) == len(set().union(*ids)) and removed not in ids[2]
    out.undo()  # the re-run after the accept is one undo step
    np.testing.assert_array_equal(out.data, corrected)
    # the user can say the values are classes after all: the guess no longer applies
    w.task.setCurrentText("classes")
    w.task.activated.emit(0)
    w.add_current_slice()
    assert w.support.task == "classes" and "task: classes (chosen" in w.status.text()


def test_auto_chooses_its_plan_in_the_background_while_the_user_paints(widget, qtbot, monkeypatch):
    import napari_universeg.predict as predict_module

    calls, order = [], []
    validated = predict_module.validated_plan
    monkeypatch.setattr(predict_module, "validated_plan", lambda *a, **kw: calls.append(1) or validated(*a, **kw))
    write = S.write_slice
    monkeypatch.setattr(S, "write_slice", lambda layer, idx, values: order.append(idx) or write(layer, idx, values))
    widget.add_painted_slices()
    assert widget.preparer._timer.isActive()  # starts after a pause, in case more examples come
    qtbot.waitUntil(lambda: widget.preparer.worker is not None, timeout=5000)
    qtbot.waitUntil(lambda: widget.preparer.worker is None, timeout=300000)
    assert len(calls) == 1
    widget.viewer.dims.set_point(0, 2 * 2.0)  # data slice 2
    run(widget, qtbot, "current")
    assert len(calls) == 1 and order == [(2,)]  # the choice was made: no preview, no second choice
    assert not widget.session.last_plan.provisional and widget.status.text().startswith("done (")


def test_clicked_before_the_choice_the_slice_comes_at_once_then_refined(widget, qtbot, monkeypatch):
    order, previews = [], []
    write = S.write_slice
    monkeypatch.setattr(S, "write_slice", lambda layer, idx, values: order.append(idx) or write(layer, idx, values))
    session_write = widget.session.write
    monkeypatch.setattr(widget.session, "write", lambda layer, r, *a: previews.append(r.preview) or session_write(layer, r, *a))
    widget.add_painted_slices()
    widget.viewer.dims.set_point(0, 2 * 2.0)
    run(widget, qtbot, "current")
    assert order == [(2,), (2,)] and previews == [True, False]
    assert widget.session.last_plan.estimate is not None  # the refined result carries the choice
    widget.preparer.stop()


def test_the_dock_shows_the_phase_the_count_and_the_time_left_during_a_real_run(widget, qtbot):
    seen = []
    show = widget.progress._show

    def record(phase, done, total):
        show(phase, done, total)
        seen.append((phase, done, total, widget.progress.bar.value(), widget.progress.bar.maximum(), widget.progress.label.text()))

    widget.progress._bridge.reported.disconnect()
    widget.progress._bridge.reported.connect(record)
    widget.add_painted_slices()
    widget.preparer.stop()  # no background choice: this run makes it, and shows it
    widget.segment("unpainted")
    assert not widget.progress.isHidden() and widget.progress.bar.maximum() == 0  # busy until the engine reports
    wait(widget, qtbot)
    choosing = [s for s in seen if s[0].startswith("choosing how to show images to the model")]
    segmenting = [s for s in seen if s[0] == "segmenting"]
    assert choosing and [s[1] for s in choosing] == sorted(s[1] for s in choosing) and choosing[-1][1] == choosing[-1][2]
    assert [(s[1], s[2], s[3], s[4]) for s in segmenting] == [(k, 6, k, 6) for k in range(1, 7)]  # 8 slices, 2 painted
    assert segmenting[2][5].startswith("segmenting 3/6, about ") and segmenting[2][5].endswith(" left")
    assert widget.progress.isHidden() and widget.status.text().startswith("done (")


def test_errors_reset_the_status_line(widget, messages):
    widget.status.setText("done (tiles at scale 0.5)")
    widget.segment("all")  # no examples yet
    assert widget.status.text().startswith("not started: no examples in the support set")
    assert messages[-1][0] == "show_error"


def test_a_swapped_image_and_mask_gets_the_explanation_within_a_second(make_napari_viewer, messages):
    import time

    image, labels = synthetic_stack(n_slices=2, size=256, seed=0)
    viewer = make_napari_viewer()
    viewer.add_image(labels.astype(np.uint8), name="masks")  # the masks opened as the image...
    viewer.add_labels((image / image.max() * 170).astype(np.uint8), name="grey")  # ...and the image as labels
    w = W.UniverSegWidget(viewer)
    w.image_combo.setCurrentText("masks")
    w.labels_combo.setCurrentText("grey")
    start = time.perf_counter()
    w.add_painted_slices()
    assert time.perf_counter() - start < 1.0 and len(w.support) == 0
    errors = [m for kind, m in messages if kind == "show_error"]
    assert errors and "looks like an image" in errors[0] and "did you swap the images and the masks" in errors[0]
