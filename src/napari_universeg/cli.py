"""The command line: ``napari-universeg segment | evaluate | info``.

Bad input ends with a one-line ``error: ...`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .options import MAX_SUPPORT_SIZE, METHODS, MODES, PRECISIONS, SEGMENTING, TASKS, PredictOptions, parse_int_list

DEFAULTS = PredictOptions()


def _int_list(text: str) -> list[int]:
    try:
        return parse_int_list(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class PhaseBars:
    """progress(phase, done, total) of the engine as tqdm bars on stderr, one phase after another
    (the choice of "auto" takes minutes on a CPU: it must not look like a hang). Phases in
    ``skip`` (segment's slices, which have their own bar) close the bar and show nothing."""

    def __init__(self, skip: tuple[str, ...] = ()):
        self.skip, self.phase, self.bar = skip, None, None

    def __call__(self, phase: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if phase in self.skip:
            return self.close()
        if phase != self.phase:
            self.close()
            unit = "slice" if phase == SEGMENTING else "step"
            self.phase, self.bar = phase, tqdm(total=total or None, desc=phase, file=sys.stderr, leave=False, unit=unit, smoothing=0)
        self.bar.total = total or None
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        """End the bar on show."""
        if self.bar is not None:
            self.bar.close()
        self.phase, self.bar = None, None


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default="default", help="default, official, or a weights file (.safetensors, or an official-layout .pt state_dict)")
    p.add_argument(
        "--download-official", action="store_true", help="with --weights official: download them (research use only) into the user cache if missing"
    )
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)


def _add_predict_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--support-size",
        type=int,
        default=DEFAULTS.support_size,
        help=f"at most this many support examples (or crops) per pass (1-{MAX_SUPPORT_SIZE})",
    )
    p.add_argument("--ensemble", type=int, default=DEFAULTS.ensemble, help="average over this many random support subsets")
    p.add_argument("--mode", default=DEFAULTS.mode, choices=MODES, help="resize whole images to the model size, or run over tiles at --scale")
    p.add_argument("--scale", type=float, help="tiled mode: image scale factor (default: from the object size in the support masks)")
    p.add_argument(
        "--predictor",
        dest="predictor",
        default=DEFAULTS.method,
        choices=("auto", *METHODS),
        help="who predicts: UniverSeg, the pixel classifier (random forest), their blend, or auto: whichever predicts your examples best from the others (with --mode auto)",
    )
    p.add_argument(
        "--adapt",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.adapt,
        help="fine-tune a copy of the model on your examples first (one class; about 15 s per example on a laptop CPU); "
        "default: from two examples of one class",
    )
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``napari-universeg`` command and its subcommands."""
    p = argparse.ArgumentParser(prog="napari-universeg", description="Few-shot segmentation with UniverSeg.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("segment", help="segment images or stacks from a few labelled examples")
    s.add_argument("input", help="a 2D image, a stack (TIFF), a folder of images, or an OME-Zarr image (.zarr)")
    s.add_argument("--out", help="output label TIFF (or a folder, for a folder input); not for OME-Zarr, whose labels go into its labels/ group")
    s.add_argument("--support-images", nargs="+", metavar="F", help="example images")
    s.add_argument("--support-masks", nargs="+", metavar="F", help="their label masks (same order)")
    s.add_argument("--support-set", metavar="FILE", help="a support-set file saved by the plugin or --save-support")
    s.add_argument("--save-support", metavar="FILE", help="also save the support set built from --support-images/--support-masks")
    s.add_argument("--threshold", type=float, default=DEFAULTS.threshold)
    s.add_argument("--classes", type=_int_list, help="label values to segment, e.g. 1,2 (default: all in the masks)")
    s.add_argument("--channel", type=int, help="channel of RGB/multichannel images to use (default: luminance)")
    s.add_argument("--probabilities", metavar="FILE", help="also write the probability map (float32 TIFF)")
    s.add_argument(
        "--task",
        choices=TASKS,
        help="classes: each mask value is a class; instances: each value is one object, and the output has one value per object, "
        "unique in each output file (default: what the support-set file says, else guessed from the masks)",
    )
    z = s.add_argument_group("OME-Zarr input and clusters (README: Large data and clusters)")
    z.add_argument("--labels-name", default="universeg", help="OME-Zarr: name of the labels image written to <input>/labels/ (default: universeg)")
    z.add_argument("--workers", type=int, metavar="N", help="OME-Zarr: run on a local dask cluster of N worker processes")
    z.add_argument("--scheduler", metavar="ADDRESS", help="OME-Zarr: run on the workers of a running dask.distributed scheduler (tcp://host:8786)")
    z.add_argument("--block-slices", type=int, metavar="K", help="OME-Zarr: slices per task, rounded up to whole chunks (default: 16)")
    z.add_argument("--overwrite", action="store_true", help="OME-Zarr: replace labels of that name written by a run with other settings")
    z.add_argument("--check", action="store_true", help="OME-Zarr: only check whether the labels of an earlier run are complete")
    _add_model_options(s)
    _add_predict_options(s)

    e = sub.add_parser("evaluate", help="the standard few-shot protocol on a dataset folder (images/, masks/)")
    e.add_argument("dataset", help="folder in the evaldata layout")
    e.add_argument("--support-sizes", type=_int_list, default=[1, 4, 16])
    e.add_argument("--seeds", type=_int_list, default=[0, 1, 2])
    e.add_argument("--method", default="universeg", help="universeg, random-forest or otsu; for --task instances also universeg-cc or watershed")
    e.add_argument("--task", choices=TASKS, default="classes", help="instances: score AP@0.5 and AJI against the data set's instances/ labels")
    e.add_argument("--json", metavar="PATH", help="write the results as JSON")
    _add_model_options(e)
    _add_predict_options(e)

    d = sub.add_parser("demo", help="segment the bundled neuron sample from its first 3 labelled images")
    d.add_argument("--out", default="universeg-demo", help="output folder")
    _add_model_options(d)

    g = sub.add_parser("gui", help="open napari with the UniverSeg widget (and a sample)")
    g.add_argument("--sample", choices=("neurons", "synthetic", "none"), default="neurons")

    sub.add_parser("info", help="version, device, precision and weights").add_argument("--weights", default="default")
    return p


def _predict_options(args):
    return PredictOptions(
        task=getattr(args, "task", None) or "classes",
        support_size=args.support_size,
        ensemble=args.ensemble,
        threshold=getattr(args, "threshold", 0.5),
        classes=getattr(args, "classes", None),
        mode=args.mode,
        scale=args.scale,
        method=args.predictor,
        adapt=args.adapt,
        seed=args.seed,
    )


def _load_support(args):
    from .io import read_image, read_mask
    from .support import SupportSet

    if args.support_set:
        if args.support_images or args.support_masks:
            raise ValueError("give either --support-set or --support-images/--support-masks, not both")
        return SupportSet.load(args.support_set)
    if not args.support_images or not args.support_masks:
        raise ValueError("no support examples: give --support-images and --support-masks, or --support-set")
    if len(args.support_images) != len(args.support_masks):
        raise ValueError(f"{len(args.support_images)} support images but {len(args.support_masks)} masks")
    support = SupportSet()
    for img, msk in zip(args.support_images, args.support_masks):
        support.add(read_image(img), read_mask(msk), source=Path(img).name, channel=args.channel)
    if args.save_support:
        support.save(args.save_support)
    return support


def _segment(args) -> None:
    from tqdm import tqdm

    from .instances import offset_ids
    from .io import as_slices, list_images, read_image, write_labels
    from .ome_zarr_io import is_ome_zarr
    from .preprocess import label_dtype

    options = _predict_options(args)
    options.classes = None if args.task == "instances" else options.classes
    options.validate()
    src = Path(args.input)
    if is_ome_zarr(src):
        return _segment_ome_zarr(args, options)
    cluster_flags = [
        f
        for f, v in (("--workers", args.workers), ("--scheduler", args.scheduler), ("--check", args.check), ("--block-slices", args.block_slices))
        if v
    ]
    if cluster_flags:
        raise ValueError(f"{' and '.join(cluster_flags)} work on an OME-Zarr input; {src} is not one")
    if args.out is None:
        raise ValueError("give --out: where to write the labels")
    if src.is_dir():
        if Path(args.out).resolve() == src.resolve():
            raise ValueError(f"--out is the input folder {src}: choose another folder, so that results are never mixed with your images")
        jobs = [(f, Path(args.out) / f"{f.stem}_labels.tif") for f in list_images(src)]
    elif src.is_file():
        out = Path(args.out)
        jobs = [(src, out / f"{src.stem}_labels.tif" if out.is_dir() else out)]
    else:
        raise ValueError(f"input not found: {src}")
    prob_paths = [_probability_path(args.probabilities, f, len(jobs)) for f, _ in jobs] if args.probabilities else []
    inputs = [f for f, _ in jobs] + [Path(x) for x in (args.support_images or []) + (args.support_masks or [])]
    inputs += [Path(args.support_set)] if args.support_set else []
    saved = [Path(args.save_support)] if args.save_support else []
    _check_outputs([dst for _, dst in jobs] + prob_paths + saved, inputs)
    support = _load_support(args)
    _resolve_task(args, options, support)
    print(f"loading the model and reading {len(jobs)} image file(s)...", file=sys.stderr, flush=True)
    from .predict import Segmenter  # torch: only once the inputs and examples are known to be good

    seg = Segmenter.from_weights(args.weights, args.device, args.precision, allow_download=args.download_official)
    stacks = [(f, dst, as_slices(read_image(f), what=str(f))) for f, dst in tqdm(jobs, desc="reading", unit="file", file=sys.stderr, leave=False)]
    total = sum(len(s) for _, _, s in stacks)
    reported = None
    with tqdm(total=total, unit="slice", desc="segmenting", file=sys.stderr) as bar:
        for f, dst, slices in stacks:
            labels, probs, next_id = [], [], 1
            phases = PhaseBars(skip=(SEGMENTING,))
            for pred in _naming(f, seg.iter_predict(support, slices, options, channel=args.channel, progress=phases)):
                if pred.plan is not reported and pred.plan.estimate is not None:
                    reported = pred.plan
                    bar.write(f"{pred.plan.describe()}: {pred.plan.estimate_message(len(support.enabled()))}", file=sys.stderr)
                if pred.note:
                    bar.write(f"warning: {f}: {pred.note}", file=sys.stderr)
                if options.task == "instances":  # one value per object in the whole file
                    objects, next_id = offset_ids(pred.labels, next_id)
                    labels.append(objects)
                else:
                    labels.append(pred.labels)
                probs.append(pred.probability)
                bar.update(1)
            squeeze = len(slices) == 1
            if options.task == "instances":
                labels = [lab.astype(label_dtype(max(next_id - 1, 1))) for lab in labels]
            write_labels(dst, labels[0] if squeeze else np.stack(labels))
            if args.probabilities:
                write_labels(_probability_path(args.probabilities, f, len(stacks)), probs[0] if squeeze else np.stack(probs))
            print(f"{f} -> {dst} ({pred.plan.describe(pred.model)})", file=sys.stderr)


def _resolve_task(args, options, support) -> None:
    """Without --task: the support-set file's task, else guessed from the masks (and said)."""
    from .instances import guess_task

    if args.task is None:
        options.task = support.task if args.support_set else guess_task([ex.mask for ex in support])
        options.validate()
        print(
            f"task: {options.task} ({'from ' + args.support_set if args.support_set else 'guessed from the masks; set --task to change'})",
            file=sys.stderr,
        )


def _segment_ome_zarr(args, options) -> None:
    """``segment`` on an OME-Zarr image: labels into its labels/ group, here or on a dask cluster
    (distributed.segment_ome_zarr); ``--check`` only reports whether an earlier run finished."""
    from .ome_zarr_io import check_labels_name, open_labels, open_ome_zarr

    src = Path(args.input)
    check_labels_name(args.labels_name)
    if args.out is not None:
        raise ValueError(f"the labels of an OME-Zarr input go into {src}/labels/: name them with --labels-name, not --out")
    if args.probabilities:
        raise ValueError("--probabilities is not available for OME-Zarr inputs")
    if args.workers is not None and args.scheduler:
        raise ValueError("give either --workers or --scheduler, not both")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.block_slices is not None and args.block_slices < 1:
        raise ValueError(f"--block-slices must be at least 1, got {args.block_slices}")
    volume = open_ome_zarr(src)
    if args.check:
        target = open_labels(volume, args.labels_name)
        if target is None:
            raise ValueError(f"{src} has no labels {args.labels_name!r}")
        done, blocks = target.done(), target.record().get("blocks", [])
        missing = [f"{a}-{b - 1}" for (a, b), d in zip(blocks, done) if not d]
        if missing:
            raise ValueError(
                f"{src}/labels/{args.labels_name} is incomplete: {len(missing)} of {len(blocks)} blocks missing (slices {', '.join(missing)})"
            )
        print(f"{src}/labels/{args.labels_name} is complete: {len(blocks)} blocks, {volume.n_slices} slices", file=sys.stderr)
        return
    inputs = (
        [src] + [Path(x) for x in (args.support_images or []) + (args.support_masks or [])] + ([Path(args.support_set)] if args.support_set else [])
    )
    _check_outputs([Path(args.save_support)] if args.save_support else [], inputs)
    support = _load_support(args)
    _resolve_task(args, options, support)
    _run_ome_zarr(args, options, support)


def _run_ome_zarr(args, options, support) -> None:
    import contextlib

    from .distributed import segment_ome_zarr
    from .predict import Segmenter

    seg = Segmenter.from_weights(args.weights, args.device, args.precision, allow_download=args.download_official)
    with contextlib.ExitStack() as stack:
        client = None
        if args.scheduler or args.workers:
            from distributed import Client, LocalCluster

            if args.scheduler:
                client = stack.enter_context(Client(args.scheduler, timeout="30s"))
            else:
                cluster = stack.enter_context(LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"))
                client = stack.enter_context(Client(cluster))
            print(f"dask: {len(client.scheduler_info().get('workers', {}))} workers, dashboard {client.dashboard_link}", file=sys.stderr)
        result = segment_ome_zarr(
            args.input,
            support,
            options,
            labels_name=args.labels_name,
            weights=args.weights,
            device=args.device,
            precision=args.precision,
            channel=args.channel,
            client=client,
            block_slices=args.block_slices,
            overwrite=args.overwrite,
            segmenter=seg,
        )
    print(
        f"{args.input} -> {args.input}/labels/{args.labels_name} ({result.plan.describe()}; "
        f"{len(result.computed)} blocks computed, {result.skipped} already written, {result.slices / max(result.seconds, 1e-9):.1f} slices/s)",
        file=sys.stderr,
    )


def _naming(path: Path, results):
    """The results, with any error about the image prefixed by its file."""
    try:
        yield from results
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def _probability_path(option: str, image: Path, n_images: int) -> Path:
    """Where --probabilities goes for one input image (one file per image for several)."""
    p = Path(option)
    return p.parent / f"{image.stem}_{p.name}" if n_images > 1 else p


def _check_outputs(outputs: list[Path], inputs: list[Path]) -> None:
    """Before any work: no output is an input or another output, and every output folder is
    writable (a clear error now instead of one after all the computing)."""
    seen: dict[Path, Path] = {}
    resolved_inputs = {p.resolve(): p for p in inputs}
    for out in outputs:
        key = out.resolve()
        if key in resolved_inputs:
            raise ValueError(f"output {out} is also an input ({resolved_inputs[key]}); choose another output path")
        if key in seen:
            raise ValueError(f"two outputs would be written to {out}; give --out, --probabilities and --save-support different paths")
        seen[key] = out
        folder = next((d for d in (out.parent, *out.parent.parents) if d.exists()), Path("."))
        if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
            raise ValueError(f"cannot write output {out}: permission denied")


def _evaluate(args) -> None:
    from tqdm import tqdm

    from .evaluate import format_table, get_method, load_dataset, run_protocol

    dataset = load_dataset(args.dataset)
    phases = PhaseBars()
    if args.method == "universeg":
        o = _predict_options(args)
        method = get_method(
            "universeg",
            task=args.task,
            weights=args.weights,
            device=args.device,
            precision=args.precision,
            support_size=o.support_size,
            ensemble=o.ensemble,
            mode=o.mode,
            scale=o.scale,
            method=o.method,
            adapt=o.adapt,
            seed=o.seed,
            progress=phases,
        )
    else:
        method = get_method(args.method)
    result = run_protocol(
        dataset,
        method,
        args.method,
        support_sizes=tuple(args.support_sizes),
        seeds=tuple(args.seeds),
        progress=lambda msg: phases.close() or tqdm.write(msg, file=sys.stderr),
        task=args.task,
    )
    if args.task == "instances":
        print("AP@0.5 (mean ± std over seeds, worst seed); aggregated Jaccard index per support size:", file=sys.stderr)
        print(", ".join(f"N={n}: AJI {v['aji']:.3f}" for n, v in result["summary"].items()), file=sys.stderr)
    print(format_table([result]))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


def _demo(args) -> None:
    """The main job on the bundled sample: 3 painted examples, 9 images segmented, Dice printed."""
    from tqdm import tqdm

    from .evaluate import dice
    from .io import write_labels
    from .predict import Segmenter
    from .sample_data import neurons
    from .support import SupportSet

    images, masks = neurons()
    support = SupportSet()
    for i in range(3):
        support.add(images[i], masks[i], source=f"neurons slice {i}")
    seg = Segmenter.from_weights(args.weights, args.device, args.precision, allow_download=args.download_official)
    out = Path(args.out)
    labels = np.zeros_like(masks)
    phases = PhaseBars()
    for pred in seg.iter_predict(support, images, PredictOptions(), indices=range(3, len(images)), progress=phases):
        if pred.index == 3 and pred.plan.estimate is not None:
            tqdm.write(f"{pred.plan.describe()}: {pred.plan.estimate_message(3)}", file=sys.stderr)
        labels[pred.index] = pred.labels
        tqdm.write(f"image {pred.index:2d}: Dice {dice(pred.labels > 0, masks[pred.index] > 0):.3f} ({pred.plan.describe()})", file=sys.stderr)
    phases.close()
    write_labels(out / "neurons_labels.tif", labels)
    write_labels(out / "neurons.tif", images)
    support.save(out / "neurons_support.npz")
    print(
        f"wrote {out / 'neurons_labels.tif'} (images 3-11 segmented from examples 0-2), {out / 'neurons.tif'} and the support set {out / 'neurons_support.npz'}"
    )


def _gui(args) -> None:
    import napari

    viewer = napari.Viewer()
    if args.sample != "none":
        viewer.open_sample("napari-universeg", args.sample)
    _, widget = viewer.window.add_plugin_dock_widget("napari-universeg", "UniverSeg")
    if args.sample != "none":
        name = "neurons" if args.sample == "neurons" else "synthetic nuclei"
        widget.image_combo.setCurrentText(name)
        widget.labels_combo.setCurrentText(f"{name} painted")
    napari.run()


def _info(args) -> None:
    import torch

    from . import __version__
    from .device import autocast_dtype, pick_device

    device = pick_device(None)
    print(f"napari-universeg {__version__}, torch {torch.__version__}")
    print(f"device: {device}, precision: {'bf16' if autocast_dtype(device) else 'fp32'}")
    from .weights import load_weights

    try:
        _, info = load_weights(args.weights)
        print(info.summary())
    except ValueError as e:
        print(f"weights: {e}")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 done, 2 bad input, 130 cancelled)."""
    args = build_parser().parse_args(argv)
    start = time.time()
    try:
        {"segment": _segment, "evaluate": _evaluate, "demo": _demo, "gui": _gui, "info": _info}[args.command](args)
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:  # bad input: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.command not in ("info", "gui"):
        print(f"done in {time.time() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
