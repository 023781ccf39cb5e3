"""The random-forest baseline: the same training pixels, per-pixel physical values as features.

What users of pixel classifiers (SCP, dzetsaka, OTB) get: a scikit-learn random forest with balanced
class weights on the optical bands (and the SAR bands), no spatial context.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from ..errors import ClaireError

#: Trees grown between two looks at a cancel (the same forest as grown at once: scikit-learn's warm start draws the
#: earlier trees' seeds first).
TREES_PER_LOOK = 20


def fit_forest(features: np.ndarray, classes: np.ndarray, seed: int = 0, trees: int = 200,
               columns: Optional[slice] = None, jobs: Optional[int] = None,
               is_cancelled: Optional[Callable[[], bool]] = None):
    """A fitted RandomForestClassifier on the rows of `features` with finite values (`columns` of them), its trees
    grown by `jobs` threads (default: torch's thread count, the one the training ran with); with `is_cancelled`,
    grown TREES_PER_LOOK trees at a time, stopping (CancelledError) between them once it says so. The forest is
    returned predicting in one thread: several add their trees' probabilities in any order, and a tie could then
    go either way from run to run."""
    try:
        from sklearn.ensemble import RandomForestClassifier
    except ImportError as exc:
        raise ClaireError("the random-forest baseline needs scikit-learn; install it into the plugin's "
                          "environment (pip install scikit-learn) or run with --no-baseline") from exc
    x = features if columns is None else features[:, columns]
    ok = np.isfinite(x).all(axis=1)
    if not ok.any():
        raise ClaireError("no training pixel has valid optical and SAR values; check the rasters' nodata")
    if jobs is None:
        import torch

        jobs = torch.get_num_threads()
    rf = RandomForestClassifier(n_estimators=trees, class_weight="balanced", random_state=seed, n_jobs=max(1, jobs))
    try:
        if is_cancelled is None:
            rf.fit(x[ok], classes[ok])
        else:
            _grow(rf, x[ok], classes[ok], trees, is_cancelled)
    except MemoryError:  # the network trained fine: its batch is not the cause
        raise ClaireError(f"the random-forest baseline ran out of memory ({trees} trees on {int(ok.sum())} "
                          f"training pixels); use --rf-trees {max(1, trees // 4)}, or --no-baseline, or close other "
                          "programs. Nothing was written") from None
    rf.set_params(n_jobs=1)
    return rf


def _grow(rf, x: np.ndarray, y: np.ndarray, trees: int, is_cancelled: Callable[[], bool]) -> None:
    """Fit `rf` TREES_PER_LOOK trees at a time (warm start), looking at `is_cancelled` before each step."""
    import warnings

    from .windows import stop_if_cancelled

    rf.set_params(warm_start=True)
    with warnings.catch_warnings():  # "balanced ... not recommended for warm_start": the data is the same each time
        warnings.simplefilter("ignore", UserWarning)
        for n in range(min(TREES_PER_LOOK, trees), trees + TREES_PER_LOOK, TREES_PER_LOOK):
            stop_if_cancelled(is_cancelled)
            rf.set_params(n_estimators=min(n, trees))
            rf.fit(x, y)
            if n >= trees:
                break
    rf.set_params(warm_start=False)


def forest_predict(rf, features: np.ndarray, columns: Optional[slice] = None,
                   snow: Optional[Tuple[Sequence[int], np.ndarray]] = None) -> np.ndarray:
    """Class indices for every row; -1 where a value is missing (no prediction there). `snow`: (the snow / ice
    classes, models.cloud.snow_possible per row): the engine's snow check on the forest's probabilities."""
    x = features if columns is None else features[:, columns]
    ok = np.isfinite(x).all(axis=1)
    out = np.full(x.shape[0], -1, np.int64)
    if not ok.any():
        return out
    if not snow or not snow[0]:
        out[ok] = rf.predict(x[ok])
        return out
    from ....models.cloud import rule_out_snow

    proba = rf.predict_proba(x[ok])
    wanted = set(snow[0])
    rule_out_snow(proba.T, [c for c, k in enumerate(rf.classes_) if int(k) in wanted], snow[1][ok])
    out[ok] = rf.classes_[proba.argmax(1)]
    return out


def cap_pixels(n: int, most: int, seed: int) -> np.ndarray:
    """Sorted positions of at most `most` of `n` items (seeded uniform sample; all when n <= most)."""
    if n <= most:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, most, replace=False))
