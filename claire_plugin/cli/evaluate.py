"""`claire evaluate`: metrics of a checkpoint on a labelled folder (not the Processing `evaluate`, which
compares a map with a reference raster)."""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from typing import Any, Dict, Optional

from ...models.quoting import name_key, quoted
from ..core.errors import ClaireError
from ..core.params import parse_bands
from ..core.training.sources import plain_images_allowed, round_metrics
from ..paths import DEFAULT_CHECKPOINT


def register(subparsers: Any) -> None:
    """Add the `evaluate` subcommand."""
    p = subparsers.add_parser("evaluate", help="metrics of a checkpoint on a labelled folder")
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the bundled one)")
    p.add_argument("--data", required=True, help="dataset folder (optical, SAR and label rasters; see claire train)")
    p.add_argument("--layout", default="auto", help="the folder's layout (default: recognised from its folders)")
    p.add_argument("--split", default="val", choices=["val", "test", "train", "all"],
                   help="val (the hold-out: validation and test lists or folders, else a block of every image; the "
                        "default), test (the test list or folder alone), train or all")
    p.add_argument("--holdout", type=float, default=None, help="hold-out fraction (default: from the card)")
    p.add_argument("--corruption", default="clear", choices=["clear", "clouds", "haze"],
                   help="clear (the default), clouds or haze (synthetic, on the optical input)")
    p.add_argument("--optical-bands", default=None, help="1-based optical bands in the checkpoint's order")
    p.add_argument("--sar-bands", default=None, help="1-based SAR bands in the checkpoint's order")
    p.add_argument("--sar-linear", action="store_true", help="the SAR rasters hold linear power (converted to dB)")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, else CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_evaluate)


def metrics_table(m: Dict[str, Any]) -> str:
    """Plain-text table of metrics (overall + per class)."""
    g = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    width = max([22] + [len(str(c["name"])) + 2 for c in m["per_class"]])  # whole names, the numbers in columns
    lines = [f"OA {g(m['oa'])}   mIoU {g(m['miou'])}   mF1 {g(m.get('macro_f1'))}   mAcc {g(m.get('mean_accuracy'))}   "
             f"kappa {g(m['kappa'])}   pixels {m.get('pixels', '')}", "",
             f"{'class':<{width}}{'IoU':>8}{'prec':>8}{'recall':>8}{'F1':>8}{'support':>10}"]
    f = lambda v: f"{v:8.3f}" if isinstance(v, (int, float)) and v is not None else f"{'-':>8}"  # noqa: E731
    for c in m["per_class"]:
        lines.append(f"{c['name']:<{width}}{f(c['iou'])}{f(c['precision'])}{f(c['recall'])}{f(c['f1'])}"
                     f"{c['support']:>10}")
    if "confusion" in m:
        values = m.get("class_values") or list(range(1, len(m["confusion"]) + 1))
        lines += ["", "confusion matrix (rows = reference, columns = prediction; class values as in the table's "
                      "order: " + ", ".join(f"{v} {c['name']}" for v, c in zip(values, m["per_class"])) + "):",
                  "ref\\pred".rjust(9) + " " + " ".join(f"{v:>8}" for v in values)]
        lines += [f"{v:>9} " + " ".join(f"{n:8d}" for n in row) for v, row in zip(values, m["confusion"])]
    return "\n".join(lines)


@plain_images_allowed
def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint on a labelled folder; table or JSON."""
    from ...models.checkpoint import load_checkpoint
    from ...models.metrics import macro_f1, mean_accuracy
    from ...models.training import evaluate
    from ..core.runtime.device import check_device
    from ..core.training.checks import check_share
    from ..core.training.datasets import EVAL_CONTEXT
    from ..core.training.sources import classdefs_from_card

    device = check_device(args.device)
    if args.holdout is not None:
        check_share(args.holdout, "--holdout", True, "0.25")
    path = args.checkpoint or DEFAULT_CHECKPOINT
    model, card = load_checkpoint(path)
    holdout = args.holdout
    if holdout is None:
        holdout = float((card.get("training") or {}).get("holdout", 0.25))
    classes = classdefs_from_card(card)
    ignore = (card.get("training") or {}).get("ignored_label_values")
    ospec, sspec = card["inputs"]["optical"], card["inputs"]["sar"]
    lname, layout, src = _folder_source(args, card, classes, holdout, ignore)
    _check_same_classes(classes, layout.classes, lname, args.data)
    from ..core.training.datasets import split_list_notes

    for note in split_list_notes(args.data, lname):
        print(f"note: {note}", file=sys.stderr)
    print(f"scoring {len(src.pairs)} image(s) of the {args.split} split", file=sys.stderr)
    src.optical_scale = float(ospec.get("scale", 1.0))
    src.float_rule = "reflect" in str(ospec.get("units", "")).lower()
    _check_channels(src.channels, ospec, sspec, args.data)
    reason = _labels_reason(src, classes, args, lname)
    model.to(device)
    from ..core.io.block_cache import reading_rows_once, rows_once_bytes

    rows = src.eval_window + 2 * EVAL_CONTEXT  # the images are read in rows of windows, one image after another
    cache = max((rows_once_bytes([p.optical, p.sar, p.label], rows) for p in src.pairs), default=None)
    with reading_rows_once([], size=cache):
        m = evaluate(model, src.eval_items(context=EVAL_CONTEXT), ospec, sspec, [c.name for c in classes],
                     args.corruption, tile=int(card.get("tile_size", 256)), device=device)
    m["class_values"] = [c.value for c in classes]
    m["macro_f1"], m["mean_accuracy"] = macro_f1(m), mean_accuracy(m)  # the papers' mFscore and mAcc
    m["confusion_rows"], m["confusion_columns"] = "reference", "prediction"
    _left_out(m, src, len(classes), ignore or ())
    m.update(checkpoint=path, data=args.data, split=args.split, layout=lname, corruption=args.corruption)
    m = round_metrics(m, reason or "no labelled pixel was evaluated")
    if "undefined" in m:
        print(f"note: the metrics are undefined (null in the JSON): {m['undefined']['reason']}", file=sys.stderr)
    print(json.dumps(m, indent=2, allow_nan=False) if args.json else metrics_table(m))
    return 0


def _left_out(m: Dict[str, Any], src, num_classes: int, ignored) -> None:
    """Record (and say) the labelled pixels whose values are no class of the checkpoint: left out of the metrics,
    as `claire classify --reference` says it (QA: evaluate dropped them without a word)."""
    from ..core.engine.summary import left_out_note
    from ..core.training.data_checks import left_out_codes

    codes = left_out_codes(src, num_classes, ignored)
    left, counted = sum(codes.values()), int(m.get("pixels") or 0)
    m["reference_pixels"] = counted
    m["reference_left_out"] = {"pixels": left, "share": left / (left + counted) if left + counted else 0.0,
                               "codes": {str(k): v for k, v in codes.items()}}
    if left:
        print(f"note: {left_out_note(m['reference_left_out'])}", file=sys.stderr)


def _check_same_classes(classes, layout_classes, layout: str, data: str) -> None:
    """ClaireError when a label value means another class in the folder's layout than in the checkpoint (a
    checkpoint trained from polygons coded 1 = built area, scored on labels where 1 is water): every row of the
    table would name the wrong class. Values only one side defines are left to the table (support 0)."""
    if not layout_classes:
        return
    theirs = {int(c.value): c.name for c in layout_classes}
    differ = [(c.value, c.name, theirs[int(c.value)]) for c in classes
              if int(c.value) in theirs and name_key(c.name) != name_key(theirs[int(c.value)])]
    if differ:
        listed = "; ".join(f"{v} is {quoted(mine)} in the checkpoint but {quoted(other)} in the labels"
                           for v, mine, other in differ[:6])
        raise ClaireError(f"the checkpoint codes its classes otherwise than the {layout} labels of {data} ({listed}"
                          f"{'; ...' if len(differ) > 6 else ''}), so its scores would name the wrong classes; "
                          f"evaluate it on labels coded as its classes (claire info lists them), or classify a scene "
                          f"with it and compare the map with these labels using a class mapping (Processing: "
                          f"Evaluate a land-cover map, CLASS_MAPPING)")


def _folder_source(args: argparse.Namespace, card: Dict[str, Any], classes, holdout: float, ignore):
    """(layout name, layout, sample source) of the folder's split, its bands those the checkpoint reads: as given,
    else the folder's own when their count is the checkpoint's, else chosen as classify chooses (_card_bands)."""
    from ..core.training.sources import resolve_data

    ob = parse_bands(args.optical_bands, "--optical-bands")
    sb = parse_bands(args.sar_bands, "--sar-bands")

    def resolved(ob, sb):
        return resolve_data(args.data, args.layout, args.split, holdout, ob, sb, None,
                            ",".join(str(v) for v in ignore) if ignore is not None else None, args.sar_linear,
                            classes_override=classes)

    lname, layout, pairs, src, _, _ = resolved(ob, sb)
    if tuple(src.channels) != (len(card["inputs"]["optical"]["bands"]), len(card["inputs"]["sar"]["bands"])):
        chosen = _card_bands(pairs, card, ob, sb)
        if chosen != (ob, sb):
            lname, layout, pairs, src, _, _ = resolved(*chosen)
    return lname, layout, src


def _card_bands(pairs, card: Dict[str, Any], ob, sb):
    """(optical, SAR) 1-based bands of the folder's rasters for the checkpoint's bands where not given (the folder
    giving another band count than the checkpoint reads), chosen as classify and training choose them
    (core.inputs.bands: band names, else a known layout by band count, the latter checked by the spectral tests;
    QA round 21: a 12-band Level-2A stack that classify reads was refused here), each said in a note. Every image
    must resolve to the same bands (one band list reads them all): a ClaireError names two that differ. Left as
    given where the rasters have no more bands than the checkpoint reads."""
    import rasterio

    from ..core.inputs.bands import choose_raster_bands

    if not pairs:
        return ob, sb
    out = []
    cfg = card.get("config") or {}
    for given, role, flag, attr in ((ob, "optical", "--optical-bands", "optical"), (sb, "SAR", "--sar-bands", "sar")):
        spec = card["inputs"][attr]
        if given is not None:
            out.append(given)
            continue
        choices, unchecked = [], []
        for pair in pairs:
            with rasterio.open(getattr(pair, attr)) as ds:
                if not choices and ds.count <= len(spec["bands"]):  # too few bands: _check_channels says so
                    break
                choice = choose_raster_bands(ds, role, spec["bands"], None, cfg.get(f"{attr}_channels"), flag)
                if attr == "optical":  # every image: a stack that passes on one may not be checkable on another
                    said = _spectral_order(ds, choice, card)
                    if said:  # e.g. too little vegetation to check the order
                        unchecked.append((os.path.basename(pair.optical), said))
            if choices and choice.indices != choices[0][1].indices:
                first, chosen = choices[0]
                raise ClaireError(
                    f"the {role} rasters of the folder hold their bands in different orders: "
                    f"{os.path.basename(getattr(first, attr))} gives {_band_list(chosen)} ({chosen.method}), "
                    f"{os.path.basename(getattr(pair, attr))} gives {_band_list(choice)} ({choice.method}); one band "
                    f"list reads them all: stack them alike, or evaluate them in separate folders with {flag}")
            choices.append((pair, choice))
        if not choices:
            out.append(given)
            continue
        choice = choices[0][1]
        out.append(choice.indices)
        print(f"note: {role} bands " + ", ".join(f"{i}->{n}" for i, n in zip(choice.indices, choice.names))
              + f" ({choice.method})", file=sys.stderr)
        if unchecked and len(unchecked) == len(choices):  # one image that passed the order tests checks them all
            names = ", ".join(n for n, _ in unchecked[:3]) + (f" and {len(unchecked) - 3} more" if len(unchecked) > 3
                                                              else "")
            print(f"claire: {unchecked[0][1]} (every image of the folder: {names})", file=sys.stderr)
    return out[0], out[1]


def _band_list(choice) -> str:
    """A band choice as 'bands 2,3,4,...'."""
    return "bands " + ",".join(str(i) for i in choice.indices)


def _spectral_order(ds, choice, card: Dict[str, Any]) -> Optional[str]:
    """The engine's spectral tests of optical bands placed by position (core.inputs.bands.check_spectral_order) on
    an open optical raster of the folder; its warning when the scene cannot check the order."""
    import numpy as np
    from rasterio.windows import Window

    from ..core.inputs.bands import check_spectral_order, placed_by_position
    from ..core.inputs.normalize import InputSpec, optical_preparer
    from ..core.inputs.radiometry import optical_radiometry
    from ..core.io import raster_io as rio

    if not placed_by_position(choice.method) or rio.slow_to_sample(ds):
        return None
    spec = InputSpec.from_card(card, "optical", (card.get("config") or {}).get("optical_channels"))
    sample = rio.sample(ds, choice.indices, Window(0, 0, ds.width, ds.height))
    prep = optical_preparer(spec, len(choice.indices), ds.dtypes[choice.indices[0] - 1], sample,
                            optical_radiometry(ds, choice.indices, None), ds.nodata)
    return check_spectral_order(choice, ds.count, prep.physical(sample.astype(np.float32)))


def _check_channels(channels, ospec: Dict[str, Any], sspec: Dict[str, Any], data: str) -> None:
    """ClaireError when the folder's rasters give another number of optical or SAR bands than the checkpoint
    reads (a model fed other bands would score a wrong map without a word)."""
    for have, spec, role, flag in zip(channels, (ospec, sspec), ("optical", "SAR"), ("--optical-bands", "--sar-bands")):
        need = len(spec["bands"])
        if have != need:
            raise ClaireError(f"the {role} rasters of {data} give {have} band(s) but the checkpoint needs {need} "
                              f"({', '.join(map(str, spec['bands']))}); pass {flag} with the 1-based indices of "
                              f"those bands, or evaluate a checkpoint trained on these bands")


def _labels_reason(src, classes, args: argparse.Namespace, layout: str) -> Optional[str]:
    """None when the split has labelled pixels of the checkpoint's classes; the reason the metrics will be
    undefined when only other parts of the labels have them; ClaireError when no label value is a class."""
    from ..core.training.data_checks import check_labels, label_counts
    from ..core.training.datasets import list_pairs

    if label_counts(src, len(classes)).sum() > 0:
        return None
    src_all = copy.copy(src)
    src_all.pairs = list_pairs(args.data, layout, "all")
    check_labels(src_all, classes, f"in {args.data}",
                 "evaluate with a checkpoint trained on these classes, or give the labels of its classes")
    return f"no labelled pixel of the checkpoint's classes in split {quoted(args.split)} of {args.data}"

