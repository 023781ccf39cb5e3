"""Rules whose loss a mutation audit (QA round 14, second wave) showed no test would notice, each pinned on the
smallest input where the right answer is known: map accuracy, training scores, suggestions, inputs and tiling."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from claire.claire_plugin.core.errors import ClaireError


def test_mapped_area_is_pixels_times_pixel_area():
    from claire.claire_plugin.core.area_estimate import area_weighted_accuracy

    r = area_weighted_accuracy([1, 1, 2, 2], [1, 1, 2, 1], {1: 100, 2: 300}, 100.0)
    assert r["per_class"][0]["map_area_m2"] == pytest.approx(10000.0)


def test_a_fractional_reference_label_is_refused():
    from claire.claire_plugin.core.map_accuracy import _ref_value

    with pytest.raises(ClaireError, match="neither a class code"):
        _ref_value("1.5", 3, "ref_class", "points.gpkg")


def test_sample_points_sit_on_pixel_centres_in_no_class_order(tmp_path):
    from claire.claire_plugin.core.map_accuracy import stratified_sample
    from claire.tests.fixtures.helpers import write_raster

    data = np.ones((40, 40), np.uint8)
    data[:, 20:] = 2
    data[30:, :10] = 3
    path = write_raster(str(tmp_path / "m.tif"), data, origin=(500000.0, 4000000.0), res=10.0)
    s = stratified_sample(path, 5, seed=0)
    np.testing.assert_allclose(s.x, 500000.0 + (np.asarray(s.col) + 0.5) * 10.0)
    np.testing.assert_allclose(s.y, 4000000.0 - (np.asarray(s.row) + 0.5) * 10.0)
    values = list(s.value)
    assert values != sorted(values), "the order of the points must not give their map class away"


def test_a_temperature_that_worsens_the_class_balanced_error_is_not_applied():
    from claire.claire_plugin.core.training.calibrate import _worse

    assert _worse({"before": {"calibration_error": 0.1, "calibration_error_per_pixel": 0.1},
                   "after": {"calibration_error": 0.2, "calibration_error_per_pixel": 0.05}}) is True


def test_macroclass_scores_keep_the_unscored_pixels():
    from claire.claire_plugin.core.training.hierarchy import macro_score

    out = macro_score({"confusion": [[5, 1, 0], [0, 5, 0], [0, 0, 4]], "unscored_pixels": 7}, np.array([0, 0, 1]),
                      ["A", "B"])
    assert out["unscored_pixels"] == 7


def test_pixels_mapped_as_another_base_class_stay_out_of_the_miou():
    from claire.claire_plugin.core.training.scorecard import score_confusion

    assert score_confusion(np.array([[8, 0], [0, 10]]), ["a", "b"], 0, [2, 0])["miou"] == pytest.approx(0.9)


def test_the_forest_is_not_said_to_lead_within_its_margin():
    from claire.claire_plugin.core.training.scorecard import FOREST_LEAD, forest_verdict

    assert FOREST_LEAD > 0.01
    assert forest_verdict({"arms": {"finetuned": {"clear": {"macro_f1": 0.80}},
                                    "rf_optical_sar": {"clear": {"macro_f1": 0.81}}}}) is None


def test_places_below_the_least_doubt_are_not_suggested():
    from claire.claire_plugin.core.suggest import _pick

    assert _pick(np.array([[0.5, 0.0, 0.1]]), 5, 1, 0.3) == [(0, 0)]


def test_pairs_skipped_as_done_before_are_not_summed():
    from claire.claire_plugin.core.batch import BatchSummary

    summary = BatchSummary.__new__(BatchSummary)
    summary.results = [{"status": "ok", "output": None, "valid_pixels": 10, "area_ha": {"x": 1.0}},
                       {"status": "skipped", "output": None, "valid_pixels": 10, "area_ha": {"x": 1.0}}]
    totals = summary.totals()
    assert totals["pairs"] == 1 and totals["area_ha"] == {"x": 1.0}


def test_a_coarse_optical_with_sar_as_coarse_gets_no_sar_warning():
    from claire.claire_plugin.core.inputs.fit import sar_resolution_warning

    assert sar_resolution_warning(40, 40, {"inputs": {"optical": {"resolution_m": 10}}}) is None


def test_one_file_with_overlapping_band_lists_is_refused():
    from claire.claire_plugin.core.inputs.fit import same_raster_message

    assert same_raster_message("/d/scene.tif", "/d/scene.tif", [1, 2, 3], [3, 4]) is not None


def test_dates_twelve_days_apart_are_fine_and_the_esa_date_wins():
    from claire.claire_plugin.core.inputs.dates import acquisition_date, date_gap_warning

    assert date_gap_warning(("/o/S2_20210601.tif", {}), ("/s/S1_20210613.tif", {})) is None
    name = "/x/20230105_S2B_MSIL2A_20210601T101559_N0510_R008_T32TQM_20210602T120000.tif"
    assert acquisition_date(name)[0] == dt.date(2021, 6, 1)


def test_capping_pixels_at_their_count_keeps_them_all():
    from claire.claire_plugin.core.training.baseline import cap_pixels

    assert sorted(cap_pixels(10, 10, 0).tolist()) == list(range(10))


def test_a_nodata_value_the_type_cannot_hold_masks_nothing():
    from claire.claire_plugin.core.engine.reader import nodata_in

    assert nodata_in(-9999.0, np.dtype("uint16")) is None


def test_bands_stacked_in_another_order_are_said_so():
    from claire.claire_plugin.core.inputs.bands import choose_bands

    choice = choose_bands("optical", 3, ["B08", "B02", "B04"], ["B02", "B04", "B08"])
    assert "stacked in another order" in choice.reorder_note("optical")
