"""Helpers shared by the algorithms: layer→file resolution, progress bridging, styling on load."""
from __future__ import annotations

import json
import os
from typing import Callable, Dict, Optional, Sequence, Tuple

from qgis.core import (
    QgsProcessingException,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputFile,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
    QgsRasterLayer,
    QgsVectorLayer,
)

from ..core.inputs.units import SAR_UNITS
from ..layers.layers import layer_file as gui_layer_file
from ..layers.layers import vector_file
from ..layers.style import apply_landcover_style, classes_from_raster


def blank_output(value) -> bool:
    """Whether an optional output parameter's value asks for no file: None, "", or what the batch dialog passes
    for an empty cell, a QgsProcessingOutputLayerDefinition of "" (taken as a path, it made QGIS log "The
    following layers were not correctly generated. •" after every row)."""
    if value is None or value == "":
        return True
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        sink = value.sink
        static = sink.staticValue() if hasattr(sink, "staticValue") else sink
        return static is None or str(static) == ""
    return False


def layer_file(layer: Optional[QgsRasterLayer], what: str) -> str:
    """The file behind a raster layer, or a QgsProcessingException naming the parameter and the fix."""
    path, problem = gui_layer_file(layer)
    if path is None:
        raise QgsProcessingException(f"{what}: {problem}. Fix: choose a local raster file (e.g. a GeoTIFF) for {what}.")
    return path


class ReportParameter(QgsProcessingParameterFileDestination):
    """A report file (.json with a Markdown twin, or .html) whose output is a plain file. QGIS types a file
    destination whose filter mentions HTML as an HTML output, and its batch dialog then calls
    ProcessingResults.addResult without the timestamp it takes (QGIS 3.22 and 3.40): a traceback after every
    batch with a Report column, and the batch's summary never shown."""

    def toOutputDefinition(self):  # noqa: N802
        return QgsProcessingOutputFile(self.name(), self.description())

    def clone(self) -> "ReportParameter":
        copy = ReportParameter(self.name(), self.description(), self.fileFilter(), self.defaultValue(),
                               bool(self.flags() & QgsProcessingParameterDefinition.Flag.FlagOptional),
                               self.createByDefault())
        copy.setFlags(self.flags())
        copy.setHelp(self.help())
        copy.setMetadata(self.metadata())
        return copy


class RasterFileParameter(QgsProcessingParameterRasterLayer):
    """A raster layer parameter that accepts an existing local file without opening it as a QGIS layer.

    QGIS checks a raster parameter given as text by loading it as a layer (qgis_process does so for every
    parameter before the algorithm runs), and a loaded layer gets statistics for its renderer, which GDAL
    saves next to the file (FILE.aux.xml) or, for a VRT, inside it. CLAIRE reads its inputs itself
    (core.io.raster_io, read-only), so a file only has to exist here; the algorithm checks it with the
    engine's messages (check_raster_files). So does a GDAL dataset name whose file is on disk (GPKG:file:table,
    /vsizip/archive/member: what CLAIRE's own messages ask for), which QGIS 3.22 cannot load from text. Layers
    and layer ids are checked as usual."""

    def checkValueIsAcceptable(self, value, context=None) -> bool:  # noqa: N802
        if isinstance(value, str) and value and (os.path.isfile(value) or _local_gdal_name(value)):
            return True
        return super().checkValueIsAcceptable(value, context)

    def valueAsPythonString(self, value, context) -> str:  # noqa: N802
        """A file given as text stays the text: QGIS loads it as a layer to write it (the toolbox's History
        and "Copy as Python Command", a model's log of its steps), and GDAL saves statistics beside it."""
        if isinstance(value, str) and value and (os.path.isfile(value) or _local_gdal_name(value)):
            return QgsProcessingUtils.stringToPythonLiteral(value)
        return super().valueAsPythonString(value, context)

    def clone(self) -> "RasterFileParameter":
        copy = RasterFileParameter(self.name(), self.description(), self.defaultValue(),
                                   bool(self.flags() & QgsProcessingParameterDefinition.Flag.FlagOptional))
        copy.setFlags(self.flags())
        copy.setHelp(self.help())
        copy.setMetadata(self.metadata())
        return copy


def _local_gdal_name(value: str) -> bool:
    """A GDAL dataset name (GPKG:file:table, /vsizip/...) whose file is on this disk."""
    from ..core.io.gdal_names import is_gdal_name, local_files

    return is_gdal_name(value) and any(os.path.isfile(f) for f in local_files(value))


def raster_path(alg, parameters: dict, name: str, context) -> str:
    """The file of raster parameter `name`: a value naming a local file, or a GDAL dataset name whose file is on
    disk, is used as it is, without QGIS opening it as a layer (which computes statistics that GDAL saves beside
    it, or inside a .vrt); a layer or layer id is resolved through QGIS (layer_file)."""
    value = parameters.get(name)
    if isinstance(value, str) and (os.path.isfile(value) or _local_gdal_name(value)):
        return value
    return layer_file(alg.parameterAsRasterLayer(parameters, name, context), name)


def vector_path(alg, parameters: dict, name: str, context) -> Tuple[str, Optional[str]]:
    """(file, layer name inside it) of vector-layer parameter `name` (layers.layers.vector_file);
    QgsProcessingException naming the parameter and the fix when it is not a file layer."""
    from .base import SOURCE_DEFINITION

    value = parameters.get(name)
    if isinstance(value, QgsProcessingFeatureSourceDefinition):  # parameterAsVectorLayer: None
        raise QgsProcessingException(f"{name}: {SOURCE_DEFINITION}.")
    if isinstance(value, str):  # a file's path is that file (QGIS would take a project layer of that source, with
        from qgis.core import QgsProviderRegistry  # its unsaved edits or filter), as raster_path does

        parts = QgsProviderRegistry.instance().decodeUri("ogr", value)
        path = parts.get("path") or ""
        if os.path.isfile(path) and not (parts.get("subset") or parts.get("geometryType") or parts.get("vsiPrefix")):
            return path, parts.get("layerName") or None
    path, layer, problem = vector_file(alg.parameterAsVectorLayer(parameters, name, context))
    if problem:
        raise QgsProcessingException(f"{name}: {problem}.")
    return path, layer


def extent_in(alg, parameters: dict, name: str, context, raster: str) -> Optional[Tuple[float, ...]]:
    """Extent parameter `name` as (xmin, ymin, xmax, ymax) in the CRS of the raster file `raster` (QGIS
    transforms an extent given in another CRS); None when it is not given."""
    if parameters.get(name) in (None, ""):
        return None
    from qgis.core import QgsCoordinateReferenceSystem

    crs = QgsCoordinateReferenceSystem()
    try:
        import rasterio

        with rasterio.open(raster) as ds:
            if ds.crs is not None:
                crs = QgsCoordinateReferenceSystem.fromWkt(ds.crs.to_wkt())
    except Exception:  # noqa: BLE001 - the engine names an unreadable raster or a missing CRS
        pass
    rect = alg.parameterAsExtent(parameters, name, context, crs)
    return rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()


def check_raster_files(parameters: dict, roles: Dict[str, str]) -> Optional[str]:
    """The engine's message (problem and fix) for the first raster parameter given as a file path that is
    missing or not a raster GDAL can read; None when all are fine. Layer ids and layers are left to QGIS."""
    from ..core.errors import ClaireError
    from ..core.io.gdal_names import source_file
    from ..core.io.raster_io import open_raster

    for name, role in roles.items():
        value = parameters.get(name)
        if not isinstance(value, str) or not value or not (os.path.isabs(value) or os.sep in value):
            continue
        path = source_file(value)
        try:
            open_raster(path, role).close()
        except ClaireError as exc:
            return str(exc)
    return None


def _cli_only(what: str) -> str:
    return f"{what} (a setting of the `claire train` command; this algorithm uses its default)"


#: Command-line flags in engine messages and the Processing parameters that set the same thing.
FLAG_TO_PARAMETER = {"--optical-bands": "OPTICAL_BANDS", "--sar-bands": "SAR_BANDS", "--tile-size": "TILE_SIZE",
                     "--optical-offset": "OPTICAL_OFFSET", "--sar-units": "SAR_UNITS",
                     "--context": "CONTEXT", "--batch-size": "BATCH_SIZE", "--checkpoint": "CHECKPOINT",
                     "--scheduler": "DASK_SCHEDULER", "--pairing": "PAIRING", "--no-baseline": "RF_TREES=0",
                     "--minutes": "MINUTES", "--epochs": "EPOCHS", "--labels": "LABELS", "--field": "FIELD",
                     "--validation": "VALIDATION", "--report": "REPORT", "--output": "OUTPUT", "--device": "DEVICE",
                     "--steps-per-epoch": "STEPS_PER_EPOCH", "--crop": "CROP", "--rf-trees": "RF_TREES",
                     "--runtime": "RUNTIME", "--level": "LEVEL", "--macro-field": "MACRO_FIELD",
                     "--unfamiliar": "UNFAMILIAR", "--extent": "EXTENT", "--output-folder": "OUTPUT_FOLDER",
                     "--reliance": "RELIANCE", "--skip-existing": "SKIP_EXISTING",
                     "--layer": "the layer: load it and choose it, or give the file as PATH|layername=NAME",
                     "--explainer": "the explainer model folder (CLAIRE's settings in the dock)",
                     "`claire classify --summary-json`": "a CLAIRE classification",
                     "--lr": _cli_only("the learning rate"), "--weight-decay": _cli_only("the weight decay"),
                     "--threads": _cli_only("the thread count"),
                     "--val-share": _cli_only("the share of polygons held out (without VALIDATION)"),
                     "--buffer": _cli_only("the buffer between training and validation polygons"),
                     # an enum takes its option's number in qgis_process and processing.run
                     **{f"--sar-units {unit}": f"SAR_UNITS {k} ({unit})" for k, unit in enumerate(SAR_UNITS)}}

#: claire:train has no band or offset parameters: it reads the bands by their names or a known layout.
TRAIN_FLAG_TO_PARAMETER = {
    **FLAG_TO_PARAMETER,
    "--optical-bands": _cli_only("the optical band list; this algorithm reads the bands by their names or the "
                                 "Sentinel-2 layout"),
    "--sar-bands": _cli_only("the SAR band list; this algorithm reads the bands by their names or as VV, VH"),
    "--optical-offset": _cli_only("the optical offset; this algorithm reads it from the file"),
    "--classes": "CLASS_NAMES", "--threads": "THREADS",
    "--seed": "SEED",
    "--size": _cli_only("the network size of a training from a folder"),
    "--name-field": "NAME_FIELD",
    "--label-layer": "LABELS as the layer (load it in QGIS and choose it, or give the file as PATH|layername=NAME)",
    "--validation-layer": "VALIDATION as the layer (load it in QGIS and choose it, or give the file as "
                          "PATH|layername=NAME)",
}


def qgis_message(text: str, names: Optional[Dict[str, str]] = None) -> str:
    """An engine message with its command-line flags named as the algorithm's parameters (`names`:
    FLAG_TO_PARAMETER by default, TRAIN_FLAG_TO_PARAMETER for claire:train)."""
    from ..core.errors import rename_flags

    return rename_flags(text, FLAG_TO_PARAMETER if names is None else names)


#: The most characters of a progress text. QGIS's progress label does not wrap: a 400-character warning widened
#: the algorithm dialog to 2513 px, past the screen and its buttons, for good (QA round 21, QGIS 3.40).
PROGRESS_TEXT_MAX = 100


def split_progress_text(message: str, most: int = PROGRESS_TEXT_MAX) -> Tuple[str, str]:
    """(`message` as a progress label of at most `most` characters, the rest of it or ""): cut after its first
    clause (": ") where that fits, else at a word with an ellipsis on both sides of the cut."""
    if len(message) <= most:
        return message, ""
    colon = message.rfind(": ", 0, most)
    if colon > 0:
        return message[:colon], message[colon + 2:]
    head = message[: most - 1].rsplit(" ", 1)[0].rstrip(" ,;:(")
    return head + "\u2026", "\u2026" + message[len(head):].lstrip()


def progress_bridge(feedback: QgsProcessingFeedback) -> Callable[[float, str], None]:
    """A progress callback for the engine that reports to a Processing feedback, messages only once: a warning
    ("warning: ...") goes to the log as a warning (no phase of the run: the label stays), a long message's first
    part is the progress label and the rest follows in the log (QGIS's dialog writes the label to its log too, so
    nothing is written twice)."""
    last = {"message": None}

    def report(fraction: float, message: str) -> None:
        feedback.setProgress(max(0.0, min(100.0, 100.0 * fraction)))
        if message and message != last["message"]:
            last["message"] = message
            if message.startswith("warning: "):
                feedback.pushWarning(message[len("warning: "):])
                return
            head, rest = split_progress_text(message)
            feedback.setProgressText(head)
            if rest:
                feedback.pushInfo(rest)

    return report


class LandCoverPostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles a classified output when QGIS loads it (paletted, checkpoint classes, nodata transparent)."""

    def __init__(self, classes=None, nodata: Optional[int] = None) -> None:
        super().__init__()
        self.classes = classes
        self.nodata = nodata

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802
        if not isinstance(layer, QgsRasterLayer):
            return
        classes = self.classes or classes_from_raster(layer.source())
        if classes:
            apply_landcover_style(layer, classes, self.nodata)


class RampPostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Colours a companion raster of a classification (confidence, reliance, cloud, unlike the training data) with
    the dock's ramp when QGIS loads it (a grey stretch before)."""

    def __init__(self, stops) -> None:
        super().__init__()
        self.stops = stops

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802
        from ..layers.layers import ramp_renderer

        if isinstance(layer, QgsRasterLayer):
            layer.setRenderer(ramp_renderer(layer, self.stops))


def style_companions(result, context, holders: list, suffix: str = "", generic: Sequence[str] = ()) -> None:
    """The dock's colour ramps on the companion rasters of a ClassifyResult that QGIS loads when the algorithm
    ends; a layer QGIS names after its output's description (`generic`) gets `suffix` (scene_suffix)."""
    from ..layers.layers import COMPANION_STYLES

    for key, _name, stops in COMPANION_STYLES:
        path = getattr(result, key, None)
        if path and context.willLoadLayerOnCompletion(path):
            post = RampPostProcessor(stops)
            holders.append(post)
            details = context.layerToLoadOnCompletionDetails(path)
            details.setPostProcessor(post)
            if suffix and details.name in generic:
                details.name = details.name + suffix


class HeldOutPostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Draws the held-out polygons a training wrote as dashed outlines when QGIS loads them (layers.style)."""

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802
        from ..layers.style import style_held_out

        if isinstance(layer, QgsVectorLayer):
            style_held_out(layer)


class ClassesPostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Colours a polygon layer an algorithm wrote by its class field, as the checkpoint's classes
    (layers.training_layer.style_by_class), when QGIS loads it."""

    def __init__(self, field: str, card: dict) -> None:
        super().__init__()
        self.field, self.card = field, card

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802
        from ..layers.training_layer import style_by_class

        if isinstance(layer, QgsVectorLayer):
            style_by_class(layer, self.field, self.card)


def metrics_json(summary: dict) -> str:
    """Compact JSON of the per-class part of an engine summary (for string outputs)."""
    return json.dumps({"classes": summary.get("classes", []), "metrics": summary.get("metrics")}, sort_keys=True)


def scene_suffix(optical: Optional[str]) -> str:
    """" – NAME" of the optical raster's file, to tell the layers of several runs apart (a batch loaded every row
    as "Land cover (CLAIRE)" and "Confidence"); "" without one."""
    stem = os.path.splitext(os.path.basename(str(optical or "")))[0]
    return f" – {stem}" if stem else ""


def name_if_generic(context, path: str, generic: Sequence[str], name: str) -> None:
    """Name the layer QGIS loads from `path` when the algorithm ends `name`, unless it has a name of its own (a
    model's output): QGIS names it after its output's description (one of `generic`) or not at all."""
    details = context.layerToLoadOnCompletionDetails(path)
    if details.name in ("", *generic):
        details.name = name


def style_classified(result, context, holders: list, name: str = "Land cover (CLAIRE)",
                     generic: str = "Land cover") -> None:
    """Style a ClassifyResult's map like claire:classify: when QGIS loads it, the checkpoint's classes and
    colours, named `name` unless it has a name of its own (a model's output: QGIS names it after the output
    definition, `generic`, otherwise). `holders` keeps the post-processor alive (QGIS holds a C++ pointer)."""
    classes = [dict(c) for c in result.summary.get("classes", [])] or result.card.get("classes")
    nodata = result.card.get("nodata", 0)
    if context.willLoadLayerOnCompletion(result.output):
        post = LandCoverPostProcessor(classes, nodata)
        holders.append(post)
        context.layerToLoadOnCompletionDetails(result.output).setPostProcessor(post)
        name_if_generic(context, result.output, [generic], name)
