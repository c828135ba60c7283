"""The support set: ordered (image, label mask) examples, and its file format.

File format (shared by the GUI and the CLI): one compressed ``.npz`` holding ``image_<i>`` and
``mask_<i>`` arrays plus ``metadata``, a JSON string (the examples' sources, switches and meta, and
the task: "classes" or "instances", options.TASKS). It is read with ``allow_pickle=False``, so
opening a file never executes code from it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .instances import guess_task
from .options import TASKS, PredictOptions
from .plausibility import pair_problem
from .preprocess import check_declared_size, check_image, check_mask, label_dtype, to_grey

FORMAT = "napari-universeg-support"
VERSION = 1


@dataclass
class Example:
    """One support example: a 2D greyscale image and integer labels (0 = background)."""

    image: np.ndarray
    mask: np.ndarray
    source: str = ""
    enabled: bool = True
    meta: dict = field(default_factory=dict)

    @property
    def classes(self) -> list[int]:
        """The label values > 0 in the mask, sorted."""
        return [int(c) for c in np.unique(self.mask) if c > 0]


class SupportSet:
    """Ordered examples: (H, W) float images with (H, W) int32 label masks (0 = background),
    each with its source, an enabled flag and metadata; saved as one .npz (module docstring).
    ``task`` says what the label values mean: "classes" (each value a class) or "instances" (each
    value one object)."""

    def __init__(self, examples: list[Example] | None = None, task: str = "classes"):
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, not {task!r}")
        self.task = task
        self.examples: list[Example] = []
        for ex in examples or []:
            self.add(ex.image, ex.mask, ex.source, enabled=ex.enabled, meta=ex.meta)

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]

    def add(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        source: str = "",
        channel: int | None = None,
        enabled: bool = True,
        meta: dict | None = None,
    ) -> Example:
        """Validate and append an example (plausibility.py: a swapped image and mask is refused).
        RGB/multichannel images become one channel first."""
        what = f"support example {source!r}" if source else f"support example {len(self)}"
        image = np.asarray(image)
        if image.ndim != 2:
            image = to_grey(image, channel, what=f"{what} image")
        check_image(image.astype(np.float32, copy=False), what=f"{what} image")
        mask = check_mask(mask, image.shape, what=f"{what} mask")
        problem = pair_problem(image, mask)
        if problem is not None:
            raise ValueError(f"{what}: {problem}")
        ex = Example(np.ascontiguousarray(image), mask, source, enabled, dict(meta or {}))
        self.examples.append(ex)
        return ex

    def remove(self, index: int) -> None:
        """Drop the example at ``index``."""
        del self.examples[index]

    def clear(self) -> None:
        """Drop every example."""
        self.examples.clear()

    def enabled(self) -> list[Example]:
        """The examples that are switched on, in order."""
        return [ex for ex in self.examples if ex.enabled]

    def classes(self) -> list[int]:
        """Label values present in the enabled examples."""
        found: set[int] = set()
        for ex in self.enabled():
            found.update(ex.classes)
        return sorted(found)

    def save(self, path: str | Path) -> Path:
        """Write the set to ``path`` (.npz added if missing), atomically; returns the path written."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        arrays = {}
        items = []
        for i, ex in enumerate(self.examples):
            arrays[f"image_{i}"] = ex.image
            arrays[f"mask_{i}"] = ex.mask.astype(label_dtype(ex.mask.max(initial=0)))
            items.append({"source": ex.source, "enabled": ex.enabled, "meta": ex.meta})
        metadata = {"format": FORMAT, "version": VERSION, "task": self.task, "examples": items}
        arrays["metadata"] = np.array(json.dumps(metadata))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SupportSet:
        """Read a set saved by ``save``: sizes and metadata checked first, no pickles, one
        clear ValueError naming the file for anything else."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"support-set file not found: {path}")
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path} is not a napari-universeg support-set file (not an .npz archive)")
        _check_member_sizes(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if "metadata" not in data.files:
                    raise ValueError(f"{path} is not a napari-universeg support-set file (no metadata)")
                metadata = json.loads(str(data["metadata"]))
                items = _check_metadata(metadata, path)
                examples = []
                for i, item in enumerate(items):
                    for key in (f"image_{i}", f"mask_{i}"):
                        if key not in data.files:
                            raise ValueError(f"{path}: support-set file is incomplete, member {key} is missing")
                    examples.append(Example(data[f"image_{i}"], data[f"mask_{i}"], item["source"], item["enabled"], item["meta"]))
        except (OSError, zipfile.BadZipFile, EOFError, KeyError, json.JSONDecodeError, RecursionError) as e:
            raise ValueError(f"{path}: cannot read support-set file ({type(e).__name__}: {str(e)[:200]})") from None
        except ValueError as e:
            if "allow_pickle" not in str(e):
                raise
            raise ValueError(
                f"{path} is not a napari-universeg support-set file: it holds Python objects (pickled data), which are never "
                "loaded; a support-set file holds only arrays and a JSON description (saved by the plugin or --save-support)"
            ) from None
        task = metadata.get("task") or guess_task([ex.mask for ex in examples])  # files from before tasks: guessed
        return cls(examples, task=task)


def plan_task(support: SupportSet, options: PredictOptions) -> tuple[SupportSet, PredictOptions]:
    """The enabled examples and the options a plan is chosen on: for task "instances", every
    painted object's foreground as one class (the objects are then seeded from it, predict.py);
    for "classes", as given."""
    if options.task != "instances":
        return support, options
    fg = [Example(ex.image, (ex.mask > 0).astype(np.int32), ex.source, True, ex.meta) for ex in support.enabled()]
    # Not adapted: the objects' cores are a second support set, and one adaptation is kept.
    return SupportSet(fg), replace(options, task="classes", classes=None, adapt=False)


def content_key(examples, extra) -> str:
    """A digest of the examples' arrays (content, shape, dtype) and of ``extra`` (its repr)."""
    key = hashlib.blake2b(repr(extra).encode())
    for ex in examples:
        for a in (ex.image, ex.mask):
            key.update(repr((a.shape, a.dtype.str)).encode())
            key.update(np.ascontiguousarray(a).data)
    return key.hexdigest()


def ensemble_subsets(n: int, options: PredictOptions) -> list[np.ndarray]:
    """The examples each member of the support ensemble uses: K sorted index arrays of at most S
    of n examples (options.ensemble, options.support_size, drawn with options.seed); one array
    of all n if they fit."""
    s = min(options.support_size, n)
    if s == n:
        return [np.arange(n)]
    rng = np.random.default_rng(options.seed)
    return [np.sort(rng.choice(n, s, replace=False)) for _ in range(options.ensemble)]


def _check_member_sizes(path: Path) -> None:
    """Refuse an archive whose arrays declare more than MAX_PIXELS elements in all (read from the
    .npy headers, before anything is decompressed: a small file can hold a huge array of zeros)."""
    total = 0
    try:
        with zipfile.ZipFile(path) as zf:
            for name in (n for n in zf.namelist() if n.endswith(".npy")):
                total += int(np.prod(_declared_shape(zf, name), dtype=np.int64))
                check_declared_size((total,), f"support-set file {path}")  # before reading more
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot read support-set file ({type(e).__name__}: {e})") from None


def _declared_shape(zf: zipfile.ZipFile, name: str) -> tuple[int, ...]:
    """The shape in the .npy header of an archive member; OSError if it has none."""
    with zf.open(name) as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            return read_header(f)[0]
        except ValueError as e:  # numpy's words for a missing or broken header
            raise OSError(f"member {name}: {e}") from None


def _check_metadata(metadata, path: Path) -> list[dict]:
    """The examples' entries of a support-set file's metadata, each with a str "source", a bool
    "enabled" and a dict "meta" (defaults where missing); a clear error for anything else."""
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is not a napari-universeg support-set file")
    if metadata.get("version") != VERSION:
        raise ValueError(f"{path}: support-set file version {metadata.get('version')!r} is not supported (this version reads {VERSION})")
    if metadata.get("task", "classes") not in TASKS:
        raise ValueError(f"{path}: support-set task {metadata.get('task')!r} is not one of {TASKS}")
    items = metadata.get("examples")
    if not isinstance(items, list):
        raise ValueError(f"{path}: support-set metadata 'examples' must be a list, not {type(items).__name__}")
    out = []
    for i, item in enumerate(items):
        item = {"source": "", "enabled": True, "meta": {}, **item} if isinstance(item, dict) else item
        if not (isinstance(item, dict) and isinstance(item["source"], str) and isinstance(item["enabled"], bool) and isinstance(item["meta"], dict)):
            raise ValueError(f"{path}: support-set metadata of example {i} must have a text 'source', a true/false 'enabled' and a 'meta' mapping")
        out.append(item)
    return out


def is_support_file(path: str | Path) -> bool:
    """Cheap check for readers: an .npz whose metadata says it is a support set."""
    path = Path(path)
    if path.suffix != ".npz" or not path.is_file():
        return False
    try:
        _check_member_sizes(path)  # too large to be ours: left to other readers
        with np.load(path, allow_pickle=False) as data:
            return "metadata" in data.files and json.loads(str(data["metadata"])).get("format") == FORMAT
    except Exception:
        return False
