"""Land-cover styling: a paletted renderer from the checkpoint's classes, names and colours."""
from __future__ import annotations

import colorsys
from typing import Iterable, List, Mapping, Optional, Sequence, Union

from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer
from qgis.PyQt.QtGui import QColor

ClassSpec = Mapping[str, object]


def _fallback_color(index: int) -> str:
    """Deterministic, well-separated colour for a class without one (golden-angle hues)."""
    hue = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.65, 0.85)
    return "#{:02x}{:02x}{:02x}".format(int(r * 255), int(g * 255), int(b * 255))


def classes_from(card_or_classes: Union[Mapping[str, object], Sequence[ClassSpec]]) -> List[ClassSpec]:
    """Return the class list of a model card, or the list itself; colours filled where missing."""
    classes = card_or_classes.get("classes", []) if isinstance(card_or_classes, Mapping) else card_or_classes
    filled = []
    for i, cls in enumerate(classes):
        color = cls.get("color") or _fallback_color(i)
        filled.append({**cls, "color": color, "name": cls.get("name") or f"class {cls['value']}"})
    return filled


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
    """Read classes (value, name, colour) from a GeoTIFF's colour table and category names.

    Category names come from GDAL (the GTiff driver keeps them in the .aux.xml sidecar); when the sidecar is
    gone, the `class_<value>` tags embedded in the TIFF are used. (`Band.GetCategoryNames()` of Debian's
    GDAL 3.6 bindings returns None, so this reads `gdal.Info` JSON.)
    """
    from osgeo import gdal

    try:
        info = gdal.Info(path, format="json")
    except RuntimeError:
        return []
    if not info or not info.get("bands"):
        return []
    band = info["bands"][0]
    nodata = band.get("noDataValue")
    names = dict(enumerate(band.get("categories") or []))
    for key, value in (band.get("metadata", {}).get("") or {}).items():
        if key.startswith("class_") and key[6:].isdigit():
            names.setdefault(int(key[6:]), value)
    entries = (band.get("colorTable") or {}).get("entries") or []
    classes = []
    for value in sorted(names):
        name = names[value]
        if not name or (nodata is not None and value == int(nodata)):
            continue
        color = "#808080"
        if value < len(entries):
            r, g, b = entries[value][:3]
            color = "#{:02x}{:02x}{:02x}".format(r, g, b)
        classes.append({"value": value, "name": name, "color": color})
    return classes
