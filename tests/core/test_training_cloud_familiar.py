"""Polygon training of a cloud-gated base (issue 17): the network gets the cloud probability in training and in
its held-out scoring, computed as the engine computes it; the new card carries familiarity statistics so the
engine's unfamiliar raster works with the user's model."""
import numpy as np
import pytest
import rasterio
import torch

from claire.claire_plugin.core.engine import classify
from claire.claire_plugin.core.params import ClassifyParams
from claire.claire_plugin.core.training import sources
from claire.claire_plugin.core.training.finetune import FinetuneConfig
from claire.claire_plugin.core.training.polygons import PolygonTrainParams, train_from_polygons
from claire.claire_plugin.core.training.scene import Scene
from claire.claire_plugin.core.training.windows import gate_input
from claire.models import networks
from claire.models.checkpoint import load_checkpoint, save_checkpoint
from claire.models.registry import build_model
from claire.tests.fixtures.helpers import synthetic_scene, tiny_card, write_raster
from claire.tests.fixtures.vectors import TRAIN_BOXES as BOXES
from claire.tests.fixtures.vectors import TRAIN_NAMES as NAMES
from claire.tests.fixtures.vectors import box_wkt, write_vector


def _checkpoint(path, cloud_gate: bool) -> str:
    card = tiny_card()
    if cloud_gate:
        card["config"]["cloud_gate"] = True
    torch.manual_seed(0)
    save_checkpoint(str(path), build_model("claire", card["config"]), card)
    return str(path)


@pytest.fixture
def scene(tmp_path):
    opt, sar, _ = synthetic_scene(64, 96)
    opt[:, 8:24, 50:70] = 6500  # a bright, flat, cloud-like patch: the cloud probability is not zero everywhere
    feats = [(box_wkt(r, c, r + 5, c + 5), NAMES[v]) for v, r, c in BOXES]
    return {"optical": write_raster(tmp_path / "o.tif", opt),
            "sar": write_raster(tmp_path / "s.tif", sar, descriptions=["VV", "VH"]),
            "labels": write_vector(tmp_path / "l.gpkg", feats), "dir": tmp_path,
            "gated": _checkpoint(tmp_path / "gated.safetensors", True),
            "plain": _checkpoint(tmp_path / "plain.safetensors", False)}


def _train(scene, checkpoint: str, name: str) -> str:
    cfg = FinetuneConfig(epochs=2, steps_per_epoch=1, batch_size=2, crop=64, device="cpu", seed=1)
    out = str(scene["dir"] / f"tuned_{name}.safetensors")
    train_from_polygons(PolygonTrainParams(scene["optical"], scene["sar"], scene["labels"], out, field="class",
                                           checkpoint=checkpoint, baseline=False, buffer_px=2, config=cfg))
    return out


@pytest.fixture
def forwards(monkeypatch):
    """Every CLAIRE forward call: (training mode, uses_cloud, cloud shape or None, cloud range)."""
    calls = []
    real = networks.ClaireNet.forward

    def spy(self, optical, sar, *args, cloud=None, **kw):
        rng = None if cloud is None else (float(cloud.min()), float(cloud.max()))
        calls.append((self.training, self.uses_cloud, None if cloud is None else tuple(cloud.shape),
                      tuple(optical.shape), rng))
        return real(self, optical, sar, *args, cloud=cloud, **kw)

    monkeypatch.setattr(networks.ClaireNet, "forward", spy)
    return calls


def test_a_cloud_gated_base_gets_the_cloud_in_training_and_scoring(scene, forwards):
    torch.set_num_threads(1)
    _train(scene, scene["gated"], "gated")
    gated = [c for c in forwards if c[1]]
    assert any(c[0] for c in gated) and any(not c[0] for c in gated)  # training steps and evaluation
    for _training, _uses, cloud, optical, rng in gated:
        assert cloud == (optical[0], 1) + optical[2:]
        assert 0.0 <= rng[0] <= rng[1] <= 1.0
    assert max(c[4][1] for c in gated) > 0.5  # the bright patch reaches the gate


def test_a_base_without_gate_gets_no_cloud(scene, forwards):
    torch.set_num_threads(1)
    _train(scene, scene["plain"], "plain")
    assert forwards and all(not c[1] and c[2] is None for c in forwards)


def test_the_training_cloud_is_the_engines(scene, tmp_path):
    """gate_input over a window equals the cloud raster the engine writes (uint8 percent) at the same pixels."""
    torch.set_num_threads(1)
    out, cloud_tif = str(tmp_path / "map.tif"), str(tmp_path / "cloud.tif")
    classify(ClassifyParams(scene["optical"], scene["sar"], out, checkpoint=scene["gated"], device="cpu",
                            cloud=cloud_tif))
    with rasterio.open(cloud_tif) as ds:
        engine = ds.read(1)
    _, card = load_checkpoint(scene["gated"])
    with Scene(scene["optical"], scene["sar"], card) as sc:
        o, _s, bad = sc.read(0, 0, 64, 96)
        ours = np.floor(gate_input(sc, o, bad)[0] * 100).astype(np.uint8)
    assert not bad.any() and engine.max() > 50
    assert np.array_equal(ours, engine)


def test_polygon_trained_card_has_familiarity_the_engine_uses(scene, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setattr(sources, "MIN_FAMILIAR_CELLS", 1)  # the wiring, on a scene too small for the statistics
    model_path = _train(scene, scene["gated"], "fam")
    _, card = load_checkpoint(model_path)
    fam = card["familiarity"]
    assert fam["feature"] == "bottleneck" and len(fam["basis"][0]) == len(fam["mean"]) > 0
    assert len(fam["pvar"]) == len(fam["basis"]) and fam["threshold"] > 0 and fam["quantile"] == 0.99
    assert fam["pixels"] > 0 and fam["heldout_pixels"] > 0 and fam["calibrated_on"] == "heldout"
    unfamiliar = str(tmp_path / "unfamiliar.tif")
    classify(ClassifyParams(scene["optical"], scene["sar"], str(tmp_path / "map.tif"), checkpoint=model_path,
                            device="cpu", unfamiliar=unfamiliar))
    with rasterio.open(unfamiliar) as ds:
        values = ds.read(1)
        assert (values != ds.nodata).any()


def test_too_small_a_scene_gets_no_familiarity_and_says_why(scene, tmp_path):
    """6 cells of 32 px around the polygons: statistics fitted there flag everything else (the dock walk saw
    100 % of the farmland patch flagged by a model trained on it); the card says why it has none instead."""
    torch.set_num_threads(1)
    model_path = _train(scene, scene["gated"], "small")
    _, card = load_checkpoint(model_path)
    assert card["familiarity"] is None
    assert "6 cells of 32 px" in card["training"]["familiarity"] and "fewer than the 256" in card["training"]["familiarity"]
    result = classify(ClassifyParams(scene["optical"], scene["sar"], str(tmp_path / "map.tif"), checkpoint=model_path,
                                     device="cpu", unfamiliar=str(tmp_path / "unfamiliar.tif")))
    said = [m for m in result.messages if "cannot tell where a scene is unlike its training data" in m]
    assert result.unfamiliar is None and len(said) == 1 and said[0].startswith("warning: this checkpoint, trained on")
    assert "6 cells of 32 px" in said[0] and said[0].endswith("; the unfamiliar raster you asked for is not written")
    # QA (a day's workflow): the explanation of a map by such a model said nothing of it
    from claire.claire_plugin.core.explain import check_grounding
    from claire.claire_plugin.core.explain.facts import build_facts
    from claire.claire_plugin.core.explain.template import write

    facts = build_facts(result.summary, card)
    text = write(facts)
    assert "This model cannot tell where a scene is unlike its training data: its polygons covered too little" in text
    assert check_grounding(text, facts).flagged_sentences == []
    from claire.claire_plugin.core.explain.prompt import facts_lines

    assert any(line.startswith("This model cannot tell where a scene is unlike") for line in facts_lines(facts))


def test_held_out_scores_from_sar_alone_take_the_engines_gap_input(scene, forwards):
    """With a cloud-gated base the report scores the networks with the optical missing, fed as the engine feeds
    optical gaps (optical input 0, cloud input 1), next to a forest on the SAR values; not without a gate."""
    from claire.claire_plugin.core.training.sar_alone import NOT_GATED
    from claire.claire_plugin.core.training.scorecard import sar_only_lines

    torch.set_num_threads(1)
    cfg = FinetuneConfig(epochs=1, steps_per_epoch=1, batch_size=2, crop=64, device="cpu", seed=1)
    out = str(scene["dir"] / "alone.safetensors")
    report = train_from_polygons(PolygonTrainParams(scene["optical"], scene["sar"], scene["labels"], out,
                                                    field="class", checkpoint=scene["gated"], rf_trees=10,
                                                    buffer_px=2, config=cfg))
    alone = report["sar_only"]
    assert set(alone["arms"]) == {"finetuned", "untuned", "rf_sar"}
    val_pixels = report["arms"]["finetuned"]["clear"]["pixels"]
    assert all(m["pixels"] == val_pixels for m in alone["arms"].values())
    blind = [c for c in forwards if not c[0] and c[4] == (1.0, 1.0)]  # evaluation forwards with the cloud all 1
    assert blind, "no forward saw the optical missing everywhere"
    _, card = load_checkpoint(out)
    assert card["metrics"]["heldout_polygons_sar_only"]["macro_f1"] == alone["arms"]["finetuned"]["macro_f1"]
    # the network's confidence from SAR alone calibrated on the same pixels: the temperature the engine gives the
    # pixels it classifies from SAR alone, in the network's and the averaged model's cards
    cal = alone["calibration"]
    assert cal["temperature"] >= 1.0 and cal["sar_only"]["before"]["accuracy"] is not None
    assert "optical missing" in cal["how"] and alone["calibration_note"].startswith(("SAR-alone confidence", "confidence"))
    assert card["calibration"]["sar_only"]["temperature"] == cal["temperature"]
    from claire.models.card_schema import card_temperature

    assert card_temperature(card, sar_only=True) == cal["temperature"]
    if report.get("ensemble_checkpoint"):
        assert load_checkpoint(report["ensemble_checkpoint"])[1]["calibration"]["sar_only"]["temperature"] == \
            cal["temperature"]
    lines = sar_only_lines(report)
    assert lines[0].startswith("held-out polygons with the optical missing")
    assert any("Random forest, SAR only" in line for line in lines)
    from claire.claire_plugin.core.training.scorecard import render_html
    from claire.claire_plugin.gui.train_report import report_html

    page = render_html(report)
    assert "Where the optical is missing: SAR alone" in page and "Random forest, SAR only" in page
    assert "<b>Optical missing</b> (SAR alone" in report_html(report, out) and "RF&nbsp;SAR" in report_html(report, out)
    plain = train_from_polygons(PolygonTrainParams(scene["optical"], scene["sar"], scene["labels"],
                                                   str(scene["dir"] / "plain_tuned.safetensors"), field="class",
                                                   checkpoint=scene["plain"], baseline=False, buffer_px=2, config=cfg))
    assert plain["sar_only"] == {"arms": {}, "note": NOT_GATED}
    assert "sar_only" not in (load_checkpoint(str(scene["dir"] / "plain_tuned.safetensors"))[1].get("calibration")
                              or {})


def test_sar_only_windows_get_no_optical_and_a_full_cloud(scene, monkeypatch):
    """predict_sar_only's network input: the optical all 0 (no data), the cloud all 1, the SAR standardised."""
    from claire.claire_plugin.core.training import windows
    from claire.claire_plugin.core.training.labels import read_labels

    seen = []
    monkeypatch.setattr(windows, "_run_batch", lambda models, inputs, *a, **k: seen.extend(inputs))
    model, card = load_checkpoint(scene["gated"])
    with Scene(scene["optical"], scene["sar"], card) as sc:
        labels = read_labels(scene["labels"], sc.opt, "class")
        wset = windows.WindowSet(sc, labels.pixels)
        windows.predict_sar_only(wset, [(model, None)])
        o, s, _bad = wset.read(0)
        _on, sn = sc.standardise(o, s)
    assert seen and all((i[0] == 0).all() and (i[2] == 1).all() for i in seen)
    assert np.array_equal(seen[0][1], sn)


def test_sar_only_scores_take_no_snow_as_the_map_does(scene):
    """The engine maps no snow / ice from SAR alone (reader: snow possible 0 where the optical is missing), so the
    report's SAR-alone scores rule it out too: a network whose snow logit leads everywhere gets its runner-up,
    and the same network without a snow class in the check keeps snow."""
    import torch

    from claire.claire_plugin.core.training import windows
    from claire.claire_plugin.core.training.labels import read_labels

    class SnowFirst(torch.nn.Module):
        def forward(self, optical, sar, cloud=None):
            b, _, h, w = optical.shape
            logits = torch.zeros(b, 3, h, w)
            logits[:, 2] = 5.0  # "snow" first
            logits[:, 1] = 1.0  # then class 1
            return {"logits": logits}

    _, card = load_checkpoint(scene["gated"])
    with Scene(scene["optical"], scene["sar"], card) as sc:
        labels = read_labels(scene["labels"], sc.opt, "class")
        checked = windows.WindowSet(sc, labels.pixels, snow_classes=[2])
        unchecked = windows.WindowSet(sc, labels.pixels)
        ruled_out = windows.predict_sar_only(checked, [(SnowFirst(), None)])[0]
        kept = windows.predict_sar_only(unchecked, [(SnowFirst(), None)])[0]
    valid = ruled_out >= 0
    assert valid.any() and (ruled_out[valid] == 1).all() and (kept[valid] == 2).all()


def test_the_report_names_the_classes_sar_alone_takes_for_others():
    """The first SAR-alone model's confusion against the same model with the optical: water taken for bare ground
    from SAR alone (never with the optical) is said in the plain-text lines, the HTML report and the Train tab; a
    confusion the optical shares (trees -> water) is not; no SAR-alone scores, nothing said."""
    from claire.claire_plugin.core.training.scorecard import _sar_only_html, lookalike_sentence, sar_only_lines
    from claire.claire_plugin.gui import train_report

    names = ["bare ground", "trees", "water"]
    per_class = [{"name": n, "f1": 0.5, "iou": 0.5, "precision": 0.5, "recall": 0.5, "support": 108} for n in names]
    scores = lambda cm, f1: {"macro_f1": f1, "oa": f1, "kappa": f1, "miou": f1, "pixels": 324,  # noqa: E731
                             "per_class": per_class, "confusion": cm}
    report = {"classes": [{"index": i, "code": i + 1, "name": n} for i, n in enumerate(names)],
              "arms": {"finetuned": {"clear": scores([[108, 0, 0], [0, 72, 36], [0, 0, 108]], 0.9)}},
              "sar_only": {"note": "scored", "arms": {
                  "finetuned": scores([[95, 0, 13], [0, 72, 36], [96, 0, 12]], 0.6),
                  "rf_sar": scores([[50, 0, 58], [0, 108, 0], [58, 0, 50]], 0.5)}}}
    said = lookalike_sentence(report)
    assert said == ("From SAR alone, CLAIRE fine-tuned (optical + SAR) took water for bare ground on 88.9 % of its "
                    "held-out pixels (0.0 % with the optical): where the map comes from SAR alone, read these "
                    "classes with care.")
    assert sar_only_lines(report)[-1] == "  " + said
    assert any(said in part for part in _sar_only_html(report))  # the HTML report's section
    assert "your network took water for bare ground on 88.9 %" in "".join(train_report._sar_only_html(report))
    assert lookalike_sentence({**report, "sar_only": {"note": "n", "arms": {}}}) == ""


def test_the_forest_from_sar_alone_is_fitted_on_the_sar_bands_only(monkeypatch):
    """The report's "Random forest, SAR only" learns from the SAR columns of the features (after the optical ones),
    not from every optical and SAR value: a stub scene of 3 optical and 2 SAR bands, the forest spied on."""
    from types import SimpleNamespace

    from claire.claire_plugin.core.training import sar_alone
    from claire.claire_plugin.core.training.labels import ClassInfo, LabelPixels

    rng = np.random.default_rng(0)
    cls = np.repeat([0, 1], 10).astype(np.uint8)
    pixels = LabelPixels(np.arange(20, dtype=np.int32), np.zeros(20, np.int32), cls, np.arange(20, dtype=np.int32))
    feats = rng.normal(size=(20, 5)).astype(np.float32)  # 3 optical bands, then VV and VH
    monkeypatch.setattr(sar_alone, "predict_sar_only", lambda wset, models, device, logits, stop=None:
                        [cls.astype(np.int64)])
    monkeypatch.setattr(sar_alone, "sample_pixels", lambda scene, px, is_cancelled=None: ([], feats[: len(px)]))
    monkeypatch.setattr(sar_alone, "predict_pixels", lambda wset, is_cancelled=None: {False: ([], feats)})
    fitted = []
    real = sar_alone.fit_forest
    monkeypatch.setattr(sar_alone, "fit_forest", lambda *a, **k: fitted.append(real(*a, **k)) or fitted[-1])
    windows = SimpleNamespace(scene=SimpleNamespace(oc=SimpleNamespace(indices=[0, 1, 2])))
    split = SimpleNamespace(train=pixels, val=pixels)
    out = sar_alone.sar_only_scores(windows, split, [ClassInfo(0, 1, "water"), ClassInfo(1, 2, "trees")],
                                    [("finetuned", SimpleNamespace(uses_cloud=True), None)], seed=0, trees=5)
    assert set(out["arms"]) == {"finetuned", "rf_sar"}
    assert len(fitted) == 1 and fitted[0].n_features_in_ == 2
