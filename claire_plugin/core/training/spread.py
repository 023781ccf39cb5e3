"""How far the held-out score could move with other polygons: a stratified bootstrap over whole polygons.

A held-out score rests on a few polygons per class, and pixels of one polygon are not independent draws, so the
spread comes from resampling whole held-out polygons within each class (a cluster bootstrap), never pixels.
Every model is scored on the same resampled polygons, so the difference of two models gets its own interval
(paired). A class with a single held-out polygon cannot move in a resampling, so then no interval is given (and
the report says why).
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .labels import POLYGONS, LabelPixels, Units

#: Resamplings of the held-out polygons.
DRAWS = 2000
#: Resamplings drawn and scored at a time (memory: CHUNK x polygons counts).
CHUNK = 250
#: The models every other one is compared with, in this order (the first present is used).
REFERENCE_ARMS = ("finetuned",)


def polygon_groups(ref: LabelPixels) -> Tuple[np.ndarray, np.ndarray]:
    """(each pixel's polygon number 0..G-1, each polygon's class) of `ref`'s pixels."""
    _, first, inverse = np.unique(ref.group, return_index=True, return_inverse=True)
    return inverse.reshape(-1), ref.cls[first].astype(np.int64)


def polygon_confusions(pred: np.ndarray, ref: LabelPixels, k: int) -> np.ndarray:
    """(G, K+1, K+1): each held-out polygon's confusion matrix of `pred` at `ref`'s pixels (rows = reference; the
    last column the pixels mapped as a class the user does not have, windows.ANOTHER_CLASS, an error; its row
    empty; pixels without a prediction, -1, left out as models.metrics.confusion_matrix leaves them)."""
    from .windows import ANOTHER_CLASS

    inverse, group_class = polygon_groups(ref)
    p = np.asarray(pred).reshape(-1).astype(np.int64)
    p = np.where(p == ANOTHER_CLASS, k, p)
    r = ref.cls.astype(np.int64)
    n = k + 1
    keep = (p >= 0) & (p <= k) & (r < k)
    idx = (inverse[keep] * n + r[keep]) * n + p[keep]
    return np.bincount(idx, minlength=group_class.size * n * n).reshape(group_class.size, n, n)


def macro_f1_of(cms: np.ndarray) -> np.ndarray:
    """Macro-F1 of each confusion matrix in a (..., K, K) stack (rows = reference), as models.metrics.macro_f1:
    the mean F1 of the classes with reference pixels; NaN where there are none."""
    tp = np.diagonal(cms, axis1=-2, axis2=-1).astype(np.float64)
    support, predicted = cms.sum(-1), cms.sum(-2)
    present = support > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(present, 2 * tp / np.where(present, support + predicted, 1), 0.0)
        return f1.sum(-1) / present.sum(-1)


def polygon_weights(group_class: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, polygons) counts: each class's held-out polygons drawn with replacement, as many as it has."""
    weights = np.zeros((draws, group_class.size), np.int32)
    for c in np.unique(group_class):
        idx = np.nonzero(group_class == c)[0]
        weights[:, idx] = rng.multinomial(idx.size, np.full(idx.size, 1.0 / idx.size), size=draws)
    return weights


def _interval(values: np.ndarray) -> Optional[List[float]]:
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def bootstrap(preds: Mapping[str, np.ndarray], ref: LabelPixels, k: int, seed: int = 0,
              draws: int = DRAWS) -> Dict[str, Any]:
    """95 % intervals of each model's macro-F1 on `ref`'s polygons and of each model's difference to the first
    of REFERENCE_ARMS present (paired: the same resampled polygons for every model); None for every interval
    when a class has a single held-out polygon (its score cannot move in a resampling, so the intervals came out
    far narrower than the scores move between splits: 0.37-0.37 for a model scoring 0.32-0.62 over four seeds)
    or no class has two."""
    group_class = polygon_groups(ref)[1]
    counts = np.bincount(group_class, minlength=k)
    single = [int(c) for c in range(k) if counts[c] == 1]
    if single or not (counts >= 2).any():  # a lone polygon's class cannot be resampled: no honest interval
        return {"draws": 0, "arms": {n: None for n in preds}, "differences": {}, "single_polygon_classes": single}
    n = k + 1
    cms = {name: polygon_confusions(pred, ref, k).reshape(group_class.size, n * n).astype(np.float64)
           for name, pred in preds.items()}
    rng = np.random.default_rng([seed, 0xB007])
    parts: Dict[str, List[np.ndarray]] = {name: [] for name in preds}
    for start in range(0, draws, CHUNK):
        weights = polygon_weights(group_class, min(CHUNK, draws - start), rng).astype(np.float64)
        for name, cm in cms.items():
            parts[name].append(macro_f1_of((weights @ cm).reshape(-1, n, n)))
    scores = {name: np.concatenate(p) for name, p in parts.items()}
    out: Dict[str, Any] = {"draws": draws, "arms": {n: _interval(s) for n, s in scores.items()}, "differences": {}}
    base = next((a for a in REFERENCE_ARMS if a in scores), None)
    for name, s in scores.items():
        if base is not None and name != base:
            out["differences"][f"{base} - {name}"] = _interval(scores[base] - s)
    out["single_polygon_classes"] = single
    return out


def spread_note(spread: Dict[str, Any], units: Units = POLYGONS) -> str:
    """One sentence for the report on how the intervals were made and how far to trust them."""
    many = units.many
    if not spread.get("draws"):
        return f"no score has an interval: {no_interval_reason(spread, units)}; draw more {many} per class"
    whole = "whole " if units is POLYGONS else ""
    return (f"95 % intervals from resampling {whole}held-out {many} within each class ({spread['draws']} draws); "
            f"with a few held-out {many} per class they are rough and, if anything, too narrow")


def no_interval_reason(spread: Dict[str, Any], units: Units = POLYGONS) -> str:
    """Why a bootstrap gave no interval, in words."""
    single = spread.get("single_polygon_classes") or []
    if single:
        n = len(single)
        return (f"{n} class{'' if n == 1 else 'es'} {'has' if n == 1 else 'have'} a single held-out {units.one}, "
                f"whose score cannot be resampled, so an interval would hide how much the scores move with other "
                f"{units.many}")
    return f"no class has two held-out {units.many}, so nothing tells how much the scores would move with others"


def difference_of(report: Dict[str, Any], other: str, cond: str = "clear") -> Tuple[Any, Any]:
    """(macro-F1 of the fine-tuned network minus `other`'s, its 95 % interval or None) in a training report."""
    arms = report.get("arms") or {}
    a = ((arms.get("finetuned") or {}).get(cond) or {}).get("macro_f1")
    b = ((arms.get(other) or {}).get(cond) or {}).get("macro_f1")
    ci = (((report.get("spread") or {}).get(cond) or {}).get("differences") or {}).get(f"finetuned - {other}")
    return (None if a is None or b is None else a - b), ci


def single_polygon_names(report: Dict[str, Any], names: Sequence[str], cond: str = "clear") -> List[str]:
    """Names of the classes with one held-out polygon (their spread is not in the intervals)."""
    idx = ((report.get("spread") or {}).get(cond) or {}).get("single_polygon_classes") or []
    return [names[i] for i in idx if i < len(names)]
