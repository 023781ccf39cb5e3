"""Training again from one's own checkpoint: which polygons may score it.

A checkpoint trained from polygons records, by a digest of each geometry as stored, the polygons that trained it
and those that validated it (`split_shapes` on its card). A run started from it over the same layer holds out
the polygons that validated it that the layer still has (their classes as the layer has them now), draws the
other classes' held-out polygons from those that did not train it where it can, and counts the held-out
polygons that trained it whatever the split: a fresh draw, a layer the user gave, a link followed. Any such
polygon flatters both models (the new one starts from its weights), and the run is marked optimistic with the
count."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set

from .labels import LabelSet

#: Characters of a geometry digest kept on the card (SHA-1 hex: 20 of 40 are plenty to tell polygons apart).
DIGEST_CHARS = 20


@dataclass
class Base:
    """The user's own base checkpoint, trained from polygons: its file name and the digests of the polygons that
    trained it and that validated it."""

    name: str
    trained: Set[str]
    held_out: Set[str]
    separate: Optional[Dict[str, Any]] = None  # the separate validation layer's source, where one validated it


def own_base(base_card: Optional[Dict[str, Any]], base_path: Optional[str]) -> Optional[Base]:
    """The base checkpoint as a Base when it is the user's own and trained from polygons or points with the digests
    recorded (a checkpoint from before they were, the bundled one, or a folder training: None)."""
    from ...paths import DEFAULT_CHECKPOINT

    if not base_card or not base_path or os.path.abspath(base_path) == os.path.abspath(DEFAULT_CHECKPOINT):
        return None
    training = base_card.get("training") or {}
    shapes = training.get("split_shapes")
    if training.get("data") != "polygons" or not isinstance(shapes, dict) or not shapes.get("trained"):
        return None  # a label raster's patches have no digests: compared as before
    split = training.get("split") or {}
    separate = split.get("val_source") if split.get("kind") == "separate layer" else None
    return Base(os.path.basename(base_path), set(shapes.get("trained") or ()), set(shapes.get("held_out") or ()),
                separate if isinstance(separate, dict) else None)


def digest(shape: str) -> str:
    """A geometry digest as the card keeps it."""
    return str(shape)[:DIGEST_CHARS]


def groups_among(labels: LabelSet, digests: Set[str]) -> List[int]:
    """The label groups (polygons, merged where they overlap) with a feature whose digest is among `digests`."""
    if not digests:
        return []
    return sorted(g for g, fids in labels.group_features.items()
                  if any(f in labels.feature_shapes and digest(labels.feature_shapes[f]) in digests for f in fids))


def split_shapes(labels: LabelSet, train_groups, held_out_digests: Set[str]) -> Dict[str, List[str]]:
    """The card's `split_shapes`: the digests of the polygons that trained (a pixel of theirs left after the
    buffer) and of those that validated."""
    trained = {digest(labels.feature_shapes[f]) for g in train_groups for f in labels.group_features.get(int(g), ())
               if f in labels.feature_shapes}
    return {"trained": sorted(trained), "held_out": sorted(held_out_digests)}


def leak_note(base: Base, leaked: int, held: int, units_many: str, advice: str) -> str:
    """The label note of a split whose held-out polygons include some that trained the base."""
    return (f"{leaked} of the {held} held-out {units_many} trained {base.name}, the checkpoint this run starts from: "
            f"the held-out scores of both models are optimistic on them{advice}")
