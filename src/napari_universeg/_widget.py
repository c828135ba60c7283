"""The UniverSeg dock widget: the controls, napari layers in and out of the annotation session
(session.py), its predictions run in a napari worker, and notifications. A run writes to a Labels
layer "<image> universeg" (never over painted labels) in one undo step, locked while it runs.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from . import _layers
from ._background import PlanPreparer
from ._progress import RunProgress
from ._settings import CONTROLS, LayerChoice, SettingsBox
from ._slicing import Index
from ._support_actions import SupportActions
from ._support_list import SupportBox, button
from .session import AnnotationSession, SliceResult

if TYPE_CHECKING:
    import napari


class UniverSegWidget(SupportActions, QWidget):
    """Dock widget: the layers to use, the support set, the run settings and buttons, a status line."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = AnnotationSession()
        self._worker = None
        self._cancel = False
        self._output_layer_ref: Labels | None = None  # where the running job writes
        self._run: ExitStack | None = None  # the running job's undo group and layer lock
        self._live_timer = QTimer(self, singleShot=True, interval=300)
        self._live_timer.timeout.connect(lambda: self.segment("current"))
        self._build()
        self.preparer = PlanPreparer(self)  # "auto" chooses its plan, and the model adapts, while the user paints
        self.viewer.layers.events.inserted.connect(self._on_layers_changed)
        self.viewer.layers.events.removed.connect(self._on_layers_changed)
        self.viewer.layers.events.inserted.connect(self._import_reader_layers)
        self.viewer.dims.events.current_step.connect(self._on_step)
        self._on_layers_changed()
        for key, action in (("Shift-A", self.add_current_slice), ("Shift-R", lambda: self.segment("all")), ("Shift-E", self.accept_current_slice)):
            self.viewer.bind_key(key, lambda _viewer, a=action: a(), overwrite=True)

    @property
    def support(self):
        """The session's SupportSet."""
        return self.session.support

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        choice = self.layer_choice = LayerChoice()
        self.image_combo, self.labels_combo, self.channel_combo = choice.image_combo, choice.labels_combo, choice.channel_combo
        layout.addLayout(choice)
        self.support_box = SupportBox(self.support, self.add_current_slice, self.add_painted_slices, self.save_support, self.load_support)
        self.support_list = self.support_box.list
        layout.addWidget(self.support_box)
        self.settings = SettingsBox()
        for name in CONTROLS:  # task, support_size, ensemble, ..., live_check, adapt
            setattr(self, name, getattr(self.settings, name))
        self.task.activated.connect(lambda _: self.session.choose_task(self.task.currentText()))  # by the user only
        layout.addWidget(self.settings)
        row = QHBoxLayout()
        self.run_current_btn = button("Segment slice", lambda: self.segment("current"), row)
        self.run_all_btn = button("Segment all", lambda: self.segment("all"), row, "Shift+R")
        self.run_unpainted_btn = button("Unpainted only", lambda: self.segment("unpainted"), row)
        layout.addLayout(row)
        row = QHBoxLayout()
        self.cancel_btn = button("Cancel", self.cancel, row)
        self.cancel_btn.setEnabled(False)
        self.accept_btn = button("Accept slice as example", self.accept_current_slice, row, "Shift+E")
        self.suggest_btn = button("Suggest next slice", self.suggest_next_slice, row)
        layout.addLayout(row)
        self.status = QLabel("Paint a few slices, add them as examples, then segment.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.progress = RunProgress()  # what a run is doing: phase, bar, time left
        layout.addWidget(self.progress)
        layout.addStretch()

    # -- layers -----------------------------------------------------------------------------
    def _on_layers_changed(self, event=None) -> None:
        self.layer_choice.refresh(self.viewer.layers)
        if self._worker is not None and self._output_layer_ref is not None and self._output_layer_ref not in self.viewer.layers:
            self._output_layer_ref = None
            self.cancel()
            show_warning("UniverSeg: the output layer was removed during the run; the run was cancelled")

    def image_layer(self) -> Image | None:
        """The image layer chosen in the widget, if it is still in the viewer."""
        name = self.image_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def labels_layer(self) -> Labels | None:
        """The painted labels layer chosen in the widget, if it is still in the viewer."""
        name = self.labels_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def current_index(self, layer) -> Index:
        """Leading (non-spatial) indices of the slice the viewer shows for this layer."""
        return _layers.current_index(self.viewer, layer)

    def _pair(self) -> tuple[Image, Labels] | None:
        """The chosen image and labels layers, checked to be compatible (notification if not)."""
        try:
            return _layers.check_pair(self.image_layer(), self.labels_layer())
        except ValueError as e:
            self._refuse(str(e))
            return None

    def _refuse(self, message: str) -> None:
        """An error before any work: a notification, and the status line says it too."""
        show_error(f"UniverSeg: {message}")
        self.status.setText(f"not started: {message}")

    # -- segmentation -----------------------------------------------------------------------
    def segment(self, which: str = "all") -> None:
        """Segment the current slice, all slices, the unpainted ones, or the rest after an accept
        ("current" | "all" | "unpainted" | "rest"; AnnotationSession.slices_to_run) in a worker."""
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
        try:
            self.session.check_ready()
            options = self.settings.options()
        except ValueError as e:
            self._refuse(str(e))
            return
        fill_painted, here = self.fill_painted_check.isChecked(), self.current_index(labels)
        out = _layers.output_layer(self.viewer, image, create=False)
        todo = self.session.slices_to_run(
            which, image.data.shape, here, labels.data, rgb=image.rgb, output=out, image_name=image.name, fill_painted=fill_painted
        )
        if not todo:
            show_info("UniverSeg: every slice is painted already: nothing to segment")
            return
        max_label = 2**31 - 1 if options.task == "instances" else max(self.support.classes())  # object ids keep growing
        target = _layers.widened(labels, max_label) if fill_painted else _layers.output_layer(self.viewer, image, max_label)
        self._output_layer_ref = target
        prob_layer = _layers.probability_layer(self.viewer, image) if self.probability_check.isChecked() else None
        self._cancel = False
        channel, device = self.layer_choice.channel() if image.rgb else None, self.device.currentText()
        self.preparer.keep_only(self.session.run_key(options))
        self.session.axis_labels = _layers.axis_labels(self.viewer, image)
        results = self.session.predictions(
            image.data, todo, options, channel=channel, rgb=image.rgb, device=device, cancel=lambda: self._cancel, progress=self.progress.report
        )
        self._run = ExitStack()
        self._run.enter_context(self.session.undo_group(target))
        self._run.enter_context(_layers.run_lock(target, lambda message: show_info(f"UniverSeg: {message}")))

        def on_result(result: SliceResult) -> None:
            if target not in self.viewer.layers:
                self.cancel()
            elif self.session.write(target, result, fill_painted) and prob_layer is not None and prob_layer in self.viewer.layers:
                prob_layer.data[result.index] = result.probability
                prob_layer.refresh()

        def job():
            yield from results  # in the worker thread: the model loads and the slices are read here

        self._set_running(True, f"segmenting {len(todo)} slice(s)...")
        self.progress.start("loading the model..." if self.session.loaded(device) is None else f"segmenting 0/{len(todo)}")
        self._worker = create_worker(job)
        self._worker.yielded.connect(on_result)
        self._worker.errored.connect(self._on_error)
        self._worker.finished.connect(self._on_finished)
        self._worker.start()

    def cancel(self) -> None:
        """Stop the running job after the slice in progress."""
        self._cancel = True
        if self._worker is not None:
            self._worker.quit()

    def _on_finished(self) -> None:
        if self._run is not None:
            self._run.close()  # unlock the layer, close the undo group
            self._run = None
        self._worker = None
        self.progress.stop()
        notes = self.session.notes
        if notes:
            show_warning(f"UniverSeg: {len(notes)} slice(s) had nothing to segment and were left empty: {'; '.join(notes[:3])}")
        if not self.status.text().startswith("stopped"):
            self._set_running(False, self.session.summary(self._cancel))

    def _on_error(self, error: Exception) -> None:
        show_error(f"UniverSeg: {error}")
        self._set_running(False, f"stopped: {error}")

    def _set_running(self, running: bool, message: str) -> None:
        for b in (self.run_current_btn, self.run_all_btn, self.run_unpainted_btn, self.accept_btn):
            b.setEnabled(not running)
        self.cancel_btn.setEnabled(running)
        self.status.setText(message)

    def suggest_next_slice(self) -> Index | None:
        """Move the viewer to the segmented slice with the most expected errors that is not an
        example, counting slices next to an example less in a stack (AnnotationSession.suggest);
        returns its index."""
        image = self.image_layer()
        idx = self.session.suggest() if image is None else self.session.suggest(image.data, image.rgb)
        if idx is None:
            show_info("UniverSeg: segment all slices first; then I can point to the least certain one")
            return None
        if image is not None:
            _layers.show_slice(self.viewer, image, idx)
        self.status.setText(
            f"least certain: {self.session.where(idx)} (about {self.session.unsure[idx]:.0%} of its pixels may be wrong); correct it and accept it as an example"
        )
        return idx

    def _on_step(self, event=None) -> None:
        if self.live_check.isChecked() and self.support.enabled():
            self._live_timer.start()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.cancel()
        self.preparer.stop()
        super().closeEvent(event)
