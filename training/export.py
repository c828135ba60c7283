"""Turn a training checkpoint into the package's default weights and model card.

    napari-universeg-export --run runs/default [--eval benchmarks/results/accuracy.json]

Writes src/napari_universeg/weights/default.safetensors (fp16, safetensors: no code in the file)
and default.md (the model card). The card's evaluation table comes from a JSON written by
``python -m benchmarks.accuracy``, when given. Runs from a source checkout (an editable install,
``pip install -e .``), so that the default output is the checkout's weights folder and the card
records the checkout's git commit.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
from pathlib import Path

import torch

from napari_universeg.evaluate import comparison_table
from napari_universeg.model import UniverSeg
from napari_universeg.weights import DEFAULT_WEIGHTS, save_weights

from .data.prepare import read_sources
from .train import seconds_by_device

REPO = Path(__file__).resolve().parents[1]  # the source checkout that holds training/


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _last_val(run: Path) -> dict:
    path = run / "val.csv"
    if not path.is_file():
        return {}
    rows = list(csv.DictReader(path.open()))
    return rows[-1] if rows else {}


def training_sources_used(cfg: dict) -> list[dict]:
    """Manifest rows (training/data/sources.csv) of the real sources a run trained on."""
    if not cfg.get("real_ratio"):
        return []
    heldout = set(cfg.get("real_heldout") or [])
    return [r for r in read_sources() if r["split"] == "train" and r["name"] not in heldout]


def export(run: Path, out: Path, hardware: str, eval_json: list[Path] | None) -> dict:
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    cfg = json.loads(state["config"])
    model = UniverSeg(**cfg["model"])
    model.load_state_dict(state["model"])
    steps = int(state["step"])
    before = json.loads(state.get("before", '{"minutes": 0.0, "steps": 0}'))
    by_device = seconds_by_device(state)
    sources = training_sources_used(cfg)
    synthetic = "synthetic tasks (training/synth.py: SynthMorph-like label maps, nuclei/blobs, membranes, curvilinear structures, textures; fluorescence, brightfield and EM intensity models)"
    card = {
        "description": "napari-universeg default weights: UniverSeg trained on "
        + (f"synthetic and real tasks ({cfg['real_ratio']:.0%} real)" if sources else "synthetic tasks only"),
        "trained_on": synthetic + ("; real tasks of " + ", ".join(f"{r['name']} ({r['licence']})" for r in sources) if sources else ""),
        "sources": [{k: r[k] for k in ("name", "modality", "repo", "commit", "licence", "attribution")} for r in sources],
        "steps": before["steps"] + steps,
        "support_sizes": cfg["support_sizes"],
        "resolution": f"{cfg['size']} px",
        "hardware": hardware,
        "training_minutes": round(float(state["elapsed"]) / 60, 1),
        "training_minutes_by_device": {k: round(v / 60, 1) for k, v in sorted(by_device.items())},
        # all GPU training behind these weights: the weights this run started from (all GPU) and this run's GPU time
        "gpu_minutes": round(before["minutes"] + by_device.get("cuda", 0.0) / 60, 1),
        "run": str(run),
        "commit": _commit(),
        "config": cfg,
        "synthetic_validation": _last_val(run),
        "licence": "BSD-3-Clause (same as the package)",
    }
    results = [r for path in eval_json or [] for r in json.loads(path.read_text())]
    if results:
        means = {}
        for r in results:
            if r["method"] == "universeg":
                for n, v in r["summary"].items():
                    means.setdefault(n, []).append(v["mean"])
        card["evaluation_summary"] = ", ".join(f"N={n}: mean Dice {sum(v) / len(v):.3f}" for n, v in means.items())
    save_weights(model, out, card)
    notes = run / "NOTES.md"
    write_card(out.with_suffix(".md"), card, results, notes.read_text() if notes.is_file() else "")
    return card


def write_card(path: Path, card: dict, results: list[dict], notes: str = "") -> None:
    cfg = card["config"]
    lines = [
        "# Model card: napari-universeg default weights",
        "",
        card["description"] + ".",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | UniverSeg, encoder widths {cfg['model']['encoder_widths']}, decoder widths {cfg['model']['decoder_widths']} (official layout) |",
        f"| data | {card['trained_on']}{'' if card['sources'] else '; no real images'} |",
        f"| steps | {card['steps']} in all (support size per step drawn from {card['support_sizes']}) |",
        f"| resolution | {card['resolution']} |",
        f"| hardware, wall time | {card['hardware']}; {card['training_minutes']} min in this run"
        f" ({', '.join(f'{k} {v}' for k, v in card['training_minutes_by_device'].items())}); {card['gpu_minutes']} GPU minutes in all |",
        f"| recipe | soft Dice + BCE, AdamW (lr {cfg['lr']:g}, weight decay {cfg['weight_decay']:g}), warm-up + cosine"
        f" (restarted where a resume extended the steps: see below), bf16 autocast, grad clip {cfg['grad_clip']:g} |",
        f"| config | saved in {card['run']}/checkpoint.pt (real_ratio {cfg.get('real_ratio', 0.0):g}, {cfg['total_steps']} steps scheduled) |",
        f"| commit | {card['commit']} |",
        "| file | fp16 safetensors |",
        f"| licence | {card['licence']} |",
        "",
        f"Synthetic held-out validation (Dice at S=1/4/16): {card['synthetic_validation']}",
        "",
    ]
    if card["sources"]:
        lines += [
            "## Real training data (training/data/sources.csv)",
            "",
            "| source | modality | repository @ commit | licence | attribution |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['name']} | {r['modality']} | {r['repo']} @ {r['commit'][:10]} | {r['licence']} | {r['attribution']} |" for r in card["sources"]
        ]
        lines.append("")
    if results:
        lines += [
            "## Evaluation on real data (standard protocol of shared/evaldata, Dice mean ± std over seeds 0, 1, 2, and the worst seed)",
            "",
            comparison_table(results),
            "",
            "Produced by `python -m benchmarks.accuracy` (`--predictor universeg` for the weights alone, the default for the"
            " plugin). Research-use data; used for evaluation only, never for training.",
            "",
        ]
    path.write_text("\n".join(lines) + "\n" + notes)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, type=Path, help="training run folder with checkpoint.pt")
    p.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    p.add_argument("--hardware", default="1x NVIDIA H100 80GB")
    p.add_argument("--eval", type=Path, nargs="+", help="JSON files from python -m benchmarks.accuracy for the model card")
    args = p.parse_args(argv)
    card = export(args.run, args.out, args.hardware, args.eval)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) and {args.out.with_suffix('.md')}, {card['steps']} steps")


if __name__ == "__main__":
    main()
