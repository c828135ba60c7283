"""Weight sources: the project's format, official-layout files, safety, clear errors."""

import pytest
import torch
from safetensors.torch import save_file

from napari_universeg import UniverSeg
from napari_universeg import weights as W
from napari_universeg.weights import (
    WeightsError,
    load_weights,
    load_weights_file,
    save_weights,
)
from tests.naive_universeg import random_official_state_dict
from tests.test_hostile import LIMIT_MB, _peak_mb

TINY = ((8, 8, 8, 8), (8, 8, 8))


def test_project_format_round_trip_in_half_precision(tmp_path):
    model = UniverSeg(*TINY)
    save_weights(model, tmp_path / "w.safetensors", card={"steps": 3})
    loaded, info = load_weights_file(tmp_path / "w.safetensors")
    assert info.config == model.config and info.card == {"steps": 3}
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v.half().float())


def test_official_layout_files_pt_and_safetensors(tmp_path):
    sd = random_official_state_dict(*TINY)
    torch.save(sd, tmp_path / "official.pt")
    save_file(sd, str(tmp_path / "official.safetensors"))
    for name in ("official.pt", "official.safetensors"):
        model, info = load_weights_file(tmp_path / name)
        assert info.config.encoder_widths == (8, 8, 8, 8)
        assert torch.equal(model.state_dict()["head.weight"], sd["out_conv.conv.weight"])


def test_pickled_code_is_never_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed!",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        load_weights_file(tmp_path / "evil.pt")


def test_bad_files_name_the_problem(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_weights_file(tmp_path / "missing.pt")
    (tmp_path / "trunc.safetensors").write_bytes(b"\x10\x00\x00")
    with pytest.raises(WeightsError, match="cannot read"):
        load_weights_file(tmp_path / "trunc.safetensors")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(WeightsError, match="empty.pt: cannot read weights file \\(EOFError: the file is empty or truncated\\)"):
        load_weights_file(tmp_path / "empty.pt")
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="not an official-layout"):
        load_weights_file(tmp_path / "other.pt")
    sd = random_official_state_dict(*TINY)
    sd["enc_blocks.1.cross.cross_conv.weight"] = torch.zeros(8, 5, 3, 3)
    torch.save(sd, tmp_path / "wrongshape.pt")
    with pytest.raises(WeightsError, match="enc_blocks.1.cross.cross_conv.weight has shape"):
        load_weights_file(tmp_path / "wrongshape.pt")


def test_declared_sizes_are_checked_before_the_model_is_built(tmp_path):
    import json

    small = {k: v.half() for k, v in UniverSeg(*TINY).state_dict().items()}
    config = {"encoder_widths": [3000] * 4, "decoder_widths": [3000] * 3}
    save_file(small, str(tmp_path / "wide.safetensors"), metadata={"format": "napari-universeg", "config": json.dumps(config)})
    peak, said = _peak_mb(f"load_weights_file({str(tmp_path / 'wide.safetensors')!r})")
    assert said.startswith("error:") and "wrong architecture" in said and peak < LIMIT_MB
    sd = random_official_state_dict(*TINY)
    sd["enc_blocks.0.cross.cross_conv.bias"] = torch.zeros(5000)
    torch.save(sd, tmp_path / "widebias.pt")
    peak, said = _peak_mb(f"load_weights_file({str(tmp_path / 'widebias.pt')!r})")
    assert said.startswith("error:") and "has shape" in said and peak < LIMIT_MB
    for config in ("not json", json.dumps({"encoder_widths": [8]})):
        save_file(small, str(tmp_path / "bad.safetensors"), metadata={"format": "napari-universeg", "config": config})
        with pytest.raises(WeightsError, match="bad.safetensors: the model config in the file's metadata is missing or invalid"):
            load_weights_file(tmp_path / "bad.safetensors")
    save_file(small, str(tmp_path / "noconfig.safetensors"), metadata={"format": "napari-universeg"})
    with pytest.raises(WeightsError, match="noconfig.safetensors: the model config"):
        load_weights_file(tmp_path / "noconfig.safetensors")


def test_default_weights_ship_with_the_package():
    model, info = load_weights("default")
    assert info.name == "default" and info.card["steps"] > 0
    assert W.DEFAULT_WEIGHTS.stat().st_size < 5_000_000
    assert W.DEFAULT_WEIGHTS.with_suffix(".md").is_file()


def test_missing_default_weights_say_so(monkeypatch, tmp_path):
    monkeypatch.setattr(W, "DEFAULT_WEIGHTS", tmp_path / "none.safetensors")
    with pytest.raises(WeightsError, match="no default weights are installed"):
        load_weights("default")


def test_official_weights_only_on_request(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(WeightsError, match="--download-official"):
        load_weights("official")
    served = tmp_path / "served.pt"
    torch.save(random_official_state_dict(), served)
    monkeypatch.setenv("NAPARI_UNIVERSEG_OFFICIAL_URL", served.as_uri())
    model, info = load_weights("official", allow_download=True)
    assert info.name == "official" and model.config.encoder_widths == (64, 64, 64, 64)
    assert "research-use-only" in capsys.readouterr().err
    assert (tmp_path / "cache" / "napari-universeg" / W.OFFICIAL_FILE).is_file()


def test_an_unreadable_weights_file_says_permission_denied(tmp_path, monkeypatch):
    import os

    path = tmp_path / "locked.safetensors"
    save_weights(UniverSeg(*TINY), path)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # root reads anything: ask the same question another way
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(path) else real(p, mode))
        with pytest.raises(WeightsError, match="cannot read weights file .*locked.safetensors: permission denied"):
            load_weights_file(path)
    finally:
        path.chmod(0o600)
