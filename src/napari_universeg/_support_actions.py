"""The dock widget's support-set actions: add the slice on display, every painted slice or a
corrected result as examples; save and load support-set files (also by drag and drop).

A mixin of UniverSegWidget (_widget.py), which provides ``viewer``, ``session``, ``support_box``,
``preparer``, ``status``, ``layer_choice``, ``task``, ``_pair()``, ``image_layer()``,
``current_index()`` and ``segment()``.
"""

from __future__ import annotations

from pathlib import Path

from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_warning

from . import _layers
from ._slicing import Index, painted_slices, read_slice
from ._widget_keys import SUPPORT_METADATA


class SupportActions:
    """Adding, accepting, saving and loading examples; every change is checked by the session and
    starts the background choice of the plan (PlanPreparer)."""

    def _add(self, image: Image, labels: Labels, idx: Index, source_layer: str | None = None) -> bool:
        try:
            ex = self.session.add(
                image.data, labels.data, idx, image_name=image.name, labels_name=source_layer or labels.name, channel=self.layer_choice.channel()
            )
        except ValueError as e:
            show_error(f"UniverSeg: {e}")
            return False
        self.support_box.add_item(ex)
        self.preparer.schedule()
        return True

    def add_current_slice(self) -> None:
        """Add the slice on display of the chosen image and labels as an example."""
        pair = self._pair()
        if pair is None:
            return
        image, labels = pair
        idx = self.current_index(labels)
        if not read_slice(labels.data, idx).any():
            show_warning("UniverSeg: this slice has no painted labels; it was added as an all-background example")
        if self._add(image, labels, idx):
            self.status.setText(f"{len(self.support)} example(s) in the support set; {self._update_task()}")

    def add_painted_slices(self) -> None:
        """Add every slice of the chosen labels that has a label as an example."""
        pair = self._pair()
        if pair is None:
            return
        image, labels = pair
        found = painted_slices(labels.data)
        if not found:
            show_error(f"UniverSeg: no painted slices in '{labels.name}': paint at least one slice first")
            return
        added = sum(self._add(image, labels, idx) for idx in found)
        self.status.setText(f"added {added} painted slice(s); {len(self.support)} example(s) in the support set; {self._update_task()}")

    def accept_current_slice(self) -> None:
        """Add the current slice of the output layer (corrected by the user) as an example, then
        segment the rest of a stack again, nearest slices first."""
        image = self.image_layer()
        out = _layers.output_layer(self.viewer, image, create=False) if image is not None else None
        if out is None:
            show_error("UniverSeg: no result to accept yet: segment first, correct the slice, then accept it")
            return
        idx = self.current_index(out)
        if self._add(image, out, idx, source_layer=f"accepted {out.name}"):
            self.status.setText(f"accepted {self.session.where(idx)}; {len(self.support)} example(s)")
            if idx:
                self.segment("rest")

    def clear_support(self) -> None:
        """Drop every example."""
        self.support_box.clear()

    def save_support(self, path: str | Path) -> Path | None:
        """Save the support set to ``path`` (.npz); the path written, or None if it is empty."""
        if not len(self.support):
            show_error("UniverSeg: the support set is empty: nothing to save")
            return None
        path = self.support.save(path)
        self.status.setText(f"saved {len(self.support)} example(s) to {path}")
        return path

    def load_support(self, path: str | Path) -> None:
        """Append the examples of a support-set file (each checked as when added)."""
        try:
            loaded = self.session.load(path)
        except ValueError as e:
            show_error(f"UniverSeg: {e}")
            return
        for ex in loaded:
            self.support_box.add_item(ex)
        self.preparer.schedule()
        self.status.setText(f"loaded {len(loaded)} example(s) from {Path(path).name}; {self._update_task()}")

    def _update_task(self) -> str:
        text = self.session.update_task()
        self.task.setCurrentText(self.support.task)
        return text

    def _import_reader_layers(self, event) -> None:
        """Support-set files opened by drag and drop arrive as layers; take their examples."""
        meta = getattr(event.value, "metadata", {}).get(SUPPORT_METADATA)
        if meta and meta.get("role") == "labels":
            self.load_support(meta["path"])
