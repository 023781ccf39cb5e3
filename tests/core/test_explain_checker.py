"""Grounding checker: units, separators, fractions, identifiers, flagging and dropping."""
from claire.claire_plugin.core.explain.checker import check_grounding, iter_numbers, split_sentences


def _facts():
    return {
        "format": "claire-facts/1",
        "rounding": {"percent": 1, "area_ha": 1, "kappa": 2},
        "model": {"optical_sensor": "Sentinel-2", "sar_sensor": "Sentinel-1", "optical_bands": ["B08", "B8A"],
                  "sar_bands": ["VV", "VH"]},
        "scene": {"valid_pixels": 1234567, "total_area_ha": 12345.6, "mean_confidence_pct": 87.3},
        "classes": [{"name": "Class 12", "value": 7, "share_pct": 42.5, "area_ha": 5246.9}],
        "metrics": {"kappa": 0.78, "oa_pct": 91.0},
    }


def test_units_separators_and_fraction_percent_equivalence():
    facts = _facts()
    text = ("Confidence averages 87.3 % over 12,345.6 ha and 1,234,567 pixels. "
            "Written as a fraction it is 0.873, or 87 percent. "
            "Kappa is 0.78, i.e. 78 %. Overall accuracy reaches 91 %. "
            "Thin-space areas like 12\u202f345.6 ha and a decimal comma like 87,3 % count too. "
            "The area is 123.456 km².")
    res = check_grounding(text, facts)
    assert res.flagged_sentences == []
    assert res.grounded_share == 1.0
    assert res.numbers_total == 11


def test_identifiers_and_names_are_not_numbers():
    facts = _facts()
    text = ("Class 12 covers 42.5 % of Sentinel-2 pixels; B08 and B8A matter, Phi-3-mini wrote this. "
            "1. The L2A product is fine.")
    found = [n[0] for s in split_sentences(text) for n in iter_numbers(s, ["Class 12", "Sentinel-2"])]
    assert found == ["42.5"]
    assert check_grounding(text, facts).grounded_share == 1.0


def test_planted_wrong_number_is_flagged_and_dropped():
    facts = _facts()
    good = "Class 12 covers 42.5 % of the valid area."
    bad = "Kappa is 0.64, an excellent value."
    res = check_grounding(good + " " + bad, facts)
    assert res.flagged_sentences == [bad]
    assert res.grounded_share == 0.5
    wrong = [n for n in res.numbers if not n.matched]
    assert [n.text for n in wrong] == ["0.64"]
    dropped = check_grounding(good + " " + bad, facts, drop_unmatched=True)
    assert dropped.text == good


def test_rounding_tolerance_is_tight():
    facts = _facts()
    assert check_grounding("It is 87 %.", facts).grounded_share == 1.0       # 87.3 rounds to 87
    assert check_grounding("It is 88 %.", facts).grounded_share == 0.0
    assert check_grounding("It is 87.4 %.", facts).grounded_share == 0.0     # claims more precision
    assert check_grounding("It covers 5,247 ha.", facts).grounded_share == 1.0
    assert check_grounding("It covers 5,249 ha.", facts).grounded_share == 0.0
    # a percentage never matches an area, even when the digits agree
    assert check_grounding("It is 5246.9 %.", facts).grounded_share == 0.0


def test_text_without_numbers_is_fully_grounded():
    res = check_grounding("Water dominates. Nothing else to say.", _facts())
    assert res.grounded_share == 1.0 and res.numbers_total == 0


def test_sentence_split_keeps_decimals():
    assert split_sentences("It is 87.3 % here. Next one is 42.5 %. Done") == [
        "It is 87.3 % here.", "Next one is 42.5 %.", "Done"]
