"""`claire train`: train a network on an optical + SAR + label folder and write a checkpoint with its card."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

from ...models.checkpoint import check_output_name
from ...models.quoting import quoted
from ..core.errors import ClaireError
from ..core.io.atomic import OutputSet
from ..core.io.writer import check_outputs
from ..core.numbers import counted
from ..core.params import parse_bands
from ..core.training.sources import plain_images_allowed
from . import train_polygons


def register(subparsers: Any) -> None:
    """Add the `train` subcommand."""
    p = subparsers.add_parser("train", help="train a network on an optical + SAR + label folder (--data), or "
                              "fine-tune one on your own polygons (--optical, --sar, --labels)")
    p.add_argument("--arch", default="claire",
                   help="claire, asanet (ASANet-style: not the published network, docs/model_card.md), optical_only or "
                        "sar_only")
    p.add_argument("--size", default="small", help="tiny, small (the default, on any device) or base (for a GPU)")
    p.add_argument("--data", default=None, help="data folder (generic: optical/, sar/, labels/)")
    p.add_argument("--layout", default="auto",
                   help="auto, generic, whu-opt-sar, whu-opt-sar-crops (ASANet's 512 px crops), pie-rgb-sar, oem-sar, "
                        "terramesh or terramesh-levels (each site's Level-2A and Level-1C)")
    p.add_argument("--output", required=True, help="checkpoint to write (.safetensors)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 20; with --labels 12)")
    p.add_argument("--steps-per-epoch", type=int, default=20, help="training steps per epoch (default 20)")
    p.add_argument("--batch-size", type=int, default=8, help="crops per training step (default 8)")
    p.add_argument("--crop", type=int, default=128, help="training crop size (multiple of 32; default 128)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 2e-3; with --labels 3e-4 when the base checkpoint knows every class "
                        "and scores macro-F1 >= 0.5 on the training polygons before training, else 1e-3; the "
                        "whole network then learns at a tenth of it, or at the same rate where the base scored "
                        "below 0.5)")
    p.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay (default 0.05)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed of weights, crops and augmentation (default 0); with --labels also of the "
                        "held-out polygons and the synthetic clouds, so another seed scores other polygons")
    p.add_argument("--holdout", type=float, default=0.25,
                   help="right-hand fraction of every image held out for metrics when there are no split lists "
                        "(default 0.25; 0: none, and the scores are then of the training images)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available, then Apple MPS, else the CPU), cpu, "
                   "cuda, cuda:N or mps")
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on GPU")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch, kept for the whole run (default: torch's choice, lowered while other "
                        "programs use the cores; the same seed gives bit-identical weights only at one fixed count)")
    p.add_argument("--reproducible", action="store_true",
                   help="the same weights and card metrics on any x86-64 CPU of one system image (torch build "
                        "and C library): CPU only, 1 thread, portable kernels (slower; models/determinism.py)")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT.resume if it exists")
    p.add_argument("--optical-bands", default=None, help="1-based optical band indices, e.g. 2,3,4,8")
    p.add_argument("--sar-bands", default=None, help="1-based SAR band indices")
    p.add_argument("--optical-scale", type=float, default=None, help="raw optical -> reflectance factor")
    p.add_argument("--sar-linear", action="store_true", help="SAR rasters are linear power: convert to dB")
    p.add_argument("--classes", default=None,
                   help="value:name[:#rrggbb] list, e.g. '1:water:#419bdf,2:trees': the classes of --data (default: "
                        "from layout / labels), or names of a label raster's codes given as --labels (default: the "
                        "raster's own category names, else 'class N')")
    p.add_argument("--ignore", default=None, help="label values to ignore, e.g. 0,8")
    p.add_argument("--loss-lambda", type=float, default=0.6,
                   help="RIFT's weight of the focal term; the Tversky term gets the rest (default 0.6)")
    p.add_argument("--focal-gamma", type=float, default=2.0, help="focal loss's focusing exponent (default 2)")
    p.add_argument("--tversky-alpha", type=float, default=0.3, help="Tversky's weight of false positives (default 0.3)")
    p.add_argument("--tversky-beta", type=float, default=0.7, help="Tversky's weight of false negatives (default 0.7)")
    p.add_argument("--class-weights", default="inverse_sqrt", choices=["inverse", "inverse_sqrt", "none"],
                   help="class weights from the label counts: inverse, inverse_sqrt (the default) or none")
    p.add_argument("--context", default=None, choices=["global", "local"],
                   help="local (the default where the network has it: claire, optical_only, sar_only): GRN, channel "
                        "attention and pyramid pooling over a fixed window, so the map hardly depends on the tile "
                        "size (a training step takes about 1.5-1.8x as long on a CPU); global: over the whole tile, "
                        "faster to train, maps that change with the tile size (asanet's only choice)")
    p.add_argument("--context-px", type=int, default=128,
                   help="the local window in input pixels (default 128; a multiple of 32)")
    p.add_argument("--cloud-gate", action="store_true",
                   help="CMAF leans on SAR where models.cloud flags the optical input (claire only)")
    p.add_argument("--half", action="store_true",
                   help="store weights as float16 (half the file size; metrics are measured on the rounded weights)")
    p.add_argument("--note", default="", help="free text stored in the card's training section")
    p.add_argument("--json", action="store_true", help="print the final model card as JSON (with --labels: the "
                   "training report)")
    train_polygons.add_arguments(p)
    p.set_defaults(func=cmd_train, mode_defaults=train_polygons.mode_defaults(p))


def set_threads(n: Optional[int]) -> None:
    """Set torch's CPU threads when `n` is given."""
    import torch

    if n:
        torch.set_num_threads(int(n))


def cmd_train(args: argparse.Namespace) -> int:
    """Train from polygons (--labels) or a labelled folder (--data)."""
    if args.labels:
        return train_polygons.run(args)
    if not args.data:
        raise ClaireError("say what to train on: --data FOLDER (optical/, sar/, labels/ rasters) or --optical, "
                          "--sar and --labels (your polygons or points)")
    return _train_folder(args)


@plain_images_allowed
def _train_folder(args: argparse.Namespace) -> int:
    """`claire train --data`: train on a labelled folder, evaluate on its hold-out, write the checkpoint."""
    import torch

    train_polygons.check_mode_options(args)
    check_output_name(args.output)
    args.epochs = 20 if args.epochs is None else args.epochs
    args.lr = 2e-3 if args.lr is None else args.lr
    _check_reproducible(args)

    from ...models.checkpoint import save_checkpoint
    from ..core.training.sources import heldout_metrics

    _check_settings(args)
    set_threads(args.threads)
    resume = args.output + ".resume" if args.resume else None
    check_outputs([("checkpoint", args.output), ("resume file", resume)], [])  # before reading anything
    data = _training_data(args, resume)
    cfg = _train_config(args)
    lname, pairs, src, classes = data["layout_name"], data["pairs"], data["src"], data["classes"]
    for note in data["notes"]:
        print(f"note: {note}", file=sys.stderr)
    if resume and os.path.exists(resume):
        from ...models.training import model_config
        from ..core.training.data_checks import check_resume

        check_resume(resume, model_config(cfg, len(classes), data["ospec"], data["sspec"]), args.arch)
    elif resume:  # a finished run removed its resume file: said, not a silent start from scratch
        print(f"note: no resume file {resume} (none yet, or the last run finished): training from the start",
              file=sys.stderr)
    print(f"training {args.arch}/{args.size} on {len(pairs)} image(s) of {args.data} (layout {lname}), "
          f"{len(classes)} classes, {counted(cfg.epochs, 'epoch')} x {counted(cfg.steps_per_epoch, 'step')} x "
          f"{counted(cfg.batch_size, 'crop')} "
          f"of {cfg.crop} px", file=sys.stderr)
    try:
        model, hist = _run_training(src, data, len(classes), cfg, resume, steer=args.threads is None)
    except KeyboardInterrupt as exc:  # claire's main says it: the checkpoint is not written, the resume file is kept
        if resume and os.path.exists(resume):
            exc.claire_outcome = (f"the checkpoint was not written; the resume file {resume} is kept: run the same "  # type: ignore
                                  f"command again (with --resume) to continue from its last epoch")
        raise
    vsrc, held, metrics_key = _validation_source(args, data)
    if args.half:
        from ...models.training import round_weights
        round_weights(model)
    device = hist["device"] if hist["device"].startswith("cuda") else "cpu"  # the GPU it trained on (cuda:1 too)
    t = time.time()
    metrics = heldout_metrics(model.to(device), vsrc, metrics_key, data["ospec"], data["sspec"],
                               [c.name for c in classes], device)
    m_clear, m_cloud = metrics[metrics_key], metrics[f"{metrics_key}_synthetic_clouds"]
    print(f"evaluation {time.time() - t:.1f} s", file=sys.stderr)
    model.to("cpu")
    card = _card(args, data, cfg, hist, metrics, held, model, vsrc)
    with OutputSet() as files:
        files.write_with(args.output, lambda tmp: save_checkpoint(tmp, model, card,
                                                                  dtype=torch.float16 if args.half else None),
                         "checkpoint")
        files.commit()
    if resume and os.path.exists(resume):
        os.remove(resume)
    scored = {"training_data": "on the training images (no hold-out: not an accuracy estimate)",
              "heldout": "held-out"}.get(metrics_key, metrics_key)
    print(f"wrote {args.output}; {scored} mIoU {_f3(m_clear['miou'])} OA {_f3(m_clear['oa'])} "
          f"(synthetic clouds: mIoU {_f3(m_cloud['miou'])} OA {_f3(m_cloud['oa'])}); training {hist['seconds']} s",
          file=sys.stderr)
    if "undefined" in m_clear:
        print(f"note: {metrics_key} metrics undefined: {m_clear['undefined']['reason']}", file=sys.stderr)
    if args.json:
        print(json.dumps(card, indent=2))
    return 0


def _f3(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _check_reproducible(args: argparse.Namespace) -> None:
    """--reproducible: pin the CPU code paths before torch runs a kernel; ClaireError for a GPU or other threads."""
    from ...models import determinism

    if not args.reproducible:
        return
    if args.device != "cpu":
        raise ClaireError(f"--reproducible trains on the CPU (GPU kernels differ from one card to the next); "
                          f"add --device cpu (got --device {args.device})")
    if args.threads not in (None, determinism.THREADS):
        raise ClaireError(f"--reproducible trains on {determinism.THREADS} thread (the thread count changes the "
                          f"sums); drop --threads {args.threads}")
    determinism.pin_environment()


def _run_training(src, data: Dict[str, Any], num_classes: int, cfg, resume: Optional[str], steer: bool = True):
    """models.training.train with the command line's log; a run that cannot be reproducible is a ClaireError.
    On a CPU with more than one torch thread the count is steered by the steps' times
    (core.engine.schedule.StepSteering), so that another busy program does not stall every step; each change is
    printed. A reproducible run has one thread: nothing to steer; with `steer` False (--threads given) the count
    is only recorded."""
    import contextlib

    from ...models.determinism import NotReproducibleError
    from ...models.training import pick_device, train
    from ..core.engine.schedule import StepSteering

    notes: list = []
    steering = None if cfg.reproducible else StepSteering(pick_device(cfg.device), notes, steer=steer)

    def after_step(seconds: float, done: int) -> None:
        steering.after_step(seconds, done)
        while notes:
            print(f"note: {notes.pop(0)}", file=sys.stderr)

    with steering or contextlib.nullcontext():
        try:
            return train(src, data["ospec"], data["sspec"], num_classes, cfg, resume_path=resume,
                         log=lambda m: print(m, file=sys.stderr), after_step=after_step if steering else None)
        except NotReproducibleError as exc:
            raise ClaireError(str(exc)) from None
        except (MemoryError, RuntimeError) as exc:
            from ..core.engine.memory_fit import is_out_of_memory

            if not (isinstance(exc, MemoryError) or is_out_of_memory(exc)):
                raise
            from ..core.training.checks import oom_advice

            device = pick_device(cfg.device)
            smaller = oom_advice(cfg.batch_size, cfg.crop, cfg.size, on_gpu=str(device).startswith("cuda"))
            kept = f"; the resume file {resume} is kept (run again with --resume)" if resume and \
                os.path.exists(resume) else ""
            raise ClaireError(f"the training ran out of memory (batch {cfg.batch_size} of {cfg.crop} px crops on "
                              f"{device}); {smaller}close other programs. The checkpoint was "
                              f"not written{kept}") from None


def _check_settings(args: argparse.Namespace) -> None:
    """ClaireError before any data is read: an unknown architecture or size, a number no training can use
    (core.training.checks), a device this machine does not have."""
    from ...models.registry import available_architectures, available_sizes
    from ..core.runtime.device import check_device
    from ..core.training.checks import check_folder_numbers, check_run_numbers, check_share

    if args.arch not in available_architectures():
        raise ClaireError(f"unknown architecture {quoted(args.arch)}; choose one of "
                          f"{', '.join(available_architectures())}")
    if args.size not in available_sizes():
        raise ClaireError(f"unknown size {quoted(args.size)}; choose one of {', '.join(available_sizes())}")
    _check_context(args)
    check_run_numbers(epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
                      crop=args.crop, lr=args.lr, weight_decay=args.weight_decay, threads=args.threads)
    check_share(args.holdout, "--holdout", True, "0.25")
    check_folder_numbers(args)
    check_device(args.device)


def _check_context(args: argparse.Namespace) -> None:
    """--context local (or a --context-px) on a network without the local operations: refused before any data is
    read (a ValueError traceback after the data had been read), as --cloud-gate is."""
    from ...models.registry import LOCAL_CONTEXT_ARCHS

    if args.arch in LOCAL_CONTEXT_ARCHS:
        return
    if args.context == "local":
        raise ClaireError(f"--context local is implemented for {', '.join(LOCAL_CONTEXT_ARCHS)}, not {args.arch}; "
                          f"drop it ({args.arch} computes over the whole tile)")
    if args.context_px != 128:
        raise ClaireError(f"--context-px sets the local window of {', '.join(LOCAL_CONTEXT_ARCHS)}; {args.arch} has "
                          f"none: drop it")


def _left_out_labels(src, classes, ignore) -> List[str]:
    """A note for labelled pixels whose values are no class of the training (QA round 16: dropped without a word,
    where `claire evaluate` says so)."""
    from ..core.engine.summary import listed_codes
    from ..core.numbers import grouped
    from ..core.training.data_checks import left_out_codes

    codes = left_out_codes(src, len(classes), ignore)
    left = sum(codes.values())
    if not left:
        return []
    counted = int(src.class_counts(len(classes)).sum())
    return [f"{grouped(left)} labelled pixels ({left / (left + counted):.1%}) of the training images hold values that "
            f"are no class ({listed_codes(codes)}) and are left out of the training: name them with --classes "
            f"(value:name,...) if they are classes, or --ignore them to say they are not"]


def _training_data(args: argparse.Namespace, resume: Optional[str]) -> Dict[str, Any]:
    """The training pairs, their sample source, classes and the input specs with measured statistics; the
    data checked like classification inputs (core.training.data_checks) and the outputs before any work."""
    from ...models import spec as spec_mod
    from ..core.io.writer import check_outputs
    from ..core.training import data_checks as dc
    from ..core.training.datasets import split_list_notes
    from ..core.training.sources import input_specs, resolve_data

    ob = parse_bands(args.optical_bands, "--optical-bands")
    sb = parse_bands(args.sar_bands, "--sar-bands")
    lname, layout, pairs, src, classes, ignore = resolve_data(
        args.data, args.layout, "train", args.holdout, ob, sb, args.classes, args.ignore, args.sar_linear)
    check_outputs([("checkpoint", args.output), ("resume file", resume)],
                  [(f"{role} raster", getattr(p, role)) for p in pairs for role in ("optical", "sar", "label")])
    dc.check_labels(src, classes, "in the training images",
                    "give --classes with the values the labels hold (value:name,...) or fix --ignore")
    ospec, sspec = input_specs(layout, pairs, ob, sb, args.optical_scale, args.sar_linear)
    src.optical_scale = ospec["scale"]
    src.float_rule = args.optical_scale is None and layout.optical_scale is None
    notes = dc.check_optical_values(src, ospec["scale"]) if "reflect" in ospec["units"].lower() else []
    notes += _left_out_labels(src, classes, ignore) + split_list_notes(args.data, lname)
    _check_cloud_gate(args, ospec)
    stats = list(src.stat_arrays())
    dc.check_band_values(stats, ospec, sspec)
    return {"layout_name": lname, "layout": layout, "pairs": pairs, "src": src, "classes": classes,
            "ignore": ignore, "optical_bands": ob, "sar_bands": sb, "notes": notes,
            "ospec": spec_mod.measure_stats([o for o, _ in stats], ospec),
            "sspec": spec_mod.measure_stats([s for _, s in stats], sspec)}


def _train_config(args: argparse.Namespace):
    """models.training.TrainConfig from the command line."""
    from ...models.registry import default_context
    from ...models.training import LossConfig, TrainConfig

    return TrainConfig(arch=args.arch, size=args.size, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                       batch_size=args.batch_size, crop=args.crop, lr=args.lr, weight_decay=args.weight_decay,
                       seed=args.seed, device=args.device, amp=not args.no_amp,
                       context=args.context or default_context(args.arch),
                       context_px=args.context_px, cloud_gate=args.cloud_gate, reproducible=args.reproducible,
                       loss=LossConfig(args.loss_lambda, args.focal_gamma, args.tversky_alpha, args.tversky_beta,
                                       args.class_weights))


def _validation_source(args: argparse.Namespace, data: Dict[str, Any]):
    """(source, held-out image names, metrics key): the hold-out, or the training data when there is none."""
    from ..core.training.datasets import EmptySplitError, list_pairs
    from ..core.training.sources import resolve_data

    try:
        val = list_pairs(args.data, data["layout_name"], "val", args.holdout)
    except EmptySplitError:  # no hold-out; a damaged validation file is an error, not a reason to do without
        return data["src"], [], "training_data"
    if {(p.optical, p.region) for p in val} <= {(p.optical, p.region) for p in data["pairs"]}:
        # --holdout 0 without split lists: "val" is the training images themselves, and their scores were
        # stored and printed as held-out ones
        return data["src"], [], "training_data"
    _, _, vpairs, vsrc, _, _ = resolve_data(args.data, data["layout_name"], "val", args.holdout,
                                            data["optical_bands"], data["sar_bands"], None, args.ignore,
                                            args.sar_linear, classes_override=data["classes"])
    vsrc.optical_scale = data["ospec"]["scale"]
    vsrc.float_rule = data["src"].float_rule
    return vsrc, [p.name for p in vpairs], "heldout"


def _training_record(args: argparse.Namespace, data: Dict[str, Any], cfg, hist, held) -> Dict[str, Any]:
    """The card's `training` section: data, split, budget, loss, timing."""
    import torch

    from ..core.provenance import software
    from ..core.training.datasets import describe_holdout

    region_text = [{"name": p.name, "rows": [p.region[0], p.region[0] + p.region[2]],
                    "cols": [p.region[1], p.region[1] + p.region[3]]} for p in data["pairs"]]
    return {
        "data": os.path.relpath(os.path.abspath(args.data), os.getcwd()) if not os.path.isabs(args.data) else args.data,
        "layout": data["layout_name"], "images": region_text,
        "heldout": ({"what": describe_holdout(args.data, data["layout_name"], args.holdout), "images": held}
                    if held else None),
        "holdout": args.holdout, "ignored_label_values": [int(v) for v in data["ignore"]],
        "epochs": cfg.epochs, "seed": cfg.seed,
        "config": dict(cfg.to_dict(), warmup_steps=hist.get("warmup_steps", cfg.warmup_steps)),  # as it ran
        "loss": {"name": "RIFT", "lambda": cfg.loss.lam, "gamma": cfg.loss.gamma, "alpha": cfg.loss.alpha,
                 "beta": cfg.loss.beta, "class_weights": cfg.loss.weights,
                 "class_weight_values": hist["class_weights"]},
        "class_pixel_counts": hist["class_counts"], "loss_history": hist["loss"],
        "seconds": hist["seconds"], "device": hist["device"], "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "weights_dtype": "float16" if args.half else "float32",
        "reproducibility": hist.get("reproducibility"), "note": args.note,
        "resumed_at_epoch": hist.get("resumed_at_epoch"),  # seconds: all the runs' training time together
        "provenance": software(),  # versions and CPU kernels, as a polygon training's card records them
    }


def _card(args, data, cfg, hist, metrics, held, model, vsrc) -> Dict[str, Any]:
    """The model card of a folder training run, with the familiarity statistics."""
    from ...models.checkpoint import build_card, nodata_for
    from ...models.registry import resolve_config
    from ...models.training import model_config
    from ..core.training.sources import card_familiarity

    classes, ospec, sspec = data["classes"], data["ospec"], data["sspec"]
    config = resolve_config(model_config(cfg, len(classes), ospec, sspec))
    card = build_card(args.arch, args.size, config, classes, nodata_for(classes, data["layout"].nodata), ospec,
                      sspec, _training_record(args, data, cfg, hist, held), metrics)
    fam, note = card_familiarity(model, data["src"], vsrc if held else None, ospec, sspec)
    if fam is not None:
        card["familiarity"] = fam
    card["training"]["familiarity"] = note  # why a card has none, as polygon training records it
    print(f"familiarity: {note}" + ("" if fam else "; runs of this checkpoint cannot say where a scene is unlike "
                                    "its training data"), file=sys.stderr)
    return card


def _check_cloud_gate(args: argparse.Namespace, ospec: Dict) -> None:
    """--cloud-gate needs a claire network and the optical bands models.cloud reads."""
    from ...models.cloud import missing_bands

    if not args.cloud_gate:
        return
    if args.arch != "claire":
        raise ClaireError(f"--cloud-gate acts on CLAIRE's CMAF fusion; drop it or use --arch claire (got {args.arch})")
    missing = missing_bands(ospec["bands"])
    if missing:
        raise ClaireError(f"--cloud-gate needs the Sentinel-2 bands {missing} in the optical input, which has "
                          f"{ospec['bands']}; name the bands in the raster (band descriptions) or drop --cloud-gate")
