"""`claire train --optical A --sar B --labels polygons.gpkg --field class ...`: the command-line glue of
core.training.polygons (fine-tune from your own polygons, validated on held-out polygons)."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any, Dict

from ...models.quoting import shell_quote as quote
from ..core.errors import ClaireError
from ..core.inputs.units import SAR_UNITS
from ..core.numbers import counted
from .options import OFFSET_HELP, offset_arg

_NETWORK = ("the network is the one of --checkpoint (its architecture, size and context); pass another "
            "--checkpoint, or --from-scratch for random weights of it")
#: Options of training from a label folder (--data) and what training from --labels does instead ("": nothing).
FOLDER_ONLY = {
    "ignore": "every feature of --labels is a training sample, so leave the ones to ignore out of the layer (e.g. "
              "save the others as a new layer); for a label raster, make the values to ignore its no data on a "
              "copy (gdal_calc.py -A FILE --calc \"A*(A!=3)\" --NoDataValue=0 --outfile COPY leaves out 3)",
    "layout": "the rasters are the ones given with --optical and --sar",
    "holdout": "the held-out share is --val-share, or give a --validation layer",
    "sar_linear": "declare linear SAR with --sar-units linear-power",
    "optical_scale": "the optical values are scaled as the card of --checkpoint says; give an undeclared offset "
                     "with --optical-offset",
    "arch": _NETWORK, "size": _NETWORK, "context": _NETWORK, "context_px": _NETWORK, "cloud_gate": _NETWORK,
    "resume": "", "reproducible": "", "half": "", "no_amp": "", "note": "", "loss_lambda": "", "focal_gamma": "",
    "tversky_alpha": "", "tversky_beta": "", "class_weights": ""}
#: Options of training from --labels and what a --data training does instead ("": nothing).
POLYGON_ONLY = {
    "optical": "the optical rasters are those of the folder's optical sub-folder",
    "sar": "the SAR rasters are those of the folder's SAR sub-folder",
    "field": "the classes are the label rasters' values (set them with --classes and --ignore)",
    "name_field": "name the classes with --classes value:name,...", "macro_field": "", "label_layer": "",
    "validation": "the hold-out is --holdout, or split lists (train.txt / val.txt)", "validation_layer": "",
    "val_share": "the held-out share is --holdout", "buffer": "",
    "checkpoint": "it trains a new network (--arch, --size); to fine-tune a checkpoint, train from your polygons "
                  "with --optical, --sar and --labels",
    "from_scratch": "it always starts from random weights", "minutes": "its length is --epochs",
    "average_last": "", "optical_offset": "give the offsets in offsets.json beside the optical rasters",
    "sar_units": "declare linear SAR with --sar-linear", "report": "its scores go into the checkpoint's card "
    "(claire info)", "no_baseline": "", "rf_trees": "", "no_forest_checkpoint": ""}


def mode_defaults(p: argparse.ArgumentParser) -> dict:
    """The parser's defaults of the options that belong to one training mode (for check_mode_options)."""
    return {dest: p.get_default(dest) for dest in (*FOLDER_ONLY, *POLYGON_ONLY)}


def check_mode_options(args: argparse.Namespace) -> None:
    """ClaireError for an option of the other training mode (one of --data training given with --labels, or the
    reverse): it would be ignored without a word."""
    polygons = bool(args.labels)
    table = FOLDER_ONLY if polygons else POLYGON_ONLY
    defaults = getattr(args, "mode_defaults", {})
    given = [d for d in table if d in defaults and getattr(args, d, None) != defaults[d]]
    if not given:
        return
    flag = "--" + given[0].replace("_", "-")
    instead = table[given[0]] or "it has no such setting"
    if polygons:
        raise ClaireError(f"{flag} belongs to training from a label folder (--data) and would be ignored with "
                          f"--labels: {instead}. Drop {flag}.")
    raise ClaireError(f"{flag} belongs to training from your polygons or points (--optical, --sar, --labels) and "
                      f"would be ignored with --data: {instead}. Drop {flag}.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of polygon training, added to `claire train`."""
    g = p.add_argument_group("training from your polygons or points (instead of --data)")
    g.add_argument("--optical", default=None, help="optical raster (Sentinel-2); its grid is the labels' grid")
    g.add_argument("--sar", default=None, help="SAR raster (Sentinel-1 VV/VH), warped onto the optical grid")
    g.add_argument("--labels", default=None, help="polygon or point layer (any OGR format) or a label raster")
    g.add_argument("--field", default=None, help="field of --labels holding the class (integer code or name)")
    g.add_argument("--name-field", default=None, help="optional field with the class names of integer codes")
    g.add_argument("--macro-field", default=None,
                   help="optional field with each class's macroclass (SCP's MC ID, codes or names; a class in one "
                        "macroclass): the network learns the classes, the report scores both levels, and "
                        "`claire classify --level macroclass` maps the macroclasses")
    g.add_argument("--label-layer", default=None,
                   help="layer of a multi-layer --labels file (needed when it holds several)")
    g.add_argument("--validation", default=None,
                   help="separate validation layer (same field and classes); default: hold out polygons (started "
                        "from your own --checkpoint: those that validated it, again)")
    g.add_argument("--validation-layer", default=None,
                   help="layer of a multi-layer --validation file (needed when it holds several)")
    g.add_argument("--val-share", type=float, default=0.3,
                   help="share of each class's polygons held out, rounded half up (default 0.3)")
    g.add_argument("--buffer", type=float, default=3.0,
                   help="drop training pixels within this many pixels of a validation pixel (default 3)")
    g.add_argument("--checkpoint", default=None, help="checkpoint to start from (default: the bundled one)")
    g.add_argument("--from-scratch", action="store_true", help="random weights (the checkpoint's architecture)")
    g.add_argument("--minutes", type=float, default=None,
                   help="time budget of the training loop (scoring comes on top): it stops before the budget runs out; "
                        "without --epochs the budget alone decides (claire:train's EPOCHS, 12 by default, caps it), "
                        "with --epochs that is the most. Not reproducible across machines (how far it gets "
                        "depends on the machine's speed): give --epochs alone for a run that is")
    g.add_argument("--average-last", type=float, default=None,
                   help="share of the whole-network epochs at the end whose weights are averaged into the final "
                        "network (default: the recipe's; 0 keeps the last epoch's weights)")
    g.add_argument("--optical-offset", type=offset_arg, default=None, help=OFFSET_HELP)
    g.add_argument("--sar-units", default="auto", choices=list(SAR_UNITS),
                   help="unit of the SAR values: auto, dB, linear-power or amplitude (linear is converted to dB)")
    g.add_argument("--report", default=None, help="validation report (JSON; an HTML copy is written beside it)")
    g.add_argument("--no-baseline", action="store_true", help="skip the random-forest baseline")
    g.add_argument("--rf-trees", type=int, default=200, help="trees of the random-forest baseline (default 200; 0: "
                   "no baseline, as --no-baseline and Processing's RF_TREES 0)")
    g.add_argument("--no-forest-checkpoint", action="store_true",
                   help="do not write the baseline forest (optical + SAR) as a checkpoint beside --output "
                        "(NAME.forest.safetensors), nor the network and forest averaged (NAME.ensemble.safetensors); "
                        "`claire classify --checkpoint` maps with either")


def params_from_args(args: argparse.Namespace):
    """PolygonTrainParams from the parsed `claire train` options."""
    from ..core.params import parse_bands
    from ..core.training.finetune import FinetuneConfig
    from ..core.training.polygons import PolygonTrainParams

    missing = [f for f, v in (("--optical", args.optical), ("--sar", args.sar)) if not v]
    if missing:
        raise ClaireError(f"training from --labels needs {' and '.join(missing)}: the rasters the labels were drawn on")
    if args.data:
        raise ClaireError("give either --data (a label folder) or --labels (your polygons), not both")
    check_mode_options(args)  # the checkpoint's name is checked with the other settings (polygons.check_settings)
    epochs = args.epochs if args.epochs is not None else (10000 if args.minutes else 12)
    cfg = FinetuneConfig(epochs=epochs, minutes=args.minutes, steps_per_epoch=args.steps_per_epoch,
                         batch_size=args.batch_size, crop=args.crop, lr=args.lr,
                         weight_decay=args.weight_decay, seed=args.seed, device=args.device,
                         from_scratch=args.from_scratch, steer_threads=args.threads is None)
    if args.average_last is not None:
        cfg = replace(cfg, average_last=args.average_last)
    return PolygonTrainParams(
        optical=args.optical, sar=args.sar, labels=args.labels, output=args.output, field=args.field,
        name_field=args.name_field, macro_field=args.macro_field, classes=args.classes, layer=args.label_layer,
        validation=args.validation, validation_layer=args.validation_layer,
        checkpoint=args.checkpoint, report=args.report,
        optical_bands=parse_bands(args.optical_bands, "--optical-bands"),
        sar_bands=parse_bands(args.sar_bands, "--sar-bands"), optical_offset=args.optical_offset,
        sar_units=args.sar_units, val_share=args.val_share,
        buffer_px=args.buffer, baseline=not args.no_baseline and args.rf_trees != 0, rf_trees=args.rf_trees,
        save_forest=not args.no_forest_checkpoint, config=cfg)


def _epoch_line(e: Dict[str, Any]) -> None:
    from ..core.training.polygons import epoch_score_text

    f1 = epoch_score_text(e)
    print(f"epoch {e['epoch']}/{e['epochs']} (stage {e['stage']}): loss {e['loss']:.4f}, held-out macro-F1 {f1}, "
          f"{e['seconds']:.0f} s", file=sys.stderr, flush=True)


def summary_table(report: Dict[str, Any]) -> str:
    """Plain-text side-by-side scores of every arm (macro-F1 / OA), clear and clouded."""
    conds = list(next(iter(report["arms"].values())).keys())
    lines = [f"{'model':<34}" + "".join(f"{c + ' macro-F1':>24}{'OA':>8}" for c in conds)]
    from ..core.training.labels import units_of
    from ..core.training.scorecard import arm_title, interval_text, ordered_arms

    def f1(m: Dict[str, Any]) -> str:
        ci = interval_text(m.get("macro_f1_ci95"))
        return f"{m['macro_f1'] or 0:.3f}" + (f" ({ci})" if ci else "")

    for arm in ordered_arms(report):
        cells = "".join(f"{f1(report['arms'][arm][c]):>24}{report['arms'][arm][c]['oa'] or 0:>8.3f}" for c in conds)
        lines.append(f"{arm_title(report, arm):<34}{cells}")
    leak = report.get("leakage")
    if leak:
        pixel, polygon = leak["pixel_split"]["macro_f1"], leak["polygon_split"]["macro_f1"]
        lines.append(f"leakage check (random forest, optical + SAR, clear): random-pixel split macro-F1 "
                     f"{pixel:.3f} vs held-out {units_of(report.get('labels')).many} {polygon:.3f}")
    from ..core.training.scorecard import macroclass_lines, sar_only_lines, verdicts

    lines += sar_only_lines(report) + macroclass_lines(report) + verdicts(report)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run polygon training from parsed options; prints progress, the summary (or the report as JSON)."""
    from ..core.training.checks import check_threads
    from ..core.training.labels import MissingFieldError
    from ..core.training.polygons import report_notes, train_from_polygons

    params = params_from_args(args)
    if check_threads(args.threads):
        import torch
        torch.set_num_threads(int(args.threads))
    try:
        report = train_from_polygons(params, progress=lambda f, m: print(f"[{f:4.0%}] {m}", file=sys.stderr),
                                     on_epoch=_epoch_line)
    except MissingFieldError as exc:
        if exc.role != "name":
            raise
        raise ClaireError(f"--name-field {args.name_field}: {exc}") from None
    for note in report_notes(report):
        print(f"note: {note}", file=sys.stderr)
    classes = ", ".join(f"{c['code']}={c['name']}" for c in report["classes"])
    print(f"wrote {params.output} (classes {classes}); {counted(report['training']['epochs'], 'epoch')} in "
          f"{report['training']['seconds']} s", file=sys.stderr)
    if report.get("forest_checkpoint"):
        print(f"wrote {report['forest_checkpoint']} (the random forest, optical + SAR; map with it: claire classify "
              f"--checkpoint {quote(report['forest_checkpoint'])})", file=sys.stderr)
    if report.get("ensemble_checkpoint"):
        from ..core.training.scorecard import weight_phrase

        print(f"wrote {report['ensemble_checkpoint']} (the network and the forest averaged, {weight_phrase(report)}; "
              f"map with it: claire classify --checkpoint {quote(report['ensemble_checkpoint'])})", file=sys.stderr)
    if report.get("held_out_layer"):
        from ..core.training.labels import units_of

        many = units_of(report.get("labels")).many
        print(f"wrote {report['held_out_layer']} (the {len(report['validation_feature_ids'])} held-out {many} that "
              f"scored the models; a training started from this checkpoint holds them out again, and "
              f"--validation gives them to any other, so that its scores are measured on the same {many})",
              file=sys.stderr)
    if params.report:
        from ..core.training.scorecard import html_path_for

        print(f"wrote {params.report} and {html_path_for(params.report)} (the training report)", file=sys.stderr)
    print(json.dumps(report, indent=2) if args.json else summary_table(report))
    return 0
