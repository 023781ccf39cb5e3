"""The "unlike the training data" score of a checkpoint on the shipped data (issue #18).

Seen: the TerraMesh training sites (statistics on the left 75 % of each site, Level-2A and Level-1C as the
card's layout says; threshold on the right-hand 25 %, the hold-out). Unseen: scenes from elsewhere
(SEN12MS-CR clear and cloudy, the six BigEarthNet-MM patches). `measure` gives the share of pixels beyond
the card's threshold per scene; `compare` ranks candidate scores by the AUROC of held-out (seen) against
unseen pixels and the share flagged at the 95th / 99th percentile of the hold-out.

    python -m claire.claire_plugin.tools.familiarity [--checkpoint X] [--write-card OUT] [--compare | --geometries]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np

from ...models.quoting import quoted
from ..paths import DEFAULT_CHECKPOINT, resource

UNSEEN = ("sen12ms_cr_clear", "sen12ms_cr_cloudy", "bigearthnet_mm")


def _layout(card: Dict[str, Any]) -> str:
    """The TerraMesh layout the card was trained on (terramesh or terramesh-levels)."""
    lay = (card.get("training") or {}).get("layout") or "terramesh"
    return lay if lay.startswith("terramesh") else "terramesh"


def _terramesh(card: Dict[str, Any], split: str, holdout: float = 0.25) -> List[tuple]:
    """Prepared items (models.familiarity.prepared) of one split of the shipped TerraMesh sites."""
    from ...models.familiarity import prepared
    from ..core.training.datasets import EVAL_CONTEXT
    from ..core.training.sources import resolve_data

    ospec, sspec = card["inputs"]["optical"], card["inputs"]["sar"]
    _, _, _, src, _, _ = resolve_data(resource("data", "terramesh"), _layout(card), split, holdout)
    src.optical_scale = ospec["scale"]
    return list(prepared(src.eval_items(context=EVAL_CONTEXT), ospec, sspec, _uses_cloud(card)))


def _uses_cloud(card: Dict[str, Any]) -> bool:
    from ...models.card_schema import takes_cloud

    return takes_cloud(card)


def terramesh_familiarity(model, card: Dict[str, Any], holdout: float = 0.25) -> Dict[str, Any]:
    """The card's familiarity from the TerraMesh sites of the card's layout: statistics on the training
    part, threshold on the hold-out part (the split `make checkpoint` trains with)."""
    from ...models.familiarity import familiarity

    fam = familiarity(model, _terramesh(card, "train", holdout), _terramesh(card, "val", holdout))
    fam["calibrated_on"] = "heldout"
    return fam


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


def scenes(card: Dict[str, Any]) -> Dict[str, List[tuple]]:
    """Prepared items per scene group: the TerraMesh hold-out (seen) and the scenes from elsewhere."""
    from ...models.familiarity import prepared
    from ..core.training.datasets import read_sen12ms_pair

    ospec, sspec, cl = card["inputs"]["optical"], card["inputs"]["sar"], _uses_cloud(card)
    s1, clear, cloudy = read_sen12ms_pair(resource("data", "sen12ms_cr"))
    every = np.zeros(clear.shape[1:], np.uint8)  # labels: none ignored
    return {"terramesh_heldout": _terramesh(card, "val"),
            "sen12ms_cr_clear": list(prepared([("clear", clear, s1, every)], ospec, sspec, cl)),
            "sen12ms_cr_cloudy": list(prepared([("cloudy", cloudy, s1, every)], ospec, sspec, cl)),
            "bigearthnet_mm": list(prepared(_bigearthnet(card), ospec, sspec, cl))}


def auroc(seen: np.ndarray, unseen: np.ndarray) -> float:
    """Probability that an unseen pixel scores higher than a seen one (ties count half)."""
    x = np.concatenate([seen, unseen])
    _, inv, cnt = np.unique(x, return_inverse=True, return_counts=True)
    first = np.concatenate([[0], np.cumsum(cnt)[:-1]])
    ranks = (first + (cnt + 1) / 2.0)[inv]  # average rank of each tie group, 1-based
    n0, n1 = len(seen), len(unseen)
    return float((ranks[n0:].sum() - n1 * (n1 + 1) / 2.0) / (n0 * n1))


def separation(per_scene: Dict[str, List[np.ndarray]]) -> Dict[str, Any]:
    """AUROC of seen vs unseen pixels (all, and per unseen group), the shares flagged at the hold-out's
    95th / 99th percentile, and the AUROC of the per-item mean (one score per tile or scene)."""
    seen = np.concatenate(per_scene["terramesh_heldout"])
    unseen = {k: np.concatenate(per_scene[k]) for k in UNSEEN}
    every = np.concatenate(list(unseen.values()))
    q95, q99 = np.quantile(seen, 0.95), np.quantile(seen, 0.99)
    tiles = [float(x.mean()) for k in UNSEEN for x in per_scene[k]]
    r = {"auroc": auroc(seen, every), "auroc_per_scene": {k: auroc(seen, v) for k, v in unseen.items()},
         "flagged_unseen_q95": float((every > q95).mean()), "flagged_unseen_q99": float((every > q99).mean()),
         "flagged_q99": {k: float((v > q99).mean()) for k, v in unseen.items()},
         "tile_auroc": auroc(np.array([x.mean() for x in per_scene["terramesh_heldout"]]), np.array(tiles))}
    return {k: ({kk: round(vv, 3) for kk, vv in v.items()} if isinstance(v, dict) else round(v, 3))
            for k, v in r.items()}


def measure(checkpoint: str, write_card: Optional[str] = None, refit: bool = False) -> Dict[str, Any]:
    """The familiarity of `checkpoint` (the card's; measured on TerraMesh when it has none or with
    `refit`) and its shares and separation per scene; `write_card` saves the checkpoint with it."""
    import torch

    from ...models.checkpoint import load_checkpoint, save_checkpoint

    torch.set_grad_enabled(False)
    model, card = load_checkpoint(checkpoint)
    fam = card.get("familiarity") if not refit else None
    fam = fam or terramesh_familiarity(model, card)
    if write_card:
        save_checkpoint(write_card, model, dict(card, familiarity=fam), dtype=torch.float16)
    return {"checkpoint": checkpoint, "feature": fam.get("feature", "decoder"), "threshold": fam["threshold"],
            "training_pixels": fam["pixels"], **scene_shares(model, card, fam)}


def scene_shares(model, card: Dict[str, Any], fam: Dict[str, Any]) -> Dict[str, Any]:
    """Per scene group: pixels (stride 4), share beyond the threshold, median distance / threshold; and the
    separation of seen and unseen pixels (`separation`)."""
    from ...models.familiarity import Scorer, ratios

    scorer = Scorer(fam)
    per = {k: [ratios(model, [it], scorer) for it in items] for k, items in scenes(card).items()}
    shares = {}
    for k, parts in per.items():
        d = np.concatenate(parts)
        shares[k] = {"unfamiliar_share": round(float((d > 1.0).mean()), 4),
                     "median_ratio": round(float(np.median(d)), 3), "pixels": int(d.size)}
    return {"scenes": shares, "separation": separation(per)}


#: How a pixel can be read by the engine, as transformations of a whole-scene item: whole (a raster no
#: larger than a window), inside a larger raster (the scene mirrored by the engine's 128 px of context on
#: every side), and cut (a clipped raster: the top 160 rows, the right-hand 128 columns).
GEOMETRIES = ("whole", "inside", "top160", "right128")


def in_geometry(item: tuple, geometry: str) -> tuple:
    """A prepared item (optical, SAR, cloud or None, mask) read in one of GEOMETRIES; the mask follows the
    pixels (False on the mirrored margin)."""
    from ...models.predict import CONTEXT

    o, s, c, m = item
    m = np.asarray(m, bool)
    if geometry == "whole":
        return item
    if geometry == "inside":
        p = ((0, 0), (CONTEXT, CONTEXT), (CONTEXT, CONTEXT))
        return tuple(None if a is None else np.pad(a, p, mode="reflect") for a in (o, s, c)) + (
            np.pad(m, CONTEXT, constant_values=False),)
    if geometry == "top160":
        rows, cols = slice(0, 160), slice(None)
    elif geometry == "right128":
        rows, cols = slice(None), slice(max(0, m.shape[1] - 128), None)
    else:
        raise ValueError(f"geometry must be one of {', '.join(GEOMETRIES)}, got {quoted(geometry)}")
    return tuple(None if a is None else a[:, rows, cols] for a in (o, s, c)) + (m[rows, cols],)


def geometry_shares(model, card: Dict[str, Any], fam: Dict[str, Any],
                    geometries=GEOMETRIES) -> Dict[str, Dict[str, Any]]:
    """Per read geometry (GEOMETRIES) and scene group: share of pixels beyond the threshold and median
    distance / threshold, every item read whole as the engine reads a raster no larger than a window;
    with the AUROC of seen against unseen pixels. Measures how much the score depends on how a pixel is
    read rather than on what it shows."""
    from ...models.familiarity import Scorer, ratios

    scorer, groups, out = Scorer(fam), scenes(card), {}
    for g in geometries:
        row: Dict[str, Any] = {}
        per = {}
        for k, items in groups.items():
            parts = [in_geometry(it, g) for it in items]
            parts = [it for it in parts if it[3].any()]
            d = ratios(model, parts, scorer, tile=4096) if parts else np.zeros(0, np.float32)
            per[k] = d
            if d.size:
                row[k] = {"unfamiliar_share": round(float((d > 1.0).mean()), 4),
                          "median_ratio": round(float(np.median(d)), 3)}
        if per["terramesh_heldout"].size:
            row["auroc"] = round(auroc(per["terramesh_heldout"], np.concatenate([per[k] for k in UNSEEN])), 3)
        out[g] = row
    return out


def _pixel_cache(model, items: List[tuple], mc: int = 8) -> List[Dict[str, np.ndarray]]:
    """Per item, per stride-4 pixel of its mask: decoder features, bottleneck features (bilinear from
    stride 32), logits, and the variance of `mc` softmaxes with the decoder's dropout on."""
    import torch
    import torch.nn.functional as F

    from ...models.familiarity import cell_mask, feature_map

    def fn(b, size):
        return F.interpolate(b, size=(size[0] // 4, size[1] // 4), mode="bilinear", align_corners=False)
    out = []
    for it in items:
        dec, stride = feature_map(model, it, "features")
        t = torch.from_numpy(dec)[None]
        logits = model.decoder.classifier(t)
        p = torch.stack([torch.softmax(model.decoder.classifier(F.dropout2d(t, 0.1, training=True)), 1)
                         for _ in range(mc)])
        keep = cell_mask(it, dec.shape[1:], stride)
        maps = {"decoder": dec, "bottleneck": feature_map(model, it, "bottleneck", fn=fn)[0],
                "logits": logits[0].numpy(), "mc": p.var(0).sum(1)[0].numpy()}
        out.append({k: v[..., keep] for k, v in maps.items()})
    return out


def _fit(train: List[Dict[str, np.ndarray]], key: str, kind: str, rank: int = 64,
         shrink: float = 0.1) -> Callable:
    """A distance function of one pixel cache fitted on the training caches: diag, full (covariance shrunk
    towards its diagonal), lowrank (`rank` axes + residual) or class (diagonal, to the predicted class)."""
    f = np.concatenate([c[key] for c in train], 1).astype(np.float64)
    m = f.mean(1)
    if kind == "class":
        pred = np.concatenate([c["logits"] for c in train], 1).argmax(0)
        stats = [(f[:, pred == k].mean(1), np.maximum(f[:, pred == k].var(1), 1e-6)) if (pred == k).sum() > 20
                 else (m, np.maximum(f.var(1), 1e-6)) for k in range(train[0]["logits"].shape[0])]
        return lambda c: np.sqrt(np.stack([((c[key] - mu[:, None]) ** 2 / v[:, None]).mean(0) for mu, v in stats])
                                 [c["logits"].argmax(0), np.arange(c[key].shape[1])])
    if kind == "diag":
        v = np.maximum(f.var(1), 1e-6)
        return lambda c: np.sqrt(((c[key] - m[:, None]) ** 2 / v[:, None]).mean(0))
    cov = np.cov(f)
    if kind == "full":
        prec = np.linalg.inv((1 - shrink) * cov + shrink * np.diag(np.diag(cov)) + 1e-6 * np.eye(len(m)))
        return lambda c: np.sqrt(np.einsum("cn,cd,dn->n", c[key] - m[:, None], prec, c[key] - m[:, None]) / len(m))
    w, vec = np.linalg.eigh(cov)
    w, vec = w[::-1][:rank], vec[:, ::-1][:, :rank]
    res = max(float(np.linalg.eigvalsh(cov)[:-rank].mean()), 1e-6)

    def lowrank(c):
        x = c[key] - m[:, None]
        p = vec.T @ x
        return np.sqrt(((p ** 2 / w[:, None]).sum(0) + ((x ** 2).sum(0) - (p ** 2).sum(0)) / res) / len(m))
    return lowrank


def _sum_of_z(train: List[Dict[str, np.ndarray]], *fns: Callable) -> Callable:
    """Scores standardised by their mean and spread over the training pixels, then summed."""
    stats = [(float(np.mean(v)), float(np.std(v)) or 1.0) for v in
             (np.concatenate([fn(c) for c in train]) for fn in fns)]
    return lambda c: sum((fn(c) - m) / sd for fn, (m, sd) in zip(fns, stats))


def compare(checkpoint: str) -> Dict[str, Dict[str, Any]]:
    """Candidate scores ranked by how well they separate seen from unseen pixels (`separation`)."""
    import torch

    from ...models.checkpoint import load_checkpoint

    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    model, card = load_checkpoint(checkpoint)
    train = _pixel_cache(model, _terramesh(card, "train"))
    cache = {k: _pixel_cache(model, items) for k, items in scenes(card).items()}

    def soft(c):
        e = np.exp(c["logits"] - c["logits"].max(0))
        return e / e.sum(0)
    cands: Dict[str, Callable] = {
        "decoder diagonal (previous card)": _fit(train, "decoder", "diag"),
        "decoder full covariance": _fit(train, "decoder", "full"),
        "decoder per predicted class": _fit(train, "decoder", "class"),
        "bottleneck diagonal": _fit(train, "bottleneck", "diag"),
        "bottleneck per predicted class": _fit(train, "bottleneck", "class"),
        "bottleneck full covariance (shrinkage 0.1)": _fit(train, "bottleneck", "full"),
        "bottleneck low-rank 16 + residual": _fit(train, "bottleneck", "lowrank", 16),
        "bottleneck low-rank 64 + residual": _fit(train, "bottleneck", "lowrank", 64),
        "1 - max softmax": lambda c: 1 - soft(c).max(0),
        "softmax entropy": lambda c: -(soft(c) * np.log(soft(c) + 1e-12)).sum(0),
        "energy (-logsumexp)": lambda c: -np.log(np.exp(c["logits"] - c["logits"].max(0)).sum(0)) - c["logits"].max(0),
        "MC dropout (8 passes, softmax variance)": lambda c: c["mc"],
    }
    energy, lowrank = cands["energy (-logsumexp)"], cands["bottleneck low-rank 64 + residual"]
    cands["energy + decoder diagonal (z-scores summed)"] = _sum_of_z(train, energy, cands[
        "decoder diagonal (previous card)"])
    cands["energy + bottleneck low-rank 64 (z-scores summed)"] = _sum_of_z(train, energy, lowrank)
    return {name: separation({k: [fn(c) for c in cs] for k, cs in cache.items()}) for name, fn in cands.items()}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    p.add_argument("--write-card", default=None, help="save the checkpoint with the measured familiarity here")
    p.add_argument("--refit", action="store_true", help="re-measure the familiarity even if the card has one")
    p.add_argument("--compare", action="store_true", help="rank the candidate scores instead")
    p.add_argument("--geometries", action="store_true",
                   help="the card's shares with the same pixels read whole, inside a larger raster and cut")
    args = p.parse_args(argv)
    if args.geometries:
        import torch

        from ...models.checkpoint import load_checkpoint

        torch.set_grad_enabled(False)
        model, card = load_checkpoint(args.checkpoint)
        if not card.get("familiarity"):
            p.error("the checkpoint's card has no familiarity entry")
        print(json.dumps(geometry_shares(model, card, card["familiarity"]), indent=2))
        return 0
    out = compare(args.checkpoint) if args.compare else measure(args.checkpoint, args.write_card, args.refit)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
