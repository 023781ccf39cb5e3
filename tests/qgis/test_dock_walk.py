"""What the dock walk-through in real QGIS desktop (tools/screenshots_walk.py) found wrong, as tests: a long
folder name widened the dock past the width QGIS gives it (cut text on every tab), and the Train tab did not
take the scene the user had just classified (both its combos showed the first raster: training refused)."""
from __future__ import annotations

import pytest

from claire.tests.fixtures.helpers import synthetic_scene, write_raster

LONG = "S2A_MSIL2A_20170613T101031_N0205_R022_T33UUP_20170613T101608"


@pytest.fixture
def scene_dock(qgis_app, tmp_path):
    """A dock at the 298 px QGIS gives a new dock, and an optical + SAR pair in long-named folders, the SAR
    added first (as the first raster, the one every empty combo offers)."""
    from qgis.core import QgsProject, QgsRasterLayer
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtWidgets import QMainWindow, QWidget

    from claire.claire_plugin.gui.dock import ClaireDock

    opt, sar, _ = synthetic_scene(32, 32)
    for sub in (LONG, LONG.replace("S2A_MSIL2A", "S1A_IW_GRDH")):
        (tmp_path / sub).mkdir()
    sar_layer = QgsRasterLayer(write_raster(tmp_path / LONG.replace("S2A_MSIL2A", "S1A_IW_GRDH") / "vv_vh.tif", sar,
                                            descriptions=["VV", "VH"]), "sar", "gdal")
    optical = QgsRasterLayer(write_raster(tmp_path / LONG / "bands.tif", opt), "optical", "gdal")
    project = QgsProject.instance()
    project.addMapLayers([sar_layer, optical])
    win = QMainWindow()
    win.setCentralWidget(QWidget(win))  # the map canvas's place: the dock gets what QGIS gives it
    dock = ClaireDock(None, win)
    win.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    win.resize(1200, 800)
    win.show()
    win.resizeDocks([dock], [298], Qt.Orientation.Horizontal)
    qgis_app.processEvents()
    assert dock.width() < 320
    yield dock, optical, sar_layer
    win.close()
    project.removeAllMapLayers()


def test_a_long_folder_name_does_not_widen_any_tab(qgis_app, scene_dock):
    """The grey file line under a layer combo is elided to the dock's width, never widens the page."""
    dock, optical, sar = scene_dock
    for combo in (dock.optical, dock.train_panel.optical):
        combo.setLayer(optical)
    for combo in (dock.sar, dock.train_panel.sar):
        combo.setLayer(sar)
    qgis_app.processEvents()
    for i in range(dock.tabs.count()):
        dock.tabs.setCurrentIndex(i)
        for _ in range(3):
            qgis_app.processEvents()
        scroll = dock.tabs.widget(i)
        page = scroll.widget()
        assert page.minimumSizeHint().width() <= scroll.viewport().width(), dock.tabs.tabText(i)
        assert page.width() <= scroll.viewport().width(), dock.tabs.tabText(i)
    hint = dock.train_panel.optical.parent().hint
    assert "…" in hint.text() and hint.toolTip().endswith("bands.tif")


def test_train_tab_takes_the_scene_classified_on_the_run_tab(qgis_app, scene_dock):
    dock, optical, sar = scene_dock
    panel = dock.train_panel
    dock.optical.setLayer(optical)
    dock.sar.setLayer(sar)
    dock.results.trust.linkActivated.emit("train")  # "Train it on your area"
    assert dock.tabs.currentWidget().widget() is panel
    assert panel.optical.currentLayer() is optical and panel.sar.currentLayer() is sar
    dock.sar.setLayer(optical)  # the Run tab's later choice is followed too
    assert panel.sar.currentLayer() is optical


def test_results_say_when_the_model_cannot_tell_unfamiliar_pixels(qgis_app, scene_dock):
    """A polygon-trained card without familiarity statistics (too small a scene): the trust line says so and
    why, instead of nothing (or, before, "Do not trust the map on 100 %" of the scene it was trained on)."""
    dock = scene_dock[0]
    summary = {"classes": [{"name": "crops", "color": "#e49635", "value": 0, "area_ha": 1.0, "share": 1.0,
                            "mean_confidence": 0.9, "pixels": 100}], "mean_confidence": 0.9}
    note = "not measured: the scene around the training polygons holds 16 cells of 32 px, fewer than the 256"
    dock.results.showSummary(summary, "farmland", [], {"familiarity": None, "training": {"familiarity": note}})
    text = dock.results.trust.text()
    assert dock.results.trust.isVisibleTo(dock.results) and "cannot tell" in text and "16 cells" in text
    assert "Do not trust" not in text
    dock.results.showSummary(summary, "farmland", [], {"familiarity": {"threshold": 1.0}})
    assert not dock.results.trust.isVisibleTo(dock.results), "a card with statistics and no share: nothing said"
    dock.results.showSummary(dict(summary, unfamiliar_share=0.5), "farmland", [], {"familiarity": None})
    assert "Do not trust the map on 50.0 %" in dock.results.trust.text()


def test_training_progress_counts_the_time_budget():
    """With a minutes budget the run ends long before its most epochs: progress and text follow the budget."""
    from claire.claire_plugin.gui.tasks import epoch_progress

    e = {"epoch": 1, "epochs": 12, "seconds": 45.0}
    assert epoch_progress(e) == (1 / 12, "epoch 1 of 12")
    share, text = epoch_progress(e, 1.5)
    assert share == pytest.approx(0.5) and text == "epoch 1 (at most 12): 0.8 of 1.5 min used"
    assert epoch_progress(dict(e, seconds=600.0), 1.5)[0] == 1.0
    assert epoch_progress(dict(e, epoch=11, seconds=6.0), 1.5)[0] == pytest.approx(11 / 12)


def test_layers_of_your_model_are_named_after_it(tmp_path):
    """The walk's second map was a second "Land cover - optical" in the layer tree: the model tells it apart."""
    from claire.claire_plugin.gui.picker import bundled_checkpoint
    from claire.claire_plugin.gui.results import result_title

    optical = str(tmp_path / "optical.vrt")
    assert result_title(optical) == "optical" == result_title(optical, bundled_checkpoint())
    assert result_title(optical, str(tmp_path / "farm_20261203.safetensors")) == "optical · farm_20261203"


def test_report_says_when_the_unlike_check_was_not_measured():
    from claire.claire_plugin.gui.train_report import report_html

    m = {"macro_f1": 0.5, "oa": 0.8, "kappa": 0.3}
    report = {"arms": {"finetuned": {"clear": m}}, "training": {"epochs": 3, "seconds": 9.0, "device": "cpu"},
              "familiarity": "not measured: the scene around the training polygons holds 16 cells of 32 px"}
    assert "check not measured: the scene around the training polygons holds 16 cells" in report_html(report, "/a/b.st")
    assert "Unlike-the-training-data" not in report_html(dict(report, familiarity="measured on 900 cells"), "/a/b.st")


def test_the_train_tab_report_of_a_point_layer_says_points():
    from claire.claire_plugin.gui.train_report import report_html

    m = {"macro_f1": 0.5, "oa": 0.8, "kappa": 0.3}
    report = {"arms": {"finetuned": {"clear": m}}, "training": {"epochs": 3, "seconds": 9.0, "device": "cpu"},
              "labels": {"geometry": "point"}, "validation_feature_ids": [3, 7], "held_out_layer": "/a/b.heldout.gpkg",
              "leakage": {"pixel_split": {"macro_f1": 0.5}, "polygon_split": {"macro_f1": 0.5}}}
    html = report_html(report, "/a/b.st")
    assert "Held-out points" in html and "Held out: 2 points" in html and "drawn as black rings" in html
    exempt = "with polygons, neighbouring pixels of one polygon on both sides of a random split flatter the score"
    assert "each point is one pixel" in html.lower() and "polygon" not in html.replace(exempt, "")
    polygons = report_html(dict(report, labels={"geometry": "polygon"}), "/a/b.st")
    assert "Held out: 2 polygons" in polygons and "drawn dashed" in polygons and "points" not in polygons


def test_the_train_tab_report_says_the_learning_rate_and_why():
    from claire.claire_plugin.gui.train_report import report_html

    m = {"macro_f1": 0.5, "oa": 0.8, "kappa": 0.3}
    note = "learning rate 0.001: the base checkpoint scored macro-F1 0.31 on image windows around your training polygons"
    report = {"arms": {"finetuned": {"clear": m}}, "training": {"epochs": 3, "seconds": 9.0, "device": "cpu"}}
    assert "learning rate" not in report_html(report, "/a/b.st")  # a report written before the note existed
    report["training"]["lr_note"] = note
    assert f"3 epochs in 9.0 s on cpu, {note}." in report_html(report, "/a/b.st")
    report["calibration_note"] = "confidence tempered on the held-out polygons (temperature 3.1; <the map>)"
    assert (f"3 epochs in 9.0 s on cpu, {note}; confidence tempered on the held-out polygons (temperature 3.1; "
            "&lt;the map&gt;).") in report_html(report, "/a/b.st")


def test_the_train_tab_report_says_when_the_forest_beats_the_network():
    from claire.claire_plugin.gui.train_report import report_html

    def m(v):
        return {"macro_f1": v, "oa": v, "kappa": v}

    report = {"arms": {"finetuned": {"clear": m(0.55)}, "rf_optical_sar": {"clear": m(0.69)}},
              "training": {"epochs": 12, "seconds": 60.0, "device": "cpu"}}
    assert "scored higher than your CLAIRE model on the held-out polygons (macro-F1 0.69 against 0.55)" in \
        report_html(report, "/a/b.st")
    report["arms"]["rf_optical_sar"]["clear"] = m(0.50)
    assert "scored higher" not in report_html(report, "/a/b.st")
    # the forest's file name may break anywhere, so the 298 px dock is not widened by it
    from claire.claire_plugin.gui.widgets import ZWSP

    report["arms"]["rf_optical_sar"]["clear"] = m(0.69)
    report["forest_checkpoint"] = "/x/polygons_33UUP_87_48.forest.safetensors"
    shown = report_html(report, "/a/b.st")
    assert f"polygons_{ZWSP}33UUP_{ZWSP}87_{ZWSP}48.{ZWSP}forest" in shown and "classify with both" in shown
    report["arms"]["ensemble"] = {"clear": m(0.6), "clouds_60pct": m(0.5)}
    report["ensemble_checkpoint"] = "/x/polygons_33UUP_87_48.ensemble.safetensors"
    shown = report_html(report, "/a/b.st")
    assert f"48.{ZWSP}ensemble" in shown and "CLAIRE&#8288;+&#8288;RF" in shown and "CLAIRE+RF = the two" in shown


def test_the_train_tab_report_says_when_fine_tuning_did_not_help():
    from claire.claire_plugin.gui.train_report import report_html
    from claire.claire_plugin.gui.widgets import ZWSP

    def m(v):
        return {"macro_f1": v, "oa": v, "kappa": v}

    report = {"arms": {"finetuned": {"clear": m(0.70)}, "untuned": {"clear": m(0.87)}},
              "training": {"epochs": 12, "seconds": 60.0, "device": "cpu",
                           "base_checkpoint": "/m/claire_default.safetensors"},
              "spread": {"clear": {"differences": {"finetuned - untuned": [-0.3, -0.05]}}}}  # decided
    shown = report_html(report, "/a/b.st")
    assert f"claire_{ZWSP}default.{ZWSP}safetensors) scored higher on the held-out polygons than after fine-tuning" \
        in shown and "0.87 against 0.70" in shown
    report["arms"]["untuned"]["clear"] = m(0.60)
    assert "fine-tuning did not help" not in report_html(report, "/a/b.st")
