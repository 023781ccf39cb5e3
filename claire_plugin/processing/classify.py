"""`claire:classify`: optical + SAR raster → styled land-cover GeoTIFF, with per-class metrics."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtGui import QIcon

from .common import LandCoverPostProcessor, layer_file, metrics_json, progress_bridge, write_qml_sidecar
from .provider import ICON

DEVICES = ["auto", "cpu", "cuda", "mps"]

HELP = {
    "OPTICAL": "Optical raster (e.g. Sentinel-2 L2A 12 bands, L1C 13 bands, or only the bands the checkpoint "
    "expects). Its grid (CRS, pixel size, extent) is the grid of the output.",
    "SAR": "SAR raster (e.g. Sentinel-1 VV, VH in dB or linear). Any CRS and pixel size: it is resampled onto "
    "the optical grid window by window. Only the overlap of the two rasters is classified.",
    "CHECKPOINT": "CLAIRE checkpoint (.safetensors) with its model card. Empty: the bundled default "
    "(Sentinel-2 + Sentinel-1, 8 land-cover classes).",
    "OPTICAL_BANDS": "Optional 1-based optical band numbers in the order the checkpoint expects, e.g. 2,3,4,8. "
    "Empty: chosen from band descriptions or the known Sentinel-2 layouts; the log says what was chosen.",
    "SAR_BANDS": "Optional 1-based SAR band numbers, e.g. 1,2 for VV,VH. Empty: chosen automatically.",
    "OPTICAL_OFFSET": "Optional value added to the optical values before the checkpoint's scaling, e.g. -1000 for "
    "Sentinel-2 of processing baseline 04.00 or later (from 25 January 2022) whose metadata was lost. Empty: read "
    "from the file (GDAL scale/offset, BOA_ADD_OFFSET/RADIO_ADD_OFFSET, PROCESSING_BASELINE); the log says which.",
    "TILE_SIZE": "Tile size in pixels (multiple of 32). 0: the checkpoint's tile size.",
    "OVERLAP": "Overlap between tiles in pixels; overlapping predictions are blended smoothly. "
    "-1: the checkpoint's overlap.",
    "BATCH_SIZE": "Tiles per forward pass. Larger is faster on a GPU and uses more memory.",
    "DEVICE": "auto: CUDA if available, then Apple MPS, else CPU.",
    "REFERENCE": "Optional reference label raster with the checkpoint's class values. When given, the results "
    "include IoU, precision, recall, F1 per class and OA, mIoU, kappa.",
    "OUTPUT": "Classified GeoTIFF (uint8, colour table and class names inside, QML style beside it).",
    "CONFIDENCE": "Optional confidence GeoTIFF: the top-class probability per pixel.",
    "RELIANCE": "Optional modality-reliance GeoTIFF: the SAR share of the fusion gate per pixel (0 = optical, "
    "1 = SAR).",
    "REPORT": "Optional report (.json with a Markdown twin, or .html): facts, per-class table, metrics and a "
    "grounded explanation.",
}


def optical_offset(alg, parameters, context) -> Optional[float]:
    """The OPTICAL_OFFSET parameter, None when left empty (the engine then reads the file's metadata)."""
    if parameters.get("OPTICAL_OFFSET") in (None, ""):
        return None
    return alg.parameterAsDouble(parameters, "OPTICAL_OFFSET", context)


def parse_bands(text: Optional[str], name: str) -> Optional[List[int]]:
    """Parse '2,3,4,8' into [2, 3, 4, 8] with the CLI's parser; errors become Processing errors."""
    from ..cli.classify import parse_band_list
    from ..core.errors import ClaireError

    try:
        return parse_band_list(text, name)
    except ClaireError as exc:
        raise QgsProcessingException(str(exc)) from None


class ClassifyAlgorithm(QgsProcessingAlgorithm):
    """Runs the CLAIRE engine on one optical + SAR pair."""

    def __init__(self) -> None:
        super().__init__()
        self._post_processors: List[LandCoverPostProcessor] = []

    def name(self) -> str:
        return "classify"

    def displayName(self) -> str:  # noqa: N802
        return "Classify land cover (optical + SAR)"

    def group(self) -> str:
        return "Land cover"

    def groupId(self) -> str:  # noqa: N802
        return "landcover"

    def icon(self) -> QIcon:
        return QIcon(ICON)

    def createInstance(self) -> "ClassifyAlgorithm":  # noqa: N802
        return ClassifyAlgorithm()

    def shortHelpString(self) -> str:  # noqa: N802
        params = "".join(f"<li><b>{key}</b>: {text}</li>" for key, text in HELP.items())
        return (
            "<p>Fuses an optical and a SAR raster into a land-cover map with a CLAIRE network: the two encoders' "
            "features are fused by cross-modality attention, so the SAR carries the decision where clouds hide "
            "the ground. Runs tile by tile in flat memory; the output lies exactly on the optical grid.</p>"
            f"<ul>{params}</ul>"
        )

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        params = [
            QgsProcessingParameterRasterLayer("OPTICAL", "Optical raster"),
            QgsProcessingParameterRasterLayer("SAR", "SAR raster"),
            QgsProcessingParameterFile(
                "CHECKPOINT", "Checkpoint (empty: bundled default)", extension="safetensors", optional=True
            ),
            QgsProcessingParameterString("OPTICAL_BANDS", "Optical bands (e.g. 2,3,4,8)", optional=True),
            QgsProcessingParameterString("SAR_BANDS", "SAR bands (e.g. 1,2)", optional=True),
            QgsProcessingParameterNumber("OPTICAL_OFFSET", "Optical offset before scaling (empty: from the file)",
                                         type=QgsProcessingParameterNumber.Double, optional=True),
            QgsProcessingParameterNumber("TILE_SIZE", "Tile size (0: checkpoint's)", defaultValue=0, minValue=0),
            QgsProcessingParameterNumber("OVERLAP", "Tile overlap (-1: checkpoint's)", defaultValue=-1, minValue=-1),
            QgsProcessingParameterNumber("BATCH_SIZE", "Batch size", defaultValue=4, minValue=1, maxValue=256),
            QgsProcessingParameterEnum("DEVICE", "Device", options=DEVICES, defaultValue=0),
            QgsProcessingParameterRasterLayer("REFERENCE", "Reference labels (optional)", optional=True),
            QgsProcessingParameterRasterDestination("OUTPUT", "Land cover"),
            QgsProcessingParameterRasterDestination(
                "CONFIDENCE", "Confidence", optional=True, createByDefault=False
            ),
            QgsProcessingParameterRasterDestination(
                "RELIANCE", "Modality reliance (SAR share)", optional=True, createByDefault=False
            ),
            QgsProcessingParameterFileDestination(
                "REPORT", "Report", fileFilter="JSON report (*.json);;HTML report (*.html)", optional=True,
                createByDefault=False,
            ),
        ]
        advanced = {"OPTICAL_BANDS", "SAR_BANDS", "OPTICAL_OFFSET", "TILE_SIZE", "OVERLAP", "BATCH_SIZE", "DEVICE"}
        for param in params:
            param.setHelp(HELP[param.name()])
            if param.name() in advanced:
                param.setFlags(param.flags() | param.FlagAdvanced)
            self.addParameter(param)
        self.addOutput(QgsProcessingOutputNumber("OA", "Overall accuracy (with a reference)"))
        self.addOutput(QgsProcessingOutputNumber("MIOU", "Mean IoU (with a reference)"))
        self.addOutput(QgsProcessingOutputNumber("KAPPA", "Cohen's kappa (with a reference)"))
        self.addOutput(QgsProcessingOutputString("CLASS_METRICS", "Per-class metrics (JSON)"))
        self.addOutput(QgsProcessingOutputString("CLASS_TABLE", "Per-class metrics (table)"))

    def _optional_path(self, parameters, name: str, context) -> Optional[str]:
        value = parameters.get(name)
        if value is None or value == "":
            return None
        path = self.parameterAsOutputLayer(parameters, name, context) if name in ("CONFIDENCE", "RELIANCE") \
            else self.parameterAsFileOutput(parameters, name, context)
        return path or None

    def build_params(self, parameters, context):
        """Translate Processing parameters into the engine's ClassifyParams."""
        from ..core.params import ClassifyParams

        overlap = self.parameterAsInt(parameters, "OVERLAP", context)
        tile = self.parameterAsInt(parameters, "TILE_SIZE", context)
        reference = None
        if parameters.get("REFERENCE"):
            reference = layer_file(self.parameterAsRasterLayer(parameters, "REFERENCE", context), "REFERENCE")
        checkpoint = self.parameterAsFile(parameters, "CHECKPOINT", context) or None
        return ClassifyParams(
            optical=layer_file(self.parameterAsRasterLayer(parameters, "OPTICAL", context), "OPTICAL"),
            sar=layer_file(self.parameterAsRasterLayer(parameters, "SAR", context), "SAR"),
            output=self.parameterAsOutputLayer(parameters, "OUTPUT", context),
            checkpoint=checkpoint,
            optical_bands=parse_bands(self.parameterAsString(parameters, "OPTICAL_BANDS", context), "OPTICAL_BANDS"),
            sar_bands=parse_bands(self.parameterAsString(parameters, "SAR_BANDS", context), "SAR_BANDS"),
            optical_offset=optical_offset(self, parameters, context),
            tile_size=tile or None,
            overlap=None if overlap < 0 else overlap,
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            device=DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)],
            confidence=self._optional_path(parameters, "CONFIDENCE", context),
            reliance=self._optional_path(parameters, "RELIANCE", context),
            reference=reference,
            report=self._optional_path(parameters, "REPORT", context),
        )

    def checkParameterValues(self, parameters, context):  # noqa: N802
        """Missing or unreadable raster files get the engine's message (problem and fix) instead of QGIS's
        'Could not load source layer'; layers are opened without writing sidecars next to the inputs."""
        from ..layers.layers import no_input_sidecars
        from .common import check_raster_files

        problem = check_raster_files(parameters, {"OPTICAL": "optical", "SAR": "SAR", "REFERENCE": "reference"})
        if problem:
            return False, problem
        with no_input_sidecars():
            return super().checkParameterValues(parameters, context)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core import engine
        from ..core.errors import USER_ERRORS
        from ..layers.layers import no_input_sidecars
        from .common import qgis_message

        with no_input_sidecars():
            params = self.build_params(parameters, context)
        try:
            result = engine.classify(params, progress_bridge(feedback), feedback.isCanceled)
        except USER_ERRORS as exc:
            raise QgsProcessingException(qgis_message(str(exc))) from None
        for message in result.messages:
            feedback.pushInfo(qgis_message(message))

        classes = [dict(c) for c in result.summary.get("classes", [])] or result.card.get("classes")
        nodata = result.card.get("nodata", 0)
        write_qml_sidecar(result.output, classes, nodata)
        if context.willLoadLayerOnCompletion(result.output):
            post = LandCoverPostProcessor(classes, nodata)
            self._post_processors.append(post)  # QGIS keeps only a C++ pointer: hold the Python object
            details = context.layerToLoadOnCompletionDetails(result.output)
            details.setPostProcessor(post)
            details.name = "Land cover (CLAIRE)"

        metrics = result.summary.get("metrics") or {}
        outputs = {
            "OUTPUT": result.output,
            "CONFIDENCE": result.confidence,
            "RELIANCE": result.reliance,
            "REPORT": params.report,
            "OA": metrics.get("oa"),
            "MIOU": metrics.get("miou"),
            "KAPPA": metrics.get("kappa"),
            "CLASS_METRICS": metrics_json(result.summary),
            "CLASS_TABLE": class_table(result.summary),
        }
        feedback.pushInfo(outputs["CLASS_TABLE"])
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
        lines.append(f"OA {metrics.get('oa', 0):.4f}  mIoU {metrics.get('miou', 0):.4f}  kappa {metrics.get('kappa', 0):.4f}")
    return "\n".join(lines)
