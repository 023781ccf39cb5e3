"""Polygons that look like another class: found from their median optical and SAR values, leave-one-out."""
import numpy as np

from claire.claire_plugin.core.training.labels import ClassInfo, LabelPixels
from claire.claire_plugin.core.training.suspects import suspect_note, suspect_polygons

CLASSES = [ClassInfo(0, 1, "water"), ClassInfo(1, 2, "trees"), ClassInfo(2, 3, "crops")]
LEVELS = {0: [0.02, 0.03, -22.0], 1: [0.05, 0.30, -9.0], 2: [0.12, 0.25, -12.0]}


def _set(classes_of_polygons, looks=None, pixels=30, seed=0):
    """Features of polygons of 30 pixels each: class `c`'s levels plus noise, or `looks[g]`'s levels."""
    rng = np.random.default_rng(seed)
    feats, cls, group = [], [], []
    for g, c in enumerate(classes_of_polygons):
        level = np.array(LEVELS[(looks or {}).get(g, c)])
        feats.append(level + rng.normal(0, 1, (pixels, 3)) * np.array([0.01, 0.02, 0.7]))
        cls += [c] * pixels
        group += [g] * pixels
    n = len(cls)
    px = LabelPixels(np.arange(n, dtype=np.int32), np.zeros(n, np.int32), np.array(cls, np.uint8),
                     np.array(group, np.int32))
    return np.concatenate(feats).astype(np.float32), px, {g: [g + 1] for g in range(len(classes_of_polygons))}


def test_clean_polygons_are_not_flagged():
    feats, px, fids = _set([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    assert suspect_polygons(feats, px, CLASSES, fids) == []
    assert suspect_note([]) == ""


def test_a_polygon_with_the_wrong_class_is_named_with_what_it_looks_like():
    feats, px, fids = _set([0, 0, 0, 1, 1, 1, 2, 2, 2, 2], looks={7: 1})  # crops polygon 7 drawn on trees
    found = suspect_polygons(feats, px, CLASSES, fids)
    assert [(s["feature_ids"], s["class"], s["looks_like"]) for s in found] == [([8], "crops", "trees")]
    assert found[0]["ratio"] < 0.5
    note = suspect_note(found)
    assert "feature 8 (crops) looks like trees" in note and note.startswith("1 polygon(s)")


def test_a_class_needs_three_polygons_to_be_checked():
    feats, px, fids = _set([0, 0, 0, 1, 1, 2, 2, 2], looks={3: 2})  # trees has two polygons: not checked
    assert all(s["class"] != "trees" for s in suspect_polygons(feats, px, CLASSES, fids))
    feats, px, fids = _set([0, 0, 0, 1, 1, 1, 2, 2, 2], looks={3: 2})
    assert [s["feature_ids"] for s in suspect_polygons(feats, px, CLASSES, fids)] == [[4]]


def test_a_polygon_without_valid_values_is_skipped():
    feats, px, fids = _set([0, 0, 0, 1, 1, 1, 2, 2, 2], looks={4: 0})
    feats[px.group == 4] = np.nan  # e.g. under the optical's nodata
    assert suspect_polygons(feats, px, CLASSES, fids) == []


def test_large_classes_use_their_own_median_and_flag_the_same(monkeypatch):
    from claire.claire_plugin.core.training import suspects

    classes = [0] * 40 + [1] * 40 + [2] * 40
    feats, px, fids = _set(classes, looks={45: 2, 100: 0}, pixels=8, seed=2)
    exact = suspect_polygons(feats, px, CLASSES, fids)
    monkeypatch.setattr(suspects, "EXACT_UP_TO", 10)
    fast = suspect_polygons(feats, px, CLASSES, fids)
    assert [s["feature_ids"] for s in exact] == [s["feature_ids"] for s in fast]
    assert sorted(f for s in fast for f in s["feature_ids"]) == [46, 101]


def test_no_valid_value_anywhere_flags_nothing_and_warns_nothing():
    import warnings

    feats, px, fids = _set([0, 0, 0, 1, 1, 1])
    feats[:] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert suspect_polygons(feats, px, CLASSES, fids) == []


def _constant_polygons(levels, classes_of_polygons, pixels=5):
    """Polygons whose pixels all hold the given feature values."""
    feats = np.concatenate([np.tile(np.array(v, np.float32), (pixels, 1)) for v in levels])
    cls = np.repeat(classes_of_polygons, pixels).astype(np.uint8)
    n = len(cls)
    px = LabelPixels(np.arange(n, dtype=np.int32), np.zeros(n, np.int32), cls,
                     np.repeat(np.arange(len(levels)), pixels).astype(np.int32))
    return feats, px, {g: [g + 1] for g in range(len(levels))}


def test_a_polygon_does_not_vouch_for_itself():
    """Crops: a bare field (NIR 0.15), a green one (0.60) and one drawn on trees (0.42, between them). With itself
    in its class's median the median is its own value; left out, the other two say it is trees."""
    levels = [[0.02, -22.0]] * 3 + [[0.42, -10.0]] * 2 + [[0.15, -10.0], [0.60, -10.0], [0.42, -10.0]]
    feats, px, fids = _constant_polygons(levels, [0, 0, 0, 1, 1, 2, 2, 2])  # trees: 2 polygons, not checked
    found = suspect_polygons(feats, px, CLASSES, fids)
    assert [(s["feature_ids"], s["class"], s["looks_like"]) for s in found] == [([8], "crops", "trees")]


OPTICAL = {0: [0.02, 0.03], 1: [0.05, 0.30], 2: [0.12, 0.25]}


def test_backscatter_noise_does_not_hide_a_polygon_with_the_wrong_optical_class():
    """Trees and crops alike in VV (-10 dB, each polygon off by up to 2.5 dB): each band scaled by its spread, the
    crops polygon drawn on trees is found by its optical values; unscaled, decibels would outweigh reflectance."""
    classes = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    offsets = [0, 1, -1, 2, -2, 0, 2, -2, 0, -2.5]
    rng = np.random.default_rng(0)
    feats = []
    for g, c in enumerate(classes):
        level = np.array(OPTICAL[1 if g == 9 else c] + [(-22.0 if c == 0 else -10.0) + offsets[g]])
        feats.append(level + rng.normal(0, 1, (30, 3)) * np.array([0.01, 0.02, 0.7]))
    n = 30 * len(classes)
    px = LabelPixels(np.arange(n, dtype=np.int32), np.zeros(n, np.int32), np.repeat(classes, 30).astype(np.uint8),
                     np.repeat(np.arange(len(classes)), 30).astype(np.int32))
    found = suspect_polygons(np.concatenate(feats).astype(np.float32), px, CLASSES,
                             {g: [g + 1] for g in range(len(classes))})
    assert [(s["feature_ids"], s["class"], s["looks_like"]) for s in found] == [([10], "crops", "trees")]
