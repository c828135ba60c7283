"""The "support set" group of the dock widget: the examples as a checkable list with thumbnails
(the image, the mask tinted over it), a count in the header, a sort control, and the buttons that
add, remove, clear, save and load them. Built to stay usable with 50 examples: six rows show by
default, the list grows with the dock and a grip under it makes it taller, and names too long for
the width are shortened in the middle (full text as tooltip) instead of scrolling sideways."""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import count
from pathlib import Path

import numpy as np
from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QIcon, QImage, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QStyle,
    QVBoxLayout,
)

from .preprocess import normalize, to_grey
from .support import Example, SupportSet

THUMB = 64  # thumbnail size, pixels (the longer side)
ROWS_SHOWN = 6  # rows the list shows when the dock has room; it can shrink to MIN_ROWS (small screens)
MIN_ROWS = 2
MAX_ROWS = 30  # the grip's limit
EDGE = (255, 40, 40)  # thumbnails: the mask's edges
ORDERS = ("order added", "source and slice")  # the sort control's choices


def button(text: str, slot: Callable, row: QHBoxLayout, key: str | None = None) -> QPushButton:
    """A push button calling ``slot``, added to ``row``; ``key``: its viewer shortcut, as a tooltip."""
    b = QPushButton(text)
    b.clicked.connect(lambda *_: slot())
    if key:
        b.setToolTip(f"{key} in the viewer")
    row.addWidget(b)
    return b


def natural_key(text: str) -> tuple:
    """Sort key of ``text`` with its numbers compared as numbers ("slice 9" before "slice 10")."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text))


class ExampleItem(QListWidgetItem):
    """One row of the list: ``example``, its full text (also its tooltip), and ``added``, its
    place in the order the examples were added."""

    def __init__(self, example: Example, added: int) -> None:
        values = example.classes
        what = f"labels: {','.join(map(str, values))}" if len(values) <= 6 else f"{len(values)} label values (objects, or classes)"
        self.full_text = f"{example.source}\n{what if values else 'background only'}"
        super().__init__(QIcon(thumbnail(example.image, example.mask)), self.full_text)
        self.example, self.added = example, added
        shape = "x".join(map(str, example.mask.shape))
        self.setToolTip(f"{self.full_text}\n{shape} pixels")
        self.setFlags(self.flags() | Qt.ItemIsUserCheckable)
        self.setCheckState(Qt.Checked if example.enabled else Qt.Unchecked)

    def sort_key(self, order: str) -> tuple:
        """Key for ``order`` (one of ORDERS)."""
        return (self.added,) if order == ORDERS[0] else (natural_key(self.example.source), self.added)


class ExampleList(QListWidget):
    """The list of examples: thumbnails of THUMB pixels, no horizontal scrolling (texts elided in
    the middle to the width, again on every resize), ROWS_SHOWN rows when there is room."""

    def __init__(self) -> None:
        super().__init__()
        self.setIconSize(QSize(THUMB, THUMB))
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.setTextElideMode(Qt.ElideMiddle)
        self.setWordWrap(False)
        self.setUniformItemSizes(True)
        self.setSpacing(1)
        self.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumHeight(self.height_for(MIN_ROWS))

    def row_height(self) -> int:
        """Height of one row: the thumbnail or two lines of text, with the spacing around it."""
        return max(THUMB, 2 * self.fontMetrics().lineSpacing()) + 2 * self.spacing() + 4

    def height_for(self, rows: int) -> int:
        """The list's height that shows ``rows`` rows."""
        return rows * self.row_height() + 2 * self.frameWidth()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(super().sizeHint().width(), self.height_for(ROWS_SHOWN))

    def text_width(self) -> int:
        """Width left for the text of a row: the row less the check box, the thumbnail and margins."""
        check = self.style().pixelMetric(QStyle.PM_IndicatorWidth)
        return max(20, self.viewport().width() - check - THUMB - 2 * self.spacing() - 24)

    def elide(self, item: ExampleItem) -> None:
        """Show ``item``'s text shortened in the middle to the width (the full text stays its tooltip)."""
        fm, width = self.fontMetrics(), self.text_width()
        text = "\n".join(fm.elidedText(line, Qt.ElideMiddle, width) for line in item.full_text.split("\n"))
        if item.text() != text:
            blocked = self.blockSignals(True)  # a new text is no change of the check box
            item.setText(text)
            self.blockSignals(blocked)

    def examples(self) -> list[ExampleItem]:
        """The rows, top to bottom."""
        return [self.item(i) for i in range(self.count())]

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        for item in self.examples():
            self.elide(item)


class HeightGrip(QFrame):
    """A thin bar under ``target``: dragging it makes ``target`` taller or shorter (its minimum
    height, between MIN_ROWS rows and what the screen can take)."""

    def __init__(self, target: ExampleList) -> None:
        super().__init__()
        self.target, self._start = target, None
        self.setFrameShape(QFrame.HLine)
        self.setFrameShadow(QFrame.Sunken)
        self.setFixedHeight(8)
        self.setCursor(Qt.SizeVerCursor)
        self.setToolTip("drag to make the list of examples taller or shorter")

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt API
        self._start = (screen_y(event), self.target.height())

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self._start is not None:
            y0, h0 = self._start
            self.drag_to(h0 + screen_y(event) - y0)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt API
        self._start = None

    def drag_to(self, height: int) -> None:
        """Make the list ``height`` pixels tall at least (clamped)."""
        self.target.setMinimumHeight(int(np.clip(height, self.target.height_for(MIN_ROWS), self.target.height_for(MAX_ROWS))))


def screen_y(event) -> int:
    """The mouse event's position on the screen, y (Qt 5 and Qt 6)."""
    pos = event.globalPosition().toPoint() if hasattr(event, "globalPosition") else event.globalPos()
    return pos.y()


class SupportBox(QGroupBox):
    """The examples of ``support`` as a list (one checkable row each, in the order chosen by the
    sort control); the add/save/load buttons call the given functions, remove and clear edit
    ``support`` here. The title counts the examples: "Examples (12)"."""

    def __init__(
        self,
        support: SupportSet,
        add_current: Callable[[], None],
        add_painted: Callable[[], None],
        save: Callable[[str], object],
        load: Callable[[str], object],
    ) -> None:
        super().__init__()
        self.support = support
        self._save, self._load = save, load
        self._added = count()
        self.setToolTip("the support set: the painted slices UniverSeg learns from (tick to use, untick to leave out)")
        policy = QSizePolicy(QSizePolicy.Preferred, QSizePolicy.Expanding)
        policy.setVerticalStretch(1)  # the dock's spare height comes here, not to its stretch at the end
        self.setSizePolicy(policy)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("sort by"))
        self.sort_combo = QComboBox()
        self.sort_combo.addItems(ORDERS)
        self.sort_combo.currentTextChanged.connect(lambda _: self.sort())
        row.addWidget(self.sort_combo)
        row.addStretch()
        layout.addLayout(row)
        self.list = ExampleList()
        self.list.itemChanged.connect(self._on_item_toggled)
        layout.addWidget(self.list, 1)
        self.grip = HeightGrip(self.list)
        layout.addWidget(self.grip)
        row = QHBoxLayout()
        self.add_current_btn = button("Add current slice", add_current, row, "Shift+A")
        self.add_painted_btn = button("Add all painted slices", add_painted, row)
        layout.addLayout(row)
        row = QHBoxLayout()
        button("Remove", self.remove_selected, row)
        button("Clear", self.clear, row)
        button("Save...", self._save_dialog, row)
        button("Load...", self._load_dialog, row)
        layout.addLayout(row)
        self.update_title()

    def add_item(self, ex: Example) -> None:
        """Show one more example (one just added to the support set), at its place in the order."""
        item = ExampleItem(ex, next(self._added))
        key = item.sort_key(self.sort_combo.currentText())
        keys = [other.sort_key(self.sort_combo.currentText()) for other in self.list.examples()]
        self.list.insertItem(sum(k < key for k in keys), item)
        self.list.elide(item)
        self.update_title()

    def sort(self) -> None:
        """Put the rows in the order chosen by the sort control (selection and check boxes kept)."""
        order = self.sort_combo.currentText()
        items = sorted(self.list.examples(), key=lambda it: it.sort_key(order))
        selected = {id(it) for it in self.list.selectedItems()}
        blocked = self.list.blockSignals(True)
        while self.list.count():
            self.list.takeItem(0)
        for item in items:
            self.list.addItem(item)
            item.setSelected(id(item) in selected)
        self.list.blockSignals(blocked)

    def update_title(self) -> None:
        """The header: "Examples (n)", with how many are switched off if any."""
        off = sum(not ex.enabled for ex in self.support)
        self.setTitle(f"Examples ({len(self.support)}" + (f", {off} switched off)" if off else ")"))

    def remove_selected(self) -> None:
        """Drop the selected examples."""
        for item in self.list.selectedItems():
            at = next((i for i, ex in enumerate(self.support) if ex is item.example), None)
            if at is not None:
                self.support.remove(at)
            self.list.takeItem(self.list.row(item))
        self.update_title()

    def clear(self) -> None:
        """Drop every example."""
        self.support.clear()
        self.list.clear()
        self.update_title()

    def _on_item_toggled(self, item: QListWidgetItem) -> None:
        if isinstance(item, ExampleItem):
            item.example.enabled = item.checkState() == Qt.Checked
            self.update_title()

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save support set", "support.npz", "Support set (*.npz)")
        if path:
            self._save(path)

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load support set", "", "Support set (*.npz)")
        if path:
            self._load(Path(path))


def thumbnail(image: np.ndarray, mask: np.ndarray, size: int = THUMB) -> QPixmap:
    """thumbnail_rgb(image, mask, size) as a QPixmap."""
    rgb = thumbnail_rgb(image, mask, size)
    qimg = QImage(rgb.data, rgb.shape[1], rgb.shape[0], 3 * rgb.shape[1], QImage.Format_RGB888)
    return QPixmap.fromImage(qimg.copy())


def thumbnail_rgb(image: np.ndarray, mask: np.ndarray, size: int = THUMB) -> np.ndarray:
    """A greyscale picture (uint8 (h, w, 3)) of ``image`` ((H, W) or (H, W, C)) with ``mask``
    ((H, W), > 0) tinted red and its edges (also between touching objects or classes) in bright
    red, ``size`` pixels on its longer side (smaller images enlarged, nearest neighbour)."""
    img = to_grey(image) if image.ndim == 3 else image.astype(np.float32)
    h, w = img.shape
    scale = size / max(h, w)
    ys = (np.arange(max(1, round(h * scale))) / scale).astype(int).clip(0, h - 1)
    xs = (np.arange(max(1, round(w * scale))) / scale).astype(int).clip(0, w - 1)
    g = (normalize(img[np.ix_(ys, xs)]) * 255).astype(np.uint8)
    m = np.asarray(mask)[np.ix_(ys, xs)]
    rgb = np.stack([g, g, g], -1)
    inside = m > 0
    rgb[inside] = (0.5 * rgb[inside] + [127, 0, 0]).astype(np.uint8)
    edge = np.zeros_like(inside)
    edge[:-1] |= m[:-1] != m[1:]
    edge[1:] |= m[1:] != m[:-1]
    edge[:, :-1] |= m[:, :-1] != m[:, 1:]
    edge[:, 1:] |= m[:, 1:] != m[:, :-1]
    rgb[edge & inside] = EDGE
    return np.ascontiguousarray(rgb)
