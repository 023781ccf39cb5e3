"""`claire:evaluate`: accuracy of a classified raster against a reference raster (per-class table + report)."""
from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, Optional, Sequence

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsFields,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
    QgsWkbTypes,
)

from ...models.quoting import csv_cell, quoted
from ..core.io.gdal_names import source_file
from ..qgis_compat import new_field
from .base import ClaireAlgorithm, engine_errors
from .common import (
    RasterFileParameter,
    ReportParameter,
    blank_output,
    name_if_generic,
    progress_bridge,
    raster_path,
    scene_suffix,
)

HELP = {
    "CLASSIFIED": "The land-cover map to check (e.g. the output of Classify land cover). Its grid is the grid "
    "of the comparison.",
    "REFERENCE": "Reference labels (any CRS / pixel size: read onto the map's grid with nearest neighbour).",
    "CLASS_MAPPING": "Optional, when the reference uses other ids than the map: REFERENCE:MAP pairs, e.g. "
    "10:1,20:2 (reference value 10 is class 1 of the map). Values not listed are taken as they are.",
    "REFERENCE_NODATA": "Optional reference values to leave out (besides the raster's own no-data value), "
    "e.g. 0. Reference values that are not a class of the map are left out too and listed in the log.",
    "CHECKPOINT": "Optional checkpoint whose model card gives class names and colours. Empty: the names "
    "stored in the classified GeoTIFF, else 'class <value>'.",
    "OUTPUT_TABLE": "Per-class table (value, name, iou, precision, recall, f1, support: the reference pixels, "
    "predicted: the mapped pixels), without geometry; save it as CSV, GeoPackage or a temporary layer.",
    "REPORT": "Optional report: HTML (per-class table and confusion matrix) or JSON (every number).",
}

FIELDS = [("value", "int"), ("name", "string"), ("iou", "double"), ("precision", "double"), ("recall", "double"),
          ("f1", "double"), ("support", "int64"), ("predicted", "int64")]


def table_fields() -> QgsFields:
    """Fields of the per-class table."""
    fields = QgsFields()
    for name, kind in FIELDS:
        fields.append(new_field(name, kind))
    return fields


def destination_text(value) -> str:
    """The destination a feature-sink parameter was given, as text, without asking QGIS for it:
    parameterAsOutputLayer registers a temporary output as a layer to load, which nothing then makes ("The
    following layers were not correctly generated: memory:Per-class metrics" after every dialog run)."""
    from qgis.core import QgsProcessingOutputLayerDefinition

    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink.staticValue()
    return "" if value is None else str(value)


def table_file(destination: Optional[str], formats: Sequence[str] = ()) -> Optional[str]:
    """The file a feature-sink destination writes (its `|layername=` part dropped); None for a memory layer or
    a provider's data source (`memory:`, `ogr:`, `postgres:`..., a URL), which QGIS checks itself."""
    dest = (destination or "").strip()
    if not dest or dest == "TEMPORARY_OUTPUT" or re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", dest) or "://" in dest:
        return None
    path = source_file(dest)
    ext = os.path.splitext(path)[1].lower()
    allowed = {f".{f.lower()}" for f in formats} - NO_TABLE
    if ext and formats and ext not in allowed:
        what = ("QGIS would write a Geoconcept file, which needs a CRS" if ext in (".txt", ".gxt") else
                "QGIS would write NAME.dbf.dbf" if ext == ".dbf" else
                "not a format QGIS writes tables in; it would write a GeoPackage beside it")
        csv = quoted(os.path.splitext(path)[0] + ".csv")
        raise QgsProcessingException(
            f"Per-class metrics (OUTPUT_TABLE): {quoted(path)} ends in {ext}: {what}; give a name ending in .csv, "
            f".gpkg or .xlsx (or another format of the dialog's list), e.g. {csv}")
    return path


def _check_outputs(table: Optional[str], report: Optional[str], inputs: list) -> None:
    """The table and report paths checked before any work: free, no input, a report named as what it is."""
    from ..core.io.atomic import require_suffix
    from ..core.io.writer import check_outputs

    check_outputs([("per-class table", table), ("report", report)], inputs)
    require_suffix(report, (".html", ".htm", ".json"), "report")


#: Endings QGIS's vector writers list that make no usable table here.
NO_TABLE = {".txt", ".gxt", ".dbf"}


class EvaluateAlgorithm(ClaireAlgorithm):
    """Confusion matrix, OA, mIoU, kappa and per-class IoU / precision / recall / F1."""

    TAGS = ("accuracy", "validation", "IoU", "kappa", "confusion matrix", "reference")
    ICON_NAME = "evaluate.svg"
    HELP = HELP
    INTRO = ("Compares a land-cover map with reference labels pixel by pixel, window by window, and reports "
             "overall accuracy, mean IoU, Cohen's kappa and per-class IoU, precision, recall and F1. The "
             "reference is resampled onto the map's grid (nearest neighbour).")

    def name(self) -> str:
        return "evaluate"

    def displayName(self) -> str:  # noqa: N802
        return "Evaluate land cover against a reference"

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        params = [
            RasterFileParameter("CLASSIFIED", "Classified raster"),
            RasterFileParameter("REFERENCE", "Reference raster"),
            QgsProcessingParameterString("CLASS_MAPPING", "Class mapping (REFERENCE:MAP,...)",
                                         optional=True),
            QgsProcessingParameterString("REFERENCE_NODATA", "Reference values to ignore (e.g. 0)", optional=True),
            QgsProcessingParameterFile("CHECKPOINT", "Checkpoint for class names",
                                       extension="safetensors", optional=True),
            QgsProcessingParameterFeatureSink("OUTPUT_TABLE", "Per-class metrics", QgsProcessing.TypeVector),
            ReportParameter(
                "REPORT", "Report", fileFilter="HTML report (*.html);;JSON report (*.json)", optional=True,
                createByDefault=False),
        ]
        self.add_parameters(params)
        self.addOutput(QgsProcessingOutputNumber("OA", "Overall accuracy"))
        self.addOutput(QgsProcessingOutputNumber("MIOU", "Mean IoU"))
        self.addOutput(QgsProcessingOutputNumber("KAPPA", "Cohen's kappa"))
        self.addOutput(QgsProcessingOutputString("CLASS_METRICS", "Per-class metrics (JSON)"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core import accuracy as acc

        classified = raster_path(self, parameters, "CLASSIFIED", context)
        reference = raster_path(self, parameters, "REFERENCE", context)
        checkpoint = self.parameterAsFile(parameters, "CHECKPOINT", context) or None
        report = (None if blank_output(parameters.get("REPORT"))
                  else self.parameterAsFileOutput(parameters, "REPORT", context))
        table = table_file(destination_text(parameters.get("OUTPUT_TABLE")),
                           self.parameterDefinition("OUTPUT_TABLE").supportedOutputVectorLayerExtensions())
        with engine_errors(qgis_message=False):
            _check_outputs(table, report, [("classified raster", classified), ("reference raster", reference),
                                           ("checkpoint", checkpoint)])
            mapping = acc.parse_class_mapping(self.parameterAsString(parameters, "CLASS_MAPPING", context))
            ignore = acc.parse_values(self.parameterAsString(parameters, "REFERENCE_NODATA", context))
            classes = None
            if checkpoint:
                from ...models.checkpoint import read_card
                from ...models.palette import classes_with_colors
                classes = classes_with_colors(read_card(checkpoint))
            metrics = acc.evaluate(classified, reference, classes, mapping, ignore,
                               progress_bridge(feedback), feedback.isCanceled)

        sink, dest = self.parameterAsSink(parameters, "OUTPUT_TABLE", context, table_fields(),
                                          QgsWkbTypes.NoGeometry)
        if sink is None:
            raise QgsProcessingException("Could not create the per-class table; choose another destination.")
        as_csv = source_file(str(dest)).lower().endswith(".csv")  # a class named "=..." stays text in a spreadsheet
        for row in metrics["per_class"]:
            feat = QgsFeature(table_fields())
            feat.setAttributes([row["value"], csv_cell(row["name"]) if as_csv else row["name"], row["iou"],
                                row["precision"], row["recall"], row["f1"], row["support"], row["predicted"]])
            sink.addFeature(feat, QgsFeatureSink.FastInsert)

        if context.willLoadLayerOnCompletion(dest):  # a batch's rows loaded alike without the map's name
            generic = self.parameterDefinition("OUTPUT_TABLE").description()
            name_if_generic(context, dest, [generic], generic + scene_suffix(classified))
        if report:
            with engine_errors(qgis_message=False):
                acc.write_report(metrics, report)
        feedback.pushInfo(f"Compared {metrics['compared_pixels']} pixels ({metrics['compared_area_ha']:.1f} ha): "
                          f"OA {metrics['oa']:.4f}, mIoU {metrics['miou']:.4f}, kappa {metrics['kappa']:.4f}")
        if metrics["ignored_reference"]:
            feedback.pushWarning("Reference values left out, not classes of the map, so OA, kappa and mIoU are "
                                 f"over the map's classes only: {metrics['ignored_reference']} (value: pixels). To "
                                 f"count them, map each to one of the map's classes (CLASS_MAPPING, e.g. 4:2)")
        for note in (acc.other_values_note(metrics), metrics["reference_only"] and acc.reference_only_note(metrics),
                     (metrics.get("legend_note") or "")[len("warning: "):]):
            if note:
                feedback.pushWarning(note)
        for row in metrics["per_class"]:
            fmt = lambda v: "   –  " if v is None else f"{v:6.3f}"  # noqa: E731
            feedback.pushInfo(f"  {row['name']:<20} IoU {fmt(row['iou'])}  P {fmt(row['precision'])}  "
                              f"R {fmt(row['recall'])}  F1 {fmt(row['f1'])}  n={row['support']}")
        return {
            "OUTPUT_TABLE": dest, "REPORT": report, "OA": metrics["oa"], "MIOU": metrics["miou"],
            "KAPPA": metrics["kappa"],
            "CLASS_METRICS": json.dumps({k: metrics[k] for k in ("oa", "miou", "kappa", "per_class", "confusion",
                                                                 "other_map_pixels", "class_values")}),
        }
