"""The Train tab's magic wand: a map tool whose click grows a region over the optical raster
(core.training.wand) and adds it to the training layer as one polygon of the chosen class, in one undoable
edit. Main thread only (QGIS layers and the map canvas)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsFeatureRequest,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.gui import QgsMapToolEmitPoint
from qgis.PyQt.QtCore import Qt

from ..core.errors import ClaireError


class WandTool(QgsMapToolEmitPoint):
    """A left click calls `on_click(point, canvas CRS)`."""

    def __init__(self, canvas, on_click: Callable[[QgsPointXY, QgsCoordinateReferenceSystem], None]) -> None:
        super().__init__(canvas)
        self.canvasClicked.connect(
            lambda p, button: on_click(p, canvas.mapSettings().destinationCrs())
            if button == Qt.MouseButton.LeftButton else None)


def class_choices(layer: Optional[QgsVectorLayer], field: str) -> List[str]:
    """The class values a user may give a wand polygon: the field's value map (as a new training layer has),
    else the values already in the layer, sorted."""
    if layer is None or not field or layer.fields().indexOf(field) < 0:
        return []
    index = layer.fields().indexOf(field)
    config = layer.editorWidgetSetup(index).config() or {}
    mapped = config.get("map")
    if isinstance(mapped, dict):
        return [str(v) for v in mapped.values()]
    if isinstance(mapped, list):
        return [str(v) for item in mapped if isinstance(item, dict) for v in item.values()]
    return sorted(str(v) for v in layer.uniqueValues(index) if v is not None and str(v) not in ("", "NULL"))


def field_value(layer: QgsVectorLayer, field: str, text: str) -> Any:
    """`text` as a value of `field` (an integer code for a numeric field); ClaireError naming the fix."""
    text = (text or "").strip()
    if not text:
        raise ClaireError("Choose or type the class the wand's polygons get.")
    if layer.fields().field(field).isNumeric():
        try:
            return int(text)
        except ValueError:
            raise ClaireError(f"The field '{field}' holds integer codes; '{text}' is not one.") from None
    return text


class SceneCache:
    """The one training Scene the wand reads, kept open while its inputs stay the same."""

    def __init__(self) -> None:
        self.key: Optional[Tuple] = None
        self.scene = None

    def get(self, optical: str, sar: str, card: Dict[str, Any], card_key: str, sar_units: str):
        """The scene of these inputs (opened on first use; ClaireError when they cannot be read)."""
        from ..core.training.scene import Scene

        key = (optical, sar, card_key, sar_units)
        if key != self.key or self.scene is None:
            self.close()
            self.scene = Scene(optical, sar, card, sar_units=sar_units)
            self.key = key
        return self.scene

    def close(self) -> None:
        """Close the scene's rasters."""
        if self.scene is not None:
            self.scene.close()
        self.scene, self.key = None, None


@dataclass
class Added:
    """One wand polygon added to the layer."""

    fid: int
    pixels: int  # pixels of the polygon
    left_out: int  # pixels of the grown region already inside other polygons of the layer
    truncated: bool  # the region reached the edge of the wand's square


def _outside_others(layer: QgsVectorLayer, geometry: QgsGeometry, seed: QgsPointXY,
                    to_raster: QgsCoordinateTransform) -> QgsGeometry:
    """`geometry` (raster CRS) less the layer's polygons, the part holding `seed` (the largest when none does);
    ClaireError when the seed is inside one of them or nothing is left."""
    project = QgsProject.instance()
    box = QgsCoordinateTransform(to_raster.destinationCrs(), layer.crs(), project).transformBoundingBox(
        geometry.boundingBox())
    others = []
    for feature in layer.getFeatures(QgsFeatureRequest().setFilterRect(box)):
        other = QgsGeometry(feature.geometry())
        if other.isEmpty():
            continue
        other.transform(to_raster)
        if other.contains(seed):
            raise ClaireError(f"The clicked place is already inside a polygon of '{layer.name()}': click "
                              f"elsewhere, or delete that polygon first.")
        others.append(other)
    if not others:
        return geometry
    rest = geometry.difference(QgsGeometry.unaryUnion(others))
    parts = [p for p in (rest.asGeometryCollection() if rest.isMultipart() else [rest]) if not p.isEmpty()]
    if not parts:
        raise ClaireError(f"Every pixel the wand took is already in a polygon of '{layer.name()}'; click elsewhere.")
    seed_geom = QgsGeometry.fromPointXY(seed)
    return next((p for p in parts if p.intersects(seed_geom)), max(parts, key=lambda p: p.area()))


def add_region(layer: QgsVectorLayer, field: str, value: Any, scene, raster_crs: QgsCoordinateReferenceSystem,
               point: QgsPointXY, point_crs: QgsCoordinateReferenceSystem, tolerance: float, max_width: int) -> Added:
    """Grow the region at `point`, leave out what other polygons of `layer` already cover, and add it to `layer`
    (editing started when it was not) as one feature with `field` = `value`, in one undoable edit command."""
    from ..core.training.wand import grow_region

    project = QgsProject.instance()
    if layer.geometryType() != QgsWkbTypes.GeometryType.PolygonGeometry:
        raise ClaireError(f"'{layer.name()}' is not a polygon layer: the wand draws polygons; create a training "
                          f"layer with 'New training layer'.")
    xy = QgsCoordinateTransform(point_crs, raster_crs, project).transform(point)
    region = grow_region(scene, xy.x(), xy.y(), tolerance, max_width)
    to_raster = QgsCoordinateTransform(layer.crs(), raster_crs, project)
    geometry = _outside_others(layer, QgsGeometry.fromWkt(region.wkt), xy, to_raster)
    a, e = scene.opt.transform.a, scene.opt.transform.e
    pixels = int(round(geometry.area() / abs(a * e)))
    geometry.transform(QgsCoordinateTransform(raster_crs, layer.crs(), project))
    if not layer.isEditable() and not layer.startEditing():
        raise ClaireError(f"'{layer.name()}' cannot be edited (read-only file?): save it as a GeoPackage.")
    feature = QgsFeature(layer.fields())
    feature.setGeometry(geometry)
    feature[field] = value
    layer.beginEditCommand("CLAIRE magic wand")
    if not layer.addFeature(feature):
        layer.destroyEditCommand()
        raise ClaireError(f"'{layer.name()}' refused the new polygon.")
    layer.endEditCommand()
    layer.triggerRepaint()
    return Added(fid=feature.id(), pixels=pixels, left_out=region.pixels - pixels, truncated=region.truncated)
