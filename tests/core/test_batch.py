"""core.batch: the one classify-folder loop (statuses, cancellation, JSON + CSV summary)."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from claire.claire_plugin.core.batch import (
    CSV_COLUMNS,
    SUMMARY_CSV,
    SUMMARY_JSON,
    BatchSummary,
    check_pairing,
    classify_pairs,
)
from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.io.pairing import pair_folders
from claire.claire_plugin.core.params import run_options


@pytest.fixture
def folders(tmp_path):
    """Three optical/SAR pairs with identical names, and one SAR file without partner."""
    from claire.tests.fixtures.helpers import synthetic_scene, write_raster

    opt_dir, sar_dir = tmp_path / "o", tmp_path / "s"
    opt_dir.mkdir()
    sar_dir.mkdir()
    from claire.claire_plugin.core.inputs.bands import S2_L2A

    optical, sar, _ = synthetic_scene(32, 32)
    for name in ("a", "b", "c"):  # named bands: a 32 px scene has too little vegetation to check an order
        write_raster(str(opt_dir / f"{name}.tif"), optical, descriptions=list(S2_L2A))
        write_raster(str(sar_dir / f"{name}.tif"), sar, descriptions=["VV", "VH"])
    write_raster(str(sar_dir / "z.tif"), sar, descriptions=["VV", "VH"])
    return str(opt_dir), str(sar_dir)


def test_cancelling_records_the_pairs_not_started(folders, tmp_path, tiny_checkpoint):
    opt_dir, sar_dir = folders
    out = str(tmp_path / "out")
    done = []
    options = run_options(checkpoint=tiny_checkpoint, tile_size=32, context=0, threads=1)
    summary = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, out, optical_folder=opt_dir,
                             sar_folder=sar_dir, is_cancelled=lambda: len(done) >= 1,
                             on_pair=lambda i, n, record, result: done.append((i, n, record["status"], result)))
    assert [(i, n, status) for i, n, status, _ in done] == [(0, 3, "ok"), (1, 3, "cancelled"), (2, 3, "cancelled")]
    assert done[0][3].output == os.path.join(out, "a_landcover.tif") and done[1][3] is None
    assert summary.outputs == [os.path.join(out, "a_landcover.tif")]
    assert not os.path.exists(os.path.join(out, "b_landcover.tif"))

    js = json.loads(Path(out, SUMMARY_JSON).read_text())
    assert (js["pairs"], js["succeeded"], js["failed"], js["cancelled"], js["unmatched_count"]) == (3, 1, 0, 2, 1)
    assert (js["classified"], js["skipped"]) == (1, 0)
    rows = list(csv.DictReader(Path(out, SUMMARY_CSV).read_text().splitlines()))
    names = [c["name"] for c in done[0][3].summary["classes"]]
    assert list(rows[0]) == CSV_COLUMNS + [f"ha {n}" for n in names] and "oa" not in rows[0]
    assert [r["status"] for r in rows] == ["ok", "cancelled", "cancelled", "unmatched"]
    # (QA, a time series) the shares that tell one date's map from another's, and one column per class
    summary_shares = done[0][3].summary
    assert rows[0]["sar_only_share"] == f"{summary_shares['sar_only_share']:.4f}"
    assert [float(rows[0][f"ha {n}"]) for n in names] == pytest.approx(
        [js["results"][0]["area_ha"][n] for n in names], abs=1e-4)
    assert rows[1][f"ha {names[0]}"] == "" and js["results"][0]["warnings"] == []
    assert [n for n in os.listdir(out) if n.endswith(".partial")] == []


def test_failing_pair_is_recorded_and_the_batch_goes_on(folders, tmp_path, tiny_checkpoint):
    opt_dir, sar_dir = folders
    with open(os.path.join(opt_dir, "b.tif"), "wb") as fh:
        fh.write(b"not a raster")
    options = run_options(checkpoint=tiny_checkpoint, tile_size=32, context=0, threads=1)
    summary = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, str(tmp_path / "out"))
    assert [r["status"] for r in summary.results] == ["ok", "failed", "ok"]
    assert summary.results[1]["output"] is None and summary.results[1]["reason"]
    again = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, str(tmp_path / "out"), skip_existing=True)
    assert [r["status"] for r in again.results] == ["skipped", "failed", "skipped"]
    # (QA, a time series) a pair skipped as complete keeps its areas and shares from the summary that made its map
    for first, later in zip(summary.results, again.results):
        if first["status"] == "ok":
            assert later["area_ha"] == first["area_ha"] and later["sar_only_share"] == first["sar_only_share"]
    third = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, str(tmp_path / "out"), skip_existing=True)
    assert third.results[0]["area_ha"] == summary.results[0]["area_ha"]  # kept through a skipped pair's record


def test_nothing_to_pair_is_a_user_error(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "s").mkdir()
    with pytest.raises(ClaireError, match="contains no raster files"):
        check_pairing(pair_folders(str(tmp_path / "o"), str(tmp_path / "s"), ""), "o", "s", "")


def test_output_folder_that_is_a_file_is_refused(folders, tmp_path, tiny_checkpoint):
    opt_dir, sar_dir = folders
    (tmp_path / "file").write_text("x")
    with pytest.raises(ClaireError, match="is a file"):
        classify_pairs(pair_folders(opt_dir, sar_dir, ""), run_options(), str(tmp_path / "file"))


def test_skip_existing_skips_only_complete_outputs(folders, tmp_path, tiny_checkpoint):
    """--skip-existing resumes a batch: a cut-off map, a text file under the map's name, or a pair whose
    confidence raster is asked for but missing is classified again; complete ones are skipped."""
    opt_dir, sar_dir = folders
    out = tmp_path / "out"
    options = run_options(checkpoint=tiny_checkpoint, tile_size=32, context=0, threads=1)
    first = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, str(out))
    assert [r["status"] for r in first.results] == ["ok", "ok", "ok"]
    maps = sorted(out.glob("*_landcover.tif"))
    maps[0].write_bytes(maps[0].read_bytes()[:500])  # an interrupted copy
    maps[1].write_text("not a map\n")
    again = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, str(out), skip_existing=True)
    assert [r["status"] for r in again.results] == ["ok", "ok", "skipped"]
    with_conf = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, str(out), skip_existing=True,
                               confidence=True)
    assert [r["status"] for r in with_conf.results] == ["ok", "ok", "ok"]
    assert len(list(out.glob("*_confidence.tif"))) == 3


def test_skip_existing_classifies_again_a_map_of_other_classes(folders, tmp_path, tiny_checkpoint):
    """A batch finished with another model (the bundled one changes between versions): its complete maps of other
    classes were kept as "complete from before", a folder in two class schemes without a word."""
    from claire.tests.fixtures.helpers import make_tiny_checkpoint, tiny_card

    opt_dir, sar_dir = folders
    out = str(tmp_path / "out")
    other = [dict(c, name=f"other {c['name']}") for c in tiny_card()["classes"]]
    first = make_tiny_checkpoint(str(tmp_path / "other.safetensors"), classes=other)
    classify_pairs(pair_folders(opt_dir, sar_dir, ""), run_options(checkpoint=first, tile_size=32, context=0,
                                                                   threads=1), out)
    options = run_options(checkpoint=tiny_checkpoint, tile_size=32, context=0, threads=1)
    again = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, out, skip_existing=True)
    assert [r["status"] for r in again.results] == ["ok", "ok", "ok"]
    assert all("holds other classes" in r["note"] for r in again.results)
    same = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, out, skip_existing=True)
    assert [r["status"] for r in same.results] == ["skipped"] * 3


def test_the_summaries_name_files_by_absolute_paths(folders, tmp_path, tiny_checkpoint, monkeypatch):
    """Run from the shell with relative folders, the CSV listed `out/a_landcover.tif`, which does not exist seen
    from the CSV's own folder."""
    opt_dir, sar_dir = folders
    monkeypatch.chdir(tmp_path)
    rel_opt, rel_sar = os.path.relpath(opt_dir), os.path.relpath(sar_dir)
    options = run_options(checkpoint=tiny_checkpoint, tile_size=32, context=0, threads=1)
    classify_pairs(pair_folders(rel_opt, rel_sar, ""), options, "out", optical_folder=rel_opt, sar_folder=rel_sar)
    rows = list(csv.DictReader(Path("out", SUMMARY_CSV).read_text().splitlines()))
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(int(r["valid_pixels"]) > 0 and "=" in r["area_ha_by_class"] for r in ok)  # areas per pair
    monkeypatch.chdir(Path("out"))  # where the summaries lie
    for row in rows:
        for key in ("optical", "sar", "output"):
            if row[key]:
                assert os.path.isabs(row[key]) and os.path.exists(row[key]), row
    js = json.loads(Path(SUMMARY_JSON).read_text())
    assert os.path.isabs(js["optical_folder"]) and all(os.path.isfile(r["output"]) for r in js["results"])
    first = js["results"][0]
    assert sum(first["area_ha"].values()) == pytest.approx(first["valid_pixels"] * 100 / 1e4, rel=1e-3)
    # the three pairs map the same ground (as dates of one place do): their areas are not summed
    totals = js["totals"]
    assert totals["pairs"] == 3 and totals["valid_pixels"] is None
    assert totals["area_ha"] is None and totals["overlapping_maps"] == 3 and "not summed" in totals["note"]


def test_totals_sum_the_areas_of_maps_of_separate_ground(tmp_path, tiny_checkpoint):
    """QA: users added the CSV's rows up by hand, so the JSON sums them; but a time series of one place summed its
    dates into an area several times the place's. Scenes side by side (one in another UTM zone) are summed; once
    a date of the first place joins them, the sum is withheld and the note says why."""
    from claire.tests.fixtures.helpers import synthetic_scene, write_raster

    optical, sar, _ = synthetic_scene(32, 32)
    places = {"a": ("EPSG:32631", (500000.0, 4600000.0)), "b": ("EPSG:32631", (500640.0, 4600000.0)),
              "c": ("EPSG:32632", (500000.0, 4600000.0)), "a2": ("EPSG:32631", (500160.0, 4600160.0))}
    for folder in ("o", "s", "o2", "s2"):
        (tmp_path / folder).mkdir()
    for name, (crs, origin) in places.items():
        o, s = ("o2", "s2") if name == "a2" else ("o", "s")
        write_raster(str(tmp_path / o / f"{name}.tif"), optical, crs=crs, origin=origin)
        write_raster(str(tmp_path / s / f"{name}.tif"), sar, crs=crs, origin=origin, descriptions=["VV", "VH"])
    options = run_options(checkpoint=tiny_checkpoint, tile_size=32, context=0, threads=1)
    apart = classify_pairs(pair_folders(str(tmp_path / "o"), str(tmp_path / "s"), ""), options,
                           str(tmp_path / "out")).totals()
    assert apart["overlapping_maps"] == 0 and apart["pairs"] == 3
    assert sum(apart["area_ha"].values()) == pytest.approx(3 * 32 * 32 * 100 / 1e4, rel=1e-3)
    later = classify_pairs(pair_folders(str(tmp_path / "o2"), str(tmp_path / "s2"), ""), options,
                           str(tmp_path / "out"))
    both = BatchSummary("", "", "", results=apart_results(tmp_path) + later.results).totals()
    assert both["area_ha"] is None and both["overlapping_maps"] == 2, both
    assert "2 of the 4 maps" in both["note"]


def apart_results(tmp_path):
    """Records of the three maps side by side written above."""
    return [{"status": "ok", "output": str(tmp_path / "out" / f"{k}_landcover.tif"), "valid_pixels": 1024,
             "area_ha": {"x": 10.24}} for k in ("a", "b", "c")]


def test_each_pairs_warnings_are_kept_and_said(tmp_path, tiny_checkpoint, capsys):
    """QA (a time series): the batch kept a pair's areas but dropped its warnings (an optical and a SAR 20 days
    apart warned in a single run, not in the folder run nor its summary)."""
    from claire.claire_plugin.cli.main import main
    from claire.tests.fixtures.helpers import synthetic_scene, write_raster

    optical, sar, _ = synthetic_scene(48, 64)
    for folder, name, data in (("o", "T1_S2_20200501.tif", optical), ("s", "T1_S1_20200620.tif", sar)):
        (tmp_path / folder).mkdir()
        write_raster(str(tmp_path / folder / name), data)
    out = tmp_path / "out"
    assert main(["classify-folder", "--optical-folder", str(tmp_path / "o"), "--sar-folder", str(tmp_path / "s"),
                 "--output-folder", str(out), "--pairing", "S2_20200501->S1_20200620", "--checkpoint",
                 tiny_checkpoint, "--tile-size", "32", "--threads", "1", "--quiet"]) == 0
    said = capsys.readouterr().err
    assert "claire: warning: [1/1] T1_S2_20200501.tif + T1_S1_20200620.tif: the optical is of 2020-05-01" in said
    record = json.loads((out / SUMMARY_JSON).read_text())["results"][0]
    assert [w for w in record["warnings"] if "50 days apart" in w] and record["sar_only_share"] is not None
    row = next(csv.DictReader((out / SUMMARY_CSV).read_text().splitlines()))
    assert "50 days apart" in row["warnings"]


def test_maps_across_the_antimeridian_are_seen_to_overlap(tmp_path):
    """Review of QA round 13: a map spanning 180 degrees and a part of it east of the line never met once both were
    in longitude/latitude, and a time series there had its dates summed again."""
    import numpy as np

    from claire.claire_plugin.core.batch import overlapping_maps
    from claire.tests.fixtures.helpers import write_raster

    data = np.zeros((1, 20, 100), np.uint8)
    # EPSG:32601 (UTM 1N) at about 65 N: x 340 km lies at 179.6 E, x 380 km at 179.5 W; x 364 km is 179.9 W
    whole = write_raster(str(tmp_path / "whole.tif"), data, crs="EPSG:32601", origin=(340000.0, 7210000.0), res=400.0)
    east = write_raster(str(tmp_path / "east.tif"), data[:, :, :40], crs="EPSG:32601",
                        origin=(364000.0, 7210000.0), res=400.0)
    apart = write_raster(str(tmp_path / "apart.tif"), data, crs="EPSG:32601", origin=(340000.0, 7400000.0),
                         res=400.0)
    assert overlapping_maps([whole, east]) == 2
    assert overlapping_maps([whole, apart]) == 0


def test_tiles_of_one_zone_that_only_touch_share_nothing(tmp_path):
    """QA round 14: two UTM tiles side by side (off the central meridian) were called overlapping, because their
    longitude/latitude boxes are wider than the tiles, and the folder run withheld its totals; maps in one CRS are
    compared in it. Half a pixel column in common (a sliver) is no overlap either; a true overlap still is, across
    CRSs too (the antimeridian: a UTM map and a lon/lat part of it)."""
    import numpy as np

    from claire.claire_plugin.core.batch import overlapping_maps
    from claire.tests.fixtures.helpers import write_raster

    tile = np.zeros((1, 100, 100), np.uint8)

    def utm(name, x, y=5000000.0):
        return write_raster(str(tmp_path / f"{name}.tif"), tile, crs="EPSG:32632", origin=(x, y), res=100.0)

    assert overlapping_maps([utm("w", 300000.0), utm("e", 310000.0)]) == 0
    assert overlapping_maps([utm("a", 300000.0), utm("b", 309000.0)]) == 2
    deg = [write_raster(str(tmp_path / f"g{i}.tif"), np.zeros((1, 100, 1000), np.uint8), crs="EPSG:4326",
                        origin=(x, 45.0), res=0.0001) for i, x in enumerate((10.0, 10.09995))]
    assert overlapping_maps(deg) == 0
    whole = write_raster(str(tmp_path / "whole.tif"), np.zeros((1, 20, 100), np.uint8), crs="EPSG:32601",
                         origin=(340000.0, 7210000.0), res=400.0)
    east = write_raster(str(tmp_path / "east.tif"), np.zeros((1, 5, 40), np.uint8), crs="EPSG:4326",
                        origin=(-179.9, 64.99), res=0.01)
    assert overlapping_maps([whole, east]) == 2


def test_a_folder_run_takes_the_map_rules_as_one_pair_does():
    """QA round 14: `claire classify-folder` and claire:classify_folder had no --no-snow-check / --no-sar-fill, so a
    batch could differ from single runs made with those off; both now go through the run options they share."""
    from claire.claire_plugin.cli.main import build_parser
    from claire.claire_plugin.cli.options import run_options

    base = ["classify-folder", "--optical-folder", "o", "--sar-folder", "s", "--output-folder", "out"]
    off = run_options(build_parser().parse_args(base + ["--no-snow-check", "--no-sar-fill"]))
    on = run_options(build_parser().parse_args(base))
    assert (off.snow_check, off.fill_from_sar, on.snow_check, on.fill_from_sar) == (False, False, True, True)
    p = off.params("a.tif", "b.tif", "c.tif")
    assert p.snow_check is False and p.fill_from_sar is False


def test_skip_existing_classifies_again_a_scene_delivered_again(folders, tmp_path, tiny_checkpoint):
    """QA round 17 (scripts): an input replaced after its map was made (a re-delivered scene) was skipped as
    complete, leaving the map of the old scene."""
    opt_dir, sar_dir = folders
    out = str(tmp_path / "out")
    options = run_options(checkpoint=tiny_checkpoint, tile_size=32, context=0, threads=1)
    first = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, out)
    later = max(os.path.getmtime(r["output"]) for r in first.results) + 60
    os.utime(first.results[1]["optical"], (later, later))
    os.utime(first.results[2]["sar"], (later, later))  # a SAR delivered again counts too
    again = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, out, skip_existing=True)
    assert [r["status"] for r in again.results] == ["skipped", "ok", "ok"]
    assert "an input is not the file the map there was made from" in again.results[1]["note"]
    js = again.as_dict()
    assert (js["succeeded"], js["classified"], js["skipped"]) == (3, 2, 1)


def test_neighbouring_maps_whose_nodata_frames_overlap_share_nothing(tmp_path):
    """QA round 17 (a district from several granules): granules reprojected to one CRS have rotated nodata frames
    that reach into each other's boxes; the batch called them overlapping and withheld the district's totals. The
    boxes are confirmed by the maps' valid pixels where they share less than half."""
    import numpy as np

    from claire.claire_plugin.core.batch import overlapping_maps
    from claire.tests.fixtures.helpers import write_raster

    def map_(name, x, valid):
        data = np.zeros((1, 100, 130), np.uint8)
        data[0][:, valid] = 3
        return write_raster(str(tmp_path / f"{name}.tif"), data, crs="EPSG:32632", origin=(x, 5000000.0),
                            res=10.0, nodata=0)

    west = map_("west", 300000.0, slice(0, 100))  # its last 30 columns: the frame
    east = map_("east", 301000.0, slice(30, 130))  # starts where the west's data ends
    assert overlapping_maps([west, east]) == 0
    wider = map_("wider", 300800.0, slice(0, 130))  # data over the west's last 20 columns of data
    assert overlapping_maps([west, wider]) == 2
    assert overlapping_maps([west, east, wider]) == 3

    def big(name, x, valid, width=1300):  # maps over the coarse mask's 512 px: read from overviews, scaled
        data = np.zeros((1, 1000, width), np.uint8)
        data[0][:, valid] = 3
        return write_raster(str(tmp_path / f"{name}.tif"), data, crs="EPSG:32632", origin=(x, 5000000.0),
                            res=10.0, nodata=0)

    bw = big("bw", 300000.0, slice(0, 1000))  # frame: its last 300 columns
    be = big("be", 310000.0, slice(300, 1300))
    assert overlapping_maps([bw, be]) == 0
    bwide = big("bwide", 308000.0, slice(0, 1300))  # 200 columns over the west's data: 20 % of the smaller
    assert overlapping_maps([bw, bwide]) == 2


def test_skip_existing_keeps_maps_whose_inputs_were_only_archived_copied_or_given_statistics(folders, tmp_path,
                                                                                             tiny_checkpoint):
    """QA round 18 (review): a chmod of the inputs, a copy of the whole project elsewhere (`cp -a`), statistics QGIS
    saved beside an input (.aux.xml) or its pyramids (.ovr) had every pair classified again as "a scene delivered
    again" (the change time moved, or a sidecar was newer). The summary records each input's files, sizes and
    modification times, and only a difference there makes a map again; a summary without that record (an earlier
    version's) falls back to the modification times."""
    import json
    import shutil
    import stat

    opt_dir, sar_dir = folders
    out = str(tmp_path / "out")
    options = run_options(checkpoint=tiny_checkpoint, tile_size=32, context=0, threads=1)
    first = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, out)
    assert all(r["inputs_seen"]["optical"] and r["inputs_seen"]["sar"] for r in first.results)
    for r in first.results:
        os.chmod(r["optical"], stat.S_IRUSR | stat.S_IRGRP)  # archived read-only
    later = max(os.path.getmtime(r["output"]) for r in first.results) + 60
    for sidecar in (first.results[0]["optical"] + ".aux.xml", first.results[1]["sar"] + ".ovr"):
        with open(sidecar, "w") as fh:
            fh.write("<PAMDataset/>")
        os.utime(sidecar, (later, later))
    again = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, out, skip_existing=True)
    assert [r["status"] for r in again.results] == ["skipped"] * 3, [r.get("note") for r in again.results]
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path, moved, copy_function=shutil.copy2, ignore=shutil.ignore_patterns("elsewhere"))
    m_opt, m_sar, m_out = (str(moved / os.path.relpath(p, tmp_path)) for p in (opt_dir, sar_dir, out))
    copied = classify_pairs(pair_folders(m_opt, m_sar, ""), options, m_out, skip_existing=True)
    assert [r["status"] for r in copied.results] == ["skipped"] * 3
    target = copied.results[2]["optical"]
    os.chmod(target, stat.S_IRUSR | stat.S_IWUSR)
    with open(target, "r+b") as fh:  # the same name and time, another size: another scene
        fh.seek(0, 2)
        fh.write(b"\0" * 4096)
    mtime = copied.results[2]["inputs_seen"]["optical"][0][2]
    os.utime(target, (mtime, mtime))
    changed = classify_pairs(pair_folders(m_opt, m_sar, ""), options, m_out, skip_existing=True)
    assert [r["status"] for r in changed.results] == ["skipped", "skipped", "ok"]
    from claire.claire_plugin.core.batch import SUMMARY_JSON

    summary = os.path.join(m_out, SUMMARY_JSON)
    with open(summary, encoding="utf-8") as fh:
        doc = json.load(fh)
    for r in doc["results"]:
        r.pop("inputs_seen")
    with open(summary, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)
    os.utime(copied.results[0]["sar"], (later + 60, later + 60))
    old_summary = classify_pairs(pair_folders(m_opt, m_sar, ""), options, m_out, skip_existing=True)
    assert [r["status"] for r in old_summary.results] == ["ok", "skipped", "skipped"]


def test_a_scene_copied_in_with_its_old_date_or_behind_a_vrt_is_classified_again(folders, tmp_path, tiny_checkpoint):
    """Fix check and review of round 17: a scene re-delivered with `cp -p` (its old modification time) or through a
    VRT whose source file changed was still skipped as its old map."""
    import shutil

    from osgeo import gdal

    from claire.claire_plugin.core.batch import _newer_input

    opt_dir, sar_dir = folders
    out = str(tmp_path / "out")
    options = run_options(checkpoint=tiny_checkpoint, tile_size=32, context=0, threads=1)
    first = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, out)
    old = os.path.getmtime(first.results[0]["output"]) - 3600
    target = first.results[0]["optical"]
    shutil.copyfile(first.results[1]["optical"], target + ".new")
    os.utime(target + ".new", (old, old))
    os.replace(target + ".new", target)  # as cp -p leaves it: the old modification time, a new change time
    assert os.path.getmtime(target) < os.path.getmtime(first.results[0]["output"])
    again = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, out, skip_existing=True)
    assert [r["status"] for r in again.results] == ["ok", "skipped", "skipped"]
    vrt = str(tmp_path / "v.vrt")
    gdal.BuildVRT(vrt, [first.results[2]["sar"]])
    made = str(tmp_path / "made.txt")
    with open(made, "w") as fh:
        fh.write("x")
    assert not _newer_input(made, vrt)
    later = os.path.getmtime(made) + 60
    os.utime(first.results[2]["sar"], (later, later))
    assert _newer_input(made, vrt)  # the VRT's source, not the .vrt file, changed


def test_the_input_files_of_a_raster_in_an_archive_are_the_archive(tmp_path):
    """QA round 18 (review): /vsizip/ names were cut at a lower-case '.zip' only, so a scene in SCENE.ZIP or a .tar
    was no file at all and a scene delivered again in it was never noticed by --skip-existing."""
    import tarfile
    import zipfile

    import numpy as np

    from claire.claire_plugin.core.batch import _input_files, input_identity
    from claire.tests.fixtures.helpers import write_raster

    tif = write_raster(str(tmp_path / "scene.tif"), np.ones((2, 8, 8), np.float32))
    upper = tmp_path / "SCENE.ZIP"
    with zipfile.ZipFile(upper, "w") as z:
        z.write(tif, "scene.tif")
    with tarfile.open(tmp_path / "scene.tar", "w") as t:
        t.add(tif, "scene.tif")
    assert _input_files(f"/vsizip/{upper}/scene.tif") == [str(upper)]
    assert _input_files(f"/vsitar/{tmp_path / 'scene.tar'}/scene.tif") == [str(tmp_path / "scene.tar")]
    seen = input_identity(f"/vsizip/{upper}/scene.tif", tif)
    assert seen["optical"][0][:2] == ["SCENE.ZIP", upper.stat().st_size] and seen["sar"][0][0] == "scene.tif"


def test_same_inputs_needs_the_same_files_names_and_a_whole_record():
    """Mutation check of round 18: a file added to or gone from an input (a VRT's new source, a .tfw), another
    file name of the same size and time, and a record of another shape (a hand-edited or partial summary) each
    count as other inputs, so the map is made again."""
    from claire.claire_plugin.core.batch import _same_inputs

    seen = {"optical": [["a.tif", 10, 1.0]], "sar": [["s.tif", 5, 1.0]]}
    assert _same_inputs({"optical": [["a.tif", 10, 1.5]], "sar": [["s.tif", 5, 1.0]]}, seen)  # 0.5 s: the same
    more = {"optical": [["a.tif", 10, 1.0], ["a.tfw", 80, 1.0]], "sar": [["s.tif", 5, 1.0]]}
    assert not _same_inputs(seen, more) and not _same_inputs(more, seen)
    assert not _same_inputs({"optical": [["b.tif", 10, 1.0]], "sar": [["s.tif", 5, 1.0]]}, seen)
    assert not _same_inputs({"optical": [["a.tif", 10, 1.0]], "sar": [["s.tif", 5, 4.0]]}, seen)  # 3 s later
    assert not _same_inputs({"optical": [["a.tif", 10, 1.0]]}, seen)
    assert not _same_inputs({"optical": [["a.tif", "x", 1]], "sar": []}, seen)
    assert not _same_inputs({"optical": "a.tif", "sar": [["s.tif", 5, 1.0]]}, seen)


def test_a_summary_nested_too_deep_is_read_as_no_summary(folders, tmp_path, tiny_checkpoint):
    """QA (round 19): a claire_batch_summary.json nested 100000 deep made --skip-existing end in "internal error"
    (RecursionError); like any unreadable summary, it now means every pair is classified again."""
    opt_dir, sar_dir = folders
    out = tmp_path / "out"
    out.mkdir()
    (out / SUMMARY_JSON).write_text("{\"results\": " + "[" * 100000 + "]" * 100000 + "}")
    summary = classify_pairs(pair_folders(opt_dir, sar_dir, ""), run_options(checkpoint=tiny_checkpoint, threads=1),
                             str(out), skip_existing=True)
    assert summary.count("ok") == 3


@pytest.mark.parametrize("damage", [
    lambda summary: summary.update(results=5),
    lambda summary: summary["results"][0].update(area_ha="big"),
    lambda summary: summary["results"][0].update(warnings="one"),
    lambda summary: summary["results"][0].update(valid_pixels=[1]),
])
def test_a_damaged_earlier_summary_is_read_as_no_record(folders, tmp_path, tiny_checkpoint, damage):
    """QA (round 19): `"results": 5` or a kept record's `area_ha` "big" in claire_batch_summary.json made
    --skip-existing end in an internal error (TypeError, AttributeError); such records are now absent."""
    opt_dir, sar_dir = folders
    out = tmp_path / "out"
    options = run_options(checkpoint=tiny_checkpoint, threads=1)
    classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, str(out))
    summary = json.loads((out / SUMMARY_JSON).read_text())
    damage(summary)
    (out / SUMMARY_JSON).write_text(json.dumps(summary))
    again = classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, str(out), skip_existing=True)
    assert again.count("ok") + again.count("skipped") == 3
    assert json.loads((out / SUMMARY_JSON).read_text())["results"][0]["status"] in ("ok", "skipped")
    assert (out / SUMMARY_CSV).exists()


@pytest.mark.parametrize("key, bad", [("valid_pixels", [1]), ("cloud_share", "x"), ("device", 5), ("warnings", [1]),
                                      ("area_ha", {"trees": "big"})])
def test_a_damaged_kept_field_is_not_carried_into_the_new_summary(folders, tmp_path, tiny_checkpoint, key, bad):
    """Mutation check (round 19): each field a skipped pair keeps from the earlier summary is checked, not only the
    ones the first test damaged ("big" hectares of one class, a text share, a number as device)."""
    opt_dir, sar_dir = folders
    out = tmp_path / "out"
    options = run_options(checkpoint=tiny_checkpoint, threads=1)
    classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, str(out))
    summary = json.loads((out / SUMMARY_JSON).read_text())
    summary["results"][0][key] = bad
    (out / SUMMARY_JSON).write_text(json.dumps(summary))
    classify_pairs(pair_folders(opt_dir, sar_dir, ""), options, str(out), skip_existing=True)
    assert json.loads((out / SUMMARY_JSON).read_text())["results"][0].get(key) != bad
