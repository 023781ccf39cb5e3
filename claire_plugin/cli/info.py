"""`claire info` (a checkpoint's model card) and `claire models` (parameters and GFLOPs per architecture)."""
from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict

from ...models.card_schema import ENSEMBLE, FOREST, model_title
from ...models.macroclass import grouping_text
from ...models.quoting import quoted
from ..core.errors import ClaireError
from ..core.training.labels import labels_noun
from ..paths import DEFAULT_CHECKPOINT


def epochs_text(epochs) -> str:
    """'1 epoch', '12 epochs'; a card without the count says so."""
    from ..core.numbers import counted

    return counted(int(epochs), "epoch") if isinstance(epochs, int) else "epochs not recorded"


def register(subparsers: Any) -> None:
    """Add the `info` and `models` subcommands."""
    p = subparsers.add_parser("info", help="print a checkpoint's model card")
    p.add_argument("checkpoint", nargs="?", default=None, help="checkpoint (default: the bundled one)")
    p.add_argument("--checkpoint", dest="checkpoint_option", metavar="PATH", default=None,
                   help="the same, as the other commands name it")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = subparsers.add_parser("models", help="table of parameters and GFLOPs per architecture and size")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--sizes", default="tiny,small,base")
    p.add_argument("--speed", action="store_true", help="also time a CPU forward pass (small sizes)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)


def card_summary(card: Dict[str, Any]) -> str:
    """Human-readable summary of a model card."""
    t = card.get("training") or {}
    lines = [f"architecture  {model_title(card)}",
             "classes       " + ", ".join(f"{c['value']}={c['name']}" for c in card.get("classes", [])),
             f"nodata        {card.get('nodata')}"]
    grouped = grouping_text(card)
    if grouped:
        lines.insert(2, f"macroclasses  {grouped} (classify --level macroclass)")
    for mod in ("optical", "sar"):
        s = (card.get("inputs") or {}).get(mod) or {}
        lines.append(f"{mod:<14}{s.get('sensor')}: {', '.join(s.get('bands', []))} ({s.get('units')}, scale "
                     f"{s.get('scale')}, clip {s.get('clip')})")
    from ..core.engine.tiling import tiling_text

    lines.append(f"classified in {tiling_text(card)}")
    if t.get("data") == "polygons":
        labels = t.get("labels") or {}
        where = os.path.basename(str(labels.get('path') or '?')) + (f", field {labels['field']}" if labels.get("field")
                                                                    else "")
        amount = {FOREST: f"{t.get('training_pixels')} pixels",
                  ENSEMBLE: f"parts {t.get('network_checkpoint')} and {t.get('forest_checkpoint')}"}.get(
            card.get("arch"), epochs_text(t.get("epochs")))
        lines.append(f"trained on    {labels_noun(labels)} ({where}), {amount}{_seed(t)}")
    else:
        layout = f" ({t['layout']})" if t.get("layout") else ""
        lines.append(f"trained on    {t.get('data') or 'not recorded'}{layout}, {epochs_text(t.get('epochs'))}"
                     f"{_seed(t)}")
    held = _held_out_text(t)
    if held:
        lines.append(f"held out      {held}")
    optimistic = t["split"].get("optimistic") if isinstance(t.get("split"), dict) else None
    if optimistic:
        lines.append(f"optimistic    {optimistic}: its held-out scores below are too high on them")
    from ..core.training.labels import units_of
    from ..core.training.scorecard import interval_text, metric_title

    many = units_of(t.get("labels")).many
    for k, m in (card.get("metrics") or {}).items():
        if isinstance(m, dict) and "miou" in m:
            f1 = f"macro-F1 {m['macro_f1']:.3f}" if m.get("macro_f1") is not None else ""
            ci = interval_text(m.get("macro_f1_ci95"))
            f1 += (f" (95 % interval {ci})" if ci and f1 else "") + (", " if f1 else "")
            lines.append(f"metrics       {metric_title(k, many)}: {f1}OA {m['oa']:.3f}, mIoU {m['miou']:.3f}, "
                         f"kappa {m['kappa']:.3f}")
    if (card.get("metrics") or {}).get("heldout_polygons_note"):
        lines.append(f"              ({card['metrics']['heldout_polygons_note']})")
    tempered = _temperatures(card)
    if tempered:
        lines.append(f"confidence    tempered (models.calibration; classes unchanged): {tempered}")
    if card.get("created") or card.get("claire_version"):  # a card written elsewhere may have neither
        made = card.get("created") or "date not recorded"
        lines.append(f"created       {made}" + (f" (CLAIRE {card['claire_version']})" if card.get("claire_version")
                                                 else ""))
    return "\n".join(lines)


def _held_out_text(training: Dict[str, Any]) -> str:
    """What a card's training held out for its metrics, in words ("" when it does not say)."""
    if isinstance(training.get("heldout"), dict) and training["heldout"].get("what"):
        return str(training["heldout"]["what"])
    split = training.get("split")
    if not isinstance(split, dict):
        return ""
    buffer = f", {split['buffer_px']:g} px buffer" if isinstance(split.get("buffer_px"), (int, float)) else ""
    if split.get("kind") == "separate layer":
        source = split.get("val_source")
        path = source.get("path") if isinstance(source, dict) else source
        return f"a separate validation layer ({os.path.basename(str(path or '?'))}){buffer}"
    per_class = split.get("per_class")
    if split.get("kind") == "polygons" and isinstance(per_class, dict):
        from ..core.training.labels import units_of

        parts = [f"{100 * split['val_share']:g} % per class"] if isinstance(split.get("val_share"), (int, float)) \
            else []
        parts += [f"seed {split['seed']}"] if split.get("seed") is not None else []
        parts += [buffer.lstrip(", ")] if buffer else []
        detail = f" ({', '.join(parts)})" if parts else ""
        counts = [row.get("val_polygons") for row in per_class.values() if isinstance(row, dict)]
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in counts if n is not None):
            return f"whole {units_of(training.get('labels')).many}{detail}"  # counts of another shape: not summed
        held = sum(n or 0 for n in counts)
        return f"{held} whole {units_of(training.get('labels')).many}{detail}"
    return ""


def _temperatures(card: Dict[str, Any]) -> str:
    """"temperature 1.57, 3.01 from SAR alone (...)" from the card's calibration; "" without one."""
    from ...models.card_schema import card_temperature

    if not card.get("calibration"):
        return ""
    out = f"temperature {card_temperature(card):.3g}"
    if (card["calibration"].get("sar_only") or {}).get("temperature") is not None:
        out += f", {card_temperature(card, sar_only=True):.3g} from SAR alone (optical gaps; approached under cloud)"
    return out


def cmd_info(args: argparse.Namespace) -> int:
    """Print the model card (default checkpoint when none is given)."""
    from ...models.checkpoint import check_weights

    given = getattr(args, "checkpoint_option", None)
    if given and args.checkpoint and given != args.checkpoint:
        raise ClaireError(f"two checkpoints given ({quoted(args.checkpoint)} and --checkpoint {quoted(given)}); "
                          f"give one")
    given = given or args.checkpoint
    path = given or DEFAULT_CHECKPOINT
    if not os.path.exists(path):
        if given:
            raise ClaireError(f"checkpoint {path} does not exist; check the path, or leave it out to see the "
                              f"default checkpoint")
        raise ClaireError(f"the default checkpoint {path} is missing: the CLAIRE installation is incomplete; "
                          f"reinstall the plugin, or give a checkpoint")
    card = check_weights(path)  # a file missing weights printed its card and exit 0 (QA round 13)
    print(json.dumps(card, indent=2) if args.json else card_summary(card))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Parameters and GFLOPs per architecture and size (counted with FlopCounterMode)."""
    from ...models.profile import profile_models
    from ...models.registry import available_sizes

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in available_sizes()]
    if unknown or not sizes:
        raise ClaireError(f"--sizes {quoted(args.sizes)}: give model sizes among {', '.join(available_sizes())}, "
                          f"separated by commas")
    if args.tile < 32 or args.tile % 32 or args.tile > 2048:
        raise ClaireError(f"--tile {args.tile}: give a multiple of 32 from 32 to 2048 (e.g. 256)")
    rows = profile_models(sizes, tile=args.tile, speed=args.speed)
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


def _seed(training: dict) -> str:
    """', seed 3', or '' where the card records none."""
    return f", seed {training['seed']}" if training.get("seed") is not None else ""
