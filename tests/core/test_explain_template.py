"""Template writer: fully grounded over varied fact sets, expert content, deterministic."""
import json
import random
import re

import pytest

from claire.claire_plugin.core.explain import check_grounding, explain, template
from claire.claire_plugin.core.explain.facts import build_facts
from claire.claire_plugin.core.explain.report import tables
from claire.tests.fixtures.explain_examples import example_card, example_summary, sample_run


def _random_run(seed: int, reference: bool, names=None):
    rng = random.Random(seed)
    k = rng.randint(2, 6)
    names = (names or ["water", "trees", "crops", "built area", "bare ground", "Zone 7"])[:k]
    pixels = [rng.randint(0, 200000) if i else rng.randint(1, 900000) for i in range(k)]
    conf = [rng.uniform(0.3, 0.999) for _ in range(k)]
    low = [rng.uniform(0.0, 0.6) for _ in range(k)]
    sar = [rng.uniform(0.0, 1.0) for _ in range(k)] if seed % 4 else None
    cm = None
    if reference:
        cm = [[rng.randint(0, 3000) + (20000 if i == j else 0) for j in range(k)] for i in range(k)]
    summary = example_summary(pixels, conf, low, sar, confusion=cm, names=names,
                              pixel_area_m2=rng.choice([100.0, 400.0, 900.0]),
                              optical_invalid_share=rng.uniform(0, 0.3), cloud_share=rng.uniform(0, 0.5))
    if seed % 3 == 0:  # where each class lies: unlike the training data, under cloud, from SAR alone
        for c in summary["classes"]:
            c.update(unfamiliar_share=rng.choice([0.0, rng.uniform(0, 1)]), cloud_share=rng.uniform(0, 0.8),
                     sar_only_share=rng.choice([0.0, rng.uniform(0, 0.5)]))
        summary["unfamiliar_share"] = rng.uniform(0, 1)
        summary.update(optical_offset_suspected=seed % 2 == 0, region_shape=[rng.choice([120, 600]), 700])
    return summary, example_card(names)


@pytest.mark.parametrize("seed", range(12))
def test_template_is_fully_grounded(seed):
    summary, card = _random_run(seed, reference=seed % 2 == 0)
    focus = summary["classes"][0]["name"] if seed % 3 == 0 else None
    facts = build_facts(summary, card, focus_class=focus)
    text = template.write(facts)
    res = check_grounding(text, facts)
    assert res.flagged_sentences == [], res.flagged_sentences
    assert res.grounded_share == 1.0
    assert res.numbers_total >= 8  # the text is quantitative, not vacuously grounded


def test_large_areas_and_counts_are_grouped_so_no_reader_takes_them_for_decimals():
    # "2,007.0 ha" reads as about 2 ha where the comma is the decimal separator
    summary, card = sample_run(with_reference=True)
    summary = example_summary([2_500_000, 1_200_000], [0.9, 0.8], [0.1, 0.2], None, names=["water", "trees"],
                              pixel_area_m2=100.0)
    facts = build_facts(summary, card)
    text = template.write(facts)
    assert "25\u202f000.0 ha" in text and not re.search(r"\d,\d{3}", text)
    assert check_grounding(text, facts).grounded_share == 1.0
    report_tables = tables({"facts": facts})
    assert ["Valid area (ha)", "37\u202f000.0"] in report_tables[-1][2]


def test_template_with_reference_covers_the_expert_points():
    summary, card = sample_run(with_reference=True)
    facts = build_facts(summary, card)
    text = template.write(facts)
    assert len(text.split()) >= 120 and text.count(".") >= 8  # at least a paragraph
    assert "the largest is trees" in text                      # what dominates
    assert "Confidence is lowest for bare ground" in text       # where confidence is low
    assert "The gate gave the SAR most of its weight for water" in text  # where the gate weighted SAR most
    assert "not which of them decided a class" in text and "carried the decision" not in text
    assert "most reliable classes are water" in text            # reliable with a reference
    assert "rangeland mapped as crops" in text                  # confused pair
    assert "kappa 0.78" in text
    assert check_grounding(text, facts).grounded_share == 1.0


def test_reference_pixels_left_out_are_said_with_their_share_and_codes():
    """Reference codes that are no class of the map were left out of the figures without a word."""
    summary, card = sample_run(with_reference=True)
    summary["metrics"]["reference_left_out"] = {"pixels": 2113, "share": 0.4228, "codes": {"10": 2113}}
    facts = build_facts(summary, card)
    text = template.write(facts)
    assert "42.3 % of the reference's pixels hold codes that are no class of this map (10) and were left out" in text
    assert check_grounding(text, facts).grounded_share == 1.0
    summary["metrics"]["reference_left_out"] = {"pixels": 0, "share": 0.0, "codes": {}}
    assert "left out" not in template.write(build_facts(summary, card))


def test_template_without_reference_says_nothing_about_accuracy():
    facts = build_facts(*sample_run(with_reference=False))
    text = template.write(facts)
    assert "reference" not in text and "F1" not in text
    assert "The gate gave the SAR most of its weight for" in text


def test_template_is_deterministic_and_streams_paragraphs():
    facts = build_facts(*sample_run(), focus_class="water")
    chunks = []
    first = template.write(facts, on_text=chunks.append)
    assert first == template.write(facts)
    assert "".join(chunks) == first and len(chunks) >= 4
    assert first.startswith("Selected class water")


def test_explain_without_model_uses_template():
    facts = build_facts(*sample_run())
    streamed = []
    ex = explain(facts, on_text=streamed.append)
    assert ex.generator == "template" and ex.fallback_reason is None
    assert "template" in ex.label
    assert ex.grounded_share == 1.0 and ex.numbers_total == ex.numbers_grounded > 0
    assert "".join(streamed) == ex.text
    json.dumps(ex.to_dict(), allow_nan=False)


def test_empty_map_still_explained():
    summary = example_summary([0, 0], [0.0, 0.0], [0.0, 0.0], [0.5, 0.5], names=["water", "trees"])
    facts = build_facts(summary, example_card(["water", "trees"]))
    ex = explain(facts)
    assert "nothing to interpret" in ex.text and ex.grounded_share == 1.0


def test_poor_map_is_not_called_reliable():
    cm = [[10, 90, 0], [80, 20, 0], [50, 50, 1]]
    summary = example_summary([140, 160, 1], [0.4, 0.5, 0.3], [0.9, 0.8, 0.9], [0.5, 0.5, 0.5],
                              confusion=cm, names=["water", "trees", "crops"])
    facts = build_facts(summary, example_card(["water", "trees", "crops"]))
    text = template.write(facts)
    assert "No class is mapped reliably" in text and "most reliable" not in text
    assert "should not be used" in text
    assert check_grounding(text, facts).grounded_share == 1.0


def test_digit_class_names_and_planted_number_in_real_text():
    names = ["Class 12", "Zone 7", "water"]
    cm = [[900, 50, 50], [30, 700, 70], [10, 20, 400]]
    summary = example_summary([940, 770, 520], [0.9, 0.8, 0.7], [0.05, 0.15, 0.3], [0.2, 0.4, 0.8],
                              confusion=cm, names=names)
    facts = build_facts(summary, example_card(names), focus_class="Zone 7")
    text = template.write(facts)
    assert "Class 12" in text and "Zone 7" in text
    assert check_grounding(text, facts).grounded_share == 1.0
    oa = f"{facts['metrics']['oa_pct']:.1f} %"
    planted = text.replace(oa, "97.5 %", 1)
    assert planted != text
    res = check_grounding(planted, facts)
    assert len(res.flagged_sentences) == 1 and "97.5 %" in res.flagged_sentences[0]
    assert res.grounded_share < 1.0
    dropped = check_grounding(planted, facts, drop_unmatched=True)
    assert "97.5" not in dropped.text and "Zone 7" in dropped.text


def test_cloud_gaps_and_unfamiliar_are_explained_and_grounded():
    summary, card = _random_run(1, reference=False)
    summary.update(cloud_share=0.213, mean_sar_share_clouded=0.81, mean_sar_share_clear=0.32,
                   optical_invalid_share=0.05, sar_only_share=0.048, unfamiliar_share=0.38)
    facts = build_facts(summary, card)
    text = template.write(facts)
    assert "21.3 % of the map was under cloud" in text and "leaned mostly on SAR (81.0 %" in text
    assert "the map was classified from SAR alone (4.8 % of the map)" in text
    assert "has no class" not in text  # every pixel of the grid classified
    # (QA, swath) a SAR strip narrower than the optical: the pixels without a class are said, grounded
    valid = summary.get("valid_pixels") or sum(c["pixels"] for c in summary["classes"])
    strip = build_facts(dict(summary, valid_pixels=valid, nodata_pixels=valid // 3), card)
    said = template.write(strip)
    assert f"{strip['scene']['unclassified_pct']:.1f} % of the output grid has no class" in said, said
    assert check_grounding(said, strip).flagged_sentences == []
    # (review) optical gaps left unclassified (--no-sar-fill) are not blamed on the SAR
    nofill = build_facts(dict(summary, valid_pixels=valid, nodata_pixels=valid // 4, optical_invalid_share=0.2,
                              sar_only_share=0.0), card)
    told = template.write(nofill)
    assert "those pixels are left without a class" in told and "has no class" not in told, told
    assert "should not be trusted on 38.0 % of this map" in text and "Train it on your area" in text
    assert text.index("should not be trusted") < text.index("most certain"), "the warning comes first"
    assert "a high confidence proves nothing" in text
    res = check_grounding(text, facts)
    assert res.flagged_sentences == [], res.flagged_sentences
    # with half the optical missing the gaps are named as a cause of the share (a half gap took a training site
    # from 0 % to 100 % unlike the training data), grounded like every number
    summary.update(optical_invalid_share=0.5, sar_only_share=0.5)
    facts = build_facts(summary, card)
    text = template.write(facts)
    assert "Part of this may come from the optical gaps (50.0 % of the map was classified from SAR alone)" in text
    # (QA, swath) gaps in both rasters have no map: not named as a cause
    facts_both = build_facts(dict(summary, sar_only_share=0.0), card)
    assert "Part of this may come from the optical gaps" not in template.write(facts_both)
    # a model trained on the user's own polygons: add polygons there and train again, not "train it on your area"
    own = dict(card, metrics=dict(card.get("metrics") or {}, heldout_polygons={"macro_f1": 0.8}))
    facts_own = build_facts(summary, own)
    said = template.write(facts_own)
    assert "trained on your own polygons" in said and "add polygons of the cover you see there" in said, said
    assert "Train it on your area" not in said and check_grounding(said, facts_own).flagged_sentences == []
    assert check_grounding(text, facts).flagged_sentences == []
    assert "dark to the radar" in text  # SAR alone is not said to tell all water from land


@pytest.mark.parametrize("share", [None, 0.02])
def test_no_unfamiliar_warning_without_statistics_or_at_the_calibration_rate(share):
    summary, card = _random_run(1, reference=False)
    summary["unfamiliar_share"] = share
    text = template.write(build_facts(summary, card))
    assert "should not be trusted" not in text and "proves nothing" not in text


def test_a_forests_map_is_explained_as_a_per_pixel_forest():
    """A forest checkpoint has no fusion gate and no spatial context: the template and the language model's
    facts say so, grounded; a network without a gate keeps the plain sentence."""
    from claire.claire_plugin.core.explain.prompt import facts_lines

    k = 3
    summary = example_summary([5000, 3000, 2000], [0.9, 0.8, 0.7], [0.1, 0.2, 0.3], None,
                              names=["water", "trees", "crops"][:k])
    card = dict(example_card(["water", "trees", "crops"]), arch="forest")
    facts = build_facts(summary, card)
    text = template.write(facts)
    assert "random forest that decides each pixel from its own optical and SAR values" in text
    assert check_grounding(text, facts).flagged_sentences == []
    assert any(line.startswith("Model: a random forest") for line in facts_lines(facts))
    plain = template.write(build_facts(summary, example_card(["water", "trees", "crops"])))
    assert "The model reports no fusion gate" in plain and "random forest" not in plain


def test_an_ensembles_map_says_the_fusion_figures_are_the_networks():
    """An ensemble checkpoint (network + forest averaged) keeps the fusion-gate sentences, said to describe the
    network's part, grounded; the language model's facts name the two parts."""
    from claire.claire_plugin.core.explain.prompt import facts_lines

    names = ["water", "trees", "crops"]
    summary = example_summary([5000, 3000, 2000], [0.9, 0.8, 0.7], [0.1, 0.2, 0.3], [0.7, 0.3, 0.4], names=names)
    facts = build_facts(summary, dict(example_card(names), arch="ensemble"))
    text = template.write(facts)
    assert "averages a network with a random forest" in text and "Across the scene the fusion gate gave the SAR" in text
    assert check_grounding(text, facts).flagged_sentences == []
    assert any(line.startswith("Model: a network and a random forest averaged") for line in facts_lines(facts))
    plain = template.write(build_facts(summary, example_card(names)))
    assert "random forest" not in plain
    for weight, phrase in ((0.25, "which has 25.0 % of the weight where the optical image is clear"),
                           (0.0, "with the forest's weight at 0.0 %, as chosen on the held-out polygons")):
        card = dict(example_card(names), arch="ensemble", config={"forest_weight": weight})
        facts = build_facts(summary, card)
        text = template.write(facts)
        assert phrase in text and check_grounding(text, facts).flagged_sentences == []
        assert f"forest's weight {weight * 100:.1f} %" in "\n".join(facts_lines(facts))


def test_sar_only_pixels_cite_the_models_held_out_score_from_sar_alone():
    """A model trained from polygons carries its held-out macro-F1 with the optical and from SAR alone: where part
    of the map came from SAR alone the explanation and the language model's facts cite both, grounded; without
    SAR-only pixels or without the scores, nothing is said."""
    from claire.claire_plugin.core.explain.prompt import facts_lines

    summary, card = _random_run(1, reference=False)
    summary.update(optical_invalid_share=0.05, sar_only_share=0.048, cloud_share=0.01)
    card = dict(card, metrics={"heldout_polygons": {"macro_f1": 0.7243}, "heldout_polygons_sar_only":
                               {"macro_f1": 0.5273}})
    facts = build_facts(summary, card)
    text = template.write(facts)
    assert "macro-F1 0.53 from SAR alone against 0.72 with the optical, so read those pixels with more care" in text
    res = check_grounding(text, facts)
    assert res.flagged_sentences == [], res.flagged_sentences
    assert any("0.72 with the optical, 0.53 from SAR alone" in line for line in facts_lines(facts))
    backing = {n.text: n.fact for n in res.numbers if n.text in ("0.53", "0.72")}
    assert "sar_only_heldout_macro_f1" in str(backing["0.53"]) and "heldout_macro_f1" in str(backing["0.72"])
    assert "from SAR alone against" not in template.write(build_facts(dict(summary, sar_only_share=0.0), card))
    assert "from SAR alone against" not in template.write(build_facts(summary, dict(card, metrics={})))
    assert "On your held-out polygons this model" in text
    points = build_facts(summary, dict(card, training={"labels": {"geometry": "point"}}))
    assert "On your held-out points this model" in template.write(points)
    assert any("on the user's points" in line for line in facts_lines(points))
    # under cloud a cloud-gated network decides as from SAR alone: from 5 % of the scene clouded it is said too
    cloudy = build_facts(dict(summary, sar_only_share=0.0, optical_invalid_share=0.0, cloud_share=0.4), card)
    text = template.write(cloudy)
    assert ("0.72 with the optical, and under thick cloud it decides as from SAR alone, so read the clouded pixels "
            "with more care than the rest.") in text
    assert check_grounding(text, cloudy).flagged_sentences == []
    assert "from SAR alone against" not in template.write(
        build_facts(dict(summary, sar_only_share=0.0, optical_invalid_share=0.0, cloud_share=0.04), card))


def test_classes_sar_alone_takes_for_others_are_named_where_the_map_came_from_sar_alone():
    """The card's held-out confusion from SAR alone against the same pixels with the optical: a class SAR alone
    takes for another (here water for bare ground on 96 of 108 pixels, never with the optical) is named in the
    explanation and the language model's facts, each number grounded; a confusion the optical shares is not."""
    from claire.claire_plugin.core.explain.prompt import facts_lines

    summary, card = _random_run(1, reference=False)
    summary.update(optical_invalid_share=0.05, sar_only_share=0.048, cloud_share=0.01)
    names = ["bare ground", "trees", "water"]
    per_class = [{"name": n} for n in names]
    clear = {"macro_f1": 0.9, "per_class": per_class, "confusion": [[108, 0, 0], [0, 72, 36], [0, 0, 108]]}
    alone = {"macro_f1": 0.6, "per_class": per_class, "confusion": [[95, 0, 13], [0, 72, 36], [96, 0, 12]]}
    card = dict(card, metrics={"heldout_polygons": clear, "heldout_polygons_sar_only": alone})
    facts = build_facts(summary, card)
    assert facts["model"]["sar_only_lookalikes"] == [
        {"reference": "water", "predicted": "bare ground", "share_of_reference_pct": 88.9, "with_optical_pct": 0.0}]
    text = template.write(facts)
    assert ("From SAR alone it took 88.9 % of the held-out water pixels for bare ground (0.0 % with the optical), "
            "so water and bare ground in the part of the map decided from SAR alone are doubtful.") in text
    res = check_grounding(text, facts)
    assert res.flagged_sentences == [], res.flagged_sentences
    assert "sar_only_lookalikes" in str({n.text: n.fact for n in res.numbers}["88.9"])
    assert any('took 88.9 % of the held-out "water" pixels for "bare ground"' in line for line in facts_lines(facts))
    # trees -> water (36 of 108) happens with the optical too: not SAR's doing
    assert "trees pixels" not in text
    assert "took" not in template.write(build_facts(dict(summary, sar_only_share=0.0), card))
    cloudy = template.write(build_facts(dict(summary, sar_only_share=0.0, optical_invalid_share=0.0,
                                             cloud_share=0.4), card))
    assert "so water and bare ground in the part of the map decided from SAR alone or under cloud are doubtful" in cloudy



def _where(summary, **per_class):
    """`summary` with per-class fields set: name -> dict of fields."""
    for c in summary["classes"]:
        c.update(per_class.get(c["name"], {}))
    return summary


def test_classes_lying_where_the_model_should_not_be_trusted_are_named_not_explained():
    """A class most of whose pixels are unlike the training data is named as doubtful, and gets no physical reason
    for its fusion weight; one mostly under cloud is said to be SAR's for that reason (QA: crops 100 % unfamiliar
    was "plausibly because the radar responds to field structure")."""
    summary, card = sample_run(with_reference=False)
    names = [c["name"] for c in summary["classes"]]
    summary["unfamiliar_share"] = 0.4
    summary["cloud_share"] = 0.3
    for c in summary["classes"]:
        c.update(mean_sar_share=0.2, unfamiliar_share=0.0, cloud_share=0.0)
    _where(summary, **{names[0]: dict(mean_sar_share=0.9, unfamiliar_share=0.95),
                      names[1]: dict(mean_sar_share=0.8, cloud_share=0.7)})
    facts = build_facts(summary, card)
    text = template.write(facts)
    low = text.lower()
    assert f"{names[0]} (95.0 % of" in low and "mostly where the scene is unlike the training data" in low
    assert f"The gate gave the SAR most of its weight for {names[0]} (90.0 %)." in text  # no physical handle
    assert f"{names[1]} (70.0 % of" in low and "mapped mostly where the optical could not see" in text
    assert check_grounding(text, facts).flagged_sentences == []
    for c in summary["classes"]:
        c["unfamiliar_share"] = 0.9
    assert "Every class of this map lies mostly where the scene is unlike the training data" in \
        template.write(build_facts(summary, card))


def test_weights_near_a_half_small_classes_and_two_classes_get_no_overstatement():
    summary, card = sample_run(with_reference=False)
    for c in summary["classes"]:
        c.update(mean_sar_share=0.52)
    text = template.write(build_facts(summary, card))
    assert "SAR most of its weight" not in text and "optical bands most of its weight" not in text
    two = dict(summary, classes=summary["classes"][:2])
    text = template.write(build_facts(two, card))
    low = text.split("Confidence is lowest for ")[1].split(";")[0]
    assert " and " not in low.split("(")[0]  # the weaker of two only
    best = text.split(" the most certain class")[0].split(". ")[-1] if "most certain" in text else ""
    assert not best or best.split(" ")[0].lower() not in low.lower()


def test_what_is_wrong_with_the_input_comes_before_training_advice():
    """An undeclared Sentinel-2 offset, or a scene smaller than the calibration scenes, explains much of an
    unlike-the-training-data share: said, instead of 'train it on your area' alone."""
    summary, card = sample_run(with_reference=False)
    summary["unfamiliar_share"] = 0.5
    plain = template.write(build_facts(summary, card))
    assert "Train it on your area" in plain and "offset" not in plain
    offset = template.write(build_facts(dict(summary, optical_offset_suspected=True, region_shape=[600, 600]), card))
    assert "reflectance offset was not removed" in offset and "Train it on your area" not in offset
    small = template.write(build_facts(dict(summary, region_shape=[120, 120]), card))
    assert "smaller than the scenes the score was calibrated on" in small and "train the model on your area" in small


def test_cloud_is_named_as_a_cause_of_the_unlike_share_before_the_offset_or_training():
    """QA (flood responder): 90 % thick cloud read 100 % unlike the training data and the explanation only said
    "train it on your area" (the same pixels as gaps were named as a cause); a scene all under cloud, bright
    everywhere, was put down to an unremoved Sentinel-2 offset first, and removing it changed nothing."""
    summary, card = sample_run(with_reference=False)
    summary.update(unfamiliar_share=1.0, cloud_share=0.902, sar_only_share=0.0, region_shape=[600, 600])
    clouded = template.write(build_facts(summary, card))
    assert "Part of this may come from the cloud (90.2 % of the map lay under cloud" in clouded, clouded
    assert "If a clear scene of the same place shows as much, train the model on your area" in clouded
    assert "Train it on your area with a few polygons" not in clouded
    bright = template.write(build_facts(dict(summary, optical_offset_suspected=True), card))
    assert ("the optical values are bright everywhere, as under thick cloud (90.2 % of the map lay under cloud) or "
            "in Sentinel-2 of a newer processing baseline") in bright, bright
    assert "much of this may go" not in bright and "Part of this may come from the cloud" not in bright
    thin = template.write(build_facts(dict(summary, cloud_share=0.1, optical_offset_suspected=True), card))
    assert "much of this may go" in thin and "Part of this may come from the cloud (10.0 %" in thin
    clear = template.write(build_facts(dict(summary, cloud_share=0.01), card))
    assert "may come from the cloud" not in clear and "Train it on your area" in clear


def test_cloud_gets_a_caveat_unless_the_model_has_its_own_sar_alone_scores():
    summary, card = _random_run(1, reference=False)
    summary.update(cloud_share=0.4, mean_sar_share_clouded=0.9, mean_sar_share_clear=0.4, sar_only_share=0.0,
                   optical_invalid_share=0.0)
    text = template.write(build_facts(summary, card))
    assert "a decision from SAR alone is less sure than one with the optical" in text
    scored = dict(card, metrics={"heldout_polygons": {"macro_f1": 0.72}, "heldout_polygons_sar_only":
                                 {"macro_f1": 0.53}})
    text = template.write(build_facts(summary, scored))
    assert "a decision from SAR alone is less sure" not in text and "from SAR alone against 0.72" in text


def test_small_snow_corrections_and_reliable_classes_are_not_overstated():
    summary, card = sample_run(with_reference=True)
    assert "snow or ice where the clear optical" not in template.write(
        build_facts(dict(summary, snow_ruled_out_share=0.002), card))
    assert "snow or ice where the clear optical" in template.write(
        build_facts(dict(summary, snow_ruled_out_share=0.02), card))
    facts = build_facts(summary, card)
    for c in facts["metrics"]["per_class"]:
        c["f1_pct"] = 90.0 - len(c["name"])  # every class reliable
    text = template.write(facts)
    assert "also weak" not in text


def test_a_language_models_text_gets_the_cautions_it_left_out(monkeypatch):
    from claire.claire_plugin.core import explain as ex
    from claire.claire_plugin.core.explain import phi3

    summary, card = sample_run(with_reference=False)
    summary["unfamiliar_share"] = 0.6
    facts = build_facts(summary, card)

    class Out:
        text, generator = "The map is mostly water and looks certain.", "phi3:fake"
    monkeypatch.setattr(phi3, "generate", lambda *a, **k: Out())
    res = ex.explain(facts, explainer="fake")
    assert res.text.startswith("The model should not be trusted on 60.0 % of this map")
    assert res.text.endswith("The map is mostly water and looks certain.") and res.generator == "phi3:fake"


def test_a_class_name_is_not_capitalised_into_another_class():
    """Classes "Crops" and "crops" (different classes, as written): a sentence starting with "crops" said "Crops",
    the other class."""
    summary = example_summary([700_000, 200_000, 100_000], [0.9, 0.8, 0.7], [0.1, 0.2, 0.3], None,
                              names=["crops", "Crops", "water"])
    facts = build_facts(summary, example_card(["crops", "Crops", "water"]))
    text = template.write(facts)
    assert text.count("crops dominate") + text.count("crops dominates") == 1, text
    assert "Crops dominate" not in text and "followed by Crops (20.0 %)" in text
    assert check_grounding(text, facts).grounded_share == 1.0


def test_cloud_and_gap_sentences_name_what_to_read_with_care_and_say_the_caveat_once():
    """QA (outputs agree, 3.40 walk): "the fusion gate leaned hardly more on SAR there (...), so treat those classes
    with care" named no class; with optical gaps and cloud the SAR-alone caveat stood twice, word for word."""
    summary, card = sample_run(with_reference=False)
    summary.update(cloud_share=0.3, mean_sar_share_clouded=0.542, mean_sar_share_clear=0.518)
    text = template.write(build_facts(summary, card))
    assert "leaned hardly more on SAR there (54.2 % SAR weight, against 51.8 % on clear pixels), so read the map " \
           "there with care." in text and "those classes" not in text
    summary.update(optical_invalid_share=0.25, sar_only_share=0.25, mean_sar_share_clouded=0.9)
    facts = build_facts(summary, card)
    text = template.write(facts)
    assert text.count("a decision from SAR alone is less sure than one with the optical") == 1, text
    assert "as in the gaps, read the classes there with care" in text
    assert check_grounding(text, facts).flagged_sentences == []


def test_physical_reasons_are_given_for_whole_words_of_a_class_name_only():
    """QA (new classes): "rice paddies" was given snow physics ("ice" inside "rice"); "street" would have been
    trees, "seagrass" water. Cues match words (or a word's beginning where the key is a stem)."""
    from claire.claire_plugin.core.explain.template import _sar_cue

    for name in ("rice paddies", "street", "office", "seagrass", "Greenhouses", "vineyard"):
        assert _sar_cue(name) is None, name
    assert "snow" in _sar_cue("snow/ice") and "snow" in _sar_cue("ice")
    assert "canopy" in _sar_cue("Trees") and "canopy" in _sar_cue("woodland")
    assert "field structure" in _sar_cue("cropland") and "field structure" in _sar_cue("seasonal crops")
    assert "open water" in _sar_cue("lakes") and "double-bounce" in _sar_cue("Built  Area")


def test_low_confidence_under_cloud_is_not_put_down_to_class_boundaries():
    """QA (flood responder): flood water decided from SAR under cloud (31 % confidence, 92 % right) was explained by
    "class boundaries or spectrally mixed cover"; a macroclass with no low-confidence pixel got the same sentence."""
    summary, card = sample_run(with_reference=False)
    for c in summary["classes"]:
        c.update(cloud_share=0.8, sar_only_share=0.1)
    clouded = template.write(build_facts(summary, card))
    assert "most of their pixels lay under cloud or in the optical gaps, where the model sees little but the radar" in clouded
    assert "class boundaries" not in clouded
    for c in summary["classes"]:
        c.update(cloud_share=0.0, sar_only_share=0.0, low_confidence_share=0.0)
    sure = template.write(build_facts(summary, card))
    assert "none of their pixels is low-confidence" in sure and "class boundaries" not in sure, sure


# Mutation audit (QA round 14, third wave): rules no other test pinned, each shown to fail on its mutant.
def _facts(reference=False):
    summary, card = sample_run(with_reference=reference)
    return build_facts(summary, card)


def test_a_class_at_f1_just_above_the_reliable_mark_is_called_reliable():  # T1 (RELIABLE_F1_PCT)
    facts = _facts(reference=True)
    for c in facts["metrics"]["per_class"]:
        c["f1_pct"] = 60.0
    facts["metrics"]["per_class"][0]["f1_pct"] = 72.0
    text = template.write(facts)
    assert "The most reliable class is water (F1 72.0 %" in text and "No class is mapped reliably" not in text


def test_a_class_just_over_half_unlike_the_training_data_is_doubtful():  # T3 (MOSTLY_PCT)
    facts = _facts()
    water = next(c for c in facts["classes"] if c["name"] == "water")
    water["unfamiliar_pct"] = 55.0
    text = template.write(facts)
    assert "water (55.0 % of its pixels) lies mostly where the scene is unlike the training data" in text.lower()


def test_a_class_of_one_and_a_half_percent_gets_its_physical_reason():  # T5 (NOTABLE_SHARE_PCT)
    facts = _facts()
    for c in facts["classes"]:
        c["sar_reliance_pct"], c["optical_reliance_pct"] = 40.0, 60.0
    water = next(c for c in facts["classes"] if c["name"] == "water")
    water.update(share_pct=1.5, sar_reliance_pct=80.0, optical_reliance_pct=20.0)
    text = template.write(facts)
    assert "most of its weight for water (80.0 %); the radar has a physical handle on it" in text


@pytest.mark.parametrize("top, said", [
    (54.7, "For no class did the gate clearly favour the SAR; it came closest for water (54.7 %), near an even split."),
    (50.0, "For no class did the gate put most weight on the SAR; its SAR weight was highest for water (50.0 %)."),
    (40.0, "For no class did the gate put most weight on the SAR; its SAR weight was highest for water (40.0 %)."),
])
def test_no_class_led_by_the_sar_is_said_without_contradicting_its_number(top, said):
    """QA (round 19, the dock): "For no class did the gate put most weight on the SAR; its SAR weight was highest for
    flooded vegetation (54.7 %)": 54.7 % is most of the weight (a class is SAR-led from LED_PCT, 55 %)."""
    facts = _facts()
    for c in facts["classes"]:
        c["sar_reliance_pct"], c["optical_reliance_pct"] = 30.0, 70.0
    next(c for c in facts["classes"] if c["name"] == "water").update(sar_reliance_pct=top,
                                                                     optical_reliance_pct=round(100 - top, 1))
    text = template.write(facts)
    assert said in text
    assert check_grounding(text, facts).grounded_share == 1.0


def test_snow_ruled_out_on_less_than_one_percent_is_not_reported():  # T6 (SNOW_SAY_PCT)
    facts = _facts()
    facts["scene"].update(snow_ruled_out_pct=0.7, snow_ruled_out_clear_pct=0.7, snow_ruled_out_clouded_pct=0.0)
    assert "snow or ice" not in template.write(facts)
    facts["scene"].update(snow_ruled_out_pct=1.2, snow_ruled_out_clear_pct=1.2)
    assert "On 1.2 % of the map the network said snow or ice" in template.write(facts)


def test_half_of_a_class_unlike_the_training_data_is_already_doubtful():  # T9
    facts = _facts()
    next(c for c in facts["classes"] if c["name"] == "water")["unfamiliar_pct"] = 50.0
    assert "water (50.0 % of its pixels) lies mostly where" in template.write(facts).lower()


def test_cloud_and_gaps_together_make_a_class_decided_by_the_gap():  # T10
    facts = _facts()
    next(c for c in facts["classes"] if c["name"] == "water").update(cloud_pct=30.0, sar_only_pct=30.0)
    text = template.write(facts)
    assert "water (30.0 % of its pixels under cloud and 30.0 % in the optical gaps) was mapped mostly where" \
        in text.lower()


def test_a_class_of_exactly_half_the_scene_dominates():  # T11
    facts = _facts()
    facts["classes"][0]["share_pct"] = 50.0
    name = facts["classes"][0]["name"]
    assert f"{name[:1].upper() + name[1:]} dominate" in template.write(facts)


def test_the_five_percent_thresholds_include_five_percent_itself():  # T14, T16, T23 and the unfamiliar notes
    """At exactly 5.0 % (as the facts round a share) the warnings apply: "from this share on" in every place."""
    facts = _facts()
    facts["scene"].update(unfamiliar_pct=5.0, sar_only_pct=5.0, cloud_pct=5.0, optical_invalid_pct=5.0,
                          sar_reliance_clouded_pct=60.0, sar_reliance_clear_pct=55.0)
    text = template.write(facts)
    assert "The model should not be trusted on 5.0 % of this map" in text
    assert "inside the part of the scene unlike the training data a high confidence proves nothing" in text
    assert "Part of this may come from the optical gaps (5.0 % of the map" in text
    assert "Part of this may come from the cloud (5.0 % of the map" in text
    assert "there the fusion gate leaned mostly on SAR (60.0 % SAR weight" in text
    facts["model"] = dict(facts.get("model") or {}, heldout_macro_f1=0.72, sar_only_heldout_macro_f1=0.53)
    facts["scene"]["sar_only_pct"] = 0.0
    assert "read the clouded pixels with more care than the rest" in template.write(facts)
    facts["scene"].update(unfamiliar_pct=4.9, cloud_pct=4.9)
    text = template.write(facts)
    assert "should not be trusted" not in text and "high confidence proves nothing" not in text
    assert "from SAR alone against" not in text


def test_a_model_from_labels_says_its_held_out_score_and_no_class_is_certain_when_most_pixels_are_not():
    """QA round 22: a model trained from labels with held-out macro-F1 0.27 on a clear scene: the text never said
    the score, and called the dominant class "the most certain class" though all its pixels were low-confidence."""
    summary, card = _random_run(1, reference=False)
    summary.update(optical_invalid_share=0.0, sar_only_share=0.0, cloud_share=0.0)
    names = [c["name"] for c in summary["classes"]]
    card = dict(card, metrics={"heldout_polygons": {"macro_f1": 0.27, "per_class": [{"name": n} for n in names]}})
    for c in summary["classes"]:
        c["low_confidence_share"] = 1.0
    facts = build_facts(summary, card)
    text = template.write(facts)
    assert "On your held-out polygons this model scored macro-F1 0.27: a poor score" in text
    assert "the most certain class" not in text
    assert check_grounding(text, facts).flagged_sentences == []
    from claire.claire_plugin.core.explain.prompt import facts_lines

    assert "Held-out macro-F1 of this model on the user's polygons: 0.27." in facts_lines(facts)  # no SAR-alone score
    clouded = template.write(build_facts(dict(summary, cloud_share=0.4), card))  # cloud, and no SAR-alone score
    assert "On your held-out polygons this model scored macro-F1 0.27: a poor score" in clouded
    both = dict(card, metrics=dict(card["metrics"], heldout_polygons_sar_only={
        "macro_f1": 0.2, "per_class": [{"name": n} for n in names]}))
    assert "this model scored macro-F1 0.27: a poor score" in template.write(build_facts(summary, both))  # clear
    for c in summary["classes"]:
        c["low_confidence_share"] = 0.01
    card["metrics"]["heldout_polygons"]["macro_f1"] = 0.81
    text = template.write(build_facts(summary, card))
    assert "this model scored macro-F1 0.81." in text and "poor" not in text
    assert "the most certain class" in text
    # the worst score is said too, and called poor (round 23's mutation check: a truthiness test dropped it)
    card["metrics"]["heldout_polygons"]["macro_f1"] = 0.0
    zero = build_facts(summary, card)
    assert "this model scored macro-F1 0.00: a poor score" in template.write(zero)
    assert "Held-out macro-F1 of this model on the user's polygons: 0.00." in facts_lines(zero)


def test_the_focus_class_the_reference_lacks_has_no_recall_and_no_crash():
    """QA round 22 (second review): `claire explain --class crops` on a run whose reference has no crops: its F1 was
    0.0 and its recall None, and the focus paragraph raised a TypeError (exit 3)."""
    summary, card = _random_run(1, reference=True)
    name = summary["classes"][0]["name"]
    facts = build_facts(summary, card, focus_class=name)
    m = facts["focus"]["metrics"]
    m.update(f1_pct=0.0, recall_pct=None)
    text = template.write(facts)
    said = text.split("Against the reference: ")[1].split(" %.")[0]
    assert said.startswith(f"F1 0.0 %, IoU {m['iou_pct']:.1f} % and precision") and "recall" not in said, said
    # no reference pixel of it: said so, not as a model that failed (round 23: "F1 0.0 %, IoU 0.0 %")
    m.update(support=0, iou_pct=0.0, precision_pct=0.0)
    text = template.write(facts)
    assert f"The reference has no {name}: every pixel mapped as it is another class there (precision 0.0 %)." \
        in text and "Against the reference: F1" not in text
    assert check_grounding(text, facts).flagged_sentences == []
