import numpy as np
import pytest

from claire.models.metrics import confusion_matrix, metrics_from_confusion
from claire.models.palette import class_colors


def test_confusion_matrix_rows_are_reference():
    ref = np.array([0, 0, 1, 1, 2, 255])
    pred = np.array([0, 1, 1, 1, 0, 2])
    cm = confusion_matrix(pred, ref, 3, ignore_index=255)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_metrics_hand_computed():
    cm = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    m = metrics_from_confusion(cm, ["a", "b", "c"])
    assert m["oa"] == pytest.approx(3 / 5)
    # IoU a = 1/(2+2-1)=1/3, b = 2/(2+3-2)=2/3, c = 0/(1+0-0)=0
    assert m["miou"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    pe = (2 * 2 + 2 * 3 + 1 * 0) / 25
    assert m["kappa"] == pytest.approx((0.6 - pe) / (1 - pe))
    a = m["per_class"][0]
    assert a["precision"] == pytest.approx(0.5) and a["recall"] == pytest.approx(0.5)
    assert a["f1"] == pytest.approx(0.5) and a["support"] == 2
    assert m["per_class"][2]["precision"] is None  # never predicted


def test_absent_class_left_out_of_miou():
    cm = np.array([[5, 0], [0, 0]])
    m = metrics_from_confusion(cm, ["a", "b"])
    assert m["miou"] == pytest.approx(1.0) and m["per_class"][1]["iou"] is None
    assert m["kappa"] == pytest.approx(1.0)


def test_palette_keeps_given_and_fills_missing_deterministically():
    card = {"classes": [{"index": 0, "color": "#419BDF"}, {"index": 1}, {"index": 2, "color": "bad"}]}
    a, b = class_colors(card), class_colors(card)
    assert a == b and a[0] == "#419bdf"
    assert len(set(a)) == 3 and all(len(c) == 7 for c in a)


def test_classes_with_colors_sorts_by_index_and_keeps_card_colours():
    from claire.models.palette import classes_with_colors
    card = {"classes": [{"index": 1, "value": 7, "name": "b"},
                        {"index": 0, "value": 3, "name": "a", "color": "#ABCDEF"}]}
    out = classes_with_colors(card)
    assert [c["name"] for c in out] == ["a", "b"] and out[0]["color"] == "#abcdef"
    assert [c["color"] for c in out] == class_colors(card) and "color" not in card["classes"][0]


def test_added_confusions_are_those_the_baseline_does_not_share():
    from claire.models.metrics import added_confusions

    per_class = [{"name": n} for n in ("bare ground", "trees", "water")]
    base = {"per_class": per_class, "confusion": [[100, 0, 0], [0, 60, 40], [10, 0, 90]]}
    alone = {"per_class": per_class, "confusion": [[70, 0, 30], [0, 55, 45], [80, 0, 20]]}
    got = added_confusions(alone, base)
    # water -> bare ground 80 % (10 % before) first, then bare ground -> water 30 % (0 % before); trees -> water
    # (45 % against 40 %) is a confusion the baseline has too
    assert [(p["reference"], p["predicted"]) for p in got] == [("water", "bare ground"), ("bare ground", "water")]
    assert got[0]["share"] == 0.8 and got[0]["baseline_share"] == 0.1 and got[0]["pixels"] == 80
    assert added_confusions(alone, base, limit=1) == got[:1]
    assert [p["reference"] for p in added_confusions(alone, limit=3)] == ["water", "trees", "bare ground"]  # no baseline
    assert added_confusions({"per_class": per_class, "confusion": [[1, 0], [0, 1]]}) == []  # shapes disagree
    assert added_confusions({}) == []


def test_generated_colours_keep_away_from_the_legends_colours():
    """QA (new classes): vineyard was drawn at Delta E 25 from built area's red, a wet meadow at 25 from the trees'
    green, greenhouses at 21 from crops: hard to tell apart on the map. Generated colours keep MIN_DELTA_E from every
    colour already in the legend (the card's and those generated before)."""
    from claire.models.palette import MIN_DELTA_E, _delta_e, class_colors

    given = [("water", "#419bdf"), ("trees", "#397d49"), ("crops", "#e49635"), ("built area", "#c4281b")]
    new = ["Greenhouses", "grassland", "prairie humide", "vineyard"]
    card = {"classes": [{"index": i, "value": i + 1, "name": n, "color": c} for i, (n, c) in enumerate(given)]
            + [{"index": 4 + i, "value": 10 + i, "name": n} for i, n in enumerate(new)]}
    colors = class_colors(card)
    assert colors[:4] == [c for _, c in given] and colors == class_colors(card)  # deterministic
    assert min(_delta_e(a, b) for i, a in enumerate(colors) for b in colors[i + 1:]) >= MIN_DELTA_E
    assert round(_delta_e("#000000", "#ffffff")) == 100


def test_generated_colours_stay_apart_for_red_green_colour_blind_users():
    """QA (themes): ten generated class colours kept Delta E 30 for normal vision only; a deuteranope saw two of
    them 6.8 apart. They keep MIN_DELTA_E_CVD under protanopia and deuteranopia (Machado et al. 2009) too."""
    import itertools

    from claire.models.palette import _CVD, MIN_DELTA_E, MIN_DELTA_E_CVD, _delta_e, class_colors

    colors = class_colors({"classes": [{"name": f"c{i}", "value": i} for i in range(10)]})
    assert len(set(colors)) == 10
    for a, b in itertools.combinations(colors, 2):
        assert _delta_e(a, b) >= MIN_DELTA_E, (a, b)
        assert all(_delta_e(a, b, k) >= MIN_DELTA_E_CVD for k in range(len(_CVD))), (a, b)
    assert _delta_e("#419bdf", "#7a87c6", 1) < MIN_DELTA_E_CVD  # the simulation sees the bundled legend's close pair


def test_confusion_matrix_skips_what_is_no_class():
    """Mutation audit (QA round 14): a prediction of -1 (no prediction) was counted in the previous row's last
    column, and a reference value equal to the class count raised instead of being skipped."""
    assert confusion_matrix([0, 1, -1, 1], [0, 1, 1, 1], 3).tolist() == [[1, 0, 0], [0, 2, 0], [0, 0, 0]]
    assert confusion_matrix([0, 1, 1, 0], [0, 1, 1, 2], 2).tolist() == [[1, 0], [0, 2]]


def test_macro_f1_leaves_out_classes_absent_from_the_reference():
    from claire.models.metrics import macro_f1

    assert macro_f1(metrics_from_confusion(np.array([[3, 1], [0, 0]]), ["a", "b"])) == pytest.approx(6 / 7)
    assert macro_f1(metrics_from_confusion(np.diag([5, 5, 0]), ["a", "b", "c"])) == pytest.approx(1.0)


def test_a_confusion_at_the_threshold_is_reported():
    from claire.models.metrics import LOOKALIKE_GAIN, LOOKALIKE_SHARE, added_confusions

    scores = {"per_class": [{"name": "a"}, {"name": "b"}], "confusion": [[75, 25], [0, 100]]}
    found = added_confusions(scores)
    assert [(p["reference"], p["predicted"], p["share"]) for p in found] == [("a", "b", LOOKALIKE_SHARE)]
    gain = {"per_class": scores["per_class"], "confusion": [[85, 15], [0, 100]]}  # 0.25 - 0.15 = the gain exactly
    assert LOOKALIKE_GAIN == pytest.approx(0.10) and len(added_confusions(scores, gain)) == 1


def test_the_palette_measures_distance_as_apart_does():
    """QA round 22: a card of 250 uncoloured classes took 49 s of CPU per run (a Python loop over every pair); the
    choice is vectorised now and must measure what `_apart` defines."""
    import numpy as np

    from claire.models.palette import MIN_DELTA_E, MIN_DELTA_E_CVD, _apart, _seen, generated_color

    scale = np.array([MIN_DELTA_E, MIN_DELTA_E_CVD, MIN_DELTA_E_CVD])
    for a, b in [(generated_color(i), generated_color(j)) for i in range(12) for j in range(i + 1, 12)]:
        vectorised = float((np.sqrt(((_seen(a) - _seen(b)) ** 2).sum(-1)) / scale).min())
        assert abs(vectorised - _apart(a, b)) < 1e-9, (a, b)
    colors = class_colors({"classes": [{"index": i, "value": i + 1, "name": f"c{i}"} for i in range(250)]})
    assert len(set(colors)) == 250
