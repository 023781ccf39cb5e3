"""The "unlike the training data" score of a checkpoint on the shipped data (issue #18): familiarity
statistics measured on the TerraMesh training sites (left 75 % of each site; threshold on the right-hand
25 %, the hold-out) and the share of pixels beyond the threshold on scenes from elsewhere (SEN12MS-CR clear
and cloudy, BigEarthNet-MM patches).

    python -m claire.claire_plugin.tools.familiarity [--checkpoint X] [--write-card OUT.safetensors]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from typing import Any, Dict, Iterator, List, Optional

import numpy as np

from ..paths import DEFAULT_CHECKPOINT, resource


def terramesh_familiarity(model, card: Dict[str, Any], holdout: float = 0.25) -> Dict[str, Any]:
    """The card's familiarity from the TerraMesh Level-2A sites: statistics on the training part,
    threshold on the hold-out part (the split `make checkpoint` trains with)."""
    from ..core.training.sources import card_familiarity, resolve_data

    data = resource("data", "terramesh")
    ospec, sspec = card["inputs"]["optical"], card["inputs"]["sar"]
    srcs = []
    for split in ("train", "val"):
        _, _, _, src, _, _ = resolve_data(data, "terramesh", split, holdout)
        src.optical_scale = ospec["scale"]
        srcs.append(src)
    return card_familiarity(model, srcs[0], srcs[1], ospec, sspec)


def _bigearthnet(card: Dict[str, Any]) -> Iterator[tuple]:
    """(name, raw optical [10,120,120] in the card's band order, SAR dB [2,120,120], labels 0) per shipped
    BigEarthNet-MM patch; 20 m bands repeated onto the 10 m grid."""
    import rasterio

    root = resource("data", "bigearthnet_mm")
    s1_dirs = sorted(glob.glob(os.path.join(root, "BigEarthNet-S1-Example", "*")))
    for s2_dir, s1_dir in zip(sorted(glob.glob(os.path.join(root, "BigEarthNet-S2-Example", "*"))), s1_dirs):
        bands = []
        for b in card["inputs"]["optical"]["bands"]:
            with rasterio.open(glob.glob(os.path.join(s2_dir, f"*_{b}.tif"))[0]) as ds:
                a = ds.read(1).astype(np.float32)
            k = 120 // a.shape[0]
            bands.append(np.repeat(np.repeat(a, k, 0), k, 1))
        sar = []
        for pol in ("VV", "VH"):
            with rasterio.open(glob.glob(os.path.join(s1_dir, f"*_{pol}.tif"))[0]) as ds:
                sar.append(ds.read(1).astype(np.float32))
        yield os.path.basename(s2_dir), np.stack(bands), np.stack(sar), np.zeros((120, 120), np.uint8)


def _share(model, card, items, fam) -> Dict[str, float]:
    """Share of pixels beyond the threshold and the median distance / threshold."""
    from ...models.familiarity import distances, prepared

    ospec, sspec = card["inputs"]["optical"], card["inputs"]["sar"]
    d = distances(model, prepared(items, ospec, sspec, bool(getattr(model, "uses_cloud", False))),
                  np.array(fam["mean"]), np.array(fam["var"])) / fam["threshold"]
    return {"unfamiliar_share": round(float((d > 1.0).mean()), 4), "median_ratio": round(float(np.median(d)), 3),
            "pixels": int(d.size)}


def scene_shares(model, card: Dict[str, Any], fam: Dict[str, Any]) -> Dict[str, Dict[str, float]]:
    """Unfamiliar shares on the TerraMesh hold-out (familiar by construction: about 1 %), the TerraMesh
    Level-1C hold-out, SEN12MS-CR clear and cloudy, and the BigEarthNet-MM patches."""
    from ..core.training.datasets import EVAL_CONTEXT, read_sen12ms_pair
    from ..core.training.sources import resolve_data

    out: Dict[str, Dict[str, float]] = {}
    for name, layout in (("terramesh_heldout_L2A", "terramesh"),):
        _, _, _, src, _, _ = resolve_data(resource("data", "terramesh"), layout, "val", 0.25)
        src.optical_scale = card["inputs"]["optical"]["scale"]
        out[name] = _share(model, card, src.eval_items(context=EVAL_CONTEXT), fam)
    s1, clear, cloudy = read_sen12ms_pair(resource("data", "sen12ms_cr"))
    every = np.zeros(clear.shape[1:], np.uint8)  # labels: none ignored
    out["sen12ms_cr_clear"] = _share(model, card, [("clear", clear, s1, every)], fam)
    out["sen12ms_cr_cloudy"] = _share(model, card, [("cloudy", cloudy, s1, every)], fam)
    out["bigearthnet_mm"] = _share(model, card, _bigearthnet(card), fam)
    return out


def measure(checkpoint: str, write_card: Optional[str] = None) -> Dict[str, Any]:
    """Familiarity of `checkpoint` (the card's, else measured on TerraMesh) and the shares per scene;
    `write_card` saves the checkpoint with the measured familiarity in its card."""
    import torch

    from ...models.checkpoint import load_checkpoint, save_checkpoint

    torch.set_grad_enabled(False)
    model, card = load_checkpoint(checkpoint)
    fam = card.get("familiarity") or terramesh_familiarity(model, card)
    if write_card:
        save_checkpoint(write_card, model, dict(card, familiarity=fam))
    return {"checkpoint": checkpoint, "threshold": fam["threshold"], "training_pixels": fam["pixels"],
            "scenes": scene_shares(model, card, fam)}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    p.add_argument("--write-card", default=None, help="save the checkpoint with the measured familiarity here")
    args = p.parse_args(argv)
    print(json.dumps(measure(args.checkpoint, args.write_card), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
