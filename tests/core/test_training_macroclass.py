"""Macroclasses (SCP's MC ID / C ID): read from a second field of the labels, scored in the report, carried by
the card, and mapped by the engine with --level macroclass."""
import json

import numpy as np
import pytest
import rasterio
import torch

from claire.claire_plugin.core.engine import classify
from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.params import ClassifyParams
from claire.claire_plugin.core.training.finetune import FinetuneConfig
from claire.claire_plugin.core.training.polygons import PolygonTrainParams, train_from_polygons
from claire.models.card_schema import card_problem
from claire.models.checkpoint import load_checkpoint
from claire.models.macroclass import (
    chosen_group_probability,
    collapse_confusion,
    group_index,
    group_probabilities,
    macro_view,
)
from claire.tests.fixtures.vectors import TRAIN_BOXES, train_features, train_scene, write_vector

#: class name -> macroclass name of the test scene (two macroclasses; "land" groups two classes)
MACRO = {"water": "wet", "crops": "land", "built area": "land"}


def _labels(folder, macro=MACRO, name="m.gpkg"):
    feats = train_features()
    return write_vector(folder / name, feats, extra=[("mc", [macro[v] for _, v in feats])])


def _params(scene, labels, **kw):
    cfg = FinetuneConfig(epochs=2, steps_per_epoch=2, batch_size=2, crop=64, device="cpu", seed=3)
    base = dict(optical=scene["optical"], sar=scene["sar"], labels=labels, field="class", macro_field="mc",
                output=str(scene["dir"] / "model.safetensors"), checkpoint=scene["checkpoint"],
                report=str(scene["dir"] / "report.json"), rf_trees=20, buffer_px=2, config=cfg)
    base.update(kw)
    return PolygonTrainParams(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One training run with macroclasses: the scene, its report and the network's card."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("macro")
    scene = train_scene(folder)
    report = train_from_polygons(_params(scene, _labels(folder)))
    _, card = load_checkpoint(str(folder / "model.safetensors"))
    return scene, report, card


def test_the_report_scores_both_levels_from_the_same_pixels(trained):
    scene, report, _ = trained
    macro = report["macroclasses"]
    assert macro["field"] == "mc"
    # macroclass names get codes 1..M in alphabetical order; the class names are the base's and take its codes
    assert [(m["code"], m["name"], m["classes"]) for m in macro["classes"]] == [
        (1, "land", ["crops", "built area"]), (2, "wet", ["water"])]
    groups = np.array([1, 0, 0])  # the classes in index (code) order: water 1, crops 4, built area 5
    assert set(macro["arms"]) == set(report["arms"])
    for arm, conds in report["arms"].items():
        for cond, m in conds.items():
            got = macro["arms"][arm][cond]
            assert got["confusion"] == collapse_confusion(np.array(m["confusion"]), groups, 2).tolist()
            assert got["pixels"] == m["pixels"]
            # grouping can only merge confusions, never create them: the macroclass OA is at least the class OA
            assert got["oa"] >= m["oa"] - 1e-9
    html = (scene["dir"] / "report.html").read_text()
    assert "Macroclasses (field mc)" in html and "crops, built area" in html
    saved = json.loads((scene["dir"] / "report.json").read_text())
    assert saved["macroclasses"]["arms"]["finetuned"]["clear"] == macro["arms"]["finetuned"]["clear"]


def test_every_checkpoint_of_the_run_carries_the_hierarchy(trained):
    scene, report, card = trained
    assert card_problem(card) is None
    by_name = {m["name"]: m for m in card["macroclasses"]}
    values = {c["name"]: c["value"] for c in card["classes"]}
    assert sorted(by_name["land"]["classes"]) == sorted([values["crops"], values["built area"]])
    assert by_name["wet"]["classes"] == [values["water"]] and by_name["wet"]["value"] == 2
    assert card["nodata"] not in {m["value"] for m in card["macroclasses"]}
    held = report["macroclasses"]["arms"]["finetuned"]["clear"]
    assert card["metrics"]["macroclass"]["heldout_polygons"]["macro_f1"] == held["macro_f1"]
    assert "rf_optical_sar" in card["metrics"]["macroclass"]["baselines"]
    for name in ("model.forest.safetensors", "model.ensemble.safetensors"):
        _, other = load_checkpoint(str(scene["dir"] / name))
        assert other["macroclasses"] == card["macroclasses"]
    _, forest = load_checkpoint(str(scene["dir"] / "model.forest.safetensors"))
    rf = report["macroclasses"]["arms"]["rf_optical_sar"]["clear"]
    assert forest["metrics"]["macroclass"]["heldout_polygons"]["macro_f1"] == rf["macro_f1"]


def test_the_engine_maps_the_macroclasses(trained, tmp_path):
    scene, _, card = trained
    ckpt = str(scene["dir"] / "model.safetensors")
    outs = {}
    for level in ("class", "macroclass"):
        out = str(tmp_path / f"{level}.tif")
        result = classify(ClassifyParams(scene["optical"], scene["sar"], out, checkpoint=ckpt, device="cpu",
                                         confidence=str(tmp_path / f"{level}_conf.tif"), level=level))
        with rasterio.open(out) as ds, rasterio.open(str(tmp_path / f"{level}_conf.tif")) as cf:
            outs[level] = ds.read(1), cf.read(1).astype(int), ds.nodata
        names = [c["name"] for c in result.summary["classes"]]
        assert names == (["land", "wet"] if level == "macroclass" else [c["name"] for c in card["classes"]])
    cls, cls_conf, nodata = outs["class"]
    mac, mac_conf, _ = outs["macroclass"]
    values = {c["name"]: c["value"] for c in card["classes"]}
    valid = cls != nodata
    assert set(np.unique(mac[valid])) <= {1, 2} and (mac[~valid] == nodata).all()
    # a macroclass's probability is the sum of its classes': never below the top class's (1 point of rounding)
    assert (mac_conf[valid] >= cls_conf[valid] - 1).all()
    assert (mac_conf[valid] > cls_conf[valid] + 5).any()  # where crops and built area share a pixel
    # a land class above 50 % makes land more than half: the macroclass map says land there
    land = np.isin(cls, [values["crops"], values["built area"]]) & (cls_conf > 51)
    assert land.any() and (mac[land] == 1).all()
    water = (cls == values["water"]) & (cls_conf > 51)
    assert (mac[water] == 2).all()
    # a reference of the checkpoint's class values is scored at the macroclass level: here the class map itself
    result = classify(ClassifyParams(scene["optical"], scene["sar"], str(tmp_path / "scored.tif"), checkpoint=ckpt,
                                     device="cpu", level="macroclass", reference=str(tmp_path / "class.tif")))
    m = result.summary["metrics"]
    land = np.isin(cls, [values["crops"], values["built area"]])
    expected = np.where(land, 1, 2)[valid]
    assert m["oa"] == pytest.approx(float((mac[valid] == expected).mean()), abs=1e-6)
    assert [c["name"] for c in m["per_class"]] == ["land", "wet"] and np.sum(m["confusion"]) == valid.sum()


def test_group_probabilities_sums_tempered_class_probabilities():
    probs = torch.softmax(torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0)), dim=0)
    groups = torch.tensor([1, 0, 1])
    out = torch.empty(2, 4, 5)
    group_probabilities(probs, groups, out)
    assert torch.allclose(out[0], probs[1]) and torch.allclose(out[1], probs[0] + probs[2])
    tempered = torch.softmax(torch.log(probs) / 2.0, dim=0)
    group_probabilities(probs, groups, out, temperature=2.0)
    assert torch.allclose(out[1], tempered[0] + tempered[2], atol=1e-6)
    assert torch.allclose(out.sum(0), torch.ones(4, 5), atol=1e-6)


def test_chosen_group_probability_tempers_per_pixel_and_keeps_the_choice():
    """QA (outputs agree): the confidence of a one-class macroclass was 37-49 % on a two-macroclass map: the
    classes were tempered before the sum. The macroclasses' sums are tempered now: the mapped one stays the most
    likely."""
    probs = torch.softmax(3 * torch.randn(4, 6, 7, generator=torch.Generator().manual_seed(1)), dim=0)
    groups = torch.tensor([0, 1, 1, 2])
    out = torch.empty(3, 6, 7)
    group_probabilities(probs, groups, out)
    chosen = out.argmax(dim=0)  # the map's macroclass: the largest sum of the network's probabilities
    t = torch.linspace(1.5, 6.0, 42).view(6, 7)  # the card's temperature on the left, a SAR-alone one on the right
    got = chosen_group_probability(probs, groups, chosen, t)
    for i in range(6):
        for j in range(7):
            sums = torch.stack([probs[groups == g, i, j].sum() for g in range(3)])
            p = torch.softmax(torch.log(sums) / t[i, j], dim=0)
            assert got[i, j] == pytest.approx(float(p[chosen[i, j]]), abs=1e-5)
            assert float(p[chosen[i, j]]) >= float(p.max()) - 1e-6  # the mapped macroclass stays the most likely
    assert torch.allclose(chosen_group_probability(probs, groups, chosen, 1.0), out.max(dim=0).values, atol=1e-6)
    assert (got >= 1 / 3 - 1e-6).all()


def test_a_class_in_two_macroclasses_is_refused_before_training(tmp_path):
    scene = train_scene(tmp_path)
    feats = train_features()
    mc = [MACRO[v] for _, v in feats]
    mc[5] = "wet"  # one crops polygon said to be wet
    labels = write_vector(tmp_path / "bad.gpkg", feats, extra=[("mc", mc)])
    with pytest.raises(ClaireError, match="class 'crops' is in several macroclasses of field 'mc'") as err:
        train_from_polygons(_params(scene, labels))
    assert "features 5" in str(err.value) and "a class belongs to one macroclass" in str(err.value)
    assert not (tmp_path / "model.safetensors").exists()


def test_macroclass_field_problems_are_named(tmp_path):
    scene = train_scene(tmp_path)
    labels = _labels(tmp_path)
    with pytest.raises(ClaireError, match="have no field 'group' for the macroclasses; its fields are class, mc"):
        train_from_polygons(_params(scene, labels, macro_field="group"))
    feats = train_features()
    empty = write_vector(tmp_path / "e.gpkg", feats, extra=[("mc", [MACRO[v] if i else " " for i, (_, v) in
                                                                    enumerate(feats)])])
    with pytest.raises(ClaireError, match="has no value in the macroclass field 'mc'"):
        train_from_polygons(_params(scene, empty))
    for kw, words in (({"name_field": "CLASS"}, "--name-field 'CLASS' is the field given as --field"),
                      ({"macro_field": "class"}, "--macro-field 'class' is the field given as --field")):
        with pytest.raises(ClaireError, match=words):  # QA round 20: refused only after the whole training
            train_from_polygons(_params(scene, labels, **kw))
    from claire.tests.fixtures.helpers import write_raster

    raster = np.zeros((64, 96), np.uint8)
    for v, r, c in TRAIN_BOXES:
        raster[r:r + 5, c:c + 5] = v
    path = write_raster(tmp_path / "labels.tif", raster[None])
    with pytest.raises(ClaireError, match="--field and --macro-field name fields of a vector layer, but the labels "
                                          ".* are a label raster.*macroclasses need polygons or points with a class "
                                          "and a macroclass field"):
        train_from_polygons(_params(scene, path))
    assert not (tmp_path / "model.safetensors").exists()


def test_level_macroclass_needs_a_card_with_macroclasses(tmp_path):
    scene = train_scene(tmp_path)
    with pytest.raises(ClaireError, match="this checkpoint has no macroclasses; train one from polygons with a "
                                          "macroclass field"):
        classify(ClassifyParams(scene["optical"], scene["sar"], str(tmp_path / "map.tif"),
                                checkpoint=scene["checkpoint"], device="cpu", level="macroclass"))
    with pytest.raises(ClaireError, match="--level 'groups' is not a map level"):
        classify(ClassifyParams(scene["optical"], scene["sar"], str(tmp_path / "map.tif"),
                                checkpoint=scene["checkpoint"], device="cpu", level="groups"))
    assert not (tmp_path / "map.tif").exists()


def _card(macro):
    return {"arch": "forest", "config": {"num_classes": 3}, "nodata": 0,
            "classes": [{"index": i, "value": v, "name": n} for i, (v, n) in enumerate([(1, "a"), (2, "b"), (3, "c")])],
            "macroclasses": macro}


def test_the_cards_macroclasses_are_checked():
    from claire.models.macroclass import macroclass_problem

    good = [{"index": 0, "value": 10, "name": "x", "classes": [1, 3]}, {"index": 1, "value": 20, "name": "y",
                                                                        "classes": [2]}]
    assert macroclass_problem(_card(good)) is None
    assert group_index(_card(good)).tolist() == [0, 1, 0]
    view = macro_view({**_card(good), "calibration": {"temperature": 2.0},
                       "metrics": {"macroclass": {"heldout_polygons": {"oa": 0.9}}, "heldout_polygons": {"oa": 0.5}}})
    assert [(c["value"], c["name"]) for c in view["classes"]] == [(10, "x"), (20, "y")]
    assert view["metrics"] == {"heldout_polygons": {"oa": 0.9}} and "calibration" not in view
    assert view["class_groups"] == [0, 1, 0] and view["config"] == {"num_classes": 3}
    bad = [
        ([{"index": 0, "value": 10, "name": "x", "classes": [1, 2]}], "class value(s) 3 are in no macroclass"),
        ([{"index": 0, "value": 10, "name": "x", "classes": [1, 2, 3]},
          {"index": 1, "value": 20, "name": "y", "classes": [3]}], "class value 3 is in macroclasses 0 and 1"),
        ([{"index": 0, "value": 0, "name": "x", "classes": [1, 2, 3]}], "is not a free value"),
        ([{"index": 0, "value": 10, "name": "x", "classes": [9, 1, 2, 3]}], "holds 9, which is not one of"),
        ([{"index": 0, "value": 10, "name": 5, "classes": [1, 2, 3]}], "name is not text"),
        ([], "is not a non-empty list"),
    ]
    for macro, phrase in bad:
        problem = macroclass_problem(_card(macro))
        assert problem is not None and phrase in problem, (macro, problem)


def test_cli_trains_and_maps_macroclasses(trained, tmp_path, capsys):
    from claire.claire_plugin.cli.main import main

    scene, _, _ = trained
    out = tmp_path / "cli.safetensors"
    rc = main(["train", "--optical", scene["optical"], "--sar", scene["sar"], "--labels", _labels(tmp_path),
               "--field", "class", "--macro-field", "mc", "--checkpoint", scene["checkpoint"], "--epochs", "1",
               "--steps-per-epoch", "1", "--batch-size", "2", "--crop", "64", "--device", "cpu", "--rf-trees", "10",
               "--buffer", "2", "--output", str(out), "--report", str(tmp_path / "r.json")])
    text = capsys.readouterr().out
    assert rc == 0 and "macroclasses (field mc: land = crops, built area; wet = water)" in text
    assert main(["classify", "--optical", scene["optical"], "--sar", scene["sar"], "--checkpoint", str(out),
                 "--level", "macroclass", "--output", str(tmp_path / "map.tif"), "--device", "cpu"]) == 0
    with rasterio.open(str(tmp_path / "map.tif")) as ds:
        assert set(np.unique(ds.read(1))) <= {1, 2, ds.nodata}
    rc = main(["classify", "--optical", scene["optical"], "--sar", scene["sar"], "--checkpoint", scene["checkpoint"],
               "--level", "macroclass", "--output", str(tmp_path / "map2.tif"), "--device", "cpu"])
    assert rc == 2 and "this checkpoint has no macroclasses" in capsys.readouterr().err


def test_the_dock_report_and_the_card_summaries_show_the_macroclasses(trained):
    from claire.claire_plugin.cli.info import card_summary
    from claire.claire_plugin.gui.picker import card_html
    from claire.claire_plugin.gui.train_report import report_html

    scene, report, card = trained
    text = report_html(report, str(scene["dir"] / "model.safetensors"))
    assert "<b>Macroclasses</b> (field mc)" in text and "land = crops, built area; wet = water" in text
    f1 = report["macroclasses"]["arms"]["finetuned"]["clear"]["macro_f1"]
    assert f"{f1:.2f}".replace(".", ".&#8288;") in text.split("<b>Macroclasses</b>")[1]
    assert "macroclasses  land = crops, built area; wet = water (classify --level macroclass)" in card_summary(card)
    assert "Macroclasses</b> (Options &gt; Map level 'macroclass'): land = crops, built area; wet = water" \
        in card_html(card)
    plain = {k: v for k, v in card.items() if k != "macroclasses"}
    assert "macroclasses" not in card_summary(plain) and "Macroclasses" not in card_html(plain)
    assert "Macroclasses" not in report_html({k: v for k, v in report.items() if k != "macroclasses"}, "m.safetensors")
    held = card["metrics"]["macroclass"]["heldout_polygons"]
    assert f"Metrics (macroclasses, held-out polygons)</h3><p>macro-F1 {held['macro_f1']:.3f}" in card_html(card)
    assert "Metrics (macroclass)" not in card_html(card)


def test_labels_of_one_class_or_one_macroclass_are_refused(tmp_path):
    scene = train_scene(tmp_path)
    feats = [(wkt, "crops") for wkt, _ in train_features()]
    one = write_vector(tmp_path / "one.gpkg", feats, extra=[("mc", ["land"] * len(feats))])
    with pytest.raises(ClaireError, match="the labels hold one class \\('crops'\\); draw polygons of at least two "
                                          "classes"):
        train_from_polygons(_params(scene, one, macro_field=None))
    same = _labels(tmp_path, {"water": "all", "crops": "all", "built area": "all"}, "same.gpkg")
    with pytest.raises(ClaireError, match="every class is in one macroclass \\('all'\\) in field 'mc'"):
        train_from_polygons(_params(scene, same))
    assert not (tmp_path / "model.safetensors").exists()


def test_scores_from_sar_alone_are_given_at_the_macroclass_level_too(tmp_path):
    from claire.claire_plugin.core.training.scorecard import macroclass_lines, render_html
    from claire.claire_plugin.gui.train_report import report_html
    from claire.models.checkpoint import save_checkpoint
    from claire.models.registry import build_model
    from claire.tests.fixtures.helpers import tiny_card

    torch.set_num_threads(1)
    scene = train_scene(tmp_path)
    card = tiny_card()
    card["config"]["cloud_gate"] = True  # a cloud-gated base: its networks are scored from SAR alone
    torch.manual_seed(0)
    gated = str(tmp_path / "gated.safetensors")
    save_checkpoint(gated, build_model("claire", card["config"]), card)
    report = train_from_polygons(_params(scene, _labels(tmp_path), checkpoint=gated, report=None))
    alone = report["macroclasses"]["sar_only"]
    assert set(alone) == set(report["sar_only"]["arms"]) >= {"finetuned", "rf_sar"}
    for arm, m in alone.items():
        cm = np.array(report["sar_only"]["arms"][arm]["confusion"])
        assert m["confusion"] == collapse_confusion(cm, np.array([1, 0, 0]), 2).tolist()
    _, saved = load_checkpoint(str(tmp_path / "model.safetensors"))
    assert saved["metrics"]["macroclass"]["heldout_polygons_sar_only"]["macro_f1"] == alone["finetuned"]["macro_f1"]
    assert any(line.startswith("  CLAIRE fine-tuned (optical + SAR), optical missing (SAR alone): macro-F1")
               for line in macroclass_lines(report))
    assert "optical missing (SAR alone)" in render_html(report).split("Macroclasses (field mc)")[1]
    assert "optical missing (SAR alone): Your&nbsp;CLAIRE F1" in report_html(report, "m.safetensors")


def test_a_strong_calibration_changes_the_macroclass_confidence_never_the_map():
    """QA (docs audit): a checkpoint tempered at T = 28 made its class probabilities near uniform before they were
    summed, so a macroclass of two classes outweighed a one-class macroclass on every pixel ("built" 0 px on a map
    whose class map had 16 % built area). The map now sums the network's probabilities; the confidence is tempered."""
    from claire.claire_plugin.core.engine.runner import kept_outputs
    from claire.models.macroclass import Grouping

    probs = torch.tensor([0.55, 0.25, 0.20]).view(1, 3, 1, 1).expand(1, 3, 4, 4).contiguous()  # built, crops, trees
    logits = torch.log(probs)
    groups = Grouping(torch.tensor([0, 1, 1]), 2, temperature=28.0)
    kept = [(slice(0, 4), slice(0, 4))]
    out = kept_outputs(logits, None, kept, (4, 4), groups=groups)[0]
    assert out.shape[0] == 3  # two macroclasses and the tempered confidence of the chosen one
    assert (out[:2].argmax(axis=0) == 0).all()  # built, as the network says (0.55 against 0.45)
    tempered = torch.softmax(torch.log(torch.tensor([0.55, 0.45])) / 28.0, dim=0)  # the macroclasses' sums
    assert np.allclose(out[2], float(tempered[0]), atol=1e-5) and 0.5 < out[2].min() < 0.51
