"""claire:train in real QGIS: polygons drawn by the test -> checkpoint, report, classified scene."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import rasterio

from claire.tests.fixtures.helpers import synthetic_scene, write_raster
from claire.tests.fixtures.vectors import TRAIN_NAMES as NAMES
from claire.tests.fixtures.vectors import box_wkt, train_scene, write_vector

FAST = {"EPOCHS": 2, "STEPS_PER_EPOCH": 1, "BATCH_SIZE": 2, "CROP": 64, "RF_TREES": 10, "DEVICE": 1}


@pytest.fixture
def scene(tmp_path):
    s = train_scene(tmp_path)
    return {"OPTICAL": s["optical"], "SAR": s["sar"], "LABELS": s["labels"], "FIELD": "class",
            "CHECKPOINT": s["checkpoint"]}


def _train(scene, tmp_path, **extra):
    """claire:train with the FAST settings and a classified scene: (results, log lines, checkpoint, report,
    classified map)."""
    import processing
    from qgis.core import QgsProcessingFeedback

    log = []

    class Feedback(QgsProcessingFeedback):
        def pushInfo(self, info):  # noqa: N802
            log.append(info)

    out, report, classified = (str(tmp_path / n) for n in ("mine.safetensors", "report.json", "map.tif"))
    res = processing.run("claire:train", {**scene, **FAST, "OUTPUT": out, "REPORT": report,
                                          "CLASSIFIED": classified, **extra}, feedback=Feedback())
    return res, log, out, report, classified


def test_train_writes_checkpoint_report_and_classified_scene(claire_plugin, scene, tmp_path):
    from claire.models.checkpoint import read_card

    res, log, out, report, classified = _train(scene, tmp_path)
    card = read_card(out)
    assert [c["name"] for c in card["classes"]] == ["water", "crops", "built area"]
    with open(report) as f:
        saved = json.load(f)
    assert res["MACRO_F1"] == saved["arms"]["finetuned"]["clear"]["macro_f1"]
    assert res["MACRO_F1_LOW"] is None and res["MACRO_F1_HIGH"] is None  # one held-out polygon per class
    assert 0.0 <= res["OA"] <= 1.0 and res["REPORT_HTML"] == str(tmp_path / "report.html")
    assert os.path.exists(res["REPORT_HTML"])
    assert saved["training"]["epochs"] == 2
    assert any(line.startswith("epoch 2 of 2") for line in log)
    assert any("leakage check" in line for line in log)
    rate = saved["training"]["lr_note"]  # the rate and why, in the log too
    assert rate.startswith("learning rate ") and f"note: {rate}" in log
    with rasterio.open(classified) as ds:
        assert ds.shape == (64, 96) and set(np.unique(ds.read(1))) <= {1, 4, 5}
    assert os.path.exists(str(tmp_path / "map.qml"))
    assert res["HELD_OUT"] == str(tmp_path / "mine.heldout.gpkg") == saved["held_out_layer"]
    assert os.path.exists(res["HELD_OUT"])


def test_the_held_out_polygons_are_loaded_with_dashed_outlines(claire_plugin, scene, tmp_path):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject, QgsVectorLayer
    from qgis.PyQt.QtCore import Qt

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    out = str(tmp_path / "mine.safetensors")
    res = processing.run("claire:train", {**scene, **FAST, "OUTPUT": out, "REPORT": str(tmp_path / "r.json")},
                         context=context, feedback=QgsProcessingFeedback())
    source = f"{res['HELD_OUT']}|layername=held_out"
    assert context.willLoadLayerOnCompletion(source)
    details = context.layerToLoadOnCompletionDetails(source)
    # named as the dock names it (two runs told apart), kept over "prefer file names" (QGIS 3.40 gave "held_out")
    assert details.name == "Held-out polygons (mine.heldout)"
    assert not hasattr(details, "forceName") or details.forceName
    layer = QgsVectorLayer(source, details.name, "ogr")
    assert layer.isValid() and layer.featureCount() == 3
    assert details.postProcessor() is not None  # held for the session (processing.base.POST_PROCESSORS)
    from claire.claire_plugin.processing.common import HeldOutPostProcessor

    HeldOutPostProcessor().postProcessLayer(layer, None, None)
    line = layer.renderer().symbol().symbolLayer(0)
    assert line.fillColor().alpha() == 0 and line.strokeStyle() == Qt.PenStyle.DashLine


def test_layer_name_of_a_geopackage_reaches_the_labels(claire_plugin, scene, tmp_path):
    from qgis.core import QgsApplication, QgsProcessingContext, QgsVectorLayer

    layer = QgsVectorLayer(f"{scene['LABELS']}|layername=labels", "my labels", "ogr")
    assert layer.isValid()
    alg = QgsApplication.processingRegistry().createAlgorithmById("claire:train")
    context = QgsProcessingContext()
    params = alg.build_params({**scene, "LABELS": layer, "OUTPUT": str(tmp_path / "m.safetensors"),
                               "REPORT": str(tmp_path / "r.json"), **FAST}, context)
    assert params.labels == scene["LABELS"] and params.layer == "labels" and params.field == "class"
    assert params.config.epochs == 2 and params.config.device == "cpu" and params.rf_trees == 10
    assert params.sar_units == "auto"


def test_the_crs_given_to_a_shapefile_without_prj_in_qgis_is_used(claire_plugin, scene, tmp_path):
    """A shapefile without .prj whose CRS the user set in QGIS trained nowhere: the algorithm read the file, which
    has none, and refused it. The layer's CRS now reads it; the file is left as it is."""
    from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsProcessingContext, QgsVectorLayer

    from claire.tests.fixtures.vectors import train_features

    shp = write_vector(tmp_path / "nocrs.shp", train_features(), epsg=None, driver="ESRI Shapefile")
    assert not os.path.exists(str(tmp_path / "nocrs.prj"))
    layer = QgsVectorLayer(shp, "no prj", "ogr")
    assert layer.isValid()
    alg = QgsApplication.processingRegistry().createAlgorithmById("claire:train")
    build = {**scene, "LABELS": layer, "OUTPUT": str(tmp_path / "m.safetensors"), "REPORT": str(tmp_path / "r.json")}
    assert alg.build_params(build, QgsProcessingContext()).labels_crs is None
    layer.setCrs(QgsCoordinateReferenceSystem("EPSG:32631"))
    assert alg.build_params(build, QgsProcessingContext()).labels_crs == "EPSG:32631"
    res, _, out, _, _ = _train({**scene, "LABELS": layer}, tmp_path)
    assert os.path.exists(out) and res["MACRO_F1"] is not None
    assert not os.path.exists(str(tmp_path / "nocrs.prj"))
    del alg, layer, build, res


def test_labels_and_label_raster_together_are_refused(claire_plugin, scene, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    _, _, labels = synthetic_scene(64, 96)
    raster = write_raster(tmp_path / "lab.tif", labels[None])
    out = str(tmp_path / "m.safetensors")
    with pytest.raises(QgsProcessingException, match="not both"):
        processing.run("claire:train", {**scene, **FAST, "LABEL_RASTER": raster, "OUTPUT": out,
                                        "REPORT": str(tmp_path / "r.json")})
    assert not os.path.exists(out)


def test_a_filtered_layer_is_refused_naming_the_fix(claire_plugin, scene, tmp_path):
    from qgis.core import QgsVectorLayer

    from claire.claire_plugin.layers.layers import vector_file

    layer = QgsVectorLayer(scene["LABELS"], "labels", "ogr")
    layer.setSubsetString("\"class\" = 'water'")
    path, _, problem = vector_file(layer)
    assert path is None and "filter" in problem and "Save Features As" in problem


def test_cancel_writes_nothing(claire_plugin, scene, tmp_path):
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    feedback = QgsProcessingFeedback()
    feedback.cancel()
    out = str(tmp_path / "m.safetensors")
    with pytest.raises(QgsProcessingException, match="[Cc]ancel"):
        processing.run("claire:train", {**scene, **FAST, "OUTPUT": out, "REPORT": str(tmp_path / "r.json")},
                       feedback=feedback)
    assert not os.path.exists(out) and not os.path.exists(str(tmp_path / "r.json"))


@pytest.mark.parametrize("choice", [1, 2, 3])
def test_train_writes_the_forest_and_classifies_with_the_chosen_model(claire_plugin, scene, tmp_path, choice):
    """FOREST_CHECKPOINT and ENSEMBLE_CHECKPOINT come back; CLASSIFY_WITH 1 maps with the forest, 3 with the
    two averaged, 2 with the highest-scoring of the three, and the log says which and why."""
    from claire.models.checkpoint import read_card

    res, log, out, report, classified = _train(scene, tmp_path, CLASSIFY_WITH=choice)
    forest, both = res["FOREST_CHECKPOINT"], res["ENSEMBLE_CHECKPOINT"]
    assert forest == str(tmp_path / "mine.forest.safetensors") and read_card(forest)["arch"] == "forest"
    assert both == str(tmp_path / "mine.ensemble.safetensors") and read_card(both)["arch"] == "ensemble"
    with open(report) as f:
        arms = json.load(f)["arms"]
    scores = {path: arms[arm]["clear"]["macro_f1"]
              for path, arm in ((out, "finetuned"), (forest, "rf_optical_sar"), (both, "ensemble"))}
    best = max(scores, key=lambda p: (scores[p], p == out))
    used = {1: forest, 2: best, 3: both}[choice]
    assert f"classifying {scene['OPTICAL']} with {used}" in log
    if choice == 2:
        assert any(line.startswith("classifying with ") and "held-out macro-F1" in line for line in log)
    with rasterio.open(classified) as ds:
        assert set(np.unique(ds.read(1))) <= {1, 4, 5}


def test_classify_with_the_forest_without_one_is_refused(claire_plugin, scene, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    out = str(tmp_path / "m.safetensors")
    with pytest.raises(QgsProcessingException, match=r"\(RF_TREES\) is 0"):
        processing.run("claire:train", {**scene, **FAST, "RF_TREES": 0, "OUTPUT": out,
                                        "REPORT": str(tmp_path / "r.json"), "CLASSIFIED": str(tmp_path / "c.tif"),
                                        "CLASSIFY_WITH": 1})
    assert not os.path.exists(out), "refused before training"


def test_a_validation_layer_of_two_polygons_per_class_gives_the_interval(claire_plugin, scene, tmp_path):
    boxes = [(1, 30, 20), (1, 10, 24), (4, 30, 50), (4, 55, 50), (5, 55, 85), (5, 40, 88)]
    val = write_vector(tmp_path / "val.gpkg", [(box_wkt(r, c, r + 4, c + 4), NAMES[v]) for v, r, c in boxes])
    res, log, _, report, _ = _train(scene, tmp_path, VALIDATION=val, CLASSIFIED=None)
    with open(report) as f:
        saved = json.load(f)
    lo, hi = saved["arms"]["finetuned"]["clear"]["macro_f1_ci95"]
    assert (res["MACRO_F1_LOW"], res["MACRO_F1_HIGH"]) == (lo, hi) and lo <= hi
    assert any("95 % interval" in line for line in log)
    assert res["HELD_OUT"] is None and not os.path.exists(tmp_path / "mine.heldout.gpkg")  # its own split: none


def test_held_out_points_are_drawn_as_rings(claire_plugin):
    from qgis.core import QgsVectorLayer
    from qgis.PyQt.QtCore import Qt

    from claire.claire_plugin.layers.style import style_held_out

    points = QgsVectorLayer("Point?crs=EPSG:32631", "held out", "memory")
    style_held_out(points)
    ring = points.renderer().symbol().symbolLayer(0)
    assert ring.color().alpha() == 0 and ring.strokeColor().name() == "#000000"
    polygons = QgsVectorLayer("Polygon?crs=EPSG:32631", "held out", "memory")
    style_held_out(polygons)
    assert polygons.renderer().symbol().symbolLayer(0).strokeStyle() == Qt.PenStyle.DashLine


def test_held_out_layer_is_named_after_its_geometry(claire_plugin, tmp_path):
    from osgeo import ogr

    from claire.claire_plugin.core.training.heldout import LAYER
    from claire.claire_plugin.layers.style import held_out_layer

    for kind, wkt in (("points", "POINT (500010 4999990)"), ("polygons", "POLYGON ((0 0, 10 0, 10 10, 0 0))")):
        path = str(tmp_path / f"{kind}.heldout.gpkg")
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
        geom = ogr.CreateGeometryFromWkt(wkt)
        lyr = ds.CreateLayer(LAYER, None, geom.GetGeometryType())
        feat = ogr.Feature(lyr.GetLayerDefn())
        feat.SetGeometry(geom)
        lyr.CreateFeature(feat)
        feat = lyr = ds = None
        assert held_out_layer(path, "mine").name() == f"Held-out {kind} (mine)"
        assert held_out_layer(path).name() == f"Held-out {kind}"


def test_macroclass_field_trains_and_classify_maps_the_macroclasses(claire_plugin, scene, tmp_path):
    """A macroclass field (SCP's MC ID): the log scores both levels, claire:classify's LEVEL maps the macroclasses
    with their names and colours in the style."""
    import processing
    from qgis.core import QgsRasterLayer

    from claire.models.checkpoint import read_card
    from claire.tests.fixtures.vectors import train_features

    feats = train_features()
    macro = {"water": "wet", "crops": "land", "built area": "land"}
    labels = write_vector(tmp_path / "mc.gpkg", feats, extra=[("mc", [macro[v] for _, v in feats])])
    res, log, out, _, classified = _train({**scene, "LABELS": labels}, tmp_path, MACRO_FIELD="mc", LEVEL=1)
    with rasterio.open(classified) as ds:  # CLASSIFIED at the macroclass level
        assert set(np.unique(ds.read(1))) <= {1, 2, ds.nodata}
    card = read_card(out)
    assert [m["name"] for m in card["macroclasses"]] == ["land", "wet"]
    assert any("macroclasses (field mc: land = crops, built area; wet = water)" in line for line in log)
    mapped = str(tmp_path / "macro.tif")
    processing.run("claire:classify", {"OPTICAL": scene["OPTICAL"], "SAR": scene["SAR"], "CHECKPOINT": out,
                                       "OUTPUT": mapped, "LEVEL": 1, "DEVICE": 1})
    with rasterio.open(mapped) as ds:
        assert set(np.unique(ds.read(1))) <= {1, 2, ds.nodata}
    layer = QgsRasterLayer(mapped, "macro", "gdal")  # the QML sidecar styles it
    assert [c.label for c in layer.renderer().classes()] == ["land", "wet"]
    del layer
    with pytest.raises(Exception, match="this checkpoint has no macroclasses"):
        processing.run("claire:classify", {"OPTICAL": scene["OPTICAL"], "SAR": scene["SAR"],
                                           "CHECKPOINT": scene["CHECKPOINT"], "OUTPUT": str(tmp_path / "x.tif"),
                                           "LEVEL": 1, "DEVICE": 1})
    assert not os.path.exists(str(tmp_path / "x.tif"))
    with pytest.raises(Exception, match=r"\(LEVEL\): the macroclass level maps the macroclasses of Macroclass field \(MACRO_FIELD\)"):
        _train(scene, tmp_path / "none", LEVEL=1)
    assert not os.path.exists(str(tmp_path / "none"))


def _label_raster(tmp_path) -> str:
    """The scene's training boxes as a label raster (codes 1 water, 4 crops, 5 built area; nodata 0)."""
    from claire.tests.fixtures.vectors import TRAIN_BOXES

    lab = np.zeros((64, 96), np.uint8)
    for v, r, c in TRAIN_BOXES:
        lab[r:r + 5, c:c + 5] = v
    return write_raster(tmp_path / "lab.tif", lab, nodata=0)


def test_class_names_name_the_label_rasters_codes(claire_plugin, scene, tmp_path):
    """CLASS_NAMES is `claire train --classes`: the label raster's codes named in the card."""
    import processing
    from qgis.core import QgsProcessingFeedback

    from claire.models.checkpoint import read_card

    out = str(tmp_path / "m.safetensors")
    params = {**scene, **FAST, "LABELS": None, "FIELD": None, "LABEL_RASTER": _label_raster(tmp_path),
              "CLASS_NAMES": " 1:water:#0000ff, 4:crops,5:built area ", "RF_TREES": 0, "OUTPUT": out,
              "REPORT": str(tmp_path / "r.json")}
    processing.run("claire:train", params, feedback=QgsProcessingFeedback())
    assert [(c["value"], c["name"], c.get("color")) for c in read_card(out)["classes"]] == [
        (1, "water", "#0000ff"), (4, "crops", "#e49635"), (5, "built area", "#c4281b")]


def test_class_names_problems_are_named_as_parameters(claire_plugin, scene, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    out = str(tmp_path / "m.safetensors")
    base = {**scene, **FAST, "OUTPUT": out, "REPORT": str(tmp_path / "r.json")}
    with pytest.raises(QgsProcessingException, match=r"Class names of the label raster \(CLASS_NAMES\): it names the codes of a label raster "
                                                  r"\(LABEL_RASTER\).*Class field \(FIELD\)"):
        processing.run("claire:train", {**base, "CLASS_NAMES": "1:water"})
    raster = {**base, "LABELS": None, "FIELD": None, "LABEL_RASTER": _label_raster(tmp_path)}
    with pytest.raises(QgsProcessingException) as err:
        processing.run("claire:train", {**raster, "CLASS_NAMES": "1:water,9:trees"})
    assert "(CLASS_NAMES) names code(s) 9, which the label raster" in str(err.value) and "--" not in str(err.value)
    assert not os.path.exists(out)


def test_a_temporary_checkpoint_is_said_to_be_deleted_when_qgis_closes(claire_plugin, scene, tmp_path):
    """OUTPUT left as a temporary output wrote the new model into QGIS's temporary folder without a word."""
    import processing
    from qgis.core import QgsProcessingFeedback

    warnings = []

    class Feedback(QgsProcessingFeedback):
        def pushWarning(self, warning):  # noqa: N802
            warnings.append(warning)

    report = str(tmp_path / "r.json")
    res = processing.run("claire:train", {**scene, **FAST, "OUTPUT": "TEMPORARY_OUTPUT", "RF_TREES": 0,
                                          "REPORT": report}, feedback=Feedback())
    assert os.path.exists(res["OUTPUT"])
    said = [w for w in warnings if w.startswith("OUTPUT is a temporary file")]
    assert len(said) == 2 and res["OUTPUT"] in said[-1] and "deletes it" in said[-1], warnings
    warnings.clear()
    processing.run("claire:train", {**scene, **FAST, "OUTPUT": str(tmp_path / "kept.safetensors"), "RF_TREES": 0,
                                    "REPORT": report}, feedback=Feedback())
    assert not [w for w in warnings if "temporary" in w]
    assert any(w.startswith("no random forest was trained (RF_TREES is 0): FOREST_CHECKPOINT") for w in warnings)


def test_the_seed_is_a_parameter_and_reaches_the_training(claire_plugin, scene, tmp_path):
    """QA (consistency): claire:train had no seed (always 0), so a Processing user could not see how much the
    held-out draw moves the scores. SEED (advanced, default 0) is the training's seed."""
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingParameterDefinition

    alg = QgsApplication.processingRegistry().algorithmById("claire:train")
    base = {**scene, **FAST, "OUTPUT": str(tmp_path / "m.safetensors"), "REPORT": str(tmp_path / "r.json")}
    assert alg.build_params(base, QgsProcessingContext()).config.seed == 0
    assert alg.build_params(dict(base, SEED=7), QgsProcessingContext()).config.seed == 7
    seed = alg.parameterDefinition("SEED")
    assert seed.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced and seed.defaultValue() == 0
    assert "held-out split" in alg.shortHelpString() or "held-out split" in alg.helpString()


def test_threads_are_kept_as_given_and_restored_afterwards(claire_plugin, scene, tmp_path):
    """QA (eleventh round, left then): claire:train had no thread setting, so its weights could not be made to
    agree with `claire train --threads N`'s. THREADS keeps the count all along (no steering) on the torch thread
    and gives the thread its count back afterwards."""
    import torch

    from claire.claire_plugin.core.runtime.torch_thread import call

    before = call(torch.get_num_threads)
    res, _, _, report, _ = _train(scene, tmp_path, THREADS=1, CLASSIFIED=None)
    with open(report) as f:
        threads = json.load(f)["training"]["threads"]
    assert threads["steps_at_threads"] == {"1": 2} and threads["notes"] == []
    assert call(torch.get_num_threads) == before


def test_integer_codes_with_a_name_field_keep_the_codes_and_carry_the_names(claire_plugin, scene, tmp_path):
    """QA (scale of labels): in QGIS integer codes were named 'class 101' and CLASS_NAMES was refused, so an agency
    had to give up its codes for names; NAME_FIELD, as the command line's --name-field, keeps both."""
    from claire.models.checkpoint import read_card
    from claire.tests.fixtures.vectors import TRAIN_BOXES, TRAIN_NAMES, box_wkt, write_vector

    codes = {1: 31, 4: 21, 5: 11}
    labels = write_vector(tmp_path / "coded.gpkg", [(box_wkt(r, c, r + 5, c + 5), codes[v]) for v, r, c in TRAIN_BOXES],
                          field="code", extra=[("label", [TRAIN_NAMES[v].title() for v, _, _ in TRAIN_BOXES])])
    res, _, out, _, _ = _train({**scene, "LABELS": labels, "FIELD": "code"}, tmp_path, NAME_FIELD="label",
                               CLASSIFIED=None)
    assert [(c["value"], c["name"]) for c in read_card(out)["classes"]] == [(11, "Built Area"), (21, "Crops"),
                                                                            (31, "Water")]


def test_a_zipped_shapefile_trains_as_qgis_opens_it(claire_plugin, scene, tmp_path):
    """QA round 16: QGIS opens a dropped .zip as /vsizip/...; the layer's file lost its /vsizip/ prefix and
    claire:train said it could not open the .zip (the command line refused the /vsizip/ name as not existing)."""
    import zipfile

    from osgeo import gdal
    from qgis.core import QgsVectorLayer

    from claire.claire_plugin.layers.layers import vector_file

    shp = str(tmp_path / "labels.shp")
    gdal.VectorTranslate(shp, scene["LABELS"], format="ESRI Shapefile")
    archive = str(tmp_path / "labels.zip")
    with zipfile.ZipFile(archive, "w") as z:
        for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
            if os.path.exists(shp[:-4] + ext):
                z.write(shp[:-4] + ext, "labels" + ext)
    layer = QgsVectorLayer(f"/vsizip/{archive}", "zipped", "ogr")
    assert layer.isValid()
    path, _, problem = vector_file(layer)
    assert problem is None and path.startswith("/vsizip/") and archive in path
    res, _, out, _, _ = _train(scene, tmp_path, LABELS=layer)
    assert os.path.exists(out) and res["OUTPUT"] == out


def test_the_crs_the_user_gives_a_layer_in_qgis_is_the_one_read(claire_plugin, scene, tmp_path):
    """QA round 16: a GeoJSON of UTM coordinates without a "crs" member (GDAL reads it as WGS 84), given its CRS in
    QGIS's layer properties, was refused as not fitting 'WGS 84'; the run now reads it as QGIS shows it."""
    import json

    from osgeo import gdal
    from qgis.core import QgsCoordinateReferenceSystem, QgsVectorLayer

    plain = str(tmp_path / "utm.geojson")
    gdal.VectorTranslate(plain, scene["LABELS"], format="GeoJSON")
    with open(plain) as fh:
        doc = json.load(fh)
    doc.pop("crs", None)  # the coordinates stay metres of the UTM zone
    with open(plain, "w") as fh:
        json.dump(doc, fh)
    layer = QgsVectorLayer(plain, "utm", "ogr")
    assert layer.crs().authid() == "EPSG:4326"
    layer.setCrs(QgsCoordinateReferenceSystem("EPSG:32631"))
    res, _, out, _, _ = _train(scene, tmp_path, LABELS=layer)
    assert os.path.exists(out) and res["OUTPUT"] == out


def test_one_geometry_kind_of_a_mixed_file_is_refused_naming_the_export(claire_plugin, scene, tmp_path):
    """QA round 16 (review): QGIS shows a GeoJSON of polygons and points as two layers; the polygons' layer was read
    as the whole file (its points trained as one-pixel polygons, later refused as a mix the user had not chosen)."""
    import json

    from osgeo import gdal
    from qgis.core import QgsVectorLayer

    from claire.claire_plugin.layers.layers import vector_file

    plain = str(tmp_path / "mixed.geojson")
    gdal.VectorTranslate(plain, scene["LABELS"], format="GeoJSON")
    doc = json.loads(open(plain).read())
    x, y = doc["features"][0]["geometry"]["coordinates"][0][0]
    doc["features"].append({"type": "Feature", "properties": {"class": "water"},
                            "geometry": {"type": "Point", "coordinates": [x, y]}})
    open(plain, "w").write(json.dumps(doc))
    layer = QgsVectorLayer(f"{plain}|geometrytype=Polygon", "polygons only", "ogr")
    assert layer.isValid()
    path, _, problem = vector_file(layer)
    assert path is None and "shows only the polygon features" in problem and "Save Features As" in problem
