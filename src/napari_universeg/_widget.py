"""The UniverSeg dock widget: build a support set from painted slices, segment in the background.

The engine (Segmenter, SupportSet) does the work; this module only connects it to napari layers.
Results go to a separate Labels layer "<image> universeg" through ``data_setitem`` inside one
``block_history`` per run, so Ctrl+Z undoes a run and painted labels are never overwritten.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QSize, Qt, QTimer
from qtpy.QtGui import QIcon, QImage, QPixmap
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ._slicing import Index, SliceView, all_slices, painted_slices, read_slice
from .options import DEVICES, MAX_ENSEMBLE, MAX_SUPPORT_SIZE, METHODS, MODES, PredictOptions, parse_int_list
from .preprocess import label_dtype
from .suggest import expected_dice, next_slice
from .support import SupportSet

if TYPE_CHECKING:
    import napari

from ._widget_keys import SUPPORT_METADATA

THUMB = 64


class UniverSegWidget(QWidget):
    """Dock widget. ``synchronous = True`` runs jobs in the calling thread (used by tests)."""

    synchronous = False

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.support = SupportSet()
        self._segmenter = None
        self._segmenter_key = None
        self._worker = None
        self._cancel = False
        self._output_layer_ref: Labels | None = None  # where the running job writes
        self._history = None  # the running job's block_history context (one undo step per run)
        self._expected: dict[Index, float] = {}  # slice -> expected Dice of its last result (suggest.py)
        self._written: dict[tuple[str, Index], str] = {}  # (layer, slice) -> digest of the labels a run wrote
        self._last_plan = None  # how the last run showed images to the model (what "auto" chose)
        self._notes: list[str] = []  # blank slices of the running job, shown once at its end
        self._locked: tuple[Labels, str] | None = None  # the layer a run writes to, and its mode before
        self._live_timer = QTimer(self, singleShot=True, interval=300)
        self._live_timer.timeout.connect(lambda: self.segment("current"))
        self._build()
        self.viewer.layers.events.inserted.connect(self._on_layers_changed)
        self.viewer.layers.events.removed.connect(self._on_layers_changed)
        self.viewer.layers.events.inserted.connect(self._import_reader_layers)
        self.viewer.dims.events.current_step.connect(self._on_step)
        self._on_layers_changed()
        self._bind_keys()

    # -- layout -----------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.image_combo, self.labels_combo = QComboBox(), QComboBox()
        self.channel_combo = QComboBox()
        self.channel_combo.addItems(["luminance", "0 (red)", "1 (green)", "2 (blue)"])
        form.addRow("image", self.image_combo)
        form.addRow("painted labels", self.labels_combo)
        form.addRow("RGB channel", self.channel_combo)
        layout.addLayout(form)

        box = QGroupBox("support set (examples)")
        bl = QVBoxLayout(box)
        self.support_list = QListWidget()
        self.support_list.setIconSize(QSize(THUMB, THUMB))
        self.support_list.itemChanged.connect(self._on_item_toggled)
        bl.addWidget(self.support_list)
        row = QHBoxLayout()
        self.add_current_btn = self._button("Add current slice", self.add_current_slice, row, "Shift+A")
        self.add_painted_btn = self._button("Add all painted slices", self.add_painted_slices, row)
        bl.addLayout(row)
        row = QHBoxLayout()
        self._button("Remove", self.remove_selected, row)
        self._button("Clear", self.clear_support, row)
        self._button("Save...", self._save_dialog, row)
        self._button("Load...", self._load_dialog, row)
        bl.addLayout(row)
        layout.addWidget(box)

        box = QGroupBox("settings")
        form = QFormLayout(box)
        defaults = PredictOptions()
        self.support_size = QSpinBox(minimum=1, maximum=MAX_SUPPORT_SIZE, value=defaults.support_size)
        self.ensemble = QSpinBox(minimum=1, maximum=MAX_ENSEMBLE, value=defaults.ensemble)
        self.threshold = QDoubleSpinBox(minimum=0.01, maximum=0.99, singleStep=0.05, value=defaults.threshold)
        self.classes = QLineEdit(placeholderText="all (e.g. 1,2)")
        self.mode = QComboBox()
        self.mode.addItems(list(MODES))
        self.method = QComboBox()
        self.method.addItems(["auto", *METHODS])
        self.method.setToolTip(
            "who predicts: UniverSeg, a pixel classifier (random forest, as in ilastik), their blend, "
            "or auto: whichever predicts your examples best from the others (with mode auto)"
        )
        self.scale = QDoubleSpinBox(minimum=0.0, maximum=4.0, singleStep=0.05, value=0.0, specialValueText="auto")
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.probability_check = QCheckBox("also show probabilities")
        self.fill_painted_check = QCheckBox("write into unpainted slices of the painted layer")
        self.live_check = QCheckBox("live: segment each slice I move to")
        self.adapt_check = QCheckBox("adapt the model to my examples (slower first run)")
        self.adapt_check.setToolTip("fine-tune a copy of UniverSeg for a few seconds on your examples before segmenting; one class at a time")
        for label, w in (
            ("max support size", self.support_size),
            ("ensemble", self.ensemble),
            ("threshold", self.threshold),
            ("classes", self.classes),
            ("predictor", self.method),
            ("mode", self.mode),
            ("tiled scale", self.scale),
            ("device", self.device),
        ):
            form.addRow(label, w)
        for w in (self.probability_check, self.fill_painted_check, self.live_check, self.adapt_check):
            form.addRow(w)
        layout.addWidget(box)

        row = QHBoxLayout()
        self.run_current_btn = self._button("Segment slice", lambda: self.segment("current"), row)
        self.run_all_btn = self._button("Segment all", lambda: self.segment("all"), row, "Shift+R")
        self.run_unpainted_btn = self._button("Unpainted only", lambda: self.segment("unpainted"), row)
        layout.addLayout(row)
        row = QHBoxLayout()
        self.cancel_btn = self._button("Cancel", self.cancel, row)
        self.cancel_btn.setEnabled(False)
        self.accept_btn = self._button("Accept slice as example", self.accept_current_slice, row, "Shift+E")
        self.suggest_btn = self._button("Suggest next slice", self.suggest_next_slice, row)
        layout.addLayout(row)
        self.status = QLabel("Paint a few slices, add them as examples, then segment.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch()

    def _button(self, text: str, slot, row: QHBoxLayout, key: str | None = None) -> QPushButton:
        b = QPushButton(text)
        b.clicked.connect(slot)
        if key:
            b.setToolTip(f"{key} in the viewer")
        row.addWidget(b)
        return b

    def _bind_keys(self) -> None:
        for key, action in (("Shift-A", self.add_current_slice), ("Shift-R", lambda: self.segment("all")), ("Shift-E", self.accept_current_slice)):
            self.viewer.bind_key(key, lambda _viewer, a=action: a(), overwrite=True)

    # -- layers -----------------------------------------------------------------------------
    def _on_layers_changed(self, event=None) -> None:
        for combo, kind in ((self.image_combo, Image), (self.labels_combo, Labels)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            names = [layer.name for layer in self.viewer.layers if isinstance(layer, kind) and not layer.name.endswith(" universeg")]
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            combo.blockSignals(False)
        if self._worker is not None and self._output_layer_ref is not None and self._output_layer_ref not in self.viewer.layers:
            self._output_layer_ref = None
            self.cancel()
            show_warning("UniverSeg: the output layer was removed during the run; the run was cancelled")

    def image_layer(self) -> Image | None:
        name = self.image_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def labels_layer(self) -> Labels | None:
        name = self.labels_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _channel(self) -> int | None:
        i = self.channel_combo.currentIndex()
        return None if i == 0 else i - 1

    def _pair(self) -> tuple[Image, Labels] | None:
        """The chosen image and labels layers, checked to be compatible (notification if not)."""
        image, labels = self.image_layer(), self.labels_layer()
        if image is None or labels is None:
            show_error("UniverSeg: choose an image layer and a labels layer first")
            return None
        spatial = image.data.shape[:-1] if image.rgb else image.data.shape
        if tuple(labels.data.shape) != tuple(spatial):
            extra = " (paint on the image's slices, not on its colour axis)" if image.rgb or len(labels.data.shape) == len(spatial) + 1 else ""
            show_error(
                f"UniverSeg: labels layer '{labels.name}' has shape {tuple(labels.data.shape)} but image '{image.name}' has {tuple(spatial)}{extra}"
            )
            return None
        return image, labels

    def current_index(self, layer) -> Index:
        """Leading (non-spatial) indices of the slice the viewer shows for this layer."""
        n_lead = layer.ndim - 2
        if n_lead <= 0:
            return ()
        coords = layer.world_to_data(self.viewer.dims.point)
        return tuple(int(np.clip(round(float(c)), 0, s - 1)) for c, s in zip(coords[:n_lead], layer.data.shape[:n_lead]))

    # -- support set ------------------------------------------------------------------------
    def _add(self, image: Image, labels: Labels, idx: Index, source_layer: str | None = None) -> bool:
        img = read_slice(image.data, idx)
        mask = read_slice(labels.data, idx)
        where = f"{source_layer or labels.name} / {image.name}" + (f", slice {idx if len(idx) > 1 else idx[0]}" if idx else "")
        try:
            ex = self.support.add(img, mask, source=where, channel=self._channel(), meta={"image": image.name, "index": list(idx)})
        except ValueError as e:
            show_error(f"UniverSeg: cannot add {where}: {e}")
            return False
        self._add_item(ex)
        return True

    def add_current_slice(self) -> None:
        pair = self._pair()
        if pair is None:
            return
        image, labels = pair
        idx = self.current_index(labels)
        if not np.asarray(read_slice(labels.data, idx)).any():
            show_warning("UniverSeg: this slice has no painted labels; it was added as an all-background example")
        if self._add(image, labels, idx):
            self._set_status(f"{len(self.support)} example(s) in the support set")

    def add_painted_slices(self) -> None:
        pair = self._pair()
        if pair is None:
            return
        image, labels = pair
        found = painted_slices(labels.data)
        if not found:
            show_error(f"UniverSeg: no painted slices in '{labels.name}': paint at least one slice first")
            return
        added = sum(self._add(image, labels, idx) for idx in found)
        self._set_status(f"added {added} painted slice(s); {len(self.support)} example(s) in the support set")

    def accept_current_slice(self) -> None:
        """Add the current slice of the output layer (corrected by the user) as an example."""
        image = self.image_layer()
        out = self._output_layer(image, create=False) if image is not None else None
        if out is None:
            show_error("UniverSeg: no result to accept yet: segment first, correct the slice, then accept it")
            return
        idx = self.current_index(out)
        if self._add(image, out, idx, source_layer=f"accepted {out.name}"):
            self._set_status(f"accepted slice {idx}; {len(self.support)} example(s)")
            if idx:  # a stack: segment the rest again, nearest slices first
                self.segment("rest")

    def remove_selected(self) -> None:
        for item in sorted(self.support_list.selectedItems(), key=self.support_list.row, reverse=True):
            row = self.support_list.row(item)
            self.support.remove(row)
            self.support_list.takeItem(row)

    def clear_support(self) -> None:
        self.support.clear()
        self.support_list.clear()

    def save_support(self, path: str | Path) -> Path | None:
        if not len(self.support):
            show_error("UniverSeg: the support set is empty: nothing to save")
            return None
        path = self.support.save(path)
        self._set_status(f"saved {len(self.support)} example(s) to {path}")
        return path

    def load_support(self, path: str | Path) -> None:
        try:
            loaded = SupportSet.load(path)
        except ValueError as e:
            show_error(f"UniverSeg: {e}")
            return
        for ex in loaded:
            self.support.examples.append(ex)
            self._add_item(ex)
        self._set_status(f"loaded {len(loaded)} example(s) from {Path(path).name}")

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save support set", "support.npz", "Support set (*.npz)")
        if path:
            self.save_support(path)

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load support set", "", "Support set (*.npz)")
        if path:
            self.load_support(path)

    def _import_reader_layers(self, event) -> None:
        """Support-set files opened by drag and drop arrive as layers; take their examples."""
        layer = event.value
        meta = layer.metadata.get(SUPPORT_METADATA) if hasattr(layer, "metadata") else None
        if meta and meta.get("role") == "labels":
            self.load_support(meta["path"])

    def _add_item(self, ex) -> None:
        classes = ",".join(map(str, ex.classes)) or "none (background only)"
        item = QListWidgetItem(QIcon(_thumbnail(ex.image, ex.mask)), f"{ex.source}\nclasses: {classes}")
        item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
        item.setCheckState(Qt.Checked if ex.enabled else Qt.Unchecked)
        self.support_list.addItem(item)

    def _on_item_toggled(self, item: QListWidgetItem) -> None:
        row = self.support_list.row(item)
        if 0 <= row < len(self.support):
            self.support[row].enabled = item.checkState() == Qt.Checked

    # -- segmentation -----------------------------------------------------------------------
    def _options(self):
        text = self.classes.text().strip()
        classes = parse_int_list(text, "classes") if text and text != "all" else None
        return PredictOptions(
            support_size=self.support_size.value(),
            ensemble=self.ensemble.value(),
            threshold=self.threshold.value(),
            classes=classes,
            mode=self.mode.currentText(),
            scale=self.scale.value() or None,
            method=self.method.currentText(),
            adapt=self.adapt_check.isChecked(),
        )

    def _get_segmenter(self):
        """Load the model once, lazily (in the worker thread on the first run)."""
        from .predict import Segmenter

        key = (self.device.currentText(),)
        if self._segmenter is None or self._segmenter_key != key:
            self._segmenter = Segmenter.from_weights("default", device=key[0])
            self._segmenter_key = key
        return self._segmenter

    def _output_layer(self, image: Image, create: bool = True) -> Labels | None:
        name = f"{image.name} universeg"
        shape = image.data.shape[:-1] if image.rgb else image.data.shape
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            if isinstance(layer, Labels) and tuple(layer.data.shape) == tuple(shape):
                return layer
            if not create:
                return None
            name = f"{name} {len(self.viewer.layers)}"
        if not create:
            return None
        dtype = label_dtype(max(self.support.classes() or [1]))
        return self.viewer.add_labels(
            np.zeros(shape, dtype), name=name, scale=image.scale[: len(shape)], translate=image.translate[: len(shape)], opacity=0.6
        )

    def segment(self, which: str = "all") -> None:
        """Segment the current slice, all slices, the unpainted ones, or the rest after an accept
        ("current" | "all" | "unpainted" | "rest"), nearest to the current slice first. "rest" is
        every slice of the output layer that is not an example and that the user has not edited
        since a run wrote it."""
        if self._worker is not None:
            if which == "current" and self.live_check.isChecked():
                self.cancel()  # live mode: drop the stale job, retry once it has stopped
                self._live_timer.start()
            else:
                show_info("UniverSeg: a run is in progress; cancel it first")
            return
        pair = self._pair()
        if pair is None:
            return
        image, labels = pair
        if not self.support.enabled():
            show_error("UniverSeg: no examples in the support set: paint a slice and click 'Add current slice'")
            return
        if not self.support.classes():
            show_error("UniverSeg: every example is background only (empty masks): paint the objects on at least one example")
            return
        try:
            options = self._options()
            options.validate()
        except ValueError as e:
            show_error(f"UniverSeg: {e}")
            return
        shape = image.data.shape
        slices = all_slices(shape, image.rgb)
        here = self.current_index(labels)
        if which == "current":
            todo = [here]
        elif which == "unpainted":
            painted = set(painted_slices(labels.data))
            todo = [s for s in slices if s not in painted]
        elif which == "rest":
            out = self._output_layer(image, create=False)
            examples = {tuple(ex.meta.get("index", ())) for ex in self.support if ex.meta.get("image") == image.name}
            todo = [s for s in slices if s not in examples and (out is None or not self._edited(out, s))]
        else:
            todo = slices
        todo.sort(key=lambda s: (sum(abs(a - b) for a, b in zip(s, here)), s))
        if not todo:
            show_info("UniverSeg: every slice is painted already: nothing to segment")
            return
        fill_painted = self.fill_painted_check.isChecked()
        target = labels if fill_painted else self._output_layer(image)
        if fill_painted:
            unpainted = set(todo) - set(painted_slices(labels.data))
            todo = [s for s in todo if s in unpainted]
        self._output_layer_ref = target
        prob_layer = self._probability_layer(image) if self.probability_check.isChecked() else None
        view = SliceView(image.data, todo)
        support = SupportSet(self.support.enabled())
        channel = self._channel() if image.rgb else None
        self._cancel = False
        self._last_plan = None
        self._notes = []
        self._history = target.block_history()
        self._history.__enter__()
        self._lock(target)

        def job():
            seg = self._get_segmenter()
            for pred in seg.iter_predict(support, view, options, channel=channel, cancel=lambda: self._cancel):
                yield view.indices[pred.index], pred

        def on_result(item) -> None:
            idx, pred = item
            if target not in self.viewer.layers:
                self.cancel()
                return
            if fill_painted and np.asarray(read_slice(target.data, idx)).any():
                return  # painted by the user meanwhile: keep their labels
            _write_slice(target, idx, pred.labels)
            self._written[target.name, idx] = _digest(np.asarray(read_slice(target.data, idx)))
            if prob_layer is not None and prob_layer in self.viewer.layers:
                prob_layer.data[idx] = pred.probability
                prob_layer.refresh()
            self._expected[idx] = expected_dice(pred.labels, pred.probability)
            if pred.note:
                self._notes.append(pred.note.replace(f"slice {pred.index}", f"slice {idx if len(idx) != 1 else idx[0]}", 1))
            self._last_plan = pred.plan

        self._set_running(True, f"segmenting {len(todo)} slice(s)...")
        if self.synchronous:
            try:
                for item in job():
                    on_result(item)
                    if self._cancel:
                        break
            except Exception as e:  # noqa: BLE001 - shown to the user, never a traceback dialog
                self._on_error(e)
            self._on_finished()
            return
        self._worker = create_worker(job, _progress={"total": len(todo), "desc": "UniverSeg"})
        self._worker.yielded.connect(on_result)
        self._worker.errored.connect(self._on_error)
        self._worker.finished.connect(self._on_finished)
        self._worker.start()

    def _probability_layer(self, image: Image) -> Image:
        name = f"{image.name} universeg probability"
        shape = image.data.shape[:-1] if image.rgb else image.data.shape
        if name in self.viewer.layers and self.viewer.layers[name].data.shape == shape:
            return self.viewer.layers[name]
        return self.viewer.add_image(
            np.zeros(shape, np.float32),
            name=name,
            scale=image.scale[: len(shape)],
            translate=image.translate[: len(shape)],
            colormap="magma",
            contrast_limits=(0, 1),
            visible=False,
        )

    def cancel(self) -> None:
        self._cancel = True
        if self._worker is not None:
            self._worker.quit()

    def _on_error(self, error: Exception) -> None:
        show_error(f"UniverSeg: {error}")

    def _lock(self, layer: Labels) -> None:
        """No painting and no undo on the layer a run writes to, until the run ends: a stroke or an
        undo in the middle would mix the run's writes with the user's (one undo step per run).
        The layer stays in pan/zoom mode; undo/redo show a message instead."""
        self._locked = (layer, layer.mode)

        def refuse(*_args) -> None:
            show_info(f"UniverSeg: '{layer.name}' is locked while a run writes to it; paint or undo once it is done, or cancel it")

        def keep_pan_zoom(event=None) -> None:
            if layer.mode != "pan_zoom":
                layer.mode = "pan_zoom"
                refuse()

        layer.mode = "pan_zoom"
        layer.events.mode.connect(keep_pan_zoom)
        layer.undo = layer.redo = refuse  # what Ctrl+Z / Ctrl+Shift+Z call
        self._keep_pan_zoom = keep_pan_zoom

    def _unlock(self) -> None:
        if self._locked is None:
            return
        layer, mode = self._locked
        self._locked = None
        layer.events.mode.disconnect(self._keep_pan_zoom)
        for name in ("undo", "redo"):
            layer.__dict__.pop(name, None)
        layer.mode = mode

    def _on_finished(self) -> None:
        self._unlock()
        if self._history is not None:
            self._history.__exit__(None, None, None)
            self._history = None
        self._worker = None
        if self._notes:
            show_warning(f"UniverSeg: {len(self._notes)} slice(s) had nothing to segment and were left empty: {'; '.join(self._notes[:3])}")
        cancelled = self._cancel
        plan = self._last_plan
        how = f" ({plan.describe()})" if plan is not None else ""
        estimate = f"; {plan.estimate_message(len(self.support.enabled()))}" if plan is not None and plan.estimate is not None else ""
        self._set_running(
            False, "cancelled" if cancelled else f"done{how}{estimate}. Correct a slice and 'Accept slice as example' to improve the rest"
        )

    def _set_running(self, running: bool, message: str) -> None:
        for b in (self.run_current_btn, self.run_all_btn, self.run_unpainted_btn, self.accept_btn):
            b.setEnabled(not running)
        self.cancel_btn.setEnabled(running)
        self._set_status(message)

    def _set_status(self, text: str) -> None:
        self.status.setText(text)

    def _edited(self, layer: Labels, idx: Index) -> bool:
        """True if the slice differs from what the last run wrote there (the user corrected it)."""
        written = self._written.get((layer.name, idx))
        return written is not None and _digest(np.asarray(read_slice(layer.data, idx))) != written

    def suggest_next_slice(self) -> Index | None:
        """Move the viewer to the slice of the last run with the lowest expected Dice that is not
        an example (suggest.py)."""
        idx = next_slice(self._expected, (tuple(ex.meta.get("index", ())) for ex in self.support))
        if idx is None:
            show_info("UniverSeg: segment all slices first; then I can point to the least certain one")
            return None
        image = self.image_layer()
        if image is not None and idx:
            world = image.data_to_world(list(idx) + [0, 0])
            for axis, value in enumerate(world[: len(idx)]):
                self.viewer.dims.set_point(axis + self.viewer.dims.ndim - image.ndim, value)
        self._set_status(f"least certain slice: {idx} (expected Dice {self._expected[idx]:.2f}); correct it and accept it as an example")
        return idx

    def _on_step(self, event=None) -> None:
        if self.live_check.isChecked() and self.support.enabled():
            self._live_timer.start()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.cancel()
        super().closeEvent(event)


def _digest(labels: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(labels).data, digest_size=16).hexdigest()


def _write_slice(layer: Labels, idx: Index, values: np.ndarray) -> None:
    """Write one slice through data_setitem, so the change is recorded for undo."""
    yy, xx = np.indices(values.shape)
    indices = tuple(np.full(values.size, i) for i in idx) + (yy.ravel(), xx.ravel())
    layer.data_setitem(indices, values.ravel().astype(layer.data.dtype))


def _thumbnail(image: np.ndarray, mask: np.ndarray) -> QPixmap:
    """A small greyscale image with its mask tinted red."""
    from .preprocess import normalize, to_grey

    img = to_grey(image) if image.ndim == 3 else image.astype(np.float32)
    step = max(1, max(img.shape) // THUMB)
    g = (normalize(img[::step, ::step]) * 255).astype(np.uint8)
    m = mask[::step, ::step] > 0
    rgb = np.stack([g, g, g], -1)
    rgb[m] = (0.5 * rgb[m] + [127, 0, 0]).astype(np.uint8)
    rgb = np.ascontiguousarray(rgb)
    qimg = QImage(rgb.data, rgb.shape[1], rgb.shape[0], 3 * rgb.shape[1], QImage.Format_RGB888)
    return QPixmap.fromImage(qimg.copy())
