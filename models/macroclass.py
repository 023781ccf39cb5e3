"""Macroclasses (SCP's MC ID / C ID): a checkpoint's classes grouped into coarser classes, e.g. "clear water"
and "turbid water" into "water". The network learns the classes; a map at the macroclass level gives each
pixel the macroclass whose classes' (calibrated) probabilities sum highest, so spectrally distinct materials
of one cover type are learned apart and mapped together.

The card holds them as `macroclasses`: [{"index", "value", "name", "color", "classes": [class values]}],
every class in exactly one macroclass, and their held-out scores as `metrics["macroclass"]`.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, NamedTuple, Optional

import numpy as np

from .quoting import quoted

#: The levels a map can be made at: the checkpoint's classes, or its macroclasses where the card has them.
LEVELS = ("class", "macroclass")


def card_macroclasses(card: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The card's macroclasses in index order; [] for a card without a hierarchy."""
    raw = card.get("macroclasses") or []
    return sorted(raw, key=lambda m: int(m.get("index", 0))) if isinstance(raw, list) else []


def macroclass_problem(card: Dict[str, Any]) -> Optional[str]:
    """The first problem of the card's `macroclasses` as a phrase, None when absent or usable: each entry an
    object with an index in order, a value 0..254 other than nodata and not repeated, a name, and classes
    that are the card's class values, each class in exactly one macroclass."""
    raw = card.get("macroclasses")
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        return "the card's macroclasses is not a non-empty list"
    class_values = [c.get("value") for c in card.get("classes") or [] if isinstance(c, dict)]
    seen_values, owner = set(), {}
    nodata = card.get("nodata", 0)
    for i, m in enumerate(raw):
        where = f"macroclasses[{i}]"
        if not isinstance(m, dict) or m.get("index", i) != i:
            return f"the card's {where} is not an object with index {i}"
        value = m.get("value")
        if not isinstance(value, int) or not 0 <= value <= 254 or value == nodata or value in seen_values:
            return f"the card's {where}.value {quoted(value)} is not a free value 0..254 (nodata {nodata})"
        seen_values.add(value)
        if not isinstance(m.get("name"), str):
            return f"the card's {where}.name is not text"
        members = m.get("classes")
        if not isinstance(members, list) or not members:
            return f"the card's {where}.classes is not a non-empty list of class values"
        for v in members:
            if v not in class_values:
                return f"the card's {where}.classes holds {quoted(v)}, which is not one of the card's class values"
            if v in owner:
                return f"class value {v} is in macroclasses {owner[v]} and {i}; a class belongs to one macroclass"
            owner[v] = i
    missing = [v for v in class_values if v not in owner]
    if missing:
        return f"class value(s) {', '.join(map(str, missing))} are in no macroclass of the card"
    return None


def grouping_text(card: Dict[str, Any]) -> str:
    """"land = built area, crops; water = clear water, turbid water" for the card's macroclasses ('' without)."""
    names = {c.get("value"): str(c.get("name")) for c in card.get("classes") or []}
    return "; ".join(f"{m['name']} = {', '.join(names.get(v, str(v)) for v in m['classes'])}"
                     for m in card_macroclasses(card))


def group_index(card: Dict[str, Any]) -> np.ndarray:
    """Per class index (the model's output channel), the index of its macroclass; int64."""
    by_value = {int(v): int(m["index"]) for m in card_macroclasses(card) for v in m["classes"]}
    classes = sorted(card.get("classes") or [], key=lambda c: int(c["index"]))
    return np.array([by_value[int(c["value"])] for c in classes], dtype=np.int64)


def macro_view(card: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of `card` that describes a map at the macroclass level: its classes are the macroclasses, its
    metrics their held-out scores, no calibration (the engine tempers the chosen macroclass's probability with the
    card's temperature: models.macroclass.chosen_group_probability), `class_groups` the class index ->
    macroclass index and `class_values` the classes' values (a reference raster holds those). The model and its
    inputs are unchanged."""
    out = {k: v for k, v in card.items() if k not in ("classes", "metrics", "calibration", "macroclasses")}
    out["classes"] = [{k: copy.deepcopy(m[k]) for k in ("index", "value", "name", "color") if k in m}
                      for m in card_macroclasses(card)]
    out["metrics"] = copy.deepcopy((card.get("metrics") or {}).get("macroclass") or {})
    out["class_groups"] = [int(g) for g in group_index(card)]
    out["class_values"] = [int(c["value"]) for c in sorted(card.get("classes") or [], key=lambda c: int(c["index"]))]
    out["level"] = "macroclass"
    return out


class Grouping(NamedTuple):
    """How a run sums class probabilities into macroclasses: `index` class index -> macroclass index (a long
    tensor on the run's device), `count` macroclasses, the card's temperature with which the chosen macroclass's
    confidence is computed (the map sums the network's own probabilities) and its SAR-alone one
    (models.calibration.cloud_temperature: the confidence of clouded pixels and optical gaps)."""

    index: Any
    count: int
    temperature: float = 1.0
    sar_only_temperature: float = 1.0

    @property
    def per_pixel(self) -> bool:
        """Whether the confidence is tempered per pixel (a SAR-alone temperature of its own)."""
        return self.sar_only_temperature != self.temperature


def group_probabilities(probs, groups, out, temperature=1.0):
    """Sum the class probabilities `probs` [K, ...] (a torch tensor) into `out` [M, ...] by `groups` (a long
    tensor, class index -> macroclass index), after tempering them with the card's calibration (softmax of
    logits / T equals probs ** (1 / T) renormalised); `temperature` a number or a tensor of the pixels' shape."""
    import torch

    p = probs
    if torch.is_tensor(temperature) or temperature != 1.0:
        p = torch.softmax(torch.log(probs.clamp_min(1e-30)) / temperature, dim=0)
    out.zero_()
    out.index_add_(0, groups, p)
    return out


def chosen_group_probability(probs, groups, chosen, temperature):
    """Per pixel the probability of its macroclass `chosen` [...] (a long tensor: the largest sum of the class
    probabilities `probs` [K, ...]) tempered with `temperature` (a number or a tensor of the pixels' shape) at the
    macroclass level: softmax(log(sums) / T). A monotone transform of the sums, so the chosen macroclass stays the
    most likely (at least 1/M of M): tempering the classes before the sum let a one-class macroclass fall below a
    macroclass it had beaten (a confidence of 37 % on a two-macroclass map)."""
    import torch

    count = max(int(groups.max()), int(chosen.max())) + 1
    sums = group_probabilities(probs, groups, probs.new_empty((count,) + tuple(chosen.shape)))
    if torch.is_tensor(temperature) or temperature != 1.0:
        sums = torch.softmax(torch.log(sums.clamp_min(1e-30)) / temperature, dim=0)
    return sums.gather(0, chosen.unsqueeze(0))[0]


def collapse_confusion(cm: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """A class confusion matrix (rows = reference) summed into macroclass rows and columns."""
    one_hot = np.zeros((len(groups), n_groups), dtype=np.int64)
    one_hot[np.arange(len(groups)), groups] = 1
    return one_hot.T @ np.asarray(cm, dtype=np.int64) @ one_hot
