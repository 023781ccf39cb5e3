"""Cloud-aware inference: models.cloud's probability computed by the reader, given to cloud-gated models,
written as the cloud raster and counted in the summary; optical gaps classified from SAR alone."""
from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio
import torch

from claire.claire_plugin.core.engine import run
from claire.claire_plugin.core.params import ClassifyParams
from claire.models.cloud import cloud_probability
from claire.tests.fixtures.helpers import CARD_OPTICAL, write_raster
from claire.tests.fixtures.standin import StandIn

L2A_FOR_CARD = [2, 3, 4, 5, 6, 7, 8, 9, 11, 12]  # 1-based B02..B12 without B09 in a 12-band L2A stack

CLOUD = (slice(0, 30), slice(0, 50))  # 1500 px of flat bright cloud
STRIPE = (slice(None), slice(100, 120))  # 20 columns of optical nodata


class GatedStandIn(StandIn):
    """StandIn that takes the cloud probability: its SAR share is the cloud probability, and it records
    what it was given."""

    uses_cloud = True

    def __init__(self) -> None:
        super().__init__()
        self.seen = []

    def forward(self, optical: torch.Tensor, sar: torch.Tensor, cloud=None) -> dict:
        out = super().forward(optical, sar)
        if cloud is None:  # the memory probe
            return out
        assert cloud.shape == (optical.shape[0], 1) + tuple(optical.shape[-2:])
        self.seen.append(float(cloud.max()))
        out["sar_share"] = cloud
        return out


def _gated_card(card: dict) -> dict:
    card = dict(card)
    card["config"] = dict(card["config"], cloud_gate=True)
    return card


def _scene(engine_scene, cloud=False, stripe=False) -> str:
    optical, _, _ = engine_scene["arrays"]
    optical = optical.copy()
    if cloud:
        optical[(slice(None),) + CLOUD] = 6000  # bright and flat over every band
    if stripe:
        optical[(slice(None),) + STRIPE] = 0
    return write_raster(os.path.join(engine_scene["dir"], "opt_edit.tif"), optical, nodata=0 if stripe else None)


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.nodata


def _probability(path: str) -> np.ndarray:
    """models.cloud's probability of the card's bands of a 12-band L2A stack written by `_scene`."""
    with rasterio.open(path) as ds:
        refl = np.clip(ds.read(L2A_FOR_CARD).astype(np.float32) * 1e-4, 0.0, 1.0)
    return cloud_probability(refl, CARD_OPTICAL)


def _run(engine_scene, optical, model, card, **kw):
    d = engine_scene["dir"]
    return run(ClassifyParams(optical, engine_scene["sar"], os.path.join(d, "lc.tif"), **kw), model, card)


def test_cloud_raster_share_and_sar_shares(engine_scene, standin_card):
    optical = _scene(engine_scene, cloud=True)
    model = GatedStandIn().eval()
    res = _run(engine_scene, optical, model, _gated_card(standin_card),
               cloud=os.path.join(engine_scene["dir"], "cloud.tif"))
    assert max(model.seen) > 0.99, "the cloud probability reaches the model"
    cloud, nodata = _read(res.cloud)
    assert nodata == 255 and (cloud[CLOUD] == 100).all()
    expected = _probability(optical)
    assert np.abs(cloud.astype(int) - np.rint(expected * 100)).max() <= 1, "one definition with training"
    s = res.summary
    assert s["cloud_share"] == pytest.approx((expected >= 0.5).mean(), abs=1e-4)
    assert s["sar_only_share"] == 0.0
    assert s["mean_sar_share_clouded"] >= 0.5 > s["mean_sar_share_clear"]  # the stand-in: SAR share = p
    per_class = [c for c in s["classes"] if c["mean_sar_share_clouded"] is not None]
    assert per_class and all(c["mean_sar_share_clouded"] >= 0.5 for c in per_class)


def test_ungated_model_gets_no_cloud_but_the_summary_counts_it(engine_scene, standin_model, standin_card):
    optical = _scene(engine_scene, cloud=True)
    res = _run(engine_scene, optical, standin_model, standin_card)  # StandIn.forward takes no `cloud`
    assert res.summary["cloud_share"] == pytest.approx((_probability(optical) >= 0.5).mean(), abs=1e-4)
    assert res.summary["cloud_share"] >= 1500 / (150 * 173)
    assert res.cloud is None


def test_optical_gap_is_classified_from_sar(engine_scene, standin_card):
    optical = _scene(engine_scene, stripe=True)
    res = _run(engine_scene, optical, GatedStandIn().eval(), _gated_card(standin_card),
               cloud=os.path.join(engine_scene["dir"], "cloud.tif"))
    classes, nodata = _read(res.output)
    assert (classes != nodata).all(), "the stripe is classified"
    assert res.summary["sar_only_share"] == pytest.approx(20 / 173, abs=1e-4)
    assert res.summary["mean_sar_share_sar_only"] == pytest.approx(1.0)
    cloud, _ = _read(res.cloud)
    assert (cloud[STRIPE] == 100).all(), "the model was told the gap is cloud"
    clouded = _probability(optical) >= 0.5
    clouded[STRIPE] = False
    assert res.summary["cloud_share"] == pytest.approx(clouded.mean(), abs=1e-4), "gaps are not counted as cloud"


@pytest.mark.parametrize("gated,fill", [(True, False), (False, True)])
def test_optical_gap_stays_nodata_without_fill_or_gate(engine_scene, standin_card, standin_model,
                                                       gated, fill):
    optical = _scene(engine_scene, stripe=True)
    model, card = (GatedStandIn().eval(), _gated_card(standin_card)) if gated else (standin_model, standin_card)
    res = _run(engine_scene, optical, model, card, fill_from_sar=fill)
    classes, nodata = _read(res.output)
    assert (classes[STRIPE] == nodata).all()
    assert res.summary["sar_only_share"] == 0.0
    if not gated:
        assert any("no cloud gate" in m for m in res.messages)


@pytest.mark.parametrize("threshold,share", [(1e-6, 1.0), (1e6, 0.0), (None, None)])
def test_unfamiliar_raster_and_share(engine_scene, tiny_checkpoint, threshold, share):
    from claire.claire_plugin.core.engine import load_model
    from claire.models.familiarity import feature_stats

    model, card = load_model(tiny_checkpoint)
    if threshold is not None:
        rng = np.random.default_rng(0)
        items = [(rng.normal(0, 1, (10, 64, 64)).astype(np.float32), rng.normal(0, 1, (2, 64, 64)).astype(np.float32),
                  None)]
        mean, var, n = feature_stats(model, items)
        card = dict(card, familiarity={"mean": mean.tolist(), "var": var.tolist(), "threshold": threshold})
    res = _run(engine_scene, engine_scene["optical"], model, card,
               unfamiliar=os.path.join(engine_scene["dir"], "unf.tif"))
    assert res.summary["unfamiliar_share"] == share
    if threshold is None:
        assert res.unfamiliar is None and any("no familiarity" in m for m in res.messages)
        return
    raster, nodata = _read(res.unfamiliar)
    assert nodata == 255 and (raster == (100 if share else 0)).all()


def test_bottleneck_familiarity_flags_an_unlike_scene_in_the_engine(engine_scene, tiny_checkpoint):
    """A card with the default (bottleneck) familiarity fitted on the scene itself: the engine's
    unfamiliar share stays low on it and is high on the same ground with other spectra and SAR. Tiles of
    256 px as models.familiarity measures (the tiny network's context is tile-wide)."""
    from claire.claire_plugin.core.engine import load_model
    from claire.models.familiarity import familiarity
    from claire.models.spec import normalise

    model, card = load_model(tiny_checkpoint)
    optical, sar, _ = engine_scene["arrays"]
    ospec, sspec = card["inputs"]["optical"], card["inputs"]["sar"]
    item = (normalise(optical[[b - 1 for b in L2A_FOR_CARD]].astype(np.float32), ospec), normalise(sar, sspec), None)
    card = dict(card, familiarity=familiarity(model, [item], [item]))
    out = os.path.join(engine_scene["dir"], "unf.tif")
    same = _run(engine_scene, engine_scene["optical"], model, card, unfamiliar=out,
                tile_size=256).summary["unfamiliar_share"]
    odd_opt = write_raster(os.path.join(engine_scene["dir"], "odd.tif"), np.clip(optical[::-1] * 3, 1, 10000))
    odd_sar = write_raster(os.path.join(engine_scene["dir"], "odd_sar.tif"), sar + 15.0, descriptions=["VV", "VH"])
    res = run(ClassifyParams(odd_opt, odd_sar, os.path.join(engine_scene["dir"], "lc2.tif"), unfamiliar=out,
                             tile_size=256),
              model, card)
    assert same < 0.1 and res.summary["unfamiliar_share"] > 0.5, (same, res.summary["unfamiliar_share"])
    raster, _ = _read(res.unfamiliar)
    # 100 in the raster is exactly "beyond the threshold" in the summary (rounded down, not to the nearest)
    assert (raster == 100).sum() / (raster != 255).sum() == pytest.approx(res.summary["unfamiliar_share"], abs=1e-9)


def test_a_cloud_gated_claire_leans_on_sar_in_an_optical_gap(engine_scene, tmp_path):
    from claire.models.registry import build_model
    from claire.tests.fixtures.helpers import tiny_card

    torch.manual_seed(0)
    card = tiny_card()
    card["config"] = dict(card["config"], cloud_gate=True)
    model = build_model("claire", card["config"]).eval()
    optical, _, _ = engine_scene["arrays"]
    optical = optical.copy()
    optical[:, :, 60:140] = 0
    path = write_raster(str(tmp_path / "gap.tif"), optical, nodata=0)
    res = _run(engine_scene, path, model, card, reliance=str(tmp_path / "rel.tif"))
    rel, _ = _read(res.reliance)
    classes, nodata = _read(res.output)
    assert (classes[:, 60:140] != nodata).all()
    inside, outside = rel[:, 84:116].mean(), rel[:, :30].mean()
    assert inside > 90 and inside > outside + 20, (inside, outside)


MACROCLASSES = [{"index": 0, "value": 10, "name": "dry", "classes": [2, 4, 5]},
                {"index": 1, "value": 11, "name": "wet", "classes": [1]}]


@pytest.mark.parametrize("level", ["class", "macroclass"])
def test_pixels_from_sar_alone_get_the_cards_sar_alone_temperature(engine_scene, standin_card, level):
    """A card calibrated from SAR alone (`calibration.sar_only`, core.training.sar_alone): each pixel's confidence is
    tempered with a temperature moved from the card's own one towards the SAR-alone one by the cloud probability the
    model was given: the full SAR-alone temperature in an optical gap (cloud input 1) and under thick cloud, the
    card's own where the optical is clear; the classes do not change, nor the macroclasses (chosen from the
    network's own probabilities) in a map of macroclasses."""
    d = engine_scene["dir"]
    for scene in ("stripe", "cloud"):
        optical = _scene(engine_scene, **{scene: True})
        runs = {}
        for name, cal in (("plain", {"temperature": 1.5}),
                          ("sar", {"temperature": 1.5, "sar_only": {"temperature": 6.0}})):
            card = dict(_gated_card(standin_card), calibration=cal, macroclasses=MACROCLASSES)
            res = _run(engine_scene, optical, GatedStandIn().eval(), card, level=level,
                       confidence=os.path.join(d, f"conf_{name}.tif"), cloud=os.path.join(d, f"cloud_{name}.tif"))
            runs[name] = (_read(res.output)[0].copy(), _read(res.confidence)[0].astype(int), res.summary,
                          _read(res.cloud)[0].astype(int))
        (c0, k0, s0, cloud), (c1, k1, s1, _) = runs["plain"], runs["sar"]
        assert np.array_equal(c0, c1), "tempering keeps every pixel's class"
        clear = cloud == 0  # below 0.5 %: the temperature moves by less than 0.03
        assert clear.any() and np.abs(k0[clear] - k1[clear]).max() <= 1, "clear pixels keep the card's temperature"
        covered = np.zeros(cloud.shape, bool)
        covered[STRIPE if scene == "stripe" else CLOUD] = True
        assert (cloud[covered] == 100).all()
        if level == "class":  # the top class's probability falls as T grows
            assert covered.sum() > 20 and (k1[covered] <= k0[covered]).all()
            assert k1[covered].mean() < k0[covered].mean() - 5
            assert (k1 <= k0 + 1).all() and s1["mean_confidence"] < s0["mean_confidence"]
        else:  # tempered at the macroclass level: the mapped one falls towards 1/2, never below it
            for m in (10, 11):
                part = covered & (c0 == m)
                assert part.sum() > 20 and (k1[part] <= k0[part]).all() and (k1[part] >= 50).all()
                assert k1[part].mean() < k0[part].mean() - 2, m


def test_confidence_raster_below_50_is_the_summarys_low_confidence(engine_scene, tiny_checkpoint):
    """A pixel at 49.6 % was written as 50 (rounded to the nearest) while the summary counted it low-confidence:
    the percent rasters are rounded down, so '< 50' in QGIS selects what the summary counts."""
    from claire.claire_plugin.core.engine import load_model

    model, card = load_model(tiny_checkpoint)
    res = _run(engine_scene, engine_scene["optical"], model, card,
               confidence=os.path.join(engine_scene["dir"], "conf.tif"))
    raster, nodata = _read(res.confidence)
    valid = raster != nodata
    low = res.summary["low_confidence_share"]
    assert 0 < low < 1, low  # the tiny random network is unsure of some pixels, not of all
    assert (raster[valid] < 50).sum() / valid.sum() == pytest.approx(low, abs=1e-9)


def test_a_reliance_raster_a_model_without_a_gate_cannot_give_is_a_warning(engine_scene, standin_card, tmp_path):
    """QA (round 19): with a model that gives no SAR share (a random forest) `--reliance` was not written, exit 0,
    with a plain note on stdout that --quiet dropped: a warning now, said on stderr whatever --quiet."""

    class NoGate(StandIn):
        def forward(self, optical, sar):
            return {"logits": super().forward(optical, sar)["logits"]}

    rel = tmp_path / "rel.tif"
    res = run(ClassifyParams(engine_scene["optical"], engine_scene["sar"], str(tmp_path / "lc.tif"),
                             reliance=str(rel), threads=1), NoGate().eval(), standin_card)
    said = [m for m in res.messages if "reliance raster" in m]
    assert said and said[0].startswith("warning: this model has no fusion gate") and "(--reliance)" in said[0]
    assert not rel.exists() and os.path.exists(res.output)


def test_sar_nodata_inside_the_overlap_is_counted_and_said(engine_scene, standin_model, standin_card, tmp_path):
    """QA (round 19): a SAR with its left 30 columns at its declared nodata gave 31 % of the map as nodata with
    "optical invalid 0.0%" and no word of the SAR."""
    from claire.claire_plugin.core.engine.summary import scene_line

    _optical, sar, _ = engine_scene["arrays"]
    sar = sar.copy()
    sar[:, :, :30] = -9999
    holed = write_raster(str(tmp_path / "sar_holed.tif"), sar, nodata=-9999, descriptions=["VV", "VH"])
    res = run(ClassifyParams(engine_scene["optical"], holed, str(tmp_path / "lc.tif"), threads=1),
              standin_model, standin_card)
    assert res.summary["sar_invalid_share"] == pytest.approx(30 / 173, abs=1e-4)
    assert "SAR invalid 17.3% (nodata in the map)" in scene_line(res.summary)
    whole = run(ClassifyParams(engine_scene["optical"], engine_scene["sar"], str(tmp_path / "lc2.tif"), threads=1),
                standin_model, standin_card)
    assert whole.summary["sar_invalid_share"] == 0.0 and "SAR invalid" not in scene_line(whole.summary)
