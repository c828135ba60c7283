"""The dock widget's background preparation: "auto" chooses its plan (leave-one-out on the
examples, tens of seconds on a CPU) and the model is adapted to the examples (Segmenter.prepare)
in a worker thread while the user is still painting, so that clicking Segment finds them made. It
starts a pause after the examples last changed and is cancelled when they change again; a run
that needs them meanwhile waits for them (Segmenter.plan, Segmenter.adapted_model)."""

from __future__ import annotations

from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer

DELAY_MS = 1000  # after the last added example: adding several in a row starts one choice


class PlanPreparer:
    """``schedule()`` after every change of the examples; ``stop()`` when the widget closes."""

    def __init__(self, widget):
        """``widget``: the UniverSegWidget (its layers, settings, device and session are read)."""
        self.widget = widget
        self.worker = None
        self.key = None  # (examples, options) the running choice is for
        self._cancel = False
        self._again = False
        self._timer = QTimer(widget, singleShot=True, interval=DELAY_MS)
        self._timer.timeout.connect(self._start)
        widget.destroyed.connect(self.stop)  # a viewer closed without closing the dock first

    def schedule(self) -> None:
        """Choose for the examples as they will be after a pause (a running choice is dropped)."""
        self._cancel = self.worker is not None
        self._timer.start()

    def keep_only(self, key) -> None:
        """A run for ``key`` starts: a choice for anything else is dropped, not waited for."""
        if self.worker is not None and key != self.key:
            self._cancel = True

    def stop(self) -> None:
        """Cancel everything (the widget closes)."""
        self._timer.stop()
        self._cancel, self._again = True, False

    def _start(self) -> None:
        if self.worker is not None:  # a cancelled choice is still winding down: start after it
            self._again = True
            return
        w = self.widget
        image = w.image_layer()
        if image is None or not w.support.classes():
            return
        try:
            options = w.settings.options()
        except ValueError:
            return  # the run will say what is wrong
        if options.plan_is_given() and options.adapt is False:
            return  # nothing to choose or learn
        shape = image.data.shape[-3:-1] if image.rgb else image.data.shape[-2:]
        session, device = w.session, w.device.currentText()
        self._cancel, self.key = False, session.run_key(options)
        progress = w.progress.report  # shown in the dock, marked as happening meanwhile

        def report(phase: str, done: int, total: int) -> None:
            progress(f"{phase} (while you paint)", done, total)

        self.worker = create_worker(session.prepare, shape, options, device, lambda: self._cancel, report)
        self.worker.finished.connect(self._finished)
        self.worker.errored.connect(lambda e: None)  # a run with these examples reports it
        self.worker.start()

    def _finished(self) -> None:
        self.worker, self.key = None, None
        if self.widget._worker is None:  # no run shows its own progress
            self.widget.progress.stop()
        if self._again:
            self._again = False
            self._timer.start()
