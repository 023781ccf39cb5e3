"""Bad options and inputs of `claire evaluate` and `claire train`, third QA round: each is refused with one
`claire: error:` line naming the problem and the fix (no traceback, no output written, inputs unchanged) -
a truncated or band-short raster of a data folder, a split name argparse does not know, a file given as the
data folder, options of the other training mode, class codes that are not whole numbers, a missing name field,
a checkpoint named .tif, and checkpoint messages that send the user to developer tools."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from claire.claire_plugin.core.errors import ClaireError
from claire.tests.core.test_bad_inputs import cli, error_line
from claire.tests.fixtures import bad_inputs as C
from claire.tests.fixtures.bad_inputs_19 import training_scene
from claire.tests.fixtures.bad_inputs_train import FAST, folder
from claire.tests.fixtures.helpers import write_raster

torch.set_num_threads(1)
BANDS = ["--optical-bands", "1,2,3,4,5,6,7,8,9,10"]  # the tiny checkpoint's 10 optical bands of the 12


def _evaluate(ck: str, data, *extra) -> list:
    return ["evaluate", "--checkpoint", ck, "--data", data, "--split", "all", *extra]


def _refused(argv, tmp: Path) -> str:
    """Run `claire ARGV`; assert exit status 2, one error line, no file changed or added; the line."""
    before = C.snapshot(tmp)
    rc, _, stderr = cli(argv)
    line = error_line(stderr)
    assert rc == 2, stderr
    assert C.snapshot(tmp) == before, "a refused run changed or left files"
    return line


# ------------------------------------------------------------------ evaluate: the data folder
def test_truncated_raster_is_named(workdir):
    tmp, ck = workdir
    data = folder(tmp)
    path = os.path.join(data, "optical", "b.tif")
    with open(path, "rb") as fh:
        head = fh.read(os.path.getsize(path) * 6 // 10)
    with open(path, "wb") as fh:
        fh.write(head)  # `head -c`: an interrupted copy
    line = _refused(_evaluate(ck, data, *BANDS), tmp)
    assert "b.tif" in line and "truncated or damaged" in line and "download it again" in line, line


def test_raster_truncated_after_listing_is_named_at_the_read(workdir):
    """A file that fails only when its pixels are read (here cut after the pairs were listed) is a ClaireError
    naming it, not rasterio's RasterioIOError."""
    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.core.training.datasets import ClassDef, RasterPairSource, list_pairs

    tmp, _ = workdir
    pairs = list_pairs(folder(tmp), "generic", "all")
    src = RasterPairSource(pairs, [ClassDef(v, str(v)) for v in (1, 2, 3)])
    with open(pairs[0].sar, "r+b") as fh:
        fh.truncate(os.path.getsize(pairs[0].sar) // 2)
    with pytest.raises(ClaireError, match=r"a\.tif.*truncated or damaged.*download it again"):
        src.read(pairs[0], 0, 0, 48, 64)
    src.close()


@pytest.mark.parametrize("flag,value,problem", [
    ("--optical-bands", "1,2,3,4,5,6,7,8,9,99", "optical band index 99 is out of range"),
    ("--sar-bands", "5", "SAR band index 5 is out of range")])
def test_band_index_beyond_the_files_bands(workdir, flag, value, problem):
    tmp, ck = workdir
    extra = [flag, value] + (BANDS if flag == "--sar-bands" else [])
    line = _refused(_evaluate(ck, folder(tmp), *extra), tmp)
    have = "12" if flag == "--optical-bands" else "2"
    assert problem in line and f"has {have} band(s), numbered 1..{have}; fix {flag}" in line, line


def test_one_sample_with_fewer_sar_bands_is_refused(workdir):
    """One SAR raster of one band among rasters of two: evaluate printed metrics without a word."""
    tmp, ck = workdir
    data = folder(tmp)
    path = os.path.join(data, "sar", "b.tif")
    import rasterio

    with rasterio.open(path) as ds:
        vv = ds.read(1)
    os.remove(path)
    write_raster(path, vv, descriptions=["VV"])
    line = _refused(_evaluate(ck, data, *BANDS), tmp)
    assert "the SAR rasters do not all have the same bands" in line and "b.tif has 1 band(s)" in line, line
    assert "re-create b.tif with its 2 bands" in line and "--sar-bands" in line, line
    line = _refused(["train", "--data", data, "--output", str(tmp / "out" / "m.safetensors"), *FAST, *BANDS], tmp)
    assert "the SAR rasters do not all have the same bands" in line, line


def test_every_sample_with_fewer_bands_than_the_checkpoint_needs(workdir):
    tmp, ck = workdir
    line = _refused(_evaluate(ck, folder(tmp, sar=lambda s: s[:1], sar_descriptions=("VV",)), *BANDS), tmp)
    assert "the SAR rasters of" in line and "give 1 band(s) but the checkpoint needs 2" in line, line
    assert "pass --sar-bands" in line, line


def test_unknown_split_is_refused_by_argparse(workdir):
    tmp, ck = workdir
    rc, _, stderr = cli(_evaluate(ck, folder(tmp)) + ["--split", "tests"])
    assert rc == 2 and "invalid choice: 'tests'" in stderr and all(x in stderr for x in ("val", "test", "train", "all")), \
        stderr


def test_a_file_as_the_data_folder(workdir):
    tmp, ck = workdir
    data = folder(tmp)
    path = os.path.join(data, "optical", "a.tif")
    line = _refused(["evaluate", "--checkpoint", ck, "--data", path], tmp)
    assert f"the data path {path} is a file, not a folder" in line and "does not exist" not in line, line
    line = _refused(["evaluate", "--checkpoint", ck, "--data", path, "--layout", "generic"], tmp)
    assert "is a file, not a folder" in line, line


# ------------------------------------------------------------------ train: options and labels
def _polygons(tmp: Path, ck: str, *extra) -> list:
    d = training_scene(tmp)
    return ["train", "--optical", d["optical"], "--sar", d["sar"], "--labels", d["labels"], "--field", "class",
            "--checkpoint", ck, "--output", str(tmp / "out" / "m.safetensors"), "--no-baseline", *FAST[2:], *extra]


@pytest.mark.parametrize("extra,instead", [
    (["--ignore", "x"], "leave the ones to ignore out of the layer"),
    (["--holdout", "0.3"], "--val-share"),
    (["--size", "base"], "the network is the one of --checkpoint"),
    (["--half"], "it has no such setting")])
def test_folder_options_with_labels_are_refused(workdir, extra, instead):
    tmp, ck = workdir
    line = _refused(_polygons(tmp, ck, *extra), tmp)
    assert f"{extra[0]} belongs to training from a label folder (--data) and would be ignored with --labels" \
        in line and instead in line and f"Drop {extra[0]}." in line, line


@pytest.mark.parametrize("extra,instead", [(["--val-share", "0.2"], "--holdout"),
                                           (["--field", "class"], "--classes"),
                                           (["--report", "r.json"], "claire info")])
def test_polygon_options_with_data_are_refused(workdir, extra, instead):
    tmp, _ = workdir
    argv = ["train", "--data", folder(tmp), "--output", str(tmp / "out" / "m.safetensors"), *FAST, *extra]
    line = _refused(argv, tmp)
    assert f"{extra[0]} belongs to training from your polygons or points" in line and instead in line, line


def test_classes_with_vector_labels_are_refused_naming_the_name_field(workdir):
    """--classes names a label raster's codes (tests/core/test_label_raster_names.py); with polygons it would be
    ignored: refused, pointing to --name-field."""
    tmp, ck = workdir
    line = _refused(_polygons(tmp, ck, "--classes", "foo:bar"), tmp)
    assert "--classes names the codes of a label raster" in line and "are a vector layer" in line, line
    assert "the values of --field" in line and "--name-field" in line and "drop --classes" in line, line


def _with_real_field(labels: str, values) -> None:
    """Add a floating-point field `code` to the labels' features (values in feature order)."""
    from osgeo import ogr

    ds = ogr.Open(labels, 1)
    lyr = ds.GetLayer(0)
    lyr.CreateField(ogr.FieldDefn("code", ogr.OFTReal))
    for feat, v in zip(list(lyr), values):
        feat.SetField("code", float(v))
        lyr.SetFeature(feat)
    ds = None


@pytest.mark.parametrize("values", [[4.0, 4.37, 4.74], [4.37, 4.74, 5.5]])
def test_class_codes_that_are_not_whole_numbers(workdir, values):
    """4, 4.37 and 4.74 were called 'numbers and names'; 4.37, 4.74, 5.5 became three class names."""
    tmp, ck = workdir
    argv = _polygons(tmp, ck)
    labels = argv[argv.index("--labels") + 1]
    _with_real_field(labels, [values[i % 3] for i in range(12)])
    argv[argv.index("--field") + 1] = "code"
    line = _refused(argv, tmp)
    assert "field 'code' holds numbers that are not whole (e.g. 4.37)" in line, line
    assert "class codes are whole numbers 0..254" in line and "mixes" not in line, line


def test_classes_from_values_keeps_whole_floats_and_real_mixes():
    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.core.training.labels import classes_from_values

    assert [c.code for c in classes_from_values([4.0, 9.0, 4.0], [None] * 3, "class")] == [4, 9]
    with pytest.raises(ClaireError, match="mixes numbers and names"):
        classes_from_values([4, "water"], [None, None], "class")


def test_missing_name_field_names_the_option(workdir):
    tmp, ck = workdir
    argv = _polygons(tmp, ck)
    line = _refused(argv + ["--name-field", "nom"], tmp)
    assert line.startswith("claire: error: --name-field nom: ") and "have no field 'nom'" in line, line
    assert "its fields are class" in line, line
    argv[argv.index("--field") + 1] = "klass"
    line = _refused(argv, tmp)
    assert "have no field 'klass'; their fields are" in line and "give the one holding the class as --field" in line


@pytest.mark.parametrize("mode", ["labels", "data"])
def test_checkpoint_named_tif_is_refused(workdir, mode):
    tmp, ck = workdir
    out = str(tmp / "out" / "e.tif")
    if mode == "labels":
        argv = _polygons(tmp, ck)
        argv[argv.index("--output") + 1] = out
    else:
        argv = ["train", "--data", folder(tmp), "--output", out, *FAST]
    line = _refused(argv, tmp)
    assert f"the new checkpoint {out} ends in .tif" in line and str(tmp / "out" / "e.safetensors") in line, line


def test_output_name_rule():
    from claire.models.checkpoint import CheckpointError, check_output_name

    for ok in ("m.safetensors", "M.SAFETENSORS", "model", "dir.v2/model.safetensors"):
        check_output_name(ok)
    for bad in ("e.tif", "m.pt", "m.safetensors.bak"):
        with pytest.raises(CheckpointError, match="give a name ending in .safetensors"):
            check_output_name(bad)


# ------------------------------------------------------------------ checkpoint messages: what a user can do
DEVELOPER = ("save_checkpoint", "claire.models", "make checkpoint")


def _rewritten(ck: str, out: Path, metadata: dict) -> str:
    from safetensors.torch import load_file, save_file

    save_file(load_file(ck), str(out), metadata=metadata)
    return str(out)


def _cases(tmp: Path, ck: str):
    from claire.models.checkpoint import CARD_KEY, read_card

    card = read_card(ck)
    zero_std = json.loads(json.dumps(card))
    zero_std["inputs"]["sar"]["std"][1] = 0
    no_arch = {k: v for k, v in card.items() if k != "arch"}
    return {
        "foreign": (_rewritten(ck, tmp / "in" / "foreign.safetensors", {}), "claire train"),
        "bad_json": (_rewritten(ck, tmp / "in" / "badjson.safetensors", {CARD_KEY: '{"arch": "cl'}),
                     "not valid JSON"),
        "zero_std": (_rewritten(ck, tmp / "in" / "zero.safetensors", {CARD_KEY: json.dumps(zero_std)}),
                     "Re-save the checkpoint by training it again with `claire train`"),
        "no_arch": (_rewritten(ck, tmp / "in" / "noarch.safetensors", {CARD_KEY: json.dumps(no_arch)}),
                    "claire train"),
    }


def test_checkpoint_messages_name_no_developer_tool(workdir):
    tmp, ck = workdir
    scene = training_scene(tmp)
    for name, (path, fix) in _cases(tmp, ck).items():
        for argv in (["info", path], ["classify", "--optical", scene["optical"], "--sar", scene["sar"],
                                      "--checkpoint", path, "--output", str(tmp / "out" / "m.tif")]):
            rc, _, stderr = cli(argv)
            line = error_line(stderr)
            assert rc == 2 and fix in line, (name, line)
            assert not [w for w in DEVELOPER if w in line], (name, line)


def test_missing_default_checkpoint_says_reinstall(workdir, monkeypatch):
    from claire.claire_plugin.cli import info

    tmp, _ = workdir
    monkeypatch.setattr(info, "DEFAULT_CHECKPOINT", str(tmp / "gone.safetensors"))
    rc, _, stderr = cli(["info"])
    line = error_line(stderr)
    assert rc == 2 and "reinstall the plugin" in line and "make checkpoint" not in line, line
    rc, _, stderr = cli(["info", str(tmp / "nope.safetensors")])
    assert rc == 2 and "does not exist; check the path" in error_line(stderr)


def test_padded_read_matches_a_boundless_read():
    """The padded read gives the rasterio boundless read's values: fill outside, pixels inside."""
    from claire.claire_plugin.core.training.datasets import _read_padded

    class Fake:
        height, width, name, dtypes = 3, 4, "fake", ("float32",)

        def read(self, indexes, window, out_dtype=None):
            rows, cols = window.toslices()
            full = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
            return full[:, rows, cols].astype(out_dtype)

    out = _read_padded(Fake(), [1], -1, 2, 3, 4, np.nan, np.float32)
    assert out.shape == (1, 3, 4)
    assert np.isnan(out[0, 0]).all() and np.isnan(out[0, :, 2:]).all()
    assert out[0, 1:, :2].tolist() == [[2.0, 3.0], [6.0, 7.0]]


def test_grow_polygons_points_that_do_not_exist_are_named(tmp_path):
    (tmp_path / "in").mkdir()
    s = training_scene(tmp_path)
    missing = str(tmp_path / "in" / "survey.gpkg")
    line = _refused(["grow-polygons", "--optical", s["optical"], "--sar", s["sar"], "--points", missing,
                     "--field", "class", "--output", str(tmp_path / "grown.gpkg")], tmp_path)
    assert f"the labels {missing!r} do not exist" in line and "check the path" in line, line


@pytest.mark.parametrize("args, words", [(["--tile", "0"], "--tile 0: give a multiple of 32"),
                                         (["--tile", "100000"], "from 32 to 2048"),
                                         (["--sizes", "abc"], "--sizes 'abc': give model sizes among tiny")])
def test_models_refuses_sizes_and_tiles_it_cannot_profile(tmp_path, args, words):
    line = _refused(["models", *args], tmp_path)
    assert words in line, line


def test_bench_refuses_a_size_beyond_its_largest(tmp_path):
    line = _refused(["bench", "--sizes", "100000,1024", "--folder", str(tmp_path / "bench")], tmp_path)
    assert "--sizes needs sizes from 64 to 20000 pixels" in line, line


def test_output_piped_into_a_closed_reader_stops_quietly(monkeypatch, capsys):
    """`claire map-accuracy ... | head -1`: the reader goes away, the next write raises BrokenPipeError; the
    command stops with 128 + SIGPIPE, as Unix tools do, and no traceback."""
    import signal
    import sys

    from claire.claire_plugin.cli.main import main

    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["info"]) == 128 + int(signal.SIGPIPE)
    assert "Traceback" not in capsys.readouterr().err


def test_info_takes_the_checkpoint_as_an_option_too(workdir):
    """`claire info --checkpoint X`, as every other command names it, beside the positional form; two different
    checkpoints are refused."""
    tmp, _ = workdir
    rc, positional, _ = cli(["info", "--json"])
    assert rc == 0
    from claire.claire_plugin.paths import DEFAULT_CHECKPOINT

    rc, option, _ = cli(["info", "--json", "--checkpoint", DEFAULT_CHECKPOINT])
    assert rc == 0 and json.loads(option) == json.loads(positional)
    rc, _, stderr = cli(["info", "--checkpoint", str(tmp / "nope.safetensors")])
    assert rc == 2 and "does not exist; check the path" in error_line(stderr)
    rc, _, stderr = cli(["info", DEFAULT_CHECKPOINT, "--checkpoint", str(tmp / "other.safetensors")])
    assert rc == 2 and "two checkpoints given" in error_line(stderr), stderr


def test_a_closed_stderr_keeps_warnings_out_of_the_json_on_stdout():
    """`claire ... --json 2>&-`: Python starts with sys.stderr None and print(file=None) writes to stdout, so a
    warning landed inside the JSON document; main() now opens /dev/null as stderr and stdout stays valid JSON."""
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    warn = "print('claire: warning: late', file=sys.stderr)"
    script = f"import sys; from claire.claire_plugin.cli import main as m; rc = m.main(['info', '--json']); {warn}; " \
             "sys.exit(rc)"

    def run(code: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env, timeout=300,
                              preexec_fn=lambda: os.close(2))

    done = run(script)
    assert done.returncode == 0 and json.loads(done.stdout)["arch"], done.stdout[-300:]
    unguarded = run(f"import sys; {warn}")  # what happens without the guard
    assert "claire: warning: late" in unguarded.stdout


def test_cards_the_schema_accepts_are_shown_and_classify(workdir):
    """QA round 18 (review): a card with "context": null (the schema allows it: the default) stopped `claire info`
    and `claire classify` with a TypeError (exit 3), and a held-out count written as text ("3 of 10") stopped
    `claire info` with a ValueError."""
    from claire.tests.fixtures.bad_inputs_19 import _rewritten_checkpoint

    tmp, ck = workdir
    null = _rewritten_checkpoint(tmp, ck, "null_context.safetensors", card=lambda c: c.update(context=None))
    rc, out, stderr = cli(["info", null["checkpoint"]])
    assert rc == 0 and "each read with" in out, stderr
    rc, _, stderr = cli(["classify", "--optical", null["optical"], "--sar", null["sar"], "--checkpoint",
                         null["checkpoint"], "--output", null["output"], "--threads", "1"])
    assert rc == 0 and os.path.exists(null["output"]), stderr

    def text_count(c):
        c.setdefault("training", {})["split"] = {"kind": "polygons", "per_class": {"a": {"val_polygons": "3 of 10"}}}

    odd = _rewritten_checkpoint(tmp, ck, "text_count.safetensors", card=text_count)
    rc, out, stderr = cli(["info", odd["checkpoint"]])
    assert rc == 0 and "held out      whole polygons" in out, (out, stderr)

    def true_count(c):
        c.setdefault("training", {})["split"] = {"kind": "polygons", "per_class": {"a": {"val_polygons": True}}}

    flag = _rewritten_checkpoint(tmp, ck, "true_count.safetensors", card=true_count)
    rc, out, stderr = cli(["info", flag["checkpoint"]])
    assert rc == 0 and "held out      whole polygons" in out and "1 whole" not in out, (out, stderr)


def test_reports_named_like_other_files_are_refused_before_any_work(workdir):
    """QA round 20: a report or JSON output named like a raster or checkpoint was written over it (a training's
    report over another model, map-accuracy's JSON over a GeoTIFF)."""
    tmp, ck = workdir
    other = tmp / "other.safetensors"
    other.write_bytes(Path(ck).read_bytes())
    line = _refused(_polygons(tmp, ck, "--report", str(other)), tmp)
    assert "the training report" in line and "does not end in .json" in line and "other.json" in line, line
    disguised = tmp / "model.json"  # a binary file behind the right ending: refused before the training too
    disguised.write_bytes(Path(ck).read_bytes())
    line = _refused(_polygons(tmp, ck, "--report", str(disguised)), tmp)
    assert "the training report would replace" in line and "model.json', which is not a text file" in line, line
    assert "epoch" not in cli(_polygons(tmp, ck, "--report", str(disguised)))[2]  # before any training
    d = training_scene(tmp)
    other_map = tmp / "other_map.tif"
    other_map.write_bytes(Path(d["optical"]).read_bytes())
    line = _refused(["map-accuracy", "--map", d["optical"], "--points", d["labels"], "--json", str(other_map)], tmp)
    assert "the accuracy JSON" in line and "does not end in .json" in line, line


def test_a_text_output_never_replaces_a_binary_file(tmp_path):
    """The last line of defence behind the names: whatever a text output is called, it replaces no raster."""
    from claire.claire_plugin.core.io.atomic import refuse_binary, write_json, write_text

    raster = tmp_path / "scene.json"  # a name that passes every suffix check
    raster.write_bytes(b"II*\x00" + bytes(100))
    with pytest.raises(ClaireError, match="the report would replace .*scene.json', which is not a text file"):
        write_json(str(raster), {"a": 1}, "report")
    assert raster.read_bytes().startswith(b"II*\x00")
    text = tmp_path / "old.json"
    text.write_text('{"old": true}', encoding="utf-8")
    write_text(str(text), "{}", "report")  # an earlier text output is replaced as before
    assert text.read_text(encoding="utf-8") == "{}"
    refuse_binary(str(tmp_path / "missing.json"))
    utf16 = tmp_path / "notes.json"  # review: UTF-16 text holds NULs too, and is text
    utf16.write_text("old notes", encoding="utf-16")
    write_text(str(utf16), "{}", "summary")
    assert utf16.read_text(encoding="utf-8") == "{}"


def test_a_summary_over_a_binary_file_is_refused_before_the_map_is_made(workdir):
    """Review of QA round 20: `--summary old_map.tif` was refused only when the outputs were committed, after the
    whole classification, and the map was thrown away."""
    import shutil

    tmp, ck = workdir
    d = training_scene(tmp)
    shutil.copy(d["optical"], tmp / "old_map.tif")
    argv = ["classify", "--optical", d["optical"], "--sar", d["sar"], "--checkpoint", ck, *BANDS,
            "--output", str(tmp / "lc.tif"), "--summary", str(tmp / "old_map.tif")]
    line = _refused(argv, tmp)
    assert "the summary would replace" in line and "old_map.tif', which is not a text file" in line, line
    assert "tile" not in cli(argv)[2]  # no tile was classified first


def test_a_twelve_band_level2a_folder_is_read_by_its_layout_as_classify_reads_it(workdir):
    """QA round 21: `claire evaluate` refused a folder of 12-band Level-2A stacks that classify and training read
    (known layout by band count), asking for --optical-bands; it now picks the checkpoint's bands as they do, says
    so, and scores what the explicit band list of the same bands scores."""
    tmp, ck = workdir
    data = folder(tmp)
    rc, out, err = cli(_evaluate(ck, data, "--json"))
    assert rc == 0, err
    assert "note: optical bands 2->B02, 3->B03" in err and "known layout by band count" in err, err
    rc, same, err2 = cli(_evaluate(ck, data, "--json", "--optical-bands", "2,3,4,5,6,7,8,9,11,12"))
    assert rc == 0 and "known layout" not in err2, err2
    assert json.loads(out)["confusion"] == json.loads(same)["confusion"]


def test_a_folder_whose_images_stack_their_bands_otherwise_is_refused_naming_both(workdir):
    """Review of round 21: the bands were chosen on the first image and applied to every image: a second image with
    the same bands named in reverse order was read in the wrong order without a word."""
    import rasterio

    tmp, ck = workdir
    data = folder(tmp)
    path = os.path.join(data, "optical", "b.tif")
    with rasterio.open(path) as ds:
        bands = ds.read()
    os.remove(path)
    names = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
    write_raster(path, bands[::-1].copy(), descriptions=names[::-1])
    line = _refused(_evaluate(ck, data), tmp)
    assert "the optical rasters of the folder hold their bands in different orders" in line, line
    assert "a.tif gives bands 2,3,4,5,6,7,8,9,11,12" in line and "b.tif gives bands 11,10,9,8,7,6,5,4,2,1" in line
    assert "--optical-bands" in line


def test_a_folder_stacked_in_another_order_by_position_fails_the_spectral_tests(workdir):
    """Bands placed by position get classify's spectral tests in evaluate too: a bundled Level-2A site stacked with
    its 10 m bands first (as Earth Engine's select stacks them) is refused naming --optical-bands."""
    import shutil

    import rasterio

    from claire.claire_plugin.paths import DEFAULT_CHECKPOINT, resource

    tmp, _ = workdir
    site = resource("data", "terramesh")
    name = sorted(os.listdir(os.path.join(site, "S2L2A")))[0]
    data = tmp / "in" / "site"
    for sub in ("optical", "sar", "labels"):
        (data / sub).mkdir(parents=True)
    with rasterio.open(os.path.join(site, "S2L2A", name)) as ds:
        bands, profile = ds.read(), ds.profile
    order = [2, 3, 4, 8, 1, 5, 6, 7, 9, 10, 11, 12]  # B02 B03 B04 B08 first, then the rest
    with rasterio.open(data / "optical" / name, "w", **profile) as out:
        out.write(bands[[i - 1 for i in order]])
    shutil.copy(os.path.join(site, "S1RTC", name), data / "sar" / name)
    shutil.copy(os.path.join(site, "LULC", name), data / "labels" / name)
    line = _refused(_evaluate(DEFAULT_CHECKPOINT, str(data)), tmp)
    assert "were read by position" in line and "stacked in another order" in line and "--optical-bands" in line, line


def test_a_folder_whose_sar_holds_a_third_band_is_read_by_the_band_names(workdir):
    """Mutation check of round 21: the SAR side of the folder's band choice had no test (VV, VH and a ratio band)."""
    tmp, ck = workdir
    data = folder(tmp, sar=lambda s: np.concatenate([s, s[:1] - s[1:2]]), sar_descriptions=("VV", "VH", "VV-VH"))
    rc, out, err = cli(_evaluate(ck, data, "--json", *BANDS))
    assert rc == 0 and "note: SAR bands 1->VV, 2->VH" in err, err
    rc, same, _ = cli(_evaluate(ck, data, "--json", *BANDS, "--sar-bands", "1,2"))
    assert rc == 0 and json.loads(out)["confusion"] == json.loads(same)["confusion"]
