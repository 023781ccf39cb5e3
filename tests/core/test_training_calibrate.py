"""core.training.calibrate: a temperature is written only where the cross-fitted check does not find it worse."""
from __future__ import annotations

import numpy as np

from claire.claire_plugin.core.training import calibrate as cal_module
from claire.claire_plugin.core.training.labels import LabelPixels
from claire.tests.fixtures.helpers import polygon_pixels


def _val(polygons_per_class: int = 4, size: int = 50) -> LabelPixels:
    return polygon_pixels({0: [size] * polygons_per_class, 1: [size] * polygons_per_class})


def _calibrated_logits(val: LabelPixels, rng) -> np.ndarray:
    """Logits whose confidence matches how often they are right (about 80 %)."""
    right = rng.random(len(val)) < 0.8
    top = np.where(right, val.cls, 1 - val.cls)
    logits = np.zeros((len(val), 2))
    logits[np.arange(len(val)), top] = np.log(4.0)  # softmax: 0.8 on the top class
    return logits


def test_a_temperature_the_cross_fitted_check_finds_worse_is_not_applied(monkeypatch):
    """A reviewer measured the tempered confidence worse calibrated than the untempered (per pixel 0.117 -> 0.27)
    while the report's own cross-fitted check said so too, and the temperature was written anyway."""
    val = _val()
    logits = _calibrated_logits(val, np.random.default_rng(0))
    monkeypatch.setattr(cal_module, "fit_temperature", lambda *a, **k: 4.0)  # a fit that flattens the confidence
    out = cal_module.calibrate({False: logits}, val, seed=0)
    assert out["cross_fitted"] and out["fitted_temperature"] == 4.0 and out["temperature"] == 1.0
    check = out["clear"]
    assert check["after"]["calibration_error"] > check["before"]["calibration_error"]
    note = cal_module.calibration_note(out)
    assert note.startswith("confidence not tempered: the temperature fitted on the held-out polygons (4)")
    assert cal_module.card_calibration(out, note)["temperature"] == 1.0
    # overconfident logits: tempering helps on both halves, and is applied
    over = logits * 3
    monkeypatch.setattr(cal_module, "fit_temperature", lambda *a, **k: 3.0)
    out = cal_module.calibrate({False: over}, val, seed=0)
    assert out["temperature"] == 3.0 and "fitted_temperature" not in out
    assert cal_module.calibration_note(out).startswith("confidence tempered")


def test_a_check_on_one_polygon_per_class_and_half_does_not_overrule_the_fit_but_is_said(monkeypatch):
    """With a class holding one polygon in a half the cross-fitted check was wrong in 2 of 9 whole-site runs
    (docs/train_from_polygons.md): the temperature stays, and the note says what the check found."""
    val = _val(polygons_per_class=2)  # one polygon per class in each half
    logits = _calibrated_logits(val, np.random.default_rng(0))
    monkeypatch.setattr(cal_module, "fit_temperature", lambda *a, **k: 4.0)
    out = cal_module.calibrate({False: logits}, val, seed=0)
    assert out["temperature"] == 4.0 and out["check_worse_on_few"] and "fitted_temperature" not in out
    note = cal_module.calibration_note(out)
    assert note.startswith("confidence tempered") and "the cross-fitted check found it worse calibrated" in note


def test_after_is_cross_fitted_with_the_other_halfs_temperature():
    """'after' tempers each half of the held-out polygons with the temperature fitted on the other half (not its
    own, not the one fitted on every pixel): one half overconfident, the other calibrated."""
    from claire.claire_plugin.core.training.blend import polygon_halves
    from claire.models.calibration import fit_temperature

    val = _val(polygons_per_class=4, size=40)
    cls = val.cls.astype(np.int64)
    halves = polygon_halves(val, 0)
    right = np.zeros(len(val), bool)
    for g in np.unique(val.group):  # 28 of each polygon's 40 pixels right: 70 %
        right[np.nonzero(val.group == g)[0][:28]] = True
    top = np.where(right, cls, 1 - cls)
    margin = np.where(halves == 0, 6.0, np.log(0.7 / 0.3))  # half 0: 99.8 % sure; half 1: 70 %, as right
    logits = np.zeros((len(val), 2))
    logits[np.arange(len(val)), top] = margin
    t_from = {h: fit_temperature(logits[halves == h], cls[halves == h]) for h in (0, 1)}
    assert t_from[0] > 3.0 and t_from[1] < 1.5
    out = cal_module.calibrate({False: logits}, val, seed=0)
    crossed = np.where(halves == 0, t_from[1], t_from[0])
    assert out["cross_fitted"]
    assert out["clear"]["after"] == cal_module._measures(logits, cls, crossed)
    assert out["clear"]["after"] != cal_module._measures(logits, cls, np.where(halves == 0, t_from[0], t_from[1]))
    assert out["clear"]["after"] != cal_module._measures(logits, cls, np.full(len(val), fit_temperature(logits, cls)))


def test_the_class_balanced_calibration_error_weighs_each_class_alike():
    """30 pixels of class 0 right at 80 %, 10 of class 1 half right at 80 %: class-balanced the accuracy is 75 %
    (error 0.05), per pixel 87.5 % (error 0.075)."""
    val = polygon_pixels({0: [15, 15], 1: [4, 6]})
    cls = val.cls.astype(np.int64)
    top = cls.copy()
    top[np.nonzero(cls == 1)[0][:5]] = 0  # five class-1 pixels wrong
    logits = np.zeros((len(val), 2))
    logits[np.arange(len(val)), top] = np.log(4.0)  # softmax: 0.8 on the top class
    before = cal_module.calibrate({False: logits}, val, seed=0)["clear"]["before"]
    assert before == {"mean_confidence": 0.8, "accuracy": 0.75, "calibration_error": 0.05,
                      "calibration_error_per_pixel": 0.075}


def test_held_out_labels_without_a_channel_in_the_network_are_left_out():
    """A class the network has no channel for (its index >= the logits' width) is skipped, not an IndexError."""
    val = polygon_pixels({0: [10, 10], 1: [10, 10], 2: [10, 10]})
    logits = np.zeros((len(val), 2))
    logits[np.arange(len(val)), np.minimum(val.cls, 1)] = 2.0
    out = cal_module.calibrate({False: logits, True: logits}, val, seed=0)
    assert out["pixels"] == 40 and out["clear"]["before"]["accuracy"] == 1.0


def test_an_under_confident_model_is_not_said_to_match_its_accuracy():
    """A temperature of at least 1 can only lower confidence, so an under-confident model keeps temperature 1; the
    note said its 71 % 'matched its accuracy 86 % well enough' (QA round 16). A calibrated one still matches."""
    val = _val()
    matched = {"temperature": 1.0, "clear": {"before": {"mean_confidence": 0.84, "accuracy": 0.86}, "after": {}}}
    assert "84% matched its accuracy 86% well enough" in cal_module.calibration_note(matched)
    right = np.random.default_rng(1).random(len(val)) < 0.9  # right 90 % of the time, saying 60 %
    top = np.where(right, val.cls, 1 - val.cls)
    under = np.zeros((len(val), 2))
    under[np.arange(len(val)), top] = np.log(1.5)
    out = cal_module.calibrate({False: under}, val, seed=0)
    note = cal_module.calibration_note(out)
    assert out["temperature"] == 1.0 and "was below its accuracy" in note and "matched" not in note
    assert "60%" in note and "understates" in note


def test_an_over_confident_model_left_at_temperature_1_is_not_said_to_match():
    """Fix check of round 17: a network saying 70 % where it was right on 50 %, left untempered, was said to have
    'matched its accuracy well enough'."""
    over = {"temperature": 1.0, "clear": {"before": {"mean_confidence": 0.70, "accuracy": 0.50}, "after": {}}}
    note = cal_module.calibration_note(over)
    assert "70% was above its accuracy 50%" in note and "overstatement" in note and "matched" not in note


def test_an_under_confident_model_is_not_tempered_lower_even_where_the_likelihood_prefers_it(monkeypatch):
    """QA round 21 (QGIS 3.40 walk): a network saying 72 % where it was right on 81 % got a temperature of 1.04
    (the class-balanced likelihood's choice), its confidence lowered to 65 %, and the note read "temperature 1"."""
    val = _val(polygons_per_class=2)  # one polygon per class and half: the check alone would not overrule it
    right = np.random.default_rng(1).random(len(val)) < 0.9
    top = np.where(right, val.cls, 1 - val.cls)
    under = np.zeros((len(val), 2))
    under[np.arange(len(val)), top] = np.log(1.5)  # says 60 %
    monkeypatch.setattr(cal_module, "fit_temperature", lambda *a, **k: 1.0431)
    out = cal_module.calibrate({False: under}, val, seed=0)
    assert out["temperature"] == 1.0 and out["fitted_temperature"] == 1.0431 and out["under_confident"]
    note = cal_module.calibration_note(out)
    assert note.startswith("confidence not tempered") and "(1.04) would lower it further" in note, note
    assert cal_module.card_calibration(out, note)["temperature"] == 1.0
    tempered = {"temperature": 1.0431, "cross_fitted": True,
                "clear": {"before": {"mean_confidence": 0.8, "accuracy": 0.7}, "after": {"mean_confidence": 0.7}}}
    assert "(temperature 1.04;" in cal_module.calibration_note(tempered)
