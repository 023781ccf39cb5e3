"""Training again from one's own checkpoint: which polygons its scores may be measured on.

A fresh split of the labels an earlier training used holds out polygons that checkpoint trained on; the new
model starts from its weights, so both models' scores on them are flattered. Where the earlier run's
validation layer still exists (its NAME.heldout.gpkg beside it, or the separate layer its card names), the new
run validates on it instead, so that neither model trained on the polygons that score them."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

from .labels import LabelSet


def own_polygon_base(base_card: Optional[Dict[str, Any]], base_path: Optional[str]) -> bool:
    """Whether the base checkpoint is the user's own, trained from polygons or points (not the bundled one)."""
    from ...paths import DEFAULT_CHECKPOINT

    if not base_card or not base_path or os.path.abspath(base_path) == os.path.abspath(DEFAULT_CHECKPOINT):
        return False
    return (base_card.get("training") or {}).get("data") == "polygons"


def same_labels(labels: LabelSet, base_card: Dict[str, Any]) -> bool:
    """Whether `labels` are (a later state of) the labels the base checkpoint trained on: the same features
    read, or a layer of the same file name."""
    was = (base_card.get("training") or {}).get("labels") or {}
    now = labels.source
    if was.get("sha256") and was.get("sha256") == now.get("sha256"):
        return True
    return bool(was.get("path")) and os.path.basename(str(was["path"])) == os.path.basename(str(now.get("path")))


def base_validation(labels: LabelSet, base_card: Optional[Dict[str, Any]], base_path: Optional[str]
                    ) -> Optional[str]:
    """The layer that validated the user's own base checkpoint, when this run's vector labels are the ones it
    trained on and the layer still exists: its held-out layer beside it, else the separate validation layer its
    card names; None otherwise (the bundled checkpoint, labels of another file, a raster)."""
    from .heldout import held_out_path_for

    if labels.source.get("kind") != "vector" or not own_polygon_base(base_card, base_path):
        return None
    if not same_labels(labels, base_card):
        return None
    held_out = held_out_path_for(base_path)
    if os.path.isfile(held_out):
        return held_out
    split = (base_card.get("training") or {}).get("split") or {}
    source = split.get("val_source") if split.get("kind") == "separate layer" else None
    path = source.get("path") if isinstance(source, dict) else None
    return str(path) if path and os.path.isfile(str(path)) else None


def flattered_note(base_path: str, units_many: str, why: str = "") -> str:
    """The label note of a fresh split over labels the user's own base checkpoint trained on."""
    name = os.path.basename(base_path)
    return (f"these held-out {units_many} were drawn afresh from labels that {name} trained on{why}: some of them "
            f"trained the weights this model starts from, so its held-out scores (and {name}'s) are optimistic; "
            f"to score it honestly, validate on the layer that validated {name} (--validation NAME.heldout.gpkg; "
            f"\"Validate on\" in the Train tab)")
