"""`claire:classify_folder`: classify every optical/SAR pair of two folders, carrying on past failures."""
from __future__ import annotations

import csv
import json
import os
import time
from typing import Any, Dict, List, Optional

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProcessingContext,
)
from qgis.PyQt.QtGui import QIcon

from .classify import DEVICES, optical_offset, parse_bands
from .common import LandCoverPostProcessor, qgis_message, write_qml_sidecar
from .provider import ICON

FOLDER_ICON = ICON.replace("claire.svg", "classify_folder.svg")

HELP = {
    "OPTICAL_FOLDER": "Folder of optical rasters (.tif, .tiff, .vrt, .img, .jp2); not searched recursively.",
    "SAR_FOLDER": "Folder of SAR rasters. Each optical file is paired with one SAR file by name.",
    "PAIRING": "How names pair. Empty: identical file names (a.tif with a.tif). A replacement OPTICAL->SAR, "
    "e.g. _S2->_S1 (several separated by ;). Or regex:PATTERN whose group (?P<key>...) must be equal, e.g. "
    "regex:(?P<key>\\d+D_\\d+[LR]_\\d_\\d). Files without a partner are listed in the log and the summary.",
    "OUTPUT_FOLDER": "Folder for the land-cover GeoTIFFs (<optical name>_landcover.tif) and the summary "
    "(claire_batch_summary.json and .csv).",
    "CHECKPOINT": "CLAIRE checkpoint (.safetensors). Empty: the bundled default.",
    "OPTICAL_BANDS": "Optional 1-based optical band numbers for every file, e.g. 2,3,4,8. Empty: automatic.",
    "SAR_BANDS": "Optional 1-based SAR band numbers, e.g. 1,2. Empty: automatic.",
    "OPTICAL_OFFSET": "Optional value added to the optical values before the checkpoint's scaling, e.g. -1000 for "
    "Sentinel-2 of processing baseline 04.00 or later (from 25 January 2022) whose metadata was lost. Empty: read "
    "from the file (GDAL scale/offset, BOA_ADD_OFFSET/RADIO_ADD_OFFSET, PROCESSING_BASELINE); the log says which.",
    "TILE_SIZE": "Tile size in pixels (multiple of 32). 0: the checkpoint's.",
    "OVERLAP": "Tile overlap in pixels. -1: the checkpoint's.",
    "BATCH_SIZE": "Tiles per forward pass.",
    "DEVICE": "auto: CUDA if available, then Apple MPS, else CPU.",
    "CONFIDENCE": "Also write <optical name>_confidence.tif per pair.",
    "SKIP_EXISTING": "Skip pairs whose output already exists (to resume an interrupted batch).",
}

SUMMARY_JSON = "claire_batch_summary.json"
SUMMARY_CSV = "claire_batch_summary.csv"


def write_summary(folder: str, summary: Dict[str, Any]) -> Dict[str, str]:
    """Write the batch summary as JSON and as CSV (one row per file) into ``folder``."""
    js = os.path.join(folder, SUMMARY_JSON)
    with open(js, "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2)
    cs = os.path.join(folder, SUMMARY_CSV)
    with open(cs, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["status", "key", "optical", "sar", "output", "seconds", "oa", "miou", "reason"])
        for r in summary["results"]:
            w.writerow([r["status"], r["key"], r["optical"], r["sar"], r.get("output") or "",
                        r.get("seconds", ""), r.get("oa", ""), r.get("miou", ""), r.get("reason", "")])
        for u in summary["unmatched"]:
            w.writerow(["unmatched", "", u["path"] if u["side"] == "optical" else "",
                        u["path"] if u["side"] == "sar" else "", "", "", "", "", u["reason"]])
    return {"json": js, "csv": cs}


class ClassifyFolderAlgorithm(QgsProcessingAlgorithm):
    """Batch classification of two folders paired by file name."""

    def __init__(self) -> None:
        super().__init__()
        self._post_processors: List[LandCoverPostProcessor] = []

    def name(self) -> str:
        return "classify_folder"

    def displayName(self) -> str:  # noqa: N802
        return "Classify land cover of folders (optical + SAR pairs)"

    def group(self) -> str:
        return "Land cover"

    def groupId(self) -> str:  # noqa: N802
        return "landcover"

    def icon(self) -> QIcon:
        return QIcon(FOLDER_ICON)

    def createInstance(self) -> "ClassifyFolderAlgorithm":  # noqa: N802
        return ClassifyFolderAlgorithm()

    def shortHelpString(self) -> str:  # noqa: N802
        items = "".join(f"<li><b>{k}</b>: {v}</li>" for k, v in HELP.items())
        return ("<p>Pairs the optical and SAR rasters of two folders by file name and classifies every pair "
                "with the same checkpoint and options. A pair that fails (unreadable file, rasters that do not "
                "overlap, too few bands…) is recorded with its reason and the batch carries on. The results "
                "give the counts, the outputs and the failures; a summary JSON and CSV are written to the "
                "output folder.</p>"
                f"<ul>{items}</ul>")

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        params = [
            QgsProcessingParameterFile("OPTICAL_FOLDER", "Optical folder",
                                       behavior=QgsProcessingParameterFile.Folder),
            QgsProcessingParameterFile("SAR_FOLDER", "SAR folder", behavior=QgsProcessingParameterFile.Folder),
            QgsProcessingParameterString("PAIRING", "Pairing rule (empty: identical names; e.g. _S2->_S1)",
                                         optional=True),
            QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"),
            QgsProcessingParameterFile("CHECKPOINT", "Checkpoint (empty: bundled default)",
                                       extension="safetensors", optional=True),
            QgsProcessingParameterString("OPTICAL_BANDS", "Optical bands (e.g. 2,3,4,8)", optional=True),
            QgsProcessingParameterString("SAR_BANDS", "SAR bands (e.g. 1,2)", optional=True),
            QgsProcessingParameterNumber("OPTICAL_OFFSET", "Optical offset before scaling (empty: from each file)",
                                         type=QgsProcessingParameterNumber.Double, optional=True),
            QgsProcessingParameterNumber("TILE_SIZE", "Tile size (0: checkpoint's)", defaultValue=0, minValue=0),
            QgsProcessingParameterNumber("OVERLAP", "Tile overlap (-1: checkpoint's)", defaultValue=-1,
                                         minValue=-1),
            QgsProcessingParameterNumber("BATCH_SIZE", "Batch size", defaultValue=4, minValue=1, maxValue=256),
            QgsProcessingParameterEnum("DEVICE", "Device", options=DEVICES, defaultValue=0),
            QgsProcessingParameterBoolean("CONFIDENCE", "Also write confidence rasters", defaultValue=False),
            QgsProcessingParameterBoolean("SKIP_EXISTING", "Skip pairs whose output exists", defaultValue=False),
        ]
        advanced = {"OPTICAL_BANDS", "SAR_BANDS", "OPTICAL_OFFSET", "TILE_SIZE", "OVERLAP", "BATCH_SIZE", "DEVICE",
                    "SKIP_EXISTING"}
        for p in params:
            p.setHelp(HELP[p.name()])
            if p.name() in advanced:
                p.setFlags(p.flags() | p.FlagAdvanced)
            self.addParameter(p)
        self.addOutput(QgsProcessingOutputNumber("PAIRS", "Pairs found"))
        self.addOutput(QgsProcessingOutputNumber("SUCCEEDED", "Pairs classified"))
        self.addOutput(QgsProcessingOutputNumber("FAILED", "Pairs failed"))
        self.addOutput(QgsProcessingOutputNumber("UNMATCHED", "Files without partner"))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUTS", "Land-cover rasters"))
        self.addOutput(QgsProcessingOutputString("FAILURES", "Failures (JSON: file and reason)"))
        self.addOutput(QgsProcessingOutputString("UNMATCHED_FILES", "Unmatched files (JSON: file and reason)"))
        self.addOutput(QgsProcessingOutputFile("SUMMARY_JSON", "Summary (JSON)"))
        self.addOutput(QgsProcessingOutputFile("SUMMARY_CSV", "Summary (CSV)"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core import engine
        from ..core.errors import USER_ERRORS, CancelledError, ClaireError
        from ..core.io.pairing import output_name, pair_folders
        from ..core.params import ClassifyParams

        optical_dir = self.parameterAsFile(parameters, "OPTICAL_FOLDER", context)
        sar_dir = self.parameterAsFile(parameters, "SAR_FOLDER", context)
        out_dir = self.parameterAsString(parameters, "OUTPUT_FOLDER", context)
        rule = self.parameterAsString(parameters, "PAIRING", context)
        from ..cli.classify_folder import check_pairing

        try:
            pairing = pair_folders(optical_dir, sar_dir, rule)
            check_pairing(pairing, optical_dir, sar_dir, rule)  # an empty folder or no pair: nothing to do
        except ClaireError as exc:
            raise QgsProcessingException(str(exc)) from None
        os.makedirs(out_dir, exist_ok=True)
        feedback.pushInfo(f"{len(pairing.pairs)} pair(s) found in {optical_dir} and {sar_dir}.")
        for u in pairing.unmatched:
            feedback.pushWarning(f"Unmatched {u.side} file {os.path.basename(u.path)}: {u.reason}")

        overlap = self.parameterAsInt(parameters, "OVERLAP", context)
        common = dict(
            checkpoint=self.parameterAsFile(parameters, "CHECKPOINT", context) or None,
            optical_bands=parse_bands(self.parameterAsString(parameters, "OPTICAL_BANDS", context), "OPTICAL_BANDS"),
            sar_bands=parse_bands(self.parameterAsString(parameters, "SAR_BANDS", context), "SAR_BANDS"),
            optical_offset=optical_offset(self, parameters, context),
            tile_size=self.parameterAsInt(parameters, "TILE_SIZE", context) or None,
            overlap=None if overlap < 0 else overlap,
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            device=DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)],
        )
        want_conf = self.parameterAsBool(parameters, "CONFIDENCE", context)
        skip = self.parameterAsBool(parameters, "SKIP_EXISTING", context)

        results: List[Dict[str, Any]] = []
        outputs: List[str] = []
        styles: List[Any] = []
        n = max(1, len(pairing.pairs))
        for i, pair in enumerate(pairing.pairs):
            if feedback.isCanceled():
                results.append({"status": "cancelled", "key": pair.key, "optical": pair.optical, "sar": pair.sar,
                                "reason": "cancelled by the user before this pair"})
                continue
            output = os.path.join(out_dir, output_name(pair))
            record: Dict[str, Any] = {"key": pair.key, "optical": pair.optical, "sar": pair.sar, "output": output}
            feedback.pushInfo(f"[{i + 1}/{len(pairing.pairs)}] {os.path.basename(pair.optical)} + "
                              f"{os.path.basename(pair.sar)}")
            if skip and os.path.exists(output):
                record.update(status="skipped", reason="output exists")
                results.append(record)
                outputs.append(output)
                continue
            params = ClassifyParams(
                optical=pair.optical, sar=pair.sar, output=output,
                confidence=os.path.join(out_dir, output_name(pair, "_confidence")) if want_conf else None,
                **common)

            def progress(fraction: float, message: str, i=i) -> None:
                feedback.setProgress(100.0 * (i + max(0.0, min(1.0, fraction))) / n)

            start = time.perf_counter()
            try:
                result = engine.classify(params, progress, feedback.isCanceled)
            except CancelledError:
                record.update(status="cancelled", reason="cancelled by the user", output=None)
                results.append(record)
                continue
            except Exception as exc:  # carry on past a failing pair, with its reason
                user = isinstance(exc, USER_ERRORS)
                reason = qgis_message(str(exc)) if user else f"{type(exc).__name__}: {exc}"
                feedback.reportError(f"  failed: {reason}")
                record.update(status="failed", reason=reason, output=None,
                              seconds=round(time.perf_counter() - start, 2))
                results.append(record)
                continue
            record.update(status="ok", seconds=round(time.perf_counter() - start, 2), device=result.device)
            metrics = (result.summary or {}).get("metrics") or {}
            if metrics:
                record.update(oa=metrics.get("oa"), miou=metrics.get("miou"))
            card = getattr(result, "card", None) or {}
            classes = [dict(c) for c in result.summary.get("classes", [])] or card.get("classes")
            nodata = card.get("nodata", 0)
            write_qml_sidecar(result.output, classes, nodata)
            styles.append((result.output, classes, nodata))
            outputs.append(result.output)
            results.append(record)
            feedback.pushInfo(f"  wrote {os.path.basename(result.output)} in {record['seconds']} s")

        failures = [{"optical": r["optical"], "sar": r["sar"], "reason": r.get("reason")}
                    for r in results if r["status"] in ("failed", "cancelled")]
        unmatched = [{"path": u.path, "side": u.side, "reason": u.reason} for u in pairing.unmatched]
        summary = {
            "optical_folder": optical_dir, "sar_folder": sar_dir, "pairing_rule": rule or "",
            "pairs": len(pairing.pairs), "succeeded": sum(r["status"] in ("ok", "skipped") for r in results),
            "failed": len(failures), "unmatched_count": len(unmatched), "results": results, "unmatched": unmatched,
        }
        files = write_summary(out_dir, summary)
        feedback.pushInfo(f"Done: {summary['succeeded']} classified, {summary['failed']} failed, "
                          f"{len(unmatched)} unmatched file(s). Summary: {files['json']}")

        for path, classes, nodata in styles:
            post = LandCoverPostProcessor(classes, nodata)
            self._post_processors.append(post)
            details = QgsProcessingContext.LayerDetails(
                f"Land cover {os.path.splitext(os.path.basename(path))[0]}", context.project(), "OUTPUTS")
            details.setPostProcessor(post)
            context.addLayerToLoadOnCompletion(path, details)

        return {
            "PAIRS": len(pairing.pairs), "SUCCEEDED": summary["succeeded"], "FAILED": summary["failed"],
            "UNMATCHED": len(unmatched), "OUTPUTS": outputs, "FAILURES": json.dumps(failures),
            "UNMATCHED_FILES": json.dumps(unmatched), "SUMMARY_JSON": files["json"], "SUMMARY_CSV": files["csv"],
            "OUTPUT_FOLDER": out_dir,
        }
