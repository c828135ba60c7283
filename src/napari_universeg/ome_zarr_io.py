"""OME-Zarr images in, OME-Zarr labels out (the NGFF layout, through ome-zarr-py).

An image is a stack of 2D slices: its last two axes are y and x; the other axes, except a channel
axis c, enumerate the slices (z, t, or both: slice n is their n-th combination in C order). Slices
are read one at a time from the stored chunks, so a volume of any size is never held in memory.

The labels of a run are an image-label in the image's ``labels/<name>`` group (NGFF "labels"),
written by ``ome_zarr.writer.write_labels``: the image's axes without c, its scale, its chunks, and
the same resolution levels where those only shrink y and x. Only the metadata and empty arrays are
created up front; the slices are written later, block by block (``LabelsTarget.write``), each
block covering whole chunks, so that blocks written at once by different processes never share a
chunk. ``LabelsTarget`` also keeps the record of a run: its settings and one done flag per block,
so that a run can be resumed and checked for completeness.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .preprocess import check_declared_size

RUN_KEY = "napari-universeg"  # the labels group's attribute holding the run's record
DONE_ARRAY = "napari-universeg-done"  # per block: 1 once its slices are written (in the labels group)
BLOCK_SLICES = 16  # default slices per block: enough to keep a worker busy between tasks


def is_ome_zarr(path: str | Path) -> bool:
    """True for a folder that is a Zarr store (v2 or v3 group metadata) or is named ``*.zarr``."""
    p = Path(path)
    return p.is_dir() and (p.suffix.lower() == ".zarr" or any((p / f).is_file() for f in ("zarr.json", ".zgroup", ".zattrs")))


def _ome_zarr():
    try:
        import ome_zarr.io
        import ome_zarr.reader
        import ome_zarr.writer
    except ImportError:  # pragma: no cover - a dependency; on Python 3.10 too old a release may be installed
        raise ValueError("OME-Zarr needs the package ome-zarr (pip install 'ome-zarr>=0.18')") from None
    return ome_zarr


@dataclass(frozen=True)
class ZarrVolume:
    """Where an OME-Zarr image's full-resolution array lies and how it is laid out (picklable).

    ``axes``: axis names, the last two "y" and "x"; ``scale``: level 0's pixel size per axis;
    ``level_shapes``: the shapes of all resolution levels, full resolution first.
    """

    path: str
    dataset: str  # level 0's path inside the store
    axes: tuple[str, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str
    scale: tuple[float, ...]
    level_shapes: tuple[tuple[int, ...], ...]
    version: str

    @property
    def channel_axis(self) -> int | None:
        """Index of the c axis, or None."""
        return self.axes.index("c") if "c" in self.axes else None

    @property
    def slice_axes(self) -> tuple[int, ...]:
        """Indices of the axes that enumerate slices (all but c, y, x)."""
        return tuple(i for i, a in enumerate(self.axes[:-2]) if a != "c")

    @property
    def slice_grid(self) -> tuple[int, ...]:
        """The sizes of the slice axes (``()`` for a single 2D image)."""
        return tuple(self.shape[i] for i in self.slice_axes)

    @property
    def n_slices(self) -> int:
        """Number of 2D slices."""
        return int(np.prod(self.slice_grid, dtype=np.int64))

    @property
    def slice_shape(self) -> tuple[int, int]:
        """(H, W) of each slice."""
        return self.shape[-2], self.shape[-1]

    @property
    def label_axes(self) -> tuple[str, ...]:
        """The labels' axes: the image's without c."""
        return tuple(a for a in self.axes if a != "c")

    @property
    def label_shape(self) -> tuple[int, ...]:
        """The labels' full-resolution shape: the image's without c."""
        return tuple(s for a, s in zip(self.axes, self.shape) if a != "c")

    @property
    def label_chunks(self) -> tuple[int, ...]:
        """The labels' chunks: the image's, without c, and one slice deep along every slice axis
        but the last (so that a block of slices never shares a chunk with another block)."""
        chunks = [c for a, c in zip(self.axes, self.chunks) if a != "c"]
        for i in range(len(chunks) - 3):
            chunks[i] = 1
        return tuple(chunks)

    def slice_index(self, n: int) -> tuple[int, ...]:
        """The position of slice ``n`` along the slice axes."""
        return tuple(int(i) for i in np.unravel_index(n, self.slice_grid)) if self.slice_grid else ()


def open_ome_zarr(path: str | Path) -> ZarrVolume:
    """The layout of the OME-Zarr image at ``path`` (metadata only; no pixels are read).

    A one-line ValueError naming the path for anything else: not a Zarr store, no multiscales
    metadata, a missing array, axes that do not end with y and x, or chunks too large to read.
    """
    oz = _ome_zarr()
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"OME-Zarr image not found: {path}")
    loc = oz.io.parse_url(str(path), mode="r")
    if loc is None:
        raise ValueError(f"{path} is not a Zarr store (no zarr.json or .zgroup)")
    attrs = loc.root_attrs
    if "multiscales" not in attrs:
        hint = " (it holds a plate or well: give the path of one image in it)" if ("plate" in attrs or "well" in attrs) else ""
        raise ValueError(f"{path} is not an OME-Zarr image: no multiscales metadata{hint}")
    try:
        ms = attrs["multiscales"][0]
        version = str(ms.get("version") or attrs.get("version") or loc.version)
        axes = tuple(a if isinstance(a, str) else a["name"] for a in (ms.get("axes") or ["t", "c", "z", "y", "x"][-5:]))
        datasets = ms["datasets"]
        paths = [d["path"] for d in datasets]
        scale0 = next((t["scale"] for t in datasets[0].get("coordinateTransformations", []) if t.get("type") == "scale"), None)
    except (KeyError, IndexError, TypeError) as e:
        raise ValueError(f"{path}: malformed multiscales metadata ({type(e).__name__}: {e})") from None
    import zarr

    arrays = []
    for p in paths:
        try:
            arrays.append(zarr.open_array(store=str(path), path=p, mode="r"))
        except Exception:
            raise ValueError(f"{path}: the array {p!r} listed in its multiscales metadata is missing") from None
    a0 = arrays[0]
    if len(axes) != a0.ndim:
        axes = tuple(["t", "c", "z", "y", "x"][-a0.ndim :]) if not ms.get("axes") else axes
    if len(axes) != a0.ndim:
        raise ValueError(f"{path}: {len(axes)} axes in the metadata but the array {paths[0]!r} has {a0.ndim} dimensions")
    if axes[-2:] != ("y", "x"):
        raise ValueError(f"{path}: axes are {''.join(axes)}; the last two must be y and x")
    if not np.issubdtype(a0.dtype, np.number):
        raise ValueError(f"{path}: pixels of dtype {a0.dtype} are not numbers")
    check_declared_size(a0.shape[-2:], f"a slice of {path}")
    check_declared_size(a0.chunks, f"a chunk of {path}")
    scale = tuple(float(s) for s in scale0) if scale0 is not None and len(scale0) == a0.ndim else (1.0,) * a0.ndim
    return ZarrVolume(
        str(path), paths[0], axes, tuple(a0.shape), tuple(a0.chunks), a0.dtype.str, scale, tuple(tuple(a.shape) for a in arrays), version
    )


class ZarrSlices(Sequence):
    """The slices of an OME-Zarr image as a lazy sequence of 2D arrays: ``slices[n]`` reads slice
    ``n`` alone (the chunks it touches), as (H, W) in the stored dtype, or (H, W, C) for an image
    with a c axis and no ``channel`` chosen. Picklable: each process opens the array itself."""

    def __init__(self, volume: ZarrVolume, channel: int | None = None):
        c = volume.channel_axis
        if channel is not None and c is not None and not 0 <= channel < volume.shape[c]:
            raise ValueError(f"{volume.path} has {volume.shape[c]} channels; channel {channel} does not exist")
        if channel not in (None, 0) and c is None:
            raise ValueError(f"{volume.path} has no c axis; channel {channel} does not exist")
        self.volume = volume
        self.channel = channel
        self._array = None

    def __getstate__(self):
        return {"volume": self.volume, "channel": self.channel, "_array": None}

    def __len__(self) -> int:
        return self.volume.n_slices

    def _open(self):
        if self._array is None:
            import zarr

            self._array = zarr.open_array(store=self.volume.path, path=self.volume.dataset, mode="r")
        return self._array

    def __getitem__(self, n):
        if not isinstance(n, (int, np.integer)):
            raise TypeError("ZarrSlices takes one slice index at a time")
        if not -len(self) <= n < len(self):
            raise IndexError(f"slice {n} out of range (0-{len(self) - 1})")
        v = self.volume
        where = dict(zip(v.slice_axes, v.slice_index(int(n) % len(self))))
        c = v.channel_axis
        index = tuple(where.get(i, slice(None)) for i in range(len(v.axes) - 2))
        if c is not None and (self.channel is not None or v.shape[c] == 1):
            index = tuple((self.channel or 0) if i == c else x for i, x in enumerate(index))
        data = np.asarray(self._open()[index + (slice(None), slice(None))])
        return np.moveaxis(data, 0, -1) if data.ndim == 3 else data  # (C, H, W) -> (H, W, C)


@dataclass
class Block:
    """A run's unit of work: slices ``start`` to ``stop - 1`` (flat slice numbers)."""

    index: int
    start: int
    stop: int

    def describe(self) -> str:
        """The slice range in words, as errors report it."""
        return f"slices {self.start}-{self.stop - 1}"


def plan_blocks(volume: ZarrVolume, block_slices: int | None = None) -> list[Block]:
    """Blocks of about ``block_slices`` slices (default BLOCK_SLICES) covering every slice once:
    whole chunks of the last slice axis, never across the other slice axes."""
    grid = volume.slice_grid
    if not grid:
        return [Block(0, 0, 1)]
    depth = grid[-1]
    chunk = volume.label_chunks[len(grid) - 1]
    step = chunk * max(1, -(-max(1, block_slices or BLOCK_SLICES) // chunk))  # whole chunks
    blocks = []
    for outer in range(int(np.prod(grid[:-1], dtype=np.int64))):
        for z in range(0, depth, step):
            start = outer * depth + z
            blocks.append(Block(len(blocks), start, start + min(step, depth - z)))
    return blocks


@dataclass
class LabelsTarget:
    """The labels image of a run, ``<image>/labels/<name>`` (see the module docstring)."""

    volume: ZarrVolume
    name: str
    dtype: str
    levels: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)  # (path, shape), full resolution first

    @property
    def group_path(self) -> str:
        """The labels group inside the store."""
        return f"labels/{self.name}"

    def _group(self, mode: str = "r"):
        import zarr

        return zarr.open_group(store=self.volume.path, path=self.group_path, mode=mode)

    def write(self, block: Block, labels: np.ndarray) -> None:
        """Write a block's labels, (stop - start, H, W), into every level, then mark it done."""
        import zarr

        v = self.volume
        lead = v.slice_index(block.start)
        for path, shape in self.levels:
            h, w = shape[-2:]
            rows = np.minimum(((np.arange(h) + 0.5) * v.slice_shape[0] / h).astype(int), v.slice_shape[0] - 1)
            cols = np.minimum(((np.arange(w) + 0.5) * v.slice_shape[1] / w).astype(int), v.slice_shape[1] - 1)
            level = labels[:, rows][:, :, cols]  # nearest neighbour
            arr = zarr.open_array(store=v.path, path=f"{self.group_path}/{path}", mode="r+")
            if lead:
                index = lead[:-1] + (slice(lead[-1], lead[-1] + len(labels)),)
                arr[index] = level.reshape((1,) * (len(lead) - 1) + level.shape)
            else:
                arr[...] = level[0]
        done = zarr.open_array(store=v.path, path=f"{self.group_path}/{DONE_ARRAY}", mode="r+")
        done[block.index] = 1

    def done(self) -> np.ndarray:
        """(n_blocks,) bool: which blocks are written."""
        import zarr

        return zarr.open_array(store=self.volume.path, path=f"{self.group_path}/{DONE_ARRAY}", mode="r")[:].astype(bool)

    def record(self) -> dict:
        """The run's record: its settings ("run"), its blocks and whether it finished."""
        return dict(self._group().attrs.get(RUN_KEY, {}))

    def mark_complete(self) -> None:
        """Note in the record that every block is written (checked against the done flags)."""
        if not self.done().all():
            raise ValueError(f"{self.volume.path}/{self.group_path}: not every block is written")
        g = self._group("r+")
        g.attrs[RUN_KEY] = {**dict(g.attrs[RUN_KEY]), "complete": True}

    def read(self) -> np.ndarray:
        """The full-resolution labels, as stored (for tests and small volumes)."""
        import zarr

        return zarr.open_array(store=self.volume.path, path=f"{self.group_path}/{self.levels[0][0]}", mode="r")[...]


def _label_levels(volume: ZarrVolume) -> list[dict[str, int]]:
    """ome-zarr scale factors for the image's levels that shrink only y and x by whole factors."""
    factors = []
    for shape in volume.level_shapes[1:]:
        if shape[:-2] != volume.shape[:-2]:
            break
        fy, fx = volume.shape[-2] / shape[-2], volume.shape[-1] / shape[-1]
        if fy < 1 or fx < 1 or round(fy) != fy or round(fx) != fx:
            break
        factors.append({"y": int(round(fy)), "x": int(round(fx))})
    return factors


def check_labels_name(name: str) -> None:
    """A ValueError unless ``name`` can name a labels image (one plain path component)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"labels name {name!r} must be a plain name (no '/', not starting with '.')")


def open_labels(volume: ZarrVolume, name: str) -> LabelsTarget | None:
    """The existing labels image ``name`` of a run of ours, or None if there is none of that name.
    A labels image of that name that this plugin did not write is a ValueError (it is not ours to
    resume or replace)."""
    import zarr

    check_labels_name(name)
    try:
        group = zarr.open_group(store=volume.path, path=f"labels/{name}", mode="r")
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return None
    attrs = dict(group.attrs)
    record = attrs.get(RUN_KEY)
    if record is None:
        raise ValueError(f"{volume.path} already has a labels image {name!r} not written by napari-universeg; choose another --labels-name")
    ms = (attrs.get("ome") or attrs).get("multiscales", [{}])[0]
    levels = []
    for d in ms.get("datasets", []):
        levels.append((d["path"], tuple(zarr.open_array(store=volume.path, path=f"labels/{name}/{d['path']}", mode="r").shape)))
    return LabelsTarget(volume, name, record["dtype"], levels)


def create_labels(volume: ZarrVolume, name: str, dtype: np.dtype | str, blocks: Sequence[Block], run: dict, replace: bool = False) -> LabelsTarget:
    """Create the (empty) labels image ``labels/<name>`` of ``volume`` with ome-zarr-py, and the
    run's record: ``run`` (its settings, JSON), the blocks and a done flag per block.

    An existing labels image of that name is replaced only with ``replace`` (and only if this
    plugin wrote it: ``open_labels``); otherwise a ValueError. The image's own arrays are never
    written.
    """
    oz = _ome_zarr()
    import dask.array as da
    import zarr

    existing = open_labels(volume, name)
    if existing is not None and not replace:
        raise ValueError(f"{volume.path} already has labels {name!r} from another run; give --overwrite to replace them, or another --labels-name")
    root = zarr.open_group(store=volume.path, mode="r+")
    if existing is not None:
        del root[f"labels/{name}"]
    names = list(_labels_list(root))
    if name in names:  # write_labels appends the name to the list again
        _set_labels_list(root, [n for n in names if n != name])
    zeros = da.zeros(volume.label_shape, dtype=np.dtype(dtype), chunks=volume.label_chunks)  # never computed: no pixel is written here
    scale = {a: s for a, s in zip(volume.axes, volume.scale) if a != "c"}
    fmt = oz.format.format_from_version(volume.version)
    oz.writer.write_labels(
        zeros,
        root,
        name=name,
        scaler=None,
        scale_factors=_label_levels(volume),
        axes=list(volume.label_axes),
        scale=scale,
        storage_options={"chunks": volume.label_chunks},
        fmt=fmt,
        compute=False,
    )
    group = zarr.open_group(store=volume.path, path=f"labels/{name}", mode="r+")
    group.create_array(DONE_ARRAY, shape=(len(blocks),), chunks=(1,), dtype="uint8", fill_value=0)
    group.attrs[RUN_KEY] = {
        "run": json.loads(json.dumps(run)),
        "dtype": np.dtype(dtype).str,
        "blocks": [[b.start, b.stop] for b in blocks],
        "complete": False,
    }
    target = open_labels(volume, name)
    assert target is not None
    return target


def _labels_list(root) -> list[str]:
    try:
        attrs = dict(root["labels"].attrs)
    except KeyError:
        return []
    return list((attrs.get("ome") or attrs).get("labels", []))


def _set_labels_list(root, names: list[str]) -> None:
    group = root["labels"]
    attrs = dict(group.attrs)
    if "ome" in attrs:
        group.attrs["ome"] = {**attrs["ome"], "labels": names}
    else:
        group.attrs["labels"] = names
