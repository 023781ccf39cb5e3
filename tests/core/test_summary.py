"""The engine's statistics (SummaryAccumulator) against the definitions of its figures, computed here mask by
mask; the nodata test of the inputs (equal in every band) against its all-band form."""
from __future__ import annotations

import numpy as np
import pytest

from claire.claire_plugin.core.engine.reader import ChunkMasks
from claire.claire_plugin.core.engine.summary import CLOUDED, LOW_CONFIDENCE, SummaryAccumulator

K = 5


def _block(rng, h=37, w=41, cloud=True):
    idx = rng.integers(0, K, (h, w)).astype(np.uint8)
    conf = rng.random((h, w), dtype=np.float32)
    sar = rng.random((h, w), dtype=np.float32)
    dist = rng.random((h, w), dtype=np.float32) * 2
    optical_bad = rng.random((h, w)) < 0.2
    has_sar = rng.random((h, w)) > 0.1
    sar_only = optical_bad & has_sar
    valid = (~optical_bad | sar_only) & has_sar
    c = rng.random((h, w), dtype=np.float32) if cloud else None
    conf.flat[::7] = LOW_CONFIDENCE  # the boundaries themselves (QA round 20: "< 0.5" as "<= 0.5" went unnoticed)
    dist.flat[::11] = 1.0
    if c is not None:
        c.flat[::13] = CLOUDED
    return idx, conf, sar, dist, ChunkMasks(valid, optical_bad, c, sar_only, None)


def _expected(blocks, with_cloud):
    idx = np.concatenate([b[0].ravel() for b in blocks])
    conf = np.concatenate([b[1].ravel() for b in blocks])
    sar = np.concatenate([b[2].ravel() for b in blocks])
    dist = np.concatenate([b[3].ravel() for b in blocks])
    valid = np.concatenate([b[4].valid.ravel() for b in blocks])
    sar_only = np.concatenate([b[4].sar_only.ravel() for b in blocks])
    groups = {"sar_only": valid & sar_only}
    if with_cloud:
        cloud = np.concatenate([b[4].cloud.ravel() for b in blocks])
        groups["clouded"] = valid & ~sar_only & (cloud >= CLOUDED)
        groups["clear"] = valid & ~sar_only & (cloud < CLOUDED)
    out = {"counts": [], "conf": [], "low": [], "sar": [], "unfamiliar": [], "groups": groups}
    for k in range(K):
        m = valid & (idx == k)
        out["counts"].append(int(m.sum()))
        out["conf"].append(float(conf[m].mean()))
        out["low"].append(float((conf[m] < LOW_CONFIDENCE).mean()))
        out["sar"].append(float(sar[m].mean()))
        out["unfamiliar"].append(float((dist[m] > 1.0).mean()))
    out["group_sar"] = {g: float(sar[m].mean()) for g, m in groups.items()}
    out["group_sar_k"] = {g: [float(sar[m & (idx == k)].mean()) if (m & (idx == k)).any() else None
                              for k in range(K)] for g, m in groups.items()}
    out["valid"] = int(valid.sum())
    return out


@pytest.mark.parametrize("with_cloud", [True, False])
def test_summary_matches_its_definitions(with_cloud):
    rng = np.random.default_rng(3)
    blocks = [_block(rng, cloud=with_cloud) for _ in range(3)]
    acc = SummaryAccumulator([{"value": k + 1, "name": f"c{k}"} for k in range(K)], 100.0, 10 ** 6)
    for idx, conf, sar, dist, masks in blocks:
        acc.add(idx, conf, sar, masks, dist)
    res, exp = acc.result(), _expected(blocks, with_cloud)
    assert res["valid_pixels"] == exp["valid"]
    for k, c in enumerate(res["classes"]):
        assert c["pixels"] == exp["counts"][k]
        assert c["mean_confidence"] == pytest.approx(exp["conf"][k], rel=1e-6)
        assert c["low_confidence_share"] == pytest.approx(exp["low"][k], rel=1e-9)
        assert c["mean_sar_share"] == pytest.approx(exp["sar"][k], rel=1e-6)
        assert c["unfamiliar_share"] == pytest.approx(exp["unfamiliar"][k], rel=1e-9)
        if with_cloud:
            for g in ("clouded", "clear"):
                want = exp["group_sar_k"][g][k]
                assert c[f"mean_sar_share_{g}"] == (None if want is None else pytest.approx(want, rel=1e-6))
        else:
            assert c["mean_sar_share_clouded"] is None and c["mean_sar_share_clear"] is None
    assert res["sar_only_share"] == pytest.approx(exp["groups"]["sar_only"].sum() / exp["valid"], rel=1e-9)
    assert res["mean_sar_share_sar_only"] == pytest.approx(exp["group_sar"]["sar_only"], rel=1e-6)
    if with_cloud:
        assert res["cloud_share"] == pytest.approx(exp["groups"]["clouded"].sum() / exp["valid"], rel=1e-9)
        assert res["mean_sar_share_clouded"] == pytest.approx(exp["group_sar"]["clouded"], rel=1e-6)
    else:
        assert res["cloud_share"] is None and res["mean_sar_share_clouded"] is None


def test_areas_reference_pairs_and_snow_share_follow_their_definitions():
    """Mutation audit (QA round 14): areas 100x too small, a nodata map pixel counted against the reference, and the
    SAR-alone gaps counted in the snow check's share all passed the other tests."""
    h, w = 4, 5
    idx = np.zeros((h, w), np.uint8)
    idx[2:] = 1
    conf = np.full((h, w), 0.9, np.float32)
    valid = np.ones((h, w), bool)
    sar_only = np.zeros((h, w), bool)
    sar_only[3] = True  # the bottom row came from SAR alone
    masks = ChunkMasks(valid, sar_only.copy(), np.zeros((h, w), np.float32), sar_only, np.zeros((h, w), np.float32))
    ruled_out = np.zeros((h, w), bool)
    ruled_out[3] = True  # where the snow check would have acted: only in the gaps, which it never touches
    acc = SummaryAccumulator([{"value": 1, "name": "a"}, {"value": 2, "name": "b"}], 100.0, h * w)
    acc.add(idx, conf, None, masks, None, ruled_out)
    acc.add_reference(np.array([0, 1, -1]), np.array([0, 1, 1]))
    res = acc.result(with_reference=True)
    assert [c["area_ha"] for c in res["classes"]] == [pytest.approx(10 * 100.0 / 1e4)] * 2  # 10 px of 100 m2
    assert res["metrics"]["confusion"] == [[1, 0], [0, 1]]
    assert res["snow_ruled_out_share"] == 0.0


def test_percent_rasters_round_down():
    from claire.claire_plugin.core.engine.post import _percent

    assert _percent(np.array([0.496, 0.999, 1.0], np.float32), np.ones(3, bool)).tolist() == [49, 99, 100]


def test_summary_without_share_or_distance():
    rng = np.random.default_rng(4)
    idx, conf, _, _, masks = _block(rng)
    acc = SummaryAccumulator([{"value": k + 1, "name": f"c{k}"} for k in range(K)], 100.0, 10 ** 6)
    acc.add(idx, conf, None, masks)
    res = acc.result()
    assert sum(c["pixels"] for c in res["classes"]) == int(masks.valid.sum())
    assert all(c["mean_sar_share"] is None and c["unfamiliar_share"] is None for c in res["classes"])
    assert res["unfamiliar_share"] is None and res["mean_sar_share_clear"] is None


def test_equal_in_every_band_is_the_all_band_test():
    from claire.claire_plugin.core.inputs.validate import equal_in_every_band

    rng = np.random.default_rng(5)
    for _ in range(100):
        a = rng.integers(0, 3, (int(rng.integers(1, 5)), 7, 9)).astype(np.uint16)
        assert np.array_equal(equal_in_every_band(a, 0), (a == 0).all(axis=0))
    a = np.zeros((3, 4, 4), np.float32)
    a[2, 1, 1] = 5.0  # one band off at one pixel: that pixel is not nodata, even after bands that stop early
    assert equal_in_every_band(a, 0.0).sum() == 15 and not equal_in_every_band(a, 0.0)[1, 1]


def test_classes_without_colours_get_the_class_rasters_colours():
    """A card without colours (a checkpoint trained on the user's own class names): the raster got a generated
    palette, the summary's classes none, so the dock's table and chart were grey beside a coloured map."""
    from claire.claire_plugin.core.engine.plan import class_colors

    classes = [{"index": 0, "value": 1, "name": "Crops", "color": "#e49635"}, {"index": 1, "value": 2, "name": "crops"},
               {"index": 2, "value": 3, "name": "Wald"}]
    summary = SummaryAccumulator(classes, 100.0, 10).result()
    raster = class_colors({"classes": classes})
    hexes = {v: "#%02x%02x%02x" % rgb for v, rgb in raster.items()}
    assert [c["color"] for c in summary["classes"]] == [hexes[1], hexes[2], hexes[3]]
    assert len(set(hexes.values())) == 3 and summary["classes"][0]["color"] == "#e49635"
    assert "color" not in classes[1]  # the caller's list is left as it was


def test_reference_nodata_is_no_code_left_out():
    """Mutation audit (QA round 14): the reference's nodata pixels were not checked to stay out of `reference_left_out`
    ("codes that are no class of the map"); only codes that are no class go there."""
    from types import SimpleNamespace

    from claire.claire_plugin.core.engine.post import _add_reference

    ref = np.array([[0, 0, 0], [1, 2, 7]], np.float32)  # 0: the reference's nodata; 7: no class of the map
    lut = np.full(65536, -1, np.int64)
    lut[1], lut[2] = 0, 1
    acc = SummaryAccumulator([{"value": 1, "name": "a"}, {"value": 2, "name": "b"}], 100.0, 6)
    outputs = SimpleNamespace(reference=SimpleNamespace(read=lambda band, window: ref), reference_lut=lut,
                              reference_nodata=0, summary=acc, reference_ignored=(), reference_path="ref.tif")
    _add_reference(outputs, np.array([[0, 1, 0], [0, 1, 1]]), np.ones((2, 3), bool), 0, 0, 2, 3)
    assert acc.ref_left == {7: 1} and acc.cm.tolist() == [[1, 0], [0, 1]]
    # QA round 16: a value the checkpoint's training ignored (WHU-OPT-SAR's 0, not labelled) is no class left out
    # (the note told the user to recode it)
    acc = SummaryAccumulator([{"value": 1, "name": "a"}, {"value": 2, "name": "b"}], 100.0, 6)
    _add_reference(SimpleNamespace(**{**vars(outputs), "summary": acc, "reference_nodata": None,
                                      "reference_ignored": [0]}), np.array([[0, 1, 0], [0, 1, 1]]),
                   np.ones((2, 3), bool), 0, 0, 2, 3)
    assert acc.ref_left == {7: 1}


def test_ties_go_to_the_lowest_class_index_as_in_the_evaluation():
    """QA round 20 (mutation): the map's tie-break (a forest's 100 / 100 votes) was not pinned against argmax."""
    from claire.claire_plugin.core.engine.post import top_class

    values = np.array([[[0.2, 0.4]], [[0.4, 0.4]], [[0.4, 0.2]], [[0.9, 0.9]]], np.float32)  # 3 classes + a share
    top, idx = top_class(values, 3)
    assert idx.tolist() == np.argmax(values[:3], axis=0).tolist() == [[1, 0]]
    assert top.tolist() == [[pytest.approx(0.4), pytest.approx(0.4)]]
