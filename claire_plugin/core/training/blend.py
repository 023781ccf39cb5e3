"""The forest's weight in the network + forest average (models.ensemble), chosen per run on the held-out
polygons, and scored so that the choice does not flatter the score.

Choosing a weight on the same polygons that score it would report the best of several tries. So the held-out
polygons of each class are dealt into two halves; the weight chosen on one half scores the other half, and the
two halves' predictions together give the ensemble's scores in the report (cross-fitting). The checkpoint gets
the weight chosen on all held-out polygons. A weight is chosen by the mean macro-F1 of the clear and the
synthetically clouded input, and a higher weight must earn its place: the lowest weight within MARGIN of the
best is taken (the network unless the forest clearly helps: a few held-out polygons are a noisy judge, and they
flatter the forest, docs/train_from_polygons.md).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .labels import ClassInfo, LabelPixels
from .scorecard import FOREST_LEAD, score

#: How much more mean macro-F1 a higher forest weight needs than a lower one to be chosen (the report's lead
#: for saying the forest scored higher, scorecard.FOREST_LEAD).
MARGIN = FOREST_LEAD


def polygon_halves(val: LabelPixels, seed: int) -> Optional[np.ndarray]:
    """Per held-out pixel 0 or 1: the half its polygon was dealt to, each class's polygons shuffled (seeded) and
    dealt alternately, the first half alternating between classes. None when a half would be empty."""
    rng = np.random.default_rng(seed)
    half_of: Dict[int, int] = {}
    start = 0
    for c in np.unique(val.cls):
        groups = np.unique(val.group[val.cls == c])
        rng.shuffle(groups)
        for k, g in enumerate(groups):
            half_of[int(g)] = (start + k) % 2
        start += len(groups)
    groups, at = np.unique(val.group, return_inverse=True)
    halves = np.array([half_of[int(g)] for g in groups], np.int64)[at.reshape(-1)]
    if len(halves) == 0 or halves.min() == halves.max():
        return None
    return halves


def _choose(preds: Dict[str, List[np.ndarray]], val: LabelPixels, classes: Sequence[ClassInfo],
            weights: Sequence[float], where: np.ndarray) -> Tuple[int, List[float]]:
    """(index of the lowest weight whose mean macro-F1 over the conditions at pixels `where` is within MARGIN of the
    best; the mean per weight)."""
    sub = val.subset(where)
    means = []
    for k in range(len(weights)):
        f1 = [score(p[k][where], sub, classes)["macro_f1"] for p in preds.values()]
        means.append(float(np.mean([0.0 if v is None else v for v in f1])))
    best = max(means)
    return next(k for k, m in enumerate(means) if m >= best - MARGIN - 1e-9), means


def choose_weight(preds: Dict[str, List[np.ndarray]], val: LabelPixels, classes: Sequence[ClassInfo],
                  weights: Sequence[float], seed: int, default: float) -> Tuple[float, Dict[str, np.ndarray], Dict]:
    """(the weight for the checkpoint, the cross-fitted predictions per condition, what the report says of it).

    `preds[condition][k]` are the class indices the ensemble with `weights[k]` predicts at the pixels of `val`.
    Without two non-empty halves of held-out polygons no weight is chosen: `default`, scored as it is."""
    everywhere = np.ones(len(val), bool)
    pick_all, means = _choose(preds, val, classes, weights, everywhere)
    info: Dict[str, Any] = {
        "candidates": [{"weight": w, "mean_macro_f1": round(m, 4)} for w, m in zip(weights, means)],
        "criterion": f"mean macro-F1 of the clear and the clouded held-out input; the lowest weight within "
                     f"{MARGIN:g} of the best"}
    halves = polygon_halves(val, seed)
    if halves is None:
        k = list(weights).index(default)
        info.update(chosen=default,
                    how=f"not chosen: too few held-out {val.units.many} to split; the default {default:g}",
                    halves=None)
        return default, {c: p[k] for c, p in preds.items()}, info
    out = {c: np.full(len(val), -1, np.int64) for c in preds}
    fold_info = []
    for h in (0, 1):
        pick, other = _choose(preds, val, classes, weights, halves != h)
        for c, p in preds.items():
            out[c][halves == h] = p[pick][halves == h]
        fold_info.append({"polygons": int(np.unique(val.group[halves == h]).size),
                          "weight_chosen_on_the_other_half": weights[pick],
                          "other_half_mean_macro_f1": [round(m, 4) for m in other]})
    chosen = float(weights[pick_all])
    info.update(chosen=chosen, halves=fold_info,
                how=(f"chosen among {', '.join(f'{w:g}' for w in weights)} on all held-out {val.units.many}; the "
                     f"scores shown for it are cross-fitted (each half of the held-out {val.units.many} scored with "
                     "the weight chosen on the other half)"),
                heldout_with_chosen={c: score(p[pick_all], val, classes)["macro_f1"] for c, p in preds.items()})
    return chosen, out, info
