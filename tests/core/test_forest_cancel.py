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
