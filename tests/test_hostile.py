"""Files that declare more than they hold (images, support sets; weights in test_weights.py): refused from their headers, in bounded memory (each case
runs in a child process whose peak memory is measured)."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import tifffile

LIMIT_MB = 1024


def _peak_mb(call: str) -> tuple[float, str]:
    """(peak RSS in MB above the child's start, the one line it printed) for ``call``, a Python
    expression run after importing the package's readers."""
    code = (
        "import resource\n"
        "from napari_universeg.io import read_image\n"
        "from napari_universeg.support import SupportSet\n"
        "from napari_universeg.weights import load_weights_file\n"
        "from napari_universeg._reader import get_reader\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    {call}; said = 'read'\n"
        "except ValueError as e:\n"
        "    said = f'error: {e}'\n"
        "print(said)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.splitlines()
    return float(out[-1]), out[0]


def test_a_tiny_tiff_declaring_40000_x_40000_px(tmp_path):
    path = tmp_path / "bomb.tif"
    tifffile.imwrite(path, np.zeros((256, 256), np.uint8), tile=(256, 256), compression="zlib")
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(40000)
        tif.pages[0].tags["ImageLength"].overwrite(40000)
    assert path.stat().st_size < 2000
    peak, said = _peak_mb(f"read_image({str(path)!r})")
    assert (
        said
        == f"error: image file {path} declares 40000 x 40000 = 1,600,000,000 pixels, more than the limit of 134,217,728; set NAPARI_UNIVERSEG_MAX_PIXELS to read larger images"
    )
    assert peak < LIMIT_MB


def test_a_png_bomb(tmp_path):
    """144M pixels of zeros in 150 KB: over the limit, under Pillow's own (178M)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    side = 12000
    packer = zlib.compressobj(9)
    idat = b"".join([packer.compress(bytes(side + 1)) for _ in range(side)] + [packer.flush()])
    path = tmp_path / "bomb.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    assert path.stat().st_size < 1 << 20
    peak, said = _peak_mb(f"read_image({str(path)!r})")
    assert said.startswith(f"error: image file {path} declares 12000 x 12000") and peak < LIMIT_MB


def test_a_support_set_zip_bomb(tmp_path):
    """400 MB of zeros in a file of under 1 MB, declared in an .npy header."""
    path = tmp_path / "bomb.npz"
    header = {"descr": "|u1", "fortran_order": False, "shape": (20000, 20000)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("image_0.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            chunk = bytes(1 << 24)
            for _ in range(400_000_000 // len(chunk) + 1):
                f.write(chunk)
        zf.writestr("mask_0.npy", b"")
        meta = {"format": "napari-universeg-support", "version": 1, "examples": [{}]}
        with zf.open("metadata.npy", "w") as f:
            np.lib.format.write_array(f, np.array(json.dumps(meta)))
    assert path.stat().st_size < 1 << 20
    peak, said = _peak_mb(f"SupportSet.load({str(path)!r})")
    assert said.startswith(f"error: support-set file {path} declares") and "more than the limit" in said
    assert peak < LIMIT_MB
    # dropped on napari: the reader does not claim it (it grew to 20 GB before)
    peak, said = _peak_mb(f"print(get_reader({str(path)!r}))")
    assert said == "None" and peak < LIMIT_MB


def test_a_five_channel_tiff_is_one_image_not_32_thin_slices(tmp_path):
    from napari_universeg.io import as_slices, read_image

    image = np.random.default_rng(0).random((32, 32, 5)).astype(np.float32)
    tifffile.imwrite(tmp_path / "five.tif", image)
    assert as_slices(read_image(tmp_path / "five.tif")).shape == (1, 32, 32, 5)
    assert as_slices(np.zeros((40, 32, 32))).shape == (40, 32, 32)  # a stack stays a stack


def test_finite_values_beyond_float32_are_rescaled_not_called_infinite():
    from napari_universeg.preprocess import check_image, to_grey

    image = np.random.default_rng(0).random((16, 16)) * 1e39
    grey = to_grey(image)
    check_image(grey)  # no "NaN or infinite" error
    assert grey.dtype == np.float32 and np.isfinite(grey).all() and np.argmax(grey) == np.argmax(image)


def test_a_16_x_20000_strip_in_auto_mode():
    """Every tile scale would shrink the strip below 8 px, and the classifier's working size would
    have made it 1 px high: auto now resizes or uses the classifier on an 8 px high strip."""
    from napari_universeg import Segmenter, SupportSet

    rng = np.random.default_rng(0)

    def strip():
        m = np.zeros((16, 20000), np.uint8)
        for x in rng.integers(0, 19990, 200):
            m[4:12, x : x + 8] = 1
        return (m * 0.6 + 0.2 + 0.05 * rng.standard_normal(m.shape)).astype(np.float32), m

    support = SupportSet()
    for _ in range(2):
        support.add(*strip())
    query, truth = strip()
    pred = Segmenter.from_weights().predict(support, [query])[0]
    assert pred.plan.mode == "resize" and pred.labels.shape == query.shape
    assert 2 * ((pred.labels > 0) & (truth > 0)).sum() / ((pred.labels > 0).sum() + truth.sum()) > 0.8
