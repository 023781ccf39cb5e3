"""Robustness figures of a checkpoint on the shipped real data (issue #18), model level (models.predict,
not the engine):

- SEN12MS-CR: agreement of the maps from clear and from cloudy optical (same SAR), and the mean SAR share
  on clouded pixels of the cloudy image / clear pixels of the clear one (clouded: models.cloud > 0.5);
- TerraMesh: agreement of the maps from Level-1C and from Level-2A optical per site, with the Level-1C
  offsets of `S2L1C/offsets.json` applied ("declared") and as the files read ("as read");
- tile invariance: per site tile 192 vs 256, a 2 x 2 mosaic of the sites (448 px) tile 256 vs 512, and the
  896 px mosaic of its flipped copies: tile 256 vs 512 and each against the whole mosaic in one forward
  (tools/tile_invariance.py measures more settings and the distance to a tile edge);
- hold-out metrics (right-hand 25 % of every site), clear and with synthetic clouds, per level.

    python -m claire.claire_plugin.tools.robustness [--checkpoint X] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..paths import DEFAULT_CHECKPOINT, resource

SITES = ["282D_485L_3_3", "38D_378R_2_3", "433D_629L_3_1", "609U_541L_3_0"]


def _read(path: str, file_bands: Sequence[str], want: Sequence[str], add: float = 0.0) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as ds:
        raw = ds.read([file_bands.index(b) + 1 for b in want]).astype(np.float32)
    return raw + np.float32(add)


def predict(model, card: Dict[str, Any], opt_raw: np.ndarray, sar_raw: np.ndarray, tile: int = 256,
            context: Optional[int] = None, overlap: Optional[int] = None, cloud_override: Optional[float] = None,
            **tiling: Any):
    """(class index map [H,W], sar share [H,W], cloud probability [H,W]) as the model sees the pair: with the
    engine's tiling (cores of `tile` px, `context` px around them, default models.predict.CONTEXT), or with
    `overlap` or `tiling` (blend / fit_edges) the earlier blended tiles (models.predict.predict_blended).
    `cloud_override`: the cloud input (and the snow check's floor) set to this value everywhere (1: the fusion
    decides from SAR, as under thick cloud)."""
    from ...models.cloud import check_snow, cloud_probability
    from ...models.predict import CONTEXT, predict_arrays, predict_blended
    from ...models.spec import normalise, standardise, to_physical

    ospec, sspec = card["inputs"]["optical"], card["inputs"]["sar"]
    phys = to_physical(opt_raw, ospec)
    cloud = cloud_probability(phys, ospec["bands"])
    if cloud_override is not None:
        cloud = np.full_like(cloud, cloud_override)
    inputs = (standardise(phys, ospec), normalise(sar_raw, sspec))
    gate = cloud[None] if getattr(model, "uses_cloud", False) else None
    if overlap is not None or tiling:
        prob, share = predict_blended(model, *inputs, tile, 32 if overlap is None else overlap, cloud=gate, **tiling)
    else:
        prob, share = predict_arrays(model, *inputs, tile, CONTEXT if context is None else context, cloud=gate)
    names = [c["name"] for c in sorted(card.get("classes") or [], key=lambda c: int(c.get("index", 0)))]
    return check_snow(prob, phys, ospec["bands"], names, cloud).argmax(0), share, cloud


def sen12ms(model, card, folder: Optional[str] = None) -> Dict[str, float]:
    """Clear vs cloudy agreement and SAR shares on the SEN12MS-CR pair in `folder` (default: the shipped one)."""
    from ..core.training.datasets import read_sen12ms_pair

    s1, clear, cloudy = read_sen12ms_pair(folder or resource("data", "sen12ms_cr"))
    ma, sa, ca = predict(model, card, clear, s1)
    mb, sb, cb = predict(model, card, cloudy, s1)
    clouded, clear_px = cb > 0.5, ca <= 0.5
    return {"agreement": float((ma == mb).mean()),
            "agreement_on_clouded": float((ma == mb)[clouded].mean()) if clouded.any() else float("nan"),
            "clouded_fraction_cloudy": float(clouded.mean()), "clouded_fraction_clear": float((ca > 0.5).mean()),
            "sar_share_clouded": float(sb[clouded].mean()) if clouded.any() else float("nan"),
            "sar_share_clear_pixels": float(sa[clear_px].mean()),
            "sar_share_mean_cloudy": float(sb.mean()), "sar_share_mean_clear": float(sa.mean())}


def _site_inputs(site: str, level: str, card, declared: bool):
    from ..core.training.datasets import S2_L1C_13, S2_L2A_12, declared_offset

    root = resource("data", "terramesh")
    bands = card["inputs"]["optical"]["bands"]
    path = os.path.join(root, level, f"{site}.tif")
    add = (declared_offset(path) or 0.0) if declared else 0.0
    opt = _read(path, S2_L2A_12 if level == "S2L2A" else S2_L1C_13, bands, add)
    sar = _read(os.path.join(root, "S1RTC", f"{site}.tif"), ["VV", "VH"], ["VV", "VH"])
    return opt, sar


def levels(model, card) -> Dict[str, Dict[str, float]]:
    """Per site: agreement of the Level-1C and Level-2A maps, and the clouded fractions of each."""
    out: Dict[str, Dict[str, float]] = {}
    for site in SITES:
        o2, sar = _site_inputs(site, "S2L2A", card, True)
        m2, _, c2 = predict(model, card, o2, sar)
        row = {"cloud_l2a": float((c2 > 0.5).mean())}
        for mode, declared in (("declared", True), ("as_read", False)):
            o1, _ = _site_inputs(site, "S2L1C", card, declared)
            m1, _, c1 = predict(model, card, o1, sar)
            row[f"agreement_{mode}"] = float((m1 == m2).mean())
            row[f"cloud_l1c_{mode}"] = float((c1 > 0.5).mean())
        out[site] = row
    return out


def site_mosaic(card) -> Tuple[np.ndarray, np.ndarray]:
    """(optical, SAR) raw arrays of the 2 x 2 mosaic of the four sites' Level-2A (448 x 448 px)."""
    opts, sars = zip(*(_site_inputs(site, "S2L2A", card, True) for site in SITES))
    mo = np.concatenate([np.concatenate(opts[:2], 2), np.concatenate(opts[2:], 2)], 1)
    ms = np.concatenate([np.concatenate(sars[:2], 2), np.concatenate(sars[2:], 2)], 1)
    return mo, ms


def mirror_mosaic(a: np.ndarray) -> np.ndarray:
    """[C,H,W] -> [C,2H,2W]: the array, its left-right mirror to the right and both mirrored below (no seams)."""
    top = np.concatenate([a, a[:, :, ::-1]], 2)
    return np.ascontiguousarray(np.concatenate([top, top[:, ::-1]], 1))


def tiles(model, card) -> Dict[str, float]:
    """Agreement between tile sizes 256 and 512 with the engine's tiling (cores read with 128 px of context)
    on the 896 px mirror mosaic of the four sites and on the 1024 px mirror mosaic of the SEN12MS-CR clear
    scene (real neighbours, no seams), each also against the whole mosaic in one forward; and, for
    comparison, the earlier blended tiling (overlap 32) on the site mosaic (tools/tile_invariance.py)."""
    from ..core.training.datasets import read_sen12ms_pair

    out: Dict[str, float] = {}
    s1, clear, _ = read_sen12ms_pair(resource("data", "sen12ms_cr"))
    mo, ms = site_mosaic(card)
    scenes = {"sites896": (mirror_mosaic(mo), mirror_mosaic(ms)),
              "sen12ms1024": (mirror_mosaic(mirror_mosaic(clear)), mirror_mosaic(mirror_mosaic(s1)))}
    for name, (o, s) in scenes.items():
        maps = {t: predict(model, card, o, s, tile=t)[0] for t in (256, 512, o.shape[-1])}
        out[f"{name}_256_vs_512"] = float((maps[256] == maps[512]).mean())
        for t in (256, 512):
            out[f"{name}_{t}_vs_whole"] = float((maps[t] == maps[o.shape[-1]]).mean())
    o, s = scenes["sites896"]
    blended = {t: predict(model, card, o, s, tile=t, overlap=32)[0] for t in (256, 512)}
    out["sites896_blended_overlap32_256_vs_512"] = float((blended[256] == blended[512]).mean())
    return out


def heldout(model, card) -> Dict[str, Dict[str, float]]:
    """OA / mIoU / mean SAR share on the right-hand 25 % of every site, per level, clear and clouded."""
    from ...models.training import evaluate
    from ..core.training.datasets import EVAL_CONTEXT, LAYOUTS, RasterPairSource, list_pairs

    layout = LAYOUTS["terramesh-levels"]
    pairs = list_pairs(resource("data", "terramesh"), "terramesh-levels", "val", 0.25)
    src = RasterPairSource(pairs, layout.classes, layout.ignore, layout.optical_bands)
    src.optical_scale = card["inputs"]["optical"]["scale"]
    names = [c["name"] for c in card["classes"]]
    out: Dict[str, Dict[str, float]] = {}
    for folder in ("S2L2A", "S2L1C"):
        group = [p for p in pairs if p.optical_folder == folder]
        for corruption in ("clear", "clouds"):
            m = evaluate(model, src.eval_items(group, context=EVAL_CONTEXT), card["inputs"]["optical"],
                         card["inputs"]["sar"], names,
                         corruption)
            out[f"{folder}_{corruption}"] = {"oa": round(m["oa"], 4), "miou": round(m["miou"], 4),
                                             "sar_share": round(m["mean_sar_share"], 4)}
    src.close()
    return out


def measure(checkpoint: str) -> Dict[str, Any]:
    """Every figure above for one checkpoint."""
    import torch

    from ...models.checkpoint import load_checkpoint

    torch.set_grad_enabled(False)
    model, card = load_checkpoint(checkpoint)
    return {"checkpoint": checkpoint, "config": card.get("config"), "sen12ms_cr": sen12ms(model, card),
            "levels": levels(model, card), "tiles": tiles(model, card), "heldout": heldout(model, card)}


def measure_cli(measure_fn, description: str, argv: Optional[List[str]] = None) -> int:
    """The command line of a figures tool: --checkpoint, --json, --threads; prints measure_fn's JSON."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    p.add_argument("--json", default=None, help="write the figures to this JSON file too")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    text = json.dumps(measure_fn(str(args.checkpoint)), indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return measure_cli(measure, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
