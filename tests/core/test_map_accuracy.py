"""Stratified sample of a classified map and its area-weighted accuracy (Olofsson et al. 2014)."""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from claire.claire_plugin.core.area_estimate import accuracy_table
from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.map_accuracy import (
    area_weighted_accuracy,
    class_pixel_counts,
    evaluate_points,
    stratified_sample,
    write_points,
)
from claire.tests.fixtures.helpers import write_raster


def _sample_from_matrix(rows):
    """(map values, reference values) of a sample with the counts n_ij of `rows` ({map: [n_i1, n_i2, ..]})."""
    mv, rv = [], []
    for i, counts in rows.items():
        for j, n in enumerate(counts, start=1):
            mv += [i] * n
            rv += [j] * n
    return mv, rv


# W = 0.6, 0.3, 0.1; n_ij below; A = 1000 px * 100 m2 = 100000 m2. Worked by hand:
# p_ij = W_i n_ij / n_i. -> rows (.48 .06 .06), (.06 .24 0), (0 .02 .08); p_.j = .54 .32 .14.
TOY = {1: [8, 1, 1], 2: [1, 4, 0], 3: [0, 1, 4]}
TOY_PIXELS = {1: 600, 2: 300, 3: 100}


def test_toy_estimates_match_hand_computation():
    mv, rv = _sample_from_matrix(TOY)
    r = area_weighted_accuracy(mv, rv, TOY_PIXELS, 100.0, {1: "a", 2: "b", 3: "c"})
    assert r["overall_accuracy"] == pytest.approx(0.48 + 0.24 + 0.08)
    # eq. 5: sum W_i^2 U_i (1 - U_i) / (n_i. - 1)
    assert r["overall_se"] == pytest.approx(math.sqrt(0.36 * 0.16 / 9 + 0.09 * 0.16 / 4 + 0.01 * 0.16 / 4))
    pc = {c["value"]: c for c in r["per_class"]}
    assert [pc[k]["users_accuracy"] for k in (1, 2, 3)] == pytest.approx([0.8, 0.8, 0.8])
    assert pc[1]["users_se"] == pytest.approx(math.sqrt(0.8 * 0.2 / 9))
    assert [pc[k]["producers_accuracy"] for k in (1, 2, 3)] == pytest.approx([0.48 / 0.54, 0.24 / 0.32, 0.08 / 0.14])
    assert [pc[k]["area_m2"] for k in (1, 2, 3)] == pytest.approx([54000, 32000, 14000])
    # eq. 10: SE(p_.k) = sqrt(sum_i W_i^2 (n_ik/n_i.)(1 - n_ik/n_i.) / (n_i. - 1)); eq. 11: times A
    se = [math.sqrt(0.36 * 0.16 / 9 + 0.09 * 0.16 / 4),
          math.sqrt(0.36 * 0.09 / 9 + 0.09 * 0.16 / 4 + 0.01 * 0.16 / 4),
          math.sqrt(0.36 * 0.09 / 9 + 0.01 * 0.16 / 4)]
    assert [pc[k]["area_se_m2"] for k in (1, 2, 3)] == pytest.approx([100000 * s for s in se])
    assert pc[3]["area_ci95_m2"] == pytest.approx(1.96 * 100000 * se[2])
    # eq. 7 for class 1 (P = 8/9, U = .8): own row + the other rows' share of column 1
    p1 = 8 / 9
    v1 = (0.36 * (1 - p1) ** 2 * 0.8 * 0.2 / 9 + p1 ** 2 * (0.09 * 0.2 * 0.8 / 4 + 0.01 * 0)) / 0.54 ** 2
    assert pc[1]["producers_se"] == pytest.approx(math.sqrt(v1))
    em = r["error_matrix"]
    assert (em["rows"], em["columns"], em["labels"]) == ("map", "reference", ["a", "b", "c"])
    assert np.array(em["proportion_of_area"]) == pytest.approx(np.array(
        [[0.48, 0.06, 0.06], [0.06, 0.24, 0.0], [0.0, 0.02, 0.08]]))
    assert sum(c["area_m2"] for c in r["per_class"]) == pytest.approx(r["total_area_m2"])
    assert any("fewer than 30" in w for w in r["warnings"])
    assert "overall accuracy 80.0 %" in accuracy_table(r)
    row = next(line for line in accuracy_table(r).splitlines() if line.startswith("a "))  # QA round 20: ± of 1 SE
    got = [float(v) for v in re.findall(r"± +([\d.]+)", row)[:2]]  # went unnoticed
    assert got == [round(100 * pc[1]["users_ci95"], 1), round(100 * pc[1]["producers_ci95"], 1)]
    assert pc[1]["users_ci95"] == pytest.approx(1.96 * pc[1]["users_se"])


def test_published_example_of_olofsson_2014():
    """Section 5 of the paper: 30 m pixels, deforestation mapped on 200 000 px, estimated 21 158 ha ± 6 158."""
    mv, rv = _sample_from_matrix({1: [66, 0, 5, 4], 2: [0, 55, 8, 12], 3: [1, 0, 153, 11], 4: [2, 1, 9, 313]})
    r = area_weighted_accuracy(mv, rv, {1: 200000, 2: 150000, 3: 3200000, 4: 6450000}, 900.0)
    assert r["overall_accuracy"] == pytest.approx(0.947, abs=5e-4)
    defor = r["per_class"][0]
    assert defor["area_m2"] / 1e4 == pytest.approx(21158, abs=1)
    assert defor["area_ci95_m2"] / 1e4 == pytest.approx(6158, abs=1)
    assert defor["users_accuracy"] == pytest.approx(0.88)
    assert defor["producers_accuracy"] == pytest.approx(0.75, abs=0.005)


def test_unlabelled_points_are_skipped_and_counted():
    mv, rv = _sample_from_matrix(TOY)
    full = area_weighted_accuracy(mv, rv, TOY_PIXELS, 100.0)
    r = area_weighted_accuracy(mv + [1, 2], rv + [None, None], TOY_PIXELS, 100.0)
    assert r["points_unlabelled"] == 2 and r["points_used"] == 20
    assert r["overall_accuracy"] == pytest.approx(full["overall_accuracy"])
    assert any("2 point(s) without a reference label" in w for w in r["warnings"])


def test_a_class_sampled_whole_is_a_census_without_the_few_points_warning():
    """QA (statistics): a 1-pixel class sampled whole (SE 0) was warned of "wide confidence intervals", and its
    row of the printed error matrix read 0.0000 on the diagonal."""
    pixels = {1: 100000, 2: 1}
    r = area_weighted_accuracy([1] * 40 + [2], [1] * 40 + [2], pixels, 100.0, {1: "big", 2: "tiny"})
    tiny = r["per_class"][1]
    assert tiny["users_se"] == 0.0 and tiny["area_ci95_m2"] == 0.0
    assert not any("tiny" in w and "fewer than" in w for w in r["warnings"]), r["warnings"]
    # (round 21) its producer's accuracy of 1 +- 0 is told as unobserved omission within 'big', not as certainty
    assert any("'tiny': none of the 40 point(s) of the other map classes" in w for w in r["warnings"])
    assert any("big" in w for w in area_weighted_accuracy([1] * 20 + [2], [1] * 20 + [2], pixels, 100.0,
                                                          {1: "big", 2: "tiny"})["warnings"])
    row = next(line for line in accuracy_table(r).splitlines() if line.startswith("tiny") and "e-05" in line)
    assert "1.0e-05" in row, row


def test_the_error_matrix_heads_its_columns_with_whole_class_names():
    """QA (a day's workflow): the matrix's header cut "built area" to "built are"; names up to 14 characters are
    whole, the columns as wide as their names, the rows' figures under them."""
    names = {1: "built area", 2: "flooded vegetation", 3: "water"}
    mv, rv = _sample_from_matrix(TOY)
    text = accuracy_table(area_weighted_accuracy(mv, rv, TOY_PIXELS, 100.0, names))
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("error matrix"))
    header, first = lines[head + 1], lines[head + 2]
    assert header.split() == ["built", "area", "flooded", "veget…", "water"] and "built are " not in header + " "
    assert len(first) == len(header) and first.startswith("built area")
    for name in ("built area", "flooded veget…", "water"):  # each figure ends under its column's name
        end = header.index(name) + len(name)
        assert first[end - 1].isdigit(), (name, header, first)


def test_reference_only_class_and_unsampled_stratum():
    r = area_weighted_accuracy([1, 1, 2, 2], [1, 3, 2, 2], {1: 50, 2: 50}, 1.0)
    c3 = r["per_class"][2]
    assert c3["value"] == 3 and c3["users_accuracy"] is None and c3["producers_accuracy"] == 0.0
    assert c3["area_m2"] == pytest.approx(25.0)
    with pytest.raises(ClaireError, match=r"\[2\] have no labelled sample point"):
        area_weighted_accuracy([1, 1], [1, 1], {1: 50, 2: 50}, 1.0)
    with pytest.raises(ClaireError, match="no sample point has a reference label"):
        area_weighted_accuracy([1, 2], [None, None], {1: 50, 2: 50}, 1.0)


def _toy_map(tmp_path, name="map.tif"):
    """A 120 x 90 map: class 1 on the left half, 2 on most of the right, a 3 x 4 patch of 7, nodata 0 row."""
    data = np.ones((120, 90), np.uint8)
    data[:, 45:] = 2
    data[10:13, 60:64] = 7
    data[0] = 0
    return write_raster(str(tmp_path / name), data, nodata=0), data


def test_counts_and_stratified_sample(tmp_path):
    path, data = _toy_map(tmp_path)
    counts = class_pixel_counts(path)
    assert counts == {v: int((data == v).sum()) for v in (1, 2, 7)}
    s = stratified_sample(path, per_class=40, seed=3)
    assert {v: int((s.value == v).sum()) for v in (1, 2, 7)} == {1: 40, 2: 40, 7: 12}
    assert np.all(data[s.row, s.col] == s.value)
    assert len({(r, c) for r, c in zip(s.row.tolist(), s.col.tolist())}) == len(s)
    assert np.allclose(s.x, 500000.0 + 10 * (s.col + 0.5)) and np.allclose(s.y, 4600000.0 - 10 * (s.row + 0.5))
    assert any("class 7 has only 12 pixel(s)" in n for n in s.notes)
    again, other = stratified_sample(path, per_class=40, seed=3), stratified_sample(path, per_class=40, seed=4)
    assert np.array_equal(again.row, s.row) and np.array_equal(again.col, s.col)
    assert not np.array_equal(other.row, s.row)


def test_sample_is_uniform_within_a_class(tmp_path):
    """Every pixel of a class is equally likely: over many seeds, the rows of class 1 average the middle."""
    path, data = _toy_map(tmp_path)
    samples = [stratified_sample(path, per_class=20, seed=k) for k in range(40)]
    rows = np.concatenate([s.row[s.value == 1] for s in samples])
    cols = np.concatenate([s.col[s.value == 1] for s in samples])
    assert rows.size == 800 and rows.min() >= 1 and rows.max() <= 119 and cols.max() <= 44
    assert rows.mean() == pytest.approx(60.0, abs=3.5)  # SE of the mean about 1.2 rows
    assert cols.mean() == pytest.approx(22.0, abs=1.5)  # SE about 0.5 columns


def test_round_trip_sample_label_evaluate(tmp_path):
    from osgeo import ogr

    path, data = _toy_map(tmp_path)
    truth = data.copy()
    truth[:, 40:45] = 2  # the map calls 5 columns of true class 2 class 1
    s = stratified_sample(path, per_class=60, seed=0)
    out = write_points(s, str(tmp_path / "points.gpkg"))
    ds = ogr.Open(out, 1)
    lyr = ds.GetLayer(0)
    for feat in lyr:
        assert feat.IsFieldNull("ref_class")
        k = feat.GetField("sample_id") - 1
        if k % 10 != 9:  # every tenth point stays unlabelled
            feat.SetField("ref_class", int(truth[s.row[k], s.col[k]]))
            lyr.SetFeature(feat)
    lyr = ds = None
    r = evaluate_points(path, out, "ref_class")
    assert r["points_used"] + r["points_unlabelled"] == len(s) and r["points_unlabelled"] == len(s) // 10
    pc = {c["value"]: c for c in r["per_class"]}
    assert pc[2]["users_accuracy"] == 1.0 and pc[7]["users_accuracy"] == 1.0
    n1 = pc[1]["points"]
    wrong = sum(1 for k in range(len(s)) if k % 10 != 9 and s.value[k] == 1 and truth[s.row[k], s.col[k]] == 2)
    assert pc[1]["users_accuracy"] == pytest.approx((n1 - wrong) / n1)
    true_area_2 = float((truth == 2).sum()) * 100.0
    assert abs(pc[2]["area_m2"] - true_area_2) < 3 * pc[2]["area_se_m2"]


def test_bad_inputs_name_the_fix(tmp_path):
    path, _ = _toy_map(tmp_path)
    with pytest.raises(ClaireError, match="at least 1"):
        stratified_sample(path, per_class=0)
    fpath = write_raster(str(tmp_path / "f.tif"), np.zeros((5, 5), np.float32))
    with pytest.raises(ClaireError, match="not class codes.*gdal_translate -ot Byte"):
        class_pixel_counts(fpath)
    optical = write_raster(str(tmp_path / "o.tif"), np.ones((3, 5, 5), np.uint16))
    with pytest.raises(ClaireError, match="has 3 bands; a classified map has one band of class codes"):
        stratified_sample(optical, per_class=5)
    s = stratified_sample(path, per_class=5)
    with pytest.raises(ClaireError, match=r"\.gpkg"):
        write_points(s, str(tmp_path / "points.shp"))
    out = write_points(s, str(tmp_path / "p.gpkg"))
    with pytest.raises(ClaireError, match="no field 'truth'"):
        evaluate_points(path, out, "truth")
    with pytest.raises(ClaireError, match="no sample point has a reference label"):
        evaluate_points(path, out, "ref_class")


def test_sample_on_a_tiled_map_finds_pixels_in_every_tile(tmp_path):
    """Blocks of 16 x 16 (a 2-D grid of windows): row/col offsets of each block are applied."""
    import rasterio
    from rasterio.transform import from_origin

    _, data = _toy_map(tmp_path)
    path = str(tmp_path / "tiled.tif")
    with rasterio.open(path, "w", driver="GTiff", width=90, height=120, count=1, dtype="uint8", nodata=0,
                       crs="EPSG:32631", transform=from_origin(500000.0, 4600000.0, 10, 10), tiled=True,
                       blockxsize=16, blockysize=16) as dst:
        dst.write(data, 1)
    with rasterio.open(path) as ds:
        assert len(list(ds.block_windows(1))) == 8 * 6
    assert class_pixel_counts(path) == {v: int((data == v).sum()) for v in (1, 2, 7)}
    s = stratified_sample(path, per_class=300, seed=1)
    assert np.all(data[s.row, s.col] == s.value)
    assert len({(r, c) for r, c in zip(s.row.tolist(), s.col.tolist())}) == len(s) == 612
    assert len({(r // 16, c // 16) for r, c in zip(s.row.tolist(), s.col.tolist())}) == 48


def test_cli_sample_points_then_map_accuracy(tmp_path, capsys):
    import json

    from osgeo import ogr

    from claire.claire_plugin.cli.main import main

    path, data = _toy_map(tmp_path)
    out = str(tmp_path / "pts.gpkg")
    assert main(["sample-points", "--map", path, "--per-class", "35", "--seed", "2", "--output", out]) == 0
    assert "82 points (1: 35, 2: 35, 7: 12)" in capsys.readouterr().out
    ds = ogr.Open(out, 1)
    lyr = ds.GetLayer(0)
    for feat in lyr:
        feat.SetField("ref_class", feat.GetField("map_class"))
        lyr.SetFeature(feat)
    lyr = ds = None
    report = str(tmp_path / "acc.json")
    assert main(["map-accuracy", "--map", path, "--points", out, "--json", report]) == 0
    text = capsys.readouterr().out
    assert "overall accuracy 100.0 %" in text and "rows = map, columns = reference" in text
    saved = json.loads(Path(report).read_text())
    assert saved["points_used"] == 82 and saved["overall_accuracy"] == 1.0
    assert main(["map-accuracy", "--map", path, "--points", out, "--field", "nope"]) == 2
    assert "no field 'nope'" in capsys.readouterr().err


def test_points_in_another_crs_are_reprojected(tmp_path):
    """The same labelled points as a GeoJSON in WGS 84 give the same result as the GeoPackage in UTM."""
    from osgeo import gdal, ogr

    path, data = _toy_map(tmp_path)
    s = stratified_sample(path, per_class=30, seed=5)
    utm = write_points(s, str(tmp_path / "utm.gpkg"))
    ds = ogr.Open(utm, 1)
    lyr = ds.GetLayer(0)
    for feat in lyr:
        feat.SetField("ref_class", 2 if feat.GetField("sample_id") % 4 == 0 else feat.GetField("map_class"))
        lyr.SetFeature(feat)
    lyr = ds = None
    wgs = str(tmp_path / "wgs.geojson")
    gdal.VectorTranslate(wgs, utm, format="GeoJSON", dstSRS="EPSG:4326")
    a, b = evaluate_points(path, utm), evaluate_points(path, wgs)
    assert b["points_used"] == a["points_used"] == len(s)
    assert b["error_matrix"]["counts"] == a["error_matrix"]["counts"]
    assert b["overall_accuracy"] == pytest.approx(a["overall_accuracy"]) and a["overall_accuracy"] < 1.0
    # a shapefile in Web Mercator without its .prj, the CRS set on the layer in QGIS (claire:map_accuracy passes it)
    shp = str(tmp_path / "merc.shp")
    gdal.VectorTranslate(shp, utm, format="ESRI Shapefile", dstSRS="EPSG:3857")
    os.remove(shp[:-4] + ".prj")
    with pytest.raises(ClaireError, match="no coordinate reference system"):
        evaluate_points(path, shp)
    c = evaluate_points(path, shp, assigned_crs="EPSG:3857")
    assert c["error_matrix"]["counts"] == a["error_matrix"]["counts"]


def test_a_new_sample_never_overwrites_labelled_points(tmp_path):
    """Drawing a sample again into the file the user has been labelling would lose the labels: refused; a
    file with no label yet is simply replaced."""
    from osgeo import ogr

    data = np.ones((30, 30), np.uint8)
    data[:, 15:] = 2
    m = write_raster(str(tmp_path / "map.tif"), data)
    out = str(tmp_path / "pts.gpkg")
    write_points(stratified_sample(m, per_class=5, seed=0), out)
    write_points(stratified_sample(m, per_class=6, seed=1), out)  # nothing labelled yet: replaced
    ds = ogr.Open(out, 1)
    layer = ds.GetLayer(0)
    assert layer.GetFeatureCount() == 12
    feature = layer.GetNextFeature()
    feature.SetField("ref_class", 2)
    layer.SetFeature(feature)
    layer = ds = None
    before = Path(out).read_bytes()
    with pytest.raises(ClaireError, match=r"already holds 1 sample point\(s\) with a reference label.*another file"):
        write_points(stratified_sample(m, per_class=5, seed=2), out)
    assert Path(out).read_bytes() == before


def test_sample_points_never_replace_a_file_of_other_layers(tmp_path):
    """A GeoPackage holding the user's own layer (training points or polygons) is not an earlier sample: refused,
    byte for byte unchanged (sample-points, grow-polygons and suggest write through the same writer)."""
    from claire.tests.fixtures.vectors import box_wkt, write_vector

    data = np.ones((30, 30), np.uint8)
    m = write_raster(str(tmp_path / "map.tif"), data)
    training = write_vector(tmp_path / "training.gpkg", [(box_wkt(2, 2, 6, 6), "water")])
    before = Path(training).read_bytes()
    with pytest.raises(ClaireError, match=r"already holds layer '.*' \(1 feature\), which the sample points would "
                                          r"replace.*choose another file name"):
        write_points(stratified_sample(m, per_class=3, seed=0), training)
    assert Path(training).read_bytes() == before


def test_one_labelled_point_in_a_class_is_refused_unless_it_is_the_whole_class():
    """n_i = 1 leaves a class's variance undefined, and with it every interval of the map: refused, naming the
    class; a class of one pixel sampled whole is known exactly (zero variance), so the intervals stand."""
    mv, rv = _sample_from_matrix(TOY)
    with pytest.raises(ClaireError, match=r"map class\(es\) \[3\] have one labelled sample point"):
        area_weighted_accuracy(mv[:15] + [3], rv[:15] + [3], TOY_PIXELS, 100.0)
    census = area_weighted_accuracy(mv[:15] + [3], rv[:15] + [3], {1: 600, 2: 300, 3: 1}, 100.0)
    assert census["overall_ci95"] is not None and all(c["area_ci95_m2"] is not None for c in census["per_class"])
    assert census["per_class"][2]["users_se"] == 0.0
    both = area_weighted_accuracy(mv[:15], rv[:15], {1: 600, 2: 300}, 100.0)
    # the other classes keep their variance terms, with W_i scaled by 900 / 901 (the one pixel joins the map)
    assert census["overall_se"] == pytest.approx(both["overall_se"] * 900 / 901, rel=1e-9)


def test_reference_codes_the_map_never_assigns_get_the_right_advice():
    r = area_weighted_accuracy([1, 1, 1, 2, 2, 2], [1, 5, 0, 2, 2, 20], {1: 50, 2: 50}, 1.0,
                               {1: "water", 2: "trees", 5: "built area"})
    said = " | ".join(r["warnings"])
    assert "reference class(es) 5 (built area) (1 of 6 labelled point(s)) are in the map's legend but the map " \
           "never assigns them: those points are omission errors" in said
    assert "reference code(s) 0 (1 of 6" in said and "leave its reference field empty" in said
    assert "reference code(s) 20 (1 of 6" in said and "must be recoded" in said


def _labelled(tmp_path, path, name="points.gpkg", per_class=10):
    """sample-points of `path`, every point labelled with its map class."""
    from osgeo import ogr

    out = write_points(stratified_sample(path, per_class=per_class, seed=0), str(tmp_path / name))
    ds = ogr.Open(out, 1)
    lyr = ds.GetLayer(0)
    for feat in lyr:
        feat.SetField("ref_class", feat.GetField("map_class"))
        lyr.SetFeature(feat)
    lyr = ds = None
    return out


def test_points_of_another_map_and_the_samplers_own_fields_are_refused(tmp_path):
    path, data = _toy_map(tmp_path)
    out = _labelled(tmp_path, path)
    assert evaluate_points(path, out)["overall_accuracy"] == 1.0
    other = data.copy()
    other[:, 30:45] = 2  # the same place mapped again: the points' strata are the first map's
    other_path = write_raster(str(tmp_path / "other.tif"), other, nodata=0)
    with pytest.raises(ClaireError, match=r"sample points have a map_class that differs from .*other\.tif.* drawn "
                                          r"from another map"):
        evaluate_points(other_path, out)
    with pytest.raises(ClaireError, match="'map_class' holds the map's own class at each point"):
        evaluate_points(path, out, "map_class")
    with pytest.raises(ClaireError, match="'sample_id' holds the points' numbers"):
        evaluate_points(path, out, "sample_id")


def test_a_point_given_twice_is_refused_and_one_part_multipoints_are_read(tmp_path):
    import subprocess

    path, _ = _toy_map(tmp_path)
    out = _labelled(tmp_path, path)
    dup = str(tmp_path / "dup.gpkg")
    subprocess.run(["ogr2ogr", dup, out], check=True)
    subprocess.run(["ogr2ogr", "-append", "-nln", "accuracy_points", dup, out], check=True)
    with pytest.raises(ClaireError, match=r"are the same point; each sample point must be counted once"):
        evaluate_points(path, dup)
    multi = str(tmp_path / "multi.gpkg")
    subprocess.run(["ogr2ogr", "-nlt", "MULTIPOINT", multi, out], check=True)
    assert evaluate_points(path, multi)["overall_se"] == evaluate_points(path, out)["overall_se"]
    two = str(tmp_path / "two.geojson")
    with open(two, "w") as fh:
        fh.write('{"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:32631"}}, '
                 '"features": [{"type": "Feature", "properties": {"ref_class": 1}, "geometry": {"type": '
                 '"MultiPoint", "coordinates": [[500005, 4599995], [500015, 4599985]]}}]}')
    with pytest.raises(ClaireError, match="multipoint of 2 points.*Multipart to Singleparts"):
        evaluate_points(path, two)


def test_two_points_in_one_map_pixel_are_refused(tmp_path):
    """QA round 14: two labelled points in the one pixel of a class (different coordinates, labels 3 and 1) made
    that class a census: user's accuracy 0.5 with a 95 % interval of 0, a pixel counted twice as known."""
    path, _ = _toy_map(tmp_path)
    two = str(tmp_path / "two.geojson")
    with open(two, "w", encoding="utf-8") as fh:
        fh.write('{"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:32631"}}, '
                 '"features": [{"type": "Feature", "properties": {"ref_class": 1}, "geometry": {"type": "Point", '
                 '"coordinates": [500052, 4599948]}}, {"type": "Feature", "properties": {"ref_class": 2}, '
                 '"geometry": {"type": "Point", "coordinates": [500058, 4599942]}}]}')
    with pytest.raises(ClaireError, match=r"\(500052.00, 4599948.00\) and \(500058.00, 4599942.00\).*fall in one map "
                                          r"pixel \(row 5, column 5\).*keep one of the two points"):
        evaluate_points(path, two)
    with open(two, "w", encoding="utf-8") as fh:  # the second one not labelled: skipped, as any unlabelled point
        fh.write('{"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:32631"}}, '
                 '"features": [{"type": "Feature", "properties": {"ref_class": 1}, "geometry": {"type": "Point", '
                 '"coordinates": [500052, 4599948]}}, {"type": "Feature", "properties": {"ref_class": null}, '
                 '"geometry": {"type": "Point", "coordinates": [500058, 4599942]}}]}')
    with pytest.raises(ClaireError, match="have no labelled sample point"):  # past the pixel check: too few points
        evaluate_points(path, two)


def test_a_labelled_point_on_nodata_is_skipped_and_counted(tmp_path):
    """QA round 20 (mutation): the skip of points on the map's nodata had no test; without it such a point stopped
    the run ("sample points fall on map value(s) [0]")."""
    path, data = _toy_map(tmp_path)
    s = stratified_sample(path, per_class=20, seed=1)
    points = str(tmp_path / "points.geojson")
    features = [{"type": "Feature", "properties": {"ref_class": int(v)}, "geometry": {
        "type": "Point", "coordinates": [500000 + 10 * (c + 0.5), 4600000 - 10 * (r + 0.5)]}}
        for v, r, c in zip(s.value, s.row, s.col)]
    features.append({"type": "Feature", "properties": {"ref_class": 1}, "geometry": {  # row 0: nodata
        "type": "Point", "coordinates": [500005, 4599995]}})
    with open(points, "w", encoding="utf-8") as fh:
        json.dump({"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:32631"}},
                   "features": features}, fh)
    r = evaluate_points(path, points)
    assert r["points_used"] == len(s) and r["overall_accuracy"] == 1.0
    assert "1 point(s) fall outside the map or on nodata and were skipped" in r["warnings"]


def test_the_sample_names_the_maps_classes_for_the_labeller(tmp_path, capsys):
    """QA (a day's workflow): the points carried codes only, and a labeller who wrote the reference raster's codes
    (another legend) scored 12.1 % instead of 55.6 %. Each point carries the map's name of its class and the
    message lists the map's codes with their names; a map without names gives the codes alone."""
    import rasterio
    from osgeo import ogr

    from claire.claire_plugin.cli.main import main

    path, data = _toy_map(tmp_path)
    assert main(["sample-points", "--map", path, "--per-class", "5", "--output", str(tmp_path / "plain.gpkg")]) == 0
    assert "(the map's codes: 1, 2, 7)" in capsys.readouterr().out
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(1, class_1="water", class_2="crops", class_7="built area")
    out = str(tmp_path / "named.gpkg")
    assert main(["sample-points", "--map", path, "--per-class", "5", "--output", out]) == 0
    assert "(the map's codes: 1 = water, 2 = crops, 7 = built area)" in capsys.readouterr().out
    ds = ogr.Open(out)  # held: the layer dies with it
    names = {1: "water", 2: "crops", 7: "built area"}
    got = [(f.GetField("map_class"), f.GetField("map_name")) for f in ds.GetLayer(0)]
    ds = None
    assert len(got) == 15 and all(name == names[code] for code, name in got)


def test_reference_labels_may_be_the_maps_class_names(tmp_path):
    """QA (eleventh round, left then): `ref_class` took codes only; a labeller writing the map's class names in a
    text field of their own ("Water", "built  area", as map_name shows them) is read by name, case and spacing
    aside; a name the map does not have is refused, listing the map's classes."""
    import rasterio
    from osgeo import ogr

    path, _ = _toy_map(tmp_path)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(1, class_1="water", class_2="crops", class_7="built area")
    out = write_points(stratified_sample(path, per_class=10, seed=0), str(tmp_path / "points.gpkg"))
    ds = ogr.Open(out, 1)
    lyr = ds.GetLayer(0)
    lyr.CreateField(ogr.FieldDefn("seen", ogr.OFTString))
    spelled = {1: "Water", 2: " crops", 7: "built  Area"}
    for feat in lyr:
        feat.SetField("seen", spelled[feat.GetField("map_class")])
        feat.SetField("ref_class", feat.GetField("map_class"))
        lyr.SetFeature(feat)
    lyr = ds = None
    by_name, by_code = evaluate_points(path, out, "seen"), evaluate_points(path, out, "ref_class")
    assert by_name["overall_accuracy"] == 1.0 and by_name["points_used"] == by_code["points_used"] == 30
    assert by_name["per_class"] == by_code["per_class"]
    ds = ogr.Open(out, 1)
    lyr = ds.GetLayer(0)
    feat = lyr.GetNextFeature()
    feat.SetField("seen", "snow")
    lyr.SetFeature(feat)
    lyr = ds = None
    with pytest.raises(ClaireError, match=r"has 'snow' in 'seen', neither a class code nor a class name of the map "
                                          r"\(its classes: 1 water; 2 crops; 7 built area\)"):
        evaluate_points(path, out, "seen")


def test_long_class_names_are_whole_in_the_rows():
    """QA (scale of labels): rows cut CORINE's names to 19 letters ("Land principally oc")."""
    long = "Land principally occupied by agriculture"
    names = {1: long, 2: "flooded vegetation", 3: "water"}
    mv, rv = _sample_from_matrix(TOY)
    lines = accuracy_table(area_weighted_accuracy(mv, rv, TOY_PIXELS, 100.0, names)).splitlines()
    rows = [line for line in lines if line.startswith(long)]
    assert len(rows) == 2 and all(line[len(long)] == " " for line in rows)  # the class table's and the matrix's
    head = next(i for i, line in enumerate(lines) if line.startswith("error matrix"))
    assert len(lines[head + 1]) == len(lines[head + 2])  # the figures stay under their columns


def test_the_classify_table_keeps_whole_class_names():
    """QA (scale of labels): `claire classify` cut names to 20 letters ("Land principally occ")."""
    from claire.claire_plugin.cli.classify import format_table

    long = "Land principally occupied by agriculture"
    cls = {"pixels": 10, "area_ha": 0.1, "share": 0.5, "mean_confidence": 0.9, "mean_sar_share": 0.4}
    summary = {"classes": [dict(cls, value=1, name=long), dict(cls, value=2, name="water")], "valid_pixels": 20,
               "nodata_pixels": 0, "optical_invalid_share": 0.0,
               "total_area_ha": 0.2}
    lines = format_table(summary).splitlines()
    assert long in lines[1] and lines[1].index(" 10 ") == lines[2].index(" 10 ")  # the figures stay in columns


def test_a_few_points_that_all_agree_are_not_told_as_certainty():
    """Left by round 17 (a statistician): 6 points of a class that all agree gave a user's accuracy of 100 % +- 0.0
    (the paper's Wald interval), which reads as certainty; the warning now gives the Wilson interval of the same
    points (6 of 6: 61-100 %; 0 of 6: 0-39 %), and classes whose points disagree keep the plain warning."""
    from claire.claire_plugin.core.area_estimate import wilson95

    low, high = wilson95(6, 6)
    assert (round(low, 3), round(high, 9)) == (0.610, 1.0)
    assert wilson95(0, 6)[0] == 0.0 and round(wilson95(0, 6)[1], 3) == 0.390
    assert wilson95(5, 10) == pytest.approx([0.2366, 0.7634], abs=1e-4)  # the textbook value
    assert wilson95(0, 0) is None
    mv = [1] * 6 + [2] * 6 + [3] * 40
    rv = [1] * 6 + [1] * 6 + [3] * 36 + [1] * 4
    r = area_weighted_accuracy(mv, rv, {1: 1000, 2: 1000, 3: 5000}, 100.0, {1: "a", 2: "b", 3: "c"})
    pc = {c["value"]: c for c in r["per_class"]}
    assert pc[1]["users_ci95"] == 0.0 and pc[2]["users_ci95"] == 0.0  # the paper's formula, kept as it is
    said = {w.split("'")[1]: w for w in r["warnings"] if w.startswith("map class") and "producer's" not in w}
    assert "all agree with the map" in said["a"] and "95 % Wilson interval is 61-100 %" in said["a"], said
    assert "none agrees with the map" in said["b"] and "interval is 0-39 %" in said["b"], said
    assert "c" not in said  # 40 points: no few-points warning


def test_zero_wide_intervals_from_a_sample_are_not_told_as_certainty():
    """QA round 21: 30 points that all agree (no few-points warning) and a producer's accuracy of 1 because no point
    of another map class was labelled the class showed 100.0 +- 0.0 with no caution. A census (every pixel sampled)
    and a class the map never gives say nothing of it."""
    mv = [1] * 30 + [2] * 30 + [3] * 40
    rv = [1] * 30 + [2] * 27 + [4] * 3 + [3] * 36 + [1] * 4
    r = area_weighted_accuracy(mv, rv, {1: 1000, 2: 1000, 3: 5000}, 100.0, {1: "a", 2: "b", 3: "c", 4: "d"})
    pc = {c["value"]: c for c in r["per_class"]}
    assert pc[1]["users_ci95"] == 0.0 and pc[3]["producers_ci95"] == 0.0 and pc[3]["producers_accuracy"] == 1.0
    users = [w for w in r["warnings"] if "user's accuracy's interval" in w]
    producers = [w for w in r["warnings"] if "producer's accuracy is 100 %" in w]
    assert len(users) == 1 and "'a': its 30 point(s) all agree" in users[0] and "interval is 89-100 %" in users[0]
    assert [w.split("'")[1] for w in producers] == ["b", "c"], producers  # a: 4 of c's points are a
    assert "none of the 70 point(s) of the other map classes" in producers[0]
    assert "none of the 60 point(s)" in producers[1]
    assert not any("'d'" in w and "+- 0" in w for w in r["warnings"])  # never mapped: 0 whatever the sample
    census = area_weighted_accuracy([1] * 5 + [2] * 5, [1] * 5 + [2] * 5, {1: 5, 2: 5}, 100.0, {1: "a", 2: "b"})
    assert not [w for w in census["warnings"] if "+- 0" in w]

def test_the_zero_wide_cautions_at_their_edges():
    """Mutation check of round 21: none agreeing at 30+ points, one warning per few-points class, no Wilson caution
    where the interval is under a point wide, and a census class's points not counted as "other classes' points"."""
    from claire.claire_plugin.core.area_estimate import _wide

    none_agree = area_weighted_accuracy([1] * 35 + [2] * 35, [2] * 35 + [2] * 35, {1: 1000, 2: 1000}, 100.0,
                                        {1: "a", 2: "b"})
    assert any("'a': its 35 point(s) none agrees with the map" in w for w in none_agree["warnings"])
    few = area_weighted_accuracy([1] * 6 + [2] * 40, [1] * 6 + [2] * 40, {1: 1000, 2: 1000}, 100.0,
                                 {1: "a", 2: "b"})
    assert sum("'a'" in w and "user's accuracy" in w for w in few["warnings"]) == 1  # the few-points one only
    assert _wide(29, 30) and not _wide(400, 400)
    many = area_weighted_accuracy([1] * 400 + [2] * 400, [1] * 400 + [2] * 400, {1: 10 ** 6, 2: 10 ** 6}, 100.0,
                                  {1: "a", 2: "b"})
    assert not [w for w in many["warnings"] if "Wilson" in w]
    census = area_weighted_accuracy([1] * 40 + [2] * 5 + [3] * 40, [1] * 40 + [2] * 5 + [3] * 40,
                                    {1: 1000, 2: 5, 3: 1000}, 100.0, {1: "a", 2: "b", 3: "c"})
    said = next(w for w in census["warnings"] if w.startswith("map class 'a': none of the"))
    assert "none of the 40 point(s) of the other map classes" in said  # c's 40, not b's census 5
