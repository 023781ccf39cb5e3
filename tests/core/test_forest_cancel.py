"""The random-forest baseline grown in steps so that a cancel stops it (QA round 20: 11-35 s after a cancel on a
whole scene, inside scikit-learn), and the same forest as grown at once."""
import numpy as np
import pytest

from claire.claire_plugin.core.errors import CancelledError
from claire.claire_plugin.core.training import baseline


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    return x, (x[:, 0] + rng.normal(size=400) > 0).astype(int) + (x[:, 1] > 1)


def test_a_forest_grown_in_steps_is_the_forest_grown_at_once():
    x, y = _data()
    once = baseline.fit_forest(x, y, 3, 45)
    steps = baseline.fit_forest(x, y, 3, 45, is_cancelled=lambda: False)
    assert len(steps.estimators_) == 45 and not steps.warm_start
    assert np.array_equal(once.predict_proba(x), steps.predict_proba(x))


def test_a_cancel_stops_the_forest_between_steps(monkeypatch):
    x, y = _data()
    looks = []

    def asked() -> bool:
        looks.append(1)
        return len(looks) > 2

    with pytest.raises(CancelledError, match="no checkpoint was written"):
        baseline.fit_forest(x, y, 3, 200, is_cancelled=asked)
    assert len(looks) == 3  # two steps of TREES_PER_LOOK trees, then the stop


def test_the_forest_grows_on_the_trainings_threads_and_predicts_alike(monkeypatch):
    """Round 21: the forests grew in one thread (four forests: a third of the time after a whole-scene training's
    budget); they grow on torch's thread count now, the same forest, and predict in one thread (several add the
    trees' probabilities in any order)."""
    import torch

    x, y = _data()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    grown = {}
    real = baseline._grow

    def spy(rf, *a, **k):
        grown["jobs"] = rf.n_jobs
        return real(rf, *a, **k)

    monkeypatch.setattr(baseline, "_grow", spy)
    many = baseline.fit_forest(x, y, 3, 45, is_cancelled=lambda: False)
    one = baseline.fit_forest(x, y, 3, 45, jobs=1)
    assert grown["jobs"] == 3 and many.n_jobs == one.n_jobs == 1
    assert np.array_equal(many.predict_proba(x), one.predict_proba(x))
