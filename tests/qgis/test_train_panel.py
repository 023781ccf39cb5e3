"""The dock's Train tab in real QGIS (offscreen): new training layer, training in the task manager with a
live chart, the held-out report, "Classify with this model"; and the smaller GUI fixes beside it."""
from __future__ import annotations

import os
import time

import pytest

from claire.tests.fixtures.helpers import synthetic_scene, write_raster
from claire.tests.fixtures.vectors import box_wkt

NAMES = {1: "water", 4: "crops", 5: "built area"}
BOXES = [(1, 5, 2), (1, 20, 5), (1, 40, 10), (1, 55, 20), (4, 2, 40), (4, 20, 45), (4, 45, 35), (4, 10, 60),
         (5, 35, 65), (5, 45, 75), (5, 52, 62), (5, 35, 80)]


def _wait(app, condition, seconds=120.0):
    end = time.time() + seconds
    while not condition() and time.time() < end:
        app.processEvents()
        time.sleep(0.02)
    return condition()


@pytest.fixture
def train_dock(qgis_app, tmp_path, tiny_checkpoint):
    """A dock whose Train tab has a synthetic scene loaded and the tiny checkpoint as base."""
    from qgis.core import QgsProject, QgsRasterLayer

    from claire.claire_plugin.gui.dock import ClaireDock

    opt, sar, _ = synthetic_scene(64, 96)
    (tmp_path / "s2").mkdir()
    (tmp_path / "s1").mkdir()
    optical = QgsRasterLayer(write_raster(tmp_path / "s2" / "site.tif", opt), "site", "gdal")
    sar_layer = QgsRasterLayer(write_raster(tmp_path / "s1" / "site.tif", sar, descriptions=["VV", "VH"]),
                               "site", "gdal")
    project = QgsProject.instance()
    project.addMapLayers([optical, sar_layer])
    dock = ClaireDock(None)
    panel = dock.train_panel
    panel.picker.setCheckpoint(tiny_checkpoint)
    panel.optical.setLayer(optical)
    panel.sar.setLayer(sar_layer)
    panel.ask_folder = lambda: str(tmp_path)
    yield dock
    dock.shutdown()  # the wand put down, its scene closed, the dock's background checks joined before QGIS exits
    project.removeAllMapLayers()
    from qgis.PyQt import sip

    sip.delete(dock)  # now, not by the interpreter's exit, where PyQt's clean-up of a live dock crashed (rc 139)


def _draw(layer) -> None:
    """Add the test's boxes to the (editable) layer with their class names."""
    from qgis.core import QgsFeature, QgsGeometry

    for v, r, c in BOXES:
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromWkt(box_wkt(r, c, r + 5, c + 5)))
        f["class"] = NAMES[v]
        assert layer.addFeature(f)


def test_new_training_layer_offers_the_checkpoint_classes(train_dock, tmp_path, tiny_classes):
    from qgis.core import QgsCategorizedSymbolRenderer, QgsProject

    layer = train_dock.train_panel.new_training_layer()
    assert layer is not None and layer.id() in QgsProject.instance().mapLayers()
    assert layer.source().split("|")[0] == str(tmp_path / "claire_training.gpkg")
    assert layer.isEditable() and layer.crs().authid() == "EPSG:32631"
    setup = layer.editorWidgetSetup(layer.fields().indexOf("class"))
    assert setup.type() == "ValueMap"
    assert [list(d)[0] for d in setup.config()["map"]] == [c["name"] for c in tiny_classes]
    renderer = layer.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == "class"
    assert {c.value(): c.symbol().color().name() for c in renderer.categories()} == \
        {c["name"]: c["color"] for c in tiny_classes}
    from qgis.core import QgsProject, QgsVectorLayer

    reopened = QgsVectorLayer(layer.source(), "again", "ogr")  # the style travels in the GeoPackage
    assert reopened.editorWidgetSetup(reopened.fields().indexOf("class")).type() == "ValueMap"
    assert isinstance(reopened.renderer(), QgsCategorizedSymbolRenderer)
    panel = train_dock.train_panel
    assert panel.labels.currentLayer() is layer and panel.field.currentField() == "class"
    second = panel.new_training_layer()
    assert second.source() != layer.source(), "a second layer never overwrites the first"


def _the_suspect_box_is_named_and_selected(panel, layer, text: str, checkpoint: str) -> None:
    """The built-area box at rows 52-56, cols 62-66 is mostly crops: the report names it, and its link selects it."""
    from qgis.PyQt.QtCore import QUrl

    from claire.claire_plugin.gui.train_report import SELECT_SCHEME, report_html

    assert "feature 11 (built area) looks like crops" in text and "Select them in the training layer" in text
    assert f"href='{SELECT_SCHEME}:11'" in report_html(panel.report, checkpoint)
    assert layer.selectedFeatureCount() == 0
    panel.report_view.anchorClicked.emit(QUrl(f"{SELECT_SCHEME}:11"))
    assert layer.selectedFeatureIds() == [11] and "Selected 1 of 1 polygon(s) to check" in panel.status.text()
    assert layer.getFeature(11)["class"] == "built area"
    held = sorted(panel.report["validation_feature_ids"])  # QA (round 19): held-out polygons were "to check" too
    link = f"{SELECT_SCHEME}:{','.join(map(str, held))}#held-out"
    assert f"href='{link}'" in report_html(panel.report, checkpoint)
    panel.report_view.anchorClicked.emit(QUrl(link))
    assert f"Selected {len(held)} of {len(held)} held-out polygon(s) in " in panel.status.text()
    layer.removeSelection()


def _places_to_label_next(qgis_app, panel, params) -> None:
    """Where to label next after the training: the scene mapped by the network and by the forest, the places added
    above the maps; Cancel on the tab stops a search; a second search replaces the layer."""
    from qgis.core import QgsProject

    assert not panel.next_button.isHidden()
    task = panel.find_places()
    assert task is not None and not panel.next_button.isEnabled()
    assert panel.cancel_button.isEnabled()  # QA round 16: only the task manager could stop it
    assert _wait(qgis_app, lambda: panel.places_task is None)
    assert not panel.cancel_button.isEnabled()
    assert task.suggestions is not None and panel.places is task.suggestions, panel.status.text()
    assert os.path.exists(task.maps["network"]) and os.path.exists(task.maps["forest"])
    assert task.output == os.path.splitext(params.output)[0] + "_label_next.gpkg"
    shown = QgsProject.instance().mapLayersByName("Places to label next")
    assert len(shown) == 1 and shown[0].featureCount() == len(task.suggestions.places)
    assert QgsProject.instance().layerTreeRoot().children()[0].layer() is shown[0]
    status = panel.status.text()
    assert "Your model and the random forest disagree on" in status and "Train again" in status
    assert panel.places_status.text() == status and not panel.places_status.isHidden()
    def gap(a: int, lo: int, hi: int) -> int:
        return max(lo - a, a - hi, 0)

    for p in task.suggestions.places:  # never on the polygons drawn nor within half a square (8 px) of them
        assert all(max(gap(p.row, r, r + 4), gap(p.col, c, c + 4)) > 8 for _, r, c in BOXES)
    cancelled = panel.find_places()  # Cancel on the tab stops the search; the last places stay
    panel.cancel()
    assert _wait(qgis_app, lambda: panel.places_task is None)
    assert cancelled.suggestions is None and "Cancelled" in panel.status.text()
    assert len(QgsProject.instance().mapLayersByName("Places to label next")) == 1
    panel.find_places()  # twice: one layer, the new one
    assert _wait(qgis_app, lambda: panel.places_task is None)
    assert len(QgsProject.instance().mapLayersByName("Places to label next")) == 1


def test_train_tab_runs_shows_report_and_hands_the_checkpoint_to_run(qgis_app, train_dock, tmp_path):
    from claire.claire_plugin.gui.picker import recent_checkpoints

    dock, panel = train_dock, train_dock.train_panel
    base = panel.picker.checkpointPath()
    layer = panel.new_training_layer()
    _draw(layer)
    panel.epochs.setValue(2)
    panel.device.setCurrentText("cpu")
    params = panel.build_params()  # saves the panel's own layer's edits
    assert not layer.isModified() and layer.featureCount() == 12
    assert params.layer == "training" and params.field == "class" and params.config.epochs == 2
    assert params.sar_units == "auto"
    assert params.labels_crs == layer.crs().authid() != "" and params.validation_crs is None  # read where a file has none
    panel.sar_units.setCurrentText("dB")
    assert panel.build_params().sar_units == "dB"
    params.config.steps_per_epoch, params.config.batch_size, params.config.crop = 1, 2, 64
    params.rf_trees = 10
    assert panel.start(params) is not None and not panel.train_button.isEnabled()
    assert _wait(qgis_app, lambda: panel.task is None)
    assert panel.report is not None, panel.status.text()
    loss, score = panel.chart.points()
    assert len(loss) == 2 and all(0.0 <= s <= 1.0 for s in score)
    assert os.path.exists(params.output) and os.path.exists(params.report)
    text = panel.report_view.toPlainText().replace("\xa0", " ").replace("\u2060", "")
    assert "Your CLAIRE" in text and "RF opt+SAR" in text and "Leakage check" in text
    assert "untuned" in panel.report["arms"], "the tiny base knows water, crops and built area by name"
    # the tiny base is not the bundled checkpoint: its row is the run's start, named so (QA round 24: "Untuned" was
    # an earlier fine-tuned model of one's own, said to be the base as it is)
    assert text.count("Start") == 3 and "Untuned" not in text, "a row clear, a row clouded, the footnote"
    assert f"Start = the checkpoint this run started from ({os.path.basename(params.checkpoint)})" in text.replace(
        "\u200b", "")  # the name breaks at its dots and underscores in a narrow dock
    _the_suspect_box_is_named_and_selected(panel, layer, text, params.output)
    assert params.output == recent_checkpoints()[0]
    # QA (QGIS 3.40 walk): the new checkpoints were in neither picker's list until something reloaded it
    for picker in (panel.picker, dock.picker):
        assert picker.combo.findData(params.output) >= 0
    # QA (round 19): "Start from" listed the forest and the averaged model, which it always refuses as a base
    for other in ("forest_checkpoint", "ensemble_checkpoint"):
        assert dock.picker.combo.findData(panel.report[other]) >= 0 and panel.picker.combo.findData(panel.report[other]) < 0
    assert panel.picker.checkpointPath() == base  # the Train tab's choice is kept
    panel.classify_button.click()
    assert dock.picker.checkpointPath() == params.output and dock.tabs.currentIndex() == 0
    assert "crops" in dock.picker.card_view.toPlainText()
    assert dock.optical.currentLayer() is panel.optical.currentLayer()
    # the run's forest and the two averaged are offered too, as checkpoints of their own
    forest, both = panel.report["forest_checkpoint"], panel.report["ensemble_checkpoint"]
    assert os.path.exists(forest) and os.path.exists(both) and recent_checkpoints()[1:3] == [both, forest]
    assert not panel.forest_button.isHidden() and not panel.ensemble_button.isHidden()
    chosen = panel.report["ensemble_weight"]["chosen"]
    assert f"the forest's weight {chosen:g} (" in text and f"the forest's weight {chosen:g} (" in \
        panel.ensemble_button.toolTip()
    shown = (panel.report, panel.checkpoint, params.report)
    # QA (round 19, the dock): at the forest's weight 0 "Classify with both averaged" was offered for a model that is
    # the network alone, the tooltip saying the weight 0 "falling under cloud"
    panel.show_report(dict(shown[0], ensemble_weight=dict(shown[0]["ensemble_weight"], chosen=0)), *shown[1:])
    assert not panel.ensemble_button.isHidden() and not panel.ensemble_button.isEnabled()
    assert panel.ensemble_button.toolTip().startswith("Not needed: the forest's weight 0 (") and \
        "so your CLAIRE model alone; use Classify with this model" in panel.ensemble_button.toolTip()
    panel.show_report(dict(shown[0], ensemble_weight=dict(shown[0]["ensemble_weight"], chosen=0.5)), *shown[1:])
    assert panel.ensemble_button.isEnabled() and "weight 0.5 (" in panel.ensemble_button.toolTip()
    panel.show_report(*shown)
    assert panel.ensemble_button.isEnabled() == (chosen != 0)
    if chosen == 0:
        panel.show_report(dict(shown[0], ensemble_weight=dict(shown[0]["ensemble_weight"], chosen=0.5)), *shown[1:])
    panel.ensemble_button.click()
    assert dock.picker.checkpointPath() == both
    assert "and a random forest of 10 trees averaged" in dock.picker.card_view.toPlainText()
    panel.forest_button.click()
    assert dock.picker.checkpointPath() == forest
    assert "random forest, 10 trees (" in dock.picker.card_view.toPlainText()
    _places_to_label_next(qgis_app, panel, params)
    panel.picker.setCheckpoint(forest)  # a forest is no base for fine-tuning: said before any task starts
    assert "holds a random forest, which cannot be fine-tuned" in panel.status.text()  # as soon as it is chosen
    assert panel.start() is None and "holds a random forest, which cannot be fine-tuned" in panel.status.text()
    # a second training cancelled: the first one's report, buttons and curve stay (they were hidden and cleared)
    panel.picker.setCheckpoint(params.output)
    again = panel.build_params()
    again.config.steps_per_epoch, again.config.batch_size, again.config.crop = 1, 2, 64
    again.output = params.output.replace(".safetensors", "_2.safetensors")
    again.report = os.path.splitext(again.output)[0] + ".json"
    panel.start(again)
    panel.cancel()
    assert _wait(qgis_app, lambda: panel.task is None) and "Cancelled" in panel.status.text()
    assert not panel.result_box.isHidden() and len(panel.chart.points()[0]) == 2
    # a second training that finishes: the first model's places to label next go (the new model's differ)
    panel.start(again)
    assert _wait(qgis_app, lambda: panel.task is None) and panel.checkpoint == again.output, panel.status.text()
    from qgis.core import QgsProject

    assert QgsProject.instance().mapLayersByName("Places to label next") == []


def test_held_out_polygons_are_shown_and_validate_the_next_training(qgis_app, train_dock):
    from qgis.core import QgsProject
    from qgis.PyQt.QtCore import Qt, QUrl

    from claire.claire_plugin.gui.train_report import VALIDATE_SCHEME

    panel = train_dock.train_panel
    layer = panel.new_training_layer()
    _draw(layer)
    panel.epochs.setValue(1)
    panel.device.setCurrentText("cpu")
    params = panel.build_params()
    assert params.validation is None
    params.config.steps_per_epoch, params.config.batch_size, params.config.crop = 1, 2, 64
    params.baseline = False
    assert panel.start(params) is not None
    assert _wait(qgis_app, lambda: panel.task is None) and panel.report is not None, panel.status.text()
    path = panel.report["held_out_layer"]
    shown = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name().startswith("Held-out polygons")]
    assert len(shown) == 1 and shown[0].featureCount() == 3 and shown[0].source().startswith(path)
    assert QgsProject.instance().layerTreeRoot().children()[0].layer() is shown[0]  # above the training layer
    symbol = shown[0].renderer().symbol().symbolLayer(0)
    assert symbol.strokeStyle() == Qt.PenStyle.DashLine and symbol.fillColor().alpha() == 0
    text = panel.report_view.toPlainText()
    assert "Held out: 3 polygons" in text and "Validate the next training on them" in text
    panel.report_view.anchorClicked.emit(QUrl(f"{VALIDATE_SCHEME}:held-out"))
    assert panel.validation.currentLayer() is shown[0] and "validated on Held-out polygons" in panel.status.text()
    assert "the polygons that scored this run will score it too." in panel.status.text().replace("\u200b", "")
    again = panel.build_params()
    assert again.validation == path and again.validation_layer == "held_out"
    again.config.steps_per_epoch, again.config.batch_size, again.config.crop = 1, 2, 64
    again.baseline = False
    assert panel.start(again) is not None
    assert _wait(qgis_app, lambda: panel.task is None) and panel.report is not None, panel.status.text()
    assert panel.report["split"]["validation_polygons_in_training_layer"] == 3
    assert [r["val_polygons"] for r in panel.report["counts"]] == [1, 1, 1]
    assert "Validated on a separate layer" in panel.report_view.toPlainText()
    assert QgsProject.instance().mapLayer(shown[0].id()) is not None  # still there: the next run validates on it
    panel.validation.setLayer(layer)
    with pytest.raises(ValueError, match="the training layer itself"):
        panel.build_params()


def test_cancelled_training_says_cancelled_not_failed(qgis_app, train_dock):
    panel = train_dock.train_panel
    _draw(panel.new_training_layer())
    params = panel.build_params()
    panel.start(params)
    panel.cancel()
    assert _wait(qgis_app, lambda: panel.task is None)
    assert "Cancelled" in panel.status.text() and "#b00020" not in panel.status.text()
    assert not os.path.exists(params.output)


def test_training_without_a_layer_names_what_is_missing(train_dock):
    panel = train_dock.train_panel
    assert panel.start() is None
    assert "Training layer" in panel.status.text()


def test_combos_tell_same_named_layers_apart(train_dock):
    panel = train_dock.train_panel
    hints = [c.parent().hint_text for c in (panel.optical, panel.sar)]
    assert hints[0].startswith("s2") and "12 bands" in hints[0]
    assert hints[1].startswith("s1") and "2 bands" in hints[1]


def test_progress_text_counts_tiles():
    from claire.claire_plugin.gui.tasks import progress_text

    assert progress_text("classifying: tile row 4/20, tile 3/20") == "classifying: tile 63 of 400"
    assert progress_text("reading") == "reading"
    assert progress_text("tile row 2/12, tile 8/12, about 4 min left") == "tile 20 of 144, about 4 min left"


def test_done_status_shows_the_full_path_and_says_temporary(qgis_app, tmp_path):
    from qgis.core import QgsProcessingUtils

    from claire.claire_plugin.gui.dock import done_html

    kept = done_html(str(tmp_path / "out.tif")).replace("\u200b", "")
    assert str(tmp_path / "out.tif") in kept and "open folder" in kept and "Temporary" not in kept
    temp = done_html(os.path.join(QgsProcessingUtils.tempFolder(), "x.tif"))
    assert "Temporary" in temp
    # QA (round 19): a preview said "save it with Export or choose an Output", but a preview never writes the Output
    shown = done_html(os.path.join(QgsProcessingUtils.tempFolder(), "x_preview.tif"), preview=True)
    assert "choose an Output and press Classify" in shown and "Export" not in shown


def test_checkpoint_dialog_claims_no_fit_without_layers_and_its_button_sets_the_panel(qgis_app, qgis_iface,
                                                                                      tiny_checkpoint):
    from types import SimpleNamespace

    from claire.claire_plugin.gui import actions
    from claire.claire_plugin.gui.picker import CheckpointDialog

    dialog = CheckpointDialog(None, tiny_checkpoint)
    status = dialog.picker.status.text()
    assert "4 classes" in status and "fit" not in status
    dialog.picker.checkLayers(12, 2)
    assert "the layers fit" in dialog.picker.status.text()
    plugin = SimpleNamespace(iface=qgis_iface, dock=None)
    dialog.accepted.connect(lambda: actions.use_checkpoint(plugin, dialog.picker.checkpointPath()))
    dialog.use_button.click()
    assert plugin.dock is not None and plugin.dock.picker.checkpointPath() == tiny_checkpoint


def test_a_deleted_last_checkpoint_falls_back_to_the_bundled_one(qgis_app, tmp_path, tiny_checkpoint):
    import shutil

    from claire.claire_plugin.gui.picker import CheckpointPicker, bundled_checkpoint

    gone = str(tmp_path / "gone.safetensors")
    shutil.copy(tiny_checkpoint, gone)
    CheckpointPicker().setCheckpoint(gone)
    os.remove(gone)
    picker = CheckpointPicker()
    assert picker.checkpointPath() == bundled_checkpoint()
    assert f"The checkpoint last used, {gone}" in picker.status.text().replace("\u200b", "")  # not silently
    picker.setCheckpoint(gone)  # chosen explicitly: kept, with the reason it cannot be used
    assert picker.checkpointPath() == gone and "does not exist" in picker.error()


def test_checkpoints_in_the_project_folder_are_offered(qgis_app, tmp_path, tiny_checkpoint):
    """A project folder moved to another place or machine: the remembered paths point to where it was, while its
    checkpoints lie beside the project file (where the Train tab writes them)."""
    import shutil

    from qgis.core import QgsProject

    from claire.claire_plugin.gui.picker import CheckpointPicker

    shutil.copy(tiny_checkpoint, tmp_path / "claire_training_1.safetensors")
    project = QgsProject.instance()
    old = project.fileName()
    project.setFileName(str(tmp_path / "farm.qgz"))
    try:
        picker = CheckpointPicker()
        items = [picker.combo.itemText(i) for i in range(picker.combo.count())]
        assert "In the project folder: claire_training_1" in items
    finally:
        project.setFileName(old)


def test_every_tab_fits_the_300_px_of_a_new_dock(train_dock, tmp_path):
    """No page asks for more width than a 300 px dock has (else QGIS cuts it off: no horizontal scroll)."""
    dock = train_dock
    panel = dock.train_panel
    panel.new_training_layer()
    summary = {"classes": [{"name": n, "color": "#808080", "value": i, "area_ha": 1234.5, "share": 0.25,
                            "mean_confidence": 0.8, "pixels": 10} for i, n in enumerate(["built area", "rangeland"])],
               "mean_confidence": 0.8}
    dock.results.showSummary(summary, "Land cover of a_long_site_name_433D_629L_3_1", [
        "Device: cpu", "model: /tmp/claire_walk_k6w4y69/farmland_your_model_20261206_123105.safetensors, claire "
        "(small), 3 classes"])  # a run's messages name files: a long path must wrap, not widen the tab
    widths = {dock.tabs.tabText(i): dock.tabs.widget(i).widget().minimumSizeHint().width()
              for i in range(dock.tabs.count())}
    assert all(w <= 270 for w in widths.values()), widths


def _at(row: float, col: float):
    from qgis.core import QgsPointXY

    from claire.tests.fixtures.vectors import ORIGIN, RES

    return QgsPointXY(ORIGIN[0] + col * RES, ORIGIN[1] - row * RES)


def test_magic_wand_adds_one_undoable_polygon_of_the_chosen_class(train_dock, tiny_classes):
    from qgis.core import QgsCoordinateReferenceSystem

    panel = train_dock.train_panel
    layer = panel.new_training_layer()
    offered = [panel.wand_class.itemText(i) for i in range(panel.wand_class.count())]
    assert offered == [c["name"] for c in tiny_classes]  # the layer's value map
    from claire.claire_plugin.core.training.wand import TOLERANCE_RANGE

    assert (panel.wand_tolerance.minimum(), panel.wand_tolerance.maximum()) == TOLERANCE_RANGE  # as everywhere
    panel.wand_class.setCurrentText("water")
    utm = QgsCoordinateReferenceSystem("EPSG:32631")
    fid = panel.wand_at(_at(30.5, 15.5), utm)  # water is the left third (cols 0..31) on every row
    assert fid is not None, panel.status.text()
    feats = list(layer.getFeatures())
    assert len(feats) == 1 and feats[0]["class"] == "water"
    # the 41 px square around the click, cut by the raster's left edge and by the water's right edge (col 32)
    assert feats[0].geometry().area() == pytest.approx(41 * 32 * 100.0)
    assert "1312 pixels" in panel.status.text() and "Ctrl+Z" in panel.status.text()
    assert panel.wand_status.text() == panel.status.text()
    layer.undoStack().undo()
    assert layer.featureCount() == 0


def test_the_wand_opens_its_scene_when_switched_on_not_at_the_first_click(train_dock):
    """QA round 16 (QGIS desktop): the first click opened the scene on the main thread, QGIS frozen for 2 s on a
    2048² pair (longer on a whole tile). Switching the wand on opens it in the background; the click finds it."""
    from qgis.core import QgsCoordinateReferenceSystem

    panel = train_dock.train_panel
    panel.new_training_layer()
    panel.wand_class.setCurrentText("water")
    panel.toggle_wand(True)
    assert panel.wand_scenes._thread is not None  # opening in the background
    panel.wand_scenes.wait()
    opened = panel.wand_scenes.scene
    assert opened is not None and panel.wand_scenes.key[0] == panel._wand_inputs()[0]
    assert panel.wand_at(_at(30.5, 15.5), QgsCoordinateReferenceSystem("EPSG:32631")) is not None
    assert panel.wand_scenes.scene is opened  # not opened again
    panel.stop_wand()
    assert panel.wand_scenes.scene is None


def test_magic_wand_never_overlaps_the_layers_polygons(train_dock):
    from qgis.core import QgsCoordinateReferenceSystem

    panel = train_dock.train_panel
    layer = panel.new_training_layer()
    panel.wand_class.setCurrentText("water")
    utm = QgsCoordinateReferenceSystem("EPSG:32631")
    first = panel.wand_at(_at(30.5, 15.5), utm)  # rows 10..50 of the water
    second = panel.wand_at(_at(55.5, 15.5), utm)  # rows 35..63: rows 35..50 are taken
    assert first is not None and second is not None, panel.status.text()
    assert "416 pixels" in panel.status.text() and "512 pixels already in other polygons" in panel.status.text()
    a, b = (layer.getFeature(fid).geometry() for fid in (first, second))
    assert b.area() == pytest.approx(13 * 32 * 100.0) and a.intersection(b).area() == pytest.approx(0.0)
    assert panel.wand_at(_at(20.5, 10.5), utm) is None  # inside the first polygon
    assert "already inside a polygon" in panel.status.text() and layer.featureCount() == 2


def test_magic_wand_polygons_land_in_the_training_layers_crs(train_dock, tmp_path, tiny_classes):
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject

    from claire.claire_plugin.layers.training_layer import create_training_layer

    panel = train_dock.train_panel
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    layer = create_training_layer(str(tmp_path / "lonlat.gpkg"), wgs84, tiny_classes)
    QgsProject.instance().addMapLayer(layer)
    panel.labels.setLayer(layer)
    panel.wand_class.setCurrentText("built area")
    utm = QgsCoordinateReferenceSystem("EPSG:32631")
    to_ll = QgsCoordinateTransform(utm, wgs84, QgsProject.instance())
    assert panel.wand_at(to_ll.transform(_at(55.5, 85.5)), wgs84) is not None, panel.status.text()
    geom = next(layer.getFeatures()).geometry()
    geom.transform(QgsCoordinateTransform(wgs84, utm, QgsProject.instance()))
    # built area: rows 33.. x cols 65.. of the 64 x 96 scene; the square's bottom and right are the raster's
    assert geom.area() == pytest.approx((64 - 35) * (96 - 65) * 100.0, rel=1e-3)
    assert layer.isEditable()


def test_magic_wand_says_what_is_missing(train_dock):
    from qgis.core import QgsCoordinateReferenceSystem

    panel = train_dock.train_panel
    utm = QgsCoordinateReferenceSystem("EPSG:32631")
    assert panel.wand_at(_at(30.5, 15.5), utm) is None
    assert "training layer" in panel.status.text()
    layer = panel.new_training_layer()
    panel.wand_class.setCurrentText("")
    assert panel.wand_at(_at(30.5, 15.5), utm) is None and "class" in panel.status.text()
    panel.wand_class.setCurrentText("water")
    assert panel.wand_at(_at(-50.5, 15.5), utm) is None and "outside the optical raster" in panel.status.text()
    assert layer.featureCount() == 0


def test_magic_wand_button_makes_it_the_canvas_tool(qgis_app, qgis_iface, train_dock):
    from claire.claire_plugin.gui.wand import WandTool

    panel = train_dock.train_panel
    panel.iface = qgis_iface
    canvas = qgis_iface.mapCanvas()
    panel.wand_button.setChecked(True)
    assert isinstance(canvas.mapTool(), WandTool) and canvas.mapTool() is panel.wand_tool
    panel.wand_button.setChecked(False)
    assert canvas.mapTool() is not panel.wand_tool
    panel.wand_button.setChecked(True)
    canvas.unsetMapTool(panel.wand_tool)  # another tool taken in QGIS: the button follows
    assert not panel.wand_button.isChecked()


def test_wand_classes_come_from_the_layer_and_integer_fields_take_codes(qgis_app):
    from qgis.core import QgsFeature, QgsVectorLayer

    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.gui.wand import class_choices, field_value

    layer = QgsVectorLayer("Polygon?crs=EPSG:32631&field=code:integer&field=name:string", "codes", "memory")
    for code in (3, 1, 3):
        f = QgsFeature(layer.fields())
        f["code"] = code
        layer.dataProvider().addFeatures([f])
    assert class_choices(layer, "code") == ["1", "3"]
    assert class_choices(layer, "missing") == []
    assert field_value(layer, "code", " 7 ") == 7
    with pytest.raises(ClaireError, match="integer codes"):
        field_value(layer, "code", "forest")
    assert field_value(layer, "name", "forest") == "forest"


def test_the_tab_counts_polygons_per_class_as_they_are_drawn(qgis_app, train_dock):
    from qgis.core import QgsCoordinateReferenceSystem, QgsFeature, QgsGeometry

    panel = train_dock.train_panel
    assert panel.tally.text() == ""
    layer = panel.new_training_layer()
    assert "No polygons yet" in panel.tally.text()
    _draw(layer)  # four boxes of each of water, crops and built area
    assert _wait(qgis_app, lambda: "water 4" in panel.tally.text(), 5), panel.tally.text()
    assert panel.tally.text() == "Polygons per class: water 4, crops 4, built area 4"
    panel.wand_class.setCurrentText("trees")
    assert panel.wand_at(_at(5.5, 80.5), QgsCoordinateReferenceSystem("EPSG:32631")) is not None
    assert _wait(qgis_app, lambda: "trees 1 (needs 3)" in panel.tally.text(), 5), panel.tally.text()
    unnamed = QgsFeature(layer.fields())
    unnamed.setGeometry(QgsGeometry.fromWkt(box_wkt(60, 2, 62, 4)))
    layer.addFeature(unnamed)
    assert _wait(qgis_app, lambda: "1 without a class" in panel.tally.text(), 5), panel.tally.text()
    layer.rollBack()
    assert _wait(qgis_app, lambda: "No polygons yet" in panel.tally.text(), 5), panel.tally.text()
    panel.labels.setLayer(None)
    assert panel.tally.text() == ""
    layer.startEditing()
    _draw(layer)  # no longer the tab's layer: nothing follows it
    qgis_app.processEvents()
    assert panel.tally.text() == ""


def test_hiding_the_dock_switches_the_wand_off(qgis_app, qgis_iface, train_dock):
    panel = train_dock.train_panel
    panel.iface = qgis_iface
    train_dock.show()
    qgis_app.processEvents()
    panel.wand_button.setChecked(True)
    assert qgis_iface.mapCanvas().mapTool() is panel.wand_tool
    train_dock.hide()
    qgis_app.processEvents()
    assert not panel.wand_button.isChecked() and qgis_iface.mapCanvas().mapTool() is not panel.wand_tool


def test_classify_with_this_model_takes_the_train_tabs_scene_whole(train_dock, tmp_path, tiny_checkpoint):
    """The Run tab on another scene, then "Classify with this model": setting the Run tab's optical pushed its
    old SAR into the Train tab and back, so the run got the new optical with the old scene's SAR."""
    from qgis.core import QgsProject, QgsRasterLayer

    opt, sar, _ = synthetic_scene(64, 96)
    other_opt = QgsRasterLayer(write_raster(tmp_path / "other_o.tif", opt, origin=(600000.0, 4700000.0)), "o2",
                               "gdal")
    other_sar = QgsRasterLayer(write_raster(tmp_path / "other_s.tif", sar, origin=(600000.0, 4700000.0),
                                            descriptions=["VV", "VH"]), "s2", "gdal")
    QgsProject.instance().addMapLayers([other_opt, other_sar])
    panel = train_dock.train_panel
    train_opt, train_sar = panel.optical.currentLayer(), panel.sar.currentLayer()
    train_dock.optical.setLayer(other_opt)  # the Run tab on the other scene (the sync follows it)
    train_dock.sar.setLayer(other_sar)
    panel.optical.setLayer(train_opt)  # the Train tab back on its own scene
    panel.sar.setLayer(train_sar)
    panel.sar_units.setCurrentText("linear-power")  # QA round 14: the Run tab read the SAR as auto after this
    train_dock.classify_with(tiny_checkpoint)
    assert (train_dock.optical.currentLayer(), train_dock.sar.currentLayer()) == (train_opt, train_sar)
    assert (panel.optical.currentLayer(), panel.sar.currentLayer()) == (train_opt, train_sar)
    assert train_dock.sar_units.currentText() == "linear-power"
    train_dock.sar_units.setCurrentText("amplitude")  # an earlier scene's units on the Run tab; the training's auto
    panel.sar_units.setCurrentText("auto")
    train_dock.classify_with(tiny_checkpoint)
    assert train_dock.sar_units.currentText() == "auto"



def test_decimal_fields_take_a_point_in_a_german_qgis(qgis_app):
    """In a German or French QGIS, typing 0.15 into the wand's tolerance gave 1,00 (and 1.5 minutes 15,0): Qt read
    the point as a group separator. The point is a decimal separator there too now."""
    from qgis.PyQt.QtCore import QLocale, Qt
    from qgis.PyQt.QtTest import QTest

    from claire.claire_plugin.gui.widgets import DecimalSpinBox

    box = DecimalSpinBox()
    box.setLocale(QLocale(QLocale.Language.German, QLocale.Country.Germany))
    box.setRange(0.0, 1440.0)
    box.setDecimals(2)
    for typed, value in (("0.15", 0.15), ("1.5", 1.5), ("0,3", 0.3)):
        box.lineEdit().selectAll()
        QTest.keyClicks(box, typed)
        QTest.keyClick(box, Qt.Key.Key_Return)
        assert box.value() == pytest.approx(value), (typed, box.text())
    assert box.text() == "0,30"


def test_the_training_layer_is_chosen_again_after_reopening_the_project(train_dock, tmp_path):
    """QA (projects reopened): the Train tab's Layer combo was empty after reopening, and the layer it had created
    was then treated as a stranger's (its unsaved edits refused instead of saved for the user)."""
    from qgis.core import QgsProject

    from claire.claire_plugin.layers.training_layer import is_training_layer

    panel = train_dock.train_panel
    layer = panel.new_training_layer()
    layer.commitChanges()
    project = QgsProject.instance()
    path = str(tmp_path / "farm.qgz")
    assert project.write(path)
    project.clear()
    assert panel.labels.currentLayer() is None
    assert project.read(path)
    try:
        chosen = panel.labels.currentLayer()
        assert chosen is not None and chosen.name() == "Training polygons" and is_training_layer(chosen)
        assert panel.field.currentField() == "class"
    finally:
        project.clear()


def test_the_wand_class_typed_is_the_class_as_written(train_dock):
    """Classes "Crops" and "crops": typing crops and Enter in the wand's class box chose "Crops"."""
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtTest import QTest

    combo = train_dock.train_panel.wand_class
    combo.clear()
    combo.addItems(["Crops", "crops", "water"])
    combo.setCurrentIndex(0)
    combo.lineEdit().selectAll()
    QTest.keyClicks(combo.lineEdit(), "crops")
    QTest.keyClick(combo.lineEdit(), Qt.Key.Key_Return)
    assert combo.currentText() == "crops" and combo.currentIndex() == 1


def test_a_training_layer_made_before_the_mark_is_known_by_its_style(qgis_app, tmp_path, monkeypatch):
    """QA (upgrade): projects saved by earlier versions hold Train tab layers without TRAINING_PROPERTY; the tab
    took them for a stranger's (Layer combo empty, unsaved edits refused). Its GeoPackage style says whose it is;
    a GeoPackage layer of the same name without that style stays the user's."""
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsFields,
        QgsProject,
        QgsVectorFileWriter,
        QgsVectorLayer,
        QgsWkbTypes,
    )

    from claire.claire_plugin.layers import training_layer
    from claire.claire_plugin.layers.training_layer import (
        TRAINING_PROPERTY,
        create_training_layer,
        is_training_layer,
        project_training_layer,
    )

    path = str(tmp_path / "old.gpkg")
    with monkeypatch.context() as m:  # as the versions before the mark made it: its style without the mark
        m.setattr(training_layer, "TRAINING_PROPERTY", "claire/not_the_mark")
        layer = create_training_layer(path, QgsCoordinateReferenceSystem("EPSG:32631"), [{"name": "water",
                                                                                          "color": "#419bdf"}])
    del layer
    old = QgsVectorLayer(f"{path}|layername=training", "Training polygons", "ogr")
    assert old.isValid() and old.customProperty(TRAINING_PROPERTY, None) is None
    assert is_training_layer(old) and old.customProperty(TRAINING_PROPERTY, None)
    project = QgsProject.instance()
    try:
        again = QgsVectorLayer(f"{path}|layername=training", "Training polygons", "ogr")
        again.removeCustomProperty(TRAINING_PROPERTY)
        project.addMapLayer(again)
        assert project_training_layer(project) is again
    finally:
        project.clear()
    other = str(tmp_path / "mine.gpkg")
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName, options.layerName = "GPKG", "training"
    writer = QgsVectorFileWriter.create(other, QgsFields(), QgsWkbTypes.Type.Polygon,
                                        QgsCoordinateReferenceSystem("EPSG:32631"), project.transformContext(),
                                        options)
    del writer
    assert not is_training_layer(QgsVectorLayer(f"{other}|layername=training", "mine", "ogr"))


def test_start_from_is_the_train_tabs_own_choice_and_hold_out_shows(qgis_app, tmp_path, tiny_checkpoint):
    """QA (QGIS 3.40 walk): "Start from" took whatever the Run tab used last (the user's fine-tuned network or its
    forest: round 2 fine-tuned round 1's network unsaid); "Validate on" was blank where the project held a polygon
    layer before the dock opened."""
    from qgis.core import QgsProject, QgsVectorLayer

    from claire.claire_plugin.gui.dock import ClaireDock
    from claire.claire_plugin.gui.picker import bundled_checkpoint

    polygons = QgsVectorLayer("Polygon?crs=EPSG:32631&field=class:string", "shipped polygons", "memory")
    QgsProject.instance().addMapLayer(polygons)
    try:
        first = ClaireDock(None)
        first.train_panel.picker.setCheckpoint(bundled_checkpoint())
        first.picker.setCheckpoint(tiny_checkpoint)  # the Run tab classifies with another model
        second = ClaireDock(None)  # a new session
        assert second.picker.checkpointPath() == tiny_checkpoint
        assert second.train_panel.picker.checkpointPath() == bundled_checkpoint()
        second.train_panel.picker.setCheckpoint(tiny_checkpoint)
        assert ClaireDock(None).train_panel.picker.checkpointPath() == tiny_checkpoint
        validation = second.train_panel.validation
        assert validation.currentLayer() is None and validation.currentText() in ("hold out 30 %", "")
        assert validation.currentIndex() == 0 and validation.count() == 2
        # QA (desktop): a SAR of another place said "Ready: press Train" and failed only once pressed
        from qgis.core import QgsRasterLayer

        from claire.tests.fixtures.helpers import synthetic_scene, write_raster

        optical, sar, _ = synthetic_scene(30, 30)
        here = QgsRasterLayer(write_raster(tmp_path / "o.tif", optical), "here", "gdal")
        there = QgsRasterLayer(write_raster(tmp_path / "s.tif", sar, descriptions=["VV", "VH"], crs="EPSG:32633",
                                            origin=(300000.0, 5300000.0)), "there", "gdal")
        QgsProject.instance().addMapLayers([here, there])
        panel = second.train_panel
        panel.labels.setLayer(polygons)
        panel.optical.setLayer(here)
        panel.sar.setLayer(there)
        assert "do not overlap: choose the SAR of the same place" in panel.status.text()
    finally:
        QgsProject.instance().removeAllMapLayers()


def test_integer_codes_take_their_names_from_the_class_names_field(qgis_app, train_dock, tmp_path):
    """QA (scale of labels): the Train tab named integer codes 'class 31'; its Class names field, as
    --name-field, keeps the codes and carries the names. A new layer clears the choice."""
    from qgis.core import QgsProject, QgsVectorLayer

    from claire.tests.fixtures.vectors import write_vector

    panel = train_dock.train_panel
    path = write_vector(tmp_path / "coded.gpkg", [(box_wkt(r, c, r + 5, c + 5), v) for v, r, c in BOXES],
                        field="code", extra=[("label", [NAMES[v] for v, _, _ in BOXES])])
    layer = QgsVectorLayer(f"{path}|layername=labels", "coded", "ogr")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    panel.labels.setLayer(layer)
    panel.field.setField("code")
    assert panel.name_field.currentField() == ""
    assert panel.build_params().name_field is None
    assert panel.tally.text().startswith("Polygons per class: 1 4, 4 4")
    panel.name_field.setField("label")
    assert panel.build_params().name_field == "label"
    assert panel.tally.text().startswith("Polygons per class: water (1) 4, crops (4) 4"), panel.tally.text()
    panel.labels.setLayer(None)
    assert panel.name_field.currentField() == ""


def test_polygons_and_maps_without_colours_get_the_palette_not_one_grey(qgis_app, tmp_path):
    """QA round 14: a training layer's classes the checkpoint does not know, a class written "Water" where the card
    says "water", and every class of a map without a colour table were drawn in one grey (#808080)."""
    import numpy as np
    from qgis.core import QgsFeature, QgsVectorLayer

    from claire.claire_plugin.layers.style import classes_from_raster
    from claire.claire_plugin.layers.training_layer import style_by_class

    layer = QgsVectorLayer("Polygon?crs=EPSG:32631&field=class:string", "polys", "memory")
    for name in ("Water", "vineyard", "orchard", "2"):
        f = QgsFeature(layer.fields())
        f["class"] = name
        layer.dataProvider().addFeatures([f])
    card = {"classes": [{"index": 0, "value": 1, "name": "water", "color": "#419bdf"},
                        {"index": 1, "value": 2, "name": "trees", "color": "#397d49"}]}
    style_by_class(layer, "class", card)
    got = {c.value(): (c.label(), c.symbol().color().name()) for c in layer.renderer().categories()}
    assert got["Water"] == ("water", "#419bdf") and got["2"] == ("trees", "#397d49")
    colours = [col for _label, col in got.values()]
    assert "#808080" not in colours and len(set(colours)) == 4, got
    # the new classes take the colours their fine-tuned map will have: coded as training codes names (case aside)
    from claire.claire_plugin.core.training.labels import codes_for_names
    from claire.models.palette import class_colors

    codes = codes_for_names(["Water", "vineyard", "orchard", "Zebra", "apple"], [(1, "water"), (2, "trees")])
    trained = {"classes": [{"index": i, "value": codes[n], "name": n, "color": "#419bdf" if n == "Water" else None}
                           for i, n in enumerate(sorted(codes, key=codes.get))]}
    layer2 = QgsVectorLayer("Polygon?crs=EPSG:32631&field=class:string", "polys2", "memory")
    for name in codes:
        f = QgsFeature(layer2.fields())
        f["class"] = name
        layer2.dataProvider().addFeatures([f])
    style_by_class(layer2, "class", card)
    drawn = {c.value(): c.symbol().color().name() for c in layer2.renderer().categories()}
    assert drawn == {c["name"]: col for c, col in zip(trained["classes"], class_colors(trained))}, drawn
    path = write_raster(str(tmp_path / "map.tif"), np.array([[[1, 2], [3, 4]]], np.uint8))
    import rasterio

    with rasterio.open(path, "r+") as ds:  # named classes, no colour table
        ds.update_tags(1, **{f"class_{v}": n for v, n in ((1, "a"), (2, "b"), (3, "c"), (4, "d"))})
    classes = classes_from_raster(path)
    assert [c["value"] for c in classes] == [1, 2, 3, 4], classes
    assert len({c["color"] for c in classes}) == len(classes) and all(c["color"] != "#808080" for c in classes)


def test_status_lines_show_quotes_as_quotes(train_dock):
    """QA round 16 (fix check): the Train tab's status and the wand's line read "as &#x27;trees&#x27;": the escaped
    text of a line that is no error went to labels that showed it as plain text."""
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QTextDocument

    panel = train_dock.train_panel
    panel._set_wand_status("Added a polygon as 'trees' <here> & there")
    for label in (panel.status, panel.wand_status, train_dock.status):
        assert label.textFormat() == Qt.TextFormat.RichText
    doc = QTextDocument()
    doc.setHtml(panel.wand_status.text())
    assert doc.toPlainText() == "Added a polygon as 'trees' <here> & there"


def test_a_long_layer_name_in_a_status_line_keeps_the_tab_within_the_dock(train_dock):
    """QA (round 19, QGIS 3.22 desktop): "The next training is validated on Held-out polygons
    (claire_training_20261207_134952.heldout)..." gave the Train tab a horizontal scroll bar and cut its left edge
    off: the name was one unbreakable word wider than the dock."""
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QTextDocument

    from claire.claire_plugin.gui.widgets import ZWSP

    panel = train_dock.train_panel
    train_dock.resize(298, 700)
    train_dock.show()
    name = "claire_training_20261207_134952.heldout" + "x" * 40
    panel._set_status(f"The next training is validated on Held-out polygons ({name}).")
    doc = QTextDocument()
    doc.setHtml(panel.status.text())
    assert doc.toPlainText().replace(ZWSP, "") == f"The next training is validated on Held-out polygons ({name})."
    assert max(len(w) for w in doc.toPlainText().replace(ZWSP, " ").split()) <= 24
    assert panel.status.minimumSizeHint().width() < 298
    assert panel.status.textFormat() == Qt.TextFormat.RichText
    train_dock.hide()


def test_showing_the_train_tab_loads_the_training_code_in_the_background(qgis_app):
    """QA round 16 (fix check): the first press of Train imported torch on the main thread (QGIS frozen 1.7 s)."""
    import threading

    from claire.claire_plugin.gui.dock import ClaireDock

    dock = ClaireDock(None)
    seen = []
    real = threading.Thread.start

    def start(thread):
        seen.append(thread.name)
        return real(thread)

    threading.Thread.start = start
    try:
        assert dock.tabs.tabText(2) == "Train"
        dock.tabs.setCurrentIndex(2)
        dock.tabs.setCurrentIndex(0)
        dock.tabs.setCurrentIndex(2)  # once only
    finally:
        threading.Thread.start = real
    assert seen.count("claire-preload-training") == 1 and dock._training_preloaded
    dock.shutdown()


def test_a_new_setup_takes_the_finished_runs_full_progress_bar_away(train_dock):
    """QA (round 19, desktop): after "Classify with this model" the Run tab's bar read 100 % under "Ready: press
    Classify", and the Train tab's 100 % under the red "Start from ... a random forest"."""
    panel = train_dock.train_panel
    for owner, recheck in ((train_dock, lambda: train_dock._show_fit_status([])), (panel, panel._update_ready)):
        owner.progress.setValue(100)
        recheck()
        assert owner.progress.value() == 0


def test_copying_a_status_line_gives_the_names_without_their_break_points(train_dock, qgis_app):
    """QA (round 19, review): status lines break long names with zero-width spaces, which went into every copy: a
    copied path did not exist, a copied command did not run."""
    from qgis.PyQt.QtCore import QEvent, Qt
    from qgis.PyQt.QtGui import QKeyEvent, QKeySequence, QTextDocument
    from qgis.PyQt.QtWidgets import QApplication

    from claire.claire_plugin.gui.widgets import ZWSP

    path = "/tmp/qae19/S2A_MSIL2A_20230517T103031_N0509_R108_T32TMT_20230517T164442.tif"
    for label, say in ((train_dock.train_panel.status, train_dock.train_panel._set_status),
                       (train_dock.status, train_dock._set_status)):
        say(f"cannot read {path}", True)
        assert ZWSP in label.text()  # shown breakable
        doc = QTextDocument()
        doc.setHtml(label.text())
        label.setSelection(0, len(doc.toPlainText()))
        assert label.hasSelectedText()
        QApplication.clipboard().clear()
        QApplication.sendEvent(label, QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier,
                                                "c"))
        copied = QApplication.clipboard().text()
        assert copied == f"cannot read {path}", (copied, QKeySequence(QKeySequence.StandardKey.Copy).toString())


def test_a_runs_per_epoch_score_on_a_sample_is_said_on_the_chart(train_dock):
    """Mutation check of round 21: nothing held the Train tab to telling the chart that a run's per-epoch score is
    measured on a spread of the held-out windows, nor the chart to drawing that label."""
    from qgis.PyQt.QtGui import QImage

    panel = train_dock.train_panel
    panel.chart_pending = True
    panel.on_epoch({"epoch": 1, "epochs": 3, "stage": 1, "loss": 1.2, "val_macro_f1": 0.4, "seconds": 3.0,
                    "val_windows": (42, 421)})
    assert panel.chart.score_label == "macro-F1 (sample)" and "42 of the 421" in panel.chart.toolTip()
    drawn = []
    real = panel.chart._legend.__func__

    def legend(chart, painter, fm, y):  # what the legend draws, by its texts
        painter.drawText = lambda *a, _d=painter.drawText: drawn.append(a[-1]) or _d(*a)
        return real(chart, painter, fm, y)

    import types

    panel.chart._legend = types.MethodType(legend, panel.chart)
    image = QImage(panel.chart.size(), QImage.Format.Format_ARGB32)
    panel.chart.render(image)
    assert "macro-F1 (sample)" in drawn, drawn
    panel.chart_pending = True  # the next run, measured whole: the label comes back
    panel.on_epoch({"epoch": 1, "epochs": 3, "stage": 1, "loss": 1.2, "val_macro_f1": 0.4, "seconds": 3.0})
    assert panel.chart.score_label == "held-out macro-F1" and panel.chart.toolTip() == ""


def test_the_report_says_what_a_continued_run_kept_and_what_leaked():
    from claire.claire_plugin.gui.train_report import _split_html

    report = {"split": {"kind": "polygons", "continued_from": "first.safetensors", "base_held_out_kept": 3},
              "validation_feature_ids": [4, 5, 9], "labels": {"geometry": "point"}}
    said = "".join(_split_html(report)).replace("\u200b", "")  # break points in long names
    assert "Held out: 3 points (" in said and "3 of them validated first.safetensors, the checkpoint" in said
    assert "Optimistic" not in said
    report["split"]["optimistic"] = "2 of its 3 held-out points trained first.safetensors"
    said = "".join(_split_html(report)).replace("\u200b", "")
    assert "<b>Optimistic</b>: 2 of its 3 held-out points trained first.safetensors" in said
    layer = "".join(_split_html({"split": {"kind": "separate layer", "val_source": {"path": "/d/v.gpkg"},
                                           "optimistic": "1 of its 4 held-out polygons trained a"}}))
    assert "v.gpkg" in layer.replace("\u200b", "") and "Optimistic" in layer
