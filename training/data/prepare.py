"""Build the real-task training cache from fetched copies of the sources in sources.csv.

    napari-universeg-prepare-data [--mirrors /work/.mirror] [--out training/data/cache] [--only NAME ...]
                                  [--eval-out training/data/heldout_eval]

Runs from a source checkout (an editable install, ``pip install -e .``): the default cache is the
folder cache/ next to this file, training/data/cache, where training reads it.

Each source is a public git repository at a recorded commit, brought onto the machine beforehand
(its bare git directory at MIRRORS/owner+name/repo, as the project's fetch tool leaves it); nothing
is downloaded here. Per source, the cache holds one folder:

    NAME/meta.json          source, split, licence, modality, task names, image count
    NAME/img_0000.jpg ...   greyscale images, SIZE x SIZE, uint8 (JPEG, quality 85)
    NAME/mask_0000.png ...  uint8, bit k = task k of meta.json's "tasks" (PNG)

Images are resized to SIZE x SIZE as a whole; images larger than 2 * SIZE on their short side also
give one centred crop of half their short side ("zoom"), so tasks come in two scales. Tasks per
mask kind: binary -> foreground; instances -> foreground and object contours; classes -> each
listed class and, with two or more, their union. A path ``FILE::DATASET`` in the manifest names
one dataset of an HDF5 file, so that an image and its mask may be two datasets of one file.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import gzip
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
from PIL import Image

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "sources.csv"
CACHE = HERE / "cache"
SIZE = 256
MAX_IMAGES = 64  # per source and scale: the whole cache must travel to a GPU machine (64 MiB in all)
MAX_TASKS = 8  # bit planes of a uint8 mask PNG
JPEG_QUALITY = 85


def read_sources(path: Path = SOURCES) -> list[dict]:
    """Rows of sources.csv, with 'classes' parsed from JSON."""
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["name"] and not r["name"].startswith("#")]
    for r in rows:
        r["classes"] = json.loads(r["classes"] or "{}")
        r["image_channel"] = int(r["image_channel"]) if r["image_channel"] not in ("", None) else None
    return rows


class GitTree:
    """Read-only access to one commit of a bare git directory."""

    def __init__(self, git_dir: Path, commit: str):
        self.git_dir = git_dir
        self.commit = commit if self._has(commit) else "HEAD"
        if self.commit == "HEAD" and commit:
            print(f"  note: {git_dir} lacks commit {commit}; using HEAD {self._git('rev-parse', 'HEAD').strip()}", file=sys.stderr)

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", f"--git-dir={self.git_dir}", *args], capture_output=True, text=True, check=True).stdout

    def _has(self, commit: str) -> bool:
        if not commit:
            return False
        r = subprocess.run(["git", f"--git-dir={self.git_dir}", "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
        return r.returncode == 0

    def files(self) -> list[str]:
        return self._git("ls-tree", "-r", "--name-only", self.commit).splitlines()

    def read(self, path: str) -> bytes:
        """The bytes of a file (of its file part, for a path ``FILE::DATASET``)."""
        return subprocess.run(
            ["git", f"--git-dir={self.git_dir}", "cat-file", "blob", f"{self.commit}:{file_part(path)}"], capture_output=True, check=True
        ).stdout


def file_part(path: str) -> str:
    """The file of a manifest path: ``FILE::DATASET`` names one dataset of an HDF5 file (image and
    mask of a source may be two datasets of one file), any other path a whole file."""
    return path.split("::", 1)[0]


def decode(data: bytes, name: str) -> np.ndarray:
    """An image file's pixels: (H, W), (H, W, C) or a (Z, H, W) stack (multi-page TIFF, NIfTI
    volumes as axial slices, HDF5 label volumes or FILE::DATASET paths as in decode_h5)."""
    if file_part(name).lower().endswith((".h5", ".h5.gz")) or "::" in name:
        return decode_h5(gzip.decompress(data) if file_part(name).endswith(".gz") else data, name)
    if name.lower().endswith((".nii", ".nii.gz")):
        import nibabel  # training extra; the plugin never reads NIfTI

        volume = nibabel.Nifti1Image.from_bytes(gzip.decompress(data) if name.endswith(".gz") else data)
        return np.moveaxis(np.asanyarray(volume.dataobj), -1, 0)  # (X, Y, Z) -> (Z, X, Y)
    if name.lower().endswith((".tif", ".tiff")):
        try:
            return tifffile.imread(io.BytesIO(data))
        except (ValueError, NotImplementedError, tifffile.TiffFileError):  # e.g. CCITT-compressed masks without imagecodecs
            return np.asarray(Image.open(io.BytesIO(data)))
    return np.asarray(iio.imread(io.BytesIO(data), extension=Path(name).suffix.lower()))


def decode_h5(data: bytes, name: str) -> np.ndarray:
    """An array from an HDF5 file. ``name`` ``FILE::DATASET``: that dataset, a 2D image or a
    (Z, Y, X) volume. Otherwise a (Z, Y, X) label volume in NeuroProof's layout: dataset 'stack'
    holds supervoxel ids and the optional 'transforms' ((N, 2) rows: supervoxel, body) maps them
    to the objects; ids 'transforms' does not list stay as they are."""
    import h5py  # training extra; the plugin never reads HDF5

    dataset = name.split("::", 1)[1] if "::" in name else None
    with h5py.File(io.BytesIO(data), "r") as f:
        if dataset is not None:
            if not isinstance(f.get(dataset), h5py.Dataset) or f[dataset].ndim not in (2, 3):
                raise ValueError(f"{name}: no 2D or 3D dataset {dataset!r} (entries: {', '.join(f)})")
            return f[dataset][()]
        if "stack" not in f:
            raise ValueError(f"{name}: no dataset 'stack' (datasets: {', '.join(f)})")
        stack = f["stack"][()]
        pairs = f["transforms"][()] if "transforms" in f else np.zeros((0, 2), stack.dtype)
    if stack.ndim != 3 or pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"{name}: 'stack' {stack.shape} is not a volume or 'transforms' {pairs.shape} not (N, 2)")
    ids, inverse = np.unique(stack, return_inverse=True)
    bodies = dict(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist()))
    mapped = np.array([bodies.get(int(i), int(i)) for i in ids], np.int64)
    return mapped[inverse].reshape(stack.shape)


def to_grey_slices(image: np.ndarray, channel: int | None) -> list[np.ndarray]:
    """2D float32 slices of an image: RGB(A) -> the channel or luminance, stacks -> every slice."""
    image = np.squeeze(image)
    if image.ndim == 3 and image.shape[-1] <= 4 and image.shape[0] > 4:  # channels last
        if channel is not None or image.shape[-1] < 3:  # a chosen channel; grey + alpha: the grey
            return [image[..., channel or 0].astype(np.float32)]
        return [image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)]
    if image.ndim == 2:
        return [image.astype(np.float32)]
    if image.ndim == 3:
        return [s.astype(np.float32) for s in image]
    raise ValueError(f"unsupported image shape {image.shape}")


def mask_slices(mask: np.ndarray, count: int) -> list[np.ndarray]:
    mask = np.squeeze(mask)
    if mask.ndim == 3 and mask.shape[-1] <= 4 and count == 1:
        mask = mask[..., 0]  # a mask saved with colour or alpha channels: the first one
    if mask.ndim == 2:
        return [mask]
    if mask.ndim == 3 and mask.shape[0] == count:
        return list(mask)
    raise ValueError(f"mask shape {mask.shape} does not match {count} image slice(s)")


def mask_values(mask: np.ndarray, rule: str) -> np.ndarray:
    """Label values of a decoded mask file by the source's rule: "" (the values as they are; the
    first channel of a colour mask), "gt127" (binary masks saved lossily: > 127), "green_overlay"
    (an RGB overlay with objects filled green: G - max(R, B) > 100), "rgb24" (a class map saved
    as exact colours: each pixel's colour as one number, R * 65536 + G * 256 + B, so that the
    classes column names colours, e.g. red 16711680, blue 255)."""
    if rule == "rgb24":
        rgb = mask[..., :3].astype(np.int32)
        return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    if rule == "green_overlay":
        rgb = mask[..., :3].astype(np.int16)
        return (rgb[..., 1] - np.maximum(rgb[..., 0], rgb[..., 2]) > 100).astype(np.uint8)
    if rule == "gt127":
        return (mask if mask.ndim == 2 else mask[..., 0]) > 127
    if rule:
        raise ValueError(f"unknown mask_rule {rule!r}")
    return mask


def included(image: np.ndarray, rule: str) -> bool:
    """Whether an image (as decoded) passes the source's filter: "" (all), "grey_dark" / "grey_bright"
    (grey RGB, median below / above 100: fluorescence / transmitted light in a mixed collection,
    leaving out stained colour images)."""
    if not rule:
        return True
    grey = image.ndim == 2 or np.abs(np.diff(image[..., :3].astype(np.int16), axis=-1)).mean() < 3
    dark = np.median(image) < 100
    if rule in ("grey_dark", "grey_bright"):
        return grey and dark == (rule == "grey_dark")
    raise ValueError(f"unknown include rule {rule!r}")


def to_uint8(image: np.ndarray) -> np.ndarray:
    """0.5-99.5 percentile scaling to uint8 (16-bit and float images keep their contrast)."""
    lo, hi = np.percentile(image, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(image.min()), float(image.max())
    scaled = (image - lo) / max(hi - lo, 1e-12)
    return np.clip(np.round(scaled * 255), 0, 255).astype(np.uint8)


def task_names(row: dict) -> list[str]:
    kind = row["mask_kind"]
    if kind == "binary":
        return ["foreground"]
    if kind == "instances":
        return ["foreground", "contours"]
    if kind == "classes":
        names = [f"class {v}: {n}" for v, n in row["classes"].items()]
        return names + (["union of " + ", ".join(row["classes"].values())] if len(names) > 1 else [])
    raise ValueError(f"{row['name']}: unknown mask_kind {kind!r}")


def contours(labels: np.ndarray) -> np.ndarray:
    """Pixels of an object whose 4-neighbour has another label (touching objects stay apart)."""
    p = np.pad(labels, 1, mode="edge")
    c = p[1:-1, 1:-1]
    edge = (c != p[:-2, 1:-1]) | (c != p[2:, 1:-1]) | (c != p[1:-1, :-2]) | (c != p[1:-1, 2:])
    return edge & (labels > 0)


def tasks_of(labels: np.ndarray, row: dict) -> np.ndarray:
    """uint8 bit planes, bit k = task k of task_names(row), from a (SIZE, SIZE) label image."""
    kind = row["mask_kind"]
    if kind == "binary":
        planes = [labels > 0]
    elif kind == "instances":
        planes = [labels > 0, contours(labels)]
    else:
        values = [int(v) for v in row["classes"]]
        planes = [labels == v for v in values]
        if len(values) > 1:
            planes.append(np.isin(labels, values))
    out = np.zeros(labels.shape, np.uint8)
    for k, plane in enumerate(planes):
        out |= plane.astype(np.uint8) << k
    return out


def resized(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    img = np.asarray(Image.fromarray(image).resize((SIZE, SIZE), Image.Resampling.BOX if min(image.shape) > SIZE else Image.Resampling.BILINEAR))
    lab = np.asarray(Image.fromarray(labels.astype(np.int32)).resize((SIZE, SIZE), Image.Resampling.NEAREST))
    return img, lab


def views(image: np.ndarray, labels: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The whole image at SIZE, and for large images a centred crop of half the short side."""
    out = {"whole": resized(image, labels)}
    h, w = image.shape
    if min(h, w) >= 2 * SIZE:
        c = min(h, w) // 2
        y, x = (h - c) // 2, (w - c) // 2
        out["zoom"] = resized(image[y : y + c, x : x + c], labels[y : y + c, x : x + c])
    return out


def pairs(tree: GitTree, row: dict) -> list[tuple[str, str, int | None]]:
    """(image path, mask path, slice) per image that has a mask. Images that share one mask file
    (one file per slice, one label volume) are its slices in the order of their sorted paths
    (slice = 0, 1, ...); otherwise slice is None."""
    files = tree.files()
    present = set(files)
    pattern, _, dataset = row["images"].partition("::")  # FILE::DATASET: a dataset of each file
    images = sorted(f + (f"::{dataset}" if dataset else "") for f in files if fnmatch.fnmatch(f, pattern))
    found, missing = [], 0
    for f in images:
        m = re.sub(row["mask_regex"], row["mask_replace"], f)
        if file_part(m) in present and m != f:
            found.append((f, m))
        else:
            missing += 1
    if missing:
        print(f"  {row['name']}: {missing} image(s) without a mask skipped", file=sys.stderr)
    sharing: dict[str, list[str]] = {}  # mask path -> its images, in sorted order
    for f, m in found:
        sharing.setdefault(m, []).append(f)
    position = {f: k for images_of in sharing.values() for k, f in enumerate(images_of)}
    return [(f, m, position[f] if len(sharing[m]) > 1 else None) for f, m in found]


def evenly(items: list, k: int) -> list:
    if len(items) <= k:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, k).round().astype(int)]


def prepare_source(row: dict, mirrors: Path, out: Path) -> dict:
    """Write one source's cache folder; returns its meta.json content."""
    git_dir = mirrors / row["repo"].replace("/", "+") / "repo"
    if (git_dir / ".git").is_dir():  # a snapshot with a work tree
        git_dir = git_dir / ".git"
    if not git_dir.is_dir():
        raise FileNotFoundError(f"{row['name']}: no fetched copy of {row['repo']} at {git_dir}")
    tree = GitTree(git_dir, row["commit"])
    names = task_names(row)
    if len(names) > MAX_TASKS:
        raise ValueError(f"{row['name']}: {len(names)} tasks, at most {MAX_TASKS}")
    # pairs -> slices; stacks are subsampled to evenly spaced slices
    slices: dict[str, list] = {"whole": [], "zoom": []}
    candidates = found = pairs(tree, row)
    decoded: dict[str, np.ndarray] = {}  # images the include rule has read already
    if row["include"]:
        decoded = {i: decode(tree.read(i), i) for i, _, _ in candidates}
        candidates = [(i, m, z) for i, m, z in candidates if included(decoded[i], row["include"])]
    chosen = evenly(candidates, MAX_IMAGES)
    decoded = {i: decoded[i] for i, _, _ in chosen if i in decoded}
    volumes: dict[str, np.ndarray] = {}  # label volumes whose slices are images of their own
    per_pair = max(1, MAX_IMAGES // max(1, len(chosen)))
    for img_path, mask_path, z in chosen:
        raw = decoded.pop(img_path) if img_path in decoded else decode(tree.read(img_path), img_path)
        imgs = to_grey_slices(raw, row["image_channel"])
        if z is None:
            mask = decode(tree.read(mask_path), mask_path)
        else:
            if mask_path not in volumes:
                volumes[mask_path] = decode(tree.read(mask_path), mask_path)
                n = sum(m == mask_path for _, m, _ in found)
                if volumes[mask_path].shape[0] != n:
                    raise ValueError(f"{mask_path}: {volumes[mask_path].shape[0]} slices for {n} images")
            mask = volumes[mask_path][z]
        masks = mask_slices(mask_values(mask, row["mask_rule"]), len(imgs))
        for img, lab in evenly(list(zip(imgs, masks)), per_pair):
            if img.shape != lab.shape:
                print(f"  {row['name']}: {img_path} {img.shape} vs mask {lab.shape}: skipped", file=sys.stderr)
                continue
            for scale, (i8, l256) in views(to_uint8(img), lab).items():
                bits = tasks_of(l256, row)
                if bits.any():
                    slices[scale].append((i8, bits))
    folder = out / row["name"]
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*_*.*"):
        old.unlink()
    counts = {}
    index = 0
    for scale, items in slices.items():
        items = evenly(items, MAX_IMAGES)
        counts[scale] = len(items)
        for img, bits in items:
            Image.fromarray(img).save(folder / f"img_{index:04d}.jpg", quality=JPEG_QUALITY)
            Image.fromarray(bits).save(folder / f"mask_{index:04d}.png", optimize=True)
            index += 1
    meta = {
        "name": row["name"],
        "split": row["split"],  # training draws only from "train" (real.load_sources)
        "repo": row["repo"],
        "commit": tree._git("rev-parse", tree.commit).strip(),
        "licence": row["licence"],
        "modality": row["modality"],
        "tasks": names,
        "scales": counts,  # images 0..whole-1 are whole images, the rest zoomed crops
        "size": SIZE,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def write_eval_sets(cache: Path, names: list[str], out: Path) -> list[Path]:
    """The cached whole images of held-out sources as evaluation folders of the standard protocol
    (images/NNN.png, masks/NNN.tif with {0, 1}), one per source, for its first task."""
    import tifffile as tf

    folders = []
    for name in names:
        src = cache / name
        meta = json.loads((src / "meta.json").read_text())
        folder = out / f"{name}__{re.sub(r'[^a-z0-9]+', '_', meta['tasks'][0].lower()).strip('_')}"
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "masks").mkdir(exist_ok=True)
        kept = 0
        for i in range(meta["scales"].get("whole", 0)):
            mask = np.asarray(Image.open(src / f"mask_{i:04d}.png")) & 1
            if mask.any():
                Image.open(src / f"img_{i:04d}.jpg").save(folder / "images" / f"{kept:03d}.png")
                tf.imwrite(folder / "masks" / f"{kept:03d}.tif", mask.astype(np.uint8), compression="zlib")
                kept += 1
        (folder / "SOURCE.txt").write_text(
            f"{name}: {meta['repo']} @ {meta['commit']}, {meta['licence']}; task {meta['tasks'][0]}; {kept} pairs at {SIZE} px\n"
        )
        folders.append(folder)
    return folders


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"), help="folder of fetched repositories (owner+name/repo)")
    p.add_argument("--out", type=Path, default=CACHE)
    p.add_argument("--sources", type=Path, default=SOURCES)
    p.add_argument("--only", nargs="*", help="source names to (re)build; default all of split train or heldout")
    p.add_argument("--eval-out", type=Path, help="also write the held-out sources as evaluation folders here (python -m benchmarks.accuracy --data)")
    args = p.parse_args(argv)
    failed = []
    for row in read_sources(args.sources):
        if args.only and row["name"] not in args.only:
            continue
        if row["split"] not in ("train", "heldout"):  # e.g. "pending": the licence is not confirmed yet
            note = ""
            if (args.out / row["name"]).is_dir():  # cached while it was in use: never train on it now
                shutil.rmtree(args.out / row["name"])
                note = "; its cached copy removed"
            print(f"{row['name']}: skipped ({row['split']}){note}", flush=True)
            continue
        try:
            meta = prepare_source(row, args.mirrors, args.out)
        except (OSError, ValueError, subprocess.CalledProcessError) as e:
            print(f"{row['name']}: FAILED: {e}", file=sys.stderr)
            failed.append(row["name"])
            continue
        print(f"{meta['name']}: {meta['scales']} images, tasks {meta['tasks']}", flush=True)
    if args.eval_out:
        heldout = [r["name"] for r in read_sources(args.sources) if r["split"] == "heldout" and (args.out / r["name"] / "meta.json").is_file()]
        for folder in write_eval_sets(args.out, heldout, args.eval_out):
            print(f"evaluation set {folder}", flush=True)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
