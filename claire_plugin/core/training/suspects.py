"""Polygons that look like another class: a check of the labels before training.

A polygon drawn with the wrong class (a crops field labelled trees, a roof labelled water) teaches every model
the wrong thing and makes the held-out score lie. Each polygon is summarised by the median of its pixels'
optical reflectance and SAR backscatter (each band scaled by its spread over all labelled pixels), each class by
the median of its polygons' summaries. A polygon is suspect when another class's summary is nearer to it than
the summary of the *other* polygons of its own class (leave-one-out, so a polygon does not vouch for itself),
by a margin (SUSPECT_MARGIN). Only classes with at least MIN_POLYGONS polygons are checked. It is a warning,
not an error: a class can be truly varied (bare and green fields are both crops), and only the user can tell.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, Sequence

import numpy as np

from .labels import POLYGONS, ClassInfo, LabelPixels, Units

#: A polygon is flagged when the nearest other class is nearer than SUSPECT_MARGIN x the distance to its own
#: class's other polygons (1: simply nearer; 0.5: at most half as far). Measured on bench-train's polygons and the
#: demo's hand-drawn ones: docs/train_from_polygons.md.
SUSPECT_MARGIN = 0.5
#: Polygons a class needs for its polygons to be checked (the others give its leave-one-out summary).
MIN_POLYGONS = 3
#: From this many polygons in a class, one polygon barely moves the class's median: the class's own summary is
#: used instead of leaving each polygon out (thousands of survey points stay a matter of seconds).
EXACT_UP_TO = 200


def polygon_summaries(feats: np.ndarray, pixels: LabelPixels) -> tuple:
    """(polygon ids, their classes, [G, F] medians of the pixels' scaled features) of the labelled pixels."""
    x = np.asarray(feats, np.float64)
    groups, first, inverse = np.unique(pixels.group, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(groups.size + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a band or polygon without one valid value: NaN, skipped
        centre = np.nanmedian(x, axis=0)
        spread = np.nanpercentile(x, 75, axis=0) - np.nanpercentile(x, 25, axis=0)
        spread = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
        z = (x - centre) / spread
        med = np.stack([np.nanmedian(z[order[a:b]], axis=0) for a, b in zip(bounds[:-1], bounds[1:])])
    return groups, pixels.cls[first].astype(np.int64), med


def suspect_polygons(feats: np.ndarray, pixels: LabelPixels, classes: Sequence[ClassInfo],
                     group_features: Dict[int, List[int]], margin: float = SUSPECT_MARGIN) -> List[Dict[str, Any]]:
    """The polygons that look more like another class than like the other polygons of their own class (module
    docstring), nearest first: feature ids, class, the class it looks like and the two distances' ratio."""
    groups, cls, med = polygon_summaries(feats, pixels)
    ok = np.isfinite(med).all(axis=1)
    k = len(classes)
    centres = np.full((k, med.shape[1]), np.nan)
    for c in range(k):
        sel = ok & (cls == c)
        if sel.any():
            centres[c] = np.median(med[sel], axis=0)
    out = []
    sizes = np.bincount(cls[ok], minlength=k)
    for i in np.nonzero(ok)[0]:
        c = int(cls[i])
        if sizes[c] < MIN_POLYGONS:
            continue
        if sizes[c] > EXACT_UP_TO:
            own_centre = centres[c]
        else:
            own = ok & (cls == c)
            own[i] = False
            own_centre = np.median(med[own], axis=0)
        d_own = float(np.linalg.norm(med[i] - own_centre))
        d = np.linalg.norm(centres - med[i], axis=1)
        d[c] = np.inf
        d[~np.isfinite(d)] = np.inf
        other = int(np.argmin(d))
        if np.isfinite(d[other]) and d[other] < margin * d_own:
            out.append({"feature_ids": [int(f) for f in group_features.get(int(groups[i]), [])],
                        "class": classes[c].name, "looks_like": classes[other].name,
                        "ratio": round(float(d[other] / max(d_own, 1e-12)), 3)})
    return sorted(out, key=lambda s: s["ratio"])


def suspect_note(suspects: Sequence[Dict[str, Any]], shown: int = 5, units: Units = POLYGONS) -> str:
    """One note for the report and the user: which polygons look like another class, and what to do; "" when none."""
    if not suspects:
        return ""
    parts = []
    for s in suspects[:shown]:
        ids = ", ".join(str(f) for f in s["feature_ids"][:3]) or "?"
        parts.append(f"feature {ids} ({s['class']}) looks like {s['looks_like']}")
    more = f" and {len(suspects) - shown} more (in the report)" if len(suspects) > shown else ""
    return (f"{len(suspects)} {units.one}(s) look more like another class than like the other {units.many} of "
            f"their own (median optical and SAR values): {'; '.join(parts)}{more}. Check their class on the imagery; "
            f"a wrong class teaches every model the wrong thing and makes the held-out scores misleading")
