"""2D slices of nD image and label arrays (numpy or dask), as the plugin sees them.

An image of shape (..., Y, X) -- or (..., Y, X, C) when RGB -- is a list of 2D slices, one per
combination of its leading indices. Only the slices asked for are read, so dask stays lazy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

Index = tuple[int, ...]


def leading_shape(shape: Sequence[int], rgb: bool = False) -> tuple[int, ...]:
    """The non-spatial leading axes of an image of this shape."""
    spatial = 3 if rgb else 2
    if len(shape) < spatial:
        raise ValueError(f"an image of shape {tuple(shape)} has no 2D slices")
    return tuple(shape[: len(shape) - spatial])


def describe_index(index: Index, axis_labels: Sequence[str] = ()) -> str:
    """A slice position in words: "slice 3"; "t=2, z=14" with the leading axes' labels
    (napari's numbered default labels, "0" or "-3", are not names: "slice (2, 14)")."""
    if not index:
        return "the image"
    labels = list(axis_labels)[: len(index)] if len(axis_labels) >= len(index) else []
    if labels and not any(str(a).lstrip("-").isdigit() for a in labels):
        return ", ".join(f"{a}={i}" for a, i in zip(labels, index))
    return f"slice {index[0]}" if len(index) == 1 else f"slice {tuple(index)}"


def all_slices(shape: Sequence[int], rgb: bool = False) -> list[Index]:
    return [tuple(int(i) for i in idx) for idx in np.ndindex(*leading_shape(shape, rgb))]


def read_slice(data, index: Index) -> np.ndarray:
    """One 2D (or 2D RGB) slice as a numpy array; works for dask and other lazy arrays."""
    return np.asarray(data[index] if index else data)


def painted_slices(labels) -> list[Index]:
    """Leading indices of the label slices that contain any label (read one slice at a time)."""
    lead = leading_shape(labels.shape)
    if not lead:
        return [()] if np.asarray(labels).any() else []
    return [idx for idx in np.ndindex(*lead) if np.asarray(labels[idx]).any()]


class SliceView(Sequence):
    """A lazy sequence of 2D slices of an nD array, in the order of ``indices``; ``on_read(index,
    slice)`` is called with each slice read (in the reading thread)."""

    def __init__(self, data, indices: Sequence[Index], on_read: Callable[[Index, np.ndarray], None] | None = None):
        self.data, self.indices, self.on_read = data, list(indices), on_read

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        a = read_slice(self.data, self.indices[i])
        if self.on_read is not None:
            self.on_read(self.indices[i], a)
        return a

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))
