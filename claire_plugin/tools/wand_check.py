"""How pure the magic wand's regions are on the bundled TerraMesh sites (`python -m
claire.claire_plugin.tools.wand_check`).

Clicks are drawn (seeded) at pixels at least 2 px inside a patch of one class of each site's LULC map, the
same number per class; for each tolerance (the default marked *) it reports
the median region size, the median share of the region's pixels in the clicked class ("purity"), and the
share of regions at least 90 % pure. The LULC maps are 10 m model output (ESRI), so purity is measured
against another map's boundaries, not against the ground.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..core.training.wand import MAX_WIDTH, TOLERANCE, grow_region
from ..paths import resource

FIXED = (0.05, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5)


def clicks(lulc: np.ndarray, per_class: int, seed: int) -> List[tuple]:
    """(row, col, class) at most `per_class` per class, each 2 px inside a one-class patch."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    out = []
    for value in np.unique(lulc):
        inner = ndimage.binary_erosion(lulc == value, np.ones((5, 5), bool), border_value=0)
        rows, cols = np.nonzero(inner)
        for i in rng.permutation(rows.size)[:per_class]:
            out.append((int(rows[i]), int(cols[i]), int(value)))
    return out


def site_rows(site: str, settings: Sequence[float], per_class: int, seed: int,
              max_width: int = MAX_WIDTH) -> Dict[str, List[tuple]]:
    """{setting name: [(pixels, purity)]} of every click on one site (bundled checkpoint's normalisation)."""
    import rasterio

    from ...models.checkpoint import read_card
    from ..core.errors import ClaireError
    from ..core.training.scene import Scene
    from ..paths import DEFAULT_CHECKPOINT

    root = resource("data", "terramesh")
    with rasterio.open(os.path.join(root, "LULC", f"{site}.tif")) as ds:
        lulc = ds.read(1)
    out: Dict[str, List[tuple]] = {}
    with Scene(os.path.join(root, "S2L2A", f"{site}.tif"), os.path.join(root, "S1RTC", f"{site}.tif"),
               read_card(DEFAULT_CHECKPOINT)) as scene:
        for r, c, value in clicks(lulc, per_class, seed):
            x, y = scene.opt.transform * (c + 0.5, r + 0.5)
            for t in settings:
                try:
                    reg = grow_region(scene, x, y, t, max_width)
                except ClaireError:
                    continue
                ref = lulc[reg.row0:reg.row0 + reg.mask.shape[0], reg.col0:reg.col0 + reg.mask.shape[1]]
                out.setdefault(name_of(t), []).append((reg.pixels, float((ref[reg.mask] == value).mean())))
    return out


def name_of(t: float) -> str:
    """The tolerance's name in the table."""
    return f"{t:g}*" if t == TOLERANCE else f"{t:g}"


def summary(rows: Sequence[tuple]) -> Dict[str, float]:
    """Median size, median purity and the share at least 90 % pure."""
    a = np.array(rows, float)
    return {"regions": int(len(a)), "median_pixels": float(np.median(a[:, 0])),
            "median_purity": float(np.median(a[:, 1])), "pure90": float((a[:, 1] >= 0.9).mean())}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print (and optionally write as JSON) the table over the four sites."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-width", type=int, default=MAX_WIDTH)
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    settings = sorted({*FIXED, TOLERANCE})
    pooled: Dict[str, List[tuple]] = {}
    sites = sorted(os.path.splitext(f)[0] for f in os.listdir(resource("data", "terramesh", "LULC")))
    for site in sites:
        for k, v in site_rows(site, settings, args.per_class, args.seed, args.max_width).items():
            pooled.setdefault(k, []).extend(v)
    table = {k: summary(v) for k, v in pooled.items()}
    print(f"{'tolerance':>10} {'regions':>8} {'median px':>10} {'median purity':>14} {'>= 90 % pure':>13}")
    for k, s in table.items():
        print(f"{k:>10} {s['regions']:>8} {s['median_pixels']:>10.0f} {s['median_purity']:>14.3f} "
              f"{s['pure90']:>13.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"sites": sites, "per_class": args.per_class, "seed": args.seed,
                       "max_width": args.max_width, "table": table}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
