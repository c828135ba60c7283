"""Where model weights come from, and loading them without executing code from a file.

Three sources:
- "default": the project's own weights shipped in the package (trained on synthetic tasks).
- "official": the authors' checkpoint, downloaded only on explicit request into the user's cache
  (research use only; never bundled).
- a path: the project's format (.safetensors with a config in its metadata) or an
  official-layout state_dict (.pt/.pth, read with torch.load(weights_only=True), or .safetensors).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .model import ModelConfig, UniverSeg

PACKAGE_WEIGHTS = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = PACKAGE_WEIGHTS / "default.safetensors"
OFFICIAL_FILE = "universeg_v1_nf64_ss64_STA.pt"
OFFICIAL_URL = "https://github.com/JJGO/UniverSeg/releases/download/weights/" + OFFICIAL_FILE
OFFICIAL_LICENCE = (
    "The official UniverSeg weights (Butoi et al., ICCV 2023) are released under the OpenRAIL++-M "
    "licence with a research-use-only restriction: https://github.com/JJGO/UniverSeg . "
    "By downloading them you accept that licence."
)


class WeightsError(ValueError):
    """Weights missing, unreadable or of the wrong architecture."""


@dataclass
class WeightsInfo:
    """Where weights came from, their widths and their model card."""

    name: str  # "default", "official" or the file path
    config: ModelConfig
    card: dict = field(default_factory=dict)  # model card metadata (may be empty)

    def summary(self) -> str:
        """A few lines for ``napari-universeg info``."""
        card = self.card
        parts = [f"weights: {self.name}", f"widths: enc {list(self.config.encoder_widths)} dec {list(self.config.decoder_widths)}"]
        for key in ("description", "trained_on", "steps", "resolution", "evaluation_summary"):
            if key in card:
                parts.append(f"{key}: {card[key]}")
        return "\n".join(parts)


def official_key_map(config: ModelConfig) -> dict[str, str]:
    """Official checkpoint key -> this model's parameter name."""
    mapping = {}
    for prefix, ours, n in (("enc_blocks", "encoder", len(config.encoder_widths)), ("dec_blocks", "decoder", len(config.decoder_widths))):
        for i in range(n):
            for p in ("weight", "bias"):
                mapping[f"{prefix}.{i}.cross.cross_conv.{p}"] = f"{ours}.{i}.cross_{p}"
                mapping[f"{prefix}.{i}.target.vmapped.conv.{p}"] = f"{ours}.{i}.target_conv.{p}"
                mapping[f"{prefix}.{i}.support.vmapped.conv.{p}"] = f"{ours}.{i}.support_conv.{p}"
    mapping["out_conv.conv.weight"] = "head.weight"
    mapping["out_conv.conv.bias"] = "head.bias"
    return mapping


def _load_strict(model: UniverSeg, state: dict[str, torch.Tensor], source: str, names: dict[str, str] | None = None) -> None:
    """Load exactly the model's tensors; ``names`` maps our keys to the file's for messages."""
    _check_shapes(model, state, source, names)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)


def _build_checked(config: ModelConfig, state: dict[str, torch.Tensor], source: str, names: dict[str, str] | None = None) -> UniverSeg:
    """The model of ``config`` with ``state`` loaded, checked against the tensors first on a
    skeleton that allocates nothing: a config that declares huge layers costs no memory."""
    try:
        with torch.device("meta"):
            skeleton = UniverSeg(config.encoder_widths, config.decoder_widths)
    except (ValueError, RuntimeError) as e:
        raise WeightsError(f"{source}: invalid model config {config.to_dict()} ({e})") from None
    _check_shapes(skeleton, state, source, names)
    model = UniverSeg(config.encoder_widths, config.decoder_widths)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.eval()


def _check_shapes(model: UniverSeg, state: dict[str, torch.Tensor], source: str, names: dict[str, str] | None = None) -> None:
    names = names or {}
    expected = model.state_dict()
    missing = sorted(names.get(k, k) for k in set(expected) - set(state))
    extra = sorted(names.get(k, k) for k in set(state) - set(expected))
    if missing or extra:
        raise WeightsError(f"{source}: wrong architecture; missing tensors {missing or 'none'}, unexpected tensors {extra or 'none'}")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise WeightsError(
                f"{source}: wrong architecture; tensor {names.get(key, key)} has shape {tuple(tensor.shape)}, expected {tuple(expected[key].shape)}"
            )


def load_official_state_dict(model: UniverSeg, state_dict: dict[str, torch.Tensor], source: str = "state_dict") -> None:
    """Load an official-layout state_dict into ``model`` through the explicit key map, strictly."""
    _load_strict(model, *_from_official(model.config, state_dict, source))


def _from_official(config: ModelConfig, state_dict: dict[str, torch.Tensor], source: str) -> tuple[dict, str, dict]:
    """(our state, source, our names -> the file's) of an official-layout state_dict."""
    mapping = official_key_map(config)
    unknown = sorted(set(state_dict) - set(mapping))
    missing = sorted(set(mapping) - set(state_dict))
    if unknown or missing:
        raise WeightsError(f"{source}: not an official-layout UniverSeg state_dict; missing {missing or 'none'}, unexpected {unknown or 'none'}")
    return {mapping[k]: v for k, v in state_dict.items()}, source, {v: k for k, v in mapping.items()}


def from_official_state_dict(state_dict: dict[str, torch.Tensor], source: str = "state_dict") -> UniverSeg:
    """The model (in eval mode) of a state_dict laid out like the official checkpoint, its widths
    read from the tensors and checked before anything is built."""
    config = _config_from_official(state_dict)
    return _build_checked(config, *_from_official(config, state_dict, source))


def _config_from_official(state_dict: dict[str, torch.Tensor]) -> ModelConfig:
    def width(prefix: str, i: int) -> int:
        return int(state_dict[f"{prefix}.{i}.cross.cross_conv.bias"].shape[0])

    n_enc = len({k.split(".")[1] for k in state_dict if k.startswith("enc_blocks.")})
    n_dec = len({k.split(".")[1] for k in state_dict if k.startswith("dec_blocks.")})
    if n_enc < 2 or n_dec != n_enc - 1:
        raise WeightsError(f"not an official-layout UniverSeg state_dict ({n_enc} encoder and {n_dec} decoder blocks)")
    try:
        return ModelConfig(tuple(width("enc_blocks", i) for i in range(n_enc)), tuple(width("dec_blocks", i) for i in range(n_dec)))
    except KeyError as e:
        raise WeightsError(f"not an official-layout UniverSeg state_dict: missing {e}") from None


def save_weights(model: UniverSeg, path: str | Path, card: dict | None = None, half: bool = True) -> None:
    """Save in the project's format: safetensors (fp16 by default) with config and card as metadata."""
    tensors = {k: (v.half() if half else v.float()).contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format": "napari-universeg", "config": json.dumps(model.config.to_dict()), "card": json.dumps(card or {})}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return load_file(str(path)), meta
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: cannot read weights file ({e})") from None


def load_weights_file(path: str | Path) -> tuple[UniverSeg, WeightsInfo]:
    """A model (eval mode) from a weights file: the project's .safetensors or an official-layout
    .pt/.pth/.safetensors state_dict; checked before anything is built, no code run."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if not os.access(path, os.R_OK):
        raise WeightsError(f"cannot read weights file {path}: permission denied")
    if path.suffix == ".safetensors":
        state, meta = _read_safetensors(path)
        if meta.get("format") == "napari-universeg":
            try:
                config = ModelConfig.from_dict(json.loads(meta["config"]))
                card = json.loads(meta.get("card", "{}"))
            except (KeyError, TypeError, ValueError) as e:  # missing, not JSON, or not the expected fields
                raise WeightsError(f"{path}: the model config in the file's metadata is missing or invalid ({type(e).__name__}: {e})") from None
            return _build_checked(config, state, str(path)), WeightsInfo(str(path), config, card if isinstance(card, dict) else {})
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for corrupt or unsafe files
            first_line = (str(e).splitlines() or [f"{type(e).__name__}: the file is empty or truncated"])[0]
            raise WeightsError(f"{path}: cannot read weights file ({first_line})") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise WeightsError(f"{path}: not a state_dict of tensors")
    model = from_official_state_dict(state, str(path))
    return model, WeightsInfo(str(path), model.config, {"description": "official-layout state_dict"})


def cache_dir() -> Path:
    """The user's cache folder for downloaded weights ($XDG_CACHE_HOME/napari-universeg)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "napari-universeg"


def download_official(url: str | None = None) -> Path:
    """Download the official weights into the user's cache (after printing their licence)."""
    target = cache_dir() / OFFICIAL_FILE
    if target.is_file():
        return target
    print(OFFICIAL_LICENCE, file=sys.stderr)
    url = url or os.environ.get("NAPARI_UNIVERSEG_OFFICIAL_URL", OFFICIAL_URL)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise WeightsError(f"could not download the official weights from {url}: {e}") from None
    tmp.replace(target)
    return target


def load_weights(spec: str | Path = "default", allow_download: bool = False) -> tuple[UniverSeg, WeightsInfo]:
    """Load weights by name ("default", "official") or path. Returns the model in eval mode."""
    if str(spec) == "default":
        if not DEFAULT_WEIGHTS.is_file():
            raise WeightsError(
                "no default weights are installed yet in this version of napari-universeg; "
                "use --weights PATH (a weights file) or --weights official --download-official"
            )
        model, info = load_weights_file(DEFAULT_WEIGHTS)
        info.name = "default"
        return model, info
    if str(spec) == "official":
        path = cache_dir() / OFFICIAL_FILE
        if not path.is_file():
            if not allow_download:
                raise WeightsError(
                    f"the official weights are not in {path.parent}; they are research-use-only and are "
                    "downloaded only on request: add --download-official (CLI) to fetch them"
                )
            path = download_official()
        model, info = load_weights_file(path)
        info.name = "official"
        info.card = {"description": "official UniverSeg weights (research use only)"}
        return model, info
    return load_weights_file(spec)
