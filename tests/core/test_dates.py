"""The optical's and the SAR's dates, read from their metadata or names, and the warning when they lie far apart
(QA, flood responder: a clear optical of before a flood beside a SAR of after it mapped almost none of the flood,
without a word)."""
from __future__ import annotations

import datetime as dt
import os

from claire.claire_plugin.core.engine import run
from claire.claire_plugin.core.inputs.dates import acquisition_date, date_gap_warning
from claire.claire_plugin.core.params import ClassifyParams
from claire.tests.fixtures.helpers import write_raster


def test_dates_are_read_from_tags_then_the_file_name_then_its_folder():
    assert acquisition_date("/x/S1A_IW_GRDH_1SDV_20180204T043253_35VPK_57_38_VV.tif") == (
        dt.date(2018, 2, 4), "its name S1A_IW_GRDH_1SDV_20180204T043253_35VPK_57_38_VV.tif")
    assert acquisition_date("/x/S2B_MSIL2A_20170924T93020_69_24/B02.tif") == (
        dt.date(2017, 9, 24), "its folder's name S2B_MSIL2A_20170924T93020_69_24")
    assert acquisition_date("/x/s1_20210720.tif", {"ACQUISITION_DATE": "2021-07-23T10:00:00Z"}) == (
        dt.date(2021, 7, 23), "its ACQUISITION_DATE tag")
    # an ESA product name's first date is the sensing one; its processing date comes later (reprocessed: years)
    assert acquisition_date("/x/S2B_MSIL2A_20170613T101031_N0500_R022_T33UUP_20230105T093000.tif")[0] == dt.date(
        2017, 6, 13)
    # (review) behind SNAP's subset prefix, a granule's name, underscores in the date; not an export folder's date
    for path, day in (("subset_0_of_S2A_MSIL2A_20170613T101031_N0500_R022_T33UUP_20230918T120000_resampled.tif",
                       (2017, 6, 13)), ("T33UUP_20170613T101031_N0500_20230918_stack.tif", (2017, 6, 13)),
                      ("S2_T36MXV_2023_07_09.tif", (2023, 7, 9))):
        assert acquisition_date(f"/x/{path}")[0] == dt.date(*day), path
    assert acquisition_date("/d/export_20240301/sar.tif") is None
    for name in ("282D_485L_3_3.tif", "ROIs2017_winter_112_p797.tif", "S2_20210601_20210605.tif", "x_20211345.tif"):
        assert acquisition_date(f"/x/{name}") is None, name  # no date, two dates, no real date


def test_dates_far_apart_are_warned_of_and_close_ones_not():
    said = date_gap_warning(("/o/S2_20210601.tif", {}), ("/s/S1_20210720.tif", {}))
    assert said.startswith("warning: the optical is of 2021-06-01 (its name S2_20210601.tif) and the SAR of "
                           "2021-07-20 (its name S1_20210720.tif), 49 days apart: where the ground changed"), said
    assert date_gap_warning(("/o/S2_20210601.tif", {}), ("/s/S1_20210612.tif", {})) is None  # 11 days
    assert date_gap_warning(("/o/S2_20210601.tif", {}), ("/s/S1.tif", {})) is None  # the SAR says none


def test_a_run_names_dates_far_apart(engine_scene, standin_model, standin_card):
    optical, sar, _ = engine_scene["arrays"]
    d = engine_scene["dir"]
    paths = {name: write_raster(os.path.join(d, name), arr) for name, arr in
             (("S2_20200501.tif", optical), ("S1_20200620.tif", sar), ("S1_20200503.tif", sar))}
    far = run(ClassifyParams(paths["S2_20200501.tif"], paths["S1_20200620.tif"], os.path.join(d, "far.tif")),
              standin_model, standin_card).messages
    near = run(ClassifyParams(paths["S2_20200501.tif"], paths["S1_20200503.tif"], os.path.join(d, "near.tif")),
               standin_model, standin_card).messages
    assert [m for m in far if "50 days apart" in m] and not [m for m in near if "days apart" in m]


def test_the_docks_fit_check_names_dates_far_apart(engine_scene, standin_card):
    from claire.claire_plugin.core.inputs.fit import check_pair

    optical, sar, _ = engine_scene["arrays"]
    d = engine_scene["dir"]
    o = write_raster(os.path.join(d, "S2_20200501.tif"), optical)
    s = write_raster(os.path.join(d, "S1_20200620.tif"), sar)
    assert [w for w in check_pair(o, s, standin_card).warnings if "50 days apart" in w]
    assert not [w for w in check_pair(o, engine_scene["sar"], standin_card).warnings if "days apart" in w]

