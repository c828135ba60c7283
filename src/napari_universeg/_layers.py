"""napari layer helpers of the dock widget (no Qt): the layers a run writes to and how they look,
the slice on display, the checks on a chosen pair of layers, and the lock on a layer during a run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from napari.layers import Image, Labels
from napari.utils.colormaps import CyclicLabelColormap, DirectLabelColormap

from ._slicing import Index
from .preprocess import label_dtype

OUTPUT_SUFFIX = " universeg"  # the output layer of image "cells" is "cells universeg"
# Results in saturated colours that napari's default (pastel, random) label colours of the painted
# layers do not use: yellow for class 1, then magenta, cyan, ... Painted layers keep napari's defaults.
RESULT_COLOURS = ("#ffe600", "#ff00ff", "#00ffff", "#ff8000", "#00ff4d", "#4d80ff", "#ff3333", "#ffffff")
STYLE_KEY = "universeg_style"  # in an output layer's metadata: the style it was given last


def spatial_shape(image: Image) -> tuple[int, ...]:
    """The image's shape without its colour axis (the shape of its labels)."""
    return tuple(image.data.shape[:-1] if image.rgb else image.data.shape)


def check_pair(image: Image | None, labels: Labels | None) -> tuple[Image, Labels]:
    """The image and labels layers, checked to be there and of the same shape; a ValueError
    with the message for the user otherwise."""
    if image is None or labels is None:
        raise ValueError("choose an image layer and a labels layer first")
    spatial = spatial_shape(image)
    if tuple(labels.data.shape) != spatial:
        extra = " (paint on the image's slices, not on its colour axis)" if image.rgb or len(labels.data.shape) == len(spatial) + 1 else ""
        raise ValueError(f"labels layer '{labels.name}' has shape {tuple(labels.data.shape)} but image '{image.name}' has {spatial}{extra}")
    return image, labels


def current_index(viewer, layer) -> Index:
    """Leading (non-spatial) indices of the slice of ``layer`` the viewer shows."""
    n_lead = layer.ndim - 2
    if n_lead <= 0:
        return ()
    coords = layer.world_to_data(viewer.dims.point)
    return tuple(int(np.clip(round(float(c)), 0, s - 1)) for c, s in zip(coords[:n_lead], layer.data.shape[:n_lead]))


def axis_labels(viewer, layer) -> tuple[str, ...]:
    """The viewer's names of the leading (non-spatial) axes of ``layer`` ("t", "z"; napari numbers them by default)."""
    n_lead = max(0, layer.ndim - (3 if getattr(layer, "rgb", False) else 2))
    labels = tuple(str(a) for a in viewer.dims.axis_labels)[viewer.dims.ndim - layer.ndim :]
    return labels[:n_lead]


def show_slice(viewer, layer, index: Index) -> None:
    """Move the viewer to slice ``index`` of ``layer``."""
    if not index:
        return
    world = layer.data_to_world(list(index) + [0, 0])
    for axis, value in enumerate(world[: len(index)]):
        viewer.dims.set_point(axis + viewer.dims.ndim - layer.ndim, value)


def output_layer(viewer, image: Image, max_label: int = 1, create: bool = True) -> Labels | None:
    """The Labels layer "<image> universeg" that runs write to, aligned with the image; made
    (dtype holding ``max_label``) if missing or of another shape, or None when not ``create``."""
    name = image.name + OUTPUT_SUFFIX
    shape = spatial_shape(image)
    if name in viewer.layers:
        layer = viewer.layers[name]
        if isinstance(layer, Labels) and tuple(layer.data.shape) == shape:
            return style_output(widened(layer, max_label), max_label) if create else layer
        name = f"{name} {len(viewer.layers)}"
    if not create:
        return None
    n = len(shape)
    with keep_selection(viewer):
        layer = viewer.add_labels(np.zeros(shape, label_dtype(max_label)), name=name, scale=image.scale[:n], translate=image.translate[:n])
    return style_output(layer, max_label)


def style_output(layer: Labels, max_label: int) -> Labels:
    """Give the output ``layer`` the look of results, unlike a painting (napari's random pastel
    colours, filled, opacity 0.7), for labels up to ``max_label``:

    - classes (``max_label`` up to len(RESULT_COLOURS)): one fixed saturated colour per class
      (RESULT_COLOURS), filled at half opacity so the image shows through;
    - more values than colours (object ids of the "instances" task, up to 2**31 - 1): one colour
      for all objects would hide where touching objects meet, and random colours would look like a
      painting, so outlines (contour 2) cycling through RESULT_COLOURS: every object has its own
      outline whatever colour its neighbour got.

    Done when the layer is made and when the kind changes (recorded in its metadata), so a colour
    the user picked for a layer stays from run to run."""
    style = "classes" if max_label <= len(RESULT_COLOURS) else "objects"
    if layer.metadata.get(STYLE_KEY) == style:
        return layer
    if style == "classes":
        layer.colormap = DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", **dict(enumerate(RESULT_COLOURS, 1))})
        layer.contour, layer.opacity = 0, 0.5
    else:
        layer.colormap = CyclicLabelColormap(colors=["transparent", *RESULT_COLOURS])
        layer.contour, layer.opacity = 2, 0.9
    layer.metadata[STYLE_KEY] = style
    return layer


@contextmanager
def keep_selection(viewer) -> Iterator[None]:
    """The layer selection (and the active layer: the one the user paints on) as it was before,
    after adding layers inside (napari selects a layer it adds)."""
    selection = viewer.layers.selection
    selected, active = set(selection), selection.active
    try:
        yield
    finally:
        kept = [layer for layer in selected if layer in viewer.layers]
        if active is not None and active in viewer.layers:
            selection.active = active
        else:
            selection.clear()
            selection.update(kept)


def widened(layer: Labels, max_label: int) -> Labels:
    """``layer``, its data cast to a wider integer dtype (same values) if it cannot hold ``max_label``."""
    if np.iinfo(layer.data.dtype).max < max_label:
        layer.data = np.asarray(layer.data).astype(label_dtype(max_label))
    return layer


def probability_layer(viewer, image: Image) -> Image:
    """The float32 Image layer "<image> universeg probability" (0..1), made if missing, shown: a
    heat map (magma, contrast limits 0..1, with its colour bar) added onto the image just above it,
    under the labels layers; the selected layer stays as it was."""
    name = f"{image.name}{OUTPUT_SUFFIX} probability"
    shape = spatial_shape(image)
    if name in viewer.layers and viewer.layers[name].data.shape == shape:
        layer = viewer.layers[name]
        layer.visible = True  # asked for again: shown again
        return layer
    n = len(shape)
    layer = Image(
        np.zeros(shape, np.float32),
        name=name,
        scale=image.scale[:n],
        translate=image.translate[:n],
        colormap="magma",
        contrast_limits=(0, 1),
        blending="additive",
        opacity=0.8,
    )
    layer.colorbar.visible = True
    with keep_selection(viewer):
        viewer.layers.insert(viewer.layers.index(image) + 1 if image in viewer.layers else len(viewer.layers), layer)
    return layer


@contextmanager
def run_lock(layer: Labels, refuse: Callable[[str], None]) -> Iterator[None]:
    """No painting and no undo on ``layer`` inside: a stroke or an undo in the middle of a run
    would mix its writes with the user's (one undo step per run). The layer stays in pan/zoom
    mode; a change of mode, undo and redo call ``refuse(message)`` instead. Restored on exit."""
    mode = layer.mode

    def refused(*_args) -> None:
        refuse(f"'{layer.name}' is locked while a run writes to it; paint or undo once it is done, or cancel it")

    def keep_pan_zoom(event=None) -> None:
        if layer.mode != "pan_zoom":
            layer.mode = "pan_zoom"
            refused()

    layer.mode = "pan_zoom"
    layer.events.mode.connect(keep_pan_zoom)
    layer.undo = layer.redo = refused  # what Ctrl+Z / Ctrl+Shift+Z call
    try:
        yield
    finally:
        layer.events.mode.disconnect(keep_pan_zoom)
        for name in ("undo", "redo"):
            layer.__dict__.pop(name, None)
        layer.mode = mode
