"""`core.accuracy.evaluate` (claire:evaluate, `claire evaluate-map`'s table) on small maps whose right answer is known:
each test pins one rule whose loss a mutation audit (QA round 14) showed no other test would notice."""
from __future__ import annotations

import numpy as np
import pytest

from claire.claire_plugin.core.accuracy import evaluate
from claire.claire_plugin.core.errors import ClaireError
from claire.tests.fixtures.helpers import write_raster


def _two_classes() -> np.ndarray:
    m = np.ones((10, 10), np.uint8)
    m[:, 5:] = 2
    return m


def test_the_maps_area_beyond_the_reference_is_not_compared(tmp_path):
    """A reference covering half the map, without a nodata value: the other half was read as reference class 0
    (OA 0.5, a class 0 with 50 pixels the map "missed")."""
    m = _two_classes()
    cmap = write_raster(tmp_path / "m.tif", m)
    ref = write_raster(tmp_path / "r.tif", m[:, :5])
    out = evaluate(cmap, ref)
    assert out["oa"] == 1.0 and out["compared_pixels"] == 50 and out["class_values"] == [1]
    assert out["reference_only"] == {} and out["ignored_reference"] == {}


def test_map_nodata_pixels_are_not_compared(tmp_path):
    m = _two_classes()
    gapped = m.copy()
    gapped[0, :] = 0
    out = evaluate(write_raster(tmp_path / "m.tif", gapped, nodata=0), write_raster(tmp_path / "r.tif", m))
    assert out["oa"] == 1.0 and out["compared_pixels"] == 90 and out["class_values"] == [1, 2]


def test_a_partial_class_mapping_keeps_the_other_values(tmp_path):
    m = _two_classes()
    ref = np.where(m == 1, 10, 2).astype(np.uint8)
    out = evaluate(write_raster(tmp_path / "m.tif", m), write_raster(tmp_path / "r.tif", ref), mapping={10: 1})
    assert out["oa"] == 1.0 and out["class_values"] == [1, 2]


def test_predicted_counts_are_the_maps_columns(tmp_path):
    m = _two_classes()
    ref = m.copy()
    ref[:, 4] = 2  # the map says 1 there: 10 pixels of reference 2 mapped as 1
    out = evaluate(write_raster(tmp_path / "m.tif", m), write_raster(tmp_path / "r.tif", ref))
    assert [c["predicted"] for c in out["per_class"]] == np.array(out["confusion"]).sum(0).tolist() == [50, 50]
    assert [c["support"] for c in out["per_class"]] == [40, 60]


def test_map_values_that_are_no_class_count_as_errors(tmp_path):
    """QA round 21: with the classes of a card that lacks one of the map's values (or a map naming only some of its
    values), pixels the map gave that value were dropped from the score: OA and kappa rose, and only the JSON said
    so. They are errors of their reference class, in a column that is no class."""
    from claire.claire_plugin.core.accuracy import OTHER_VALUE, write_report

    m = _two_classes()
    m[0, :3] = 6  # 3 pixels of reference 1 mapped as 6, no class of the list
    classes = [{"value": 1, "name": "water", "color": None}, {"value": 2, "name": "trees", "color": None}]
    out = evaluate(write_raster(tmp_path / "m.tif", m), write_raster(tmp_path / "r.tif", _two_classes()), classes)
    assert out["compared_pixels"] == 100 and out["oa"] == pytest.approx(0.97)
    assert out["other_map_values"] == {"6": 3} and out["other_map_pixels"] == [3, 0]
    assert out["confusion"] == [[47, 0], [0, 50]]
    water = out["per_class"][0]
    assert water["support"] == 50 and water["recall"] == pytest.approx(0.94) and water["precision"] == 1.0
    assert water["iou"] == pytest.approx(47 / 50) and out["miou"] == pytest.approx((47 / 50 + 1.0) / 2)
    pe = (50 * 47 + 50 * 50) / 100 ** 2
    assert out["kappa"] == pytest.approx((0.97 - pe) / (1 - pe))
    html = open(write_report(out, str(tmp_path / "r.html")), encoding="utf-8").read()
    assert f"<th>{OTHER_VALUE}</th>" in html and "<td>3</td></tr>" in html and "6 (3 pixels)" in html


def test_map_values_outside_the_classes_at_ignored_reference_pixels_stay_out(tmp_path):
    m, ref = _two_classes(), _two_classes()
    m[0, :3], ref[0, :] = 6, 9
    out = evaluate(write_raster(tmp_path / "m.tif", m), write_raster(tmp_path / "r.tif", ref),
                   [{"value": 1, "name": "a"}, {"value": 2, "name": "b"}])
    assert out["oa"] == 1.0 and out["other_map_values"] == {} and out["ignored_reference"] == {"9": 10}


def test_ignored_reference_values_are_left_out(tmp_path):
    m = _two_classes()
    ref = m.copy()
    ref[0, :] = 9
    out = evaluate(write_raster(tmp_path / "m.tif", m), write_raster(tmp_path / "r.tif", ref), ignore_reference=[9])
    assert out["oa"] == 1.0 and out["compared_pixels"] == 90 and out["reference_only"] == {}


def test_the_maps_nodata_is_never_a_class_the_map_missed(tmp_path):
    m = _two_classes()
    gapped, ref = m.copy(), m.copy()
    gapped[0, :] = ref[0, :] = 0
    out = evaluate(write_raster(tmp_path / "m.tif", gapped, nodata=0), write_raster(tmp_path / "r.tif", ref))
    assert out["reference_only"] == {} and out["class_values"] == [1, 2]


def test_a_reference_left_out_whole_says_so(tmp_path):
    m = _two_classes()
    with pytest.raises(ClaireError, match="no valid pixel"):
        evaluate(write_raster(tmp_path / "m.tif", m), write_raster(tmp_path / "r.tif", np.full_like(m, 9)),
                 ignore_reference=[9])


@pytest.mark.parametrize("text", ["0,8", "0;8", "0 8", " 0, 8 ", "0.0,8"])
def test_value_lists_read_every_separator_alike(text):
    """`--ignore "0 8"` was read as [8] (spaces removed, then split on commas): one parser for every value list."""
    from claire.claire_plugin.core.accuracy import parse_values
    from claire.claire_plugin.core.training.sources import parse_label_values

    assert parse_values(text) == [0, 8]
    assert parse_label_values(text) == [0, 8]


@pytest.mark.parametrize("text", ["x", "0.5", "inf", "1-2"])
def test_value_lists_refuse_what_is_not_an_integer_naming_the_option(text):
    from claire.claire_plugin.core.training.sources import parse_label_values

    with pytest.raises(ClaireError, match="--ignore: .* is not a list of integer values"):
        parse_label_values(text)


def test_the_other_column_sits_in_each_pixels_reference_row_and_is_said_only_when_there(tmp_path):
    """Mutation check of round 21: the other column's pixels all lay in the first row of the only test; the note,
    the HTML column and the area had no test of their own."""
    from claire.claire_plugin.core.accuracy import OTHER_VALUE, other_values_note, write_report

    m = _two_classes()
    m[0, :3] = 6   # 3 pixels of reference 1 (water)
    m[9, 7:9] = 7  # 2 pixels of reference 2 (trees)
    classes = [{"value": 1, "name": "water", "color": None}, {"value": 2, "name": "trees", "color": None}]
    ref = write_raster(tmp_path / "r.tif", _two_classes())
    out = evaluate(write_raster(tmp_path / "m.tif", m), ref, classes)
    assert out["other_map_pixels"] == [3, 2] and out["other_map_values"] == {"6": 3, "7": 2}
    assert [r["recall"] for r in out["per_class"]] == pytest.approx([47 / 50, 48 / 50])
    assert out["compared_area_ha"] == pytest.approx(100 * 10 * 10 / 1e4)  # write_raster's 10 m pixels
    html = open(write_report(out, str(tmp_path / "r.html")), encoding="utf-8").read()
    assert "<th>water</th><td>47</td><td>0</td><td>3</td></tr>" in html
    assert "<th>trees</th><td>0</td><td>48</td><td>2</td></tr>" in html
    clean = evaluate(write_raster(tmp_path / "c.tif", _two_classes()), ref, classes)
    assert other_values_note(clean) is None and clean["other_map_pixels"] == [0, 0]
    html = open(write_report(clean, str(tmp_path / "c.html")), encoding="utf-8").read()
    assert OTHER_VALUE not in html
    only_other = evaluate(write_raster(tmp_path / "o.tif", np.full((10, 10), 9, np.uint8)), ref, classes)
    assert only_other["oa"] == 0.0 and only_other["compared_pixels"] == 100  # scored: every pixel an error


def test_a_class_list_naming_a_value_twice_still_scores(tmp_path):
    """Review of round 21: the confusion was sized by the distinct values, and a card listing one value twice
    (hand-edited) raised an IndexError where it had scored."""
    m = _two_classes()
    classes = [{"value": 1, "name": "water"}, {"value": 1, "name": "water again"}, {"value": 2, "name": "trees"}]
    out = evaluate(write_raster(tmp_path / "m.tif", m), write_raster(tmp_path / "r.tif", m), classes)
    assert out["oa"] == 1.0 and len(out["confusion"]) == 3


def test_a_reference_of_values_with_a_fraction_is_refused_and_whole_floats_score(tmp_path):
    """QA round 22: a float reference of 1.0 | 1.9 was truncated, its 1.9 pixels scored as class 1 (OA 0.5 where
    reading 2 gives 1.0), without a word. Whole floats (and a float nodata) are class codes."""
    m = _two_classes()
    cmap = write_raster(tmp_path / "m.tif", m)
    whole = m.astype(np.float32)
    whole[0, 0] = -3.4e38
    out = evaluate(cmap, write_raster(tmp_path / "w.tif", whole, nodata=-3.4e38))
    assert out["oa"] == 1.0 and out["compared_pixels"] == 99
    nan_row = m.astype(np.float32)
    nan_row[0, :] = np.nan  # no reference there: not compared, and no value with a fraction
    out = evaluate(cmap, write_raster(tmp_path / "n.tif", nan_row))
    assert out["oa"] == 1.0 and out["compared_pixels"] == 90
    odd = whole.copy()
    odd[m == 2] = 1.9
    with pytest.raises(ClaireError, match=r"reference raster .*r\.tif' holds values such as 1\.9, not class codes"):
        evaluate(cmap, write_raster(tmp_path / "r.tif", odd, nodata=-3.4e38))


def test_the_html_report_carries_the_legend_warning(tmp_path):
    """QA round 22: the warning that the reference names its classes otherwise than the map was in the JSON and the
    Processing log only; the HTML report showed the scores without it."""
    import pathlib

    import rasterio

    from claire.claire_plugin.core.accuracy import write_report

    def named(path, names):  # the band's class_N tags, as claire classify writes them
        write_raster(path, _two_classes())
        with rasterio.open(path, "r+") as ds:
            ds.update_tags(1, **names)
        return str(path)

    cmap = named(tmp_path / "m.tif", {"class_1": "water", "class_2": "trees & <shrubs>"})
    out = evaluate(cmap, named(tmp_path / "r.tif", {"class_1": "trees & <shrubs>", "class_2": "water"}))
    assert out["legend_note"].startswith("warning: the reference names its classes otherwise")
    text = pathlib.Path(write_report(out, str(tmp_path / "r.html"))).read_text(encoding="utf-8")
    assert "<b>Warning:</b> the reference names its classes otherwise than the map" in text
    assert "trees &amp; &lt;shrubs&gt;" in text and "<shrubs>" not in text  # escaped
    plain = evaluate(cmap, cmap)
    assert plain["legend_note"] is None
    assert "Warning" not in pathlib.Path(write_report(plain, str(tmp_path / "p.html"))).read_text(encoding="utf-8")


def test_a_float_reference_is_read_whole_before_the_run_for_a_value_with_a_fraction(tmp_path):
    """QA round 22 (second review): the check before a classify run stopped at the first class value, so one 2.5
    far down a 2048 px reference failed the run only when it reached that tile. A float reference is read whole
    (an integer one still stops at the first class value)."""
    import rasterio

    from claire.claire_plugin.core.accuracy import check_reference

    ref = np.ones((1100, 1100), np.float32)
    ref[1000, 1000] = 2.5
    path = write_raster(tmp_path / "r.tif", ref)
    lut = np.full(65536, -1, np.int64)
    lut[1] = 0
    with rasterio.open(path) as ds:
        with pytest.raises(ClaireError, match=r"holds values such as 2\.5, not class codes"):
            check_reference(ds, ds, path, lut)
    whole = write_raster(tmp_path / "w.tif", np.ones((1100, 1100), np.uint8))
    with rasterio.open(whole) as ds:
        check_reference(ds, ds, whole, lut)
    # a float reference of whole codes passes, its class found in any block (round 23's mutation check: refusing
    # every float reference, or letting the last block decide, passed the tests)
    plain = write_raster(tmp_path / "f.tif", np.ones((1100, 1100), np.float32))
    corner = np.full((1100, 1100), 7, np.float32)
    corner[:100, :100] = 1
    first_block = write_raster(tmp_path / "c.tif", corner)
    for good in (plain, first_block):
        with rasterio.open(good) as ds:
            check_reference(ds, ds, good, lut)
