"""claire_plugin.qgis_compat: the API forms of the running QGIS, without deprecation warnings (QGIS 3.40 warned
about QgsField's QVariant constructor and QgsMapLayerProxyModel.Filter flags; make test-debian13 runs this there)."""
from __future__ import annotations

import warnings

import pytest


def test_fields_of_every_kind_without_deprecation_warnings(qgis_app):
    from claire.claire_plugin.qgis_compat import new_field

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        fields = {kind: new_field(f"f_{kind}", kind, 80 if kind == "string" else 0)
                  for kind in ("int", "int64", "double", "string")}
    assert fields["string"].isNumeric() is False and fields["string"].length() == 80
    assert fields["int"].isNumeric() and fields["int64"].isNumeric() and fields["double"].isNumeric()
    from qgis.PyQt.QtCore import QVariant

    assert [fields[k].type() for k in ("int", "int64", "double", "string")] == [
        QVariant.Type.Int, QVariant.Type.LongLong, QVariant.Type.Double, QVariant.Type.String]
    with pytest.raises(KeyError):
        new_field("x", "date")


def test_layer_filters_keep_polygons_and_points_only(qgis_app, tmp_path):
    from qgis.core import QgsProject, QgsVectorLayer
    from qgis.gui import QgsMapLayerComboBox

    from claire.claire_plugin.qgis_compat import layer_filters

    layers = [QgsVectorLayer(f"{kind}?crs=EPSG:4326", kind, "memory") for kind in ("Polygon", "Point", "LineString")]
    QgsProject.instance().addMapLayers(layers)
    try:
        combo = QgsMapLayerComboBox()
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            combo.setFilters(layer_filters("PolygonLayer", "PointLayer"))
        offered = {combo.layer(i).name() for i in range(combo.count())}
        assert offered == {"Polygon", "Point"}
    finally:
        for layer in layers:
            QgsProject.instance().removeMapLayer(layer.id())
