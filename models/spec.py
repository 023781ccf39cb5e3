"""Input specification of a modality (bands, units, scaling, clipping, mean/std) and normalisation."""
from __future__ import annotations

from typing import Any, Dict, Iterable, Sequence

import numpy as np

S2_BANDS_10 = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
S1_BANDS = ["VV", "VH"]


def optical_spec(bands: Sequence[str] = S2_BANDS_10, sensor: str = "Sentinel-2", scale: float = 1e-4,
                 offset: float = 0.0, clip: Sequence[float] = (0.0, 1.0), units: str = "reflectance") -> Dict[str, Any]:
    """Optical input spec with placeholder mean/std (fill with `measure_stats`)."""
    return {"bands": list(bands), "sensor": sensor, "units": units, "scale": float(scale),
            "offset": float(offset), "clip": [float(clip[0]), float(clip[1])],
            "mean": [0.0] * len(bands), "std": [1.0] * len(bands)}


def sar_spec(bands: Sequence[str] = S1_BANDS, sensor: str = "Sentinel-1 GRD/RTC", units: str = "dB",
             scale: float = 1.0, offset: float = 0.0, clip: Sequence[float] = (-40.0, 5.0)) -> Dict[str, Any]:
    """SAR input spec with placeholder mean/std (fill with `measure_stats`)."""
    return {"bands": list(bands), "sensor": sensor, "units": units, "scale": float(scale),
            "offset": float(offset), "clip": [float(clip[0]), float(clip[1])],
            "mean": [0.0] * len(bands), "std": [1.0] * len(bands)}


def to_physical(raw: np.ndarray, spec: Dict[str, Any]) -> np.ndarray:
    """raw [C,H,W] -> clip(raw*scale + offset) as float32; non-finite values stay NaN."""
    x = raw.astype(np.float32) * np.float32(spec.get("scale", 1.0)) + np.float32(spec.get("offset", 0.0))
    lo, hi = spec.get("clip", [None, None])
    if lo is not None or hi is not None:
        x = np.clip(x, lo, hi)
    return x


def standardise(phys: np.ndarray, spec: Dict[str, Any]) -> np.ndarray:
    """(x - mean) / std per band; NaN (nodata) becomes 0 (the mean)."""
    mean = np.asarray(spec["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(spec["std"], dtype=np.float32)[:, None, None]
    x = (phys - mean) / np.maximum(std, 1e-6)
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def normalise(raw: np.ndarray, spec: Dict[str, Any]) -> np.ndarray:
    """Full normalisation of the card: x = clip(raw*scale+offset, clip); x = (x-mean)/std."""
    return standardise(to_physical(raw, spec), spec)


def measure_stats(arrays: Iterable[np.ndarray], spec: Dict[str, Any]) -> Dict[str, Any]:
    """Return a copy of `spec` with per-band mean/std measured on raw arrays [C,H,W] (finite pixels)."""
    total = None
    for raw in arrays:
        x = to_physical(raw, spec).reshape(raw.shape[0], -1).astype(np.float64)
        ok = np.isfinite(x)
        s = np.stack([np.where(ok, x, 0).sum(1), np.where(ok, x * x, 0).sum(1), ok.sum(1)], 0)
        total = s if total is None else total + s
    if total is None:
        raise ValueError("no arrays to measure statistics on")
    n = np.maximum(total[2], 1)
    mean = total[0] / n
    std = np.sqrt(np.maximum(total[1] / n - mean ** 2, 1e-12))
    out = dict(spec)
    out["mean"] = [round(float(v), 6) for v in mean]
    out["std"] = [round(float(max(v, 1e-4)), 6) for v in std]
    return out
