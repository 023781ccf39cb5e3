"""Segmentation metrics from a confusion matrix (rows = reference, columns = prediction)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np


def confusion_matrix(pred: Any, ref: Any, num_classes: int, ignore_index: Optional[int] = None) -> np.ndarray:
    """K x K int64 confusion matrix of class indices; `ignore_index` and out-of-range refs are skipped."""
    p = np.asarray(pred).reshape(-1).astype(np.int64)
    r = np.asarray(ref).reshape(-1).astype(np.int64)
    if p.shape != r.shape:
        raise ValueError(f"pred and ref differ in size: {p.shape} vs {r.shape}")
    keep = (r >= 0) & (r < num_classes) & (p >= 0) & (p < num_classes)
    if ignore_index is not None:
        keep &= r != ignore_index
    idx = r[keep] * num_classes + p[keep]
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def metrics_from_confusion(cm: np.ndarray, names: Sequence[str]) -> Dict[str, Any]:
    """OA, mIoU (over classes present in reference or prediction), Cohen's kappa and per-class scores.

    Per-class values are None where undefined (e.g. IoU of a class absent from both reference and
    prediction); such classes are left out of the mIoU.
    """
    cm = np.asarray(cm, dtype=np.float64)
    k = cm.shape[0]
    if cm.shape != (k, k) or len(names) != k:
        raise ValueError(f"confusion matrix {cm.shape} does not match {len(names)} class names")
    total = cm.sum()
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    iou = _div(tp, support + predicted - tp)
    precision = _div(tp, predicted)
    recall = _div(tp, support)
    f1 = _div(2 * tp, support + predicted)
    oa = float(tp.sum() / total) if total > 0 else float("nan")
    pe = float((support * predicted).sum() / (total * total)) if total > 0 else float("nan")
    kappa = float((oa - pe) / (1 - pe)) if total > 0 and pe < 1 else (1.0 if total > 0 else float("nan"))
    valid = ~np.isnan(iou)
    miou = float(np.mean(iou[valid])) if valid.any() else float("nan")

    def _f(v: float) -> Optional[float]:
        return None if np.isnan(v) else float(v)

    per_class = [{"name": str(names[i]), "iou": _f(iou[i]), "precision": _f(precision[i]),
                  "recall": _f(recall[i]), "f1": _f(f1[i]), "support": int(support[i])} for i in range(k)]
    return {"oa": oa, "miou": miou, "kappa": kappa, "per_class": per_class}


def metrics_with_other(cm: np.ndarray, names: Sequence[str], other: Sequence[int],
                       other_name: str = "another value") -> Dict[str, Any]:
    """metrics_from_confusion of `cm` [K, K] (rows = reference) where `other[i]` more pixels of reference class i
    were mapped as none of the K classes: errors in every score (recall, OA, kappa), a column of their own that is
    no class (per-class rows and the mIoU are over the K classes only)."""
    cm = np.asarray(cm, np.int64)
    k = cm.shape[0]
    other = np.asarray(other, np.int64).reshape(-1)
    if not other.any():
        return metrics_from_confusion(cm, names)
    full = np.zeros((k + 1, k + 1), np.int64)
    full[:k, :k], full[:k, k] = cm, other
    m = metrics_from_confusion(full, list(names) + [other_name])
    m["per_class"] = m["per_class"][:k]
    ious = [r["iou"] for r in m["per_class"] if r["iou"] is not None]
    m["miou"] = float(np.mean(ious)) if ious else float("nan")
    return m


def macro_f1(metrics: Dict[str, Any]) -> float:
    """Mean F1 of the classes present in the reference (support > 0) of a `metrics_from_confusion` result."""
    f1 = [c["f1"] or 0.0 for c in metrics["per_class"] if c["support"] > 0]
    return float(np.mean(f1)) if f1 else float("nan")


def mean_accuracy(metrics: Dict[str, Any]) -> float:
    """Mean per-class accuracy (recall) of the classes present in the reference: mmsegmentation's mAcc."""
    acc = [c["recall"] or 0.0 for c in metrics["per_class"] if c["support"] > 0]
    return float(np.mean(acc)) if acc else float("nan")


#: A class pair counts as a look-alike of one input when at least this share of the reference class's pixels is
#: mapped as the other class ...
LOOKALIKE_SHARE = 0.25
#: ... and at least this much more than in the baseline scores (the same pixels with more input).
LOOKALIKE_GAIN = 0.10


def added_confusions(scores: Dict[str, Any], baseline: Optional[Dict[str, Any]] = None, limit: int = 2,
                     min_share: float = LOOKALIKE_SHARE, min_gain: float = LOOKALIKE_GAIN) -> List[Dict[str, Any]]:
    """Class pairs that `scores` confuses and `baseline` does not, largest share first: reference class ->
    predicted class taking at least `min_share` of the reference class's pixels, and at least `min_gain` more than
    in `baseline` (scores of the same pixels, same classes; None: no comparison). Each is {"reference",
    "predicted", "pixels", "share", "baseline_share"}; both score dicts carry "confusion" (rows = reference) and
    "per_class" names, as metrics_from_confusion's callers store them."""
    cm = np.asarray(scores.get("confusion") or [], dtype=np.float64)
    names = [str(c.get("name")) for c in scores.get("per_class") or []]
    if cm.ndim != 2 or cm.shape != (len(names), len(names)) or not names:
        return []
    base = np.asarray((baseline or {}).get("confusion") or [], dtype=np.float64)
    if base.shape != cm.shape:
        base = None
    found = []
    for i, row in enumerate(cm):
        total = row.sum()
        base_total = None if base is None else base[i].sum()
        for j, count in enumerate(row):
            if i == j or total <= 0:
                continue
            share = count / total
            before = (base[i, j] / base_total) if base is not None and base_total > 0 else None
            if share >= min_share and (before is None or share - before >= min_gain):
                found.append({"reference": names[i], "predicted": names[j], "pixels": int(round(count)),
                              "share": float(share), "baseline_share": None if before is None else float(before)})
    found.sort(key=lambda p: (-p["share"], -p["pixels"], p["reference"], p["predicted"]))
    return found[:limit]
