"""Issue 19, classes 5 and 7, through Processing in real QGIS: the cases of tests/fixtures/bad_inputs_train.py
that have an algorithm (claire:train, claire:classify, claire:classify_folder) raise one QgsProcessingException
naming the problem and the fix with the algorithm's parameter names (DEVICE, CROP, ...), never a command-line
flag; a refused run leaves no file and changes no input. A missing package names the install command.
"""
from __future__ import annotations

import pytest
import torch

from claire.claire_plugin.deps import PLUGIN_DIR
from claire.tests.fixtures import bad_inputs as C
from claire.tests.fixtures import bad_inputs_train as T
from claire.tests.qgis.test_bad_inputs_alg import assert_inputs_untouched, run_alg

torch.set_num_threads(1)

ALG_CASES = [c.id for c in T.CASES if c.processing]


def hide_gpus(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize("case_id", ALG_CASES)
def test_alg_train_case(case_id, claire_plugin, workdir, monkeypatch):
    case = T.by_id(case_id)
    tmp, ck = workdir
    run = case.build(tmp, ck)
    if run.get("no_cuda"):
        hide_gpus(monkeypatch)
    before = C.snapshot(tmp)
    results, message = run_alg(run["alg"], run["params"])
    after = C.snapshot(tmp)
    if case.expect == "works":  # QGIS's .aux.xml beside the inputs of a finished training: issue 19 class 8
        after = {k: v for k, v in after.items() if k in before or not k.endswith(".aux.xml")}
    assert_inputs_untouched(before, after)
    if case.expect == "error":
        C.assert_processing_refusal(case, case_id, results, message, before, after, tmp)
    else:
        assert message is None, message
        C.record("Processing", case_id, "works", run["check"]("", "", tmp), tmp)


def test_alg_missing_package_names_the_install_command(claire_plugin, workdir, monkeypatch):
    """A required package that cannot be imported inside an algorithm gives the install command."""
    from claire.claire_plugin.core.training import polygons

    tmp, ck = workdir
    run = T.polygons(tmp, ck)

    def missing(*_a, **_k):
        raise ModuleNotFoundError("No module named 'rasterio'", name="rasterio")

    monkeypatch.setattr(polygons, "train_from_polygons", missing)
    results, message = run_alg("claire:train", run["params"])
    C.record("Processing", "missing_package", "QgsProcessingException",
             (message or "").replace(PLUGIN_DIR, "<plugin folder>"), tmp)
    assert results is None and "cannot import: rasterio" in message and "claire.claire_plugin.deps install" in message


def test_alg_evaluate_reference_with_nan_holes(claire_plugin, workdir):
    """claire:evaluate with a float32 reference holding NaN where nothing was mapped (no nodata declared): those
    pixels are left out, not counted as a reference value (before: NaN cast to an integer, reported as left-out
    value 0), and the JSON report is valid."""
    import json

    import numpy as np

    from claire.tests.fixtures.helpers import synthetic_scene, write_raster

    tmp, _ = workdir
    _, _, lab = synthetic_scene(40, 50)
    classified = write_raster(tmp / "in" / "map.tif", lab, nodata=0)
    ref = lab.astype(np.float32)
    ref[:10] = np.nan
    reference = write_raster(tmp / "in" / "reference.tif", ref)
    report = str(tmp / "out" / "report.json")
    results, message = run_alg("claire:evaluate", {"CLASSIFIED": classified, "REFERENCE": reference,
                                                   "OUTPUT_TABLE": "TEMPORARY_OUTPUT", "REPORT": report})
    assert message is None, message
    with open(report, encoding="utf-8") as fh:
        metrics = json.loads(fh.read(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON report"))
    assert metrics["compared_pixels"] == 30 * 50 and metrics["ignored_reference"] == {}
    assert results["OA"] == pytest.approx(1.0)
    C.record("Processing", "evaluate_nan_reference", "works",
             f"{metrics['compared_pixels']} of {40 * 50} pixels compared, NaN left out; OA {results['OA']:.3f}", tmp)
