"""claire:grow_polygons in real QGIS: labelled points grown into training polygons, loaded as a layer."""
from __future__ import annotations

import numpy as np
import pytest

from claire.tests.fixtures.helpers import synthetic_scene, write_raster
from claire.tests.fixtures.vectors import ORIGIN, RES


def _inputs(tmp_path):
    """Optical, SAR and survey points as paths: a QgsVectorLayer of the test would outlive QGIS (a failed run's
    exception, which QGIS keeps, holds the test's frame) and crash the interpreter's exit."""
    from rasterio.crs import CRS

    from claire.claire_plugin.core.io.points import write_point_layer

    opt, sar, _ = synthetic_scene(64, 96)
    o = write_raster(str(tmp_path / "o.tif"), opt)
    s = write_raster(str(tmp_path / "s.tif"), sar, descriptions=["VV", "VH"])
    records = [(ORIGIN[0] + col * RES, ORIGIN[1] - row * RES, {"cover": cover})
               for row, col, cover in ((30.5, 15.5, "water"), (55.5, 85.5, "built area"), (-5.0, 10.0, "water"))]
    path = write_point_layer(str(tmp_path / "survey.gpkg"), "survey", CRS.from_epsg(32631).to_wkt(),
                             [("cover", "str")], records, "test points")
    return o, s, path


def test_grow_polygons_writes_one_polygon_per_usable_point(claire_plugin, tmp_path, tiny_checkpoint):
    import processing
    from osgeo import ogr

    o, s, points = _inputs(tmp_path)
    out = str(tmp_path / "grown.gpkg")
    res = processing.run("claire:grow_polygons", {"OPTICAL": o, "SAR": s, "POINTS": points, "FIELD": "cover",
                                                  "CHECKPOINT": tiny_checkpoint, "OUTPUT": out})
    assert res["POLYGONS"] == 2 and res["SKIPPED"] == 1 and res["OUTPUT"] == out
    ds = ogr.Open(out)
    feats = list(ds.GetLayerByName("training"))
    assert [f.GetField("cover") for f in feats] == ["water", "built area"]
    # water: the 41 px square around row 30, col 15, cut by the raster's left edge and the water's edge (col 32)
    assert [f.GetField("pixels") for f in feats][0] == 41 * 32
    assert feats[0].GetGeometryRef().GetArea() == pytest.approx(41 * 32 * 100.0)


def test_grow_polygons_refuses_a_missing_field_and_has_help(claire_plugin, tmp_path):
    import processing
    from qgis.core import QgsApplication, QgsProcessingException

    o, s, points = _inputs(tmp_path)
    with pytest.raises(QgsProcessingException):
        processing.run("claire:grow_polygons", {"OPTICAL": o, "SAR": s, "POINTS": points, "FIELD": "nope",
                                                "OUTPUT": str(tmp_path / "x.gpkg")})
    alg = QgsApplication.processingRegistry().algorithmById("claire:grow_polygons")
    assert alg is not None and alg.shortHelpString() and not alg.icon().isNull()
    assert [p.name() for p in alg.parameterDefinitions() if not p.help()] == []
    assert not (tmp_path / "x.gpkg").exists()
    assert np.isfinite(alg.parameterDefinition("TOLERANCE").defaultValue())


def test_grown_polygons_are_coloured_as_the_checkpoints_classes(claire_plugin, tmp_path, tiny_checkpoint,
                                                                 tiny_classes):
    import processing
    from qgis.core import QgsCategorizedSymbolRenderer, QgsProcessingContext, QgsProject, QgsVectorLayer

    from claire.models.checkpoint import read_card

    o, s, points = _inputs(tmp_path)
    out = str(tmp_path / "grown.gpkg")
    context = QgsProcessingContext()
    processing.run("claire:grow_polygons", {"OPTICAL": o, "SAR": s, "POINTS": points, "FIELD": "cover",
                                            "CHECKPOINT": tiny_checkpoint, "OUTPUT": out}, context=context)
    details = context.layersToLoadOnCompletion()[out]
    layer = QgsVectorLayer(out, "grown", "ogr")
    QgsProject.instance().addMapLayer(layer)  # the project owns it: freed before QGIS exits
    assert details.postProcessor() is not None  # held for the session (processing.base.POST_PROCESSORS)
    from claire.claire_plugin.processing.common import ClassesPostProcessor

    ClassesPostProcessor("cover", read_card(tiny_checkpoint)).postProcessLayer(layer, None, None)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == "cover"
    colours = {c["name"]: c["color"] for c in tiny_classes}
    assert {c.value(): c.symbol().color().name() for c in renderer.categories()} == \
        {"built area": colours["built area"], "water": colours["water"]}
    QgsProject.instance().removeMapLayer(layer.id())


def test_grow_polygons_messages_name_the_parameters(claire_plugin, tmp_path, tiny_checkpoint):
    """The engine's messages reach Processing with its parameter names (FIELD, SAR_UNITS), not the command line's."""
    import processing
    from qgis.core import QgsProcessingException

    o, s, points = _inputs(tmp_path)
    base = {"OPTICAL": o, "SAR": s, "POINTS": points, "FIELD": "cover", "CHECKPOINT": tiny_checkpoint,
            "OUTPUT": str(tmp_path / "grown.gpkg")}
    for extra, expected in (({"FIELD": "klass"}, "(FIELD)"), ({"SAR_UNITS": 2}, "(SAR_UNITS) = 1 (dB)")):
        with pytest.raises(QgsProcessingException) as info:
            processing.run("claire:grow_polygons", {**base, **extra})
        assert expected in str(info.value) and "--" not in str(info.value), str(info.value)


def test_the_crs_given_to_points_without_prj_in_qgis_is_used(claire_plugin, tmp_path, tiny_checkpoint):
    """A shapefile of points without .prj whose CRS the user set in QGIS was refused by grow_polygons (and
    suggest) while claire:train took it: the layer's CRS now reads it, the file is left as it is."""
    import os

    import processing
    from qgis.core import QgsCoordinateReferenceSystem, QgsVectorLayer

    from claire.tests.fixtures.vectors import point_wkt, write_vector

    o, s, _ = _inputs(tmp_path)
    shp = write_vector(tmp_path / "nocrs.shp", [(point_wkt(30, 15), "water")], field="cover", epsg=None,
                       driver="ESRI Shapefile")
    layer = QgsVectorLayer(shp, "no prj", "ogr")
    layer.setCrs(QgsCoordinateReferenceSystem("EPSG:32631"))
    res = processing.run("claire:grow_polygons", {"OPTICAL": o, "SAR": s, "POINTS": layer, "FIELD": "cover",
                                                  "CHECKPOINT": tiny_checkpoint, "OUTPUT": str(tmp_path / "g.gpkg")})
    assert res["POLYGONS"] == 1 and not os.path.exists(str(tmp_path / "nocrs.prj"))
    del layer, res


def test_every_interface_takes_the_same_tolerances_and_widths(claire_plugin, tmp_path, tiny_checkpoint, capsys):
    """The command line took any tolerance above 0 and any width from 3 px, Processing 0.001-10 and 3-1001, the
    dock's wand 0.01-5: one range now, and a value outside it refused before any work."""
    from qgis.core import QgsApplication

    from claire.claire_plugin.cli.main import main
    from claire.claire_plugin.core.training.wand import MAX_WIDTH_RANGE, TOLERANCE_RANGE

    alg = QgsApplication.processingRegistry().algorithmById("claire:grow_polygons")
    tol, width = alg.parameterDefinition("TOLERANCE"), alg.parameterDefinition("MAX_WIDTH")
    assert (tol.minimum(), tol.maximum()) == TOLERANCE_RANGE
    assert (width.minimum(), width.maximum()) == MAX_WIDTH_RANGE
    o, s, points = _inputs(tmp_path)
    base = ["grow-polygons", "--optical", o, "--sar", s, "--points", points, "--field", "cover", "--checkpoint",
            tiny_checkpoint, "--output", str(tmp_path / "g.gpkg")]
    for extra, words in ((["--tolerance", "12"], "between 0.01 and 10 standard deviations (got 12)"),
                         (["--max-width", "5001"], "between 3 and 1001 pixels (got 5001)")):
        assert main(base + extra) == 2
        assert words in capsys.readouterr().err and not (tmp_path / "g.gpkg").exists()


def test_grown_polygons_to_a_temporary_file_are_warned(claire_plugin, tmp_path, tiny_checkpoint):
    """QA round 16 (Processing dialogs): 'check them on the imagery, then train on them', in a file QGIS deletes when
    it closes (the dialog's default output), and nothing said."""
    import processing
    from qgis.core import QgsProcessingFeedback

    said = []

    class Feedback(QgsProcessingFeedback):
        def pushWarning(self, warning):  # noqa: N802
            said.append(warning)

    o, s, points = _inputs(tmp_path)
    processing.run("claire:grow_polygons", {"OPTICAL": o, "SAR": s, "POINTS": points, "FIELD": "cover",
                                            "CHECKPOINT": tiny_checkpoint, "OUTPUT": "TEMPORARY_OUTPUT"},
                   feedback=Feedback())
    assert any(w.startswith("OUTPUT is a temporary file") and "before you edit its polygons" in w for w in said)
