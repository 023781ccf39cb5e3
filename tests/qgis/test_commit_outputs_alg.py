"""Issue 19 classes 2 and 1 through Processing in real QGIS: a full disk while committing or writing any output
gives one QgsProcessingException and leaves no new file and every earlier file intact; training checkpoints
and reports, batch summaries and evaluation reports are checked before any work. The cases are listed in
tests/fixtures/bad_inputs_19.py (EXTRA_19); the CLI twins are in tests/core/test_commit_outputs.py."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from claire.tests.fixtures import bad_inputs as C
from claire.tests.fixtures import bad_inputs_19 as D
from claire.tests.qgis.test_bad_inputs_alg import PREVIOUS, alg_params, run_alg

torch.set_num_threads(1)

FAST = {"EPOCHS": 1, "STEPS_PER_EPOCH": 1, "BATCH_SIZE": 2, "CROP": 64, "RF_TREES": 0, "DEVICE": 1}


def _partials(root: Path) -> list:
    return [str(p) for p in root.rglob("*") if ".partial" in p.name]


def test_alg_report_rename_fails_after_the_map_was_renamed(claire_plugin, workdir, monkeypatch):
    tmp, ck = workdir
    args = C._pair(tmp, ck)
    report = str(tmp / "out" / "report.json")
    for p in (args["output"], report):
        Path(p).write_bytes(PREVIOUS)
    before = C.snapshot(tmp)
    D.full_disk_at_rename(monkeypatch, "report.md")
    results, message = run_alg("claire:classify", dict(alg_params(args), REPORT=report))
    C.record("Processing", "report_disk_full", "QgsProcessingException" if message else "no error", message or "",
             tmp)
    assert results is None and "writing the report's MD twin" in message and "the disk is full" in message
    assert C.snapshot(tmp) == before


def _train(tmp: Path, ck: str, output: str, report: str):
    scene = D.training_scene(tmp)
    params = {"OPTICAL": scene["optical"], "SAR": scene["sar"], "LABELS": scene["labels"], "FIELD": "class",
              "CHECKPOINT": ck, "OUTPUT": output, "REPORT": report, **FAST}
    return scene, params


def test_alg_train_report_fails_then_no_checkpoint(claire_plugin, workdir, monkeypatch):
    tmp, ck = workdir
    _, params = _train(tmp, ck, str(tmp / "out" / "mine.safetensors"), str(tmp / "out" / "report.json"))
    before = C.snapshot(tmp)
    D.full_disk_at_write(monkeypatch, "report.html")
    results, message = run_alg("claire:train", params)
    C.record("Processing", "train_report_disk_full", "QgsProcessingException" if message else "no error",
             message or "", tmp)
    assert results is None and "training report's HTML copy" in message and "the disk is full" in message
    assert C.snapshot(tmp) == before and not _partials(tmp)


def test_alg_train_output_equal_to_the_base_checkpoint_is_refused(claire_plugin, workdir):
    tmp, ck = workdir
    _, params = _train(tmp, ck, ck, str(tmp / "out" / "report.json"))
    before = C.snapshot(tmp)
    results, message = run_alg("claire:train", params)
    C.record("Processing", "train_output_is_base_checkpoint", "QgsProcessingException" if message else "no error",
             message or "", tmp)
    assert results is None and "is also an input (the base checkpoint" in message
    assert "--" not in message
    assert C.snapshot(tmp) == before


def test_alg_train_report_over_the_labels_is_refused(claire_plugin, workdir):
    tmp, ck = workdir
    scene, params = _train(tmp, ck, str(tmp / "out" / "mine.safetensors"), "")
    params["REPORT"] = scene["labels"]
    before = C.snapshot(tmp)
    results, message = run_alg("claire:train", params)
    C.record("Processing", "train_report_over_labels", "QgsProcessingException" if message else "no error",
             message or "", tmp)
    assert results is None and "is also an input (the labels" in message
    assert C.snapshot(tmp) == before


def _batch(tmp: Path, ck: str, opt_dir, sar_dir, out):
    return run_alg("claire:classify_folder", {"OPTICAL_FOLDER": str(opt_dir), "SAR_FOLDER": str(sar_dir),
                                              "OUTPUT_FOLDER": str(out), "CHECKPOINT": ck})


def test_alg_batch_summary_that_is_a_folder_is_refused_before_any_pair(claire_plugin, workdir):
    tmp, ck = workdir
    opt_dir, sar_dir = C.batch_folders(tmp, ["a.tif"], ["a.tif"])
    out = tmp / "out" / "batch"
    (out / "claire_batch_summary.json").mkdir(parents=True)
    results, message = _batch(tmp, ck, opt_dir, sar_dir, out)
    C.record("Processing", "batch_summary_is_folder", "QgsProcessingException" if message else "no error",
             message or "", tmp)
    assert results is None and "batch summary path" in message and "is a folder" in message
    assert os.listdir(out) == ["claire_batch_summary.json"]


def test_alg_batch_output_over_another_pairs_input_is_refused(claire_plugin, workdir):
    tmp, ck = workdir
    opt_dir, sar_dir = C.batch_folders(tmp, ["a.tif", "a_landcover.tif"], ["a.tif", "a_landcover.tif"])
    before = C.snapshot(tmp)
    results, message = _batch(tmp, ck, opt_dir, sar_dir, opt_dir)
    C.record("Processing", "batch_output_is_input", "QgsProcessingException" if message else "no error",
             message or "", tmp)
    assert results is None and "is also the optical folder" in message and "separate output folder" in message
    assert C.snapshot(tmp) == before


def test_alg_batch_summary_csv_fails_then_no_json_either(claire_plugin, workdir, monkeypatch):
    tmp, ck = workdir
    opt_dir, sar_dir = C.batch_folders(tmp, ["a.tif"], ["a.tif"])
    out = tmp / "out" / "batch"
    D.full_disk_at_write(monkeypatch, "claire_batch_summary.csv")
    results, message = _batch(tmp, ck, opt_dir, sar_dir, out)
    C.record("Processing", "batch_summary_disk_full", "QgsProcessingException" if message else "no error",
             message or "", tmp)
    assert results is None and "batch summary (CSV)" in message and "the disk is full" in message
    assert not (out / "claire_batch_summary.json").exists() and not _partials(tmp)


def test_alg_evaluate_report_over_the_reference_is_refused(claire_plugin, workdir):
    from claire.tests.fixtures.helpers import synthetic_scene

    tmp, _ = workdir
    labels = synthetic_scene(C.ROWS, C.COLS)[2]
    reference = C.write_tif(tmp / "in" / "reference.tif", labels[None], nodata=0)
    classified = C.write_tif(tmp / "in" / "map.tif", labels[None], nodata=0)
    before = C.snapshot(tmp)
    results, message = run_alg("claire:evaluate", {"CLASSIFIED": classified, "REFERENCE": reference,
                                                   "OUTPUT_TABLE": "TEMPORARY_OUTPUT", "REPORT": reference})
    assert results is None and "is also an input (the reference raster" in message
    assert C.snapshot(tmp) == before


def test_alg_train_classified_map_over_the_report_is_refused_before_training(claire_plugin, workdir):
    tmp, ck = workdir
    _, params = _train(tmp, ck, str(tmp / "out" / "mine.safetensors"), str(tmp / "out" / "report.json"))
    before = C.snapshot(tmp)
    results, message = run_alg("claire:train", dict(params, CLASSIFIED=str(tmp / "out" / "report.html")))
    assert results is None and "classified map path" in message and "training report's HTML copy" in message
    assert C.snapshot(tmp) == before
