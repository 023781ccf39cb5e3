"""The forest's weight of the averaged model chosen on held-out polygons (core.training.blend): polygons dealt
into halves per class, the choice (the lowest weight within a margin of the best), and cross-fitted scores that
a choice made on the same polygons cannot flatter."""
import numpy as np

from claire.claire_plugin.core.training.blend import choose_weight, polygon_halves
from claire.claire_plugin.core.training.labels import ClassInfo, LabelPixels
from claire.claire_plugin.core.training.scorecard import score

CLASSES = [ClassInfo(0, 1, "a"), ClassInfo(1, 2, "b")]
WEIGHTS = [0.0, 0.25, 0.5, 0.75, 1.0]


def _val(groups_per_class=(2, 2), px=10):
    cls, group = [], []
    g = 0
    for c, n in enumerate(groups_per_class):
        for _ in range(n):
            cls += [c] * px
            group += [g] * px
            g += 1
    n = len(cls)
    return LabelPixels(np.zeros(n, np.int32), np.arange(n, dtype=np.int32), np.array(cls, np.uint8),
                       np.array(group, np.int32))


def test_polygons_are_dealt_into_halves_per_class():
    val = _val((3, 2))
    halves = polygon_halves(val, seed=0)
    for g in np.unique(val.group):  # a polygon lies in one half
        assert len(set(halves[val.group == g])) == 1
    for c in (0, 1):  # each class with two or more polygons has some in each half
        assert set(halves[val.cls == c]) == {0, 1}
    assert polygon_halves(_val((1,)), seed=0) is None  # one polygon: no halves


def test_cross_fitted_scores_use_the_weight_chosen_on_the_other_half():
    val = _val((2, 2))
    halves = polygon_halves(val, seed=3)
    truth = val.cls.astype(np.int64)
    wrong = 1 - truth
    # on half 0 only the forest alone (weight 1) is right, on half 1 only the network (weight 0)
    cand = [np.where(halves == 1, truth, wrong) for _ in WEIGHTS]
    cand[-1] = np.where(halves == 0, truth, wrong)
    cand[0] = np.where(halves == 1, truth, wrong)
    preds = {"clear": cand, "clouds": cand}
    chosen, crossfit, info = choose_weight(preds, val, CLASSES, WEIGHTS, seed=3, default=0.5)
    # all held-out polygons: every weight is right on one half, a tie, so the lowest
    assert chosen == 0.0
    # each half is scored with the other half's choice, which is wrong on it
    assert [h["weight_chosen_on_the_other_half"] for h in info["halves"]] == [0.0, 1.0]
    assert score(crossfit["clear"], val, CLASSES)["oa"] == 0.0
    assert info["heldout_with_chosen"]["clear"] == score(cand[0], val, CLASSES)["macro_f1"] > 0.3
    assert "cross-fitted" in info["how"]


def test_a_weight_that_helps_on_both_halves_is_chosen_and_scored_as_it_is():
    val = _val((3, 3))
    truth = val.cls.astype(np.int64)
    rng = np.random.default_rng(0)
    noisy = [np.where(rng.random(len(val)) < 0.4, 1 - truth, truth) for _ in WEIGHTS]
    noisy[2] = truth
    chosen, crossfit, info = choose_weight({"clear": noisy}, val, CLASSES, WEIGHTS, seed=1, default=0.5)
    assert chosen == 0.5 and np.array_equal(crossfit["clear"], truth)
    assert [c["weight"] for c in info["candidates"]] == WEIGHTS
    assert max(info["candidates"], key=lambda c: c["mean_macro_f1"])["weight"] == 0.5


def test_too_few_held_out_polygons_keep_the_default_weight():
    val = _val((1,))
    truth = val.cls.astype(np.int64)
    cand = [truth for _ in WEIGHTS]
    chosen, crossfit, info = choose_weight({"clear": cand}, val, CLASSES[:1], WEIGHTS, seed=0, default=0.5)
    assert chosen == 0.5 and info["halves"] is None and "too few held-out polygons" in info["how"]
    assert np.array_equal(crossfit["clear"], truth)


def test_a_higher_weight_must_beat_a_lower_one_by_the_margin():
    from claire.claire_plugin.core.training.blend import MARGIN

    val = _val((4, 4), px=25)  # 200 pixels
    truth = val.cls.astype(np.int64)

    def wrong_on(k):
        p = truth.copy()
        p[:k] = 1 - p[:k]
        return p

    # w = 0 misses 8 pixels, w = 0.25 misses 6: better, but by less than the margin
    cand = [wrong_on(8), wrong_on(6), wrong_on(40), wrong_on(60), wrong_on(80)]
    f1 = [score(c, val, CLASSES)["macro_f1"] for c in cand]
    assert 0 < f1[1] - f1[0] < MARGIN
    assert choose_weight({"clear": cand}, val, CLASSES, WEIGHTS, seed=0, default=0.5)[0] == 0.0
    cand[1] = truth  # now the margin is passed
    assert score(truth, val, CLASSES)["macro_f1"] - f1[0] > MARGIN
    assert choose_weight({"clear": cand}, val, CLASSES, WEIGHTS, seed=0, default=0.5)[0] == 0.25


def test_a_weight_is_chosen_by_the_mean_over_clear_and_clouded_not_the_best_of_them():
    """Weight 0 perfect on the clear input and all wrong under cloud (mean 0.5); weight 1 half right on the clear and
    perfect under cloud (mean 0.75): the mean chooses 1, the best condition alone would tie and take 0."""
    val = _val((2, 2))
    truth = val.cls.astype(np.int64)
    half_right = np.where(np.arange(len(val)) % 2 == 0, truth, 1 - truth)
    preds = {"clear": [truth, half_right], "clouds_60pct": [1 - truth, truth]}
    chosen, _, info = choose_weight(preds, val, CLASSES, [0.0, 1.0], seed=0, default=0.0)
    assert chosen == 1.0
    assert [c["mean_macro_f1"] for c in info["candidates"]] == [0.5, 0.75]
