"""Writer: File > Save Selected Layers with one image and one labels layer -> a support-set file
holding every painted slice of the labels layer with its image slice."""

from __future__ import annotations

from ._slicing import painted_slices, read_slice
from .support import SupportSet


def write_support(path: str, layer_data: list) -> list[str]:
    images = [(d, m) for d, m, t in layer_data if t == "image"]
    labels = [(d, m) for d, m, t in layer_data if t == "labels"]
    if len(images) != 1 or len(labels) != 1:
        raise ValueError("select exactly one image layer and one labels layer to save a support set")
    (image, image_meta), (mask, mask_meta) = images[0], labels[0]
    rgb = bool(image_meta.get("rgb"))
    spatial = image.shape[:-1] if rgb else image.shape
    if tuple(mask.shape) != tuple(spatial):
        raise ValueError(f"labels shape {tuple(mask.shape)} does not match image shape {tuple(spatial)}")
    support = SupportSet()
    for idx in painted_slices(mask):
        support.add(read_slice(image, idx), read_slice(mask, idx), source=f"{mask_meta.get('name', 'labels')}, slice {idx}")
    if not len(support):
        raise ValueError("the labels layer has no painted slice: nothing to save")
    return [str(support.save(path))]
