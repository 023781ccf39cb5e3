"""Issue 7 through Processing in real QGIS: `processing.run("claire:classify", ...)` with every bad input
raises a QgsProcessingException whose message names the problem and the fix; no output is left (an earlier
file at the output path is untouched); inputs are byte-identical and gain no .aux.xml; nothing runs from a
checkpoint. Cases marked (works) succeed with the right result. Same catalogue as the CLI tests.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

from claire.tests.fixtures import bad_inputs as C

PREVIOUS = b"an earlier output that must survive a failed run\n"



@pytest.fixture(autouse=True)
def _memory_left_is_a_fixed_figure():
    """These cases record the messages users see (docs/bad_inputs.md's table): the machine's own memory figure."""


def alg_params(args: dict) -> dict:
    p = {"OPTICAL": args["optical"], "SAR": args["sar"], "CHECKPOINT": args["checkpoint"], "OUTPUT": args["output"]}
    if args.get("optical_bands"):
        p["OPTICAL_BANDS"] = ",".join(str(i) for i in args["optical_bands"])
    if args.get("sar_bands"):
        p["SAR_BANDS"] = ",".join(str(i) for i in args["sar_bands"])
    if args.get("tile_size") is not None:
        p["TILE_SIZE"] = args["tile_size"]
    if args.get("context") is not None:
        p["CONTEXT"] = args["context"]
    if args.get("batch_size") is not None:
        p["BATCH_SIZE"] = args["batch_size"]
    if args.get("report") is not None:
        p["REPORT"] = args["report"]
    if args.get("sar_units") is not None:
        from claire.claire_plugin.core.inputs.units import SAR_UNITS

        p["SAR_UNITS"] = list(SAR_UNITS).index(args["sar_units"])
    return p


def project_layer(name: str) -> str:
    """Load the raster `name` (a file or a GDAL dataset name) into the project, as the dialog's layer
    list would offer it; return the layer id."""
    from qgis.core import QgsProject, QgsRasterLayer

    from claire.claire_plugin.layers.layers import no_input_sidecars

    with no_input_sidecars():
        layer = QgsRasterLayer(name, os.path.basename(name), "gdal")
    assert layer.isValid(), name
    QgsProject.instance().addMapLayer(layer)
    return layer.id()


def WarningsFeedback():  # noqa: N802 - a class made when QGIS is up
    """A Processing feedback that keeps what was pushed as a warning (in `.warnings`)."""
    from qgis.core import QgsProcessingFeedback

    class Feedback(QgsProcessingFeedback):
        def __init__(self) -> None:
            super().__init__()
            self.warnings = []

        def pushWarning(self, text: str) -> None:  # noqa: N802
            self.warnings.append(text)
            super().pushWarning(text)

    return Feedback()


def run_alg(alg_id: str, params: dict, feedback=None):
    """(results, None) or (None, message of the QgsProcessingException)."""
    import processing
    from qgis.core import QgsProcessingException

    try:
        return processing.run(alg_id, params, feedback=feedback), None
    except QgsProcessingException as exc:
        return None, str(exc)


def assert_inputs_untouched(before: dict, after: dict) -> None:
    b = {k: v for k, v in before.items() if k.startswith("in" + os.sep)}
    a = {k: v for k, v in after.items() if k.startswith("in" + os.sep)}
    assert a == b


@pytest.mark.parametrize("case_id", C.case_ids())
def test_alg_case(case_id, claire_plugin, workdir):
    case = C.by_id(case_id)
    if case.cli_only:
        pytest.skip(case.note)
    tmp, ck = workdir
    args = case.build(tmp, ck)
    out = args["output"]
    if case.expect == "error" and os.path.isdir(os.path.dirname(out)) and not os.path.exists(out):
        Path(out).write_bytes(PREVIOUS)
    params = alg_params(args)
    if case.as_layers:
        params.update(OPTICAL=project_layer(args["optical"]), SAR=project_layer(args["sar"]))
    before = C.snapshot(tmp)
    try:
        feedback = WarningsFeedback()
        results, message = run_alg("claire:classify", params, feedback)
    finally:
        if case.as_layers:
            from qgis.core import QgsProject

            QgsProject.instance().removeMapLayers([params["OPTICAL"], params["SAR"]])
    after = C.snapshot(tmp)
    assert_inputs_untouched(before, after)
    if args.get("marker"):
        assert not os.path.exists(args["marker"]), "code from the checkpoint ran"
    if case.expect == "error":
        C.assert_processing_refusal(case, case_id, results, message, before, after, tmp)
        if case_id == "out_folder_missing":
            assert not os.path.exists(os.path.dirname(out))
    else:
        assert message is None, message
        assert results["OUTPUT"] == out
        new = {str(tmp / k) for k in set(after) - set(before)}
        assert out in new and new <= C.output_sidecars(out), new
        C.check_works(args, out)
        import rasterio

        with rasterio.open(out) as ds:
            v = ds.read(1)
        if case.warns:
            assert any(re.search(case.warns, w) for w in feedback.warnings), feedback.warnings
        C.record("Processing", case_id, "works", " ".join([f"{int((v != 0).sum())} of {v.size} pixels classified"]
                                                          + feedback.warnings), tmp)


def test_alg_disk_full_mid_write(claire_plugin, workdir, monkeypatch):
    from claire.claire_plugin.core.io import writer

    tmp, ck = workdir
    args = C._pair(tmp, ck)
    Path(args["output"]).write_bytes(PREVIOUS)
    before = C.snapshot(tmp)
    original = writer.GridWriter.__init__

    def init(self, *a, **k):
        original(self, *a, **k)
        self.band = C.DiskFills(self.band)

    monkeypatch.setattr(writer.GridWriter, "__init__", init)
    results, message = run_alg("claire:classify", alg_params(args))
    C.record("Processing", "disk_full", "QgsProcessingException", message or "", tmp)
    assert results is None and "disk is full" in message and "free some disk space" in message
    assert C.snapshot(tmp) == before


def test_alg_cancel_mid_run(claire_plugin, workdir):
    """The feedback is cancelled at the first progress report after a tile: no output, nothing left."""
    from qgis.core import QgsProcessingFeedback

    tmp, ck = workdir
    args = C._pair(tmp, ck, tile_size=32, context=0)
    Path(args["output"]).write_bytes(PREVIOUS)
    before = C.snapshot(tmp)
    feedback = QgsProcessingFeedback()
    seen = []

    def on_progress(p):
        seen.append(p)
        if p > 0:
            feedback.cancel()

    feedback.progressChanged.connect(on_progress)
    params = dict(alg_params(args), BATCH_SIZE=1)
    results, message = run_alg("claire:classify", params, feedback)
    C.record("Processing", "cancel", "QgsProcessingException", message or "", tmp)
    assert any(p > 0 for p in seen), "cancelled mid-run, after a tile"
    assert results is None and "Cancelled by the user; no output was written" in message
    assert C.snapshot(tmp) == before


# ------------------------------------------------------------------ batch: claire:classify_folder
def _folders(tmp: Path, names_opt, names_sar, broken=()):
    return tuple(str(d) for d in C.batch_folders(tmp, names_opt, names_sar, broken))


def _batch(tmp, ck, opt_dir, sar_dir):
    return run_alg("claire:classify_folder", {"OPTICAL_FOLDER": opt_dir, "SAR_FOLDER": sar_dir,
                                              "OUTPUT_FOLDER": str(tmp / "out" / "batch"), "CHECKPOINT": ck})


def test_alg_batch_empty_folder(claire_plugin, workdir):
    tmp, ck = workdir
    opt_dir, sar_dir = _folders(tmp, [], ["a.tif"])
    (Path(opt_dir) / "readme.txt").write_text("stray file\n")
    before = C.snapshot(tmp)
    results, message = _batch(tmp, ck, opt_dir, sar_dir)
    C.record("Processing", "batch_empty", "QgsProcessingException" if message else "no error", message or "", tmp)
    assert results is None, results
    assert "contains no raster files" in message and "put the optical rasters there" in message
    assert C.snapshot(tmp) == before and not (tmp / "out" / "batch").exists()


def test_alg_batch_unmatched_are_reported_and_the_rest_processed(claire_plugin, workdir):
    tmp, ck = workdir
    opt_dir, sar_dir = _folders(tmp, ["a.tif", "b.tif"], ["a.tif", "c.tif"])
    before = C.snapshot(tmp)
    results, message = _batch(tmp, ck, opt_dir, sar_dir)
    assert message is None, message
    unmatched = json.loads(results["UNMATCHED_FILES"])
    C.record("Processing", "batch_unmatched", "works",
             f"PAIRS {results['PAIRS']}, SUCCEEDED {results['SUCCEEDED']}, UNMATCHED {results['UNMATCHED']}: "
             + "; ".join(f"{os.path.basename(u['path'])} ({u['side']}): {u['reason']}" for u in unmatched), tmp)
    assert (results["PAIRS"], results["SUCCEEDED"], results["FAILED"], results["UNMATCHED"]) == (1, 1, 0, 2)
    assert {(os.path.basename(u["path"]), u["side"]) for u in unmatched} == {("b.tif", "optical"), ("c.tif", "sar")}
    assert_inputs_untouched(before, C.snapshot(tmp))
    out = tmp / "out" / "batch"
    assert sorted(p.name for p in out.glob("*.tif")) == ["a_landcover.tif"]


def test_alg_batch_one_broken_pair_among_good_ones(claire_plugin, workdir):
    tmp, ck = workdir
    opt_dir, sar_dir = _folders(tmp, ["a.tif", "b.tif", "c.tif"], ["a.tif", "b.tif", "c.tif"], broken=("b.tif",))
    before = C.snapshot(tmp)
    results, message = _batch(tmp, ck, opt_dir, sar_dir)
    assert message is None, message
    failures = json.loads(results["FAILURES"])
    C.record("Processing", "batch_broken", "works",
             f"SUCCEEDED {results['SUCCEEDED']}, FAILED {results['FAILED']}: "
             + "; ".join(f"{os.path.basename(f['optical'])}: {f['reason']}" for f in failures), tmp)
    assert (results["PAIRS"], results["SUCCEEDED"], results["FAILED"]) == (3, 2, 1)
    assert [os.path.basename(f["optical"]) for f in failures] == ["b.tif"]
    assert "is not a raster GDAL can read" in failures[0]["reason"] and "Traceback" not in failures[0]["reason"]
    assert_inputs_untouched(before, C.snapshot(tmp))
    out = tmp / "out" / "batch"
    assert sorted(p.name for p in out.glob("*.tif")) == ["a_landcover.tif", "c_landcover.tif"]
    assert not [p for p in out.iterdir() if "partial" in p.name]
    for name in ("a", "c"):
        C.check_works({"optical": os.path.join(opt_dir, f"{name}.tif"), "nodata_mask": np.zeros((24, 30), bool)},
                      str(out / f"{name}_landcover.tif"))


def test_alg_batch_every_pair_failed_is_an_error(claire_plugin, workdir):
    """A batch that classified nothing fails (exit status 1 in qgis_process) instead of reporting success with
    a count of failures; the summary with each pair's reason stays for the user."""
    tmp, ck = workdir
    opt_dir, sar_dir = _folders(tmp, ["a.tif", "b.tif"], ["a.tif", "b.tif"], broken=("a.tif", "b.tif"))
    before = C.snapshot(tmp)
    results, message = _batch(tmp, ck, opt_dir, sar_dir)
    assert results is None, results
    assert "None of the 2 pair(s) could be classified" in message and "is not a raster GDAL can read" in message
    assert "batch_summary" in message or ".json" in message, message
    assert_inputs_untouched(before, C.snapshot(tmp))
    assert not list((tmp / "out" / "batch").glob("*.tif"))


def test_alg_batch_wrong_shared_setting_is_one_message_before_any_pair(claire_plugin, workdir):
    """A tile size or checkpoint that no pair can use is refused once, up front: no pair runs, nothing written."""
    tmp, ck = workdir
    opt_dir, sar_dir = _folders(tmp, ["a.tif", "b.tif"], ["a.tif", "b.tif"])
    fake = tmp / "fake.safetensors"
    fake.write_text("not a checkpoint\n")
    for extra, expected in (({"TILE_SIZE": 50}, "tile size 50 is not a multiple of 32"),
                            ({"CHECKPOINT": str(fake)}, "safetensors"),
                            ({"LEVEL": 1}, "this checkpoint has no macroclasses")):
        params = {"OPTICAL_FOLDER": opt_dir, "SAR_FOLDER": sar_dir, "OUTPUT_FOLDER": str(tmp / "out" / "batch"),
                  "CHECKPOINT": ck, **extra}
        results, message = run_alg("claire:classify_folder", params)
        assert results is None and expected in message, (extra, message)
        assert "[1/2]" not in message and not (tmp / "out" / "batch").exists(), message
