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


def _sen12ms_scores(model, s12, ospec, sspec) -> Dict[str, Any]:
    """Agreement of the clear-input and cloudy-input maps of the SEN12MS-CR pair, and the gate's SAR share."""
    import numpy as np

    from ...models import spec as spec_mod
    from ...models.predict import predict_arrays

    s1, s2_clear, s2_cloudy = s12
    sar_n = spec_mod.normalise(s1, sspec)
    pa, sa = predict_arrays(model, spec_mod.normalise(s2_clear, ospec), sar_n, 256)
    pb, sb = predict_arrays(model, spec_mod.normalise(s2_cloudy, ospec), sar_n, 256)
    return {"agreement": float((pa.argmax(0) == pb.argmax(0)).mean()),
            "sar_share_clear": float(sa.mean()), "sar_share_cloudy": float(sb.mean()),
            "classes_clear": int(len(np.unique(pa.argmax(0))))}


def _train_and_score(args, key, arch, src, vsrc, specs, names, s12) -> Dict[str, Any]:
    """Train one architecture on one protocol and score it clear, under synthetic clouds and on SEN12MS-CR."""
    from ...models.training import TrainConfig, evaluate, train
    from ..core.training.datasets import EVAL_CONTEXT

    ospec, sspec = specs
    cfg = TrainConfig(arch=arch, size=args.size, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                      seed=args.seed, device="auto")
    print(f"[fusion-table] protocol {key}: training {arch}", file=sys.stderr)
    model, hist = train(src, ospec, sspec, len(names), cfg, progress=False)
    r: Dict[str, Any] = {"seconds": hist["seconds"]}
    for corr in ("clear", "clouds"):
        m = evaluate(model, vsrc.eval_items(context=EVAL_CONTEXT), ospec, sspec, names, corr)
        r[corr] = {"miou": m["miou"], "oa": m["oa"], "kappa": m["kappa"], "pixels": m["pixels"],
                   "sar_share": m["mean_sar_share"]}
    if key == "A":
        r["sen12ms"] = _sen12ms_scores(model, s12, ospec, sspec)
    return r


def _write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


def cmd_fusion_table(args: argparse.Namespace) -> int:
    """Same data, same budget for every architecture; write a markdown table with the numbers."""
    import torch

    from ..core.training.datasets import LAYOUTS, RasterPairSource
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
        with open(json_path) as fh:
            saved = json.load(fh)
        for key in ("threads", "epochs", "steps_per_epoch", "size", "seed"):  # the run's settings, not today's
            setattr(args, key, saved.get(key, getattr(args, key)))
        md = fusion_markdown(saved["results"], archs, args, saved["minutes"] * 60, protocols, saved["torch"])
        _write_text(args.out, md)
        print(md)
        return 0
    from ..core.training.datasets import read_sen12ms_pair

    s12 = read_sen12ms_pair(args.sen12ms or resource("data", "sen12ms_cr"))
    results: Dict[str, Dict[str, Any]] = {}
    t_all = time.time()
    for key, (tr_pairs, va_pairs) in protocols.items():
        src = RasterPairSource(tr_pairs, layout.classes, layout.ignore, layout.optical_bands)
        vsrc = RasterPairSource(va_pairs, layout.classes, layout.ignore, layout.optical_bands)
        specs = _measured_specs(layout, src, tr_pairs)
        for arch in archs:
            results.setdefault(key, {})[arch] = _train_and_score(args, key, arch, src, vsrc, specs, names, s12)
    total = time.time() - t_all
    md = fusion_markdown(results, archs, args, total, protocols, torch.__version__)
    _write_text(args.out, md)
    _write_text(json_path, json.dumps({"minutes": round(total / 60, 2), "torch": torch.__version__,
                                       "threads": args.threads, "epochs": args.epochs,
                                       "steps_per_epoch": args.steps_per_epoch, "size": args.size,
                                       "seed": args.seed, "results": results}, indent=2))
    print(md)
    return 0
