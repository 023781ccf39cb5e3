"""`claire:sample_points` and `claire:map_accuracy`: a stratified random sample of a classified map to label,
and the area-weighted accuracy of the labelled points (Olofsson et al. 2014)."""
from __future__ import annotations

import json
from typing import Any, Dict, Optional

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterVectorLayer,
)

from ..core.area_estimate import AREA_UNITS
from ..layers.layers import layer_crs, temporary_output_warning
from .base import ClaireAlgorithm, engine_errors
from .common import FLAG_TO_PARAMETER, RasterFileParameter, blank_output, raster_path, vector_path

SAMPLE_HELP = {
    "MAP": "The classified map (integer class raster, e.g. the output of Classify land cover).",
    "PER_CLASS": "Points per map class, drawn uniformly without replacement (all pixels of smaller classes). "
    "50 or more is advised; classes with fewer than 30 labelled points get wide confidence intervals.",
    "SEED": "Random seed: the same map and seed give the same points.",
    "OUTPUT": "GeoPackage of points at pixel centres, with fields sample_id, map_class, map_name and ref_class "
    "(empty). "
    "Fill ref_class with the class you see on imagery or in the field, without looking at the map.",
}
ACCURACY_HELP = {
    "MAP": "The classified map the points were drawn from.",
    "POINTS": "The labelled sample points (any point layer; reprojected to the map's CRS).",
    "FIELD": "The field holding the reference class: a class code of the map, or a class name of the map (case "
    "aside) in a text field; points where it is empty are skipped and counted.",
    "AREA_UNIT": "Unit of the class areas in the table the log shows (the JSON report holds square metres).",
    "REPORT": "Optional JSON file with every number (error matrix, accuracies, areas, SEs, CIs).",
}


class SamplePointsAlgorithm(ClaireAlgorithm):
    """Stratified random sample of a classified map (strata = map classes)."""

    TAGS = ("accuracy", "stratified", "random sample", "validation", "points", "Olofsson")
    ICON_NAME = "evaluate.svg"
    HELP = SAMPLE_HELP
    INTRO = ("Draws a stratified random sample of a classified map for an accuracy assessment you can publish: "
             "a fixed number of random pixels of every map class. Label the points, then run Map accuracy "
             "from labelled points.")

    def name(self) -> str:
        return "sample_points"

    def displayName(self) -> str:  # noqa: N802
        return "Sample points for map accuracy"

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        self.add_parameters([
            RasterFileParameter("MAP", "Classified map"),
            QgsProcessingParameterNumber("PER_CLASS", "Points per class",
                                         type=QgsProcessingParameterNumber.Type.Integer, defaultValue=50, minValue=1),
            QgsProcessingParameterNumber("SEED", "Random seed", type=QgsProcessingParameterNumber.Type.Integer,
                                         defaultValue=0, minValue=0, maxValue=2 ** 31 - 1),
            QgsProcessingParameterFileDestination("OUTPUT", "Sample points", fileFilter="GeoPackage (*.gpkg)"),
        ])
        self.addOutput(QgsProcessingOutputNumber("POINTS", "Number of points"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.io.writer import check_output_path
        from ..core.map_accuracy import stratified_sample, write_points

        path = raster_path(self, parameters, "MAP", context)
        out = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        with engine_errors(qgis_message=False):
            check_output_path(out, [("classified map", path)], "sample points")  # before any work
            s = stratified_sample(path, self.parameterAsInt(parameters, "PER_CLASS", context),
                                  self.parameterAsInt(parameters, "SEED", context))
            write_points(s, out)
        details = QgsProcessingContext.LayerDetails("Sample points", context.project(), "OUTPUT")
        context.addLayerToLoadOnCompletion(out, details)
        feedback.pushInfo(f"{len(s)} points written to {out}; fill ref_class with the code of the class you see "
                          f"(the map's codes: {s.legend()})")
        for note in s.notes:
            feedback.pushWarning(note)
        temporary = temporary_output_warning(out, "", "Save the layer (Export > Save Features As) before you label "
                                             "its points", "samples.gpkg")
        if temporary:  # the labels typed into it would go with it
            feedback.pushWarning(temporary)
        return {"OUTPUT": out, "POINTS": len(s)}


class MapAccuracyAlgorithm(ClaireAlgorithm):
    """Area-weighted error matrix, accuracies and class areas with 95 % CIs from labelled points."""

    TAGS = ("accuracy", "error matrix", "confusion matrix", "area", "confidence interval", "stratified", "Olofsson")
    ICON_NAME = "evaluate.svg"
    HELP = ACCURACY_HELP
    INTRO = ("Turns labelled sample points into the area-weighted error matrix, overall, user's and producer's "
             "accuracy and the estimated area of each class with 95 % confidence intervals (Olofsson et al. "
             "2014). This is map accuracy; the held-out-polygon score of training is model validation.")

    def name(self) -> str:
        return "map_accuracy"

    def displayName(self) -> str:  # noqa: N802
        return "Map accuracy from labelled points"

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        self.add_parameters([
            RasterFileParameter("MAP", "Classified map"),
            QgsProcessingParameterVectorLayer("POINTS", "Labelled sample points",
                                              [QgsProcessing.SourceType.TypeVectorPoint]),
            QgsProcessingParameterField("FIELD", "Reference class field", defaultValue="ref_class",
                                        parentLayerParameterName="POINTS"),
            QgsProcessingParameterEnum("AREA_UNIT", "Area unit", options=list(AREA_UNITS), defaultValue=0),
            QgsProcessingParameterFileDestination("REPORT", "Report", fileFilter="JSON (*.json)", optional=True,
                                                  createByDefault=False),
        ])
        self.addOutput(QgsProcessingOutputNumber("OA", "Overall accuracy"))
        self.addOutput(QgsProcessingOutputNumber("OA_CI95", "Overall accuracy 95 % CI half-width"))
        self.addOutput(QgsProcessingOutputString("RESULT", "Full result (JSON)"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.area_estimate import accuracy_table
        from ..core.io.atomic import json_default, require_suffix, write_json
        from ..core.io.writer import check_outputs
        from ..core.map_accuracy import evaluate_points

        path = raster_path(self, parameters, "MAP", context)
        points, sub = vector_path(self, parameters, "POINTS", context)
        report = (None if blank_output(parameters.get("REPORT"))
                  else self.parameterAsFileOutput(parameters, "REPORT", context))
        unit = list(AREA_UNITS)[self.parameterAsEnum(parameters, "AREA_UNIT", context)]
        with engine_errors(names={"--layer": FLAG_TO_PARAMETER["--layer"]}):  # the other flags are the CLI's own
            check_outputs([("accuracy report", report)],
                          [("classified map", path), ("labelled points", points)])
            require_suffix(report, (".json",), "accuracy report")
            result = evaluate_points(path, points, self.parameterAsString(parameters, "FIELD", context),
                                     layer=sub, assigned_crs=layer_crs(self.parameterAsVectorLayer(
                                         parameters, "POINTS", context)))
            if report:
                write_json(report, result, "accuracy report")
        for line in accuracy_table(result, unit, warnings=False).splitlines():
            feedback.pushInfo(line)
        for w in result["warnings"]:
            feedback.pushWarning(w)
        return {"OA": result["overall_accuracy"], "OA_CI95": result["overall_ci95"], "REPORT": report,
                "RESULT": json.dumps(result, default=json_default)}
