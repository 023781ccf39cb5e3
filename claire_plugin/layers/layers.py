"""Layers of a finished run: styled land cover, confidence and the SAR gate weight (main thread only)."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from qgis.core import (
    QgsColorRampShader,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
)
from qgis.PyQt.QtGui import QColor

from ..core.io.gdal_names import missing_message, source_file
from .style import apply_landcover_style

#: Confidence (uint8 percent, as the engine writes it): red (unsure) → yellow → green (sure). (Stops of 0..1 had drawn
#: every pixel of 1 % and more green: the layer showed nothing.)
CONFIDENCE_RAMP = [(0.0, "#d7191c", "0 % (unsure)"), (50.0, "#fdae61", "50 %"), (75.0, "#ffffbf", "75 %"),
                   (100.0, "#1a9641", "100 % (sure)")]
#: Reliance (SAR weight of the fusion gate, uint8 percent): blue = the gate weighted the optical's features, orange =
#: the SAR's (how the network mixed them, not which sensor decided).
RELIANCE_RAMP = [(0.0, "#2b83ba", "0 % (optical)"), (50.0, "#f7f7f7", "50 % (both)"), (100.0, "#e66101", "100 % (SAR)")]
#: Cloud probability (uint8 percent): clear → white.
CLOUD_RAMP = [(0.0, "#1a1a1a", "0 % (clear)"), (50.0, "#9e9e9e", "50 %"), (100.0, "#ffffff", "100 % (cloud)")]
#: Unlike the training data (100 = the card's threshold): green well below it, yellow close to it, red at or
#: beyond it (a plain green → red ramp painted "near the threshold" as red as "beyond").
UNFAMILIAR_RAMP = [(0.0, "#1a9641", "0 (like training)"), (60.0, "#a6d96a", "60"),
                   (90.0, "#fee08b", "90 (near the threshold)"), (99.0, "#fdae61", "99"),
                   (100.0, "#d7191c", "100 (do not trust)")]


def layer_file(layer: Optional[QgsRasterLayer]) -> Tuple[Optional[str], Optional[str]]:
    """(file path, None) for a file-backed raster layer, else (None, a message naming the fix)."""
    if layer is None:
        return None, "no layer chosen"
    if layer.providerType() != "gdal":
        return None, (f"'{layer.name()}' is not a file raster; save it as a GeoTIFF "
                      "(right-click > Export > Save As) and use that file")
    path = source_file(layer.source())
    if missing_message(path, "layer's"):
        return None, f"'{layer.name()}' points to {path}, which does not exist"
    return path, None


def layer_hint(layer) -> str:
    """'parent folder/file name · N bands' of a raster layer ('' without one): tells apart layers of one site
    that carry the same name."""
    import os

    if layer is None:
        return ""
    path = source_file(layer.source())
    where = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path)) if path else layer.name()
    bands = layer.bandCount() if hasattr(layer, "bandCount") else 0
    return f"{where} · {bands} band{'s' if bands != 1 else ''}" if bands else where


def vector_file(layer) -> Tuple[Optional[str], Optional[str], Optional[str]]:
    """(file path, layer name inside the file or None, None) for a file-backed vector layer (OGR), else
    (None, None, a message naming the fix). A layer with a filter or unsaved edits is refused: the
    QGIS-free code reads the file, which holds neither."""
    from qgis.core import QgsProviderRegistry

    if layer is None:
        return None, None, "no layer chosen"
    if layer.providerType() != "ogr":
        return None, None, (f"'{layer.name()}' is not a file layer; save it as a GeoPackage "
                            "(right-click > Export > Save Features As) and use that file")
    parts = QgsProviderRegistry.instance().decodeUri("ogr", layer.source())
    path = parts.get("path") or source_file(layer.source())
    if missing_message(path, "layer's"):
        return None, None, f"'{layer.name()}' points to {path}, which does not exist"
    if parts.get("geometryType"):  # QGIS shows one geometry kind of a file that holds several
        return None, None, (f"'{layer.name()}' shows only the {parts['geometryType'].lower()} features of a file "
                            "that holds other geometries too, and the run reads the whole file; export the layer "
                            "(right-click > Export > Save Features As) and use that file")
    if parts.get("subset") or layer.subsetString():
        return None, None, (f"'{layer.name()}' has a filter, which the run would not see (it reads the whole "
                            "file); export the filtered features (Export > Save Features As) and use that file")
    if layer.isEditable() and layer.isModified():
        return None, None, (f"'{layer.name()}' has unsaved edits; save them first (Layer > Save Layer Edits)")
    if parts.get("vsiPrefix"):  # a zipped shapefile QGIS opened as /vsizip/...: GDAL reads the same name
        path = f"{parts['vsiPrefix']}{path}{parts.get('vsiSuffix') or ''}"
    return path, parts.get("layerName") or None, None


def layer_crs(layer) -> Optional[str]:
    """The CRS a vector layer has in QGIS (an authority code, else WKT), None when it has none: the CRS to read its
    file in, as QGIS shows it (a shapefile without .prj, or a GeoJSON of UTM coordinates GDAL reads as WGS 84, whose
    CRS the user set in QGIS)."""
    crs = layer.crs() if layer is not None else None
    if crs is None or not crs.isValid():
        return None
    return crs.authid() or crs.toWkt() or None


def no_input_sidecars():
    """Turn GDAL's PAM off in this thread while QGIS opens input layers (core.io.pam.pam_off).

    Loading a multiband raster makes QGIS compute a histogram for its default renderer, which GDAL would
    save as FILE.aux.xml next to the user's input; inputs must stay untouched. Outputs are not affected
    (the engine writes them outside this block).
    """
    from ..core.io.pam import pam_off

    return pam_off()


def ramp_renderer(layer: QgsRasterLayer, stops: Sequence[Tuple[float, str, str]]) -> QgsSingleBandPseudoColorRenderer:
    """A continuous pseudo-colour renderer over ``stops`` (value, colour, label)."""
    ramp = QgsColorRampShader(stops[0][0], stops[-1][0])
    ramp.setColorRampType(QgsColorRampShader.Type.Interpolated)
    ramp.setColorRampItemList([QgsColorRampShader.ColorRampItem(v, QColor(c), lab) for v, c, lab in stops])
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(stops[0][0])
    renderer.setClassificationMax(stops[-1][0])
    return renderer


#: The rasters a run writes beside the land cover: (result attribute, layer name, colour ramp).
COMPANION_STYLES = (("confidence", "Confidence", CONFIDENCE_RAMP),
                    ("reliance", "SAR gate weight", RELIANCE_RAMP),
                    ("cloud", "Cloud probability", CLOUD_RAMP),
                    ("unfamiliar", "Unlike the training data", UNFAMILIAR_RAMP))


def result_layers(result: Any, card: Optional[Dict[str, Any]], title: str = "") -> List[QgsRasterLayer]:
    """Styled layers of a ClassifyResult (land cover first), not yet added to a project."""
    suffix = f" – {title}" if title else ""
    layers: List[QgsRasterLayer] = []
    land = QgsRasterLayer(result.output, f"Land cover{suffix}", "gdal")
    if land.isValid():
        classes = [dict(c) for c in (result.summary or {}).get("classes", [])] or (card or {}).get("classes") or []
        nodata = (card or {}).get("nodata", 0)
        apply_landcover_style(land, classes, nodata)
        layers.append(land)
    for key, name, stops in COMPANION_STYLES:
        path = getattr(result, key, None)
        if not path:
            continue
        layer = QgsRasterLayer(path, f"{name}{suffix}", "gdal")
        if layer.isValid():
            layer.setRenderer(ramp_renderer(layer, stops))
            layers.append(layer)
    return layers


def add_to_project(layers: Sequence[QgsRasterLayer], project: Optional[QgsProject] = None) -> None:
    """Add layers so that the land cover ends on top of its companions."""
    project = project or QgsProject.instance()
    for layer in reversed(list(layers)):
        project.addMapLayer(layer)


def remove_layers_showing(paths: Sequence[str], project: Optional[QgsProject] = None,
                          keep: Sequence[str] = ()) -> List[str]:
    """Remove the project's layers (other than the ids in `keep`) that show one of the files `paths`, and return
    their names: a run has just replaced those files, and a layer opened before keeps drawing the old pixels with
    the old legend (after a reload, the new classes under the old names)."""
    from ..core.io.raster_io import same_file

    project = project or QgsProject.instance()
    stale = [layer for layer in project.mapLayers().values()
             if layer.id() not in keep and layer.providerType() == "gdal"
             and any(same_file(source_file(layer.source()), p) for p in paths if p)]
    names = [layer.name() for layer in stale]
    if stale:
        project.removeMapLayers([layer.id() for layer in stale])
    return names


def in_temporary_folder(path: str) -> bool:
    """Whether `path` lies in QGIS's temporary folder (Processing's temporary outputs), deleted when QGIS closes."""
    folder = os.path.abspath(QgsProcessingUtils.tempFolder())
    return os.path.abspath(path).startswith(folder + os.sep)


def temporary_output_warning(path: str, beside: str, keep: str, example: str) -> Optional[str]:
    """The warning for an OUTPUT written to QGIS's temporary folder (deleted, with what is `beside` it, when QGIS
    closes): what to do to `keep` it, and a file name to give next time; None for an output of the user's own."""
    if not in_temporary_folder(path):
        return None
    return (f"OUTPUT is a temporary file ({path}): QGIS deletes it{beside} when it closes. {keep}, or give OUTPUT a "
            f"file (e.g. {example}) the next time.")


_PROJECT = {"generation": 0, "watching": False}


def _project_cleared() -> None:
    _PROJECT["generation"] += 1


def project_generation() -> int:
    """A number that changes each time QGIS's project is cleared (File > New, opening another project): a
    task records it at its start, and its layers go into the project only if it is still the same one."""
    if not _PROJECT["watching"]:
        QgsProject.instance().cleared.connect(_project_cleared)
        _PROJECT["watching"] = True
    return _PROJECT["generation"]


def stop_watching_project() -> None:
    """Disconnect from QGIS's project (the plugin is unloading: each reload connected once more)."""
    if _PROJECT["watching"]:
        try:
            QgsProject.instance().cleared.disconnect(_project_cleared)
        except TypeError:  # not connected
            pass
        _PROJECT["watching"] = False


def same_project(task) -> bool:
    """Whether QGIS's project is still the one `task` started in (its `project`: project_generation() then)."""
    return task.project == project_generation()


PROJECT_CHANGED = ("the project was closed during the run, so its layers were not added to the new one (they would "
                   "have become the next run's inputs); open them from the folder")
