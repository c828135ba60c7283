"""Reading images, stacks and folders from disk; writing label images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .preprocess import MIN_SIZE, SizeLimitError, check_declared_size

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


def read_image(path: str | Path) -> np.ndarray:
    """An image or stack as stored (TIFF stacks keep all their planes). Clear error if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                check_declared_size(tif.series[0].shape, f"image file {path}")
                return np.asarray(tif.asarray())
        import imageio.v3 as iio

        check_declared_size(iio.improps(path).shape, f"image file {path}")
        return np.asarray(iio.imread(path))
    except SizeLimitError:
        raise
    except Exception as e:  # the readers raise many types for truncated or foreign files
        raise ValueError(f"cannot read image file {path}: {type(e).__name__}: {e}") from None


def as_slices(array: np.ndarray, what: str = "image") -> np.ndarray:
    """(N, H, W[, C]) slices from a 2D image, an RGB(A) image, or a stack."""
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3 and array.shape[-1] in (3, 4) and min(array.shape[:2]) > 4:
        return array[None]  # one RGB(A) image
    if array.ndim == 3 and array.shape[-1] < MIN_SIZE <= min(array.shape[:2]):
        return array[None]  # one multichannel image: its slices would be too thin to segment
    if array.ndim == 3 or (array.ndim == 4 and array.shape[-1] in (3, 4)):
        return array
    raise ValueError(f"{what} has shape {array.shape}; expected a 2D image, an RGB image or a stack of 2D slices")


def list_images(folder: str | Path) -> list[Path]:
    """The image files of a folder, sorted by name (hidden files skipped); an error if none."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in folder {folder}")
    return files


def read_mask(path: str | Path) -> np.ndarray:
    """A label mask as stored: (H, W) or (N, H, W) integers; RGB masks are refused."""
    mask = read_image(path)
    if mask.ndim == 3 and mask.shape[-1] in (3, 4):
        raise ValueError(f"mask {path} is an RGB image; masks must be integer label images (0 = background)")
    return mask


def write_labels(path: str | Path, labels: np.ndarray) -> Path:
    """Write labels (2D or a stack) as a compressed TIFF, atomically: into a temporary file
    beside it, then renamed, so an interrupted write never leaves a broken file at ``path``."""
    import os

    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # opened normally: the user's umask applies
    try:
        with open(tmp, "wb") as f:
            tifffile.imwrite(f, labels, compression="zlib")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
