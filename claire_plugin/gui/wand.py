"""The Train tab's magic wand: a map tool whose click grows a region over the optical raster
(core.training.wand) and adds it to the training layer as one polygon of the chosen class, in one undoable
edit. Main thread only (QGIS layers and the map canvas)."""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsFeatureRequest,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRectangle,
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
    """The one training Scene the wand reads, kept open while its inputs stay the same. Opening it checks and
    samples both rasters (2 s on a 2048² pair with 1024 px blocks, longer on a whole tile), so `prefetch` opens it
    in a thread of its own when the wand is switched on, and the first click finds it open."""

    def __init__(self) -> None:
        self.key: Optional[Tuple] = None
        self.scene = None
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def prefetch(self, optical: str, sar: str, card: Dict[str, Any], card_key: str, sar_units: str) -> None:
        """Open the scene of these inputs in the background; an error is left for `get` (the click) to say."""
        def open_it() -> None:
            try:
                self.get(optical, sar, card, card_key, sar_units)
                from scipy import ndimage  # noqa: F401 - loaded here, not at the first click (0.4 s on the main thread)
            except Exception:  # noqa: BLE001 - the click opens it again and shows the message
                pass

        self.wait()
        self._thread = threading.Thread(target=open_it, name="claire-wand-scene", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Wait for a scene being opened in the background."""
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def get(self, optical: str, sar: str, card: Dict[str, Any], card_key: str, sar_units: str):
        """The scene of these inputs (opened on first use, or by `prefetch`; ClaireError when they cannot be
        read)."""
        from ..core.training.scene import Scene

        key = (optical, sar, card_key, sar_units)
        with self._lock:  # a prefetch still opening it: wait for it rather than open it twice
            if key != self.key or self.scene is None:
                self._close()
                self.scene = Scene(optical, sar, card, sar_units=sar_units)
                self.key = key
            return self.scene

    def close(self) -> None:
        """Close the scene's rasters (after a prefetch in flight has finished)."""
        self.wait()
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self.scene is not None:
            self.scene.close()
        self.scene, self.key = None, None


def _taken(layer: QgsVectorLayer, raster_crs: QgsCoordinateReferenceSystem, x: float, y: float,
           half_width: float) -> List[str]:
    """WKT in the raster CRS of the layer's polygons near (x, y) (raster CRS), unsaved edits included."""
    project = QgsProject.instance()
    box = QgsRectangle(x - half_width, y - half_width, x + half_width, y + half_width)
    box = QgsCoordinateTransform(raster_crs, layer.crs(), project).transformBoundingBox(box)
    to_raster = QgsCoordinateTransform(layer.crs(), raster_crs, project)
    out = []
    for feature in layer.getFeatures(QgsFeatureRequest().setFilterRect(box)):
        geometry = QgsGeometry(feature.geometry())
        if not geometry.isEmpty():
            geometry.transform(to_raster)
            out.append(geometry.asWkt())
    return out


def add_region(layer: QgsVectorLayer, field: str, value: Any, scene, raster_crs: QgsCoordinateReferenceSystem,
               point: QgsPointXY, point_crs: QgsCoordinateReferenceSystem, tolerance: float, max_width: int):
    """Grow the region at `point` around the layer's polygons (their pixels never join) and add it to `layer`
    (editing started when it was not) as one feature with `field` = `value`, in one undoable edit command.
    Returns (core.training.wand.Region, feature id)."""
    from ..core.training.wand import grow_region

    project = QgsProject.instance()
    if layer.geometryType() != QgsWkbTypes.GeometryType.PolygonGeometry:
        raise ClaireError(f"'{layer.name()}' is not a polygon layer: the wand draws polygons; create a training "
                          f"layer with 'New training layer'.")
    xy = QgsCoordinateTransform(point_crs, raster_crs, project).transform(point)
    pixel = max(abs(scene.opt.transform.a), abs(scene.opt.transform.e))
    taken = _taken(layer, raster_crs, xy.x(), xy.y(), (max_width / 2 + 1) * pixel)
    region = grow_region(scene, xy.x(), xy.y(), tolerance, max_width, taken=taken)
    geometry = QgsGeometry.fromWkt(region.wkt)
    if raster_crs != layer.crs():
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
    return region, feature.id()
