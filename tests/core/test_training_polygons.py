"""End to end: polygons -> fine-tuned checkpoint with card + report (tiny network, a few steps)."""
import json
import os

import numpy as np
import pytest
import torch

from claire.claire_plugin.core.errors import CancelledError, ClaireError
from claire.claire_plugin.core.training.finetune import FinetuneConfig
from claire.claire_plugin.core.training.polygons import PolygonTrainParams, report_notes, train_from_polygons
from claire.models.checkpoint import load_checkpoint
from claire.tests.fixtures.vectors import TRAIN_BOXES as BOXES
from claire.tests.fixtures.vectors import TRAIN_NAMES as NAMES
from claire.tests.fixtures.vectors import box_wkt, train_scene, write_vector


@pytest.fixture
def scene(tmp_path):
    return train_scene(tmp_path)


def _params(scene, **kw):
    cfg = FinetuneConfig(epochs=2, steps_per_epoch=2, batch_size=2, crop=64, device="cpu", seed=3)
    base = dict(optical=scene["optical"], sar=scene["sar"], labels=scene["labels"], field="class",
                output=str(scene["dir"] / "model.safetensors"), checkpoint=scene["checkpoint"],
                report=str(scene["dir"] / "report.json"), rf_trees=20, buffer_px=2, config=cfg)
    base.update(kw)
    return PolygonTrainParams(**base)


def test_every_phase_after_the_scoring_is_said(scene):
    """QA (scale of labels): minutes at 93 % with nothing said while the SAR-alone scores, the leakage check and
    the forest's checkpoint were made."""
    torch.set_num_threads(1)
    said = []
    train_from_polygons(_params(scene), progress=lambda f, m: said.append((f, m)))
    after = [m for f, m in said if f > 0.93]
    assert after == ["scoring from SAR alone on the held-out polygons",
                     "the leakage check: a forest on a random-pixel split", "storing the random forest as a checkpoint",
                     "writing the checkpoints and the report", f"wrote {scene['dir'] / 'model.safetensors'}"], after
    assert [f for f, _ in said] == sorted(f for f, _ in said)


def test_polygon_training_writes_checkpoint_card_and_report(scene):
    torch.set_num_threads(1)
    epochs = []
    said = []
    report = train_from_polygons(_params(scene), progress=lambda f, m: said.append((f, m)), on_epoch=epochs.append)
    assert [e["epoch"] for e in epochs] == [1, 2] and epochs[0]["stage"] == 1 and epochs[1]["stage"] == 2
    scoring = [(f, m) for f, m in said if m.startswith("scoring on the held-out polygons: window")]
    assert scoring and scoring[-1][1].endswith(f"window {scoring[-1][1].split()[-1]} of {scoring[-1][1].split()[-1]}")
    assert all(0.85 <= f <= 0.93 for f, _ in scoring)  # the phase moves instead of standing at 85 %
    assert all(0.0 <= e["val_macro_f1"] <= 1.0 for e in epochs)
    model, card = load_checkpoint(str(scene["dir"] / "model.safetensors"))
    assert [(c["value"], c["name"]) for c in card["classes"]] == [(1, "water"), (4, "crops"), (5, "built area")]
    assert card["config"]["num_classes"] == 3 and card["training"]["labels"]["field"] == "class"
    assert len(card["training"]["labels"]["sha256"]) == 64
    # what a reader reproducing the figures needs beyond the settings (a reviewer found no versions, no base hash)
    prov = card["training"]["provenance"]
    assert prov == report["provenance"] and len(prov["base_checkpoint_sha256"]) == 64
    assert prov["torch"] and prov["numpy"] and prov["scikit_learn"] and prov["gdal"] and prov["claire"]
    assert prov["inputs"]["optical"]["bytes"] > 0 and prov["inputs"]["labels"]["path"].endswith(".gpkg")
    assert card["inputs"]["optical"]["bands"][0] == "B02"
    assert "rf_optical_sar" in card["metrics"]["baselines"]
    # the tiny base knows "water", "crops" and "built area" by name: the untuned arm is scored too
    assert set(report["arms"]) == {"finetuned", "untuned", "rf_optical_sar", "rf_optical", "ensemble"}
    for arm in report["arms"].values():
        for m in arm.values():
            assert (np.sum(m["confusion"]) + sum(m.get("another_class_pixels") or [0]) == m["pixels"]
                        == sum(r["val_pixels"] for r in report["counts"]))
    assert report["split"]["kind"] == "polygons"
    # the built-area box at rows 52-56, cols 62-66 straddles the crops zone's edge (x <= 64): three of its five
    # columns are crops, and the check says so
    assert [(s["feature_ids"], s["looks_like"]) for s in report["suspect_polygons"]] == [([11], "crops")]
    assert [r["val_polygons"] for r in report["counts"]] == [1, 1, 1]
    assert len(report["validation_feature_ids"]) == 3 and all(f >= 1 for f in report["validation_feature_ids"])
    leak = report["leakage"]
    assert leak["pixel_split"]["pixels"] == int(np.ceil(0.3 * 4 * 25)) * 3  # 30 % of each class's pixels
    assert leak["polygon_split"] == report["arms"]["rf_optical_sar"]["clear"]
    saved = json.loads((scene["dir"] / "report.json").read_text())
    assert saved["arms"]["finetuned"]["clear"]["confusion"] == report["arms"]["finetuned"]["clear"]["confusion"]
    html = (scene["dir"] / "report.html").read_text()
    assert "reference" in html and "built area" in html and "Random forest, optical only" in html
    assert "falling to 0 with the cloud probability" in html and "Written as model.ensemble.safetensors" in html
    weight = report["ensemble_weight"]
    assert f"the forest&#x27;s weight {weight['chosen']:g} where the optical is clear" in html
    assert "cross-fitted" in html
    fit = report["training"]["base_fit_macro_f1"]  # the tiny base knows every class: its fit chose the rate
    assert 0.0 <= fit <= 1.0 and f"macro-F1 {fit:.2f} on image windows around your training polygons" in html
    epochs = report["training"]["epochs"]  # QA (round 19): "Training: 1 epochs" had come back in the HTML report
    assert f"<p>Training: {epochs} epochs, " in html and epochs == 2
    from claire.claire_plugin.core.training.scorecard import render_html

    one = render_html(dict(report, training=dict(report["training"], epochs=1)))
    assert "<p>Training: 1 epoch, " in one
    assert report["training"]["lr_note"] in report_notes(report)
    assert card["training"]["lr_note"] == report["training"]["lr_note"]  # travels with the checkpoint
    assert card["training"]["base_fit_macro_f1"] == fit
    cal = report["calibration"]  # the confidence tempered on the held-out pixels, the fit travels in the card
    assert cal["temperature"] >= 1.0 and card["calibration"]["temperature"] == cal["temperature"]
    assert cal["pixels"] == report["arms"]["finetuned"]["clear"]["pixels"] and cal["cross_fitted"]
    assert set(cal) >= {"clear", "clouds_60pct"}
    assert cal["clear"]["before"]["accuracy"] == cal["clear"]["after"]["accuracy"]  # tempering keeps every class
    assert report["calibration_note"] in report_notes(report) and card["calibration"]["note"] == report["calibration_note"]
    assert "Confidence: " in html
    ens_cal = weight["calibration"]  # the averaged model's confidence, fitted on its own probabilities
    assert ens_cal["temperature"] >= 1.0 and ens_cal["pixels"] == cal["pixels"]
    assert weight["calibration_note"] in report_notes(report) and "the two averaged" in weight["calibration_note"]
    _, ens_card = load_checkpoint(str(scene["dir"] / "model.ensemble.safetensors"))
    assert ens_card["calibration"]["temperature"] == ens_cal["temperature"]
    _, forest_card = load_checkpoint(str(scene["dir"] / "model.forest.safetensors"))
    assert "calibration" not in forest_card
    assert [c["weight"] for c in weight["candidates"]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [h["polygons"] for h in weight["halves"]] == [2, 1]  # 3 held-out polygons, dealt class by class
    assert model(torch.zeros(1, 10, 32, 32), torch.zeros(1, 2, 32, 32))["logits"].shape[1] == 3
    assert card["metrics"]["heldout_polygons"]["macro_f1"] == report["arms"]["finetuned"]["clear"]["macro_f1"]
    # one held-out polygon per class: nothing to resample, so no interval, and the report says why
    assert all(m["macro_f1_ci95"] is None for arm in report["arms"].values() for m in arm.values())
    assert report["spread"]["clear"]["single_polygon_classes"] == [0, 1, 2]
    assert "have a single held-out polygon" in report["spread_note"] and report["spread_note"] in html
    assert report["spread_note"] in report_notes(report)
    # the engine classifies with the new checkpoint: its classes are the user's codes
    from claire.claire_plugin.core.engine import classify
    from claire.claire_plugin.core.params import ClassifyParams

    out = str(scene["dir"] / "map.tif")
    classify(ClassifyParams(scene["optical"], scene["sar"], out, checkpoint=str(scene["dir"] / "model.safetensors"),
                            device="cpu"))
    import rasterio
    with rasterio.open(out) as ds:
        assert set(np.unique(ds.read(1))) <= {1, 4, 5}


def _host_draws(seed=None):
    import random

    if seed is not None:
        random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_same_seed_same_scores_and_the_callers_random_streams_kept(scene):
    """Same seed, same network; and (QA, library use) the program that trains keeps its own random streams: a
    training reseeded python's, numpy's and torch's generators, so every draw after it was the same whatever the
    program's seed."""
    torch.set_num_threads(1)
    _host_draws(123)
    a = train_from_polygons(_params(scene, baseline=False))
    b = train_from_polygons(_params(scene, baseline=False))
    assert a["arms"]["finetuned"] == b["arms"]["finetuned"]
    assert a["training"]["loss"] == b["training"]["loss"]
    after = _host_draws()
    _host_draws(123)
    assert after == _host_draws()


def test_cancel_writes_nothing(scene):
    with pytest.raises(CancelledError):
        train_from_polygons(_params(scene), is_cancelled=lambda: True)
    assert not (scene["dir"] / "model.safetensors").exists() and not (scene["dir"] / "report.json").exists()


def test_a_cancel_with_the_last_report_comes_too_late_to_undo_the_outputs(scene):
    """The 100 % report comes after the outputs are written: a cancel then is no cancel (mutation check)."""
    asked = {"stop": False}
    report = train_from_polygons(_params(scene, baseline=False),
                                 lambda f, m: asked.update(stop=asked["stop"] or m.startswith("writing")),
                                 is_cancelled=lambda: asked["stop"])
    assert report and (scene["dir"] / "model.safetensors").exists()


@pytest.mark.parametrize("after", [0.02, 0.82, 0.94])
def test_a_cancel_after_the_epochs_stops_the_scoring_and_writes_nothing(scene, after):
    """QA round 16 (QGIS desktop): Cancel pressed after the last epoch was ignored, the forests, scores and every
    output were written and the dock said Done; a cancel while the scene was read waited for the first step. Each
    phase that reports progress now stops the run."""
    asked = {"stop": False}

    def progress(fraction, _text):
        asked["stop"] = asked["stop"] or fraction >= after

    with pytest.raises(CancelledError, match="cancelled by the user; no checkpoint was written"):
        train_from_polygons(_params(scene), progress, is_cancelled=lambda: asked["stop"])
    assert not [p.name for p in scene["dir"].iterdir() if p.name.startswith(("model", "report"))]


def test_a_cancel_stops_the_long_phases_inside_them_not_at_their_end(scene, monkeypatch):
    """QA round 20: the familiarity statistics, the forests, SAR alone and the ensemble ran on for 36-127 s after a
    cancel on a whole scene (they report no progress): each now checks between its windows."""
    import claire.models.familiarity as fam

    asked, consumed = {"stop": False}, []

    def counting(model, train, heldout, **kw):
        for item in train:
            consumed.append(item)
        raise AssertionError("the familiarity pass went on after the cancel")

    monkeypatch.setattr(fam, "familiarity", counting)

    def progress(fraction, text):
        asked["stop"] = asked["stop"] or text.startswith("measuring the training features")

    with pytest.raises(CancelledError):
        train_from_polygons(_params(scene, baseline=False), progress, is_cancelled=lambda: asked["stop"])
    assert consumed == []


def test_every_long_phase_after_the_epochs_is_handed_the_cancel(scene, monkeypatch):
    """Mutation check of round 20: only the familiarity phase's cancel was tested. Every forest fit, pixel sample and
    window pass after the epochs (the forests, the averaged model, SAR alone, the leakage check) gets the cancel."""
    import inspect

    from claire.claire_plugin.core.training import polygons, sar_alone

    calls = []

    def watched(module, name):
        real = getattr(module, name)

        def call(*args, **kwargs):
            bound = inspect.signature(real).bind(*args, **kwargs)
            calls.append((name, bound.arguments.get("is_cancelled") is not None))
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, call)

    for module, names in ((polygons, ("fit_forest", "sample_pixels", "predict_pixels")),
                          (sar_alone, ("fit_forest", "sample_pixels", "predict_pixels", "predict_sar_only"))):
        for name in names:
            watched(module, name)
    asked = {"after": False}

    def progress(fraction, text):
        asked["after"] = asked["after"] or text.startswith("measuring the training features")
        if asked["after"]:
            calls.append(("phase", True))

    train_from_polygons(_params(scene), progress, is_cancelled=lambda: False)
    after = calls[next(i for i, c in enumerate(calls) if c[0] == "phase"):]
    named = {name for name, _ in after if name != "phase"}
    assert {"fit_forest", "sample_pixels", "predict_pixels"} <= named, named
    assert [name for name, handed in after if not handed] == []


def test_the_training_steps_move_the_progress_between_epochs(scene, monkeypatch):
    """QA round 16 (QGIS desktop): the bar sat at 5 % for 38 s, through the scene's reading and the first epoch of a
    short training; the steps now report, at most every STEP_REPORT_SECONDS."""
    from claire.claire_plugin.core.training import polygons

    monkeypatch.setattr(polygons, "STEP_REPORT_SECONDS", 0.0)
    said = []
    train_from_polygons(_params(scene, baseline=False), progress=lambda f, m: said.append((f, m)))
    steps = [(f, m) for f, m in said if m.startswith("training: step")]
    assert [m for _, m in steps] == [f"training: step {k} of 4" for k in range(1, 5)], said
    assert [f for f, _ in steps] == sorted(f for f, _ in steps) and 0.05 < steps[0][0]
    assert steps[-1][0] == pytest.approx(0.82)
    monkeypatch.setattr(polygons, "STEP_REPORT_SECONDS", 3600.0)
    said.clear()
    train_from_polygons(_params(scene, baseline=False), progress=lambda f, m: said.append((f, m)))
    assert not [m for _, m in said if m.startswith("training: step")]


def test_a_labels_file_of_two_layers_names_trains_own_options(scene):
    """QA round 16: claire train told the user to pass --layer, an option it does not have."""
    from osgeo import gdal

    two = str(scene["dir"] / "two.gpkg")
    gdal.VectorTranslate(two, scene["labels"], format="GPKG", layerName="polygons")
    gdal.VectorTranslate(two, scene["labels"], format="GPKG", layerName="more", accessMode="append")
    with pytest.raises(ClaireError, match=r"say which one to use \(--label-layer\)"):
        train_from_polygons(_params(scene, labels=two))
    with pytest.raises(ClaireError, match=r"say which one to use \(--validation-layer\)"):
        train_from_polygons(_params(scene, validation=two, layer=None))
    # the layer named is the one read (round 23's mutation check: the validation split was refactored)
    from claire.tests.fixtures.vectors import train_features

    feats = train_features()
    picked = {c: (w, c) for w, c in feats}  # the last of each class
    gdal.VectorTranslate(two, write_vector(scene["dir"] / "v.gpkg", list(picked.values())), format="GPKG",
                         layerName="val", accessMode="append")
    report = train_from_polygons(_params(scene, labels=scene["labels"], validation=two, validation_layer="val",
                                         baseline=False))
    assert report["split"]["val_source"]["layer"] == "val"
    assert report["split"]["validation_polygons_in_training_layer"] == len(picked)


def test_an_unreadable_base_or_an_output_of_another_kind_is_a_claire_error_as_in_a_classification(scene):
    """QA (library use): training raised models' CheckpointError where classify raises ClaireError."""
    bad = scene["dir"] / "junk.safetensors"
    bad.write_bytes(b"\x00" * 64)
    for kw, words in (({"checkpoint": str(bad)}, "junk.safetensors"), ({"output": str(scene["dir"] / "m.pt")},
                                                                        "ending in .safetensors")):
        with pytest.raises(ClaireError, match=words):
            train_from_polygons(_params(scene, **kw))


def test_output_over_an_input_is_refused(scene):
    with pytest.raises(ClaireError, match="is also an input \\(the optical raster"):
        train_from_polygons(_params(scene, output=scene["optical"]))


def test_cli_train_from_labels(scene, capsys):
    from claire.claire_plugin.cli.main import main

    torch.set_num_threads(1)
    out = scene["dir"] / "cli.safetensors"
    rc = main(["train", "--optical", scene["optical"], "--sar", scene["sar"], "--labels", scene["labels"],
               "--field", "class", "--checkpoint", scene["checkpoint"], "--epochs", "1", "--steps-per-epoch", "1",
               "--batch-size", "2", "--crop", "64", "--device", "cpu", "--rf-trees", "10", "--buffer", "2",
               "--average-last", "0.25", "--output", str(out), "--report", str(scene["dir"] / "r.json")])
    text = capsys.readouterr()
    assert rc == 0 and out.exists() and (scene["dir"] / "r.html").exists()
    assert json.loads((scene["dir"] / "r.json").read_text())["training"]["config"]["average_last"] == 0.25
    assert "CLAIRE fine-tuned" in text.out and "leakage check" in text.out and "epoch 1/1" in text.err
    assert f"wrote {scene['dir'] / 'cli.forest.safetensors'} (the random forest" in text.err
    assert (scene["dir"] / "cli.forest.safetensors").exists()
    assert f"wrote {scene['dir'] / 'cli.ensemble.safetensors'} (the network and the forest averaged" in text.err
    assert (scene["dir"] / "cli.ensemble.safetensors").exists()
    rc = main(["train", "--labels", scene["labels"], "--output", str(scene["dir"] / "x.safetensors")])
    assert rc == 2 and "--optical and --sar" in capsys.readouterr().err
    assert main(["train", "--output", str(out)]) == 2
    rc = main(["train", "--optical", scene["optical"], "--sar", scene["sar"], "--labels", scene["labels"],
               "--field", "class", "--average-last", "1.5", "--output", str(scene["dir"] / "y.safetensors")])
    assert rc == 2 and "--average-last 1.5 is out of range: give a number from 0 to 1" in capsys.readouterr().err


def test_a_polygon_drawn_with_the_wrong_class_is_named_before_training(scene):
    torch.set_num_threads(1)
    feats = [(box_wkt(r, c, r + 5, c + 5), "crops" if i == 0 else NAMES[v]) for i, (v, r, c) in enumerate(BOXES)]
    labels = write_vector(scene["dir"] / "wrong.gpkg", feats)  # the first water box called crops
    cfg = FinetuneConfig(epochs=1, steps_per_epoch=1, batch_size=2, crop=64, device="cpu")
    said = []
    report = train_from_polygons(_params(scene, labels=labels, baseline=False, config=cfg),
                                 progress=lambda share, text: said.append((share, text)))
    warned = [share for share, text in said if text.startswith("warning:") and "feature 1 (crops) looks like water" in text]
    assert warned and warned[0] < min(share for share, text in said if text.startswith("training on"))
    found = report["suspect_polygons"]
    assert [(s["feature_ids"], s["class"], s["looks_like"]) for s in found if s["feature_ids"] != [11]] == [
        ([1], "crops", "water")]
    notes = [n for n in report_notes(report) if "look more like another class" in n]
    assert len(notes) == 1 and "feature 1 (crops) looks like water" in notes[0] and notes[0].startswith("2 polygon")
    html = (scene["dir"] / "report.html").read_text()
    assert "Polygons to check" in html
    from claire.claire_plugin.core.training.scorecard import SUSPECT_ROWS, render_html

    # (QA, scale of labels) 928 rows of suspects came before the scores: after them, the first SUSPECT_ROWS shown
    many = dict(report, suspect_polygons=[dict(found[0], feature_ids=[k]) for k in range(SUSPECT_ROWS + 7)])
    page = render_html(many)
    assert page.index("Polygons to check") > page.index("reference \u2193 / predicted")
    assert page.count("<td>crops</td><td>water</td>") == SUSPECT_ROWS and "... and 7 more" in page
    from claire.claire_plugin.gui.train_report import report_html

    assert "feature 1 (crops) looks like water" in report_html(report, str(scene["dir"] / "model.safetensors"))


def test_separate_validation_layer(scene):
    torch.set_num_threads(1)
    boxes = [(1, 30, 20), (1, 10, 24), (4, 30, 50), (4, 55, 50), (5, 55, 85), (5, 40, 88)]
    vfeats = [(box_wkt(r, c, r + 4, c + 4), NAMES[v]) for v, r, c in boxes]
    val = write_vector(scene["dir"] / "v.gpkg", vfeats)
    cfg = FinetuneConfig(epochs=1, steps_per_epoch=1, batch_size=2, crop=64, device="cpu")
    report = train_from_polygons(_params(scene, validation=val, baseline=False, config=cfg))
    assert report["split"]["kind"] == "separate layer"
    assert [r["val_pixels"] for r in report["counts"]] == [32, 32, 32]
    assert [r["train_polygons"] for r in report["counts"]] == [4, 4, 4]
    # two validation polygons per class: every score has an interval from resampling them, and the fine-tuned
    # network is compared with the base (no forest in this run)
    for arm in report["arms"].values():
        for m in arm.values():
            lo, hi = m["macro_f1_ci95"]
            assert 0.0 <= lo <= hi <= 1.0
    assert set(report["spread"]["clear"]["differences"]) == {"finetuned - untuned"}
    from claire.claire_plugin.core.training.scorecard import spread_sentence, start_sentence

    # the base is a checkpoint of the user's (not the bundled one): the paired comparison with it speaks
    assert spread_sentence(report) is None
    said = start_sentence(report)
    assert "Against the checkpoint you started from (base.safetensors), on the same held-out polygons" in said
    assert "95 % interval" in said
    assert "2000 draws" in report["spread_note"]


def test_training_pixels_a_validation_layer_overlaps_are_said_to_be_left_out(scene):
    """A validation polygon drawn over a training polygon drops the training pixels under it and within the buffer:
    said in the run's notes (it was only in the report's split)."""
    from claire.claire_plugin.core.training.polygons import report_notes

    torch.set_num_threads(1)
    boxes = [(1, 30, 20), (1, 21, 6), (4, 30, 50), (4, 21, 46), (5, 55, 85), (5, 40, 88)]  # two over training boxes
    val = write_vector(scene["dir"] / "v.gpkg", [(box_wkt(r, c, r + 4, c + 4), NAMES[v]) for v, r, c in boxes])
    cfg = FinetuneConfig(epochs=1, steps_per_epoch=1, batch_size=2, crop=64, device="cpu")
    report = train_from_polygons(_params(scene, validation=val, baseline=False, config=cfg))
    dropped = report["split"]["buffer_dropped_train_pixels"]
    assert dropped >= 2 * 16  # at least the pixels under the two overlapping validation boxes
    notes = [n for n in report_notes(report) if "were left out of training" in n]
    assert len(notes) == 1 and notes[0].startswith(f"{dropped} of ") and "within 2 px" in notes[0], notes


def test_the_forest_is_written_beside_the_network_and_maps_as_it_scored(scene):
    """The optical + SAR forest of the run is a checkpoint the engine classifies with; at the held-out
    pixels its map gives the macro-F1 the report states for it."""
    from claire.claire_plugin.core.engine import classify
    from claire.claire_plugin.core.params import ClassifyParams
    from claire.claire_plugin.core.training.labels import read_labels
    from claire.claire_plugin.core.training.polygons import ensemble_path_for, forest_path_for, make_split
    from claire.claire_plugin.core.training.scene import Scene
    from claire.claire_plugin.core.training.scorecard import score

    torch.set_num_threads(1)
    params = _params(scene)
    report = train_from_polygons(params)
    path = forest_path_for(params.output)
    assert path.endswith("model.forest.safetensors") and report["forest_checkpoint"] == path
    forest, card = load_checkpoint(path)
    assert card["arch"] == "forest" and card["config"]["trees"] == 20
    assert card["inputs"]["optical"]["sensor"].endswith(f"(the values of {os.path.basename(params.optical)} only: "
                                                        f"a forest knows no other scene's radiometry)")
    # the network's card: the base's levels, then this scene (not the base's claim alone)
    _, net_card = load_checkpoint(params.output)
    _, base = load_checkpoint(scene["checkpoint"])
    tuned = f"{base['inputs']['optical']['sensor']} (the base checkpoint's; fine-tuned on {os.path.basename(params.optical)})"
    assert net_card["inputs"]["optical"]["sensor"] == tuned
    assert [(c["value"], c["name"]) for c in card["classes"]] == [(1, "water"), (4, "crops"), (5, "built area")]
    assert card["metrics"]["heldout_polygons"] == {
        k: v for k, v in report["arms"]["rf_optical_sar"]["clear"].items()
        if k in card["metrics"]["heldout_polygons"]}
    assert "finetuned" in card["metrics"]["baselines"] and "rf_optical_sar" not in card["metrics"]["baselines"]
    from claire.claire_plugin.cli.info import card_summary

    text = card_summary(card)
    assert f"random forest, 20 trees ({card['config']['nodes']} nodes)" in text
    assert f"trained on    polygons (l.gpkg, field class), {card['training']['training_pixels']} pixels" in text
    _, base_card = load_checkpoint(scene["checkpoint"])
    with Scene(params.optical, params.sar, base_card) as sc:
        labels = read_labels(params.labels, sc.opt, "class", None, None, None, params.max_pixels_per_polygon, 3,
                             known=[(c["value"], c["name"]) for c in base_card["classes"]])
        split = make_split(params, labels, sc)
    import rasterio

    ens_path = ensemble_path_for(params.output)
    assert report["ensemble_checkpoint"] == ens_path and ens_path.endswith("model.ensemble.safetensors")
    ens, ens_card = load_checkpoint(ens_path)
    chosen = report["ensemble_weight"]["chosen"]
    assert ens_card["arch"] == "ensemble" and ens_card["config"]["forest_weight"] == chosen
    assert ens_card["training"]["forest_weight"]["chosen"] == chosen
    assert ens_card["config"]["network"]["arch"] == "claire" and ens_card["config"]["forest"] == card["config"]
    # the card holds this file's own held-out scores (a reviewer's map of it scored 0.62 where the card, holding the
    # cross-fitted scores of no single model, said 0.37); the cross-fitted ones beside them, each named
    own = ens_card["metrics"]["heldout_polygons"]["macro_f1"]
    assert own == report["ensemble_weight"]["heldout_with_chosen"]["clear"]
    assert ens_card["metrics"]["heldout_polygons_crossfitted"]["macro_f1"] == \
        report["arms"]["ensemble"]["clear"]["macro_f1"]
    assert "optimistic" in ens_card["metrics"]["heldout_polygons_note"]
    assert "finetuned" in ens_card["metrics"]["baselines"] and "rf_optical_sar" in ens_card["metrics"]["baselines"]
    summary = card_summary(ens_card)
    assert "averaged" in summary and "metrics       held-out polygons: macro-F1" in summary and "optimistic" in summary
    assert "held-out polygons, cross-fitted" in summary
    if "random_pixel_split_rf" in ens_card["metrics"]:  # never shown as the model's own metrics
        assert "metrics       leakage check, not this model: a random forest" in summary
    # each checkpoint's map gives, at the held-out pixels, the score the report states for it
    for ckpt, arm in ((path, "rf_optical_sar"), (ens_path, "ensemble")):
        out = str(scene["dir"] / f"{arm}_map.tif")
        classify(ClassifyParams(scene["optical"], scene["sar"], out, checkpoint=ckpt, device="cpu", runtime="auto"))
        with rasterio.open(out) as ds:
            mapped = ds.read(1)
        value_to_index = {c["value"]: c["index"] for c in card["classes"]}
        pred = np.array([value_to_index.get(int(v), -1) for v in mapped[split.val.rows, split.val.cols]])
        # the ensemble's arm is cross-fitted; its checkpoint's weight scored on all held-out polygons is kept too
        stated = (report["arms"][arm]["clear"]["macro_f1"] if arm != "ensemble" else
                  report["ensemble_weight"]["heldout_with_chosen"]["clear"])
        assert score(pred, split.val, labels.classes)["macro_f1"] == stated
    # a forest is not a base to fine-tune
    with pytest.raises(ClaireError, match="is a random forest; fine-tuning starts from a network"):
        train_from_polygons(_params(scene, checkpoint=path, output=str(scene["dir"] / "again.safetensors")))
    with pytest.raises(ClaireError, match="is a network and a random forest averaged; fine-tuning starts"):
        train_from_polygons(_params(scene, checkpoint=ens_path, output=str(scene["dir"] / "again.safetensors")))


def test_no_forest_checkpoint_without_the_baseline(scene):
    from claire.claire_plugin.core.training.polygons import ensemble_path_for, forest_path_for

    torch.set_num_threads(1)
    params = _params(scene, baseline=False)
    report = train_from_polygons(params)
    assert "forest_checkpoint" not in report and not os.path.exists(forest_path_for(params.output))
    assert "ensemble_checkpoint" not in report and not os.path.exists(ensemble_path_for(params.output))


def test_a_users_snow_class_is_scored_as_the_engine_maps_it(scene):
    """With a class named snow, the report's held-out scores (network, forest) are those of the engine's maps,
    whose snow check rules snow out where the synthetic optical shows none (it does here: the maps differ)."""
    import rasterio

    from claire.claire_plugin.core.engine import classify
    from claire.claire_plugin.core.params import ClassifyParams
    from claire.claire_plugin.core.training.labels import read_labels
    from claire.claire_plugin.core.training.polygons import forest_path_for, make_split
    from claire.claire_plugin.core.training.scene import Scene
    from claire.claire_plugin.core.training.scorecard import score

    torch.set_num_threads(1)
    names = {**NAMES, 4: "snow"}
    labels_path = write_vector(scene["dir"] / "snow.gpkg", [(box_wkt(r, c, r + 5, c + 5), names[v]) for v, r, c in BOXES])
    params = _params(scene, labels=labels_path)
    report = train_from_polygons(params)
    _, base_card = load_checkpoint(scene["checkpoint"])
    with Scene(params.optical, params.sar, base_card) as sc:
        labels = read_labels(labels_path, sc.opt, "class", None, None, None, params.max_pixels_per_polygon, 3,
                             known=[(c["value"], c["name"]) for c in base_card["classes"]])
        split = make_split(params, labels, sc)
    changed = 0
    for ckpt, arm in ((params.output, "finetuned"), (forest_path_for(params.output), "rf_optical_sar")):
        maps = {}
        for check in (True, False):
            out = str(scene["dir"] / f"{arm}_{check}.tif")
            classify(ClassifyParams(scene["optical"], scene["sar"], out, checkpoint=ckpt, device="cpu",
                                    runtime="eager", snow_check=check))
            with rasterio.open(out) as ds:
                maps[check] = ds.read(1)
        card = load_checkpoint(ckpt)[1]
        value_to_index = {c["value"]: c["index"] for c in card["classes"]}
        pred = np.array([value_to_index.get(int(v), -1) for v in maps[True][split.val.rows, split.val.cols]])
        assert score(pred, split.val, labels.classes)["macro_f1"] == report["arms"][arm]["clear"]["macro_f1"], arm
        changed += int((maps[True] != maps[False]).sum())
    assert changed > 0


def test_a_point_layer_is_spoken_of_as_points(scene):
    """Training from points: the progress, the notes, the plain-text table and the HTML report say points, never
    polygons (one exception: the leakage check says why polygons would leak where points do not)."""
    import re

    from claire.claire_plugin.cli.train_polygons import summary_table
    from claire.claire_plugin.core.training.scorecard import render_html, verdicts
    from claire.tests.fixtures.vectors import point_wkt

    torch.set_num_threads(1)
    points = [(point_wkt(r + dr, c + dc), NAMES[v]) for v, r, c in BOXES for dr in (0, 4) for dc in (0, 4)]
    said = []
    report = train_from_polygons(_params(scene, labels=write_vector(scene["dir"] / "p.gpkg", points)),
                                 progress=lambda f, m: said.append(m))
    assert report["labels"]["geometry"] == "point"
    text = "\n".join(said + report_notes(report) + verdicts(report) + [summary_table(report)])
    html = re.sub(r"<[^>]+>", " ", render_html(report))
    assert "held-out points" in text and "held-out points" in html and "Classes, points and pixels" in html
    assert "Split: points" in html
    exempt = "with polygons, neighbouring pixels of one polygon on both sides of a random split flatter the score"
    assert "polygon" not in (text + html.replace(exempt, "")).lower()


def test_a_network_trained_from_scratch_is_not_called_fine_tuned():
    from claire.claire_plugin.core.training.scorecard import arm_title, untuned_verdict

    report = {"training": {"base_checkpoint": "/a/claire_default.safetensors", "config": {"from_scratch": True}},
              "arms": {"finetuned": {"clear": {"macro_f1": 0.3}}, "untuned": {"clear": {"macro_f1": 0.6}}},
              "spread": {"clear": {"differences": {"finetuned - untuned": [-0.4, -0.2]}}}}
    assert arm_title(report, "finetuned") == "CLAIRE trained from scratch (optical + SAR)"
    said = untuned_verdict(report)
    assert "than the network trained from scratch" in said and "fine-tune it instead" in said
    report["spread"]["clear"]["differences"]["finetuned - untuned"] = [-0.4, 0.1]  # not decided: no switch advised
    said = untuned_verdict(report)
    assert "training from scratch has not shown a gain yet" in said and "Map with" not in said
    assert "fine-tuning did not help" not in said
    report["training"]["config"]["from_scratch"] = False
    assert arm_title(report, "finetuned") == "CLAIRE fine-tuned (optical + SAR)"
    # the averaged arm's table row scores no single model (QA round 23: 0.017 beside its file's own 0.174)
    assert arm_title(report, "ensemble") == "CLAIRE + random forest, averaged, cross-fitted"
    assert "fine-tuning has not shown a gain yet" in untuned_verdict(report)
    report["spread"]["clear"]["differences"]["finetuned - untuned"] = [-0.4, -0.2]
    assert "fine-tuning did not help" in untuned_verdict(report)


def test_a_label_rasters_rare_class_and_unnamed_classes_get_raster_fixes(tmp_path, scene):
    """A label raster has patches, not polygons, and no class names: its messages say how to fix a raster."""
    from claire.claire_plugin.core.training.labels import LabelPixels, LabelSet, check_class_counts
    from claire.claire_plugin.core.training.polygons import _unscored_base

    px = LabelPixels(np.arange(40, dtype=np.int32), np.zeros(40, np.int32),
                     np.array([0] * 30 + [1] * 10, np.uint8), np.array([0] * 10 + [1] * 10 + [2] * 10 + [3] * 10,
                                                                      np.int32))
    from claire.claire_plugin.core.training.labels import ClassInfo

    labels = LabelSet(px, [ClassInfo(0, 1, "class 1"), ClassInfo(1, 3, "class 3")], {0: 0, 1: 0, 2: 0, 3: 1},
                      {}, {"kind": "raster"})
    with pytest.raises(ClaireError, match=r"'class 3' \(code 3\) has 1 separate patch;.*gdal_calc\.py .*A!=3"):
        check_class_counts(labels)
    why = _unscored_base(labels, _params(scene))
    assert why.startswith("not scored: a label raster's classes have no names") and "--classes value:name" in why
    labels.classes[0].name = "water"  # named (here by --classes) but not as the base names its classes
    assert _unscored_base(labels, _params(scene)).startswith("not scored: none of your class names is a class")


def test_a_missing_validation_layer_is_named_as_such(scene, tmp_path):
    from claire.claire_plugin.core.training.polygons import check_settings

    with pytest.raises(ClaireError, match=r"the validation layer .*e10\.heldout\.gpkg' does not exist.*NAME\.heldout"):
        check_settings(_params(scene, validation=str(tmp_path / "e10.heldout.gpkg")))


def test_a_missing_scikit_learn_stops_training_before_any_work(scene, monkeypatch):
    """After a ZIP install without scikit-learn, training failed at 85 %, after the network had trained."""
    import importlib.util

    from claire.claire_plugin.core.training.polygons import check_settings

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    with pytest.raises(ClaireError, match=r"baseline \(on by default\) needs scikit-learn.*--no-baseline"):
        check_settings(_params(scene))
    check_settings(_params(scene, baseline=False))  # without the forest nothing needs it


def test_the_scoring_progress_is_told_at_most_once_a_tenth():
    """The command line prints each progress message on a line of its own: 255 windows gave 255 lines."""
    from claire.claire_plugin.core.training.polygons import _tenths

    said = []
    tell = _tenths(lambda f, m: said.append((f, m)), "scoring on the held-out polygons")
    for done in range(1, 256):
        tell(done, 255)
    assert 10 <= len(said) <= 11 and said[-1][1] == "scoring on the held-out polygons: window 255 of 255"
    assert said[-1][0] == pytest.approx(0.93)


def test_a_chain_of_fine_tunings_names_the_last_scene_once():
    from claire.claire_plugin.core.training.polygons import _sensor_said

    first = _sensor_said({"sensor": "Sentinel-2 L2A + L1C", "bands": ["B02"]}, "the base checkpoint's; fine-tuned on a.tif")
    second = _sensor_said(first, "the base checkpoint's; fine-tuned on b.tif")
    assert second["sensor"] == "Sentinel-2 L2A + L1C (the base checkpoint's; fine-tuned on b.tif)"
    assert second["bands"] == ["B02"] and first["sensor"].endswith("a.tif)")
    assert _sensor_said({}, "x")["sensor"] == "as the base checkpoint (x)"
    odd = _sensor_said(_sensor_said({"sensor": "S2"}, "the base checkpoint's; fine-tuned on S2 (1).tif"),
                       "the base checkpoint's; fine-tuned on next.tif")
    assert odd["sensor"] == "S2 (the base checkpoint's; fine-tuned on next.tif)"  # a name with parentheses


def test_a_base_coding_the_bundled_classes_otherwise_is_said_in_the_notes(scene):
    """QA (upgrades): a checkpoint trained before names took the base's codes (built area 1, crops 2, water 3) passed
    those codes on to a model trained from it, unsaid: its maps then scored OA 0.08 against a reference in the
    bundled legend. The notes say so, with the mapping; a base in the bundled legend gives no such note."""
    from claire.tests.fixtures.helpers import make_tiny_checkpoint

    torch.set_num_threads(1)
    old = [{"index": 0, "value": 1, "name": "built area"}, {"index": 1, "value": 2, "name": "crops"},
           {"index": 2, "value": 3, "name": "water"}]
    base = make_tiny_checkpoint(scene["dir"] / "old_base.safetensors", classes=old)
    report = train_from_polygons(_params(scene, checkpoint=base, rf_trees=0, baseline=False))
    assert [(c["code"], c["name"]) for c in report["classes"]] == [(1, "built area"), (2, "crops"), (3, "water")]
    said = [n for n in report_notes(report) if "codes classes of the bundled checkpoint otherwise" in n]
    assert len(said) == 1 and "class mapping 1:3,4:2,5:1" in said[0], report_notes(report)
    fresh = train_from_polygons(_params(scene, rf_trees=0, baseline=False, output=str(scene["dir"] / "m2.safetensors"),
                                        report=str(scene["dir"] / "r2.json")))
    assert not any("codes classes of the bundled checkpoint otherwise" in n for n in report_notes(fresh))


def test_rf_trees_0_means_no_forest_as_in_processing(scene):
    """QA round 14: `--rf-trees 0` was refused on the command line while RF_TREES 0 is Processing's way to skip the
    forest."""
    from claire.claire_plugin.cli.main import build_parser
    from claire.claire_plugin.cli.train_polygons import params_from_args

    argv = ["train", "--optical", scene["optical"], "--sar", scene["sar"], "--labels", scene["labels"], "--field",
            "class", "--output", str(scene["dir"] / "m.safetensors")]
    assert params_from_args(build_parser().parse_args(argv + ["--rf-trees", "0"])).baseline is False
    assert params_from_args(build_parser().parse_args(argv)).baseline is True


def _sar_cut(scene, from_col, name):
    """The scene's SAR with no data from column `from_col` on (a SAR covering part of the optical)."""
    import rasterio

    from claire.tests.fixtures.helpers import write_raster

    with rasterio.open(scene["sar"]) as ds:
        sar = ds.read()
    sar[:, :, from_col:] = -9999
    return write_raster(scene["dir"] / name, sar, descriptions=["VV", "VH"], nodata=-9999)


def test_every_arm_is_trained_and_scored_where_both_rasters_have_data(scene):
    """QA round 17: beyond a SAR's coverage the networks were not scored (and never trained) while the forests
    were, on the SAR mirrored into the gap; the report's arms compared different pixels."""
    torch.set_num_threads(1)
    report = train_from_polygons(_params(scene, sar=_sar_cut(scene, 70, "s70.tif"), rf_trees=5))
    pixels = {name: {cond: (m["pixels"], m.get("unscored_pixels", 0)) for cond, m in arm.items()}
              for name, arm in report["arms"].items()}
    assert len({v for arm in pixels.values() for v in arm.values()}) == 1, pixels
    assert next(iter(pixels["finetuned"].values()))[1] == 0
    note = next(n for n in report_notes(report) if "where the optical or the SAR has no data" in n)
    gone = report["split"]["no_data_train_pixels"] + report["split"]["no_data_val_pixels"]
    assert gone == 50 and note.startswith(f"{report['split']['no_data_train_pixels']} training and ")
    assert "built area 50" in note  # the two built-area boxes at columns 75-79 and 80-84
    assert sum(r["train_pixels"] + r["val_pixels"] for r in report["counts"]) == 12 * 25 - gone - sum(
        report["split"].get(k, 0) for k in ("buffer_dropped_train_pixels",))
    # review of round 17: the split's polygon counts (kept in the card, read by `claire info`) are those left too
    by_class = {r["class"]: r for r in report["counts"]}
    assert {name: (row["train_polygons"], row["val_polygons"]) for name, row in report["split"]["per_class"].items()} \
        == {name: (r["train_polygons"], r["val_polygons"]) for name, r in by_class.items()}
    leak = report["leakage"]["pixel_split"]  # the leakage check is scored where both rasters have data too
    assert leak.get("unscored_pixels", 0) == 0


def test_validation_pixels_beyond_the_sar_are_left_out_of_every_arm(scene):
    """Mutation check of round 17: no test had validation pixels in the gap (seed 10 holds out the built-area box at
    columns 75-79, two of its columns beyond the SAR's column 78)."""
    torch.set_num_threads(1)
    cfg = FinetuneConfig(epochs=1, steps_per_epoch=1, batch_size=2, crop=64, device="cpu", seed=10)
    report = train_from_polygons(_params(scene, sar=_sar_cut(scene, 78, "s78.tif"), rf_trees=5, config=cfg))
    assert (report["split"]["no_data_train_pixels"], report["split"]["no_data_val_pixels"]) == (25, 10)
    for arm in report["arms"].values():
        for m in arm.values():
            assert m.get("unscored_pixels", 0) == 0 and m["pixels"] == sum(r["val_pixels"] for r in report["counts"])


def test_a_class_only_beyond_the_sar_is_refused_naming_the_gap(scene):
    with pytest.raises(ClaireError, match="class 'built area' has no (training|validation) pixel where both the optical "
                                          "and the SAR have data"):
        train_from_polygons(_params(scene, sar=_sar_cut(scene, 62, "s62.tif"), rf_trees=5))


@pytest.mark.parametrize("cut", [None, 78])
def test_the_checks_before_training_read_each_labelled_pixel_once(scene, monkeypatch, cut):
    """Round 21: the polygons' class check and the split's data check each read every labelled pixel (61.8 s of
    the minute before the first epoch with 2,000 polygons on a 6000 px scene); the data check now looks up what the
    class check read, with the same split as reading again (`cut`: a SAR with no data from column 78 on)."""
    from claire.claire_plugin.core.training import polygons
    from claire.claire_plugin.core.training.scene import Scene

    read = []
    real = polygons.sample_pixels
    monkeypatch.setattr(polygons, "sample_pixels", lambda sc, px, *a, **k: read.append(len(px)) or real(sc, px, *a, **k))
    params = _params(scene, **({"sar": _sar_cut(scene, cut, f"s{cut}.tif")} if cut else {}))
    base_model, base_card, _ = polygons.load_base(None)
    with Scene(params.optical, params.sar, base_card) as sc:
        labels, _, split = polygons._labels_and_split(params, sc, base_card, None, lambda *_: None)
        assert read == [len(labels.pixels)]
        again = polygons.with_data(sc, polygons.make_split(params, labels, sc), labels)
    for got, want in ((split.train, again.train), (split.val, again.val)):
        assert len(got) == len(want) and (got.rows == want.rows).all() and (got.cols == want.cols).all()
    gone = [part.info.get(f"no_data_{k}_pixels", 0) for part in (split, again) for k in ("train", "val")]
    assert gone[:2] == gone[2:] and (sum(gone[:2]) > 0) == bool(cut), gone


def test_pixels_the_class_check_did_not_read_are_read_for_the_data_check(scene):
    """The lookup of round 21 reads what it does not know (a separate validation layer's pixels) and only that."""
    from claire.claire_plugin.core.training import polygons
    from claire.claire_plugin.core.training.labels import LabelPixels
    from claire.claire_plugin.core.training.scene import Scene

    _, base_card, _ = polygons.load_base(None)
    params = _params(scene, sar=_sar_cut(scene, 78, "s78.tif"))
    with Scene(params.optical, params.sar, base_card) as sc:
        rows, cols = np.array([5, 5, 5, 6], np.int32), np.array([10, 77, 78, 90], np.int32)
        known = polygons.DataAt(sc, LabelPixels(rows[:2], cols[:2], np.zeros(2, np.uint8), np.zeros(2, np.int32)),
                                np.array([False, True]))  # the first flag a lie: looked up, not read again
        asked = LabelPixels(rows, cols, np.zeros(4, np.uint8), np.zeros(4, np.int32))
        assert known.at(sc, asked).tolist() == [False, True, False, False]
        empty = polygons.DataAt(sc, LabelPixels(*(np.zeros(0, t) for t in (np.int32, np.int32, np.uint8, np.int32))),
                                np.zeros(0, bool))
        assert empty.at(sc, asked).tolist() == [True, True, False, False]


def test_the_written_ensembles_own_scores_are_those_of_the_ensemble_run_on_its_own(scene, monkeypatch):
    """Round 21: the written ensemble's own held-out scores and calibration came from a second pass of the network
    and forest over every held-out window (a third of the time after the budget with 2,000 polygons); they are now
    the weight sweep's member at the chosen weight, and must equal what the ensemble gives run on its own."""
    from claire.claire_plugin.core.training import polygons
    from claire.claire_plugin.core.training.calibrate import calibrate
    from claire.claire_plugin.core.training.scorecard import score
    from claire.claire_plugin.core.training.windows import predict_pixels
    from claire.models.ensemble import EnsembleNet

    torch.set_num_threads(1)
    seen = {}
    real = polygons._evaluate_arms

    def spy(val_windows, split, classes, nets, forests, seed, device, sweep=None, *a, **k):
        seen.update(windows=val_windows, split=split, classes=classes, sweep=sweep, seed=seed)
        return real(val_windows, split, classes, nets, forests, seed, device, sweep, *a, **k)

    monkeypatch.setattr(polygons, "_evaluate_arms", spy)
    report = train_from_polygons(_params(scene, rf_trees=10))
    weight = report["ensemble_weight"]
    ens = EnsembleNet(seen["sweep"].network, seen["sweep"].forest, weight["chosen"])
    logits = {}
    out = predict_pixels(seen["windows"], [(ens, None)], [False, True], seen["seed"], logits=logits)
    val = seen["split"].val
    assert weight["own_scores"] == {"clear": score(out[False][0][0], val, seen["classes"]),
                                    "clouds_60pct": score(out[True][0][0], val, seen["classes"])}
    assert weight["calibration"] == calibrate(logits, val, seen["seed"])


def test_the_per_epoch_score_on_a_spread_of_many_held_out_windows_says_so(scene, monkeypatch, capsys):
    """Round 21: with many held-out windows the per-epoch score (a display) is measured on a spread of them holding
    every class; each epoch line, the progress and the report say on how many; the final scores take them all."""
    from claire.claire_plugin.cli.train_polygons import _epoch_line
    from claire.claire_plugin.core.training import polygons
    from claire.claire_plugin.core.training.windows import WindowSet, cells

    class SmallWindows(WindowSet):  # the small scene's held-out pixels in many windows, as a large scene's are
        def __init__(self, scene_, pixels, **kw):
            super().__init__(scene_, pixels, **kw)
            self.windows = list(cells(scene_, pixels, 64))

    torch.set_num_threads(1)
    monkeypatch.setattr(polygons, "WindowSet", SmallWindows)
    monkeypatch.setattr(polygons, "EPOCH_VALIDATION_PX", 1)  # one window, plus one per class it misses
    aligned, last = [], {}
    real_predict, real_macro = polygons.predict_pixels, polygons._macro

    def predict(wset, *a, **k):
        last["pixels"] = wset.pixels
        return real_predict(wset, *a, **k)

    def macro(pred, ref, classes):  # the labels scored are those of the pixels predicted, in their order
        aligned.append(bool((ref.rows == last["pixels"].rows).all() and (ref.cols == last["pixels"].cols).all()))
        return real_macro(pred, ref, classes)

    monkeypatch.setattr(polygons, "predict_pixels", predict)
    monkeypatch.setattr(polygons, "_macro", macro)
    epochs, said = [], []
    report = train_from_polygons(_params(scene, baseline=False, val_share=0.5), progress=lambda f, m: said.append(m),
                                 on_epoch=epochs.append)
    part = report["training"]["val_per_epoch_on"]
    assert part and part["windows"] < part["of_windows"] and part["pixels"] < part["of_pixels"]
    assert part["of_pixels"] == sum(r["val_pixels"] for r in report["counts"])
    assert report["arms"]["finetuned"]["clear"]["pixels"] == part["of_pixels"]  # the final score: every pixel
    assert all(e["val_windows"] == (part["windows"], part["of_windows"]) for e in epochs)
    assert any(f"after each epoch on {part['windows']} of the {part['of_windows']} held-out windows" in m
               and m.endswith("at the end on all") for m in said), said
    assert len(aligned) == len(epochs) and all(aligned)
    _epoch_line(epochs[0])
    assert f"(on {part['windows']} of {part['of_windows']} held-out windows)" in capsys.readouterr().err
    assert polygons.epoch_score_text(dict(epochs[0], val_macro_f1=None)) == "-"  # an epoch not measured
    monkeypatch.undo()  # the default: a scene's held-out windows under EPOCH_VALIDATION_PX are all measured
    whole = train_from_polygons(_params(scene, baseline=False, output=str(scene["dir"] / "m2.safetensors"),
                                        report=str(scene["dir"] / "r2.json")))
    assert whole["training"]["val_per_epoch_on"] is None


def test_the_scoring_keeps_the_logits_of_the_weight_sweeps_members_only(scene, monkeypatch):
    """Review of round 21: the scoring pass kept the logits of every model it ran (the untuned base network too), of
    which only the sweep's members can be the written ensemble."""
    from claire.claire_plugin.core.training import polygons

    torch.set_num_threads(1)
    kept = {}
    real = polygons.predict_pixels

    def spy(*a, **k):
        out = real(*a, **k)
        if k.get("member_logits") is not None:
            kept.update(members=set(k["member_logits"][0]), models=len(a[1]))
        return out

    monkeypatch.setattr(polygons, "predict_pixels", spy)
    report = train_from_polygons(_params(scene, rf_trees=10))
    assert "untuned" in report["arms"] and "ensemble" in report["arms"]
    members = range(2, kept["models"])  # after the fine-tuned and the untuned networks
    assert kept["members"] == {(j, c) for j in members for c in (False, True)}


def test_the_forests_learn_from_one_capped_read_and_the_optical_one_is_freed_once_scored(scene, monkeypatch):
    """Mutation check of round 21: no test held the forests to `rf_max_pixels`, to one read of their training pixels
    (the SAR-alone forest read them again without a difference in any score), or to freeing the optical-only
    forest before the next forests grow."""
    import gc
    import weakref

    from claire.claire_plugin.core.training import baseline, polygons, sar_alone

    torch.set_num_threads(1)
    fitted, reads, dead = [], [], {}
    real_fit = baseline.fit_forest

    def fit(features, *a, **k):
        fitted.append(len(features))
        return real_fit(features, *a, **k)

    for module in (polygons, sar_alone):
        monkeypatch.setattr(module, "fit_forest", fit)
        real_sample = module.sample_pixels
        monkeypatch.setattr(module, "sample_pixels", lambda sc, px, *a, _r=real_sample, **k: reads.append(len(px))
                            or _r(sc, px, *a, **k))
    real_arms = polygons._evaluate_arms

    def arms(val_windows, split, classes, nets, forests, *a, **k):
        out = real_arms(val_windows, split, classes, nets, forests, *a, **k)
        dead["ref"] = weakref.ref(forests["rf_optical"][0])
        return out

    real_sar = polygons.sar_only_scores

    def sar(*a, **k):
        gc.collect()
        dead["freed"] = dead["ref"]() is None
        return real_sar(*a, **k)

    monkeypatch.setattr(polygons, "_evaluate_arms", arms)
    monkeypatch.setattr(polygons, "sar_only_scores", sar)
    from claire.models.checkpoint import save_checkpoint
    from claire.models.registry import build_model
    from claire.tests.fixtures.helpers import tiny_card

    card = tiny_card()
    card["config"]["cloud_gate"] = True  # a cloud-gated base: the SAR-alone arms and their forest are scored
    torch.manual_seed(0)
    gated = str(scene["dir"] / "gated.safetensors")
    save_checkpoint(gated, build_model("claire", card["config"]), card)
    report = train_from_polygons(_params(scene, rf_trees=5, rf_max_pixels=60, checkpoint=gated))
    assert "rf_sar" in report["sar_only"]["arms"]
    assert len(fitted) == 4 and all(n <= 60 for n in fitted), fitted  # with SAR, optical, SAR alone, leakage
    assert reads.count(60) == 3  # the forests' sample once; the leakage check's training and validation samples
    assert dead["freed"]
