"""What a trained model maps where the optical is missing (swath edges, clouds masked to nodata): the engine
classifies those pixels from SAR alone (a cloud-gated network's optical input 0 and its cloud input 1,
`fill_from_sar`). Scored on the same held-out pixels as the other conditions, for the run's cloud-gated networks,
next to a random forest trained on the SAR values alone: the answer to "what does my map say under full cloud?".
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from .baseline import cap_pixels, fit_forest, forest_predict
from .calibrate import calibrate, calibration_note
from .labels import LabelPixels
from .scorecard import score
from .windows import WindowSet, predict_pixels, predict_sar_only, sample_pixels, uses_cloud

SCORED = ("the optical missing at every held-out pixel: the networks decide from SAR alone, as the map does in "
          "optical gaps (fill from SAR); the forest sees the SAR values only")
#: What the SAR-alone calibration is fitted on (its key in the calibration and the card's `calibration`).
SAR_ALONE = "sar_only"
NOT_GATED = ("not scored: the network has no cloud gate, so its map leaves pixels without optical data empty "
             "instead of classifying them from SAR")


def sar_only_scores(val_windows: WindowSet, split, classes: Sequence, nets: Sequence[tuple], seed: int,
                    trees: int = 0, max_pixels: int = 50000, device: str = "cpu",
                    is_cancelled: Optional[Callable[[], bool]] = None,
                    sample: Optional[Tuple[LabelPixels, np.ndarray]] = None) -> Dict[str, Any]:
    """{"arms": {name: scores}, "note": text, "calibration", "calibration_note"}: each cloud-gated network of `nets`
    ((name, model, channel map)) from SAR alone at the validation pixels of `split`, and with `trees` > 0 a random
    forest of that many trees fitted on the SAR values of (at most `max_pixels`) training pixels (those of `sample`,
    (pixels, physical values), where the run's other forests read them already); the fine-tuned
    network's confidence from SAR alone calibrated on the same pixels (core.training.calibrate; what the engine
    tempers the confidence of pixels classified from SAR alone with); no arms and why when no network is
    cloud-gated."""
    gated = [(name, model, cmap) for name, model, cmap in nets if uses_cloud(model)]
    if not gated:
        return {"arms": {}, "note": NOT_GATED}
    scene = val_windows.scene
    logits: Dict[bool, np.ndarray] = {}
    preds = predict_sar_only(val_windows, [(model, cmap) for _, model, cmap in gated], device, logits, is_cancelled)
    arms = {name: score(p, split.val, classes) for (name, _, _), p in zip(gated, preds)}
    calibration = calibrate(logits, split.val, seed, SAR_ALONE, "the optical missing (SAR alone)") \
        if gated[0][0] == "finetuned" else None
    if trees > 0:
        sar = slice(len(scene.oc.indices), None)
        if sample is None:
            train = split.train.subset(cap_pixels(len(split.train), max_pixels, seed))
            sample = train, sample_pixels(scene, train, is_cancelled=is_cancelled)[1]
        train, f_train = sample
        rf = fit_forest(f_train, train.cls.astype(np.int64), seed, trees, sar, is_cancelled=is_cancelled)
        _, f_val = predict_pixels(val_windows, is_cancelled=is_cancelled)[False]
        arms["rf_sar"] = score(forest_predict(rf, f_val, sar), split.val, classes)
    return {"arms": arms, "note": SCORED, "calibration": calibration,
            "calibration_note": calibration_note(calibration, "the network from SAR alone", SAR_ALONE,
                                                 split.val.units, what="SAR-alone confidence")}
