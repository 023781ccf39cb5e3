"""The engine's snow check: a network that says snow everywhere gets its next class where the clear optical shows no
snow (models.cloud.snow_possible), keeps snow on snow, and the summary, facts and explanation say how much moved."""
from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio
import torch
from torch import nn

from claire.claire_plugin.core.engine import run
from claire.claire_plugin.core.explain import check_grounding
from claire.claire_plugin.core.explain.facts import build_facts
from claire.claire_plugin.core.explain.template import write as render_template
from claire.claire_plugin.core.params import ClassifyParams
from claire.tests.fixtures.helpers import tiny_card, write_raster
from claire.tests.models.test_cloud import CARD, SPECTRA

CLASSES = [{"index": 0, "value": 1, "name": "water", "color": "#419bdf"},
           {"index": 1, "value": 2, "name": "trees", "color": "#397d49"},
           {"index": 2, "value": 7, "name": "snow/ice", "color": "#a8ebff"},
           {"index": 3, "value": 9, "name": "rangeland", "color": "#e3e2c3"}]
#: Softmax of these: snow 0.61, trees 0.22, the rest 0.08 each.
LOGITS = [0.0, 1.0, 2.0, 0.0]
L2A = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
H, W, SPLIT = 64, 96, 40  # columns left of SPLIT: vegetation; the rest: snow


class SaysSnow(nn.Module):
    """The same logits at every pixel, snow first, trees second; its SAR share is 0.3."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(12, 4, 1)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.copy_(torch.tensor(LOGITS))

    def forward(self, optical, sar, cloud=None):
        logits = self.head(torch.cat([optical, sar], 1))
        return {"logits": logits, "sar_share": torch.full_like(logits[:, :1], 0.3)}


def _optical() -> np.ndarray:
    img = np.empty((len(L2A), H, W), np.int16)
    for name, cols in (("vegetation L2A", slice(0, SPLIT)), ("snow", slice(SPLIT, W))):
        spectrum = dict(zip(CARD, SPECTRA[name]))
        for i, b in enumerate(L2A):
            img[i, :, cols] = int(spectrum.get(b, spectrum["B02"]) * 1e4)
    return img


@pytest.fixture
def pair(tmp_path):
    sar = np.stack([np.full((H, W), -10.0, np.float32), np.full((H, W), -17.0, np.float32)])
    return (write_raster(str(tmp_path / "opt.tif"), _optical()),
            write_raster(str(tmp_path / "sar.tif"), sar, descriptions=["VV", "VH"]), str(tmp_path))


def _run(pair, gated: bool = False, **kw):
    optical, sar, d = pair
    params = ClassifyParams(optical, sar, os.path.join(d, "lc.tif"), confidence=os.path.join(d, "conf.tif"), **kw)
    card = tiny_card(classes=CLASSES, arch="standin")
    if gated:  # a cloud-gated card: its optical gaps are classified from SAR alone
        card["config"] = dict(card["config"], cloud_gate=True)
    res = run(params, SaysSnow().eval(), card)
    with rasterio.open(params.output) as ds, rasterio.open(params.confidence) as cs:
        return res, ds.read(1), cs.read(1)


def test_snow_is_ruled_out_where_the_optical_shows_none(pair):
    res, lc, conf = _run(pair)
    assert (lc[:, :SPLIT] == 2).all(), "vegetation: the next class (trees), not snow"
    assert (lc[:, SPLIT:] == 7).all(), "snow stays snow"
    # confidence renormalised without snow: trees 0.22 / (1 - 0.61) = 0.58; on snow the network's 0.61
    assert abs(int(conf[0, 0]) - 58) <= 1 and abs(int(conf[0, -1]) - 61) <= 1
    summary = res.summary
    assert summary["snow_ruled_out_share"] == pytest.approx(SPLIT / W)
    facts = build_facts(summary, tiny_card(classes=CLASSES, arch="standin"))
    assert facts["scene"]["snow_ruled_out_pct"] == pytest.approx(round(100 * SPLIT / W, 1))
    text = render_template(facts)
    assert "snow or ice where the clear optical shows no snow" in text
    assert f"{facts['scene']['snow_ruled_out_pct']:.1f} %" in text
    grounding = check_grounding(text, facts)
    assert grounding.flagged_sentences == [] and grounding.grounded_share == 1.0
    from claire.claire_plugin.core.engine.summary import scene_line

    assert scene_line(summary).endswith(f"snow / ice ruled out {SPLIT / W:.1%} by the clear optical")


def test_the_check_can_be_turned_off(pair):
    res, lc, conf = _run(pair, snow_check=False)
    assert (lc == 7).all()
    assert abs(int(conf[0, 0]) - 61) <= 1
    assert res.summary["snow_ruled_out_share"] is None
    from claire.claire_plugin.core.engine.summary import scene_line

    assert "snow" not in scene_line(res.summary)
    assert "snow or ice where" not in render_template(build_facts(res.summary, tiny_card(classes=CLASSES)))


def test_no_check_without_a_snow_class_or_without_swir(pair):
    classes = [dict(c, name="bare rock") if c["value"] == 7 else c for c in CLASSES]
    res = run(ClassifyParams(pair[0], pair[1], os.path.join(pair[2], "a.tif")), SaysSnow().eval(),
              tiny_card(classes=classes, arch="standin"))
    assert res.summary["snow_ruled_out_share"] is None
    with rasterio.open(os.path.join(pair[2], "a.tif")) as ds:
        assert (ds.read(1) == 7).all()
    # optical bands without B11 (B12 given in its place): no cloud probability, so no check, and a note says so
    bands = [L2A.index(b) + 1 for b in CARD]
    bands[CARD.index("B11")] = L2A.index("B12") + 1
    card = tiny_card(classes=CLASSES, arch="standin")
    card["inputs"]["optical"]["bands"] = [b if b != "B11" else "B12x" for b in CARD]
    res = run(ClassifyParams(pair[0], pair[1], os.path.join(pair[2], "b.tif"), optical_bands=bands), SaysSnow().eval(),
              card)
    assert res.summary["snow_ruled_out_share"] is None
    assert any("no snow check" in m for m in res.messages)


def test_held_out_scoring_applies_the_same_check(pair):
    """core.training.windows.predict_pixels (the report's held-out scores) gives the engine's classes: the user's
    snow class ruled out on vegetation, kept on snow, and the captured logits carry the check."""
    from claire.claire_plugin.core.training.labels import ClassInfo, LabelPixels
    from claire.claire_plugin.core.training.scene import Scene
    from claire.claire_plugin.core.training.windows import WindowSet, checked_snow_classes, predict_pixels

    rows, cols = np.meshgrid(np.arange(10, 20), np.arange(30, 50), indexing="ij")  # both sides of SPLIT
    px = LabelPixels(rows.ravel().astype(np.int32), cols.ravel().astype(np.int32),
                     np.zeros(rows.size, np.uint8), np.zeros(rows.size, np.int32))
    users = [ClassInfo(c["index"], c["value"], c["name"]) for c in CLASSES]
    with Scene(pair[0], pair[1], tiny_card(classes=CLASSES, arch="standin")) as scene:
        assert checked_snow_classes(scene, users) == [2]
        expected = np.where(px.cols < SPLIT, 1, 2)
        logits = {}
        checked = predict_pixels(WindowSet(scene, px, snow_classes=[2]), [(SaysSnow().eval(), None)],
                                 logits=logits)[False][0][0]
        assert (checked == expected).all()
        assert (logits[False].argmax(1) == expected).all()
        plain = predict_pixels(WindowSet(scene, px), [(SaysSnow().eval(), None)])[False][0][0]
        assert (plain == 2).all()
        # the base's channels mapped to the user's classes: the base's snow channel is checked too
        cmap = np.array([0, 1, 2, 3])
        mapped = predict_pixels(WindowSet(scene, px, snow_classes=[2]), [(SaysSnow().eval(), cmap)])[False][0][0]
        assert (mapped == expected).all()


def test_the_forests_held_out_scores_get_the_same_check(pair):
    """The report's random forests (baseline.forest_predict, the written ForestNet) are scored as the engine maps
    them: a snow class ruled out at pixels whose optical shows no snow."""
    from sklearn.ensemble import RandomForestClassifier

    from claire.claire_plugin.core.training.baseline import forest_predict
    from claire.claire_plugin.core.training.scene import Scene
    from claire.claire_plugin.core.training.windows import window_snow_possible

    with Scene(pair[0], pair[1], tiny_card(classes=CLASSES, arch="standin")) as scene:
        o, s, bad = scene.read(0, 0, H, W)
        bad[0, 1] = True
        possible = window_snow_possible(scene, o, bad)
        assert [possible[0, 0], possible[0, -1]] == [0.0, 1.0]  # a vegetation and a snow pixel
        assert possible[0, 1] == 1.0  # missing values: nothing to go by
    x = np.array([[0.0], [1.0], [2.0], [3.0]] * 5)
    rf = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, np.tile([0, 1, 2, 3], 5))
    rows = np.array([[2.0], [2.0], [np.nan]])
    assert forest_predict(rf, rows).tolist() == [2, 2, -1]
    checked = forest_predict(rf, rows, snow=([2], np.array([0.0, 1.0, 1.0], np.float32)))
    assert checked[0] != 2 and checked.tolist()[1:] == [2, -1]


def test_dark_water_and_the_gaps_decided_from_sar_alone_take_no_snow(tmp_path):
    """Water's NDSI is as high as snow's: a NIR this dark rules snow out (the QA's stripe of sea became snow
    outside the gap). In a gap classified from SAR alone the network's snow went to the map at 94 %; C-band
    backscatter does not tell snow, so none is mapped there, and the summary's 'ruled out by the optical' leaves
    those pixels out (the optical said nothing there)."""
    img = _optical()
    water = dict(zip(CARD, SPECTRA["water"]))
    for i, b in enumerate(L2A):
        img[i, :, :8] = int(water.get(b, water["B02"]) * 1e4)  # calm water: NDSI 0.67, NIR 0.02
    img[:, :, 60:80] = 0  # a swath gap inside the snow
    sar = np.stack([np.full((H, W), -10.0, np.float32), np.full((H, W), -17.0, np.float32)])
    optical = write_raster(str(tmp_path / "opt.tif"), img, nodata=0)
    res, lc, _ = _run((optical, write_raster(str(tmp_path / "sar.tif"), sar, descriptions=["VV", "VH"]),
                       str(tmp_path)), gated=True)
    assert (lc[:, :8] == 2).all(), "water's high NDSI is not snow with a NIR this dark"
    assert (lc[:, 60:80] == 2).all(), "no snow from SAR alone"
    assert (lc[:, SPLIT:60] == 7).all() and (lc[:, 80:] == 7).all(), "snow the optical shows stays"
    assert res.summary["sar_only_share"] == pytest.approx(20 / W)
    assert res.summary["snow_ruled_out_share"] == pytest.approx(SPLIT / W), "the gap is not the optical's word"


def test_without_sar_fill_the_gaps_still_reach_the_model_as_cloud(tmp_path):
    """--no-sar-fill leaves the gaps nodata, but the model still reads them as cloud: their zeros, read as clear
    optical, changed the classes around them (85.7 % of a half-gapped site's optical half kept its class against
    90.1 % with the fill)."""
    seen = []

    class Records(SaysSnow):
        def forward(self, optical, sar, cloud=None):
            seen.append(None if cloud is None else cloud.detach().clone())
            return super().forward(optical, sar, cloud)

    img = _optical()
    img[:, :, 60:80] = 0
    sar = np.stack([np.full((H, W), -10.0, np.float32), np.full((H, W), -17.0, np.float32)])
    optical = write_raster(str(tmp_path / "opt.tif"), img, nodata=0)
    params = ClassifyParams(optical, write_raster(str(tmp_path / "sar.tif"), sar, descriptions=["VV", "VH"]),
                            str(tmp_path / "lc.tif"), fill_from_sar=False)
    card = tiny_card(classes=CLASSES, arch="standin")
    card["config"] = dict(card["config"], cloud_gate=True)
    run(params, Records().eval(), card)
    with rasterio.open(params.output) as ds:
        assert (ds.read(1)[:, 60:80] == 0).all(), "the gap stays nodata"
    cloud = torch.cat([c for c in seen if c is not None])
    assert seen and float(cloud.max()) == 1.0 and int((cloud == 1.0).sum()) >= H * 20


def test_snow_ruled_out_under_thick_cloud_is_said_apart_from_the_clear_optical(pair, tmp_path):
    """QA (outputs agree): 92 % of the snow ruled out on the cloudy SEN12MS-CR scene lay under thick cloud, yet the
    explanation said "where the clear optical shows no snow cover". The summary counts the part under cloud, and the
    explanation, the Results tab and the report say each part for what it is."""
    from claire.claire_plugin.core.engine.summary import scene_line
    from claire.claire_plugin.gui.results import trust_html

    img = _optical()
    cloud = dict(zip(CARD, SPECTRA["thick cloud"]))
    for i, b in enumerate(L2A):
        img[i, :, SPLIT:] = int(cloud.get(b, cloud["B02"]) * 1e4)
    optical = write_raster(str(tmp_path / "cloudy.tif"), img)
    res, classes, _ = _run((optical, pair[1], pair[2]))
    summary = res.summary
    assert summary["snow_ruled_out_share"] > 0.95 and not (classes == 7).any()
    assert summary["snow_ruled_out_clouded_share"] == pytest.approx(summary["cloud_share"], abs=0.02)
    assert summary["snow_ruled_out_clouded_share"] == pytest.approx((W - SPLIT) / W, abs=0.02)
    facts = build_facts(summary, tiny_card(classes=CLASSES, arch="standin"))
    text = render_template(facts)
    clear = facts["scene"]["snow_ruled_out_clear_pct"]
    assert clear == pytest.approx(facts["scene"]["snow_ruled_out_pct"] - facts["scene"]["snow_ruled_out_clouded_pct"],
                                  abs=0.11)
    assert f"On {clear:.1f} % of the map the network said snow or ice where the clear optical shows no snow" in text
    assert (f"On {facts['scene']['snow_ruled_out_clouded_pct']:.1f} % of the map, under cloud, the network said snow "
            f"or ice; there the optical sees little or no ground and the radar cannot tell snow, and the clear ground "
            f"around shows none") in text
    grounding = check_grounding(text, facts)
    assert grounding.flagged_sentences == [], grounding.flagged_sentences
    assert f"({summary['snow_ruled_out_clouded_share']:.1%} under cloud)" in scene_line(summary)
    assert "called snow or ice under cloud, where the optical sees little or no ground" in trust_html(summary)


def test_the_forests_snow_check_finds_the_snow_class_by_label_not_by_column():
    """A forest trained without some class (labels 0, 2, 3: its columns are 0, 1, 2): the snow class is found in
    rf.classes_, not read as a column number (label 2 is column 1; label 3 would be past the last column)."""
    from sklearn.ensemble import RandomForestClassifier

    from claire.claire_plugin.core.training.baseline import forest_predict

    x = np.array([[0.0], [2.0], [3.0]] * 5)
    rf = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, np.tile([0, 2, 3], 5))
    rows = np.array([[2.0], [3.0]])
    assert forest_predict(rf, rows).tolist() == [2, 3]
    no_snow = np.zeros(2, np.float32)
    assert forest_predict(rf, rows, snow=([3], no_snow)).tolist()[0] == 2  # label 3: no column 3
    assert 3 not in forest_predict(rf, rows, snow=([3], no_snow)).tolist()
    assert 2 not in forest_predict(rf, rows, snow=([2], no_snow)).tolist()  # label 2 ruled out, not column 2


def test_snow_under_a_cloud_amid_snow_stays_and_the_optical_nodata_around_is_no_evidence(tmp_path):
    """QA round 15: snow under a thick cloud stays where the clear ground around shows snow (the blanket rule turned
    a snowfield under synthetic clouds into water); pixels without optical data around it are no evidence either way
    (read as integers with a nodata value, they were taken for clear ground without snow)."""
    img = _optical()
    img[:, :, :SPLIT] = img[:, :, SPLIT:SPLIT + 1]  # snow everywhere
    cloud = dict(zip(CARD, SPECTRA["thick cloud"]))
    for i, b in enumerate(L2A):
        img[i, 24:40, 60:76] = int(cloud.get(b, cloud["B02"]) * 1e4)
    img[:, :, :58] = 0  # the optical's nodata on most of the ground around the cloud
    img[:, :20] = 0
    img[:, 48:] = 0
    sar = np.stack([np.full((H, W), -10.0, np.float32), np.full((H, W), -17.0, np.float32)])
    pair = (write_raster(str(tmp_path / "opt.tif"), img, nodata=0),
            write_raster(str(tmp_path / "sar.tif"), sar, descriptions=["VV", "VH"]), str(tmp_path))
    res, lc, _conf = _run(pair, gated=True)
    assert res.summary["cloud_share"] > 0.03
    assert (lc[24:40, 60:76] == 7).all(), "snow under the cloud, amid clear snow: kept"
