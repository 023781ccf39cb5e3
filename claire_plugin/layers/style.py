"""Land-cover styling: a paletted renderer from the checkpoint's classes, names and colours."""
from __future__ import annotations

from typing import Iterable, List, Mapping, Optional, Sequence, Union

from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer
from qgis.PyQt.QtGui import QColor

ClassSpec = Mapping[str, object]


def classes_from(card_or_classes: Union[Mapping[str, object], Sequence[ClassSpec]]) -> List[ClassSpec]:
    """The class list of a model card (or the list itself), in output order, with colours filled where
    missing (the same deterministic palette as the engine's colour table)."""
    from ...models.palette import classes_with_colors

    classes = card_or_classes.get("classes", []) if isinstance(card_or_classes, Mapping) else card_or_classes
    return [{**c, "name": c.get("name") or f"class {c['value']}"} for c in classes_with_colors({"classes": classes})]


def landcover_renderer(layer: QgsRasterLayer, classes: Iterable[ClassSpec], band: int = 1) -> QgsPalettedRasterRenderer:
    """Build a paletted renderer whose entries are the given classes (value, name, colour)."""
    entries = [
        QgsPalettedRasterRenderer.Class(int(c["value"]), QColor(str(c["color"])), str(c["name"]))
        for c in classes
    ]
    renderer = QgsPalettedRasterRenderer(layer.dataProvider(), band, entries)
    renderer.setOpacity(1.0)
    return renderer


def apply_landcover_style(layer: QgsRasterLayer, card_or_classes, nodata: Optional[int] = None) -> None:
    """Style a classified layer: paletted renderer from the classes; nodata transparent."""
    classes = classes_from(card_or_classes)
    if nodata is None and isinstance(card_or_classes, Mapping):
        nodata = card_or_classes.get("nodata")
    provider = layer.dataProvider()
    if nodata is not None and not provider.sourceHasNoDataValue(1):
        provider.setUserNoDataValue(1, [])
        provider.setNoDataValue(1, float(nodata))
    layer.setRenderer(landcover_renderer(layer, classes))
    layer.triggerRepaint()


def classes_from_raster(path: str) -> List[ClassSpec]:
    """Classes (value, name, colour) read back from a classified GeoTIFF; where it has no colour, the engine's
    palette fills one (distinct colours, as for a card without colours), not one grey for every class."""
    from ..core.accuracy import classes_from_gdal

    return classes_from(classes_from_gdal(path))


def places_layer(path: str, name: str = "Places to label next"):
    """The `label_next` points of `path` (core.suggest.write_places) as a layer: magenta rings numbered by rank,
    drawn above the maps. None when the file holds no such layer."""
    from qgis.core import (
        QgsMarkerSymbol,
        QgsPalLayerSettings,
        QgsTextBufferSettings,
        QgsTextFormat,
        QgsVectorLayer,
        QgsVectorLayerSimpleLabeling,
    )
    from qgis.PyQt.QtGui import QColor

    from ..core.suggest import LAYER

    layer = QgsVectorLayer(f"{path}|layername={LAYER}", name, "ogr")
    if not layer.isValid():
        return None
    layer.renderer().setSymbol(QgsMarkerSymbol.createSimple(
        {"name": "circle", "color": "255,0,255,60", "outline_color": "255,0,255,255", "outline_width": "0.6",
         "size": "5"}))
    settings = QgsPalLayerSettings()
    settings.fieldName = "rank"
    settings.enabled = True
    fmt = QgsTextFormat()
    fmt.setSize(10)
    fmt.setColor(QColor("black"))
    buffer = QgsTextBufferSettings()
    buffer.setEnabled(True)
    buffer.setColor(QColor("white"))
    fmt.setBuffer(buffer)
    settings.setFormat(fmt)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
    layer.setLabelsEnabled(True)
    return layer


def style_held_out(layer) -> None:
    """Draw the held-out polygons (core.training.heldout) over the training layer: a dashed black outline, no fill
    (points: black rings), so that the training polygons' own colours stay visible under them."""
    from qgis.core import QgsFillSymbol, QgsMarkerSymbol, QgsWkbTypes

    if layer.geometryType() == QgsWkbTypes.GeometryType.PointGeometry:
        symbol = QgsMarkerSymbol.createSimple({"name": "circle", "color": "0,0,0,0", "outline_color": "0,0,0,255",
                                               "outline_width": "0.6", "size": "4"})
    else:
        symbol = QgsFillSymbol.createSimple({"color": "0,0,0,0", "outline_color": "0,0,0,255",
                                             "outline_width": "0.7", "outline_style": "dash"})
    layer.renderer().setSymbol(symbol)
    layer.triggerRepaint()


def held_out_layer(path: str, run: Optional[str] = None):
    """The held-out polygons (or points) of a training run (`NAME.heldout.gpkg`) as a styled layer named
    "Held-out polygons" / "Held-out points", with ` (run)` when given; None when unreadable."""
    from qgis.core import QgsVectorLayer, QgsWkbTypes

    from ..core.training.heldout import LAYER

    layer = QgsVectorLayer(f"{path}|layername={LAYER}", "Held-out polygons", "ogr")
    if not layer.isValid():
        return None
    points = layer.geometryType() == QgsWkbTypes.GeometryType.PointGeometry
    layer.setName(f"Held-out {'points' if points else 'polygons'}" + (f" ({run})" if run else ""))
    style_held_out(layer)
    return layer
