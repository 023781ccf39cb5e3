"""Grounding checker: units, separators, fractions, identifiers, flagging and dropping."""
from claire.claire_plugin.core.explain.checker import check_grounding, iter_numbers, split_sentences
from claire.claire_plugin.core.explain.facts import build_facts
from claire.tests.fixtures.explain_examples import sample_run


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


# Mutation audit (QA round 14, third wave): rules of the grounding check no other test pinned.
def test_kappa_is_matched_at_its_own_two_decimals():  # C2
    facts = _facts()
    assert check_grounding("Kappa is 0.78.", facts).grounded_share == 1.0
    assert check_grounding("Kappa is 0.74.", facts).grounded_share == 0.0   # 0.78 is not 0.74 "within rounding"


def test_a_purely_numeric_class_name_does_not_hide_numbers():  # C5
    facts = _facts()
    facts["classes"].append({"name": "5", "value": 5, "share_pct": 1.0, "area_ha": 1.0})
    res = check_grounding("It covers 5 % of the scene.", facts)
    assert res.numbers_total == 1 and res.grounded_share == 0.0


def test_legend_names_with_codes_and_thresholds_stay_names():
    """ESA CCI and CORINE names carry figures of the legend, not of the run: they never count as numbers."""
    facts = _facts()
    facts["classes"].append({"name": "Mosaic cropland (>50%) / natural vegetation (<50%)", "value": 30,
                             "share_pct": 1.0, "area_ha": 1.0})
    facts["classes"].append({"name": "3.1.1 Broad-leaved forest", "value": 12, "share_pct": 1.0, "area_ha": 1.0})
    text = ("Mosaic cropland (>50%) / natural vegetation (<50%) covers 42.5 % of the valid area. "
            "3.1.1 Broad-leaved forest is rare.")
    res = check_grounding(text, facts)
    assert res.numbers_total == 1 and res.grounded_share == 1.0
    res = check_grounding("Mosaic cropland covers 50 % of it.", facts)  # the figure alone is no name
    assert res.numbers_total == 1 and res.grounded_share == 0.0


def test_glued_and_hyphenated_numbers():  # C9, C10, C11, C13
    facts = _facts()
    assert [n[0] for n in iter_numbers("See tile_12 now.", [])] == []          # C9: "_12" is an identifier
    res = check_grounding("Shares range 42.5-91 %.", facts)                    # C10/C13: a range, not -91
    assert res.numbers_total == 2 and res.grounded_share == 1.0
    res = check_grounding("The SAR median is -3.2 dB.", facts)                 # C10: a negative number is checked
    assert res.numbers_total == 1 and res.grounded_share == 0.0
    res = check_grounding("It covers 9999ha.", facts)                          # C11: "9999ha" is an area
    assert res.numbers_total == 1 and res.grounded_share == 0.0
    res = check_grounding("Cohen's kappa is -0.78, worse than chance.", facts)  # QA round 20: a wrong sign is no
    assert res.numbers_total == 1 and res.grounded_share == 0.0                # grounding (kappa is 0.78)
    res = check_grounding("Cohen's kappa is 0.78.", facts)
    assert res.numbers_total == 1 and res.grounded_share == 1.0


def test_kappa_as_a_percentage_keeps_its_rounding():  # C16
    facts = _facts()
    assert check_grounding("Kappa is 78 %.", facts).grounded_share == 1.0  # 0.78 is 0.775..0.785
    assert check_grounding("Kappa is 78.0 %.", facts).grounded_share == 1.0
    assert check_grounding("Kappa is 79 %.", facts).grounded_share == 0.0
    # QA round 22: more decimals than the fact holds is no quote of it (0.78 may be 0.784)
    assert check_grounding("Kappa is 77.6 %.", facts).grounded_share == 0.0


def test_a_bare_one_is_the_fraction_of_a_hundred_percent():  # C18
    facts = _facts()
    facts["classes"][0]["share_pct"] = 100.0
    assert check_grounding("The class covers a fraction 1.0 of the map.", facts).grounded_share == 1.0


def test_dropping_keeps_paragraph_breaks():  # C25
    text = "Class 12 covers 42.5 % of the valid area.\n\nKappa is 0.64.\n\nIt is 87.3 % sure."
    res = check_grounding(text, _facts(), drop_unmatched=True)
    assert res.text == "Class 12 covers 42.5 % of the valid area.\n\nIt is 87.3 % sure."


def test_raster_codes_and_shares_are_no_pixel_counts():  # C29, C30
    facts = _facts()
    assert check_grounding("There are 7 of them.", facts).grounded_share == 0.0    # 7 is the class's raster code
    assert check_grounding("It has 42.5 pixels.", facts).grounded_share == 0.0     # 42.5 is a percentage


# QA round 14: a count of 0 grounded any bare number below 0.5 (a wrong kappa 0.35); macro-F1 0.80, stored as 0.8, was checked at one decimal.
def test_a_pixel_count_of_zero_grounds_no_decimal():
    summary, card = sample_run(True)
    summary["nodata_pixels"] = 0          # a scene without nodata: the usual case
    facts = build_facts(summary, card)    # kappa 0.78
    assert check_grounding("Cohen's kappa is 0.35, which is fair agreement.", facts).grounded_share == 0.0


def test_a_macro_f1_with_a_trailing_zero_keeps_its_two_decimals():
    summary, card = sample_run(False)
    card["metrics"]["heldout_polygons"] = {"macro_f1": 0.80}
    card["metrics"]["heldout_polygons_sar_only"] = {"macro_f1": 0.61}
    facts = build_facts(summary, card)    # heldout_macro_f1 0.8
    assert check_grounding("With the optical it scored macro-F1 0.75.", facts).grounded_share == 0.0


def test_a_number_after_a_named_measure_must_be_that_measure():
    """QA round 22: numbers were matched by value alone: "Overall accuracy is 87.3 %" passed on the mean
    confidence, "Kappa is 0.43" on a share / 100; about half of random kappas passed."""
    facts = _facts()
    assert check_grounding("Overall accuracy is 87.3 %.", facts).grounded_share == 0.0  # the mean confidence
    assert check_grounding("Overall accuracy is 91 %.", facts).grounded_share == 1.0
    assert check_grounding("Kappa is 0.43.", facts).grounded_share == 0.0  # 42.5 % / 100
    assert check_grounding("The mean confidence is 87.3 %, the overall accuracy 91 %.", facts).grounded_share == 1.0
    res = check_grounding("Class 12 covers 42.5 % and reaches an F1 of 0.91.", facts)
    assert [n.matched for n in res.numbers] == [True, False]  # no F1 among the facts, though 0.91 is the OA
    no_metrics = {k: v for k, v in facts.items() if k != "metrics"}
    assert check_grounding("Kappa is 0.78.", no_metrics).grounded_share == 0.0
    assert check_grounding("Confidence averages 87.3 %.", no_metrics).grounded_share == 1.0


def test_numbers_with_units_no_fact_has_and_spelled_percentages_are_flagged():
    """QA round 22: "-18dB", "10m", "26k", "6.5e4" were skipped as identifiers, "0.07 million pixels" and
    "262.5 acres" matched as bare numbers or areas, "Forty percent" was not seen."""
    facts = _facts()
    for text in ("The SAR is -18dB there.", "Fields are 10m wide.", "It holds 26k pixels.", "About 6.5e4 pixels.",
                 "About 0.07 million pixels.", "It covers 5246.9 acres.", "Forty percent is water.",
                 "Roads are 10 m wide."):
        res = check_grounding(text, facts)
        assert res.flagged_sentences == [text] and res.grounded_share == 0.0, text
    assert check_grounding("It covers 5246.9 ha.", facts).grounded_share == 1.0
    assert [n[0] for n in iter_numbers("B8A and L2A, 2nd, 3D.", [])] == []  # identifiers stay identifiers


def test_honest_sentences_around_measures_are_not_flagged():
    """QA round 22 (review): the measure rule read the words after a number, or an adjective, as the measure of the
    next number: 13 of 40 honest sentences were flagged ("With 85.6 % mean confidence, trees cover 25.4 %")."""
    facts = {"format": "claire-facts/1", "rounding": {"percent": 1, "area_ha": 1, "kappa": 2, "f1": 2},
             "model": {"heldout_macro_f1": 0.81, "sar_only_heldout_macro_f1": 0.55},
             "scene": {"valid_pixels": 50176, "mean_confidence_pct": 79.8, "low_confidence_pct": 6.3},
             "classes": [{"name": "trees", "share_pct": 25.4, "area_ha": 127.6, "mean_confidence_pct": 85.6},
                         {"name": "crops", "share_pct": 30.8, "area_ha": 154.8, "mean_confidence_pct": 75.7}],
             "metrics": {"oa_pct": 74.5, "kappa": 0.66, "per_class": [
                 {"name": "trees", "f1_pct": 79.8, "precision_pct": 72.4, "recall_pct": 88.9}]}}
    honest = ["Crops, mapped with 75.7 % mean confidence, cover 30.8 % of the map.",
              "With 85.6 % mean confidence, trees cover 25.4 % of the valid area.",
              "Trees at 85.6 % mean confidence cover 25.4 % of the map.",
              "The map is 74.5 % accurate overall, and 6.3 % of its pixels are low-confidence.",
              "Crops, the least accurate class, cover 30.8 % of the map.",
              "The confidence is high for trees, which make up 127.6 ha.",
              "Accuracy aside, crops are the largest class at 30.8 %.",
              "With a held-out accuracy of 0.81 macro-F1, the model is reliable.",
              "Trees have a user\u2019s accuracy of 72.4 % and a producer\u2019s accuracy of 88.9 %.",
              "The overall accuracy against the reference is 74.5 %, with a kappa of 0.66.",
              "Trees reach F1 79.8 %; the mean confidence is 79.8 %.",
              "From SAR alone the model scored 0.55, against 0.81 with the optical."]
    for text in honest:
        assert check_grounding(text, facts).flagged_sentences == [], text
    for text in ("The overall accuracy is 79.8 %.", "Trees have a user\u2019s accuracy of 88.9 %.",
                 "Its kappa is 0.81."):
        assert check_grounding(text, facts).flagged_sentences == [text], text


def test_every_measure_and_unit_rule_bites():
    """Mutation check of round 22: each measure, the m² unit and the units no fact has are pinned."""
    facts = _facts()
    facts["classes"].append({"name": "Accuracy forest", "value": 8, "share_pct": 12.5})
    facts["scene"]["pixel_area_m2"] = 100.0
    for text in ("The IoU is 91 %.", "Confidence is 91 %.", "Precision is 91 %.", "Recall is 91 %.",
                 "The OA is 87.3 %.", "It is 5 km wide.", "Fifteen percent is water.", "It is 3x larger.",
                 "It is 3 × larger.", "About 2 thousand pixels.", "The map covers 5246.9 m².",
                 "Sixty five percent is water.", "The overall accuracy (OA) is 87.3 %."):
        assert check_grounding(text, facts).flagged_sentences == [text], text
    for text in ("Accuracy forest covers 12.5 %.", "Each pixel covers 100 m².", "Confidence averages 87.3 %.",
                 "The OA is 91 %."):
        assert check_grounding(text, facts).flagged_sentences == [], text
    # the last measure before the number names it: "kappa" here, not "accuracy"
    assert check_grounding("Accuracy and kappa: 0.78.", facts).flagged_sentences == []


def test_measures_are_told_apart_and_asides_and_colons_read_as_written():
    """QA round 22 (second review): "mean confidence" matched a low-confidence share, "mIoU" a class's IoU, "macro
    F1" a class's F1; a parenthesis after a measure ("Confidence is high for water (53.5 % of the map)") or a
    colon after a clause ("Confidence is low for crops: 36.5 % ...") took the number as that measure's; "User
    accuracy" was no precision; a held-out macro-F1 said in % did not match."""
    facts = {"format": "claire-facts/1", "rounding": {"percent": 1, "area_ha": 1, "kappa": 2, "f1": 2},
             "model": {"heldout_macro_f1": 0.81},
             "scene": {"valid_pixels": 50176, "mean_confidence_pct": 79.8},
             "classes": [{"name": "water", "share_pct": 53.5, "mean_confidence_pct": 98.4},
                         {"name": "crops", "share_pct": 2.1, "mean_confidence_pct": 54.1, "low_confidence_pct": 36.5}],
             "metrics": {"oa_pct": 94.6, "miou_pct": 58.6, "kappa": 0.91, "per_class": [
                 {"name": "water", "iou_pct": 94.0, "f1_pct": 96.9, "precision_pct": 96.4}]}}
    for text in ("Confidence is high for water (53.5 % of the map).", "The overall accuracy (OA) is 94.6 %.",
                 "Kappa (chance-corrected) is 0.91.", "Confidence is low for crops: 36.5 % of its pixels are low.",
                 "User accuracy for water is 96.4 %.", "Its held-out macro-F1 of 81 % is good.",
                 "Kappa: 0.91.", "The mean IoU is 58.6 %, and water's IoU 94.0 %.",
                 "Accuracy is high but 36.5 % of the crops are low-confidence.",
                 # round 23's mutation check: clause breaks, gaps and links each pinned
                 "Accuracy was never the point for crops where the share is 36.5 %.",
                 "Confidence suffers in the crops with 36.5 % of them low.",
                 "Water has 98.4 % mean confidence and crops are at 36.5 %.",
                 "The accuracy measure that matters is kappa at 0.91.",
                 "Accuracy is high - crops are at 36.5 %.", "Accuracy is high \u2013 crops are at 36.5 %."):
        assert check_grounding(text, facts).flagged_sentences == [], text
    for text in ("Crops have a mean confidence of 36.5 %.", "The mIoU is 94.0 %.", "The macro F1 is 96.9 %.",
                 "Overall accuracy: 79.8 %.", "The low-confidence share of crops is 54.1 %.", "The mean IoU is 94.0 %.",
                 "The overall accuracy against the full reference is 79.8 %.", "IoU 36.5 %.",
                 "Crops show 36.5 % mean confidence.", "Kappa hovers at 0.365.", "Kappa = 0.365.",
                 "Kappa scores 0.365."):
        assert check_grounding(text, facts).flagged_sentences == [text], text


def _crops_facts(**extra):
    """A scene of one class, crops, with every measure the checker's measure tests tell apart."""
    return {"format": "claire-facts/1", "rounding": {"percent": 1, "f1": 2},
            "scene": {"mean_confidence_pct": 96.5, "low_confidence_pct": 0.3},
            "classes": [{"name": "crops", "share_pct": 4.7, "mean_confidence_pct": 54.1, "low_confidence_pct": 36.5}],
            "metrics": {"oa_pct": 94.6, "miou_pct": 58.6,
                        "per_class": [{"name": "crops", "iou_pct": 40.2, "f1_pct": 57.3, "recall_pct": 61.0,
                                       "precision_pct": 80.0}]}, **extra}


def test_measures_read_whole_and_bound_as_said_round_23():
    """QA round 23: "iou" matched "miou_pct" and "f1" "heldout_macro_f1" by substring; a bare "81 % of the map"
    matched a macro-F1 of 0.81; "overall accuracy hits 96.5 %" and "accuracy is high: 96.5 %" matched the mean
    confidence; "a low confidence of 54.1 %" (a class's mean confidence) was flagged."""
    facts = _crops_facts(heldout_macro_f1=0.81)
    false = ["The IoU of crops is 58.6 %.", "The F1 of crops is 81 %.", "Crops cover 81 % of the map.",
             "Overall accuracy hits 96.5 %.", "Accuracy is high: 96.5 %.", "Confidence averages 94.6 % here.",
             "Low-confidence pixels make up 54.1 % of crops.", "Class accuracy for crops is 94.6 %.",
             "The map reaches 96.5 % overall accuracy."]
    honest = ["The IoU of crops is 40.2 %, the mIoU 58.6 %.", "The held-out macro-F1 is 81 %.",
              "With a held-out accuracy of 0.81 macro-F1, the model is usable.", "Overall accuracy hits 94.6 %.",
              "Accuracy is high: 94.6 %.", "Crops have a low confidence of 54.1 %.",
              "36.5 % of crop pixels are low-confidence.", "The macro-F1 is 0.81, i.e. 81 %.",
              "Crops reach an F1 of 57.3 %.", "Class accuracy for crops is 61.0 %.",
              "The accuracy of crops is only 61.0 %.", "Crops reach a per-class accuracy of 61.0 %.",
              "The class accuracy of crops is 80.0 %.", "The map reaches 94.6 % overall accuracy."]
    for text in false:
        assert check_grounding(text, facts).flagged_sentences == [text], text
    for text in honest:
        assert check_grounding(text, facts).flagged_sentences == [], text
    # second review: a figure is restated only next to it; a bare low confidence is the share; appositions bind
    said = check_grounding("The macro-F1 is 0.81. Crops cover 81 % of the map.", facts).flagged_sentences
    assert said == ["Crops cover 81 % of the map."]
    assert check_grounding("The macro-F1 is 0.81 (81 %).", facts).flagged_sentences == []
    for text in ("Low confidence touches 54.1 % of crops.", "The IoU of crops, 58.6 %, is fair.",
                 "Overall accuracy, 96.5 %, is good."):
        assert check_grounding(text, facts).flagged_sentences == [text], text
    for text in ("Low confidence touches 36.5 % of crops.", "The IoU of crops, 40.2 %, is fair.",
                 "Overall accuracy, 94.6 %, is good.", "Crops show low confidence: 54.1 % on average."):
        assert check_grounding(text, facts).flagged_sentences == [], text


def test_average_iou_class_accuracy_and_longer_appositions_round_24():
    """QA round 24: "the average IoU" and "the overall IoU" (whole words since round 23) named no measure and were
    flagged; "Crops have an accuracy of 61.0 %" and "Crops accuracy is 61.0 %" (its recall) were flagged; "The F1
    of crops, at 40.2 %, ...", "Overall accuracy, which is 96.5 %, ..." and "The IoU of crops, the weakest class,
    is 57.3 %" bound no measure and passed."""
    facts = _crops_facts()
    honest = ["The average IoU is 58.6 %.", "The overall IoU is 58.6 %.", "Crops have an accuracy of 61.0 %.",
              "Crops accuracy is 61.0 %.", "The crops' accuracy is 80.0 %.", "The F1 of crops, at 57.3 %, is fair.",
              "Overall accuracy, which is 94.6 %, is high.", "The IoU of crops, the weakest class, is 40.2 %.",
              "Crops' overall IoU is 40.2 %."]
    false = ["The average IoU is 40.2 %.", "Crops have an accuracy of 94.6 %.", "Crops accuracy is 57.3 %.",
             "The F1 of crops, at 40.2 %, is fair.", "Overall accuracy, which is 96.5 %, is high.",
             "The IoU of crops, the weakest class, is 57.3 %.", "Crops' overall IoU is 58.6 %."]
    for text in honest:
        assert check_grounding(text, facts).flagged_sentences == [], text
    for text in false:
        assert check_grounding(text, facts).flagged_sentences == [text], text


def test_appositions_asides_and_degree_words_round_24():
    """QA round 24's mutation check: false figures passed after "very high:", in an apposition without its closing
    comma, after an adverb between commas ("sadly,") or a lead-in ("at last", "in fact"); the limits of each rule
    are held by honest sentences beside them."""
    facts = _crops_facts(heldout_macro_f1=0.81)
    facts["metrics"]["kappa"] = 0.78
    false = ["Accuracy is very high: 96.5 %.", "The IoU of crops, 58.6 % is fair.", "The IoU of crops, sadly, 58.6 %, is fair.",
             "Overall accuracy, at last 96.5 %, is good.", "The IoU of crops, in fact 58.6 %, is fair.",
             "The macro-F1 is 0.81 and crops, i.e. 81 % of the map, grow.", "The IoU of crops, sadly, is 58.6 %.",
         "The IoU of crops is, sadly, 58.6 %.", "Overall accuracy, however, is 58.6 %.",
         "The mean IoU, at last, is 94.6 %.", "Accuracy is still high: 96.5 %.",
         "Overall accuracy, roughly 96.5 %, is good.", "The IoU of crops, the weakest class, was 57.3 %.",
         "The F1 of crops, 40.2 % was fair.", "The IoU of the crops, the weakest of all classes here, is 57.3 %.",
         "The mean intersection over union is 40.2 %.", "Overall accuracy, that is 96.5 %, is high.",
         "Crops reach an accuracy of 94.6 %.", "Crops show an accuracy of 94.6 %.",
         "Crops reached an accuracy of 94.6 %.", "Crops have the accuracy of 94.6 %."]
    honest = ["Kappa is 0.78, or 78 %.", "Accuracy is very high: 94.6 %.", "The IoU of crops, 40.2 % is fair.",
              "The IoU of crops, sadly, 40.2 %, is fair.", "Overall accuracy, at last 94.6 %, is good.",
              "The IoU of crops, in fact 40.2 %, is fair.", "The IoU of the crops class, 40.2 %, is fair.",
              "Overall accuracy is high, 36.5 % of crop pixels are low-confidence.",
              "Confidence is low for crops: 36.5 % of their pixels.", "Water covers most of the map, 4.7 % is crops.",
          "The IoU of crops, sadly, is 40.2 %.", "Overall accuracy, however, is 94.6 %.",
          "Crops reached an accuracy of 61.0 %."]
    for text in false:
        assert check_grounding(text, facts).flagged_sentences, text  # "i.e." may end the sentence the checker reads
    for text in honest:
        assert check_grounding(text, facts).flagged_sentences == [], text
