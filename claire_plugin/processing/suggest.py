"""`claire:suggest`: where to label next, the places where two maps of the same scene disagree (the network's
and the random forest's of a training run) or the map's confidence is low, away from the labels drawn."""
from __future__ import annotations

from typing import Any, Dict, Optional

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterVectorLayer,
)

from ..layers.layers import layer_crs
from .base import ClaireAlgorithm, engine_errors
from .common import FLAG_TO_PARAMETER, RasterFileParameter, raster_path, vector_path

HELP = {
    "MAP": "The classified map (e.g. Classify land cover with the checkpoint a training run wrote).",
    "SECOND": "A second classified map of the same grid, e.g. the same scene classified with the training run's "
    "random forest (the .forest checkpoint beside the network). Where the two disagree, your polygons did not "
    "teach them enough.",
    "CONFIDENCE": "The map's confidence raster (Classify land cover's Confidence output). Give it, the second "
    "map, or both.",
    "LABELS": "The training polygons or points: their places (and the squares beside them) are skipped.",
    "FIELD": "The class field of the labels.",
    "N": "How many places to suggest.",
    "SQUARE": "Side of the squares the map is scored in, in pixels (16 px = 160 m at 10 m).",
    "OUTPUT": "GeoPackage of points (layer label_next) with the rank, the share of the square in doubt, what each "
    "map says there and the confidence. Draw a polygon of the cover you see at each point, then train again.",
}


class SuggestAlgorithm(ClaireAlgorithm):
    """Places to label next (query by committee on two maps, or low confidence)."""

    TAGS = ("training", "active learning", "where to label", "random forest", "disagreement")
    ICON_NAME = "evaluate.svg"
    HELP = HELP
    INTRO = ("Suggests where to draw training polygons next: the squares of the map where a second map of the "
             "same scene disagrees with it (or the confidence is low), away from the labels you already drew, "
             "each marked by a point where the doubt is densest.")

    def name(self) -> str:
        return "suggest"

    def displayName(self) -> str:  # noqa: N802
        return "Where to label next"

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        vector = [QgsProcessing.SourceType.TypeVectorPolygon, QgsProcessing.SourceType.TypeVectorPoint]
        self.add_parameters([
            RasterFileParameter("MAP", "Classified map"),
            RasterFileParameter("SECOND", "Second classified map of the same scene", optional=True),
            RasterFileParameter("CONFIDENCE", "Confidence raster of the map", optional=True),
            QgsProcessingParameterVectorLayer("LABELS", "Training polygons or points", vector, optional=True),
            QgsProcessingParameterField("FIELD", "Class field", parentLayerParameterName="LABELS", optional=True),
            QgsProcessingParameterNumber("N", "Number of places", type=QgsProcessingParameterNumber.Type.Integer,
                                         defaultValue=10, minValue=1, maxValue=200),
            QgsProcessingParameterNumber("SQUARE", "Square side (pixels)",
                                         type=QgsProcessingParameterNumber.Type.Integer, defaultValue=16,
                                         minValue=4, maxValue=512),
            QgsProcessingParameterFileDestination("OUTPUT", "Places to label", fileFilter="GeoPackage (*.gpkg)"),
        ])
        self.addOutput(QgsProcessingOutputNumber("PLACES", "Number of places"))
        self.addOutput(QgsProcessingOutputNumber("DISAGREEMENT", "Share of unlabelled pixels where the maps differ"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.io.writer import check_output_path
        from ..core.suggest import check_places_output, suggest, summary_lines, write_places

        path = raster_path(self, parameters, "MAP", context)
        second = raster_path(self, parameters, "SECOND", context) if parameters.get("SECOND") else None
        conf = raster_path(self, parameters, "CONFIDENCE", context) if parameters.get("CONFIDENCE") else None
        labels = layer = field = None
        if parameters.get("LABELS"):
            labels, layer = vector_path(self, parameters, "LABELS", context)
            field = self.parameterAsString(parameters, "FIELD", context)
            if not field:
                raise QgsProcessingException("FIELD: choose the field of LABELS that holds the class.")
        out = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        names = {**FLAG_TO_PARAMETER, "--map": "MAP", "--second": "SECOND", "--confidence": "CONFIDENCE",
                 "--n": "N", "--square": "SQUARE"}
        with engine_errors(names=names):
            check_output_path(out, [("classified map", path), ("second map", second),
                                    ("confidence raster", conf), ("labels", labels)],
                              "places to label")  # before any work
            check_places_output(out)
            crs = layer_crs(self.parameterAsVectorLayer(parameters, "LABELS", context)) if labels else None
            s = suggest(path, second, conf, labels, field, layer, n=self.parameterAsInt(parameters, "N", context),
                        labels_crs=crs,
                        square=self.parameterAsInt(parameters, "SQUARE", context))
            write_places(s, out)
        details = QgsProcessingContext.LayerDetails("Places to label next", context.project(), "OUTPUT")
        context.addLayerToLoadOnCompletion(out, details)
        for line in summary_lines(s):
            feedback.pushInfo(line)
        return {"OUTPUT": out, "PLACES": len(s.places), "DISAGREEMENT": s.disagreement}
