"""Facts record: rounding, derived values, confused pairs, focus class."""
import json
import math

import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.explain.facts import build_facts, fact_names
from claire.tests.fixtures.explain_examples import example_card, example_summary, sample_run


def test_rounding_and_units():
    summary = example_summary([3333, 6667], [0.91234, 0.70051], [0.01234, 0.2], [0.66666, 0.1],
                              pixel_area_m2=100.0)
    facts = build_facts(summary, example_card())
    first, second = facts["classes"]  # sorted by area, largest first
    assert (first["name"], second["name"]) == ("trees", "water")
    assert first["share_pct"] == 66.7 and second["share_pct"] == 33.3
    assert second["area_ha"] == 33.3 and first["area_ha"] == 66.7
    assert second["mean_confidence_pct"] == 91.2
    assert second["low_confidence_pct"] == 1.2
    assert second["sar_reliance_pct"] == 66.7 and second["optical_reliance_pct"] == 33.3
    assert facts["scene"]["total_area_ha"] == 100.0
    assert facts["scene"]["cloud_pct"] == 8.7 and facts["scene"]["optical_invalid_pct"] == 2.1
    assert facts["metrics"] is None
    json.dumps(facts, allow_nan=False)  # JSON-ready, no NaN


def test_metrics_and_confused_pairs():
    summary, card = sample_run(with_reference=True)
    facts = build_facts(summary, card)
    m = facts["metrics"]
    assert m["oa_pct"] == round(summary["metrics"]["oa"] * 100, 1)
    assert m["kappa"] == round(summary["metrics"]["kappa"], 2)
    assert [p["pixels"] for p in m["confused_pairs"]] == [710, 700, 600]
    top = m["confused_pairs"][0]
    assert (top["reference"], top["predicted"]) == ("rangeland", "crops")
    assert top["share_of_reference_pct"] == round(710 / 3000 * 100, 1)
    assert {c["name"] for c in m["per_class"]} == {c["name"] for c in card["classes"]}


def test_nan_metrics_become_none():
    cm = [[10, 0], [0, 0]]
    summary = example_summary([10, 0], [0.9, 0.0], [0.0, 0.0], [0.5, 0.5], confusion=cm,
                              names=["water", "trees"])
    facts = build_facts(summary, example_card(["water", "trees"]))
    trees = [c for c in facts["metrics"]["per_class"] if c["name"] == "trees"][0]
    assert trees["precision_pct"] is None and trees["f1_pct"] is None
    assert not any(isinstance(v, float) and math.isnan(v) for v in trees.values())


def test_focus_class_and_unknown_class():
    summary, card = sample_run(with_reference=True)
    facts = build_facts(summary, card, focus_class="Crops")
    assert facts["focus"]["name"] == "crops"
    assert facts["focus"]["metrics"]["name"] == "crops"
    assert all("crops" in (p["reference"], p["predicted"]) for p in facts["focus"]["confused_pairs"])
    with pytest.raises(ClaireError, match="not in this map"):
        build_facts(summary, card, focus_class="glacier")
    spaced = build_facts(summary, card, focus_class=" Built  area")  # names match as everywhere: spacing aside
    assert spaced["focus"]["name"] == "built area" and spaced["focus"]["metrics"]["name"] == "built area"


def test_optical_only_model_has_no_reliance():
    summary = example_summary([5, 5], [0.9, 0.8], [0.1, 0.2], None)
    facts = build_facts(summary, example_card())
    assert facts["scene"]["sar_reliance_pct"] is None
    assert facts["classes"][0]["optical_reliance_pct"] is None


def test_bad_summary_is_a_user_error():
    with pytest.raises(ClaireError, match="classes"):
        build_facts({"valid_pixels": 3}, example_card())


def test_fact_names_include_bands_sensors_classes():
    facts = build_facts(*sample_run())
    names = fact_names(facts)
    assert {"B08", "Sentinel-2", "Sentinel-1 GRD/RTC", "built area"} <= set(names)
