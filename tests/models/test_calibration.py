"""Tempering a network's confidence: the fit, the transform the engine applies, the error measure, the card."""
import numpy as np
import pytest

from claire.models.calibration import (
    TEMPERATURE_RANGE,
    calibration_error,
    class_balanced_weights,
    fit_temperature,
    nll,
    tempered_confidence,
    tempered_probabilities,
)
from claire.models.card_schema import card_problem, card_temperature
from claire.tests.fixtures.helpers import tiny_card


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("true_t", [1.0, 2.5, 6.0])
def test_fit_recovers_the_temperature_the_labels_were_drawn_with(true_t):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (20000, 4))
    p = _softmax(logits / true_t)
    labels = np.array([rng.choice(4, p=row) for row in p])
    got = fit_temperature(logits, labels, np.ones(len(labels)))
    assert got == pytest.approx(true_t, rel=0.08)


def test_fit_never_sharpens_an_underconfident_network():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 0.3, (2000, 3))  # near-uniform probabilities ...
    labels = logits.argmax(1)  # ... yet always right: a lower temperature would fit better
    assert nll(logits, labels, 0.5) < nll(logits, labels, 1.0)
    assert fit_temperature(logits, labels) == TEMPERATURE_RANGE[0]


def test_fit_is_class_balanced_by_default():
    # class 0: 900 px, always right and sure; class 1: 100 px, always wrong and sure
    logits = np.array([[8.0, 0.0]] * 900 + [[8.0, 0.0]] * 100)
    labels = np.array([0] * 900 + [1] * 100)
    balanced = fit_temperature(logits, labels)
    by_pixel = fit_temperature(logits, labels, np.ones(len(labels)))
    assert balanced > by_pixel > 1.0  # the rare class's errors weigh as much as the common class's successes
    w = class_balanced_weights(labels)
    assert w[:900].sum() == pytest.approx(0.5) and w[900:].sum() == pytest.approx(0.5)


def test_tempered_confidence_is_the_softmax_of_tempered_logits_and_keeps_the_class():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 5, (500, 6))
    probs = _softmax(logits).T.reshape(6, 20, 25)  # [K, H, W] as the engine holds them
    for t in (1.0, 1.7, 9.0):
        want = tempered_probabilities(logits, t)
        got = tempered_confidence(probs, t)
        assert np.allclose(got.reshape(-1), want.max(1), atol=1e-5)
        assert np.array_equal(want.argmax(1), logits.argmax(1))  # the map does not change
    assert np.all(tempered_confidence(probs, 4.0) <= probs.max(0) + 1e-6)


def test_calibration_error():
    conf = np.full(1000, 0.95)
    correct = np.r_[np.ones(500), np.zeros(500)]
    assert calibration_error(conf, correct) == pytest.approx(0.45)
    rng = np.random.default_rng(3)
    conf = rng.uniform(0, 1, 200000)
    assert calibration_error(conf, (rng.uniform(0, 1, conf.size) < conf).astype(float)) < 0.01
    w = np.r_[np.full(500, 3.0), np.full(500, 1.0)]  # weights shift the accuracy the bins see
    assert calibration_error(np.full(1000, 0.95), correct, w) == pytest.approx(0.2)


def test_card_temperature_and_its_check():
    card = tiny_card(None, True)
    assert card_temperature(card) == 1.0 and card_problem(card) is None
    card["calibration"] = {"temperature": 3.5, "note": "x"}
    assert card_temperature(card) == 3.5 and card_problem(card) is None
    for bad in (0.5, float("nan"), "3", None):
        card["calibration"] = {"temperature": bad}
        assert "calibration.temperature" in card_problem(card)
    card["calibration"] = [3.5]
    assert "'calibration'" in card_problem(card)


def test_card_temperature_from_sar_alone_and_its_check():
    card = tiny_card(None, True)
    card["calibration"] = {"temperature": 1.5, "sar_only": {"temperature": 4.0, "note": "y"}}
    assert card_temperature(card) == 1.5 and card_temperature(card, sar_only=True) == 4.0
    assert card_problem(card) is None
    card["calibration"] = {"temperature": 1.5}
    assert card_temperature(card, sar_only=True) == 1.5, "without one, the card's own temperature"
    for bad in (0.5, None):
        card["calibration"] = {"temperature": 1.5, "sar_only": {"temperature": bad}}
        assert "calibration.sar_only.temperature" in card_problem(card)
    card["calibration"] = {"temperature": 1.5, "sar_only": 4.0}
    assert "'calibration.sar_only'" in card_problem(card)


def test_a_temperature_per_pixel_tempers_each_pixel_with_its_own():
    """The SAR-alone temperature map (engine.post): each pixel as the scalar call with its own temperature (QA round
    24's mutation check: a map collapsed to its first value passed)."""
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(5), size=(4, 6)).transpose(2, 0, 1).astype(np.float32)
    temps = np.where(np.arange(24).reshape(4, 6) % 2 == 0, 1.0, 2.5).astype(np.float32)
    got = tempered_confidence(probs, temps)
    for t in (1.0, 2.5):
        np.testing.assert_allclose(got[temps == t], tempered_confidence(probs, t)[temps == t], rtol=1e-5)
