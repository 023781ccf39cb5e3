"""`claire train`, `claire evaluate`, `claire info`, `claire models`: training pipeline and model cards."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

from ..core.errors import ClaireError
from ..core.training.cards import build_card, nodata_for as _nodata_for
from . import train_polygons

from ..paths import DEFAULT_CHECKPOINT, resource


def register(subparsers: Any) -> None:
    """Add the train / evaluate / info / models subcommands."""
    p = subparsers.add_parser("train", help="train a network on an optical + SAR + label folder (--data), or "
                              "fine-tune one on your own polygons (--optical, --sar, --labels)")
    p.add_argument("--arch", default="claire", help="claire, asanet, optical_only or sar_only")
    p.add_argument("--size", default="small", help="tiny, small (CPU default) or base (GPU)")
    p.add_argument("--data", default=None, help="data folder (generic: optical/, sar/, labels/)")
    p.add_argument("--layout", default="auto",
                   help="auto, generic, whu-opt-sar, pie-rgb-sar, oem-sar or terramesh")
    p.add_argument("--output", required=True, help="checkpoint to write (.safetensors)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 20; with --labels 12)")
    p.add_argument("--steps-per-epoch", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=128, help="training crop size (multiple of 32)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 2e-3; with --labels 1e-3)")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", type=float, default=0.25,
                   help="right-hand fraction of every image held out for metrics when there are no split lists")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on GPU")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT.resume if it exists")
    p.add_argument("--optical-bands", default=None, help="1-based optical band indices, e.g. 2,3,4,8")
    p.add_argument("--sar-bands", default=None, help="1-based SAR band indices")
    p.add_argument("--optical-scale", type=float, default=None, help="raw optical -> reflectance factor")
    p.add_argument("--sar-linear", action="store_true", help="SAR rasters are linear power: convert to dB")
    p.add_argument("--classes", default=None,
                   help="value:name[:#rrggbb] list, e.g. '1:water:#419bdf,2:trees' (default: from layout / labels)")
    p.add_argument("--ignore", default=None, help="label values to ignore, e.g. 0,8")
    p.add_argument("--loss-lambda", type=float, default=0.6)
    p.add_argument("--focal-gamma", type=float, default=2.0)
    p.add_argument("--tversky-alpha", type=float, default=0.3)
    p.add_argument("--tversky-beta", type=float, default=0.7)
    p.add_argument("--class-weights", default="inverse_sqrt", help="inverse, inverse_sqrt or none")
    p.add_argument("--half", action="store_true",
                   help="store weights as float16 (half the file size; metrics are measured on the rounded weights)")
    p.add_argument("--note", default="", help="free text stored in the card's training section")
    p.add_argument("--json", action="store_true", help="print the final model card as JSON")
    train_polygons.add_arguments(p)
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("evaluate", help="metrics of a checkpoint on a labelled folder")
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the bundled one)")
    p.add_argument("--data", required=True)
    p.add_argument("--layout", default="auto")
    p.add_argument("--split", default="val", help="val (hold-out / split lists), train or all")
    p.add_argument("--holdout", type=float, default=None, help="hold-out fraction (default: from the card)")
    p.add_argument("--corruption", default="clear", help="clear, clouds or haze (synthetic, on the optical input)")
    p.add_argument("--optical-bands", default=None)
    p.add_argument("--sar-bands", default=None)
    p.add_argument("--sar-linear", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser("fusion-table", help="train every architecture on the shipped samples and "
                              "write the measured fusion table (docs/fusion_table.md)")
    p.add_argument("--out", default="docs/fusion_table.md")
    p.add_argument("--data", default=None, help="terramesh folder (default: the shipped one)")
    p.add_argument("--sen12ms", default=None, help="SEN12MS-CR sample folder (default: the shipped one)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--steps-per-epoch", type=int, default=20)
    p.add_argument("--archs", default="claire,asanet,optical_only,sar_only")
    p.add_argument("--site", default="433D_629L_3_1", help="site held out entirely in protocol B")
    p.add_argument("--size", default="small", help="network size used for every architecture")
    p.add_argument("--from-json", action="store_true",
                   help="only rewrite the markdown from the JSON results saved next to --out by an earlier run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_fusion_table)

    p = subparsers.add_parser("info", help="print a checkpoint's model card")
    p.add_argument("checkpoint", nargs="?", default=None, help="checkpoint (default: the bundled one)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = subparsers.add_parser("models", help="table of parameters and GFLOPs per architecture and size")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--sizes", default="tiny,small,base")
    p.add_argument("--speed", action="store_true", help="also time a CPU forward pass (small sizes)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)


# ----------------------------------------------------------------------------------------------- helpers
def _ints(text: Optional[str]) -> Optional[List[int]]:
    if not text:
        return None
    try:
        return [int(v) for v in str(text).replace(" ", "").split(",") if v]
    except ValueError as exc:
        raise ClaireError(f"cannot read the list {text!r}: give comma-separated integers, e.g. 2,3,4") from exc


def _parse_classes(text: str):
    from ..core.training.datasets import ClassDef

    out = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if len(parts) < 2 or not parts[0].strip().lstrip("-").isdigit():
            raise ClaireError(f"bad class entry {item!r}: use value:name[:#rrggbb], e.g. 1:water:#419bdf")
        out.append(ClassDef(int(parts[0]), parts[1].strip(), parts[2].strip() if len(parts) > 2 else None))
    return out


def _set_threads(n: Optional[int]) -> None:
    import torch

    if n:
        torch.set_num_threads(int(n))


def resolve_data(data: str, layout_name: str, split: str, holdout: float, optical_bands=None, sar_bands=None,
                 classes_text=None, ignore_text=None, sar_linear=False, classes_override=None):
    """Pairs + SampleSource + layout for a data folder."""
    from ..core.training.datasets import LAYOUTS, ClassDef, RasterPairSource, detect_layout, list_pairs, scan_label_values

    name = detect_layout(data) if layout_name == "auto" else layout_name
    if name not in LAYOUTS:
        raise ClaireError(f"unknown layout {name!r}; choose one of auto, {', '.join(LAYOUTS)}")
    layout = LAYOUTS[name]
    pairs = list_pairs(data, name, split=split, holdout=holdout)
    ignore = (_ints(ignore_text) or []) if ignore_text is not None else list(layout.ignore)
    if classes_override is not None:
        classes = classes_override
    elif classes_text:
        classes = _parse_classes(classes_text)
    elif layout.classes:
        classes = list(layout.classes)
    else:
        classes = [ClassDef(v, f"class_{v}") for v in scan_label_values(pairs, ignore) if v != 255]
        if not classes:
            raise ClaireError(f"the label rasters in {data} hold no class values; check the labels/ folder")
    ob = optical_bands if optical_bands is not None else layout.optical_bands
    src = RasterPairSource(pairs, classes, ignore, ob, sar_bands, sar_linear_to_db=sar_linear)
    return name, layout, pairs, src, classes, ignore


def _input_specs(layout, pairs, optical_bands, sar_bands, optical_scale, sar_linear):
    from ...models import spec
    from ..core.training.datasets import band_names, default_optical_scale

    ob = optical_bands if optical_bands is not None else layout.optical_bands
    onames = layout.optical_names if (layout.optical_names and ob == layout.optical_bands) else band_names(pairs[0].optical, ob)
    snames = layout.sar_names or band_names(pairs[0].sar, sar_bands)
    scale = optical_scale if optical_scale is not None else (
        layout.optical_scale if layout.optical_scale is not None else default_optical_scale(pairs[0].optical))
    ospec = spec.optical_spec(onames, sensor=layout.optical_sensor, scale=scale, units=layout.optical_units)
    sunits = "dB" if sar_linear else layout.sar_units
    sspec = spec.sar_spec(snames, sensor=layout.sar_sensor, units=sunits, scale=layout.sar_scale,
                          clip=layout.sar_clip)
    return ospec, sspec


def _round_metrics(m: Dict[str, Any]) -> Dict[str, Any]:
    def r(v):
        return round(v, 4) if isinstance(v, float) else v
    out = {k: r(v) for k, v in m.items() if k != "per_class"}
    out["per_class"] = [{k: r(v) for k, v in c.items()} for c in m.get("per_class", [])]
    return out


def cmd_train(args: argparse.Namespace) -> int:
    """Train, evaluate on the hold-out, write the checkpoint with its card."""
    import torch

    if args.labels:
        return train_polygons.run(args)
    if not args.data:
        raise ClaireError("say what to train on: --data FOLDER (optical/, sar/, labels/ rasters) or --optical, "
                          "--sar and --labels (your polygons or points)")
    args.epochs = 20 if args.epochs is None else args.epochs
    args.lr = 2e-3 if args.lr is None else args.lr

    from ...models import spec as spec_mod
    from ...models.checkpoint import save_checkpoint
    from ...models.registry import available_architectures, available_sizes
    from ...models.training import LossConfig, TrainConfig, evaluate, train

    if args.arch not in available_architectures():
        raise ClaireError(f"unknown architecture {args.arch!r}; choose one of {', '.join(available_architectures())}")
    if args.size not in available_sizes():
        raise ClaireError(f"unknown size {args.size!r}; choose one of {', '.join(available_sizes())}")
    if args.crop % 32:
        raise ClaireError(f"--crop must be a multiple of 32 (got {args.crop})")
    _set_threads(args.threads)
    ob, sb = _ints(args.optical_bands), _ints(args.sar_bands)
    lname, layout, pairs, src, classes, ignore = resolve_data(
        args.data, args.layout, "train", args.holdout, ob, sb, args.classes, args.ignore, args.sar_linear)
    ospec, sspec = _input_specs(layout, pairs, ob, sb, args.optical_scale, args.sar_linear)
    src.optical_scale = ospec["scale"]
    stats = list(src.stat_arrays())
    ospec = spec_mod.measure_stats([o for o, _ in stats], ospec)
    sspec = spec_mod.measure_stats([s for _, s in stats], sspec)
    cfg = TrainConfig(arch=args.arch, size=args.size, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                      batch_size=args.batch_size, crop=args.crop, lr=args.lr, weight_decay=args.weight_decay,
                      seed=args.seed, device=args.device, amp=not args.no_amp,
                      loss=LossConfig(args.loss_lambda, args.focal_gamma, args.tversky_alpha, args.tversky_beta,
                                      args.class_weights))
    resume = args.output + ".resume" if args.resume else None
    print(f"training {args.arch}/{args.size} on {len(pairs)} image(s) of {args.data} (layout {lname}), "
          f"{len(classes)} classes, {cfg.epochs} epochs x {cfg.steps_per_epoch} steps x {cfg.batch_size} crops "
          f"of {cfg.crop} px", file=sys.stderr)
    model, hist = train(src, ospec, sspec, len(classes), cfg, resume_path=resume, log=lambda m: print(m, file=sys.stderr))
    names = [c.name for c in classes]
    device = "cuda" if hist["device"].startswith("cuda") else "cpu"
    try:
        _, _, vpairs, vsrc, _, _ = resolve_data(args.data, lname, "val", args.holdout, ob, sb, None, args.ignore,
                                                args.sar_linear, classes_override=classes)
        vsrc.optical_scale = ospec["scale"]
        held = [p.name for p in vpairs]
        metrics_key = "heldout"
    except ClaireError:
        vsrc, held, metrics_key = src, [], "training_data"
    if args.half:
        from ...models.training import round_weights
        round_weights(model)
    t = time.time()
    m_clear = evaluate(model.to(device), vsrc.eval_items(), ospec, sspec, names, "clear", device=device)
    m_cloud = evaluate(model, vsrc.eval_items(), ospec, sspec, names, "clouds", device=device)
    print(f"evaluation {time.time() - t:.1f} s", file=sys.stderr)
    model.to("cpu")
    region_text = [{"name": p.name, "rows": [p.region[0], p.region[0] + p.region[2]],
                    "cols": [p.region[1], p.region[1] + p.region[3]]} for p in pairs]
    training = {
        "data": os.path.relpath(os.path.abspath(args.data), os.getcwd()) if not os.path.isabs(args.data) else args.data,
        "layout": lname, "images": region_text,
        "heldout": ({"what": f"right-hand {args.holdout:.0%} block of every image" if held and not
                     os.path.exists(os.path.join(args.data, "val.txt")) else "split lists / val folders",
                     "images": held} if held else None),
        "holdout": args.holdout, "ignored_label_values": [int(v) for v in ignore],
        "epochs": cfg.epochs, "seed": cfg.seed, "config": cfg.to_dict(),
        "loss": {"name": "RIFT", "lambda": cfg.loss.lam, "gamma": cfg.loss.gamma, "alpha": cfg.loss.alpha,
                 "beta": cfg.loss.beta, "class_weights": cfg.loss.weights,
                 "class_weight_values": hist["class_weights"]},
        "class_pixel_counts": hist["class_counts"], "loss_history": hist["loss"],
        "seconds": hist["seconds"], "device": hist["device"], "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "weights_dtype": "float16" if args.half else "float32",
        "note": args.note,
    }
    metrics = {metrics_key: _round_metrics(m_clear), f"{metrics_key}_synthetic_clouds": _round_metrics(m_cloud)}
    from ...models.registry import resolve_config
    config = {k: v for k, v in resolve_config({"num_classes": len(classes), "optical_channels": len(ospec["bands"]),
                                               "sar_channels": len(sspec["bands"]), "size": args.size}).items()}
    card = build_card(args.arch, args.size, config, classes, _nodata_for(classes, layout.nodata), ospec, sspec,
                      training, metrics)
    save_checkpoint(args.output, model, card, dtype=torch.float16 if args.half else None)
    if resume and os.path.exists(resume):
        os.remove(resume)
    print(f"wrote {args.output}; {metrics_key} mIoU {m_clear['miou']:.3f} OA {m_clear['oa']:.3f} "
          f"(synthetic clouds: mIoU {m_cloud['miou']:.3f} OA {m_cloud['oa']:.3f}); training {hist['seconds']} s",
          file=sys.stderr)
    if args.json:
        print(json.dumps(card, indent=2))
    return 0


def _classdefs_from_card(card: Dict) -> list:
    from ..core.training.datasets import ClassDef

    return [ClassDef(int(c["value"]), c["name"], c.get("color")) for c in card["classes"]]


def metrics_table(m: Dict[str, Any]) -> str:
    """Plain-text table of metrics (overall + per class)."""
    lines = [f"OA {m['oa']:.4f}   mIoU {m['miou']:.4f}   kappa {m['kappa']:.4f}   pixels {m.get('pixels', '')}", "",
             f"{'class':<22}{'IoU':>8}{'prec':>8}{'recall':>8}{'F1':>8}{'support':>10}"]
    f = lambda v: f"{v:8.3f}" if isinstance(v, (int, float)) and v is not None else f"{'-':>8}"  # noqa: E731
    for c in m["per_class"]:
        lines.append(f"{c['name']:<22}{f(c['iou'])}{f(c['precision'])}{f(c['recall'])}{f(c['f1'])}{c['support']:>10}")
    if "confusion" in m:
        lines += ["", "confusion matrix (rows = reference, columns = prediction):"]
        lines += ["  " + " ".join(f"{v:7d}" for v in row) for row in m["confusion"]]
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint on a labelled folder; table or JSON."""
    from ...models.checkpoint import load_checkpoint
    from ...models.training import evaluate, pick_device

    path = args.checkpoint or DEFAULT_CHECKPOINT
    model, card = load_checkpoint(path)
    holdout = args.holdout
    if holdout is None:
        holdout = float((card.get("training") or {}).get("holdout", 0.25))
    classes = _classdefs_from_card(card)
    ignore = (card.get("training") or {}).get("ignored_label_values")
    ob, sb = _ints(args.optical_bands), _ints(args.sar_bands)
    lname, layout, pairs, src, _, _ = resolve_data(
        args.data, args.layout, args.split, holdout, ob, sb, None,
        ",".join(str(v) for v in ignore) if ignore is not None else None, args.sar_linear, classes_override=classes)
    ospec, sspec = card["inputs"]["optical"], card["inputs"]["sar"]
    src.optical_scale = float(ospec.get("scale", 1.0))
    n_opt = len(ospec["bands"])
    if ob is None and layout.optical_bands is None:
        from ..core.training.datasets import band_names
        have = len(band_names(pairs[0].optical, None))
        if have != n_opt:
            raise ClaireError(f"the optical rasters have {have} bands but the checkpoint expects {n_opt} "
                              f"({', '.join(ospec['bands'])}); pass --optical-bands")
    device = str(pick_device(args.device))
    model.to(device)
    m = evaluate(model, src.eval_items(), ospec, sspec, [c.name for c in classes], args.corruption,
                 tile=int(card.get("tile_size", 256)), overlap=int(card.get("overlap", 32)), device=device)
    m["class_values"] = [c.value for c in classes]
    m["checkpoint"], m["data"], m["split"], m["layout"], m["corruption"] = path, args.data, args.split, lname, args.corruption
    if args.json:
        print(json.dumps(_round_metrics(m), indent=2))
    else:
        print(metrics_table(m))
    return 0


def card_summary(card: Dict[str, Any]) -> str:
    """Human-readable summary of a model card."""
    t = card.get("training") or {}
    lines = [f"architecture  {card.get('arch')} ({card.get('size')})",
             "classes       " + ", ".join(f"{c['value']}={c['name']}" for c in card.get("classes", [])),
             f"nodata        {card.get('nodata')}"]
    for mod in ("optical", "sar"):
        s = (card.get("inputs") or {}).get(mod) or {}
        lines.append(f"{mod:<14}{s.get('sensor')}: {', '.join(s.get('bands', []))} ({s.get('units')}, scale "
                     f"{s.get('scale')}, clip {s.get('clip')})")
    lines.append(f"tile          {card.get('tile_size')} px, overlap {card.get('overlap')}")
    lines.append(f"trained on    {t.get('data')} ({t.get('layout')}), {t.get('epochs')} epochs, seed {t.get('seed')}")
    for k, m in (card.get("metrics") or {}).items():
        if isinstance(m, dict) and "miou" in m:
            lines.append(f"metrics       {k}: mIoU {m['miou']:.3f}, OA {m['oa']:.3f}, kappa {m['kappa']:.3f}")
    lines.append(f"created       {card.get('created')} (CLAIRE {card.get('claire_version')})")
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    """Print the model card (default checkpoint when none is given)."""
    from ...models.checkpoint import read_card

    path = args.checkpoint or DEFAULT_CHECKPOINT
    if not os.path.exists(path):
        raise ClaireError(f"checkpoint {path} does not exist; give a path or run `make checkpoint`")
    card = read_card(path)
    print(json.dumps(card, indent=2) if args.json else card_summary(card))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Parameters and GFLOPs per architecture and size (counted with FlopCounterMode)."""
    from ...models.profile import profile_models

    rows = profile_models([s for s in args.sizes.split(",") if s], tile=args.tile, speed=args.speed)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = f"{'arch':<14}{'size':<7}{'params (M)':>12}{'GFLOPs/' + str(args.tile) + chr(178):>14}"
    if args.speed:
        head += f"{'CPU MPix/s':>12}"
    print(head)
    for r in rows:
        line = f"{r['arch']:<14}{r['size']:<7}{r['params_m']:>12.2f}{r['gflops']:>14.2f}"
        if args.speed:
            line += f"{r['mpix_per_s']:>12.3f}" if r.get("mpix_per_s") else f"{'-':>12}"
        print(line)
    return 0


def read_sen12ms_pair(folder: str):
    """(s1 dB [2,H,W], s2 clear [10,H,W], s2 cloudy [10,H,W]) of the shipped SEN12MS-CR sample
    (L1C 13 bands -> the 10 bands of the default card: B02..B8A, B11, B12)."""
    import rasterio

    from ..core.training.datasets import S2_DEFAULT, S2_L1C_13

    def one(sub):
        files = sorted(f for f in os.listdir(os.path.join(folder, sub)) if f.lower().endswith((".tif", ".tiff")))
        if not files:
            raise ClaireError(f"no GeoTIFF in {os.path.join(folder, sub)}")
        with rasterio.open(os.path.join(folder, sub, files[0])) as ds:
            return ds.read().astype("float32")

    idx = [S2_L1C_13.index(b) for b in S2_DEFAULT]
    return one("s1"), one("s2_cloudfree")[idx], one("s2_cloudy")[idx]


def cmd_fusion_table(args: argparse.Namespace) -> int:
    """Same data, same budget for every architecture; write a markdown table with the numbers."""
    import numpy as np

    from ...models import spec as spec_mod
    from ...models.predict import predict_arrays
    from ...models.training import TrainConfig, evaluate, train
    from ..core.training.datasets import LAYOUTS, RasterPairSource, list_pairs

    _set_threads(args.threads)
    data = args.data or resource("data", "terramesh")
    s12 = args.sen12ms or resource("data", "sen12ms_cr")
    layout = LAYOUTS["terramesh"]
    classes, names = layout.classes, [c.name for c in layout.classes]
    archs = [a for a in args.archs.split(",") if a]
    everything = list_pairs(data, "terramesh", "all")
    if args.site not in [p.name for p in everything]:
        raise ClaireError(f"site {args.site} is not in {data}")
    protocols = {
        "A": (list_pairs(data, "terramesh", "train", 0.25), list_pairs(data, "terramesh", "val", 0.25)),
        "B": ([p for p in everything if p.name != args.site], [p for p in everything if p.name == args.site]),
    }
    json_path = os.path.splitext(args.out)[0] + ".json"
    if args.from_json:
        with open(json_path) as fh:
            saved = json.load(fh)
        md = _fusion_markdown(saved["results"], archs, args, saved["minutes"] * 60, protocols, saved["torch"])
        with open(args.out, "w") as fh:
            fh.write(md)
        print(md)
        return 0
    s1, s2_clear, s2_cloudy = read_sen12ms_pair(s12)
    results: Dict[str, Dict[str, Any]] = {}
    t_all = time.time()
    for key, (tr_pairs, va_pairs) in protocols.items():
        src = RasterPairSource(tr_pairs, classes, layout.ignore, layout.optical_bands)
        vsrc = RasterPairSource(va_pairs, classes, layout.ignore, layout.optical_bands)
        ospec, sspec = _input_specs(layout, tr_pairs, None, None, None, False)
        stats = list(src.stat_arrays())
        ospec = spec_mod.measure_stats([o for o, _ in stats], ospec)
        sspec = spec_mod.measure_stats([s for _, s in stats], sspec)
        for arch in archs:
            cfg = TrainConfig(arch=arch, size=args.size, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                              seed=args.seed, device="auto")
            print(f"[fusion-table] protocol {key}: training {arch}", file=sys.stderr)
            model, hist = train(src, ospec, sspec, len(classes), cfg, progress=False)
            r = {"seconds": hist["seconds"]}
            for corr in ("clear", "clouds"):
                m = evaluate(model, vsrc.eval_items(), ospec, sspec, names, corr)
                r[corr] = {"miou": m["miou"], "oa": m["oa"], "kappa": m["kappa"], "pixels": m["pixels"],
                           "sar_share": m["mean_sar_share"]}
            if key == "A":
                sar_n = spec_mod.normalise(s1, sspec)
                pa, sa = predict_arrays(model, spec_mod.normalise(s2_clear, ospec), sar_n, 256)
                pb, sb = predict_arrays(model, spec_mod.normalise(s2_cloudy, ospec), sar_n, 256)
                r["sen12ms"] = {"agreement": float((pa.argmax(0) == pb.argmax(0)).mean()),
                                "sar_share_clear": float(sa.mean()), "sar_share_cloudy": float(sb.mean()),
                                "classes_clear": int(len(np.unique(pa.argmax(0))))}
            results.setdefault(key, {})[arch] = r
    import torch

    total = time.time() - t_all
    md = _fusion_markdown(results, archs, args, total, protocols, torch.__version__)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write(md)
    with open(json_path, "w") as fh:
        json.dump({"minutes": round(total / 60, 2), "torch": torch.__version__, "threads": args.threads,
                   "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch, "size": args.size,
                   "seed": args.seed, "results": results}, fh, indent=2)
    print(md)
    return 0


def _class_presence(pairs) -> Dict[str, int]:
    from ..core.training.datasets import LAYOUTS, RasterPairSource

    lay = LAYOUTS["terramesh"]
    counts = RasterPairSource(pairs, lay.classes, lay.ignore, lay.optical_bands).class_counts(len(lay.classes))
    return {c.name: int(n) for c, n in zip(lay.classes, counts)}


def _fusion_reading(results, archs, protocols) -> List[str]:
    """Sentences computed from this run's numbers (so they stay true when the table is regenerated)."""
    out = []
    drops = ", ".join(f"{a} {results['A'][a]['clouds']['miou'] - results['A'][a]['clear']['miou']:+.3f}"
                      for a in archs)
    out.append(f"- Protocol A, change of mIoU from clear to clouded optical input: {drops} "
               "(sar_only cannot change: its input is the same).")
    gates = [a for a in archs if a in ("claire", "asanet")]
    if gates:
        moves = ", ".join(f"{a} {results['A'][a]['clear']['sar_share']:.3f} -> {results['A'][a]['clouds']['sar_share']:.3f}"
                          for a in gates)
        out.append(f"- Mean SAR share of the fusion gate on the hold-out, clear -> clouded optical: {moves}.")
    best_a = max(archs, key=lambda a: results["A"][a]["clouds"]["miou"])
    out.append(f"- Best protocol-A mIoU under clouds in this run: {best_a} "
               f"({results['A'][best_a]['clouds']['miou']:.3f}).")
    if "sen12ms" in results["A"].get(archs[0], {}):
        ag = ", ".join(f"{a} {results['A'][a]['sen12ms']['agreement']:.3f}" for a in archs)
        out.append(f"- SEN12MS-CR agreement between the cloudy-input and clear-input maps: {ag}.")
    tr_c, va_c = _class_presence(protocols["B"][0]), _class_presence(protocols["B"][1])
    unseen = [n for n, v in va_c.items() if v > 0 and tr_c.get(n, 0) < 100]
    present = [f"{n} {v}" for n, v in va_c.items() if v > 0]
    out.append(f"- Protocol B reference pixels per class on {protocols['B'][1][0].name}: {', '.join(present)}. "
               f"Classes of this site with fewer than 100 labelled pixels in the three training sites: "
               f"{', '.join(unseen) if unseen else 'none'}; no model can learn those here, and the class balance "
               "of the unseen site differs strongly from the training sites, which is why every protocol-B "
               "number is low: with three 224 px training sites none of these models generalises to a new "
               "place, fused or not.")
    return out


def _fusion_markdown(results, archs, args, total, protocols, torch_version) -> str:
    f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    a_tr, a_va = protocols["A"]
    b_tr, b_va = protocols["B"]
    lines = [
        "# Fusion table (measured)",
        "",
        "Reproduce with `make fusion-table` (runs `claire fusion-table --out docs/fusion_table.md`; "
        f"took {total / 60:.1f} min on this machine, torch {torch_version}, {args.threads} CPU thread(s)). "
        "`claire fusion-table --from-json` rewrites this text from `docs/fusion_table.json` without training. "
        "Numbers come from the run that wrote this file; nothing is copied from papers.",
        "",
        f"Setup: every architecture is the `{args.size}` size, trained from scratch with the same seed "
        f"({args.seed}), the same RIFT loss, augmentation (incl. synthetic clouds/haze on the optical input "
        f"and SAR speckle) and the same short budget: {args.epochs} epochs x {args.steps_per_epoch} steps x 8 "
        "random 128 px crops. Data: the 4 shipped TerraMesh sites (Sentinel-2 L2A 10 bands + Sentinel-1 RTC "
        "VV/VH, ESRI-derived LULC labels; label 0 and 8 = clouds ignored).",
        "",
        "- Protocol A (spatial hold-out): train on the left 75 % of every site, evaluate on the right-hand "
        "25 % block of every site (4 x 224 x 56 px).",
        f"- Protocol B (site hold-out): train on {', '.join(p.name for p in b_tr)}, evaluate on the whole "
        f"site {b_va[0].name} (224 x 224 px), never seen in training.",
        "- \"clouds\": the evaluation optical input is covered by deterministic synthetic clouds (60 % "
        "coverage, seeded); SAR unchanged.",
        "- SEN12MS-CR: the shipped clear/cloudy Sentinel-2 L1C pair of one place with its Sentinel-1 image "
        "(no labels). Agreement = share of pixels where the prediction from cloudy optical + SAR equals the "
        "one from clear optical + SAR (models of protocol A). sar_only always agrees (its input does not "
        "change) and is listed only as the bound.",
        "",
        "| architecture | A mIoU clear | A OA clear | A mIoU clouds | A OA clouds | B mIoU clear | B OA clear "
        "| B mIoU clouds | B OA clouds | SEN12MS-CR agreement | mean SAR share clear / cloudy (A) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arch in archs:
        a, b = results["A"][arch], results["B"][arch]
        s = a.get("sen12ms", {})
        lines.append(f"| {arch} | {f(a['clear']['miou'])} | {f(a['clear']['oa'])} | {f(a['clouds']['miou'])} | "
                     f"{f(a['clouds']['oa'])} | {f(b['clear']['miou'])} | {f(b['clear']['oa'])} | "
                     f"{f(b['clouds']['miou'])} | {f(b['clouds']['oa'])} | {f(s.get('agreement'))} | "
                     f"{f(a['clear']['sar_share'])} / {f(a['clouds']['sar_share'])} |")
    lines += ["", "## This run, in words", ""] + _fusion_reading(results, archs, protocols)
    lines += [
        "",
        "## What these numbers can and cannot show",
        "",
        "- The labelled data at hand is tiny: 4 sites of 224 x 224 px (about 0.2 MPix in all), with labels "
        "that are themselves the output of a model (ESRI / Impact Observatory 10 m LULC), not hand-drawn "
        "truth. The evaluation sets hold 50 k (A) and 50 k (B) pixels from 4 and 1 places; a single field or "
        "river bend moves mIoU by several points. Differences of a few points between architectures are "
        "within the noise of a different seed and must not be read as a ranking.",
        "- Protocol A blocks touch their training region (adjacent pixels, same scene, same date): it measures "
        "interpolation within a scene, not generalisation. Protocol B is a real unseen place, but some of "
        "its classes (e.g. built area, flooded vegetation) barely or never occur in the three training "
        "sites, so its mIoU is bounded by what the training sites contain.",
        "- The short, from-scratch budget favours small, easy-to-fit models; with a real dataset "
        "(WHU-OPT-SAR, PIE-RGB-SAR, OpenEarthMap-SAR) and the `base` size the ranking may change.",
        "- Synthetic clouds are a model of clouds the networks were also trained with; the SEN12MS-CR pair "
        "shows real clouds, but without labels it only measures stability (agreement), not accuracy, and its "
        "optical input is L1C (top of atmosphere) while training used L2A, which shifts every model.",
        "- What the table can show: whether a fused model keeps its accuracy when the optical input is "
        "clouded (compare clear vs clouds per row, and against optical_only), and whether its modality gate "
        "moves towards SAR under clouds (mean SAR share).",
        "",
    ]
    return "\n".join(lines)
