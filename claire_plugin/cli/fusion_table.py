"""`claire fusion-table`: train every architecture on the shipped samples and write docs/fusion_table.md."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict

from ..core.errors import ClaireError
from ..paths import resource
from .train import set_threads


def register(subparsers: Any) -> None:
    """Add the `fusion-table` subcommand."""
    p = subparsers.add_parser("fusion-table", help="train every architecture on the shipped samples and "
                              "write the measured fusion table (docs/fusion_table.md)")
    p.add_argument("--out", default="docs/fusion_table.md",
                   help="Markdown table to write (default docs/fusion_table.md)")
    p.add_argument("--data", default=None, help="terramesh folder (default: the shipped one)")
    p.add_argument("--sen12ms", default=None, help="SEN12MS-CR sample folder (default: the shipped one)")
    p.add_argument("--epochs", type=int, default=15, help="epochs per architecture (default 15)")
    p.add_argument("--steps-per-epoch", type=int, default=20, help="steps per epoch (default 20)")
    p.add_argument("--archs", default="claire,asanet,optical_only,sar_only",
                   help="architectures to train (comma-separated; default: all four)")
    p.add_argument("--site", default="433D_629L_3_1", help="site held out entirely in protocol B")
    p.add_argument("--size", default="small", help="network size used for every architecture")
    p.add_argument("--from-json", action="store_true",
                   help="only rewrite the markdown from the JSON results saved next to --out by an earlier run")
    p.add_argument("--checkpoint", default=None,
                   help="also score this finished checkpoint (protocol A only, no training) as a row of its own; "
                        "with --from-json only it is scored and added to the saved results")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=cmd_fusion_table)


def _protocols(data: str, site: str) -> Dict[str, Any]:
    """Protocol A (right-hand block of every site held out) and B (one whole site held out)."""
    from ..core.training.datasets import list_pairs

    everything = list_pairs(data, "terramesh", "all")
    if site not in [p.name for p in everything]:
        raise ClaireError(f"site {site} is not in {data}")
    return {
        "A": (list_pairs(data, "terramesh", "train", 0.25), list_pairs(data, "terramesh", "val", 0.25)),
        "B": ([p for p in everything if p.name != site], [p for p in everything if p.name == site]),
    }


def _measured_specs(layout, src, pairs):
    """Input specs with mean/std measured on the training pairs of a protocol."""
    from ...models import spec as spec_mod
    from ..core.training.sources import input_specs

    ospec, sspec = input_specs(layout, pairs, None, None, None, False)
    stats = list(src.stat_arrays())
    return (spec_mod.measure_stats([o for o, _ in stats], ospec),
            spec_mod.measure_stats([s for _, s in stats], sspec))


def _sen12ms_scores(model, s12_folder: str, ospec, sspec, names) -> Dict[str, Any]:
    """Real clouds: agreement of the clear-input and cloudy-input maps of the SEN12MS-CR pair, over all pixels
    and under the cloud mask, and the gate's SAR share (tools/robustness.sen12ms, the bench's figures: the
    classes named, so that the snow check rules snow out as the engine does)."""
    from ..tools.robustness import sen12ms

    classes = [{"index": i, "name": n} for i, n in enumerate(names)]
    return sen12ms(model, {"inputs": {"optical": ospec, "sar": sspec}, "classes": classes}, s12_folder)


def _level1c(data: str, holdout: float = 0.25):
    """The Level-1C hold-out of protocol A (right-hand block of every site's S2L1C image, declared offsets)
    as a RasterPairSource, or None when the data folder has no S2L1C."""
    from ..core.training.datasets import LAYOUTS, list_pairs

    pairs = [p for p in list_pairs(data, "terramesh-levels", "val", holdout) if p.optical_folder == "S2L1C"]
    return _source(LAYOUTS["terramesh-levels"], pairs) if pairs else None


def _train_and_score(args, key, arch, src, vsrc, specs, names, extra) -> Dict[str, Any]:
    """Train one architecture on one protocol and score it (`_score`)."""
    from ...models.training import TrainConfig, train

    ospec, sspec = specs
    cfg = TrainConfig(arch=arch, size=args.size, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                      seed=args.seed, device="auto")
    print(f"[fusion-table] protocol {key}: training {arch}", file=sys.stderr)
    model, hist = train(src, ospec, sspec, len(names), cfg, progress=False)
    return dict(_score(model, key, vsrc, specs, names, extra), seconds=hist["seconds"])


def _score(model, key, vsrc, specs, names, extra) -> Dict[str, Any]:
    """A model's figures: clear, under synthetic clouds and (protocol A) on the Level-1C hold-out and the
    SEN12MS-CR pair (`extra`: their source / folder)."""
    from ...models.training import evaluate
    from ..core.training.datasets import EVAL_CONTEXT

    ospec, sspec = specs
    sources = [("clear", vsrc, "clear"), ("clouds", vsrc, "clouds")]
    if key == "A" and extra["l1c"] is not None:
        sources.append(("l1c", extra["l1c"], "clear"))
    r: Dict[str, Any] = {}
    for name, source, corr in sources:
        m = evaluate(model, source.eval_items(context=EVAL_CONTEXT), ospec, sspec, names, corr)
        r[name] = {"miou": m["miou"], "oa": m["oa"], "kappa": m["kappa"], "pixels": m["pixels"],
                   "sar_share": m["mean_sar_share"]}
    if key == "A":
        r["sen12ms"] = _sen12ms_scores(model, extra["sen12ms"], ospec, sspec, names)
    return r


def _checkpoint_row(path: str, vsrc, names, extra) -> tuple:
    """("checkpoint <file>", protocol-A figures) of a finished checkpoint, scored with its own card's input
    specs and without training (it may have seen every site, so it gets no protocol-B figures)."""
    from ...models.checkpoint import load_checkpoint

    model, card = load_checkpoint(path)
    if [c["name"] for c in card["classes"]] != names:
        raise ClaireError(f"{path} does not classify the TerraMesh classes ({', '.join(names)}); give a "
                          "checkpoint trained on the TerraMesh layout")
    ospec = card["inputs"]["optical"]
    for source in (vsrc, extra["l1c"]):
        if source is not None:
            source.optical_scale = ospec["scale"]
    print(f"[fusion-table] scoring {path}", file=sys.stderr)
    return f"checkpoint {os.path.basename(path)}", _score(model, "A", vsrc, (ospec, card["inputs"]["sar"]),
                                                          names, extra)


def _extra(args, data: str) -> Dict[str, Any]:
    """The protocol-A extras: the SEN12MS-CR folder and the Level-1C hold-out source (or None)."""
    return {"sen12ms": args.sen12ms or resource("data", "sen12ms_cr"), "l1c": _level1c(data)}


def _source(layout, pairs):
    from ..core.training.datasets import RasterPairSource

    return RasterPairSource(pairs, layout.classes, layout.ignore, layout.optical_bands)


def _write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def _from_json(args, json_path: str, data: str, archs, protocols) -> int:
    """Rewrite the markdown from the saved results (the run's settings, not today's); with --checkpoint,
    score that checkpoint first and add its row to the saved results."""
    from ..core.training.datasets import LAYOUTS
    from ..tools.fusion_table import fusion_markdown

    with open(json_path, encoding="utf-8") as fh:
        saved = json.load(fh)
    for key in ("threads", "epochs", "steps_per_epoch", "size", "seed"):
        setattr(args, key, saved.get(key, getattr(args, key)))
    if args.checkpoint:
        layout = LAYOUTS["terramesh"]
        row, figures = _checkpoint_row(args.checkpoint, _source(layout, protocols["A"][1]),
                                       [c.name for c in layout.classes], _extra(args, data))
        saved["results"]["A"][row] = figures
        _write_text(json_path, json.dumps(saved, indent=2))
    md = fusion_markdown(saved["results"], archs, args, saved["minutes"] * 60, protocols, saved["torch"])
    _write_text(args.out, md)
    print(md)
    return 0


def cmd_fusion_table(args: argparse.Namespace) -> int:
    """Same data, same budget for every architecture; write a markdown table with the numbers."""
    import torch

    from ..core.training.datasets import LAYOUTS
    from .dev_tools import dev_tool

    fusion_markdown = dev_tool("fusion_table", "fusion-table").fusion_markdown

    set_threads(args.threads)
    data = args.data or resource("data", "terramesh")
    layout = LAYOUTS["terramesh"]
    names = [c.name for c in layout.classes]
    archs = [a for a in args.archs.split(",") if a]
    protocols = _protocols(data, args.site)
    json_path = os.path.splitext(args.out)[0] + ".json"
    if args.from_json:
        return _from_json(args, json_path, data, archs, protocols)
    extra = _extra(args, data)
    results: Dict[str, Dict[str, Any]] = {}
    t_all = time.time()
    for key, (tr_pairs, va_pairs) in protocols.items():
        src, vsrc = _source(layout, tr_pairs), _source(layout, va_pairs)
        specs = _measured_specs(layout, src, tr_pairs)
        for arch in archs:
            results.setdefault(key, {})[arch] = _train_and_score(args, key, arch, src, vsrc, specs, names, extra)
    if args.checkpoint:
        row, figures = _checkpoint_row(args.checkpoint, _source(layout, protocols["A"][1]), names, extra)
        results["A"][row] = figures
    total = time.time() - t_all
    md = fusion_markdown(results, archs, args, total, protocols, torch.__version__)
    _write_text(args.out, md)
    _write_text(json_path, json.dumps({"minutes": round(total / 60, 2), "torch": torch.__version__,
                                       "threads": args.threads, "epochs": args.epochs,
                                       "steps_per_epoch": args.steps_per_epoch, "size": args.size,
                                       "seed": args.seed, "results": results}, indent=2))
    print(md)
    return 0
