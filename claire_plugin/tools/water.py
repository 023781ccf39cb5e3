"""A hand-made water reference for the water IoU of `claire bench-robustness` (issue #18).

TerraMesh site 282D_485L_3_3 (coast with a lagoon) is the one shipped scene with open water that both
sensors see (SEN12MS-CR and the BigEarthNet-MM patches have none: NDWI > 0 and VV < -15 dB on 0.0-0.02 %
of their pixels). The mask is water where the Level-2A NDWI (B03 - B08) / (B03 + B08) > 0 AND the
Sentinel-1 VV < -15 dB (calm water is dark in both), then holes of up to 2 px closed by a 3 x 3
majority. Checked visually against the RGB composite: it covers the sea and the lagoon channels, misses
part of the surf line, and leaves out the very dark area in the upper left that the TerraMesh label calls
water (NDWI < 0 there: it may be dark forest or turbid water; the mask does not decide). It is made from
the inputs, not from the label, so the IoU against it is not the training metric.
"""
from __future__ import annotations

import os
from typing import Dict

import numpy as np

from ..paths import resource

SITE = "282D_485L_3_3"


def water_mask(site: str = SITE) -> np.ndarray:
    """Boolean [H,W] water mask of a TerraMesh site (module docstring)."""
    import rasterio

    from ..core.training.datasets import S2_L2A_12

    root = resource("data", "terramesh")
    with rasterio.open(os.path.join(root, "S2L2A", f"{site}.tif")) as ds:
        g, n = (ds.read(S2_L2A_12.index(b) + 1).astype(np.float32) for b in ("B03", "B08"))
    with rasterio.open(os.path.join(root, "S1RTC", f"{site}.tif")) as ds:
        vv = ds.read(1).astype(np.float32)
    raw = ((g - n) / np.maximum(g + n, 1.0) > 0.0) & (vv < -15.0)
    padded = np.pad(raw, 1, mode="edge").astype(np.int32)
    votes = sum(padded[1 + dy:1 + dy + raw.shape[0], 1 + dx:1 + dx + raw.shape[1]]
                for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    return votes >= 5


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """The threshold that best splits `values` (finite ones) into two classes by between-class variance (Otsu)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    hist, edges = np.histogram(v, bins)
    mid = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(hist)
    above = below[-1] - below
    sum_below = np.cumsum(hist * mid)
    mean_below = sum_below / np.maximum(below, 1)
    mean_above = (sum_below[-1] - sum_below) / np.maximum(above, 1)
    return float(mid[np.argmax(below * above * (mean_below - mean_above) ** 2)])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return round(float((a & b).sum() / max(1, (a | b).sum())), 4)


def water_iou(model, card: Dict) -> Dict[str, float]:
    """IoU of the model's water class on SITE against the hand-made mask and against the TerraMesh label's water;
    against the label also the map decided from SAR (the cloud input at 1 everywhere, as under thick cloud) and a
    VV threshold (Otsu), the baseline a SAR-only flood map is measured by."""
    import rasterio

    from .robustness import _site_inputs, predict

    names = [str(c["name"]).lower() for c in sorted(card["classes"], key=lambda c: int(c["index"]))]
    k = names.index("water")
    o, s = _site_inputs(SITE, "S2L2A", card, True)
    pred = predict(model, card, o, s)[0] == k
    mask = water_mask()
    root = resource("data", "terramesh")
    with rasterio.open(os.path.join(root, "LULC", f"{SITE}.tif")) as ds:
        label = ds.read(1) == int(card["classes"][k]["value"])
    with rasterio.open(os.path.join(root, "S1RTC", f"{SITE}.tif")) as ds:
        vv = ds.read(1).astype(np.float32)
    cut = otsu_threshold(vv)
    out = {"site": SITE, "iou_vs_hand_mask": _iou(pred, mask), "iou_vs_label": _iou(pred, label),
           "mask_share": round(float(mask.mean()), 4), "predicted_share": round(float(pred.mean()), 4),
           "vv_otsu_threshold_db": round(cut, 2), "vv_otsu_iou_vs_label": _iou(vv < cut, label),
           "sar_decides_iou_vs_label": None}
    if getattr(model, "uses_cloud", False):
        out["sar_decides_iou_vs_label"] = _iou(predict(model, card, o, s, cloud_override=1.0)[0] == k, label)
    return out
