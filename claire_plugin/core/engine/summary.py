"""Streaming statistics of a classification run: per-class counts, confidence, SAR reliance, cloud and
nodata shares, and (with a reference raster) a confusion matrix and accuracy metrics.

Definitions (also in docs/benchmark.md):
- `valid_pixels`: output pixels with a class; `nodata_pixels`: every other pixel of the output grid.
- `optical_invalid_share`: share of the pixels inside the optical/SAR overlap whose optical value is
  NaN or the optical nodata value (all selected bands).
- `cloud_like_share`: share of valid pixels that look like cloud: mean visible reflectance (B02, B03,
  B04, else all bands) >= 0.30 and whiteness (max |band - mean| / mean over those bands) <= 0.25.
- `low_confidence_share`: share of valid pixels whose top-class probability is < 0.5.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from ....models.metrics import metrics_from_confusion

LOW_CONFIDENCE = 0.5
CLOUD_BRIGHTNESS = 0.30
CLOUD_WHITENESS = 0.25


def cloud_like(reflectance: np.ndarray, visible: Optional[List[int]]) -> np.ndarray:
    """Boolean [H,W]: bright and spectrally flat pixels of reflectance [C,H,W] (see module docstring)."""
    x = reflectance[visible] if visible else reflectance
    mean = x.mean(axis=0)
    bright = mean >= CLOUD_BRIGHTNESS
    if not bright.any():
        return bright
    xb, mb = x[:, bright], mean[bright]  # whiteness only where bright (usually few pixels)
    spread = np.abs(xb - mb).max(axis=0)
    out = np.zeros_like(bright)
    out[bright] = spread <= CLOUD_WHITENESS * np.maximum(mb, 1e-6)
    return out


class SummaryAccumulator:
    """Adds up finished blocks; `result()` gives the summary dict of docs/architecture.md."""

    def __init__(self, classes: List[dict], pixel_area_m2: float, total_pixels: int) -> None:
        self.classes = classes
        self.K = len(classes)
        self.area = float(pixel_area_m2)
        self.total = int(total_pixels)
        self.counts = np.zeros(self.K, np.int64)
        self.conf_sum = np.zeros(self.K, np.float64)
        self.low = np.zeros(self.K, np.int64)
        self.sar_sum = np.zeros(self.K, np.float64)
        self.sar_n = np.zeros(self.K, np.int64)
        self.region_pixels = 0
        self.optical_invalid = 0
        self.cloud = 0
        self.cm: Optional[np.ndarray] = None

    def add(self, idx: np.ndarray, conf: np.ndarray, sar: Optional[np.ndarray], valid: np.ndarray,
            optical_invalid: np.ndarray, cloud: np.ndarray) -> None:
        """Add one block: class indices, top probability, SAR share (or None), masks (all [h,w])."""
        self.region_pixels += valid.size
        self.optical_invalid += int(np.count_nonzero(optical_invalid))
        self.cloud += int(np.count_nonzero(cloud & valid))
        everywhere = bool(valid.all())
        i = idx.ravel() if everywhere else idx[valid]
        c = conf.ravel() if everywhere else conf[valid]
        n = np.bincount(i, minlength=self.K)
        self.counts += n
        self.conf_sum += np.bincount(i, weights=c, minlength=self.K)
        self.low += np.bincount(i[c < LOW_CONFIDENCE], minlength=self.K)
        if sar is not None:
            self.sar_sum += np.bincount(i, weights=sar.ravel() if everywhere else sar[valid], minlength=self.K)
            self.sar_n += n

    def add_reference(self, pred_idx: np.ndarray, ref_idx: np.ndarray) -> None:
        """Add pairs (reference class index, predicted class index); -1 in either is ignored."""
        keep = (pred_idx >= 0) & (ref_idx >= 0)
        k = self.K
        flat = ref_idx[keep].astype(np.int64) * k + pred_idx[keep].astype(np.int64)
        cm = np.bincount(flat, minlength=k * k).reshape(k, k)
        self.cm = cm if self.cm is None else self.cm + cm

    def result(self, with_reference: bool = False) -> dict:
        """The summary dict (architecture contract)."""
        valid = int(self.counts.sum())
        classes = []
        for k, c in enumerate(self.classes):
            n = int(self.counts[k])
            classes.append({
                "value": int(c["value"]), "name": str(c["name"]), "color": c.get("color"),
                "pixels": n, "area_ha": n * self.area / 1e4,
                "share": n / valid if valid else 0.0,
                "mean_confidence": float(self.conf_sum[k] / n) if n else None,
                "low_confidence_share": float(self.low[k] / n) if n else None,
                "mean_sar_share": float(self.sar_sum[k] / self.sar_n[k]) if self.sar_n[k] else None,
            })
        out = {
            "pixel_area_m2": self.area,
            "valid_pixels": valid,
            "nodata_pixels": self.total - valid,
            "optical_invalid_share": self.optical_invalid / self.region_pixels if self.region_pixels else 0.0,
            "cloud_like_share": self.cloud / valid if valid else 0.0,
            "classes": classes,
            "mean_confidence": float(self.conf_sum.sum() / valid) if valid else None,
            "low_confidence_share": float(self.low.sum() / valid) if valid else None,
            "mean_sar_share": float(self.sar_sum.sum() / self.sar_n.sum()) if self.sar_n.sum() else None,
            "metrics": None,
        }
        if with_reference:
            k = self.K
            cm = self.cm if self.cm is not None else np.zeros((k, k), np.int64)
            out["metrics"] = metrics(cm, [str(c["name"]) for c in self.classes])
            out["metrics"]["confusion"] = cm.astype(int).tolist()
            out["metrics"]["class_values"] = [int(c["value"]) for c in self.classes]
        return out


def metrics(cm: np.ndarray, names: List[str]) -> dict:
    """Metrics from a confusion matrix (rows reference, cols prediction) via models.metrics."""
    return dict(metrics_from_confusion(cm, names))
