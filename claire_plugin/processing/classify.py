"""`claire:classify`: optical + SAR raster → styled land-cover GeoTIFF, with per-class metrics."""
from __future__ import annotations

from typing import Any, Dict, Optional

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterExtent,
    QgsProcessingParameterRasterDestination,
)

from .base import ClaireAlgorithm, engine_errors
from .common import (
    RasterFileParameter,
    ReportParameter,
    blank_output,
    extent_in,
    metrics_json,
    progress_bridge,
    raster_path,
    scene_suffix,
    style_classified,
    style_companions,
)
from .options import MAP_RULES_HELP, RUN_ADVANCED, RUN_HELP, map_rule_parameters, run_options, run_parameters

HELP = {
    "OPTICAL": "Optical raster (e.g. Sentinel-2 L2A 12 bands, L1C 13 bands, or only the bands the checkpoint "
    "expects). Its grid (CRS, pixel size, extent) is the grid of the output.",
    "SAR": "SAR raster (e.g. Sentinel-1 VV, VH in dB or linear). Any CRS and pixel size: it is resampled onto "
    "the optical grid window by window. Only the overlap of the two rasters is classified.",
    **RUN_HELP,
    "REFERENCE": "Optional reference label raster with the checkpoint's class values. When given, the results "
    "include IoU, precision, recall, F1 per class and OA, mIoU, kappa.",
    "OUTPUT": "Classified GeoTIFF (uint8, colour table and class names inside, QML style beside it).",
    "CONFIDENCE": "Optional confidence GeoTIFF (uint8 percent, rounded down, nodata 255): the top-class probability "
    "per pixel.",
    "RELIANCE": "Optional GeoTIFF of the SAR gate weight (uint8 percent, nodata 255): the SAR share of the fusion gate "
    "per pixel (0 = all optical, 100 = all SAR); how the network mixed the two sensors' features, not which of them "
    "decided the class.",
    "CLOUD": "Optional cloud-probability GeoTIFF (uint8 percent, nodata 255): cloud, haze or cloud shadow per pixel "
    "(no cirrus test: B10 is not read; salt flats and white roofs read as cloud), the probability a cloud-gated "
    "model is given; 100 where optical gaps were filled from SAR.",
    "UNFAMILIAR": "Optional 'unlike the training data' GeoTIFF (uint8, nodata 255): the distance of the model's "
    "features from its training data, 100 = at the checkpoint's threshold or beyond (do not trust the map there).",
    **MAP_RULES_HELP,
    "REPORT": "Optional report (.json with a Markdown twin, or .html): facts, per-class table, metrics and a "
    "grounded explanation.",
    "EXTENT": "Optional: classify only the optical pixels this extent touches (e.g. the map canvas extent, for a "
    "quick preview). The outputs cover that extent, with the same values as a run over the whole scene. Any "
    "CRS: it is transformed to the optical raster's.",
}


class ClassifyAlgorithm(ClaireAlgorithm):
    """Runs the CLAIRE engine on one optical + SAR pair."""

    TAGS = ("deep learning", "segmentation", "machine learning", "cloud", "fusion", "map")
    HELP = HELP
    ADVANCED = RUN_ADVANCED | {"FILL_FROM_SAR", "SNOW_CHECK"}
    INTRO = ("Fuses an optical and a SAR raster into a land-cover map with a CLAIRE network: the two encoders' "
             "features are fused by cross-modality attention, so where clouds hide the ground the map rests on "
             "the radar. Runs tile by tile in flat memory; the output lies exactly on the optical grid.")

    def name(self) -> str:
        return "classify"

    def displayName(self) -> str:  # noqa: N802
        return "Classify land cover (optical + SAR)"

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        self.add_parameters([
            RasterFileParameter("OPTICAL", "Optical raster"),
            RasterFileParameter("SAR", "SAR raster"),
            *run_parameters(),
            RasterFileParameter("REFERENCE", "Reference labels", optional=True),
            QgsProcessingParameterExtent("EXTENT", "Only this extent (a preview)", optional=True),
            QgsProcessingParameterRasterDestination("OUTPUT", "Land cover"),
            QgsProcessingParameterRasterDestination(
                "CONFIDENCE", "Confidence", optional=True, createByDefault=False
            ),
            QgsProcessingParameterRasterDestination(
                "RELIANCE", "SAR gate weight (SAR share of the fusion gate)", optional=True, createByDefault=False
            ),
            *map_rule_parameters(),
            QgsProcessingParameterRasterDestination(
                "CLOUD", "Cloud probability", optional=True, createByDefault=False
            ),
            QgsProcessingParameterRasterDestination(
                "UNFAMILIAR", "Unlike the training data", optional=True, createByDefault=False
            ),
            ReportParameter(
                "REPORT", "Report", fileFilter="JSON report (*.json);;HTML report (*.html)", optional=True,
                createByDefault=False,
            ),
        ])
        self.addOutput(QgsProcessingOutputNumber("OA", "Overall accuracy (with a reference)"))
        self.addOutput(QgsProcessingOutputNumber("MIOU", "Mean IoU (with a reference)"))
        self.addOutput(QgsProcessingOutputNumber("KAPPA", "Cohen's kappa (with a reference)"))
        self.addOutput(QgsProcessingOutputString("CLASS_METRICS", "Per-class metrics (JSON)"))
        self.addOutput(QgsProcessingOutputString("CLASS_TABLE", "Per-class metrics (table)"))

    def _optional_path(self, parameters, name: str, context) -> Optional[str]:
        if blank_output(parameters.get(name)):
            return None
        rasters = ("CONFIDENCE", "RELIANCE", "CLOUD", "UNFAMILIAR")
        path = self.parameterAsOutputLayer(parameters, name, context) if name in rasters \
            else self.parameterAsFileOutput(parameters, name, context)
        return path or None

    def build_params(self, parameters, context):
        """Translate Processing parameters into the engine's ClassifyParams."""
        reference = raster_path(self, parameters, "REFERENCE", context) if parameters.get("REFERENCE") else None
        with engine_errors(qgis_message=False):
            options = run_options(self, parameters, context)
        optical = raster_path(self, parameters, "OPTICAL", context)
        return options.params(
            optical, raster_path(self, parameters, "SAR", context),
            self.parameterAsOutputLayer(parameters, "OUTPUT", context),
            confidence=self._optional_path(parameters, "CONFIDENCE", context),
            reliance=self._optional_path(parameters, "RELIANCE", context),
            cloud=self._optional_path(parameters, "CLOUD", context),
            unfamiliar=self._optional_path(parameters, "UNFAMILIAR", context),
            reference=reference,
            report=self._optional_path(parameters, "REPORT", context),
            extent=extent_in(self, parameters, "EXTENT", context, optical),
        )

    def checkParameterValues(self, parameters, context):  # noqa: N802
        """Missing or unreadable raster files get the engine's message (problem and fix) instead of QGIS's
        'Could not load source layer'; layers are opened without writing sidecars next to the inputs."""
        from ..layers.layers import no_input_sidecars
        from .common import check_raster_files

        roles = {"OPTICAL": "optical", "SAR": "SAR", "REFERENCE": "reference"}
        try:
            problem = check_raster_files(parameters, roles)
        except (ImportError, OSError) as exc:  # a package missing or broken: raised here, QGIS ended qgis_process
            from ..deps import missing_package_hint

            hint = missing_package_hint(exc)
            if not hint:
                raise
            return False, hint
        if problem:
            return False, problem
        with no_input_sidecars():
            return super().checkParameterValues(parameters, context)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core import engine
        from ..core.engine.summary import reference_line, scene_line
        from ..layers.layers import no_input_sidecars
        from .common import qgis_message

        with no_input_sidecars():
            params = self.build_params(parameters, context)
        with engine_errors(feedback=feedback):
            result = engine.classify(params, progress_bridge(feedback), feedback.isCanceled)
        for message in result.messages:
            if message.startswith("warning:"):  # QGIS heads it WARNING: itself
                feedback.pushWarning(qgis_message(message.removeprefix("warning: ")))
            else:
                feedback.pushInfo(qgis_message(message))

        suffix = scene_suffix(params.optical)  # a batch's rows loaded alike without it
        style_classified(result, context, self._post_processors, "Land cover (CLAIRE)" + suffix)
        style_companions(result, context, self._post_processors, suffix,
                         [self.outputDefinition(k).description() for k in ("CONFIDENCE", "RELIANCE", "CLOUD",
                                                                            "UNFAMILIAR")])

        metrics = result.summary.get("metrics") or {}
        outputs = {
            "OUTPUT": result.output,
            "CONFIDENCE": result.confidence,
            "RELIANCE": result.reliance,
            "CLOUD": result.cloud,
            "UNFAMILIAR": result.unfamiliar,
            "REPORT": params.report,
            "OA": metrics.get("oa"),
            "MIOU": metrics.get("miou"),
            "KAPPA": metrics.get("kappa"),
            "CLASS_METRICS": metrics_json(result.summary),
            "CLASS_TABLE": class_table(result.summary),
        }
        feedback.pushInfo(outputs["CLASS_TABLE"])
        feedback.pushInfo(scene_line(result.summary))
        if metrics:
            left = (metrics.get("reference_left_out") or {}).get("pixels")
            (feedback.pushWarning if left else feedback.pushInfo)(reference_line(metrics))
        return outputs


def _cell(value, width: int, digits: int = 3) -> str:
    """A right-aligned number, or a dash where the value is undefined (class absent from map and reference)."""
    if value is None or value != value:
        return f"{'-':>{width}}"
    return f"{value:>{width}.{digits}f}"


def class_table(summary: dict) -> str:
    """A plain-text per-class table (area, share, confidence; IoU/P/R/F1 with a reference)."""
    metrics = summary.get("metrics") or {}
    per_class = {m.get("name"): m for m in metrics.get("per_class", [])}
    header = f"{'class':<22}{'area ha':>10}{'share %':>9}{'conf':>7}"
    if per_class:
        header += f"{'IoU':>7}{'prec':>7}{'recall':>8}{'F1':>7}"
    lines = [header]
    for cls in summary.get("classes", []):
        line = (f"{cls['name']:<22}{cls.get('area_ha', 0):>10.1f}{100 * cls.get('share', 0):>9.1f}"
                + _cell(cls.get("mean_confidence") if cls.get("pixels") else None, 7, 2))
        if per_class:
            m = per_class.get(cls["name"]) or {}
            line += "".join(_cell(m.get(k), w) for k, w in (("iou", 7), ("precision", 7), ("recall", 8), ("f1", 7)))
        lines.append(line)
    if metrics:
        oa, miou, kappa = (metrics.get(k, 0) for k in ("oa", "miou", "kappa"))
        lines.append(f"OA {oa:.4f}  mIoU {miou:.4f}  kappa {kappa:.4f}")
    return "\n".join(lines)
