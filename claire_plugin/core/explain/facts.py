"""Facts record of one classification run: the rounded numbers an explanation may quote.

`build_facts(summary, card)` turns the engine's summary dict and the model card (schemas in
docs/architecture.md) into a JSON-ready dict. Every number is rounded once, here, by the rules in
`ROUNDING`; writers (template, language model) quote these values and the grounding checker compares
the text against them. Shares, confidences and accuracies are given as percentages (`*_pct`), areas
in hectares (`*_ha`), kappa as a coefficient, counts as integers.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

from ....models.card_schema import ENSEMBLE
from ....models.metrics import added_confusions
from ..errors import ClaireError

FACTS_FORMAT = "claire-facts/1"

#: Decimals kept for each kind of number (documented in docs/explanations.md).
ROUNDING = {"percent": 1, "area_ha": 1, "kappa": 2, "pixel_area_m2": 2, "f1": 2}

#: How many confused class pairs the facts keep.
MAX_CONFUSED_PAIRS = 3
#: The side (px) of the scenes the bundled card's "unlike the training data" threshold was calibrated on (the
#: TerraMesh sites read whole): on a smaller scene the score reads the scene's edges too (docs/model_card.md).
CALIBRATION_SIDE = 224


def _num(value: Any) -> Optional[float]:
    """Float of a value, or None for missing / NaN / non-numeric."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) or math.isinf(out) else out


def pct(fraction: Any) -> Optional[float]:
    """A fraction in [0, 1] as a percentage rounded to `ROUNDING['percent']` decimals."""
    f = _num(fraction)
    return None if f is None else round(f * 100.0, ROUNDING["percent"]) + 0.0


def ha(area: Any) -> Optional[float]:
    """An area in hectares rounded to `ROUNDING['area_ha']` decimals."""
    a = _num(area)
    return None if a is None else round(a, ROUNDING["area_ha"]) + 0.0


def _kappa(value: Any) -> Optional[float]:
    k = _num(value)
    return None if k is None else round(k, ROUNDING["kappa"]) + 0.0


def _int(value: Any) -> Optional[int]:
    v = _num(value)
    return None if v is None else int(round(v))


def trained_on_labels(card: Optional[dict]) -> bool:
    """Whether the card's model was trained on a user's own polygons or points (it has held-out polygon scores)."""
    return bool(((card or {}).get("metrics") or {}).get("heldout_polygons"))


def _card_model(card: dict) -> dict:
    inputs, metrics = card.get("inputs") or {}, card.get("metrics") or {}
    opt = inputs.get("optical") or {}
    sar = inputs.get("sar") or {}
    return {
        "arch": card.get("arch"),
        "size": card.get("size"),
        "optical_sensor": opt.get("sensor"),
        "optical_bands": list(opt.get("bands") or []),
        "sar_sensor": sar.get("sensor"),
        "sar_bands": list(sar.get("bands") or []),
        "class_count": len(card.get("classes") or []),
        "forest_weight_pct": (pct((card.get("config") or {}).get("forest_weight"))
                              if card.get("arch") == ENSEMBLE else None),
        # a model trained from polygons: its macro-F1 on the held-out polygons with the optical and from SAR alone
        "heldout_macro_f1": _f1(metrics.get("heldout_polygons")),
        "sar_only_heldout_macro_f1": _f1(metrics.get("heldout_polygons_sar_only")),
        "sar_only_lookalikes": _lookalikes(metrics),
        # trained on the user's own labels (polygons or points): more labels, not "train it", is then the advice
        "from_labels": trained_on_labels(card),
        # trained on labels whose scene was too small to measure its familiarity: it cannot tell unlike scenes
        "familiarity_unmeasured": trained_on_labels(card) and not (card.get("familiarity")
                                                                   or card.get("familiarity_measured")),
        # what its held-out labels were: "points" for a point layer, else "polygons"
        "labels_kind": "points" if (((card.get("training") or {}).get("labels") or {}).get("geometry")
                                    == "point") else "polygons",
    }


def _lookalikes(metrics: dict) -> List[dict]:
    """The classes a model trained from polygons took for others from SAR alone on its held-out polygons and not with
    the optical (models.metrics.added_confusions of the card's two confusion matrices)."""
    alone, clear = metrics.get("heldout_polygons_sar_only"), metrics.get("heldout_polygons")
    if not isinstance(alone, dict):
        return []
    return [{"reference": p["reference"], "predicted": p["predicted"], "share_of_reference_pct": pct(p["share"]),
             "with_optical_pct": pct(p["baseline_share"])}
            for p in added_confusions(alone, clear if isinstance(clear, dict) else None)]


def _f1(scores: Any) -> Optional[float]:
    """The macro-F1 of a card's scores rounded to `ROUNDING['f1']` decimals (None without)."""
    v = _num(scores.get("macro_f1")) if isinstance(scores, dict) else None
    return None if v is None else round(v, ROUNDING["f1"]) + 0.0


def _class_facts(entry: dict) -> dict:
    sar = pct(entry.get("mean_sar_share"))
    return {
        "name": str(entry.get("name")),
        "value": entry.get("value"),
        "pixels": _int(entry.get("pixels")) or 0,
        "area_ha": ha(entry.get("area_ha")),
        "share_pct": pct(entry.get("share")),
        "mean_confidence_pct": pct(entry.get("mean_confidence")),
        "low_confidence_pct": pct(entry.get("low_confidence_share")),
        "sar_reliance_pct": sar,
        "optical_reliance_pct": None if sar is None else round(100.0 - sar, ROUNDING["percent"]),
        # shares of the class's own pixels: unlike the training data, under cloud, from SAR alone (optical gaps)
        "unfamiliar_pct": pct(entry.get("unfamiliar_share")),
        "cloud_pct": pct(entry.get("cloud_share")),
        "sar_only_pct": pct(entry.get("sar_only_share")),
    }


def _names_by_value(summary: dict, card: dict) -> Dict[Any, str]:
    """Class names by raster value: the run's summary first, the card for values it lacks."""
    names: Dict[Any, str] = {}
    for c in summary.get("classes") or []:
        names[c.get("value")] = str(c.get("name"))
    for c in card.get("classes") or []:
        names.setdefault(c.get("value"), str(c.get("name")))
    return names


def _confused_pairs(metrics: dict, names: Dict[Any, str], per_class_names: List[str]) -> List[dict]:
    cm = metrics.get("confusion")
    if not cm:
        return []
    values = metrics.get("class_values")
    if values and len(values) == len(cm):
        labels = [names.get(v, str(v)) for v in values]
    elif len(per_class_names) == len(cm):
        labels = list(per_class_names)
    else:
        labels = [f"class index {i}" for i in range(len(cm))]
    pairs = []
    for i, row in enumerate(cm):
        total = sum(float(x) for x in row)
        for j, count in enumerate(row):
            if i != j and count and float(count) > 0:
                pairs.append((float(count), i, j, total))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    return [
        {
            "reference": labels[i],
            "predicted": labels[j],
            "pixels": int(round(count)),
            "share_of_reference_pct": pct(count / total) if total else None,
        }
        for count, i, j, total in pairs[:MAX_CONFUSED_PAIRS]
    ]


def _metrics_facts(metrics: Optional[dict], names: Dict[Any, str]) -> Optional[dict]:
    if not metrics:
        return None
    per_class = []
    for c in metrics.get("per_class") or []:
        per_class.append({
            "name": str(c.get("name")),
            "iou_pct": pct(c.get("iou")),
            "precision_pct": pct(c.get("precision")),
            "recall_pct": pct(c.get("recall")),
            "f1_pct": pct(c.get("f1")),
            "support": _int(c.get("support")) or 0,
        })
    left = metrics.get("reference_left_out") or {}
    return {
        "oa_pct": pct(metrics.get("oa")),
        "miou_pct": pct(metrics.get("miou")),
        "kappa": _kappa(metrics.get("kappa")),
        "per_class": per_class,
        "confused_pairs": _confused_pairs(metrics, names, [c["name"] for c in per_class]),
        "reference_left_out_pct": pct(left.get("share")) or None,
        "reference_left_out_codes": [int(k) for k in list(left.get("codes") or {})[:8]],
    }


def _weighted(classes: List[dict], key: str) -> Optional[float]:
    """Pixel-weighted mean of a per-class fraction in the raw summary."""
    num = den = 0.0
    for c in classes:
        v, n = _num(c.get(key)), _num(c.get("pixels")) or 0.0
        if v is not None and n > 0:
            num += v * n
            den += n
    return num / den if den else None


def smaller_than_calibration(shape: Any) -> bool:
    """Whether a region [rows, columns] has a side under CALIBRATION_SIDE (False when unknown)."""
    try:
        return min(int(v) for v in shape) < CALIBRATION_SIDE
    except (TypeError, ValueError):
        return False


def build_facts(summary: dict, card: dict, focus_class: Optional[str] = None) -> dict:
    """Build the rounded facts record of a run from the engine summary and the model card.

    `focus_class` (a class name, case-insensitive) adds a `focus` entry with that class's facts and
    metrics. Raises ClaireError when the summary lacks classes or the focus class is unknown.
    """
    if not isinstance(summary, dict) or not isinstance(summary.get("classes"), list):
        raise ClaireError("The summary has no 'classes' list; give the summary JSON written by "
                          "`claire classify --summary-json` (schema in docs/architecture.md).")
    card = card or {}
    raw_classes = summary["classes"]
    classes = [_class_facts(c) for c in raw_classes]
    classes.sort(key=lambda c: (-(c["share_pct"] or 0.0), -c["pixels"], c["name"]))

    valid = _int(summary.get("valid_pixels"))
    if valid is None:
        valid = sum(c["pixels"] for c in classes)
    pixel_area = _num(summary.get("pixel_area_m2"))
    total_ha = ha(valid * pixel_area / 10000.0) if pixel_area is not None else \
        ha(sum(_num(c.get("area_ha")) or 0.0 for c in raw_classes))
    sar = pct(summary.get("mean_sar_share"))
    mean_conf = summary.get("mean_confidence")
    if _num(mean_conf) is None:
        mean_conf = _weighted(raw_classes, "mean_confidence")
    scene = {
        "valid_pixels": valid,
        "nodata_pixels": _int(summary.get("nodata_pixels")) or 0,
        # the share of the output grid without a class (no SAR there, or neither raster)
        "unclassified_pct": pct((_int(summary.get("nodata_pixels")) or 0) / max(1, valid + (
            _int(summary.get("nodata_pixels")) or 0))),
        "pixel_area_m2": None if pixel_area is None else round(pixel_area, ROUNDING["pixel_area_m2"]),
        "total_area_ha": total_ha,
        "optical_invalid_pct": pct(summary.get("optical_invalid_share")),
        "cloud_pct": pct(summary.get("cloud_share")),
        "sar_only_pct": pct(summary.get("sar_only_share")),
        "sar_reliance_clouded_pct": pct(summary.get("mean_sar_share_clouded")),
        "sar_reliance_clear_pct": pct(summary.get("mean_sar_share_clear")),
        "sar_reliance_sar_only_pct": pct(summary.get("mean_sar_share_sar_only")),
        "unfamiliar_pct": pct(summary.get("unfamiliar_share")),
        "snow_ruled_out_pct": pct(summary.get("snow_ruled_out_share")),
        "snow_ruled_out_clouded_pct": pct(summary.get("snow_ruled_out_clouded_share")),
        "snow_ruled_out_clear_pct": pct(None if summary.get("snow_ruled_out_share") is None else
                                        summary["snow_ruled_out_share"] - (summary.get("snow_ruled_out_clouded_share")
                                                                           or 0.0)),
        "mean_confidence_pct": pct(mean_conf),
        "low_confidence_pct": pct(summary.get("low_confidence_share") if summary.get("low_confidence_share") is not None
                                  else _weighted(raw_classes, "low_confidence_share")),  # a summary of older runs
        "sar_reliance_pct": sar,
        "optical_reliance_pct": None if sar is None else round(100.0 - sar, ROUNDING["percent"]),
        "classes_present": sum(1 for c in classes if c["pixels"] > 0),
        # the engine's finding that the optical looks like Sentinel-2 with an undeclared +1000 DN offset
        "optical_offset_suspected": bool(summary.get("optical_offset_suspected")),
        # a scene smaller than those the familiarity threshold was calibrated on (its score reads the edges too)
        "smaller_than_calibration": smaller_than_calibration(summary.get("region_shape")),
    }
    names = _names_by_value(summary, card)
    metrics = _metrics_facts(summary.get("metrics"), names)
    facts = {
        "format": FACTS_FORMAT,
        "rounding": dict(ROUNDING),
        "model": _card_model(card),
        "scene": scene,
        "classes": classes,
        "metrics": metrics,
        "focus": None,
    }
    if focus_class:
        facts["focus"] = _focus(facts, focus_class)
    return facts


def _focus(facts: dict, focus_class: str) -> dict:
    from ..training.labels import name_key

    key = name_key(focus_class)
    match = [c for c in facts["classes"] if name_key(c["name"]) == key]
    if not match:
        known = ", ".join(c["name"] for c in facts["classes"])
        raise ClaireError(f"Class '{focus_class}' is not in this map; choose one of: {known}.")
    cls = dict(match[0])
    cls["rank_by_area"] = facts["classes"].index(match[0]) + 1
    m = facts.get("metrics")
    cls["metrics"] = None
    if m:
        cls["metrics"] = next((c for c in m["per_class"] if name_key(c["name"]) == key), None)
        cls["confused_pairs"] = [p for p in m["confused_pairs"]
                                 if key in (name_key(p["reference"]), name_key(p["predicted"]))]
    return cls


def fact_names(facts: dict) -> List[str]:
    """Every name in the facts (classes, bands, sensors, model) whose digits are not numbers."""
    out: List[str] = []
    model = facts.get("model") or {}
    for key in ("arch", "size", "optical_sensor", "sar_sensor"):
        if model.get(key):
            out.append(str(model[key]))
    out += [str(b) for b in model.get("optical_bands") or []]
    out += [str(b) for b in model.get("sar_bands") or []]
    out += [c["name"] for c in facts.get("classes") or []]
    for p in model.get("sar_only_lookalikes") or []:
        out += [p["reference"], p["predicted"]]
    for c in (facts.get("metrics") or {}).get("per_class") or []:
        out.append(c["name"])
    return sorted({n for n in out if n}, key=lambda n: (-len(n), n))
