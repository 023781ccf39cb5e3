"""A new training layer: a GeoPackage polygon layer whose `class` field offers the checkpoint's classes
(value map) and is styled by class, ready to draw on (main thread only; no widgets)."""
from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional, Sequence

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsCoordinateReferenceSystem,
    QgsEditorWidgetSetup,
    QgsFeatureRequest,
    QgsFields,
    QgsProject,
    QgsRendererCategory,
    QgsSymbol,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtGui import QColor

from ...models.quoting import name_key
from ..qgis_compat import new_field

FIELD = "class"


def default_folder(project: Optional[QgsProject] = None) -> Optional[str]:
    """The saved project's folder, or None when the project has not been saved yet."""
    project = project or QgsProject.instance()
    home = project.absolutePath()
    return home if home and os.path.isdir(home) else None


def new_layer_path(folder: str, stem: str = "claire_training") -> str:
    """A GeoPackage path in `folder` that does not exist yet (stem, then stem_YYYYmmdd_HHMMSS[_n])."""
    path = os.path.join(folder, f"{stem}.gpkg")
    n = 0
    while os.path.exists(path):
        n += 1
        path = os.path.join(folder, f"{stem}_{time.strftime('%Y%m%d_%H%M%S')}{f'_{n}' if n > 1 else ''}.gpkg")
    return path


def class_renderer(classes: Sequence[Dict[str, Any]], field: str = FIELD) -> QgsCategorizedSymbolRenderer:
    """Categorized renderer on `field`: one half-transparent fill per class in its colour, matched on the class's
    "key" (the field's value: a code or a name) where it has one, else on its name."""
    categories = []
    for c in classes:
        symbol = QgsSymbol.defaultSymbol(QgsWkbTypes.GeometryType.PolygonGeometry)
        color = QColor(str(c["color"]))
        symbol.setColor(color)
        symbol.setOpacity(0.6)
        if symbol.symbolLayerCount():
            symbol.symbolLayer(0).setStrokeColor(color.darker(150))
        categories.append(QgsRendererCategory(c.get("key", str(c["name"])), symbol, str(c["name"])))
    return QgsCategorizedSymbolRenderer(field, categories)


def _coded_order(value: Any) -> tuple:
    """The order training codes a layer's class values in (`labels.class_key`, then `labels.codes_for_names`: names
    alike but for case and spacing together, integer codes by number), so that the palette gives new classes the
    colours their map gets."""
    from ..core.training.labels import class_key

    key = class_key(value)
    return (0, key, "") if isinstance(key, int) else (1, name_key(key), key)


def style_by_class(layer: QgsVectorLayer, field: str, card: Dict[str, Any]) -> None:
    """Colour `layer`'s polygons by the values of `field` as the checkpoint's classes of that code or name (matched as
    training matches names, `quoting.name_key`); a value the checkpoint does not know gets a colour of the palette
    apart from the others (a new class, as training will code it)."""
    from ...models.palette import classes_with_colors
    from .style import classes_from

    known = {}
    for c in classes_from(card):
        known[str(c["value"])] = known[name_key(c["name"])] = c
    index = layer.fields().indexOf(field)
    values = sorted((v for v in layer.uniqueValues(index) if v is not None and str(v) not in ("", "NULL")),
                    key=_coded_order)
    found = [known.get(str(v)) or known.get(name_key(v)) or {} for v in values]
    classes = classes_with_colors({"classes": [{"key": v, "name": c.get("name", str(v)), "color": c.get("color")}
                                               for v, c in zip(values, found)]})
    layer.setRenderer(class_renderer(classes, field))
    layer.triggerRepaint()


def create_training_layer(path: str, crs: QgsCoordinateReferenceSystem, classes: Sequence[Dict[str, Any]],
                          name: str = "Training polygons") -> QgsVectorLayer:
    """Write an empty polygon GeoPackage at `path` with a text `class` field, open it as a layer whose field
    offers `classes` (value map name -> name) and whose renderer colours each class; not added to a project.
    Raises OSError when the file cannot be written."""
    fields = QgsFields()
    fields.append(new_field(FIELD, "string", 80))
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "training"
    writer = QgsVectorFileWriter.create(path, fields, QgsWkbTypes.Type.Polygon, crs, QgsProject.instance()
                                        .transformContext(), options)
    if writer.hasError() != QgsVectorFileWriter.WriterError.NoError:
        raise OSError(f"cannot write {path}: {writer.errorMessage()}")
    del writer  # closes the file
    layer = QgsVectorLayer(f"{path}|layername=training", name, "ogr")
    if not layer.isValid():
        raise OSError(f"cannot open the new layer {path}")
    index = layer.fields().indexOf(FIELD)
    values: List[Dict[str, str]] = [{str(c["name"]): str(c["name"])} for c in classes]
    layer.setEditorWidgetSetup(index, QgsEditorWidgetSetup("ValueMap", {"map": values}))
    layer.setRenderer(class_renderer(classes))
    layer.setCustomProperty(TRAINING_PROPERTY, True)  # saved with the project: still known after reopening it
    layer.saveStyleToDatabase("training", STYLE_DESCRIPTION, True, "")  # the value map travels with the file
    return layer


#: A layer property marking a training layer the Train tab created (saved in the project file).
TRAINING_PROPERTY = "claire/training_layer"


#: The description of the style a Train tab layer carries in its GeoPackage (every version wrote it).
STYLE_DESCRIPTION = "CLAIRE classes"


def is_training_layer(layer) -> bool:
    """Whether `layer` is a training layer the Train tab created (in this session or a saved project): marked by
    TRAINING_PROPERTY, or, made by a version before that mark, a GeoPackage layer `training` holding the tab's
    style (which gets the mark, so the project saves it)."""
    if layer is None:
        return False
    if str(layer.customProperty(TRAINING_PROPERTY, False)).lower() in ("true", "1"):
        return True
    if not _made_before_the_mark(layer):
        return False
    layer.setCustomProperty(TRAINING_PROPERTY, True)
    return True


def _made_before_the_mark(layer) -> bool:
    try:
        if layer.providerType() != "ogr" or "|layername=training" not in layer.source():
            return False
        count, _, _, descriptions, _ = layer.listStylesInDatabase()
    except Exception:  # noqa: BLE001 - another kind of layer, or a file gone: not the tab's
        return False
    return bool(count) and STYLE_DESCRIPTION in descriptions


def project_training_layer(project: Optional[QgsProject] = None):
    """The project's first training layer the Train tab created, or None."""
    project = project or QgsProject.instance()
    return next((layer for layer in project.mapLayers().values() if is_training_layer(layer)), None)


def class_tally(layer: Optional[QgsVectorLayer], field: str, name_field: Optional[str] = None) -> Dict[str, int]:
    """Features per class value (as text, in first-seen order) of `layer`'s `field`, unsaved edits included;
    features without a class are counted under "". With `name_field` (codes and their names), a class reads
    "name (code)"."""
    if layer is None or not field or layer.fields().indexOf(field) < 0:
        return {}
    named = bool(name_field) and layer.fields().indexOf(name_field) >= 0
    request = QgsFeatureRequest().setFlags(QgsFeatureRequest.Flag.NoGeometry).setSubsetOfAttributes(
        [field] + ([name_field] if named else []), layer.fields())
    counts: Dict[str, int] = {}
    for feature in layer.getFeatures(request):
        value = feature[field]
        key = "" if value is None or str(value) in ("", "NULL") else str(value)
        name = feature[name_field] if named and key else None
        if name is not None and str(name) not in ("", "NULL"):
            key = f"{name} ({key})"
        counts[key] = counts.get(key, 0) + 1
    return counts


def tally_text(counts: Dict[str, int], min_polygons: int, what: str = "polygons") -> str:
    """One line for the Train tab: the count per class, the classes short of `min_polygons` marked."""
    if not counts:
        return f"No {what} yet: draw some, or use the magic wand."
    parts = [f"{name} {n}" + (f" (needs {min_polygons})" if n < min_polygons else "")
             for name, n in counts.items() if name]
    if counts.get(""):
        parts.append(f"{counts['']} without a class")
    return f"{what.capitalize()} per class: " + ", ".join(parts)
