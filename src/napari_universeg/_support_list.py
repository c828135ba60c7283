"""The "support set" group of the dock widget: the examples as a checkable list with thumbnails,
and the buttons that add, remove, clear, save and load them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QIcon, QImage, QPixmap
from qtpy.QtWidgets import QFileDialog, QGroupBox, QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout

from .preprocess import normalize, to_grey
from .support import Example, SupportSet

THUMB = 64  # thumbnail size, pixels


def button(text: str, slot: Callable, row: QHBoxLayout, key: str | None = None) -> QPushButton:
    """A push button calling ``slot``, added to ``row``; ``key``: its viewer shortcut, as a tooltip."""
    b = QPushButton(text)
    b.clicked.connect(lambda *_: slot())
    if key:
        b.setToolTip(f"{key} in the viewer")
    row.addWidget(b)
    return b


class SupportBox(QGroupBox):
    """The examples of ``support`` as a list (one checkable item each, in the same order); the
    add/save/load buttons call the given functions, remove and clear edit ``support`` here."""

    def __init__(
        self,
        support: SupportSet,
        add_current: Callable[[], None],
        add_painted: Callable[[], None],
        save: Callable[[str], object],
        load: Callable[[str], object],
    ) -> None:
        super().__init__("support set (examples)")
        self.support = support
        self._save, self._load = save, load
        layout = QVBoxLayout(self)
        self.list = QListWidget()
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.itemChanged.connect(self._on_item_toggled)
        layout.addWidget(self.list)
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

    def add_item(self, ex: Example) -> None:
        """Show one more example (the last of the support set)."""
        values = ex.classes
        what = f"labels: {','.join(map(str, values))}" if len(values) <= 6 else f"{len(values)} label values (objects, or classes)"
        item = QListWidgetItem(QIcon(thumbnail(ex.image, ex.mask)), f"{ex.source}\n{what if values else 'background only'}")
        item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
        item.setCheckState(Qt.Checked if ex.enabled else Qt.Unchecked)
        self.list.addItem(item)

    def remove_selected(self) -> None:
        """Drop the selected examples."""
        for item in sorted(self.list.selectedItems(), key=self.list.row, reverse=True):
            row = self.list.row(item)
            self.support.remove(row)
            self.list.takeItem(row)

    def clear(self) -> None:
        """Drop every example."""
        self.support.clear()
        self.list.clear()

    def _on_item_toggled(self, item: QListWidgetItem) -> None:
        row = self.list.row(item)
        if 0 <= row < len(self.support):
            self.support[row].enabled = item.checkState() == Qt.Checked

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save support set", "support.npz", "Support set (*.npz)")
        if path:
            self._save(path)

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load support set", "", "Support set (*.npz)")
        if path:
            self._load(Path(path))


def thumbnail(image: np.ndarray, mask: np.ndarray) -> QPixmap:
    """A small greyscale picture of ``image`` ((H, W) or (H, W, C)) with ``mask`` ((H, W), > 0)
    tinted red, at most THUMB pixels a side."""
    img = to_grey(image) if image.ndim == 3 else image.astype(np.float32)
    step = max(1, max(img.shape) // THUMB)
    g = (normalize(img[::step, ::step]) * 255).astype(np.uint8)
    m = mask[::step, ::step] > 0
    rgb = np.stack([g, g, g], -1)
    rgb[m] = (0.5 * rgb[m] + [127, 0, 0]).astype(np.uint8)
    rgb = np.ascontiguousarray(rgb)
    qimg = QImage(rgb.data, rgb.shape[1], rgb.shape[0], 3 * rgb.shape[1], QImage.Format_RGB888)
    return QPixmap.fromImage(qimg.copy())
