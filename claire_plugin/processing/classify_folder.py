"""`claire:classify_folder`: classify every optical/SAR pair of two folders, carrying on past failures.

A thin translation to `core.batch.classify_pairs`, the loop `claire classify-folder` runs too.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterString,
)

from .base import ClaireAlgorithm, engine_errors
from .common import LandCoverPostProcessor, qgis_message
from .options import MAP_RULES_HELP, RUN_ADVANCED, RUN_HELP, map_rule_parameters, run_options, run_parameters

HELP = {
    "OPTICAL_FOLDER": "Folder of optical rasters (.tif, .tiff, .vrt, .img, .jp2); not searched recursively.",
    "SAR_FOLDER": "Folder of SAR rasters. Each optical file is paired with one SAR file by name.",
    "PAIRING": "How names pair. Empty: identical file names (a.tif with a.tif). A replacement OPTICAL->SAR, "
    "e.g. _S2->_S1 (several separated by ;). Or regex:PATTERN whose group (?P<key>...) must be equal, e.g. "
    "regex:(?P<key>\\d+D_\\d+[LR]_\\d_\\d). For a time series, nearest:DAYS pairs each optical with the SAR of "
    "the nearest date at most DAYS apart (dates from the names), nearest:DAYS:PATTERN within each key, e.g. "
    "nearest:12:(?P<key>T\\d\\d[A-Z]{3}) per tile. Files without a partner are listed in the log and the summary.",
    "OUTPUT_FOLDER": "Folder for the land-cover GeoTIFFs (<optical name>_landcover.tif) and the summary "
    "(claire_batch_summary.json and .csv).",
    **RUN_HELP,
    **MAP_RULES_HELP,
    "CONFIDENCE": "Also write <optical name>_confidence.tif per pair.",
    "SKIP_EXISTING": "Skip pairs whose outputs (the map, and the confidence when asked for) already exist "
                     "complete, with this run's classes and made from the same input files (to resume an interrupted "
                     "batch; a map of another model's classes, or of a scene delivered again, is classified again).",
    "DASK_SCHEDULER": "Run the pairs on a Dask cluster: tcp://HOST:PORT of a running scheduler, or local:N for N "
    "worker processes on this computer. Empty: in QGIS, as usual. Inputs and the output folder must be on "
    "storage the workers see under the same paths (see docs/cluster.md).",
}


class ClassifyFolderAlgorithm(ClaireAlgorithm):
    """Batch classification of two folders paired by file name."""

    TAGS = ("deep learning", "segmentation", "batch", "folder", "many scenes")
    ICON_NAME = "classify_folder.svg"
    HELP = HELP
    ADVANCED = RUN_ADVANCED | {"SKIP_EXISTING", "DASK_SCHEDULER"} | set(MAP_RULES_HELP)
    INTRO = ("Pairs the optical and SAR rasters of two folders by file name and classifies every pair with the "
             "same checkpoint and options. A pair that fails (unreadable file, rasters that do not overlap, too "
             "few bands…) is recorded with its reason and the batch carries on. The results give the counts, the "
             "outputs and the failures; a summary JSON and CSV are written to the output folder.")

    def name(self) -> str:
        return "classify_folder"

    def displayName(self) -> str:  # noqa: N802
        return "Classify land cover of folders (optical + SAR pairs)"

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        self.add_parameters([
            QgsProcessingParameterFile("OPTICAL_FOLDER", "Optical folder", behavior=QgsProcessingParameterFile.Folder),
            QgsProcessingParameterFile("SAR_FOLDER", "SAR folder", behavior=QgsProcessingParameterFile.Folder),
            QgsProcessingParameterString("PAIRING", "Pairing rule (empty: same names)",
                                         optional=True),
            QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"),
            *run_parameters(),
            *map_rule_parameters(),
            QgsProcessingParameterBoolean("CONFIDENCE", "Also write confidence rasters", defaultValue=False),
            QgsProcessingParameterBoolean("SKIP_EXISTING", "Skip pairs whose output exists", defaultValue=False),
            QgsProcessingParameterString("DASK_SCHEDULER", "Dask scheduler (empty: in QGIS)", optional=True),
        ])
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
        from ..core.batch import check_pairing, classify_pairs
        from ..core.cluster import executor_for
        from ..core.io.pairing import pair_folders

        optical_dir = self.parameterAsFile(parameters, "OPTICAL_FOLDER", context)
        sar_dir = self.parameterAsFile(parameters, "SAR_FOLDER", context)
        out_dir = self.parameterAsString(parameters, "OUTPUT_FOLDER", context)
        rule = self.parameterAsString(parameters, "PAIRING", context)
        with engine_errors():
            options = run_options(self, parameters, context)
            pairing = pair_folders(optical_dir, sar_dir, rule)
            check_pairing(pairing, optical_dir, sar_dir, rule)  # an empty folder or no pair: nothing to do
        feedback.pushInfo(f"{len(pairing.pairs)} pair(s) found in {optical_dir} and {sar_dir}.")
        for u in pairing.unmatched:
            feedback.pushWarning(f"Unmatched {u.side} file {os.path.basename(u.path)}: {u.reason}")
        styles: List[Any] = []

        def on_pair(i: int, n: int, record: Dict[str, Any], result) -> None:
            feedback.pushInfo(f"[{i + 1}/{n}] {os.path.basename(record['optical'])} + "
                              f"{os.path.basename(record['sar'])}: {record['status']}")
            for said in record.get("warnings") or []:
                feedback.pushWarning(f"  {qgis_message(said)}")
            if record["status"] == "failed":
                record["reason"] = qgis_message(record["reason"])
                feedback.reportError(f"  failed: {record['reason']}")
            if result is not None:
                classes = [dict(c) for c in result.summary.get("classes", [])] or result.card.get("classes")
                nodata = result.card.get("nodata", 0)
                styles.append((result.output, classes, nodata))
                feedback.pushInfo(f"  wrote {os.path.basename(result.output)} in {record['seconds']} s")
                if record.get("note"):
                    feedback.pushWarning(f"  {record['note']}")

        scheduler = self.parameterAsString(parameters, "DASK_SCHEDULER", context)
        with engine_errors(), executor_for(scheduler, feedback.pushInfo) as executor:
            summary = classify_pairs(
                pairing, options, out_dir, optical_folder=optical_dir, sar_folder=sar_dir, rule=rule,
                confidence=self.parameterAsBool(parameters, "CONFIDENCE", context),
                skip_existing=self.parameterAsBool(parameters, "SKIP_EXISTING", context),
                progress=lambda fraction, _message: feedback.setProgress(100.0 * fraction),
                is_cancelled=feedback.isCanceled, on_pair=on_pair, executor=executor)
        self._load_on_completion(styles, context)
        self._fail_when_none_classified(summary)
        return self._outputs(summary, out_dir, feedback)

    @staticmethod
    def _fail_when_none_classified(summary) -> None:
        """QgsProcessingException when every pair failed: a batch with nothing classified is an error (the
        summary files stay, with each pair's reason), not a success with a count of failures."""
        failed = [r for r in summary.results if r["status"] == "failed"]
        if summary.results and len(failed) == len(summary.results):
            reasons = sorted({r.get("reason") or "" for r in failed})
            first = reasons[0] if len(reasons) == 1 else f"{len(reasons)} different reasons, e.g. {reasons[0]}"
            raise QgsProcessingException(f"None of the {len(failed)} pair(s) could be classified ({first}); each "
                                         f"pair's reason is in {summary.json_path}")

    def _load_on_completion(self, styles, context) -> None:
        """Ask QGIS to load each written raster, styled with its checkpoint's classes."""
        for path, classes, nodata in styles:
            post = LandCoverPostProcessor(classes, nodata)
            self._post_processors.append(post)  # QGIS keeps only a C++ pointer: hold the Python object
            details = QgsProcessingContext.LayerDetails(
                f"Land cover {os.path.splitext(os.path.basename(path))[0]}", context.project(), "OUTPUTS")
            details.setPostProcessor(post)
            context.addLayerToLoadOnCompletion(path, details)

    @staticmethod
    def _outputs(summary, out_dir: str, feedback) -> Dict[str, Any]:
        """The algorithm's outputs from the batch summary (FAILED counts failed and cancelled pairs)."""
        failures = [{"optical": r["optical"], "sar": r["sar"], "reason": r.get("reason")}
                    for r in summary.results if r["status"] in ("failed", "cancelled")]
        succeeded = summary.count("ok", "skipped")
        feedback.pushInfo(f"Done: {succeeded} classified, {len(failures)} failed, {len(summary.unmatched)} "
                          f"unmatched file(s). Summary: {summary.json_path}")
        return {
            "PAIRS": len(summary.results), "SUCCEEDED": succeeded, "FAILED": len(failures),
            "UNMATCHED": len(summary.unmatched), "OUTPUTS": summary.outputs, "FAILURES": json.dumps(failures),
            "UNMATCHED_FILES": json.dumps(summary.unmatched), "SUMMARY_JSON": summary.json_path,
            "SUMMARY_CSV": summary.csv_path, "OUTPUT_FOLDER": out_dir,
        }
