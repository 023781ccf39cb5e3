"""Honest validation splits of sparse labels: whole polygons held out per class, with a buffer.

`polygon_split` holds out a stratified share of whole polygons (groups) per class and drops every
training pixel within `buffer_px` pixels of a validation pixel, so no validation pixel has a training
pixel as a near neighbour; a large validation polygon, whose pixels are a sample, is measured from every pixel
it covers (labels.Footprint), so no training pixel lies inside it or near its unsampled part. `layer_split` does
the same with a separate validation layer. `pixel_split` is the leaky random-pixel split, kept only to show how
much it flatters a model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from ....models.quoting import quoted
from ..errors import ClaireError
from .labels import MIN_POLYGONS, Footprint, LabelPixels, LabelSet, within


@dataclass
class Split:
    """Training and validation pixels, and how they were chosen."""

    train: LabelPixels
    val: LabelPixels
    info: Dict[str, object] = field(default_factory=dict)


def _drop_near(train: LabelPixels, val: LabelPixels, buffer_px: float,
               footprints: Sequence[Footprint] = ()) -> LabelPixels:
    """Training pixels farther than `buffer_px` (Euclidean, in pixels) from every validation pixel, and from every
    pixel of the validation polygons whose pixels are a sample (`footprints`: inside them too, whatever the
    buffer)."""
    if len(train) == 0:
        return train
    near = within(footprints, train.rows, train.cols, buffer_px) if footprints else np.zeros(len(train), bool)
    if buffer_px > 0 and len(val):
        from scipy.spatial import cKDTree

        tree = cKDTree(np.column_stack([val.rows, val.cols]).astype(np.float64))
        dist, _ = tree.query(np.column_stack([train.rows, train.cols]).astype(np.float64), k=1,
                             distance_upper_bound=buffer_px + 1e-6)
        near |= np.isfinite(dist)
    return train.subset(~near) if near.any() else train


def _count_after_buffer(per_class: Dict[str, Dict[str, int]], labels: LabelSet, train: LabelPixels) -> None:
    """Training polygons per class as the report's `counts` gives them: those with a pixel left after the buffer;
    polygons the buffer emptied are counted apart (`train_polygons_in_buffer`)."""
    for c in labels.classes:
        left = int(np.unique(train.group[train.cls == c.index]).size)
        row = per_class[c.name]
        if left < row["train_polygons"]:
            row["train_polygons_in_buffer"] = row["train_polygons"] - left
        row["train_polygons"] = left


def held_out_count(polygons: int, val_share: float) -> int:
    """How many of a class's `polygons` are held out: `val_share` of them rounded half up (not to even: 7 and 9
    polygons at 0.5 both gave 4), at least 1, leaving at least 2 for training."""
    return min(polygons - 2, max(1, int(math.floor(val_share * polygons + 0.5 + 1e-9))))  # 0.7 x 45 is 31.4999...


def polygon_split(labels: LabelSet, val_share: float = 0.3, buffer_px: float = 3.0, seed: int = 0,
                  held: Optional[Sequence[int]] = None, avoid: Sequence[int] = ()) -> Split:
    """Per class, hold out val_share x polygons, rounded half up, whole polygons (at least 1, leaving at least 2 for
    training); drop training pixels within `buffer_px` of a validation pixel. `held`: groups to hold out as they
    are (a continued training's, core.training.continued), for the classes that have some; the other classes draw
    theirs from the groups not in `avoid` first."""
    if not 0.0 < val_share < 1.0:
        raise ClaireError(f"the validation share must be between 0 and 1 (got {val_share}); e.g. 0.3")
    rng = np.random.default_rng(seed)
    groups = np.unique(labels.pixels.group)
    val_groups: List[int] = []
    per_class = {}
    for c in labels.classes:
        mine = np.array([g for g in groups if labels.group_class[int(g)] == c.index], dtype=np.int64)
        if mine.size < MIN_POLYGONS:
            u = labels.pixels.units
            raise ClaireError(f"class {quoted(c.name)} has {mine.size} {u.one}(s); holding out whole {u.many} needs at "
                              f"least {MIN_POLYGONS} per class (2 to train, 1 to validate): draw more, or give a "
                              f"separate validation layer")
        n_val = held_out_count(mine.size, val_share)
        kept = mine[np.isin(mine, np.asarray(held if held is not None else [], dtype=np.int64))]
        over = max(0, int(kept.size) - (mine.size - 2))  # kept beyond what leaves 2 to train: these train
        if kept.size:
            picked = np.sort(rng.choice(kept, kept.size - over, replace=False)) if over else kept
            n_val = int(picked.size)
        elif len(avoid):
            fresh = mine[~np.isin(mine, np.asarray(avoid, dtype=np.int64))]
            first = rng.choice(fresh, min(n_val, fresh.size), replace=False)
            rest = mine[~np.isin(mine, first)]
            picked = np.concatenate([first, rng.choice(rest, n_val - first.size, replace=False)])
        else:
            picked = rng.choice(mine, n_val, replace=False)
        val_groups += [int(g) for g in picked]
        per_class[c.name] = {"train_polygons": int(mine.size - n_val), "val_polygons": int(n_val)}
        if over:
            per_class[c.name]["held_kept_training"] = over
    is_val = np.isin(labels.pixels.group, np.array(val_groups, dtype=np.int64))
    val = labels.pixels.subset(is_val)
    train_all = labels.pixels.subset(~is_val)
    held = set(val_groups)
    train = _drop_near(train_all, val, buffer_px, [fp for fp in labels.footprints if fp.group in held])
    _count_after_buffer(per_class, labels, train)
    info = {"kind": "polygons", "val_share": val_share, "buffer_px": buffer_px, "seed": seed,
            "val_groups": sorted(val_groups), "buffer_dropped_train_pixels": len(train_all) - len(train),
            "per_class": per_class}
    _require_every_class(train, val, labels)
    return Split(train, val, info)


def layer_split(train_labels: LabelSet, val_labels: LabelSet, buffer_px: float = 3.0) -> Split:
    """Training pixels from one layer, validation pixels from another (same classes); training pixels
    within `buffer_px` of a validation pixel (and any pixel in both) are dropped, and so is every pixel of a
    training polygon whose geometry the validation layer holds too (a held-out layer written by an earlier run,
    core.training.heldout: a large polygon's pixels are a sample, so the buffer alone would keep some)."""
    same = same_polygons(train_labels, val_labels)
    kept = train_labels.pixels.subset(~np.isin(train_labels.pixels.group, np.array(same, dtype=np.int64)))
    train = _drop_near(kept, val_labels.pixels, max(buffer_px, 0.5), val_labels.footprints)
    info = {"kind": "separate layer", "buffer_px": buffer_px, "val_source": val_labels.source,
            "buffer_dropped_train_pixels": len(kept) - len(train),
            "validation_polygons_in_training_layer": len(same),
            "validation_polygon_pixels_in_training_layer": len(train_labels.pixels) - len(kept)}
    _require_every_class(train, val_labels.pixels, train_labels)
    return Split(train, val_labels.pixels, info)


def same_polygons(train_labels: LabelSet, val_labels: LabelSet) -> List[int]:
    """Training groups with a feature whose stored geometry a validation feature has too."""
    from .continued import groups_among

    return groups_among(train_labels, val_labels.feature_shapes.values())


def pixel_split(labels: LabelSet, val_share: float = 0.3, seed: int = 0) -> Split:
    """The leaky split: a random, class-stratified share of *pixels*, neighbours of training pixels included."""
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(labels.pixels), bool)
    for c in labels.classes:
        idx = np.nonzero(labels.pixels.cls == c.index)[0]
        n = int(math.ceil(val_share * idx.size - 1e-9))  # 0.07 x 100 is 7.000000000000001 in floats
        is_val[rng.choice(idx, n, replace=False)] = True
    return Split(labels.pixels.subset(~is_val), labels.pixels.subset(is_val),
                 {"kind": "random pixels (leaky, for comparison only)", "val_share": val_share, "seed": seed})


def _require_every_class(train: LabelPixels, val: LabelPixels, labels: LabelSet) -> None:
    """ClaireError when a class has no training or no validation pixel left."""
    k, u = len(labels.classes), labels.pixels.units
    n_tr = np.bincount(train.cls, minlength=k)
    n_va = np.bincount(val.cls, minlength=k)
    for c in labels.classes:
        if n_tr[c.index] == 0:
            raise ClaireError(f"class {quoted(c.name)} has no training pixel left after the split and its buffer; draw "
                              f"more {u.many} of it, farther from the validation {u.many}, or lower --buffer")
        if n_va[c.index] == 0:
            raise ClaireError(f"class {quoted(c.name)} has no validation pixel; draw validation {u.many} of every "
                              f"class")
