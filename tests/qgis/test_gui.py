"""GUI in real QGIS (offscreen): picker + model card, style classes, classify task, dock results, diagnostics."""
from __future__ import annotations

import os

import pytest


@pytest.fixture
def tiny_run(tmp_path, raster_pair, tiny_checkpoint):
    """A finished ClassifyTask on the small synthetic pair, with a reference (run() called directly)."""
    from claire.claire_plugin.core.params import ClassifyParams
    from claire.claire_plugin.gui.tasks import ClassifyTask

    params = ClassifyParams(optical=raster_pair["optical"], sar=raster_pair["sar"],
                            output=str(tmp_path / "lc.tif"), checkpoint=tiny_checkpoint,
                            confidence=str(tmp_path / "lc_confidence.tif"), reference=raster_pair["labels"],
                            tile_size=64, context=16)
    done = []
    task = ClassifyTask(params, on_done=done.append)
    assert task.run() is True, task.error
    task.finished(True)
    assert done == [task]
    return task


@pytest.fixture
def dock_with_layers(qgis_app, raster_pair, tiny_checkpoint):
    """A dock with the tiny checkpoint and the synthetic pair loaded as layers (removed afterwards)."""
    from qgis.core import QgsProject

    dock, optical, sar = _dock_on_pair(raster_pair, tiny_checkpoint)
    yield dock
    for layer in dock.added_layers + [optical, sar]:
        QgsProject.instance().removeMapLayer(layer.id())


def _dock_on_pair(raster_pair, checkpoint):
    """(dock, optical layer, SAR layer): the pair added to the project and chosen in a new dock."""
    import rasterio
    from qgis.core import QgsProject, QgsRasterLayer

    from claire.claire_plugin.core.inputs.bands import S2_L2A
    from claire.claire_plugin.gui.dock import ClaireDock

    with rasterio.open(raster_pair["optical"], "r+") as ds:  # named: a 70 x 90 px synthetic scene has too little
        ds.descriptions = tuple(S2_L2A)                      # vegetation to check an unnamed stack's order
    optical = QgsRasterLayer(raster_pair["optical"], "opt", "gdal")
    sar = QgsRasterLayer(raster_pair["sar"], "sar", "gdal")
    QgsProject.instance().addMapLayers([optical, sar])
    dock = ClaireDock(None)
    dock.picker.setCheckpoint(checkpoint)
    dock.optical.setLayer(optical)
    dock.sar.setLayer(sar)
    dock.wait_for_fit()
    return dock, optical, sar


def test_picker_reads_model_card_and_warns_on_bands(qgis_app, tiny_checkpoint, tiny_classes):
    from claire.claire_plugin.gui.picker import CheckpointPicker, recent_checkpoints

    picker = CheckpointPicker()
    picker.setCheckpoint(tiny_checkpoint)
    assert picker.checkpointPath() == tiny_checkpoint
    assert picker.error() is None
    assert picker.combo.toolTip() == tiny_checkpoint  # QA round 24: a narrow dock cut the name; the path is the tip
    assert [c["name"] for c in picker.card()["classes"]] == [c["name"] for c in tiny_classes]
    html = picker.card_view.toHtml()
    for cls in tiny_classes:
        assert cls["name"] in html
    assert "B8A" in html and "VV" in html
    assert tiny_checkpoint in recent_checkpoints()
    warnings = picker.checkLayers(4, 2)
    assert len(warnings) == 1 and "has 4 band(s)" in warnings[0] and "expects 10" in warnings[0]
    # QA (round 19): "...or give band indices" cannot help a layer with fewer bands than the checkpoint needs
    assert "band indices" not in warnings[0] and "Build Virtual Raster" in warnings[0]
    assert picker.checkLayers(12, 2) == []
    assert "do not exist" in " ".join(picker.checkLayers(12, 2, sar_bands=[1, 3]))


def test_picker_shows_why_a_checkpoint_is_unusable(qgis_app, tmp_path):
    from claire.claire_plugin.gui.picker import CheckpointPicker

    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x80\x04 pickle, not safetensors")
    picker = CheckpointPicker()
    picker.setCheckpoint(str(bad))
    assert picker.card() is None and picker.error()
    assert picker.error() in picker.card_view.toPlainText()


def test_a_card_the_picker_cannot_draw_is_said_and_the_panel_still_opens(qgis_app, tiny_checkpoint, monkeypatch):
    """QA round 13: a stranger's card that passed the checks but broke the card view was remembered as the last
    checkpoint, and every panel opened after raised in its constructor."""
    import claire.claire_plugin.gui.picker as picker_mod
    from claire.claire_plugin.gui.dock import ClaireDock

    def broken(*args, **kwargs):
        raise ValueError("dictionary update sequence element #0 has length 1")

    monkeypatch.setattr(picker_mod, "card_html", broken)
    picker = picker_mod.CheckpointPicker()
    picker.setCheckpoint(tiny_checkpoint)
    assert picker.card() is None and "cannot be shown" in picker.error()
    assert "cannot be shown" in picker.card_view.toPlainText()
    dock = ClaireDock(None)  # re-reads the remembered checkpoint
    assert dock.picker.card() is None and "choose another one" in dock.picker.error()
    dock.deleteLater()


def test_renderer_classes_equal_checkpoint_classes(qgis_app, tiny_run, tiny_classes):
    from qgis.core import QgsPalettedRasterRenderer

    from claire.claire_plugin.layers.layers import result_layers

    layers = result_layers(tiny_run.result, None, "test")
    land, confidence = layers
    renderer = land.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    got = [(c.value, c.label, c.color.name()) for c in renderer.classes()]
    assert got == [(c["value"], c["name"], c["color"]) for c in tiny_classes]
    assert confidence.name().startswith("Confidence")
    # the confidence raster holds percent (uint8 0-100): a ramp of 0..1 drew every pixel of 1 % and more green
    import rasterio
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize

    with rasterio.open(tiny_run.result.confidence) as ds:
        values = ds.read(1)
    assert values[values != 255].max() > 1
    shader = confidence.renderer().shader().rasterShaderFunction()
    assert shader.minimumValue() == 0.0 and shader.maximumValue() == 100.0
    settings = QgsMapSettings()
    settings.setLayers([confidence])
    settings.setExtent(confidence.extent())
    settings.setOutputSize(QSize(64, 64))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    colours = {image.pixelColor(x, y).name() for x in range(0, 64, 4) for y in range(0, 64, 4)}
    assert len(colours) > 3, colours


def test_dock_filled_from_finished_run(qgis_app, tiny_run, tiny_checkpoint, tiny_classes):
    from qgis.core import QgsProject

    from claire.claire_plugin.gui.dock import ClaireDock
    from claire.claire_plugin.gui.tasks import ExplainTask

    dock = ClaireDock(None)
    dock.picker.setCheckpoint(tiny_checkpoint)
    dock.show_result(tiny_run.result, dock.picker.card(), tiny_run.params, add_layers=True, explain=False)
    try:
        summary = tiny_run.result.summary
        table = dock.results.table
        assert table.rowCount() == len(summary["classes"]) > 0
        assert [table.item(r, 0).text() for r in range(table.rowCount())] == [c["name"] for c in summary["classes"]]
        assert dock.results.accuracy_table.isVisibleTo(dock.results)
        oa = summary["metrics"]["oa"]
        assert dock.results.tiles["oa"].value.text() == f"{100 * oa:.1f} %"
        assert len(dock.results.chart.bars()) == sum(1 for c in summary["classes"] if c["share"] is not None)
        names = [layer.name() for layer in QgsProject.instance().mapLayers().values()]
        assert any(n.startswith("Land cover") for n in names) and any(n.startswith("Confidence") for n in names)
        assert dock.tabs.currentIndex() == 1

        task = ExplainTask(summary, dock.last_card, None, on_done=dock.on_explained)
        chunks = []
        task.textChunk.connect(chunks.append)
        assert task.run() is True, task.error
        task.finished(True)
        assert task.explanation.text.strip()
        assert "template" in dock.results.generator.text()
        assert dock.results.explanation.toPlainText().strip()
    finally:
        for layer in dock.added_layers:
            QgsProject.instance().removeMapLayer(layer.id())


def test_a_run_over_files_that_layers_show_replaces_those_layers(qgis_app, tiny_run, tiny_checkpoint, tmp_path):
    """QA (projects reopened): classifying again into the Output a layer already showed left that layer drawing the
    old pixels, and after a reload the new classes under the old legend; a companion the new model could not write
    (unlike the training data) stayed from the earlier run beside the new map."""
    import dataclasses

    from qgis.core import QgsProject, QgsRasterLayer

    from claire.claire_plugin.gui.dock import ClaireDock

    project = QgsProject.instance()
    dock = ClaireDock(None)
    dock.picker.setCheckpoint(tiny_checkpoint)
    dock.show_result(tiny_run.result, dock.picker.card(), tiny_run.params, add_layers=True, explain=False)
    first = [layer.id() for layer in dock.added_layers]
    stale = str(tmp_path / "lc_unfamiliar.tif")
    with open(tiny_run.result.output, "rb") as src, open(stale, "wb") as dst:
        dst.write(src.read())  # an earlier run's "unlike the training data" raster
    old = QgsRasterLayer(stale, "Unlike the training data - earlier", "gdal")
    other = QgsRasterLayer(tiny_run.params.optical, "optical", "gdal")
    project.addMapLayers([old, other])
    old_id, other_id = old.id(), other.id()
    asked = dataclasses.replace(tiny_run.params, unfamiliar=stale)
    try:
        dock.show_result(tiny_run.result, dock.picker.card(), asked, add_layers=True, explain=False)
        assert all(project.mapLayer(i) is None for i in first + [old_id])
        assert project.mapLayer(other_id) is not None  # an input layer is not the run's
        assert all(project.mapLayer(layer.id()) is not None for layer in dock.added_layers)
        assert "Removed 3 older layer(s)" in dock.status.text() and not os.path.exists(stale)
    finally:
        project.removeMapLayers([layer.id() for layer in dock.added_layers] + [other_id])


def test_dock_refuses_to_start_without_layers(qgis_app):
    from claire.claire_plugin.gui.dock import ClaireDock

    dock = ClaireDock(None)
    dock.optical.setLayer(None)
    dock.sar.setLayer(None)
    assert dock.start() is None
    assert "Optical raster" in dock.status.text()


def test_classify_task_reports_user_error(qgis_app, tmp_path, tiny_checkpoint):
    from claire.claire_plugin.core.params import ClassifyParams
    from claire.claire_plugin.gui.tasks import ClassifyTask

    params = ClassifyParams(optical=str(tmp_path / "missing.tif"), sar=str(tmp_path / "missing_sar.tif"),
                            output=str(tmp_path / "o.tif"), checkpoint=tiny_checkpoint)
    task = ClassifyTask(params)
    assert task.run() is False
    assert task.error and "missing.tif" in task.error and task.details is None
    assert not os.path.exists(tmp_path / "o.tif")


def test_diagnostics_dialog_has_qgis_and_torch(qgis_app, tiny_checkpoint):
    from qgis.core import Qgis

    from claire.claire_plugin.gui.diagnostics_dialog import DiagnosticsDialog

    dialog = DiagnosticsDialog(None, tiny_checkpoint)
    text = dialog.text.toPlainText()
    assert Qgis.QGIS_VERSION in text and "torch: 2." in text and "Valid: yes" in text


def test_actions_add_menu_entries_and_open_the_dock(qgis_app, qgis_iface):
    from types import SimpleNamespace

    from claire.claire_plugin.gui import actions
    from claire.claire_plugin.gui.dock import ClaireDock

    menu = []

    class Iface:  # pytest-qgis's iface has no raster menu: record what would go there
        def __getattr__(self, name):
            return getattr(qgis_iface, name)

        def addPluginToRasterMenu(self, title, action):  # noqa: N802
            menu.append((title, action.text()))

    plugin = SimpleNamespace(iface=Iface(), dock=None)
    created = actions.create_actions(plugin)
    assert [t for _, t in menu] == ["CLAIRE &land cover panel", "Checkpoint and &model card…", "&Diagnostics report…",
                                    "&Install Python dependencies…"]
    keys = [t[t.index("&") + 1].lower() for _, t in menu]  # the keyboard reaches each entry by its own letter
    assert len(set(keys)) == len(keys)
    assert {title for title, _ in menu} == {actions.MENU}
    created[0].setChecked(True)
    assert isinstance(plugin.dock, ClaireDock)


def _wait(app, condition, seconds=60.0):
    import time

    end = time.time() + seconds
    while not condition() and time.time() < end:
        app.processEvents()
        time.sleep(0.02)
    return condition()


def test_dock_runs_in_task_manager_and_cancels(qgis_app, dock_with_layers, tmp_path):
    dock = dock_with_layers
    assert dock.picker.warnings() == [] and "Ready" in dock.status.text()
    dock.output.setFilePath(str(tmp_path / "dock_run.tif"))
    assert dock.start() is not None and not dock.run_button.isEnabled()
    assert _wait(qgis_app, lambda: dock.task is None and dock.explain_task is None)
    assert "Done: dock_run.tif" in dock.status.text().replace("\u200b", ""), dock.status.text()
    assert dock.results.table.rowCount() == 4 and dock.results.explanation.toPlainText()

    dock.output.setFilePath(str(tmp_path / "cancelled.tif"))
    dock.start()
    dock.cancel()
    assert _wait(qgis_app, lambda: dock.task is None)
    assert "Cancelled" in dock.status.text() and dock.run_button.isEnabled()
    assert not (tmp_path / "cancelled.tif").exists()


def test_dock_names_missing_packages_and_how_to_install(qgis_app, monkeypatch):
    from claire.claire_plugin.gui import dock as dock_module

    monkeypatch.setattr(dock_module, "missing_required", lambda: ["torch", "rasterio"])
    dock = dock_module.ClaireDock(None)
    assert dock.banner.isVisibleTo(dock) and not dock.run_button.isEnabled()
    text = dock.banner.text()
    assert "torch, rasterio" in text and "make install" in text and "claire.claire_plugin.deps install" in text


def test_dock_optical_offset_field(dock_with_layers):
    dock = dock_with_layers
    assert dock.build_params().optical_offset is None, "empty: the engine reads the file"
    dock.optical_offset.setText(" -1000 ")
    assert dock.build_params().optical_offset == -1000.0
    dock.optical_offset.setText("minus thousand")
    assert dock.start() is None
    assert "Optical offset &#x27;minus thousand&#x27; is not a number" in dock.status.text()


def test_dock_band_fields_follow_the_one_band_rule(dock_with_layers):
    dock = dock_with_layers
    for text in ("2,3,4", "2;3;4", "2 3 4"):
        dock.optical_bands.setText(text)
        assert dock.build_params().optical_bands == [2, 3, 4], text
    dock.optical_bands.setText("")
    dock.sar_bands.setText("0,1")
    assert dock.start() is None
    assert "SAR bands &#x27;0,1&#x27; has band number 0 below 1" in dock.status.text()


def test_dock_messages_name_the_dock_fields_not_command_line_flags(qgis_app, tmp_path, raster_pair, tiny_checkpoint):
    from claire.claire_plugin.core.params import ClassifyParams
    from claire.claire_plugin.gui.tasks import ClassifyTask

    bad = ClassifyTask(ClassifyParams(raster_pair["optical"], raster_pair["sar"], str(tmp_path / "o.tif"),
                                      checkpoint=tiny_checkpoint, sar_bands=[1, 5]))
    assert bad.run() is False
    assert "fix the SAR 'bands' field" in bad.error and "--sar-bands" not in bad.error, bad.error
    good = ClassifyTask(ClassifyParams(raster_pair["optical"], raster_pair["sar"], str(tmp_path / "g.tif"),
                                       checkpoint=tiny_checkpoint, optical_offset=0))
    assert good.run() is True, good.error
    from claire.claire_plugin.gui.dock import ClaireDock

    dock = ClaireDock(None)
    dock.picker.setCheckpoint(tiny_checkpoint)
    dock.show_result(good.result, dock.picker.card(), good.params, add_layers=False, explain=False)
    shown = dock.results.messages.text()
    assert "(the optical &#x27;offset&#x27; field)" in shown and "--optical-offset" not in shown, shown
    # QA (desktop): a second map's Results opened where the first's were scrolled to (Run details): now at the top
    dock.resize(300, 500)
    bar = dock.tabs.widget(1).verticalScrollBar()
    bar.setValue(bar.maximum())
    assert bar.maximum() > 0 and bar.value() > 0
    dock.show_result(good.result, dock.picker.card(), good.params, add_layers=False, explain=False)
    assert dock.tabs.currentIndex() == 1 and bar.value() == 0


def test_a_failed_task_s_details_reach_the_log_and_the_diagnostics_report(qgis_app, tmp_path, raster_pair,
                                                                          tiny_checkpoint, monkeypatch):
    """The dock said "report it with the Diagnostics report", but a bug's traceback was kept on the task and shown
    nowhere, and a run refused after planning showed the error without what had been planned."""
    from qgis.core import QgsApplication

    from claire.claire_plugin.core import engine
    from claire.claire_plugin.core.params import ClassifyParams
    from claire.claire_plugin.gui import tasks
    from claire.claire_plugin.gui.diagnostics_dialog import diagnostics_text

    logged = []
    QgsApplication.messageLog().messageReceived.connect(lambda text, tag, level: logged.append((tag, text)))
    planned = tasks.ClassifyTask(ClassifyParams(raster_pair["optical"], raster_pair["sar"], str(tmp_path / "p.tif"),
                                                checkpoint=tiny_checkpoint, tile_size=8192, batch_size=64, context=0))
    assert planned.run() is False and "needs about" in planned.error
    planned.finished(False)
    assert planned.details.startswith("planned: device: cpu"), planned.details
    assert "--" not in planned.details  # the dock's field names, not command-line flags
    assert any(tag == "CLAIRE" and "planned: device: cpu" in text for tag, text in logged), logged

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(engine, "classify", broken)
    bug = tasks.ClassifyTask(ClassifyParams(raster_pair["optical"], raster_pair["sar"], str(tmp_path / "b.tif"),
                                            checkpoint=tiny_checkpoint))
    assert bug.run() is False and "Diagnostics report (Raster > CLAIRE land cover)" in bug.error
    bug.finished(False)
    report = diagnostics_text(tiny_checkpoint)
    assert "## Last failure in this QGIS session" in report and "ZeroDivisionError: a bug" in report
    assert "Traceback (most recent call last)" in report and "in broken" in report, report
    assert any("in broken" in text for tag, text in logged if tag == "CLAIRE")
    # (review) a later refusal is the last failure, without the older traceback; an explanation's bug is kept too
    missing = tasks.ClassifyTask(ClassifyParams(str(tmp_path / "nowhere.tif"), raster_pair["sar"],
                                                str(tmp_path / "m.tif"), checkpoint=tiny_checkpoint))
    monkeypatch.undo()
    assert missing.run() is False
    missing.finished(False)
    report = diagnostics_text(tiny_checkpoint)
    assert "ZeroDivisionError" not in report and "nowhere.tif" in report.split("## Last failure")[1], report

    from claire.claire_plugin.core.explain import facts as facts_module

    def no_facts(*args, **kwargs):
        raise KeyError("sar_reliance_pct")

    monkeypatch.setattr(facts_module, "build_facts", no_facts)
    explained = []
    explain = tasks.ExplainTask({"classes": []}, {}, None, on_done=explained.append)
    assert explain.run() is False and "Diagnostics report" in explain.error
    explain.finished(False)
    assert explained == [explain] and "KeyError" in diagnostics_text(tiny_checkpoint).split("## Last failure")[1]


def test_layers_from_archives_and_file_pages_are_accepted(qgis_app, tmp_path, raster_pair):
    """A layer QGIS opened from a zip (/vsizip/) or from a page of a multi-page TIFF (GTIFF_DIR:) is handed
    to the engine by its GDAL name; a layer whose file is gone is refused with the path."""
    import shutil
    import zipfile

    from osgeo import gdal
    from qgis.core import QgsRasterLayer

    from claire.claire_plugin.layers.layers import layer_file, no_input_sidecars

    archive = tmp_path / "pair.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(raster_pair["optical"], "optical.tif")
    stack = tmp_path / "stack.tif"
    gdal.Translate(str(stack), raster_pair["optical"])
    gdal.Translate(str(stack), raster_pair["sar"], creationOptions=["APPEND_SUBDATASET=YES"])
    gone = tmp_path / "gone.tif"
    shutil.copy(raster_pair["sar"], gone)
    with no_input_sidecars():
        layers = {n: QgsRasterLayer(n, "x", "gdal")
                  for n in (f"/vsizip/{archive}/optical.tif", f"GTIFF_DIR:2:{stack}", str(gone))}
    assert all(layer.isValid() for layer in layers.values())
    gone.unlink()
    for name, layer in layers.items():
        path, problem = layer_file(layer)
        if name == str(gone):
            assert path is None and str(gone) in problem and "does not exist" in problem
        else:
            assert (path, problem) == (name, None)


def test_dock_refuses_a_tile_and_batch_too_big_for_memory(qgis_app, dock_with_layers, tmp_path):
    """The dock's largest tile and batch (4096 px x 256) do not fit any machine: the run stops before
    writing, and the status names the dock's fields with sizes that fit."""
    dock = dock_with_layers
    dock.tile_size.setValue(4096)
    dock.batch.setValue(256)
    dock.output.setFilePath(str(tmp_path / "too_big.tif"))
    assert dock.start() is not None
    assert _wait(qgis_app, lambda: dock.task is None)
    text = dock.status.text()
    assert "tile 4096 px (+ 16 px of context) x batch 256 needs about" in text and "Batch size" in text, text
    assert "--" not in text and dock.run_button.isEnabled()
    assert not (tmp_path / "too_big.tif").exists()
    if os.environ.get("CLAIRE_SHOT"):
        dock.resize(420, 820)
        dock.grab().save(os.environ["CLAIRE_SHOT"])


def test_results_show_the_explanation_fields(qgis_app):
    from claire.claire_plugin.core.explain import Explanation
    from claire.claire_plugin.gui.results import ResultsView

    view = ResultsView(None)
    view.startExplanation()
    view.showExplanation(Explanation(
        text="Water covers 40 %. Trees grow on the moon.", generator="template", grounded_share=0.5,
        flagged_sentences=["Trees grow on the moon."], fallback_reason="Explainer not used: no weights."))
    line = view.generator.text()
    assert "deterministic template" in line and "50 % grounded" in line
    assert "1 sentence(s) flagged" in line and "Explainer not used: no weights." in line
    assert "Trees grow on the moon. ⚠" in view.explanation.toPlainText()
    # QA round 22: a looping model repeats a flagged sentence; each was marked once per listing, nested
    loop = "Water covers 99.9 %. Again: Water covers 99.9 %."
    view.showExplanation(Explanation(text=loop, generator="template", grounded_share=0.0,
                                     flagged_sentences=["Water covers 99.9 %.", "Water covers 99.9 %."]))
    assert view.explanation.toPlainText() == "Water covers 99.9 %. ⚠ Again: Water covers 99.9 %. ⚠"
    # one flagged sentence inside another, regex and HTML characters, an empty one: each marked once, text kept
    text = "Trees (A&B?) cover 9 %. Yes: Trees (A&B?) cover 9 %. Fine."
    view.showExplanation(Explanation(text=text, generator="template", grounded_share=0.0, flagged_sentences=[
        "Trees (A&B?) cover 9 %.", "Yes: Trees (A&B?) cover 9 %.", "   "]))
    assert view.explanation.toPlainText() == "Trees (A&B?) cover 9 %. ⚠ Yes: Trees (A&B?) cover 9 %. ⚠ Fine."


def test_the_chart_choice_says_why_it_is_off_without_a_reference(qgis_app):
    """QA (round 19, desktop): the Chart box was greyed out with no word, where the metric tiles beside it say
    "Give a reference raster..."."""
    from claire.claire_plugin.gui.results import ResultsView

    view = ResultsView(None)
    view.showSummary({})
    assert not view.chart_metric.isEnabled() and "reference raster" in view.chart_metric.toolTip()


def test_card_html_lists_training_and_every_metrics_split_escaped(qgis_app):
    from claire.claire_plugin.gui.picker import card_html

    card = {"arch": "claire", "size": "tiny", "format": "safetensors", "tile_size": 256, "overlap": 32,
            "classes": [{"value": 1, "name": "water <lake>", "color": "#0000ff"}],
            "inputs": {"optical": {"bands": ["B2", "B3"], "sensor": "S2"}, "sar": {"bands": ["VV"]}},
            "training": {"data": "my polygons", "epochs": 7, "seed": 3},
            "metrics": {"heldout": {"oa": 0.81, "miou": 0.5, "kappa": 0.7,
                                    "per_class": [{"name": "water <lake>", "iou": 0.5, "f1": 0.66}]},
                        "note": "not a split"}}
    out = card_html(card, "/x/model.safetensors")
    assert "File: model.safetensors" in out and "classified in cores of up to 896 px (fitted to the raster), each " \
                                                "read with 128 px of context" in out
    assert "my polygons" in out and "epochs: 7 · seed: 3" in out
    assert "Metrics (held-out)" in out and "Metrics (note)" not in out
    assert "water &lt;lake&gt;" in out and "<lake>" not in out
    assert "2 bands: B2, B3" in out
    assert "learning rate" not in out
    card["training"]["lr_note"] = "learning rate 0.001: the base checkpoint scored macro-F1 0.46 <on crops>"
    assert "learning rate 0.001: the base checkpoint scored macro-F1 0.46 &lt;on crops&gt;" in card_html(card)
    card["calibration"] = {"temperature": 2.0, "note": "confidence tempered <on the held-out polygons>"}
    assert "confidence tempered &lt;on the held-out polygons&gt;" in card_html(card)
    card["calibration"]["sar_only"] = {"temperature": 3.0, "note": "the network <from SAR alone> said 94%"}
    assert "the network &lt;from SAR alone&gt; said 94%" in card_html(card)
    # a polygon run's card: its macro-F1, and the run's other models as one table, not as a metrics split
    card["metrics"] = {"heldout_polygons": {"macro_f1": 0.59, "oa": 0.75},
                       "baselines": {"rf_optical_sar": {"clear": {"macro_f1": 0.629}, "clouds_60pct": {"macro_f1": 0.56}},
                                     "finetuned": {"clear": {"macro_f1": 0.554}}}}
    out = card_html(card)
    assert "macro-F1 0.590 · OA 75.0 %" in out and "Metrics (baselines)" not in out
    assert out.index("CLAIRE fine-tuned (optical + SAR)</td><td>0.554</td><td>–</td>") < \
        out.index("Random forest, optical + SAR</td><td>0.629</td><td>0.560</td>")
    card["metrics"]["heldout_polygons"]["macro_f1_ci95"] = [0.41, 0.77]  # the held-out polygons resampled
    assert "macro-F1 0.590 (95 % interval 0.41-0.77, held-out polygons resampled) · OA 75.0 %" in card_html(card)
    assert "Metrics (held-out polygons)" in card_html(card)
    card["training"].update(data="polygons", labels={"geometry": "point"})  # trained from a point layer
    out = card_html(card)
    assert "held-out points resampled" in out and "Other models, same held-out points" in out
    assert "Metrics (held-out points)" in out and "held-out polygons resampled" not in out
    assert "<h3>Training</h3><p>points<br>" in out
    card["training"]["labels"] = {"kind": "raster", "path": "/x/lab.tif"}  # trained from a label raster
    assert "<h3>Training</h3><p>a label raster<br>" in card_html(card)


def test_results_say_where_not_to_trust_the_map_and_lead_to_training(qgis_app):
    from claire.claire_plugin.gui.dock import ClaireDock
    from claire.claire_plugin.gui.results import trust_html

    summary = {"classes": [], "unfamiliar_share": 0.38, "cloud_share": 0.5, "sar_only_share": 0.02}
    text = trust_html(summary)
    assert "Do not trust the map on 38.0 % of its area" in text and "href='train'" in text
    assert "50.0 % under cloud" in text and "2.0 % from SAR alone" in text
    calm = trust_html({"unfamiliar_share": 0.01, "cloud_share": 0.0})
    assert "Do not trust" not in calm and "1.0 % unlike it" in calm and "cloud" not in calm
    # QA round 14: 4.996 % shows as 5.0 %: the dock said "resembles ... (5.0 % unlike it)" where the report warned
    edge = trust_html({"unfamiliar_share": 0.04996, "cloud_share": 0.0})
    assert "Do not trust the map on 5.0 % of its area" in edge and "resembles" not in edge, edge
    assert "Do not trust" not in trust_html({"unfamiliar_share": 0.0494, "cloud_share": 0.0})
    # what the gate measured, as the report says it; a share that reads 0.0 % is not a line; gaps named as a cause
    said = trust_html({"unfamiliar_share": 0.9, "optical_invalid_share": 0.5, "cloud_share": 0.3,
                       "mean_sar_share_clouded": 0.449, "mean_sar_share_clear": 0.46, "sar_only_share": 0.0004})
    assert "30.0 % under cloud, haze or cloud shadow: the fusion did not lean more on SAR there" in said, said
    barely = trust_html({"cloud_share": 0.3, "mean_sar_share_clouded": 0.508, "mean_sar_share_clear": 0.501})
    assert "the fusion leaned hardly more on SAR there (50.8 % SAR weight" in barely, barely  # not "decided more"
    assert "mostly" not in said and "from SAR alone" not in said and "optical's gaps" not in said  # none in the map
    gapped = trust_html({"unfamiliar_share": 0.9, "optical_invalid_share": 0.5, "sar_only_share": 0.5})
    assert "optical's gaps, 50.0 % of it, may add to this" in gapped, gapped
    led = trust_html({"cloud_share": 0.2, "mean_sar_share_clouded": 0.9, "mean_sar_share_clear": 0.47})
    assert "the fusion leaned mostly on SAR there (90.0 % SAR weight, 47.0 % on clear)" in led, led
    assert trust_html({}) == ""  # a card without familiarity statistics, a clear scene: nothing to say
    # a model the user trained on their own points: more of them there, not "train it on your area"
    own = {"metrics": {"heldout_polygons": {"macro_f1": 0.8}}, "familiarity": {"threshold": 1.0},
           "training": {"labels": {"geometry": "point"}}}
    theirs = trust_html(summary, own)
    assert "trained on your points: <a href='train'>add points there</a>" in theirs, theirs
    assert "rain it on your area" not in theirs and "rain it on your area</a>" in trust_html(summary, {})
    # (QA, desktop) the likelier causes the explanation names come first here too
    offset = trust_html(dict(summary, optical_offset_suspected=True), {})
    assert "+1000 reflectance offset was not removed" in offset and "Train it on your area" not in offset
    small = trust_html(dict(summary, region_shape=[92, 184]), {})
    assert "smaller than those the score was calibrated on" in small and "Train it on your area" not in small
    # (QA, flood responder) thick cloud named as a cause, and before the offset where the whole scene is bright
    clouded = trust_html(dict(summary, cloud_share=0.9, sar_only_share=0.05), {})
    assert "(the optical's gaps, 5.0 % of it, and the cloud, 90.0 % of it, may add to this)" in clouded, clouded
    assert "If a clear scene of the same place shows as much" in clouded
    bright = trust_html(dict(summary, cloud_share=0.9, optical_offset_suspected=True), {})
    assert "bright everywhere, as under thick cloud" in bright and "First, though" not in bright

    dock = ClaireDock(None)
    dock.results.showSummary(summary, "scene")
    assert dock.results.trust.isVisibleTo(dock.results) and "38.0 %" in dock.results.trust.text()
    dock.tabs.setCurrentIndex(1)
    dock.results.trust.linkActivated.emit("train")
    assert dock.tabs.currentIndex() == 2  # the Train tab
    dock.results.showSummary({"classes": []}, "other scene")
    assert not dock.results.trust.isVisibleTo(dock.results)
    # (QA, desktop) a warning among the run's details stands out from the grey notes
    dock.results.showSummary({"classes": []}, "coarse SAR", ["device: cpu", "warning: the SAR pixels are 40 m"])
    shown = dock.results.messages.text()
    assert "<b style='color:#8a4b00'>warning: the SAR pixels are 40 m</b>" in shown and "<b" not in shown.split("<br>")[0]


def test_dock_writes_the_unfamiliar_raster_by_default(dock_with_layers, tmp_path):
    dock = dock_with_layers
    dock.output.setFilePath(str(tmp_path / "lc.tif"))
    assert dock.build_params().unfamiliar == str(tmp_path / "lc_unfamiliar.tif")
    dock.want_unfamiliar.setChecked(False)
    assert dock.build_params().unfamiliar is None


def test_dock_snow_check_is_on_by_default_and_can_be_turned_off(dock_with_layers, tmp_path):
    dock = dock_with_layers
    dock.output.setFilePath(str(tmp_path / "lc.tif"))
    assert dock.build_params().snow_check is True
    dock.snow_check.setChecked(False)
    assert dock.build_params().snow_check is False


def test_unfamiliar_style_tells_near_the_threshold_from_beyond_it(qgis_app, tmp_path):
    import numpy as np
    from qgis.core import QgsRasterLayer

    from claire.claire_plugin.layers.layers import UNFAMILIAR_RAMP, ramp_renderer
    from claire.tests.fixtures.helpers import write_raster

    path = write_raster(str(tmp_path / "u.tif"), np.array([[[0, 90, 100]]], dtype=np.uint8), nodata=255)
    layer = QgsRasterLayer(path, "u", "gdal")
    renderer = ramp_renderer(layer, UNFAMILIAR_RAMP)  # owns the shader: keep it alive
    shader = renderer.shader().rasterShaderFunction()

    def colour(v):
        ok, r, g, b, _a = shader.shade(float(v))
        assert ok
        return r, g, b
    assert colour(100) == (0xd7, 0x19, 0x1c) and colour(0) == (0x1a, 0x96, 0x41)
    r, g, _b = colour(90)
    assert g > 150 and r > 200  # yellow, not the red of "do not trust"


def test_preview_view_classifies_the_visible_extent_in_the_optical_crs(qgis_app, dock_with_layers, tmp_path):
    """The canvas shows rows 10..29, columns 20..49 of the scene in EPSG:3857: the preview is that part of a
    full run, in a temporary file (the Output field is left for the full run), titled as a preview."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject, QgsRectangle
    from qgis.gui import QgsMapCanvas

    dock = dock_with_layers
    assert dock.build_params().extent is None
    with pytest.raises(ValueError, match="map canvas"):
        dock.build_params(preview=True)  # no QGIS window here
    canvas = QgsMapCanvas()
    web = QgsCoordinateReferenceSystem("EPSG:3857")
    canvas.setDestinationCrs(web)
    canvas.resize(400, 300)
    to_web = QgsCoordinateTransform(dock.optical.currentLayer().crs(), web, QgsProject.instance())
    canvas.setExtent(to_web.transformBoundingBox(QgsRectangle(500200, 4599700, 500500, 4599900)))

    class Iface:
        def mapCanvas(self):
            return canvas

    dock.iface = Iface()
    import claire.claire_plugin.gui.dock as dock_module

    small = dock_module.PREVIEW_MAX_PIXELS
    dock_module.PREVIEW_MAX_PIXELS = 100  # a view larger than a preview is meant for: said, nothing runs
    try:
        with pytest.raises(ValueError, match=r"as much as a whole run: zoom in .* or press Classify"):
            dock.build_params(preview=True)
        assert dock.start(preview=True) is None and "zoom in" in dock.status.text()
    finally:
        dock_module.PREVIEW_MAX_PIXELS = small
    canvas.setExtent(to_web.transformBoundingBox(QgsRectangle(510200, 4599700, 510500, 4599900)))  # 10 km east
    with pytest.raises(ValueError, match=r"^The map view does not show the optical raster: zoom to it"):
        dock.build_params(preview=True)  # was the command line's "the extent 510200,... lies outside" message
    canvas.setExtent(to_web.transformBoundingBox(QgsRectangle(500200, 4599700, 500500, 4599900)))
    full = str(tmp_path / "full.tif")
    dock.output.setFilePath(full)
    params = dock.build_params(preview=True)
    xmin, ymin, xmax, ymax = params.extent
    assert xmin <= 500200 and ymin <= 4599700 and xmax >= 500500 and ymax >= 4599900
    assert xmax - xmin < 600 and ymax - ymin < 600  # the view, not the scene (900 x 700 m)
    assert params.output != full and "_preview_" in os.path.basename(params.output)
    assert dock.start(preview=True) is not None and not dock.preview_button.isEnabled()
    assert _wait(qgis_app, lambda: dock.task is None and dock.explain_task is None)
    assert dock.preview_button.isEnabled() and dock.run_button.isEnabled()
    assert "(preview)" in dock.added_layers[0].name()
    project = QgsProject.instance()
    first = [layer.id() for layer in dock.added_layers]
    assert dock.start() is not None and _wait(qgis_app, lambda: dock.task is None and dock.explain_task is None)
    whole = [layer.id() for layer in dock.added_layers]  # a full run's layers: kept
    assert dock.start(preview=True) is not None
    assert _wait(qgis_app, lambda: dock.task is None and dock.explain_task is None)
    assert all(project.mapLayer(i) is None for i in first), "a new preview replaces the previous one's layers"
    assert all(project.mapLayer(i) is not None for i in whole + [layer.id() for layer in dock.added_layers])
    project.removeMapLayers(whole)
    # a preview layer the user renamed or moved into a group is one they keep: the next preview leaves it
    second = list(dock.added_layers)
    second[0].setName("my preview")
    root = project.layerTreeRoot()
    node = root.findLayer(second[1].id())
    root.insertGroup(0, "kept").addChildNode(node.clone())
    node.parent().removeChildNode(node)
    assert dock.start(preview=True) is not None
    assert _wait(qgis_app, lambda: dock.task is None and dock.explain_task is None)
    assert project.mapLayer(second[0].id()) is not None and project.mapLayer(second[1].id()) is not None
    project.removeMapLayers([second[0].id(), second[1].id()])
    root.removeChildNode(root.findGroup("kept"))
    # the temporary file's long name breaks: the footer does not widen the dock beyond what QGIS gives it
    assert dock.status.minimumSizeHint().width() < 298, dock.status.text()
    import rasterio

    with rasterio.open(dock.last_result.output) as ds:
        assert 20 <= ds.height <= 40 and 30 <= ds.width <= 50


def test_roles_by_bands_tells_the_optical_from_the_sar():
    from claire.claire_plugin.gui.widgets import roles_by_bands

    assert roles_by_bands([2, 12]) == (1, 0)
    assert roles_by_bands([12, 1, 2], sar_n=2) == (0, 2)  # a one-band DEM is not the SAR of a 2-band checkpoint
    assert roles_by_bands([12, 1], sar_n=2) == (0, 1)  # the only other raster, though short of bands
    assert roles_by_bands([2, 2]) is None and roles_by_bands([12]) is None


def test_a_pair_added_together_fills_each_combo_with_its_own_raster(qgis_app, raster_pair, tiny_checkpoint):
    """QGIS gives both combos the first raster by name; a SAR named before the optical (S1 < S2) was the
    optical's too. The dock now takes the rasters' band counts, and leaves a pair the user chose alone."""
    from qgis.core import QgsProject, QgsRasterLayer

    from claire.claire_plugin.gui.dock import ClaireDock

    project = QgsProject.instance()
    dock = ClaireDock(None)
    dock.picker.setCheckpoint(tiny_checkpoint)
    sar = QgsRasterLayer(raster_pair["sar"], "S1_scene", "gdal")
    optical = QgsRasterLayer(raster_pair["optical"], "S2_scene", "gdal")
    third = QgsRasterLayer(raster_pair["labels"], "A_labels", "gdal")
    try:
        project.addMapLayers([sar, optical])
        assert (dock.optical.currentLayer(), dock.sar.currentLayer()) == (optical, sar)
        assert dock.train_panel.optical.currentLayer() is optical and dock.train_panel.sar.currentLayer() is sar
        dock.optical.setLayer(sar)  # the user's own choice, however odd, stays
        dock.sar.setLayer(optical)
        project.addMapLayers([third])
        assert (dock.optical.currentLayer(), dock.sar.currentLayer()) == (sar, optical)
        later = ClaireDock(None)  # a dock opened when the project already holds the layers
        assert (later.optical.currentLayer(), later.sar.currentLayer()) == (optical, sar)
    finally:
        for layer in (sar, optical, third):
            project.removeMapLayer(layer.id())


def test_two_scenes_in_a_project_are_paired_by_where_they_lie(qgis_app, tmp_path, tiny_checkpoint):
    """QA (desktop): a project holding two scenes, reopened, paired the 13-band optical of one with the SAR of the
    other (EPSG:32631 beside EPSG:32633): the SAR taken is one that overlaps the optical."""
    import numpy
    from qgis.core import QgsProject, QgsRasterLayer

    from claire.claire_plugin.gui.dock import ClaireDock
    from claire.claire_plugin.gui.widgets import roles_by_bands
    from claire.tests.fixtures.helpers import synthetic_scene, write_raster

    assert roles_by_bands([13, 2, 2], overlaps=lambda i, j: j == 2) == (0, 2)
    assert roles_by_bands([13, 2, 2], overlaps=lambda i, j: False) == (0, 1)  # none overlaps: as before
    optical, sar, _ = synthetic_scene(40, 50)
    far = dict(crs="EPSG:32633", origin=(300000.0, 5300000.0))
    layers = [QgsRasterLayer(write_raster(tmp_path / "a_sar_elsewhere.tif", sar, descriptions=["VV", "VH"], **far),
                             "A_sar_elsewhere", "gdal"),
              QgsRasterLayer(write_raster(tmp_path / "b_sar_here.tif", sar, descriptions=["VV", "VH"]), "B_sar_here",
                             "gdal"),
              QgsRasterLayer(write_raster(tmp_path / "c_optical_13.tif", numpy.concatenate([optical, optical[:1]])),
                             "C_optical", "gdal"),
              QgsRasterLayer(write_raster(tmp_path / "d_optical_elsewhere.tif", optical, **far), "D_optical", "gdal")]
    project = QgsProject.instance()
    try:
        project.addMapLayers(layers)
        dock = ClaireDock(None)
        dock.picker.setCheckpoint(tiny_checkpoint)
        assert (dock.optical.currentLayer(), dock.sar.currentLayer()) == (layers[2], layers[1])
    finally:
        project.removeAllMapLayers()


def test_a_long_explanation_is_as_tall_as_its_text_at_the_docks_width(qgis_app):
    """At the 298 px QGIS gives the dock, a long explanation got a box of at most 520 px with its own scroll bar
    inside the tab's: the box now takes the height of its text and the tab scrolls."""
    from qgis.PyQt.QtWidgets import QApplication

    from claire.claire_plugin.core.explain import Explanation
    from claire.claire_plugin.gui.results import ResultsView
    from claire.claire_plugin.gui.widgets import vertical_scroll

    view = ResultsView(None)
    page = vertical_scroll(view)
    page.resize(298, 700)
    page.show()
    text = "\n\n".join(f"Paragraph {i}: water covers 40 % of the scene and trees 30 %, mostly under cloud." * 3
                       for i in range(8))
    view.showExplanation(Explanation(text=text, generator="template", grounded_share=1.0))
    QApplication.processEvents()
    box = view.explanation
    assert box.document().size().height() > 520  # long enough that the old cap would cut it
    assert box.height() >= box.document().size().height()
    assert box.verticalScrollBar().maximum() == 0
    page.close()


def test_a_long_layer_name_cut_at_the_docks_width_is_whole_in_the_tooltip(qgis_app, raster_pair):
    from qgis.core import QgsProject, QgsRasterLayer

    from claire.claire_plugin.gui.widgets import RasterChooser

    name = "S2B_MSIL2A_20240612T103629_N0510_R008_T32TQM_20240612T134505_clipped_to_the_study_area"
    layer = QgsRasterLayer(raster_pair["optical"], name, "gdal")
    QgsProject.instance().addMapLayer(layer)
    try:
        chooser = RasterChooser(None, help_text="What the layer is for.")
        chooser.combo.setLayer(layer)
        assert chooser.combo.toolTip() == f"{name}\n\nWhat the layer is for."
        chooser.combo.setLayer(None)
        assert chooser.combo.toolTip() == "What the layer is for."
        # (QA, themes) the grey line cut its middle, band count and all: "qa_them…0 bands" for ten bands
        chooser.resize(110, 60)
        chooser.combo.setLayer(layer)
        shown = chooser.hint.text()
        bands = layer.bandCount()
        assert shown.endswith(f" · {bands} bands") and "…" in shown and shown != chooser.hint_text, shown
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_a_wrapped_label_shrinks_back_to_a_shorter_message(qgis_app):
    from qgis.PyQt.QtWidgets import QApplication, QFormLayout, QWidget

    from claire.claire_plugin.gui.widgets import WrapLabel

    page = QWidget()
    form = QFormLayout(page)
    label = WrapLabel(page)
    form.addRow(label)
    page.resize(298, 400)
    page.show()
    label.setText("The polygon reached the 41 px square's edge: it may go on beyond it. Raise the width in the "
                  "Train settings to let it grow further, or click again next to it for the rest of the field.")
    QApplication.processEvents()
    long_height = label.height()
    label.setText("Added a polygon of 19 pixels as 'built area'.")
    QApplication.processEvents()
    assert label.height() == label.heightForWidth(label.width()) < long_height
    page.close()


def test_unloading_during_a_run_cancels_it_and_nothing_calls_the_deleted_dock(qgis_app, dock_with_layers, tmp_path,
                                                                               monkeypatch):
    """Unloading or reloading the plugin mid-run left the task running: each progress step then raised 'wrapped
    C/C++ object of type QProgressBar has been deleted' (a modal error dialog each during a training)."""
    import sys

    from qgis.core import QgsTask
    from qgis.PyQt import sip
    from qgis.PyQt.QtCore import QCoreApplication, QEvent

    errors = []
    monkeypatch.setattr(sys, "excepthook", lambda *exc: errors.append(exc))
    dock = dock_with_layers
    dock.output.setFilePath(str(tmp_path / "unloaded.tif"))
    task = dock.start()
    assert task is not None
    dock.shutdown()
    assert task.on_done is None and dock.task is None
    assert sip.isdeleted(task) or task.isCanceled()  # cancelled, or already ended and deleted
    dock.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # processEvents() leaves it for the loop
    assert sip.isdeleted(dock)
    # the task manager deletes a task once it has ended
    assert _wait(qgis_app, lambda: sip.isdeleted(task) or task.status() in (QgsTask.TaskStatus.Complete,
                                                                            QgsTask.TaskStatus.Terminated))
    _wait(qgis_app, lambda: False, 0.5)  # queued progress signals delivered, if any
    assert errors == [] and not (tmp_path / "unloaded.tif").exists()


def test_a_run_finishing_after_file_new_adds_no_layers_to_the_new_project(qgis_app, raster_pair, tiny_checkpoint,
                                                                          tmp_path):
    """File > New mid-run: the run's layers went into the new, empty project, where both combos took them, and the
    next Classify read the 'unlike the training data' raster as its optical."""
    from qgis.core import QgsProject

    project = QgsProject.instance()
    dock, _optical, _sar = _dock_on_pair(raster_pair, tiny_checkpoint)  # no fixture: File > New deletes the layers
    dock.output.setFilePath(str(tmp_path / "before_new.tif"))
    assert dock.start() is not None
    project.clear()  # File > New
    assert _wait(qgis_app, lambda: dock.task is None)
    assert (tmp_path / "before_new.tif").exists()  # the run's files are written as asked
    assert project.mapLayers() == {} and dock.optical.currentLayer() is None
    assert "project was closed during the run" in dock.status.text()


def test_two_runs_in_one_second_get_two_files(qgis_app, tmp_path):
    """Two previews within a second wrote one file, the second over the one the first one's layers had open."""
    from claire.claire_plugin.gui.dock import _unused_name

    first = _unused_name(str(tmp_path), "claire_x_preview_20261206_091856")
    assert first == str(tmp_path / "claire_x_preview_20261206_091856.tif")
    open(first, "w").close()
    assert _unused_name(str(tmp_path), "claire_x_preview_20261206_091856") == str(
        tmp_path / "claire_x_preview_20261206_091856_2.tif")


def test_the_results_tab_stays_readable_where_the_dock_is_narrow_or_the_font_large(qgis_app):
    """QA on small and HiDPI screens: a tile's centred number lost its first digit at the dock's narrowest (277 px);
    at QGIS font size 14 the accuracy table's F1 column and the Train tab's right side were cut off with no way to
    reach them; the checkpoint dialog was taller than a 960 x 540 screen (200 % scaling)."""
    from qgis.PyQt.QtGui import QFont, QFontMetricsF, QGuiApplication
    from qgis.PyQt.QtWidgets import QApplication, QWidget

    from claire.claire_plugin.gui.results import MetricTile, ResultsView
    from claire.claire_plugin.gui.widgets import fit_on_screen, vertical_scroll

    tile = MetricTile("overall accuracy")
    tile.resize(66, 80)
    tile.show()
    tile.setValue("74.5 %")
    QApplication.processEvents()
    assert QFontMetricsF(tile.value.font()).horizontalAdvance("74.5 %") <= tile.value.width()
    tile.resize(200, 80)
    QApplication.processEvents()
    assert tile.value.font().pointSizeF() == tile._size  # full size again where there is room
    tile.close()

    view = ResultsView(None)
    big = QFont(view.font())
    big.setPointSizeF(14)
    view.setFont(big)
    page = vertical_scroll(view)
    page.resize(250, 700)
    page.show()
    rows = [{"name": n, "value": v, "color": "#3366cc", "iou": 0.482, "precision": 0.591, "recall": 0.724,
             "f1": 0.651} for v, n in enumerate(["water", "trees", "crops"], 1)]
    view._fill(view.accuracy_table, ["Class", "IoU", "Prec.", "Recall", "F1"], rows,
               lambda row: [f"{100 * row[k]:.1f}" for k in ("iou", "precision", "recall", "f1")])
    for _ in range(3):
        QApplication.processEvents()
    table = view.accuracy_table
    columns = sum(table.columnWidth(c) for c in range(1, 5))
    assert table.width() >= columns + table.fontMetrics().horizontalAdvance("w")  # F1 whole, and the class swatch
    assert page.horizontalScrollBar().maximum() > 0  # the page scrolls sideways to them
    page.close()

    wide = QWidget()
    fit_on_screen(wide, 520, 100000)
    area = QGuiApplication.primaryScreen().availableGeometry()
    assert wide.width() == min(520, int(area.width() * 0.9)) and wide.height() <= area.height()


def test_another_project_clears_the_output_field_and_the_results(qgis_app, dock_with_layers, tmp_path):
    """After File > New the Run tab still named the last project's map: Classify in the new project overwrote it
    (that project then showed the new scene under its old layer), and the Results tab showed the last results."""
    from qgis.core import QgsProject

    from claire.claire_plugin.gui.results import EMPTY_HEADLINE

    dock = dock_with_layers
    dock.output.setFilePath(str(tmp_path / "projA" / "landcover.tif"))
    dock.results.showSummary({"classes": [{"name": "water", "value": 1, "area_ha": 2.0, "share": 1.0,
                                           "mean_confidence": 0.9, "pixels": 200}],
                              "mean_confidence": 0.9}, title="Land cover of site A")
    assert dock.results.table.rowCount() == 1
    QgsProject.instance().cleared.emit()  # as File > New and opening another project do (keeps the fixture)
    assert dock.output.filePath() == ""
    assert dock.results.table.rowCount() == 0 and dock.results.headline.text() == EMPTY_HEADLINE
    assert {t.value.text() for t in dock.results.tiles.values()} == {"–"}  # "0.0 ha" of nothing read as a result


def test_keyboard_and_screen_reader_use_of_the_dock(qgis_app, dock_with_layers):
    """Tab walked the Results tables' cells for ever; the combos and fields had no names a screen reader says (two
    fields were both "bands"); the Train tab's wand came after "Validate on" in the Tab order though above it on
    screen; Escape did not cancel a run."""
    from qgis.PyQt.QtWidgets import QShortcut

    dock = dock_with_layers
    assert not dock.results.table.tabKeyNavigation() and not dock.results.accuracy_table.tabKeyNavigation()
    names = {w.accessibleName() for w in (dock.optical, dock.optical_bands, dock.optical_offset, dock.sar,
                                          dock.sar_bands, dock.reference, dock.output.lineEdit(), dock.picker.combo)}
    assert {"Optical raster", "Optical bands", "Optical offset", "SAR raster", "SAR bands", "Checkpoint"} <= names
    assert dock.output.lineEdit().toolTip().startswith("The land-cover GeoTIFF to write")
    panel = dock.train_panel
    chain, w = [], panel.macro_field
    for _ in range(60):
        w = w.nextInFocusChain()
        if w in (panel.wand_button, panel.validation):
            chain.append(w)
    assert chain and chain[0] is panel.wand_button, "the wand comes before Validate on, as on screen"

    class Running:
        cancelled = False

        def cancel(self):
            Running.cancelled = True

    dock.task = Running()
    escape = [s for s in dock.findChildren(QShortcut) if s.key().toString() == "Esc"]
    assert len(escape) == 1
    escape[0].activated.emit()
    assert Running.cancelled
    dock.task = None


def test_long_tooltips_are_shown_wrapped(qgis_app):
    """QA round 13 (QGIS desktop at 1366 x 768): the SAR gate weight's plain tooltip was drawn on one line across
    the whole screen. Long plain tooltips are shown as wrapped rich text; the widget's own text is unchanged."""
    from qgis.PyQt.QtCore import QEvent, QPoint
    from qgis.PyQt.QtGui import QHelpEvent
    from qgis.PyQt.QtWidgets import QApplication, QToolTip

    from claire.claire_plugin.gui.dock import ClaireDock

    dock = ClaireDock(None)
    box = dock.want_reliance
    plain = box.toolTip()
    assert len(plain) > 80 and not plain.startswith("<")
    dock.show()
    QApplication.sendEvent(box, QHelpEvent(QEvent.Type.ToolTip, QPoint(2, 2), box.mapToGlobal(QPoint(2, 2))))
    shown = QToolTip.text()
    assert shown.startswith("<p>") and "not which of them decided the class" in shown and box.toolTip() == plain
    QToolTip.hideText()
    dock.deleteLater()


def test_on_windows_the_layers_showing_a_runs_outputs_are_released_before_it(qgis_app, tmp_path, monkeypatch,
                                                                              raster_pair):
    """QA round 13 (Windows, simulated): the dock replaced the layers showing an output only after the run, but
    Windows cannot replace a file QGIS holds open, so re-running into a loaded output failed at its very end."""
    import shutil
    from types import SimpleNamespace

    from qgis.core import QgsProject, QgsRasterLayer

    import claire.claire_plugin.core.io.atomic as atomic
    from claire.claire_plugin.gui.dock import release_outputs

    out = str(tmp_path / "landcover.tif")
    shutil.copy(raster_pair["optical"], out)
    layer = QgsRasterLayer(out, "Land cover of before", "gdal")
    QgsProject.instance().addMapLayer(layer)
    params = SimpleNamespace(output=out, confidence=None, reliance=None, cloud=None, unfamiliar=None)
    assert release_outputs(params) == [] and QgsProject.instance().mapLayer(layer.id()) is not None  # not Windows
    monkeypatch.setattr(atomic, "WINDOWS", True)
    assert release_outputs(params) == ["Land cover of before"]
    assert not QgsProject.instance().mapLayersByName("Land cover of before")


def test_a_model_without_familiarity_gets_advice_for_how_it_was_trained(qgis_app):
    """Review of QA round 13: a folder-trained model too small for familiarity statistics was told to spread its
    polygons wider."""
    from claire.claire_plugin.gui.results import trust_html

    note = "not measured: the training images (their training part) hold 8 cells of 32 px, fewer than the 256"
    folder = {"training": {"data": "tm32", "familiarity": note}}
    polygons = {"training": {"data": "polygons", "labels": {"kind": "polygons"}, "familiarity": note},
                "metrics": {"heldout_polygons": {"macro_f1": 0.8}}}
    said = trust_html({}, folder)
    assert "hold 8 cells" in said and "more or larger images" in said and "polygons" not in said
    assert "polygons spread wider" in trust_html({}, polygons)


def test_the_run_switches_are_not_listed_as_files_to_write(qgis_app):
    """QA (round 19, desktop): "SAR fills optical gaps" and "snow check (NDSI)" sat under "Also write", though
    they write nothing: they change the map. They have their own heading, below the outputs."""
    from qgis.PyQt.QtWidgets import QLabel

    from claire.claire_plugin.gui.dock import ClaireDock

    dock = ClaireDock(None)
    labels = {w.text(): w for w in dock.findChildren(QLabel) if w.text() in ("Also write", "While classifying")}
    assert set(labels) == {"Also write", "While classifying"}

    def y(widget) -> int:
        return widget.mapTo(dock, widget.rect().topLeft()).y()

    dock.resize(300, 2000)
    dock.show()
    try:
        assert y(labels["Also write"]) < y(dock.want_unfamiliar) < y(labels["While classifying"]) < \
            y(dock.fill_from_sar) < y(dock.snow_check)
    finally:
        dock.hide()
        dock.deleteLater()


def test_a_word_just_over_the_limit_is_made_breakable(qgis_app):
    """Mutation check (round 19): the threshold is `longest` characters (24), not a multiple of it."""
    from claire.claire_plugin.gui.widgets import ZWSP, breakable_text

    assert ZWSP in breakable_text("x" * 30) and ZWSP not in breakable_text("x" * 24)


def test_a_forest_in_the_project_folder_is_not_offered_as_a_base(qgis_app, tmp_path, monkeypatch):
    """Mutation check (round 19): "Start from" leaves out a forest found in the project folder too."""
    from claire.claire_plugin.gui import picker as picker_module
    from claire.models.card_schema import FOREST

    forest = str(tmp_path / "forest.safetensors")
    open(forest, "wb").close()
    monkeypatch.setattr(picker_module, "project_checkpoints", lambda most=12: [forest])
    real = picker_module.read_card_safely
    monkeypatch.setattr(picker_module, "read_card_safely", lambda p: {"arch": FOREST} if p == forest else real(p))
    assert picker_module.CheckpointPicker(None, show_card=False, bases_only=True).combo.findData(forest) < 0
    assert picker_module.CheckpointPicker(None, show_card=False).combo.findData(forest) >= 0
