"""Example engine summaries and model cards (schema of docs/architecture.md) for tests and demos."""
from __future__ import annotations

from typing import List, Optional

_CLASSES = [
    (1, "water", "#419bdf"), (2, "trees", "#397d49"), (3, "crops", "#e49635"),
    (4, "built area", "#c4281b"), (5, "bare ground", "#a59b8f"), (6, "rangeland", "#e3e2c3"),
]


def example_card(names: Optional[List[str]] = None) -> dict:
    """A model card with Sentinel-2 / Sentinel-1 inputs and the given class names."""
    classes = [{"index": i, "value": v, "name": n, "color": c} for i, (v, n, c) in enumerate(_CLASSES)]
    if names is not None:
        classes = [{"index": i, "value": i + 1, "name": n} for i, n in enumerate(names)]
    return {
        "format": "claire-checkpoint/1", "arch": "claire", "size": "small", "config": {},
        "classes": classes, "nodata": 0,
        "inputs": {
            "optical": {"bands": ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"],
                        "sensor": "Sentinel-2", "units": "reflectance", "scale": 0.0001, "offset": 0.0,
                        "clip": [0.0, 1.0], "mean": [0.1] * 10, "std": [0.1] * 10},
            "sar": {"bands": ["VV", "VH"], "sensor": "Sentinel-1 GRD/RTC", "units": "dB", "scale": 1.0,
                    "offset": 0.0, "clip": [-40.0, 5.0], "mean": [-12.0, -19.0], "std": [4.0, 4.0]},
        },
        "tile_size": 256, "overlap": 32,
        "training": {"data": "example", "epochs": 3, "seed": 0, "loss": {"name": "ce"}},
        "metrics": {"heldout": {"oa": 0.81, "miou": 0.6, "kappa": 0.74, "per_class": []}},
        "created": "2026-01-01T00:00:00Z", "claire_version": "0.1.0",
    }


def example_summary(pixels: List[int], confidences: List[float], low: List[float],
                    sar: Optional[List[float]], confusion: Optional[List[List[int]]] = None,
                    names: Optional[List[str]] = None, pixel_area_m2: float = 100.0,
                    nodata_pixels: int = 1234, optical_invalid_share: float = 0.0213,
                    cloud_share: float = 0.0871) -> dict:
    """An engine summary for classes with the given pixel counts, confidences, low-confidence
    shares and SAR shares; with `confusion` (rows = reference) it carries reference metrics."""
    names = names or [n for _, n, _ in _CLASSES][: len(pixels)]
    valid = sum(pixels)
    classes = []
    for i, name in enumerate(names):
        classes.append({
            "value": i + 1, "name": name, "color": None, "pixels": pixels[i],
            "area_ha": pixels[i] * pixel_area_m2 / 10000.0, "share": pixels[i] / valid if valid else 0.0,
            "mean_confidence": confidences[i], "low_confidence_share": low[i],
            "mean_sar_share": None if sar is None else sar[i],
        })
    w = [p / valid if valid else 0.0 for p in pixels]
    summary = {
        "pixel_area_m2": pixel_area_m2, "valid_pixels": valid, "nodata_pixels": nodata_pixels,
        "optical_invalid_share": optical_invalid_share, "cloud_share": cloud_share,
        "classes": classes,
        "mean_confidence": sum(a * b for a, b in zip(w, confidences)),
        "mean_sar_share": None if sar is None else sum(a * b for a, b in zip(w, sar)),
        "metrics": None,
    }
    if confusion is not None:
        summary["metrics"] = metrics_from_confusion(confusion, names)
    return summary


def metrics_from_confusion(cm: List[List[int]], names: List[str]) -> dict:
    """Plain-Python metrics in the documented shape (rows = reference, columns = prediction)."""
    k = len(cm)
    total = sum(sum(r) for r in cm)
    diag = sum(cm[i][i] for i in range(k))
    per = []
    for i in range(k):
        tp = cm[i][i]
        ref = sum(cm[i])
        pred = sum(cm[r][i] for r in range(k))
        prec = tp / pred if pred else float("nan")
        rec = tp / ref if ref else float("nan")
        iou = tp / (ref + pred - tp) if (ref + pred - tp) else float("nan")
        f1 = 2 * prec * rec / (prec + rec) if pred and ref and (prec + rec) else float("nan")
        per.append({"name": names[i], "iou": iou, "precision": prec, "recall": rec, "f1": f1,
                    "support": ref})
    oa = diag / total
    pe = sum(sum(cm[i]) * sum(cm[r][i] for r in range(k)) for i in range(k)) / total ** 2
    ious = [p["iou"] for p in per if p["iou"] == p["iou"]]
    return {"oa": oa, "miou": sum(ious) / len(ious), "kappa": (oa - pe) / (1 - pe) if pe < 1 else 1.0, "per_class": per,
            "confusion": cm, "class_values": list(range(1, k + 1))}


def sample_run(with_reference: bool = True) -> tuple:
    """(summary, card) of a plausible six-class run, with reference metrics if asked."""
    cm = [[5100, 30, 10, 20, 40, 0], [20, 8900, 600, 15, 5, 260], [5, 700, 6400, 90, 310, 495],
          [30, 40, 120, 2100, 180, 30], [60, 10, 420, 210, 900, 100], [0, 380, 710, 25, 95, 1790]]
    pixels = [sum(cm[r][c] for r in range(6)) for c in range(6)]
    summary = example_summary(
        pixels, [0.962, 0.913, 0.842, 0.801, 0.655, 0.702], [0.012, 0.041, 0.118, 0.152, 0.384, 0.297],
        [0.71, 0.38, 0.29, 0.57, 0.22, 0.31], confusion=cm if with_reference else None)
    return summary, example_card()
