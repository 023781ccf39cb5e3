"""Outputs never written over inputs or folders, through the command line (sample-points, map-accuracy,
suggest, grow-polygons, explain) and the atomic writer: every bad output path ends in exit status 2 with one
`claire: error:` line naming the problem and the fix, before any work; the inputs are byte-identical, a folder
given as output keeps its contents, and nothing (no output, temporary or hidden backup) is left behind.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from claire.claire_plugin.core.errors import ClaireError
from claire.tests.core.test_bad_inputs import cli, error_line  # noqa: F401 - the shared CLI runner
from claire.tests.fixtures.helpers import synthetic_scene, write_raster

X0, Y0 = 500000.0, 4600000.0


def tree(folder) -> dict:
    """{relative path: sha256} of every file under `folder` (hidden ones included), folders as None."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            found[os.path.relpath(os.path.join(root, d), folder)] = None
        for f in files:
            p = os.path.join(root, f)
            found[os.path.relpath(p, folder)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return found


def _points(path, records, field="ref_class", kind="int"):
    from rasterio.crs import CRS

    from claire.claire_plugin.core.io.points import write_point_layer

    return write_point_layer(str(path), "points", CRS.from_epsg(32631).to_wkt(), [(field, kind)], records, "test")


@pytest.fixture
def scene(tmp_path):
    """A labelled map (map.tif), labelled points (pts.gpkg), a second map, a survey for grow-polygons and a
    summary JSON for explain, in tmp_path/in; tmp_path/out exists and is empty."""
    from claire.tests.fixtures.explain_examples import sample_run

    d = tmp_path / "in"
    d.mkdir()
    (tmp_path / "out").mkdir()
    a = np.ones((64, 64), np.uint8)
    a[:, 32:] = 2
    b = a.copy()
    b[40:56, 8:24] = 2
    m = write_raster(str(d / "map.tif"), a)
    o = write_raster(str(d / "forest.tif"), b)
    pts = _points(d / "pts.gpkg", [(X0 + 10 * c + 5, Y0 - 10 * r - 5, {"ref_class": int(a[r, c])})
                                   for r in range(2, 62, 6) for c in range(2, 62, 6)])
    labels = _points(d / "labels.gpkg", [(X0 + 505, Y0 - 55, {"class": 2})], "class")
    opt, sar, _ = synthetic_scene(64, 96)
    optical = write_raster(str(d / "o.tif"), opt)
    s1 = write_raster(str(d / "s.tif"), sar, descriptions=["VV", "VH"])
    survey = _points(d / "survey.gpkg", [(X0 + 155, Y0 - 305, {"cover": "water"})], "cover", "str")
    summary = d / "summary.json"
    summary.write_text(json.dumps({"summary": sample_run()[0]}))
    return {"map": m, "second": o, "points": pts, "labels": labels, "optical": optical, "sar": s1,
            "survey": survey, "summary": str(summary), "in": str(d), "out": str(tmp_path / "out"),
            "root": str(tmp_path)}


def _refused(scene, argv, *patterns):
    """Run `argv`: exit 2, one error line matching every pattern, inputs and the output folder unchanged."""
    before = tree(scene["root"])
    rc, out, err = cli(argv)
    assert rc == 2, (out, err)
    line = error_line(err)
    for pattern in patterns:
        assert pattern in line, line
    assert "written" not in out, out
    assert tree(scene["root"]) == before  # inputs byte-identical; no output, temporary or backup left
    return line


# ------------------------------------------------------------------ outputs written over inputs


def test_map_accuracy_json_over_the_points_or_the_map_is_refused(scene):
    for target, role in ((scene["points"], "labelled points"), (scene["map"], "map")):
        line = _refused(scene, ["map-accuracy", "--map", scene["map"], "--points", scene["points"],
                                "--json", target], f"is also an input (the {role} ")
        assert f"writing there would overwrite the {role}" in line and "choose a different" in line


def test_map_accuracy_json_still_written_elsewhere(scene):
    rc, out, err = cli(["map-accuracy", "--map", scene["map"], "--points", scene["points"],
                        "--json", os.path.join(scene["out"], "acc.json")])
    assert rc == 0, err
    assert json.loads(Path(scene["out"], "acc.json").read_text())["overall_accuracy"] == 1.0
    assert os.listdir(scene["out"]) == ["acc.json"]


def test_sample_points_over_the_map_is_refused(scene):
    gpkg_map = write_raster(os.path.join(scene["in"], "map_as.gpkg"), np.ones((20, 20), np.uint8))
    _refused(scene, ["sample-points", "--map", gpkg_map, "--output", gpkg_map], "is also an input (the map ")


@pytest.mark.parametrize("flag,key", [("--json", "labels"), ("--json", "map"), ("--output", "labels"),
                                      ("--json", "second")])
def test_suggest_outputs_over_inputs_are_refused(scene, flag, key):
    argv = ["suggest", "--map", scene["map"], "--second", scene["second"], "--labels", scene["labels"],
            "--field", "class", "--output", os.path.join(scene["out"], "s.gpkg"),
            "--json", os.path.join(scene["out"], "s.json")]
    argv[argv.index(flag) + 1] = scene[key]
    _refused(scene, argv, "is also an input (the ", "writing there would overwrite")


def test_grow_polygons_over_the_points_is_refused(scene, tiny_checkpoint):
    _refused(scene, ["grow-polygons", "--optical", scene["optical"], "--sar", scene["sar"], "--points",
                     scene["survey"], "--field", "cover", "--checkpoint", tiny_checkpoint, "--output",
                     scene["survey"]], "polygons path", "is also an input (the points ")


@pytest.mark.parametrize("name", ["summary.json", "summary.md", "summary"])
def test_explain_report_over_the_summary_is_refused(scene, name):
    """--report S.json, S.md (whose JSON twin is S.json), or a summary without extension given as the report."""
    summary = scene["summary"] if name != "summary" else os.path.join(scene["in"], "summary")
    if name == "summary":
        Path(summary).write_text(Path(scene["summary"]).read_text())
    report = os.path.join(scene["in"], name)
    _refused(scene, ["explain", "--summary", summary, "--report", report], "is also an input (the summary ")


# ------------------------------------------------------------------ a folder given as output


def _folder(scene, name="results"):
    d = Path(scene["out"], name)
    d.mkdir()
    (d / "keep.txt").write_text("mine")
    return str(d)


def test_map_accuracy_json_folder_is_refused_and_kept(scene):
    d = _folder(scene, "acc.json")
    line = _refused(scene, ["map-accuracy", "--map", scene["map"], "--points", scene["points"], "--json", d],
                    "is a folder", "give a file name")
    assert os.path.join(d, "report.json") in line and "landcover.tif" not in line
    assert Path(d, "keep.txt").read_text() == "mine"


def test_suggest_json_folder_is_refused(scene):
    d = _folder(scene)
    _refused(scene, ["suggest", "--map", scene["map"], "--second", scene["second"], "--output",
                     os.path.join(scene["out"], "s.gpkg"), "--json", d], "is a folder", ".json")
    assert not os.path.exists(os.path.join(scene["out"], "s.gpkg"))


def test_explain_report_folder_is_refused(scene):
    d = _folder(scene)
    _refused(scene, ["explain", "--summary", scene["summary"], "--report", d], "is a folder", "report.json")


def test_explain_refuses_a_folder_at_the_twin_before_writing_the_json(scene):
    _folder(scene, "r.md")
    _refused(scene, ["explain", "--summary", scene["summary"], "--report", os.path.join(scene["out"], "r.json")],
             "twin path", "is a folder", "report.md")


# ------------------------------------------------------------------ every output checked up front


def test_suggest_checks_the_json_before_writing_the_places(scene):
    line = _refused(scene, ["suggest", "--map", scene["map"], "--second", scene["second"], "--output",
                            os.path.join(scene["out"], "s.gpkg"), "--json",
                            os.path.join(scene["out"], "nodir", "s.json")], "does not exist")
    assert "nodir" in line and not os.path.exists(os.path.join(scene["out"], "s.gpkg"))


def test_suggest_still_writes_both(scene):
    rc, out, err = cli(["suggest", "--map", scene["map"], "--second", scene["second"], "--output",
                        os.path.join(scene["out"], "s.gpkg"), "--json", os.path.join(scene["out"], "s.json")])
    assert rc == 0, err
    assert sorted(os.listdir(scene["out"])) == ["s.gpkg", "s.json"]


# ------------------------------------------------------------------ the atomic writer itself


def test_write_text_refuses_a_folder(tmp_path):
    from claire.claire_plugin.core.io.atomic import write_json, write_text

    d = tmp_path / "out.json"
    d.mkdir()
    (d / "keep.txt").write_text("mine")
    before = tree(tmp_path)
    for write in (lambda: write_text(str(d), "x"), lambda: write_json(str(d), {"a": 1}, "summary")):
        with pytest.raises(ClaireError, match=r"is a folder; give a file name such as .*\.json"):
            write()
    assert tree(tmp_path) == before


def test_commit_refuses_a_folder_made_after_staging(tmp_path):
    """A folder appearing at a final name between staging and commit: nothing renamed, folder untouched."""
    from claire.claire_plugin.core.io.atomic import OutputSet

    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text("old a")
    outputs = OutputSet()
    outputs.add_text(str(first), "new a", "summary")
    outputs.add_text(str(second), "new b", "report")
    second.mkdir()
    (second / "keep.txt").write_text("mine")
    with pytest.raises(ClaireError, match=r"the report path .*b\.json' is a folder"):
        outputs.commit()
    assert first.read_text() == "old a" and (second / "keep.txt").read_text() == "mine"
    assert sorted(tree(tmp_path)) == ["a.json", "b.json", os.path.join("b.json", "keep.txt")]


def test_adopt_refuses_a_folder_and_removes_the_temporary(tmp_path):
    from claire.claire_plugin.core.io.atomic import OutputSet, temp_name

    d = tmp_path / "map.tif"
    d.mkdir()
    tmp = temp_name(str(d), ".tif")
    Path(tmp).write_text("grid")
    with pytest.raises(ClaireError, match=r"is a folder; give a file name such as .*landcover\.tif"):
        OutputSet().adopt(tmp, str(d), "classified map")
    assert sorted(tree(tmp_path)) == ["map.tif"]


def test_backup_never_moves_a_folder(tmp_path):
    from claire.claire_plugin.core.io import atomic

    d = tmp_path / "x"
    d.mkdir()
    with pytest.raises(IsADirectoryError):
        atomic._backup(str(d))
    assert sorted(tree(tmp_path)) == ["x"]


# ------------------------------------------------------------------ the messages


@pytest.mark.parametrize("role,name,example", [
    ("checkpoint", "model.safetensors", "model.safetensors"), ("summary", "run", "summary.json"),
    ("accuracy JSON", "acc", "report.json"), ("places", "next", "places.gpkg"),
    ("output", "map.tif", "landcover.tif"), ("output", "dir", "landcover.tif"),
    ("training polygons", "grown.gpkg", "polygons.gpkg"), ("report", "r.html", "report.html")])
def test_a_folder_gets_an_example_of_its_kind(tmp_path, role, name, example):
    from claire.claire_plugin.core.io.writer import check_output_path

    d = tmp_path / name
    d.mkdir()
    with pytest.raises(ClaireError) as info:
        check_output_path(str(d), [], role)
    assert str(info.value).startswith(f"the {role} path {str(d)!r} is a folder; give a file name such as "
                                      f"{os.path.join(str(d), example)!r}")


def test_the_input_message_reads_for_any_role(tmp_path):
    from claire.claire_plugin.core.io.writer import check_output_path

    labels = tmp_path / "labels.gpkg"
    labels.write_text("x")
    with pytest.raises(ClaireError) as info:
        check_output_path(str(labels), [("labels", str(labels))], "checkpoint")
    text = str(info.value)
    assert "writing there would overwrite the labels, so choose a different checkpoint file name" in text
    assert "so the labels is" not in text
    with pytest.raises(ClaireError, match=r"ends in a separator.*such as '.*report\.json'"):
        check_output_path(str(tmp_path) + os.sep, [], "report")


def test_a_read_only_output_is_refused_not_renamed_over(tmp_path, workdir):  # noqa: F811 - fixture
    """An output file the user made read-only was replaced (written under a temporary name, renamed over it)."""
    from claire.claire_plugin.core.io.writer import check_output_path
    from claire.tests.core.test_bad_inputs import classify_argv
    from claire.tests.fixtures import bad_inputs as C

    kept = tmp_path / "kept.tif"
    kept.write_bytes(b"the user's map")
    os.chmod(kept, 0o444)
    with pytest.raises(ClaireError, match=r"exists and is read-only .*chmod u\+w"):
        check_output_path(str(kept), [], "output")
    tmp, ck = workdir
    args = C._pair(tmp, ck)
    rc, _out, err = cli(classify_argv(dict(args, output=str(kept))))
    assert rc == 2 and "read-only" in err and kept.read_bytes() == b"the user's map"
    os.chmod(kept, 0o644)
    check_output_path(str(kept), [], "output")  # writable again: replaced as before
