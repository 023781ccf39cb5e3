"""`claire:grow_polygons`: training polygons grown from labelled points over the optical raster (the Train
tab's magic wand, for a whole point layer)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterVectorLayer,
)

from ..core.inputs.units import SAR_UNITS
from ..core.training.wand import MAX_WIDTH, MAX_WIDTH_RANGE, TOLERANCE, TOLERANCE_RANGE
from ..layers.layers import layer_crs, temporary_output_warning
from .base import ClaireAlgorithm, engine_errors
from .common import FLAG_TO_PARAMETER, ClassesPostProcessor, RasterFileParameter, raster_path, vector_path

HELP = {
    "OPTICAL": "The optical raster the polygons are grown over (and that you will train on).",
    "SAR": "The SAR raster of the scene: pixels without SAR data never join a polygon.",
    "POINTS": "Labelled points (field survey, photo-interpreted points), any point layer; reprojected to the "
    "optical raster's CRS.",
    "FIELD": "The field of POINTS holding the class (codes or names); it is copied to the polygons.",
    "TOLERANCE": f"How far a pixel's optical values may be from the point's to join, as an RMS distance over the "
    f"bands in the checkpoint's standard deviations ({TOLERANCE:g} by default; measured in "
    f"docs/train_from_polygons.md). Raise it for textured covers (built area, woods).",
    "MAX_WIDTH": "Side of the square around each point that its polygon stays in, in pixels.",
    "CHECKPOINT": "Checkpoint whose normalisation measures the distances (the one you will fine-tune). Empty: the "
    "bundled default.",
    "SAR_UNITS": "Unit of the SAR values, as in Classify land cover.",
    "OUTPUT": "GeoPackage of polygons (layer training) in the optical raster's CRS with the class field, "
    "source_fid (the point's feature id), pixels and the points' other fields (e.g. a macroclass). Check them on "
    "the imagery, then train on them.",
}


class GrowPolygonsAlgorithm(ClaireAlgorithm):
    """One training polygon per labelled point, grown over similar optical pixels around it."""

    TAGS = ("training", "points", "polygons", "region growing", "magic wand", "labels")
    ICON_NAME = "model_card.svg"
    HELP = HELP
    INTRO = ("Turns labelled points into training polygons: around each point, the pixels connected to it whose "
             "optical values are within the tolerance of the point's (inside a square of MAX_WIDTH pixels) become "
             "one polygon with the point's class. Points are taken in feature order; a polygon never takes the "
             "pixels of an earlier one, and points that give no polygon are listed with the reason.")

    def name(self) -> str:
        return "grow_polygons"

    def displayName(self) -> str:  # noqa: N802
        return "Training polygons from points (region growing)"

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        number = QgsProcessingParameterNumber
        self.add_parameters([
            RasterFileParameter("OPTICAL", "Optical raster"),
            RasterFileParameter("SAR", "SAR raster"),
            QgsProcessingParameterVectorLayer("POINTS", "Labelled points", [QgsProcessing.SourceType.TypeVectorPoint]),
            QgsProcessingParameterField("FIELD", "Class field", parentLayerParameterName="POINTS"),
            number("TOLERANCE", "Tolerance (standard deviations)", number.Type.Double, defaultValue=TOLERANCE,
                   minValue=TOLERANCE_RANGE[0], maxValue=TOLERANCE_RANGE[1]),
            number("MAX_WIDTH", "Largest polygon width (pixels)", number.Type.Integer, defaultValue=MAX_WIDTH,
                   minValue=MAX_WIDTH_RANGE[0], maxValue=MAX_WIDTH_RANGE[1]),
            QgsProcessingParameterFile("CHECKPOINT", "Checkpoint (empty: bundled default)", extension="safetensors",
                                       optional=True),
            QgsProcessingParameterEnum("SAR_UNITS", "SAR units", options=list(SAR_UNITS), defaultValue=0),
            QgsProcessingParameterFileDestination("OUTPUT", "Training polygons", fileFilter="GeoPackage (*.gpkg)"),
        ])
        self.addOutput(QgsProcessingOutputNumber("POLYGONS", "Number of polygons"))
        self.addOutput(QgsProcessingOutputNumber("SKIPPED", "Number of points skipped"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.io.writer import check_output_path
        from ..core.training.grow_points import (
            check_grown_output,
            grow_from_points,
            summary_lines,
            wand_card,
            write_grown,
        )

        points, layer = vector_path(self, parameters, "POINTS", context)
        field = self.parameterAsString(parameters, "FIELD", context)
        if not field:
            raise QgsProcessingException("FIELD: choose the field of POINTS that holds the class.")
        out = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        tolerance = self.parameterAsDouble(parameters, "TOLERANCE", context)
        optical = raster_path(self, parameters, "OPTICAL", context)
        sar = raster_path(self, parameters, "SAR", context)
        checkpoint = self.parameterAsFile(parameters, "CHECKPOINT", context) or None
        names = {**FLAG_TO_PARAMETER, "--points": "POINTS", "--labels": "POINTS", "--tolerance": "TOLERANCE",
                 "--max-width": "MAX_WIDTH"}
        with engine_errors(names=names):
            check_output_path(out, [("optical raster", optical), ("SAR raster", sar),
                                    ("labelled points", points), ("checkpoint", checkpoint)],
                              "training polygons")  # before any work
            check_grown_output(out)
            grown = grow_from_points(
                optical, sar, points, field, layer, checkpoint, tolerance,
                self.parameterAsInt(parameters, "MAX_WIDTH", context),
                sar_units=list(SAR_UNITS)[self.parameterAsEnum(parameters, "SAR_UNITS", context)],
                progress=lambda f, _text: feedback.setProgress(100.0 * f), is_cancelled=feedback.isCanceled,
                assigned_crs=layer_crs(self.parameterAsVectorLayer(parameters, "POINTS", context)))
            write_grown(grown, out)
        details = QgsProcessingContext.LayerDetails("Grown training polygons", context.project(), "OUTPUT")
        card = wand_card(checkpoint)
        post = ClassesPostProcessor(field, card)
        self._post_processors.append(post)  # QGIS holds no reference: it must outlive this call
        details.setPostProcessor(post)
        context.addLayerToLoadOnCompletion(out, details)
        for k, line in enumerate(summary_lines(grown, tolerance)):
            (feedback.pushInfo if k == 0 else feedback.pushWarning)(line)
        temporary = temporary_output_warning(out, "", "Save the layer (Export > Save Features As) before you edit "
                                             "its polygons", "polygons.gpkg")
        if temporary:
            feedback.pushWarning(temporary)
        return {"OUTPUT": out, "POLYGONS": len(grown.polygons), "SKIPPED": len(grown.skipped)}
