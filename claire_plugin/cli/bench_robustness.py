"""`claire bench-robustness`: the robustness figures of issue #18 for one checkpoint, as JSON."""
from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    """Add the `bench-robustness` subcommand."""
    p = subparsers.add_parser(
        "bench-robustness", help="robustness figures of a checkpoint on the shipped data (clouds, levels, tiles, "
                                 "unfamiliar scenes, water)",
        description="SEN12MS-CR clear vs cloudy agreement (all pixels and under the cloud mask) and SAR shares on "
                    "clouded and clear pixels; TerraMesh Level-1C vs Level-2A agreement per site; tile 256 vs 512; "
                    "the 'unlike the training data' share on the training sites and elsewhere; the water IoU "
                    "against a hand-made mask (tools/water.py says how it was made).")
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the bundled one)")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure and print the figures."""
    import torch

    from ..core.engine import load_model
    from ..core.io.atomic import write_json
    from ..paths import DEFAULT_CHECKPOINT
    from .dev_tools import dev_tool

    familiarity, robustness, water = (dev_tool(n, "bench-robustness") for n in ("familiarity", "robustness", "water"))

    torch.set_num_threads(max(1, args.threads))
    torch.set_grad_enabled(False)
    checkpoint = args.checkpoint or str(DEFAULT_CHECKPOINT)
    model, card = load_model(checkpoint)
    fam = card.get("familiarity") or familiarity.terramesh_familiarity(model, card)
    out = {"checkpoint": checkpoint, "config": card.get("config"),
           "sen12ms_cr": robustness.sen12ms(model, card), "levels": robustness.levels(model, card),
           "tiles": robustness.tiles(model, card),
           "unfamiliar": {"feature": fam.get("feature", "decoder"), "threshold": fam["threshold"],
                          "from_card": bool(card.get("familiarity")), **familiarity.scene_shares(model, card, fam)},
           "water": water.water_iou(model, card)}
    print(json.dumps(out, indent=2))
    if args.json:
        write_json(args.json, out)
    return 0
