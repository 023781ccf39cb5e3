"""The held-out polygons' bootstrap: whole polygons resampled within each class, paired between models."""
import numpy as np
import pytest

from claire.claire_plugin.core.training.labels import ClassInfo
from claire.claire_plugin.core.training.scorecard import score, spread_sentence
from claire.claire_plugin.core.training.spread import bootstrap, macro_f1_of, polygon_confusions, polygon_weights
from claire.tests.fixtures.helpers import polygon_pixels

_ref = polygon_pixels


CLASSES = [ClassInfo(0, 1, "trees"), ClassInfo(1, 2, "crops")]


def test_macro_f1_of_a_stack_is_the_report_score():
    rng = np.random.default_rng(3)
    ref = _ref({0: [30, 20, 10], 1: [25, 15]})
    pred = rng.integers(0, 2, len(ref))
    pred[:5] = -1  # unscored pixels are left out in both
    cms = polygon_confusions(pred, ref, 2)
    assert cms.shape == (5, 3, 3) and not cms[:, :, 2].any()  # the last column: another class, none here
    assert macro_f1_of(cms.sum(0)) == pytest.approx(score(pred, ref, CLASSES)["macro_f1"], abs=1e-4)


def test_pixels_mapped_as_a_class_the_user_lacks_are_errors_in_the_score_and_its_spread():
    """The base checkpoint was scored with its argmax restricted to the user's classes, so it scored 0.36 where
    the map it makes (rangeland on half the crops) scored 0.16, and the report advised mapping with it."""
    from claire.claire_plugin.core.training.windows import ANOTHER_CLASS

    ref = _ref({0: [30, 20, 10], 1: [25, 15]})
    right = ref.cls.astype(np.int64).copy()
    half = right.copy()
    crops = np.nonzero(ref.cls == 1)[0]
    half[crops[::2]] = ANOTHER_CLASS  # half the crops mapped as, say, rangeland
    full, part = score(right, ref, CLASSES), score(half, ref, CLASSES)
    assert full["macro_f1"] == pytest.approx(1.0) and full.get("another_class_pixels") is None
    assert part["another_class_pixels"] == [0, 20] and part["pixels"] == len(ref) and part["unscored_pixels"] == 0
    assert part["per_class"][1]["recall"] == pytest.approx(0.5) and part["oa"] == pytest.approx(80 / 100)
    assert part["macro_f1"] == pytest.approx((1.0 + 2 / 3) / 2, abs=1e-4)
    # mIoU over the user's two classes, as macro-F1 (QA: the "another class" column was a third class of IoU 0)
    assert part["miou"] == pytest.approx((1.0 + 0.5) / 2, abs=1e-4)
    cms = polygon_confusions(half, ref, 2)
    assert cms[:, 1, 2].sum() == 20 and macro_f1_of(cms.sum(0)) == pytest.approx(part["macro_f1"], abs=1e-4)


def test_weights_keep_each_class_polygon_count():
    group_class = np.array([0, 0, 0, 1, 1, 2])
    w = polygon_weights(group_class, 500, np.random.default_rng(1))
    assert w.shape == (500, 6)
    assert (w[:, :3].sum(1) == 3).all() and (w[:, 3:5].sum(1) == 2).all() and (w[:, 5] == 1).all()
    assert len({tuple(r) for r in w[:, :3]}) > 5  # resampled, not fixed
    assert (polygon_weights(group_class, 500, np.random.default_rng(1)) == w).all()


def test_perfect_map_has_no_spread_and_polygon_errors_do():
    ref = _ref({0: [50, 50, 50], 1: [50, 50, 50]})
    right = ref.cls.astype(np.int64)
    wrong_polygon = right.copy()
    wrong_polygon[ref.group == 0] = 1  # one whole trees polygon called crops
    out = bootstrap({"finetuned": right, "rf_optical_sar": wrong_polygon}, ref, 2, seed=0)
    assert out["arms"]["finetuned"] == [1.0, 1.0]
    lo, hi = out["arms"]["rf_optical_sar"]
    point = score(wrong_polygon, ref, CLASSES)["macro_f1"]
    assert lo < point < hi or hi == pytest.approx(1.0)
    # the resampling draws whole polygons: drawing the wrong polygon three times gives macro-F1 1/3 (trees never
    # right); drawing it not at all gives 1.0
    assert lo < 0.5 and hi == pytest.approx(1.0)
    d_lo, d_hi = out["differences"]["finetuned - rf_optical_sar"]
    assert d_lo == pytest.approx(0.0) and d_hi > 0.5
    assert out["single_polygon_classes"] == []


def test_identical_models_differ_by_exactly_zero():
    rng = np.random.default_rng(0)
    ref = _ref({0: [10, 12, 9, 30], 1: [8, 40, 11]})
    pred = rng.integers(0, 2, len(ref))
    out = bootstrap({"finetuned": pred, "untuned": pred.copy()}, ref, 2, seed=4)
    assert out["differences"]["finetuned - untuned"] == [0.0, 0.0]


def test_one_polygon_per_class_gives_no_interval():
    ref = _ref({0: [40], 1: [40]})
    out = bootstrap({"finetuned": ref.cls.astype(np.int64)}, ref, 2, seed=0)
    assert out["arms"] == {"finetuned": None} and out["single_polygon_classes"] == [0, 1]
    from claire.claire_plugin.core.training.spread import spread_note

    assert "2 classes have a single held-out polygon" in spread_note(out)


def test_a_class_with_one_polygon_gives_no_interval_and_the_sentence_decides_nothing():
    """A class with one held-out polygon cannot move in a resampling: the intervals came out 0.37-0.37 for a
    model whose score moved from 0.32 to 0.62 between seeds, and differences were called decided on them."""
    ref = _ref({0: [40], 1: [40, 40, 40]})
    pred = ref.cls.astype(np.int64)
    pred[:20] = 1  # half of the one trees polygon wrong
    other = ref.cls.astype(np.int64)
    out = bootstrap({"finetuned": pred, "rf_optical_sar": other}, ref, 2, seed=0)
    assert out["single_polygon_classes"] == [0] and out["draws"] == 0
    assert out["arms"] == {"finetuned": None, "rf_optical_sar": None} and out["differences"] == {}
    report = {"classes": [{"name": "trees"}, {"name": "crops"}],
              "arms": {"finetuned": {"clear": score(pred, ref, CLASSES)},
                       "rf_optical_sar": {"clear": score(other, ref, CLASSES)}},
              "spread": {"clear": out}}
    text = spread_sentence(report)
    assert "is not decided by these held-out polygons" in text and "1 class has a single held-out polygon" in text
    assert "below" not in text and "above" not in text


def test_sentence_says_when_the_polygons_cannot_tell():
    ref = _ref({0: [30, 30, 30], 1: [30, 30, 30]})
    a = ref.cls.astype(np.int64)
    a[ref.group == 0] = 1
    b = ref.cls.astype(np.int64)
    b[ref.group == 3] = 0
    out = bootstrap({"finetuned": a, "rf_optical_sar": b}, ref, 2, seed=0)
    report = {"classes": [{"name": "trees"}, {"name": "crops"}],
              "arms": {"finetuned": {"clear": score(a, ref, CLASSES)}, "rf_optical_sar": {"clear": score(b, ref, CLASSES)}},
              "spread": {"clear": out}}
    lo, hi = out["differences"]["finetuned - rf_optical_sar"]
    assert lo < 0 < hi
    assert "cannot be told apart" in spread_sentence(report)
    del report["spread"]
    assert spread_sentence(report) is None


def test_the_draws_are_seeded_and_scored_in_chunks_alike():
    from claire.claire_plugin.core.training import spread

    rng = np.random.default_rng(5)
    ref = _ref({0: [12, 30, 9, 14, 20], 1: [25, 8, 16, 11]})
    preds = {"finetuned": rng.integers(0, 2, len(ref)), "rf_optical_sar": rng.integers(0, 2, len(ref))}
    a = bootstrap(preds, ref, 2, seed=3, draws=600)
    assert a == bootstrap(preds, ref, 2, seed=3, draws=600)
    assert a != bootstrap(preds, ref, 2, seed=4, draws=600)
    old = spread.CHUNK
    try:
        spread.CHUNK = 600  # one chunk: the same percentiles up to sampling (different draws, same distribution)
        b = bootstrap(preds, ref, 2, seed=3, draws=600)
    finally:
        spread.CHUNK = old
    assert abs(a["arms"]["finetuned"][0] - b["arms"]["finetuned"][0]) < 0.1


def test_no_scored_pixel_gives_no_interval_not_nan():
    import json

    ref = _ref({0: [10, 10], 1: [10, 10]})
    out = bootstrap({"finetuned": np.full(len(ref), -1)}, ref, 2, seed=0)
    assert out["arms"]["finetuned"] is None
    json.dumps(out, allow_nan=False)  # the report stays valid JSON
