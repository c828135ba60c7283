"""The napari manifest, and napari start-up staying free of torch."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_npe2_validate_the_installed_plugin():
    # CI also runs `npe2 validate napari-universeg` after a regular (wheel) install.
    npe2 = Path(sys.executable).parent / "npe2"
    r = subprocess.run([str(npe2), "validate", "napari-universeg", "--imports"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_packaged_manifest_is_the_root_manifest():
    import napari_universeg

    packaged = Path(napari_universeg.__file__).parent / "napari.yaml"
    assert packaged.read_text() == (ROOT / "napari.yaml").read_text()


def test_plugin_modules_and_sample_data_do_not_import_torch():
    code = (
        "import sys, napari_universeg, napari_universeg._sample_data as s;"
        "import napari_universeg._widget, napari_universeg._reader, napari_universeg._writer;"
        "s.neurons_sample(); s.synthetic_sample();"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_sample_data_layers():
    from napari_universeg._sample_data import neurons_sample, synthetic_sample

    (img, img_kw, img_type), (lab, lab_kw, lab_type) = neurons_sample()
    assert img.shape == lab.shape == (12, 480, 640) and (img_type, lab_type) == ("image", "labels")
    assert [z for z in range(12) if lab[z].any()] == [0, 1, 2]
    (img, kw, _), (lab, _, _) = synthetic_sample()
    assert img.shape == lab.shape and kw["scale"] == (2.0, 1.0, 1.0)
