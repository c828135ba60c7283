"""The dock's progress line: what a run is doing ("choosing how to show images to the model 2/12",
"segmenting 4/9"), a bar, and the time left. The engine reports from a worker thread
(progress(phase, done, total), options.CHOOSING...); a Qt signal carries it to the GUI thread."""

from __future__ import annotations

import time

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QLabel, QProgressBar, QVBoxLayout, QWidget


class _Bridge(QObject):
    reported = Signal(str, int, int)  # emitted in any thread, delivered in the GUI thread


def time_left(seconds: float) -> str:
    """ "about 40 s left", "about 3 min left"."""
    return f"about {max(1, round(seconds))} s left" if seconds < 90 else f"about {round(seconds / 60)} min left"


class RunProgress(QWidget):
    """A label and a bar, hidden while nothing runs. ``report`` may be called from any thread."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        self._bridge = _Bridge()
        self._bridge.reported.connect(self._show)
        self._phase: str | None = None
        self._since = 0.0
        self.hide()

    def report(self, phase: str, done: int, total: int) -> None:
        """Thread-safe: shown once the GUI thread gets to it; nothing once the dock is gone."""
        try:
            self._bridge.reported.emit(phase, done, total)
        except RuntimeError:  # the dock was deleted while a worker still reports: nothing to show
            pass

    def start(self, text: str) -> None:
        """A run begins: a busy bar and ``text`` until the engine reports."""
        self._phase = None
        self.label.setText(text)
        self.bar.setRange(0, 0)  # busy
        self.show()

    def stop(self) -> None:
        """Nothing runs any more."""
        self._phase = None
        self.hide()

    def _show(self, phase: str, done: int, total: int) -> None:
        if phase != self._phase:
            self._phase, self._since = phase, time.perf_counter()
        self.show()
        self.bar.setRange(0, max(total, 0))
        self.bar.setValue(min(done, total))
        text = f"{phase} {done}/{total}" if total else f"{phase}..."
        if 0 < done < total:
            text += f", {time_left((time.perf_counter() - self._since) / done * (total - done))}"
        self.label.setText(text)
