"""Episodic training of UniverSeg on synthetic and real tasks.

    napari-universeg-train --config training/configs/default.yaml --out runs/default [--minutes 10]

or, without installing the package, from the repository root (as training/gpu_run.sh does):

    PYTHONPATH=src:. python -m training.train --config training/configs/default.yaml --out runs/default

Training runs from a source checkout (an editable install, ``pip install -e .``): a relative
``real_cache`` is read from the repository root, the folder above training/.

A share ``real_ratio`` of each step's tasks comes from the real-task cache (training/data, built by
``napari-universeg-prepare-data``), the rest from the synthetic generator (training/synth.py).
Sources named in ``real_heldout`` are never trained on: validation reports them apart.

Resumable: a run writes ``checkpoint.pt`` into --out every few hundred steps or few minutes,
whichever comes first, and at the end;
starting the same command again continues the same run (same schedule, same data stream, since
every step's tasks are drawn from a seed derived from the step number). Runs on CPU and CUDA
unchanged; a checkpoint from one resumes on the other. Logs: train.csv, val.csv, evaldata.jsonl.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader, Dataset

from napari_universeg.device import autocast, autocast_dtype, pick_device
from napari_universeg.evaluate import evaldata_dir
from napari_universeg.model import UniverSeg

from .real import RealTaskSampler, load_sources
from .synth import TaskGenerator

EVALDATA = evaldata_dir()
REPO = Path(__file__).resolve().parents[1]  # the source checkout that holds training/


@dataclass
class TrainConfig:
    model: dict = field(default_factory=lambda: {"encoder_widths": [64] * 4, "decoder_widths": [64] * 3})
    size: int = 128
    seed: int = 0
    # Defaults are the shipped recipe, training/configs/default.yaml (a test keeps them equal).
    support_sizes: list = field(default_factory=lambda: [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64])
    support_weights: list | None = field(default_factory=lambda: [3, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1])
    items_per_step: int = 192
    max_batch: int = 32
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 300
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    total_steps: int = 30000
    bf16: str | bool = "auto"
    log_every: int = 50
    val_every: int = 500
    val_batch: int = 8
    checkpoint_every: int = 500
    checkpoint_minutes: float = 5.0  # ... or after this wall time, whichever comes first (a slow CPU)
    evaldata_every: int = 0
    evaldata_sizes: list = field(default_factory=lambda: [1, 4, 16])
    real_ratio: float = 0.0  # share of each step's tasks drawn from real data
    real_cache: str = "training/data/cache"  # relative to the repository root, or absolute
    real_heldout: list = field(default_factory=list)  # cached sources left out of training, validated apart

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        return cls(**data)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio * lr."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def step_shape(step: int, cfg: TrainConfig) -> tuple[int, int]:
    """(batch, support size) of a step, drawn from a seed derived from the step number."""
    rng = np.random.default_rng([cfg.seed, step, 1])
    w = np.asarray(cfg.support_weights or [1] * len(cfg.support_sizes), dtype=float)
    s = int(rng.choice(cfg.support_sizes, p=w / w.sum()))
    return max(1, min(cfg.max_batch, cfg.items_per_step // (s + 1))), s


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft Dice + BCE per task, averaged. Returns (loss, hard Dice per task)."""
    logits = logits.float().flatten(1)
    target = target.float().flatten(1)
    p = torch.sigmoid(logits)
    soft_dice = (2 * (p * target).sum(1) + 1) / (p.sum(1) + target.sum(1) + 1)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(1)
    with torch.no_grad():
        hard = (logits > 0).float()
        dice = (2 * (hard * target).sum(1) + 1e-6) / (hard.sum(1) + target.sum(1) + 1e-6)
    return (1 - soft_dice + bce).mean(), dice


def use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.bf16 == "auto":
        return autocast_dtype(device) is not None
    return bool(cfg.bf16)


def seconds_by_device(state: dict) -> dict[str, float]:
    """A checkpoint's training seconds per device type ("cuda", "cpu"); checkpoints written before
    they were kept apart give all their time as "unknown"."""
    return json.loads(state.get("elapsed_by_device", json.dumps({"unknown": float(state["elapsed"])})))


class Trainer:
    def __init__(self, cfg: TrainConfig, out: Path, device: torch.device):
        self.cfg, self.out, self.device = cfg, out, device
        torch.manual_seed(cfg.seed)
        self.model = UniverSeg(**cfg.model).to(device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step = 0
        self.elapsed = 0.0  # training seconds over all sessions of this run
        self.elapsed_by_device: dict[str, float] = {}  # the same, per device type ("cuda", "cpu"): the card reports GPU minutes
        self.before = {"minutes": 0.0, "steps": 0}  # training of the weights this run started from (--init)
        self.bf16 = use_bf16(cfg, device)
        self._val_tasks: dict | None = None

    # -- data --------------------------------------------------------------------------------
    @property
    def val_tasks(self) -> dict:
        """Fixed validation tasks, made on first use: synthetic ones (seeds far beyond any
        training step) as "dice_S<s>", and tasks of the held-out real sources as "real_dice_S<s>"."""
        if self._val_tasks is None:
            cfg = self.cfg
            tasks = {f"dice_S{s}": synthetic_tasks(cfg, 10**9 + i, cfg.val_batch, s) for i, s in enumerate((1, 4, 16))}
            heldout = load_sources(real_cache(cfg), cfg.real_heldout) if cfg.real_heldout else []
            if heldout:
                sampler = RealTaskSampler(heldout, cfg.size, seed=10**9)
                tasks.update({f"real_dice_S{s}": sampler.sample(cfg.val_batch, s) for s in (1, 4, 16)})
            self._val_tasks = {k: tuple(t.to(self.device) for t in v) for k, v in tasks.items()}
        return self._val_tasks

    def batches(self, workers: int):
        """Each step's tasks, generated on the CPU (the same stream on every device), by
        ``workers`` background processes when > 0 (the generator launches many small ops,
        which is slower on a GPU than a few CPU cores)."""
        loader = DataLoader(
            _StepTasks(self.cfg),
            batch_size=None,
            sampler=range(self.step, 10**12),
            num_workers=workers,
            prefetch_factor=4 if workers else None,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_one_thread,
        )
        for q, qm, si, sm in loader:
            yield tuple(t.to(self.device, non_blocking=True) for t in (q, qm, si, sm))

    # -- checkpoints -------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def save(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "elapsed_by_device": json.dumps(self.elapsed_by_device),
            "before": json.dumps(self.before),
            "config": json.dumps(asdict(self.cfg)),
        }
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint_path)

    @staticmethod
    def saved_config(path: Path) -> TrainConfig:
        """The config a run was started with (it wins over the yaml when resuming)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        return TrainConfig(**json.loads(state["config"]))

    def load(self) -> None:
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        self.elapsed_by_device = seconds_by_device(state)
        self.before = json.loads(state.get("before", '{"minutes": 0.0, "steps": 0}'))

    # -- training ----------------------------------------------------------------------------
    def autocast(self):
        return autocast(self.device, torch.bfloat16 if self.bf16 else None)

    def train_step(self, tasks) -> dict:
        q, qm, si, sm = tasks
        batch, s = si.shape[:2]
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, self.cfg)
        self.model.train()
        with self.autocast():
            logits = self.model(q, si, sm)
        loss, dice = segmentation_loss(logits, qm)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.step += 1
        return {"loss": loss.item(), "dice": dice.mean().item(), "grad_norm": grad_norm.item(), "support_size": s, "batch": batch}

    @torch.no_grad()
    def validate(self) -> dict:
        self.model.eval()
        row = {"step": self.step}
        for key, (q, qm, si, sm) in self.val_tasks.items():
            with self.autocast():
                logits = self.model(q, si, sm)
            row[key] = round(segmentation_loss(logits, qm)[1].mean().item(), 4)
        return row

    def evaldata(self) -> dict | None:
        if not EVALDATA.is_dir():
            return None
        from napari_universeg.evaluate import load_dataset, run_protocol
        from napari_universeg.predict import make_universeg_method

        self.model.eval()
        method = make_universeg_method(model=self.model, device=str(self.device))
        results = {"step": self.step}
        for folder in sorted(p for p in EVALDATA.iterdir() if (p / "images").is_dir()):
            r = run_protocol(load_dataset(folder), method, "universeg", support_sizes=tuple(self.cfg.evaldata_sizes), seeds=(0, 1, 2))
            results[folder.name] = {n: round(v["mean"], 4) for n, v in r["summary"].items()}
        return results

    def run(self, max_minutes: float | None, fit_schedule: bool = False, workers: int = 0) -> None:
        """Train until total_steps or the wall time. With fit_schedule (a new run only), the
        schedule's total_steps is set from the speed of the first steps to end at the deadline."""
        self.out.mkdir(parents=True, exist_ok=True)
        start = time.time()
        if self.checkpoint_path.is_file():
            self.load()
            fit_schedule = False
            print(f"resumed at step {self.step}", flush=True)
        deadline = start + 60 * max_minutes if max_minutes else float("inf")
        calibrate_at = (20, 60) if fit_schedule and max_minutes else None
        log = _CsvLog(self.out / "train.csv")
        val_log = _CsvLog(self.out / "val.csv")
        if self.step == 0:  # where the run starts from (e.g. the --init weights), for comparison
            val_log.write(self.validate())
        first_step = self.step
        t_last, n_last = time.time(), 0
        t_saved = time.time()
        batches = self.batches(workers)
        while self.step < self.cfg.total_steps and time.time() < deadline:
            t0 = time.time()
            row = self.train_step(next(batches))
            took = time.time() - t0
            self.elapsed += took
            self.elapsed_by_device[self.device.type] = self.elapsed_by_device.get(self.device.type, 0.0) + took
            n_last += 1
            if calibrate_at and self.step == calibrate_at[0]:
                t_cal = time.time()
            if calibrate_at and self.step == calibrate_at[1]:
                sec = (time.time() - t_cal) / (calibrate_at[1] - calibrate_at[0])
                # leave ~4% of the time for validation and checkpoints
                self.cfg.total_steps = self.step + int(0.96 * (deadline - time.time()) / sec)
                calibrate_at = None
                print(f"schedule fitted: {sec:.3f} s/step -> total_steps {self.cfg.total_steps}", flush=True)
            if self.step % self.cfg.log_every == 0:
                sec = (time.time() - t_last) / n_last
                log.write(
                    {
                        "step": self.step,
                        "lr": f"{lr_at(self.step - 1, self.cfg):.3g}",
                        **{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()},
                        "sec_per_step": round(sec, 4),
                        "elapsed_s": round(self.elapsed),
                    }
                )
                print(f"step {self.step} loss {row['loss']:.4f} dice {row['dice']:.3f} S={row['support_size']} {sec:.3f}s/step", flush=True)
                t_last, n_last = time.time(), 0
            if self.step % self.cfg.val_every == 0:
                v = self.validate()
                val_log.write(v)
                print("val", v, flush=True)
            if self.step % self.cfg.checkpoint_every == 0 or time.time() - t_saved >= 60 * self.cfg.checkpoint_minutes:
                self.save()
                t_saved = time.time()
            if self.cfg.evaldata_every and self.step % self.cfg.evaldata_every == 0:
                self._log_evaldata()
        self.save()
        if self.step > first_step and self.step % self.cfg.val_every:  # where this stretch ended, unless just validated (or it took no step)
            val_log.write(self.validate())
        print(f"stopped at step {self.step} of {self.cfg.total_steps} ({self.elapsed / 60:.1f} min of training)", flush=True)

    def _log_evaldata(self) -> None:
        r = self.evaldata()
        if r is not None:
            with open(self.out / "evaldata.jsonl", "a") as f:
                f.write(json.dumps(r) + "\n")
            print("evaldata", r, flush=True)


def real_cache(cfg: TrainConfig) -> Path:
    path = Path(cfg.real_cache)
    return path if path.is_absolute() else REPO / path


_TRAINING_SOURCES: dict = {}  # per process: the real sources, loaded once


def training_sources(cfg: TrainConfig) -> list:
    key = (str(real_cache(cfg)), tuple(cfg.real_heldout))
    if key not in _TRAINING_SOURCES:
        sources = load_sources(real_cache(cfg), exclude=cfg.real_heldout)
        if not sources:
            raise FileNotFoundError(f"real_ratio is {cfg.real_ratio} but {real_cache(cfg)} has no sources (napari-universeg-prepare-data)")
        _TRAINING_SOURCES[key] = sources
    return _TRAINING_SOURCES[key]


def synthetic_tasks(cfg: TrainConfig, seed: int, batch: int, support_size: int):
    return TaskGenerator(cfg.size, seed=(cfg.seed * 1_000_003 + seed) % 2**62, device="cpu").sample(batch, support_size)


def step_tasks(cfg: TrainConfig, step: int, batch: int, support_size: int):
    """The tasks of one step, on the CPU, from a seed derived from the step number: a binomial
    share real_ratio of them real, the rest synthetic (real ones first)."""
    n_real = int(np.random.default_rng([cfg.seed, step, 2]).binomial(batch, cfg.real_ratio)) if cfg.real_ratio > 0 else 0
    parts = []
    if n_real:
        parts.append(RealTaskSampler(training_sources(cfg), cfg.size, seed=(cfg.seed * 1_000_003 + step) % 2**62).sample(n_real, support_size))
    if batch - n_real:
        parts.append(synthetic_tasks(cfg, step, batch - n_real, support_size))
    return tuple(torch.cat(ts) for ts in zip(*parts))


class _StepTasks(Dataset):
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    def __len__(self) -> int:
        return 10**12

    def __getitem__(self, step: int):
        return step_tasks(self.cfg, step, *step_shape(step, self.cfg))


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)


class _CsvLog:
    def __init__(self, path: Path):
        self.path = path

    def write(self, row: dict) -> None:
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True, help="run folder (checkpoint and logs); an existing run resumes")
    p.add_argument("--minutes", type=float, help="stop (with a checkpoint) after this wall time")
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--total-steps", type=int, help="override the config's total_steps (fixes the schedule of a new run)")
    p.add_argument("--workers", type=int, help="task-generating processes (default: cores - 2 on CUDA, 0 on CPU)")
    p.add_argument("--init", help="new run: start from these weights (e.g. the shipped default) instead of random")
    p.add_argument("--fit-schedule", action="store_true", help="new run: fit total_steps to --minutes from the measured speed")
    p.add_argument("--evaldata", action="store_true", help="run the evaldata protocol at the end")
    args = p.parse_args(argv)
    checkpoint = Path(args.out) / "checkpoint.pt"
    if checkpoint.is_file():
        cfg = Trainer.saved_config(checkpoint)
        if cfg != TrainConfig.from_yaml(args.config):
            print(f"note: resuming with the config saved in {checkpoint}, not {args.config}", flush=True)
    else:
        cfg = TrainConfig.from_yaml(args.config)
    if args.total_steps:
        cfg.total_steps = args.total_steps
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    trainer = Trainer(cfg, Path(args.out), device)
    if args.init and not checkpoint.is_file():
        from napari_universeg.weights import load_weights

        init, info = load_weights(args.init)
        trainer.model.load_state_dict(init.state_dict())
        trainer.before = {
            "minutes": float(info.card.get("gpu_minutes", info.card.get("training_minutes", 0.0))),
            "steps": int(info.card.get("steps", 0)),
        }
    print(f"device {device}, bf16 {trainer.bf16}, {sum(p.numel() for p in trainer.model.parameters())} parameters", flush=True)
    workers = args.workers if args.workers is not None else (max(1, (os.cpu_count() or 2) - 2) if device.type == "cuda" else 0)
    trainer.run(args.minutes, args.fit_schedule, workers)
    if args.evaldata:
        trainer._log_evaldata()


if __name__ == "__main__":
    main()
