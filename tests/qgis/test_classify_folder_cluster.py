"""claire:classify_folder with DASK_SCHEDULER in real QGIS: the same outputs as a run inside QGIS."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def _params(opt_dir, sar_dir, out, checkpoint, **extra):
    return {"OPTICAL_FOLDER": opt_dir, "SAR_FOLDER": sar_dir, "OUTPUT_FOLDER": out, "CHECKPOINT": checkpoint,
            "TILE_SIZE": 32, "OVERLAP": 8, "CONFIDENCE": True, **extra}


def test_folder_batch_on_a_dask_cluster_equals_the_run_in_qgis(claire_plugin, dask_cluster, tmp_path,
                                                                 tiny_checkpoint):
    import processing

    from claire.tests.fixtures.cluster_folders import assert_same_outputs, make_folders

    opt_dir, sar_dir = make_folders(str(tmp_path))
    local = processing.run("claire:classify_folder", _params(opt_dir, sar_dir, str(tmp_path / "local"),
                                                             tiny_checkpoint))
    remote = processing.run("claire:classify_folder", _params(opt_dir, sar_dir, str(tmp_path / "remote"),
                                                              tiny_checkpoint, DASK_SCHEDULER=dask_cluster.address))
    for res in (local, remote):
        assert (res["PAIRS"], res["SUCCEEDED"], res["FAILED"]) == (4, 3, 1)
        assert "overlap" in json.loads(res["FAILURES"])[0]["reason"].lower()
    assert sorted(os.path.basename(p) for p in remote["OUTPUTS"]) == ["a_landcover.tif", "b_landcover.tif",
                                                                      "c_landcover.tif"]
    assert all(os.path.exists(os.path.splitext(p)[0] + ".qml") for p in remote["OUTPUTS"])
    assert_same_outputs(str(tmp_path / "local"), str(tmp_path / "remote"))


def test_unreachable_scheduler_names_the_parameter(claire_plugin, tmp_path, tiny_checkpoint, monkeypatch):
    import processing
    from qgis.core import QgsProcessingException

    from claire.claire_plugin.core import cluster
    from claire.tests.fixtures.cluster_folders import make_folders
    from claire.tests.fixtures.dask_cluster import free_port

    pytest.importorskip("distributed")
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1.0)
    opt_dir, sar_dir = make_folders(str(tmp_path), names=("a",), bad=False)
    with pytest.raises(QgsProcessingException, match="cannot reach the Dask scheduler"):
        processing.run("claire:classify_folder", _params(opt_dir, sar_dir, str(tmp_path / "out"), tiny_checkpoint,
                                                         DASK_SCHEDULER=f"tcp://127.0.0.1:{free_port()}"))
    with pytest.raises(QgsProcessingException, match=r"\(DASK_SCHEDULER\) 'nowhere:1' is not a Dask scheduler"):
        processing.run("claire:classify_folder", _params(opt_dir, sar_dir, str(tmp_path / "out"), tiny_checkpoint,
                                                         DASK_SCHEDULER="nowhere:1"))


def test_cancelling_the_qgis_task_cancels_the_cluster_futures(claire_plugin, dask_cluster, tmp_path, tiny_checkpoint):
    import processing
    from qgis.core import QgsProcessingFeedback

    from claire.tests.fixtures.cluster_folders import hidden_files, make_folders

    class CancelAfterFirstPair(QgsProcessingFeedback):
        def pushInfo(self, info):  # noqa: N802 - QGIS's name
            super().pushInfo(info)
            if info.endswith(": ok"):
                self.cancel()

    opt_dir, sar_dir = make_folders(str(tmp_path), names=("a", "b", "c", "d", "e", "f"), bad=False)
    out = str(tmp_path / "out")
    with dask_cluster.pairs_held_until_cancel(free=("a",)):
        res = processing.run("claire:classify_folder", _params(opt_dir, sar_dir, out, tiny_checkpoint,
                                                               DASK_SCHEDULER=dask_cluster.address),
                             feedback=CancelAfterFirstPair())
    statuses = [r["status"] for r in json.loads(Path(res["SUMMARY_JSON"]).read_text())["results"]]
    assert statuses == ["ok"] + ["cancelled"] * 5 and res["SUCCEEDED"] == 1, statuses
    assert sorted(os.path.basename(p) for p in res["OUTPUTS"]) == sorted(
        n for n in os.listdir(out) if n.endswith("_landcover.tif"))
    assert hidden_files(out) == []
