"""Tile-size invariance of a checkpoint's map (issue #18, item 5): how much the map changes with the tile
size and the overlap, measured against the whole scene predicted in one forward, and how far from a tile
edge a pixel must be before its class stops depending on the tile.

Scenes (mirror mosaics, so the tiles have real neighbours and no seams): the four TerraMesh sites
(896 x 896 px) and the SEN12MS-CR clear scene (1024 x 1024 px). Tiles through `models.predict`. Schemes:
"taper" is the engine's (tile T, overlap, sin^2 blend, tiles past the image padded to T); "crop" keeps
each tile's centre; "+fit" runs the tiles past the image on the image's part only (predict_arrays'
fit_edges); "margin" rows name the kept core C = T - overlap, each tile read with overlap / 2 px of
context on every side (crop + fit). Cost: forward pixels per output pixel, (T / (T - overlap))^2 for a
large raster (today's default, tile 256 overlap 32: 1.31); seconds at 1 thread.

    python -m claire.claire_plugin.tools.tile_invariance [--checkpoint X] [--json out.json]
"""
from __future__ import annotations

import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..paths import resource
from . import robustness

TILES = (256, 384, 512, 768)
OVERLAPS = (32, 64, 96, 128)
PAIRS = ((256, 512), (256, 384), (512, 768))


def scenes(card: Dict[str, Any]) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """name -> (optical raw [C,H,W], SAR raw [2,H,W]) of the two mirror mosaics."""
    from ..core.training.datasets import read_sen12ms_pair

    mo, ms = robustness.site_mosaic(card)
    s1, clear, _ = read_sen12ms_pair(resource("data", "sen12ms_cr"))
    mm = robustness.mirror_mosaic
    return {"terramesh_896": (mm(mo), mm(ms)), "sen12ms_clear_1024": (mm(mm(clear)), mm(mm(s1)))}


def edge_curve(model, card, opt: np.ndarray, sar: np.ndarray, tile: int, step: int = 128,
               bin_px: int = 16) -> List[float]:
    """Share of pixels whose class differs from the whole scene's, per distance to the nearest tile edge
    inside the scene (bins of `bin_px`), over lone tiles placed every `step` px."""
    whole = robustness.predict(model, card, opt, sar, tile=max(opt.shape[-2:]), overlap=0)[0]
    h, w = whole.shape
    yy, xx = np.mgrid[:tile, :tile]
    n = tile // 2 // bin_px
    wrong, count = np.zeros(n), np.zeros(n)
    for y in range(0, h - tile + 1, step):
        for x in range(0, w - tile + 1, step):
            cls = robustness.predict(model, card, opt[:, y:y + tile, x:x + tile], sar[:, y:y + tile, x:x + tile],
                                     tile=tile, overlap=0)[0]
            d = np.full((tile, tile), tile)
            edges = ((y > 0, yy), (x > 0, xx), (y + tile < h, tile - 1 - yy), (x + tile < w, tile - 1 - xx))
            for inside, dist in edges:
                if inside:
                    d = np.minimum(d, dist)
            b = np.minimum(d // bin_px, n - 1).ravel()
            np.add.at(wrong, b, (cls != whole[y:y + tile, x:x + tile]).ravel())
            np.add.at(count, b, 1)
    return [round(float(a / c), 4) if c else float("nan") for a, c in zip(wrong, count)]


#: scheme -> predict_arrays options
SCHEMES = {"taper": {}, "crop": {"blend": "crop"}, "taper+fit": {"fit_edges": True},
           "crop+fit": {"blend": "crop", "fit_edges": True}}


def _row(model, card, opt, sar, whole, scheme: str, tile: int, overlap: int, maps: Dict) -> Dict[str, Any]:
    t0 = time.perf_counter()
    cls = robustness.predict(model, card, opt, sar, tile=tile, overlap=overlap, **SCHEMES[scheme])[0]
    maps[(scheme, tile, overlap)] = cls
    return {"scheme": scheme, "tile": tile, "overlap": overlap, "vs_whole": round(float((cls == whole).mean()), 4),
            "cost": round((tile / (tile - overlap)) ** 2, 2), "seconds": round(time.perf_counter() - t0, 2)}


def settings_table(model, card, opt: np.ndarray, sar: np.ndarray) -> Dict[str, List[Dict[str, Any]]]:
    """Rows per setting (agreement with the whole scene, cost, seconds) and the agreement of tile pairs:
    the engine's scheme over TILES x OVERLAPS (strides on the 32 px grid), crop / fit at overlap 64, and
    the margin scheme (cores 256 / 384 / 512, margins 64 / 96 / 128)."""
    whole = robustness.predict(model, card, opt, sar, tile=max(opt.shape[-2:]), overlap=0)[0]
    rows: List[Dict[str, Any]] = []
    pairs: List[Dict[str, Any]] = []
    maps: Dict[tuple, np.ndarray] = {}
    agree = lambda a, b: round(float((maps[a] == maps[b]).mean()), 4)  # noqa: E731
    for scheme in SCHEMES:
        for ov in (OVERLAPS if scheme == "taper" else (64,)):
            ts = [t for t in TILES if 2 * ov < t and (t - ov) % 32 == 0]
            rows += [_row(model, card, opt, sar, whole, scheme, t, ov, maps) for t in ts]
            pairs += [{"scheme": scheme, "overlap": ov, "tiles": f"{a} vs {b}",
                       "agreement": agree((scheme, a, ov), (scheme, b, ov))} for a, b in PAIRS if a in ts and b in ts]
    for margin in (64, 96, 128):
        cores = (256, 384, 512)
        for c in cores:
            rows.append(dict(_row(model, card, opt, sar, whole, "crop+fit", c + 2 * margin, 2 * margin, maps),
                             core=c, margin=margin))
        key = {c: ("crop+fit", c + 2 * margin, 2 * margin) for c in cores}
        pairs += [{"scheme": "margin", "margin": margin, "cores": f"{a} vs {b}", "agreement": agree(key[a], key[b])}
                  for a, b in ((256, 512), (256, 384))]
    return {"rows": rows, "pairs": pairs}


def timings(model, card) -> Dict[str, Any]:
    """Seconds (best of 2, through robustness.predict: cloud test, normalisation, forwards, blend) on the
    1792 px mirror mosaic of the sites: the engine's default tiling, tile 512 overlap 64, and cores of
    256 / 512 / 896 px with a 128 px margin (crop + fitted edges); agreement of each with the 896 px core."""
    mm = robustness.mirror_mosaic
    mo, ms = robustness.site_mosaic(card)
    opt, sar = mm(mm(mo)), mm(mm(ms))
    settings: Dict[str, Dict[str, Any]] = {f"tile {t} overlap {ov}": {"tile": t, "overlap": ov}
                                           for t, ov in ((256, 32), (512, 64))}
    settings.update({f"core {c} margin 128": {"tile": c + 256, "overlap": 256, "blend": "crop", "fit_edges": True}
                     for c in (256, 512, 896)})
    out: Dict[str, Any] = {}
    maps = {}
    for name, kw in settings.items():
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            maps[name] = robustness.predict(model, card, opt, sar, **kw)[0]
            best = min(best, time.perf_counter() - t0)
        out[name] = {"seconds": round(best, 2)}
    for name in settings:
        out[name]["vs_core_896"] = round(float((maps[name] == maps["core 896 margin 128"]).mean()), 4)
    return out


def measure(checkpoint: str) -> Dict[str, Any]:
    """The table and the edge curves (tiles 256 and 512) of both scenes."""
    import torch

    from ...models.checkpoint import load_checkpoint

    torch.set_grad_enabled(False)
    model, card = load_checkpoint(checkpoint)
    out: Dict[str, Any] = {"checkpoint": checkpoint}
    for name, (opt, sar) in scenes(card).items():
        out[name] = {"table": settings_table(model, card, opt, sar),
                     "edge_curve_16px": {str(t): edge_curve(model, card, opt, sar, t) for t in (256, 512)}}
    out["timings_1792"] = timings(model, card)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    return robustness.measure_cli(measure, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
