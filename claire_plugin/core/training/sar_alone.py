"""What a trained model maps where the optical is missing (swath edges, clouds masked to nodata): the engine
classifies those pixels from SAR alone (a cloud-gated network's optical input 0 and its cloud input 1,
`fill_from_sar`). Scored on the same held-out pixels as the other conditions, for the run's cloud-gated networks,
next to a random forest trained on the SAR values alone: the answer to "what does my map say under full cloud?".
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np

from .baseline import cap_pixels, fit_forest, forest_predict
from .scorecard import score
from .windows import WindowSet, predict_pixels, predict_sar_only, sample_pixels, uses_cloud

SCORED = ("the optical missing at every held-out pixel: the networks decide from SAR alone, as the map does in "
          "optical gaps (fill from SAR); the forest sees the SAR values only")
NOT_GATED = ("not scored: the network has no cloud gate, so its map leaves pixels without optical data empty "
             "instead of classifying them from SAR")


def sar_only_scores(val_windows: WindowSet, split, classes: Sequence, nets: Sequence[tuple], seed: int,
                    trees: int = 0, max_pixels: int = 50000, device: str = "cpu") -> Dict[str, Any]:
    """{"arms": {name: scores}, "note": text}: each cloud-gated network of `nets` ((name, model, channel map))
    from SAR alone at the validation pixels of `split`, and with `trees` > 0 a random forest of that many trees
    fitted on the SAR values of (at most `max_pixels`) training pixels; no arms and why when no network is
    cloud-gated."""
    gated = [(name, model, cmap) for name, model, cmap in nets if uses_cloud(model)]
    if not gated:
        return {"arms": {}, "note": NOT_GATED}
    scene = val_windows.scene
    preds = predict_sar_only(val_windows, [(model, cmap) for _, model, cmap in gated], device)
    arms = {name: score(p, split.val, classes) for (name, _, _), p in zip(gated, preds)}
    if trees > 0:
        sar = slice(len(scene.oc.indices), None)
        train = split.train.subset(cap_pixels(len(split.train), max_pixels, seed))
        _, f_train = sample_pixels(scene, train)
        rf = fit_forest(f_train, train.cls.astype(np.int64), seed, trees, sar)
        _, f_val = predict_pixels(val_windows)[False]
        arms["rf_sar"] = score(forest_predict(rf, f_val, sar), split.val, classes)
    return {"arms": arms, "note": SCORED}
