"""The command line as a user runs it: real files on disk, exit codes, one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_universeg.cli import main
from napari_universeg.sample_data import neuron_files, synthetic_stack
from napari_universeg.support import SupportSet


@pytest.fixture
def files(tmp_path):
    image, labels = synthetic_stack(n_slices=4, size=64)
    tifffile.imwrite(tmp_path / "stack.tif", image)
    for z in (0, 2):
        tifffile.imwrite(tmp_path / f"ex{z}.tif", image[z])
        tifffile.imwrite(tmp_path / f"ex{z}_mask.tif", labels[z])
    return tmp_path


def _support_args(d, adapt=False):
    """The two examples; without adaptation (tens of seconds here) unless the test is about it."""
    args = ["--support-images", str(d / "ex0.tif"), str(d / "ex2.tif"), "--support-masks", str(d / "ex0_mask.tif"), str(d / "ex2_mask.tif")]
    return args if adapt else [*args, "--no-adapt"]


def test_segment_a_stack_and_reuse_the_saved_support_set(files, capsys):
    out = files / "labels.tif"
    rc = main(
        [
            "segment",
            str(files / "stack.tif"),
            "--out",
            str(out),
            *_support_args(files, adapt=True),  # auto: adapted, and the same again from the saved set
            "--save-support",
            str(files / "set.npz"),
            "--mode",
            "resize",
            "--probabilities",
            str(files / "p.tif"),
        ]
    )
    assert rc == 0
    assert f"-> {out} (whole image resized; model adapted to your 2 examples)" in capsys.readouterr().err
    labels = tifffile.imread(out)
    assert labels.shape == (4, 64, 64) and labels.dtype == np.uint8 and labels.max() == 1
    assert tifffile.imread(files / "p.tif").shape == (4, 64, 64)
    assert len(SupportSet.load(files / "set.npz")) == 2
    rc = main(["segment", str(files / "stack.tif"), "--out", str(files / "again.tif"), "--support-set", str(files / "set.npz"), "--mode", "resize"])
    assert rc == 0 and np.array_equal(tifffile.imread(files / "again.tif"), labels)


def test_segment_prints_the_choice_and_its_estimate(files, capsys):
    out = files / "auto.tif"
    assert main(["segment", str(files / "stack.tif"), "--out", str(out), *_support_args(files)]) == 0
    err = capsys.readouterr().err
    assert "expected Dice about " in err and "from your 2 examples" in err
    assert main(["segment", str(files / "stack.tif"), "--out", str(out), *_support_args(files), "--predictor", "pixels"]) == 0
    err = capsys.readouterr().err
    assert "pixel classifier: expected Dice about " in err
    truth = synthetic_stack(n_slices=4, size=64)[1]
    assert (tifffile.imread(out)[1] == truth[1]).mean() > 0.95


def test_segment_a_folder_of_sample_images(tmp_path):
    images, masks = neuron_files()
    folder = tmp_path / "in"
    folder.mkdir()
    for p in images[3:5]:
        (folder / p.name).write_bytes(p.read_bytes())
    rc = main(
        [
            "segment",
            str(folder),
            "--out",
            str(tmp_path / "out"),
            "--support-images",
            *map(str, images[:2]),
            "--support-masks",
            *map(str, masks[:2]),
            "--mode",
            "resize",
            "--no-adapt",
        ]
    )
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["003_labels.tif", "004_labels.tif"]
    assert tifffile.imread(tmp_path / "out" / "003_labels.tif").shape == (480, 640)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--support-images", "a.tif"], "no support examples"),
        (["--support-set", "missing.npz"], "support-set file not found"),
        (["--weights", "nowhere.safetensors", "--support-set", "set.npz"], "weights file not found"),
    ],
)
def test_bad_input_is_one_line_without_traceback(files, args, message, capsys, monkeypatch):
    SupportSet().save(files / "set.npz")
    monkeypatch.chdir(files)
    rc = main(["segment", "stack.tif", "--out", "o.tif", *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "out,extra,message",
    [
        ("stack.tif", [], "output stack.tif is also an input"),
        ("ex0_mask.tif", [], "output ex0_mask.tif is also an input"),
        ("o.tif", ["--probabilities", "o.tif"], "two outputs would be written to o.tif"),
        ("o.tif", ["--save-support", "ex2.tif"], "output ex2.tif is also an input"),
    ],
)
def test_outputs_never_overwrite_inputs(files, out, extra, message, capsys, monkeypatch):
    monkeypatch.chdir(files)
    before = {p.name: p.read_bytes() for p in files.iterdir()}
    rc = main(["segment", "stack.tif", "--out", out, *_support_args(files), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in files.iterdir()} == before  # nothing written or changed


def test_out_equal_to_the_support_set_file_is_refused(files, capsys):
    path = files / "set.npz"
    assert main(["segment", str(files / "stack.tif"), "--out", str(files / "o.tif"), *_support_args(files), "--save-support", str(path)]) == 0
    before = path.read_bytes()
    rc = main(["segment", str(files / "stack.tif"), "--out", str(path), "--support-set", str(path)])
    assert rc == 2 and f"output {path} is also an input" in capsys.readouterr().err and path.read_bytes() == before


def test_label_70000_comes_out_as_70000_in_the_file_and_the_reader(files):
    from napari_universeg._reader import get_reader

    mask = tifffile.imread(files / "ex0_mask.tif").astype(np.uint32) * 70000
    tifffile.imwrite(files / "big_mask.tif", mask)
    args = ["--support-images", str(files / "ex0.tif"), "--support-masks", str(files / "big_mask.tif"), "--save-support", str(files / "big.npz")]
    assert main(["segment", str(files / "stack.tif"), "--out", str(files / "o.tif"), *args, "--predictor", "pixels", "--mode", "resize"]) == 0
    out = tifffile.imread(files / "o.tif")
    assert out.dtype == np.uint32 and set(np.unique(out)) == {0, 70000}
    layers = get_reader(str(files / "big.npz"))(str(files / "big.npz"))
    masks = [data for data, _, kind in layers if kind == "labels"][0]
    assert masks.dtype == np.uint32 and masks.max() == 70000


def test_output_folder_must_not_be_the_input_folder_and_must_be_writable(files, capsys, tmp_path, monkeypatch):
    rc = main(["segment", str(files), "--out", str(files), *_support_args(files)])
    assert rc == 2 and "--out is the input folder" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    import os

    try:
        if os.access(locked, os.W_OK):  # root writes anywhere: ask the same question another way
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).startswith(str(locked)) else real(p, mode))
        rc = main(["segment", str(files / "stack.tif"), "--out", str(locked / "o.tif"), *_support_args(files)])
        assert rc == 2 and f"cannot write output {locked / 'o.tif'}: permission denied" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_a_blank_slice_is_left_empty_with_a_warning(files, capsys):
    stack = tifffile.imread(files / "stack.tif").astype(np.float32)
    stack[2] = 0
    tifffile.imwrite(files / "blank.tif", stack)
    rc = main(["segment", str(files / "blank.tif"), "--out", str(files / "o.tif"), *_support_args(files), "--mode", "resize"])
    err = capsys.readouterr().err
    assert rc == 0 and "warning: " in err and "slice 2 is constant (every pixel is 0)" in err
    labels = tifffile.imread(files / "o.tif")
    assert labels.shape == stack.shape and not labels[2].any() and labels[[0, 1, 3]].any()


def test_errors_about_a_query_name_its_file(files, capsys):
    tifffile.imwrite(files / "tiny.tif", np.random.default_rng(0).random((4, 30)).astype(np.float32))
    rc = main(["segment", str(files / "tiny.tif"), "--out", str(files / "o.tif"), *_support_args(files)])
    assert rc == 2 and f"error: {files / 'tiny.tif'}: slice 0 is 4x30 px" in capsys.readouterr().err


def test_truncated_image_and_mismatched_mask(files, capsys):
    (files / "trunc.tif").write_bytes(tifffile.imread.__doc__.encode()[:100])
    rc = main(["segment", str(files / "trunc.tif"), "--out", str(files / "o.tif"), *_support_args(files)])
    assert rc == 2 and "cannot read image file" in capsys.readouterr().err
    tifffile.imwrite(files / "small_mask.tif", np.zeros((10, 10), np.uint8))
    rc = main(
        [
            "segment",
            str(files / "stack.tif"),
            "--out",
            str(files / "o.tif"),
            "--support-images",
            str(files / "ex0.tif"),
            "--support-masks",
            str(files / "small_mask.tif"),
        ]
    )
    assert rc == 2 and "shape" in capsys.readouterr().err


def test_console_script_runs_info_and_reports_errors(files):
    info = subprocess.run([sys.executable, "-m", "napari_universeg.cli", "info"], capture_output=True, text=True)
    assert info.returncode == 0 and "weights: default" in info.stdout and "device:" in info.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "napari_universeg.cli", "segment", "nope.tif", "--out", "x.tif", "--support-set", "nope.npz"],
        capture_output=True,
        text=True,
        cwd=files,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_evaluate_writes_the_json_layout(tmp_path):
    import imageio.v3 as iio

    image, labels = synthetic_stack(n_slices=6, size=64)
    (tmp_path / "ds" / "images").mkdir(parents=True)
    (tmp_path / "ds" / "masks").mkdir()
    for i in range(6):
        iio.imwrite(tmp_path / "ds" / "images" / f"{i:03d}.png", (image[i] / image.max() * 255).astype(np.uint8))
        tifffile.imwrite(tmp_path / "ds" / "masks" / f"{i:03d}.tif", labels[i])
    rc = main(
        [
            "evaluate",
            str(tmp_path / "ds"),
            "--support-sizes",
            "1,4",
            "--seeds",
            "0,1",
            "--json",
            str(tmp_path / "r.json"),
            "--mode",
            "resize",
            "--no-adapt",
        ]
    )
    assert rc == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["dataset"] == "ds" and r["method"] == "universeg" and set(r["summary"]) == {"1", "4"}
    assert r["summary"]["4"]["n_used"] == 3 and 0 <= r["summary"]["1"]["mean"] <= 1 and r["seconds"] > 0


def test_adapt_is_auto_unless_asked_for_or_refused():
    from napari_universeg.cli import build_parser

    base = ["segment", "s.tif", "--out", "o.tif", "--support-set", "x.npz"]
    assert build_parser().parse_args(base).adapt is None  # auto: from two examples of one class
    assert build_parser().parse_args([*base, "--adapt"]).adapt is True
    assert build_parser().parse_args([*base, "--no-adapt"]).adapt is False
