"""`claire:train`: fine-tune a checkpoint on your own polygons (or a label raster), validated on held-out
polygons, beside a random forest and the untuned checkpoint; optionally classify the scene with it."""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Tuple

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)

from ...models.macroclass import LEVELS
from ..core.inputs.units import SAR_UNITS
from ..core.training.checks import CROP_MAX, EPOCHS_MAX, MINUTES_MAX, RF_TREES_MAX, TRAIN_BATCH_MAX
from ..layers.layers import layer_crs, temporary_output_warning
from .base import ClaireAlgorithm, engine_errors
from .common import (
    TRAIN_FLAG_TO_PARAMETER,
    RasterFileParameter,
    blank_output,
    progress_bridge,
    qgis_message,
    raster_path,
    style_classified,
    vector_path,
)
from .options import DEVICES, RUN_HELP

HELP = {
    "OPTICAL": "Optical raster (Sentinel-2) the labels were drawn on. Its grid is the labels' grid.",
    "SAR": "SAR raster (Sentinel-1 VV, VH), warped onto the optical grid.",
    "LABELS": "Polygons or points with a class field (any file format OGR reads, e.g. a GeoPackage). Pixels "
    "outside them are ignored, never background. Give this or a label raster.",
    "FIELD": "Field of the labels holding the class: integer codes or text names.",
    "NAME_FIELD": "Optional field holding each class's name when FIELD holds integer codes 1..254 (e.g. 31 and "
    "'Broad-leaved forest'): the map keeps your codes and carries the names. Empty: the classes are named 'class "
    "31'... (The map stores one byte per pixel: recode larger codes, such as CORINE's 311, to 1..254 first.)",
    "MACRO_FIELD": "Optional field with each class's macroclass (codes or names, SCP's MC ID; every feature of a "
    "class in the same macroclass), e.g. 'clear water' and 'turbid water' in 'water'. The network learns the "
    "classes; the report scores the macroclasses too, and Classify land cover maps them with Level 'macroclass'.",
    "LABEL_RASTER": "Instead of polygons: a label raster (class codes; 0, 255 and its nodata are ignored). Its "
    "classes are named by CLASS_NAMES, else by the raster's own category names (as GDAL keeps them, e.g. in "
    "FILE.tif.aux.xml), else 'class N'.",
    "CLASS_NAMES": "Optional, with LABEL_RASTER: the names (and colours) of its codes as value:name[:#rrggbb], "
    "comma-separated, e.g. 1:water:#419bdf,2:crops. Codes left out keep the raster's own name or 'class N'. Name "
    "the classes as the base checkpoint's card does where they are the same, and its knowledge of them is kept.",
    "VALIDATION": "Optional separate validation layer with the same field and classes. Empty: 30 % of each "
    "class's polygons are held out (whole polygons, with a 3-pixel buffer) and written as HELD_OUT; started from "
    "your own CHECKPOINT, the polygons that validated it are held out again, and held-out polygons that trained it "
    "make the scores optimistic (said). Give an "
    "earlier run's HELD_OUT here to score a new training on the same polygons; training polygons it holds too "
    "then validate only.",
    "CHECKPOINT": "Checkpoint to start from (.safetensors). Empty: the bundled default. It is first scored on "
    "image windows around your training polygons: below macro-F1 0.5 (an area it does not know) it is taught at a "
    "higher learning rate; the log and report say which.",
    "EPOCHS": "Epochs of fine-tuning (the most epochs when a time budget is set).",
    "MINUTES": "Optional time budget of the training loop in minutes (0: none); scoring comes on top.",
    "DEVICE": "auto: CUDA if available, then Apple MPS, else the CPU.",
    "SAR_UNITS": RUN_HELP["SAR_UNITS"],
    "STEPS_PER_EPOCH": "Optimiser steps per epoch.",
    "BATCH_SIZE": "Crops per step.",
    "CROP": "Crop size in pixels (multiple of 32).",
    "RF_TREES": "Trees of the random-forest baseline (0: no baseline and no leakage check).",
    "SEED": "Random seed of the held-out split, the crops and the forest: the same seed, labels and settings give the "
    "same split and forest (the network's weights agree to the last digits only at one thread count; scores and "
    "maps alike). Another seed holds out other polygons: with few per class the scores move with it.",
    "THREADS": "CPU threads of the training (0: torch's choice, lowered while other programs keep the cores busy). "
    "A given count is kept all along: the same seed, labels, settings and thread count give the same weights.",
    "OUTPUT": "The new checkpoint (.safetensors) with its model card (classes, bands, scores).",
    "REPORT": "Validation report (JSON; an HTML copy is written beside it): scores of the fine-tuned "
    "network, the untuned checkpoint and the random forests on the held-out polygons, clear and with "
    "synthetic clouds, and the random-pixel-split score as the leakage check.",
    "CLASSIFIED": "Optional: classify the scene with the new checkpoint (styled like Classify land cover).",
    "CLASSIFY_WITH": "Which model maps the scene for CLASSIFIED: the fine-tuned network, the random forest "
    "(optical + SAR) of this run, whichever of these scored the highest macro-F1 on the clear held-out polygons, or "
    "the network and the forest averaged (the forest's weight chosen on the held-out polygons, falling under "
    "cloud).",
    "LEVEL": "The level CLASSIFIED maps: the classes, or the macroclasses of MACRO_FIELD (each pixel the "
    "macroclass whose classes' probabilities sum highest).",
    "HELD_OUT": "The held-out polygons that scored the models, copied from the training layer with their class "
    "and feature id (NAME.heldout.gpkg beside OUTPUT; loaded with a dashed outline). Empty when VALIDATION or a "
    "label raster was given.",
    "FOREST_CHECKPOINT": "The random forest (optical + SAR) of the run as a checkpoint, written beside OUTPUT "
    "(NAME.forest.safetensors) unless RF_TREES is 0: Classify land cover maps with it like with a network.",
    "ENSEMBLE_CHECKPOINT": "The fine-tuned network and the random forest averaged per pixel, the forest's weight "
    "(0 to 1 at clear pixels, chosen on the held-out polygons; the report's scores for it are cross-fitted) "
    "falling to 0 with the cloud probability, written beside OUTPUT (NAME.ensemble.safetensors) unless RF_TREES "
    "is 0: Classify land cover maps with it like with a network.",
}

#: CLASSIFY_WITH choices (Processing enum order; new choices go last so that saved models keep their meaning)
CLASSIFY_WITH = ["The fine-tuned network", "The random forest (optical + SAR)",
                 "Whichever scored highest on the held-out polygons",
                 "The network and the forest averaged"]
#: the report's arm of each CLASSIFY_WITH choice that names one model
CHOICE_ARM = {0: "finetuned", 1: "rf_optical_sar", 3: "ensemble"}


def _train_at_threads(threads: int, params, *args):
    """`train_from_polygons(params, *args)` with torch's CPU threads set to `threads` (0: left as they are) on this
    thread (the process's torch thread) and restored afterwards."""
    import torch

    from ..core.training.polygons import train_from_polygons

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return train_from_polygons(params, *args)
    finally:
        torch.set_num_threads(before)


class TrainAlgorithm(ClaireAlgorithm):
    """Teach CLAIRE your area: fine-tune from polygons on one optical + SAR scene."""

    TAGS = ("training", "fine-tune", "deep learning", "machine learning", "random forest", "polygons", "labels",
            "accuracy")
    ICON_NAME = "claire.svg"
    HELP = HELP
    ADVANCED = frozenset({"STEPS_PER_EPOCH", "BATCH_SIZE", "CROP", "RF_TREES", "SEED", "THREADS", "DEVICE",
                          "SAR_UNITS", "CLASSIFY_WITH", "LEVEL"})
    INTRO = ("Fine-tunes a CLAIRE checkpoint on your own polygons and validates it on held-out polygons, next "
             "to a random forest and the untuned checkpoint. The checkpoint and report are written only when "
             "the whole run succeeded. Polygon-split scores validate the model on your labels; they are not a "
             "map accuracy estimate.")

    def name(self) -> str:
        return "train"

    def displayName(self) -> str:  # noqa: N802
        return "Train from polygons (fine-tune a checkpoint)"

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        vector = [QgsProcessing.SourceType.TypeVectorPolygon, QgsProcessing.SourceType.TypeVectorPoint]
        number = QgsProcessingParameterNumber
        self.add_parameters([
            RasterFileParameter("OPTICAL", "Optical raster"),
            RasterFileParameter("SAR", "SAR raster"),
            QgsProcessingParameterVectorLayer("LABELS", "Training polygons or points", vector, optional=True),
            QgsProcessingParameterField("FIELD", "Class field", parentLayerParameterName="LABELS", optional=True),
            QgsProcessingParameterField("NAME_FIELD", "Class name field (for integer codes)",
                                        parentLayerParameterName="LABELS", optional=True),
            QgsProcessingParameterField("MACRO_FIELD", "Macroclass field", parentLayerParameterName="LABELS",
                                        optional=True),
            RasterFileParameter("LABEL_RASTER", "Label raster (instead of polygons)", optional=True),
            QgsProcessingParameterString("CLASS_NAMES", "Class names of the label raster (value:name, ...)",
                                         optional=True),
            QgsProcessingParameterVectorLayer("VALIDATION", "Validation polygons", vector,
                                              optional=True),
            QgsProcessingParameterFile("CHECKPOINT", "Base checkpoint (empty: bundled default)",
                                       extension="safetensors", optional=True),
            number("EPOCHS", "Epochs", defaultValue=12, minValue=1, maxValue=EPOCHS_MAX),
            number("MINUTES", "Time budget in minutes (0: none)", number.Double, defaultValue=0, minValue=0,
                   maxValue=MINUTES_MAX),
            QgsProcessingParameterEnum("DEVICE", "Device", options=DEVICES, defaultValue=0),
            QgsProcessingParameterEnum("SAR_UNITS", "SAR units", options=list(SAR_UNITS), defaultValue=0),
            number("STEPS_PER_EPOCH", "Steps per epoch", defaultValue=20, minValue=1),
            number("BATCH_SIZE", "Batch size", defaultValue=8, minValue=1, maxValue=TRAIN_BATCH_MAX),
            number("CROP", "Crop size (px)", defaultValue=128, minValue=32, maxValue=CROP_MAX),
            number("RF_TREES", "Random-forest trees (0: no baseline)", defaultValue=200, minValue=0,
                   maxValue=RF_TREES_MAX),
            number("SEED", "Random seed", defaultValue=0, minValue=0, maxValue=2 ** 31 - 1),
            number("THREADS", "CPU threads (0: automatic)", defaultValue=0, minValue=0, maxValue=1024),
            QgsProcessingParameterFileDestination("OUTPUT", "Checkpoint", "Checkpoint (*.safetensors)"),
            QgsProcessingParameterFileDestination("REPORT", "Validation report", "JSON report (*.json)"),
            QgsProcessingParameterRasterDestination("CLASSIFIED", "Land cover with the new checkpoint",
                                                    optional=True, createByDefault=False),
            QgsProcessingParameterEnum("CLASSIFY_WITH", "Classify with", options=CLASSIFY_WITH, defaultValue=0),
            QgsProcessingParameterEnum("LEVEL", "Map level of the classified scene", options=list(LEVELS),
                                       defaultValue=0),
        ])
        self.addOutput(QgsProcessingOutputFile("FOREST_CHECKPOINT", "Random forest checkpoint (optical + SAR)"))
        self.addOutput(QgsProcessingOutputFile("ENSEMBLE_CHECKPOINT", "Network and forest averaged (checkpoint)"))
        self.addOutput(QgsProcessingOutputFile("REPORT_HTML", "Validation report (HTML)"))
        self.addOutput(QgsProcessingOutputFile("HELD_OUT", "Held-out polygons (GeoPackage; VALIDATION of a later "
                                               "run)"))
        self.addOutput(QgsProcessingOutputNumber("MACRO_F1", "Macro-F1 on the held-out polygons"))
        self.addOutput(QgsProcessingOutputNumber("MACRO_F1_LOW", "Macro-F1, lower end of its 95 % interval "
                                                 "(held-out polygons resampled; empty without one)"))
        self.addOutput(QgsProcessingOutputNumber("MACRO_F1_HIGH", "Macro-F1, upper end of its 95 % interval"))
        self.addOutput(QgsProcessingOutputNumber("OA", "Overall accuracy on the held-out polygons"))
        self.addOutput(QgsProcessingOutputNumber("KAPPA", "Kappa on the held-out polygons"))

    def _labels(self, parameters, context):
        """(labels path, layer name, field) from LABELS + FIELD or LABEL_RASTER (exactly one)."""
        has_vector, has_raster = bool(parameters.get("LABELS")), bool(parameters.get("LABEL_RASTER"))
        if has_vector == has_raster:
            raise QgsProcessingException("LABELS / LABEL_RASTER: give either training polygons (LABELS with its "
                                         "class FIELD) or a label raster (LABEL_RASTER), not both and not neither.")
        if has_raster:
            return raster_path(self, parameters, "LABEL_RASTER", context), \
                None, None
        if self.parameterAsString(parameters, "CLASS_NAMES", context).strip():
            raise QgsProcessingException("CLASS_NAMES: it names the codes of a label raster (LABEL_RASTER); the "
                                         "classes of LABELS are the values of FIELD: give FIELD the class names "
                                         "(text), or FIELD the codes and NAME_FIELD the field of their names, and "
                                         "leave CLASS_NAMES empty.")
        path, layer_name = vector_path(self, parameters, "LABELS", context)
        field = self.parameterAsString(parameters, "FIELD", context)
        if not field:
            raise QgsProcessingException("FIELD: choose the field of LABELS that holds the class (codes or names).")
        return path, layer_name, field

    def _validation(self, parameters, context) -> Tuple[Optional[str], Optional[str]]:
        """(file, layer name inside it) of VALIDATION; (None, None) without one."""
        if not parameters.get("VALIDATION"):
            return None, None
        return vector_path(self, parameters, "VALIDATION", context)

    def threads(self, parameters, context) -> int:
        """THREADS: the CPU thread count to keep (0: torch's choice, lowered while other programs are busy)."""
        return self.parameterAsInt(parameters, "THREADS", context) if "THREADS" in parameters else 0

    def build_params(self, parameters, context):
        """PolygonTrainParams from the parameters (layers resolved to files here, on the algorithm's thread)."""
        from ..core.training.finetune import FinetuneConfig
        from ..core.training.polygons import PolygonTrainParams

        labels, layer_name, field = self._labels(parameters, context)
        macro_field = self.parameterAsString(parameters, "MACRO_FIELD", context) or None
        name_field = self.parameterAsString(parameters, "NAME_FIELD", context) or None
        if name_field and not parameters.get("LABELS"):
            raise QgsProcessingException("NAME_FIELD: class names come from a field of LABELS; a label raster's codes "
                                         "are named by CLASS_NAMES. Leave NAME_FIELD empty.")
        if macro_field and not parameters.get("LABELS"):
            raise QgsProcessingException("MACRO_FIELD: macroclasses come from a field of LABELS; a label raster has "
                                         "none. Leave MACRO_FIELD empty or give the labels as polygons.")
        validation, validation_layer = self._validation(parameters, context)
        crs_of = {name: layer_crs(self.parameterAsVectorLayer(parameters, name, context)) if parameters.get(name)
                  else None for name in ("LABELS", "VALIDATION")}
        minutes = self.parameterAsDouble(parameters, "MINUTES", context) or None
        trees = self.parameterAsInt(parameters, "RF_TREES", context)
        cfg = FinetuneConfig(epochs=self.parameterAsInt(parameters, "EPOCHS", context), minutes=minutes,
                             steps_per_epoch=self.parameterAsInt(parameters, "STEPS_PER_EPOCH", context),
                             batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
                             crop=self.parameterAsInt(parameters, "CROP", context),
                             seed=self.parameterAsInt(parameters, "SEED", context),
                             device=DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)],
                             steer_threads=not self.threads(parameters, context))
        return PolygonTrainParams(
            optical=raster_path(self, parameters, "OPTICAL", context),
            sar=raster_path(self, parameters, "SAR", context),
            labels=labels, field=field, name_field=name_field, macro_field=macro_field, layer=layer_name,
            validation=validation,
            classes=self.parameterAsString(parameters, "CLASS_NAMES", context).strip() or None,
            validation_layer=validation_layer, labels_crs=crs_of["LABELS"], validation_crs=crs_of["VALIDATION"],
            output=self.parameterAsFileOutput(parameters, "OUTPUT", context),
            checkpoint=self.parameterAsFile(parameters, "CHECKPOINT", context) or None,
            report=self.parameterAsFileOutput(parameters, "REPORT", context),
            sar_units=list(SAR_UNITS)[self.parameterAsEnum(parameters, "SAR_UNITS", context)],
            baseline=trees > 0, rf_trees=max(trees, 1), config=cfg)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        import os

        from ..core.runtime.torch_thread import call, in_caller
        from ..core.training.polygons import report_notes
        from ..layers.layers import no_input_sidecars

        with no_input_sidecars():
            params = self.build_params(parameters, context)
        classified = self.parameterAsOutputLayer(parameters, "CLASSIFIED", context) \
            if not blank_output(parameters.get("CLASSIFIED")) else None
        choice = self.parameterAsEnum(parameters, "CLASSIFY_WITH", context)
        level = LEVELS[self.parameterAsEnum(parameters, "LEVEL", context)] if "LEVEL" in parameters else "class"
        if classified and level == "macroclass" and not params.macro_field:
            raise QgsProcessingException("LEVEL: the macroclass level maps the macroclasses of MACRO_FIELD; choose "
                                         "the macroclass field of LABELS, or the level 'class'.")
        if classified:
            with engine_errors(names=TRAIN_FLAG_TO_PARAMETER):
                _check_classified(params, classified)
                if choice and not params.baseline:
                    map_model({}, params.output, choice)  # refused before any training
        share = 0.8 if classified else 1.0
        temporary = temporary_output_warning(params.output, ", with the forest and held-out layer beside it",
                                             "Copy them to keep this model", "mymodel.safetensors")
        if temporary:
            feedback.pushWarning(temporary)
        report_progress = scaled_progress(progress_bridge(feedback), 0.0, share)
        # on the process's one torch thread, like the engine; callbacks come back here
        with engine_errors(names=TRAIN_FLAG_TO_PARAMETER):
            report = call(_train_at_threads, self.threads(parameters, context), params, in_caller(report_progress),
                          in_caller(epoch_reporter(feedback, report_progress)), feedback.isCanceled,
                          stop_waiting=feedback.isCanceled)
        for note in report_notes(report):
            feedback.pushInfo(qgis_message(f"note: {note}", TRAIN_FLAG_TO_PARAMETER))
        if not report.get("forest_checkpoint"):
            feedback.pushWarning("no random forest was trained (RF_TREES is 0): FOREST_CHECKPOINT and "
                                 "ENSEMBLE_CHECKPOINT are empty, and a model step fed from them would classify "
                                 "with the bundled checkpoint")
        feedback.pushInfo(score_lines(report))
        tuned = report["arms"]["finetuned"]["clear"]
        low, high = tuned.get("macro_f1_ci95") or (None, None)
        outputs = {"OUTPUT": params.output, "REPORT": params.report,
                   "REPORT_HTML": os.path.splitext(params.report)[0] + ".html",
                   "MACRO_F1": tuned["macro_f1"], "MACRO_F1_LOW": low, "MACRO_F1_HIGH": high,
                   "OA": tuned["oa"], "KAPPA": tuned["kappa"], "CLASSIFIED": None,
                   "FOREST_CHECKPOINT": report.get("forest_checkpoint"),
                   "ENSEMBLE_CHECKPOINT": report.get("ensemble_checkpoint"),
                   "HELD_OUT": report.get("held_out_layer")}
        if report.get("held_out_layer"):
            self._load_held_out(report["held_out_layer"], context, report.get("labels"))
        if temporary:
            feedback.pushWarning(temporary)
        if classified:
            with engine_errors(names=TRAIN_FLAG_TO_PARAMETER):
                model, why = map_model(report, params.output, choice)
            feedback.pushInfo(why)
            outputs["CLASSIFIED"] = self._classify(params, model, classified, context, feedback, share, level)
        return outputs

    def _load_held_out(self, path: str, context, labels: Optional[Dict[str, Any]] = None) -> None:
        """Load the held-out polygons (or points) when the algorithm ends, drawn as dashed outlines (black rings)."""
        from qgis.core import QgsProcessingContext

        from ..core.training.heldout import LAYER
        from ..core.training.labels import units_of
        from .common import HeldOutPostProcessor

        source = f"{path}|layername={LAYER}"
        run = os.path.splitext(os.path.basename(path))[0]  # as the dock names it: two runs' layers told apart
        details = QgsProcessingContext.LayerDetails(f"Held-out {units_of(labels).many} ({run})", context.project(),
                                                    "HELD_OUT")
        if hasattr(details, "forceName"):  # QGIS 3.40 named it "held_out" (its table) after "prefer file names"
            details.forceName = True
        post = HeldOutPostProcessor()
        self._post_processors.append(post)
        details.setPostProcessor(post)
        context.addLayerToLoadOnCompletion(source, details)

    def _classify(self, params, checkpoint: str, output: str, context, feedback, start: float,
                  level: str = "class") -> str:
        """Classify the training scene with `checkpoint` at `level`; the map is styled like claire:classify's."""
        from dataclasses import replace

        from ..core import engine
        from ..core.training.polygons import scene_classify_params

        feedback.pushInfo(f"classifying {params.optical} with {checkpoint}" + (" (macroclasses)" if level != "class"
                                                                                 else ""))
        run = replace(scene_classify_params(params, checkpoint, output), level=level)
        with engine_errors(names=TRAIN_FLAG_TO_PARAMETER):
            result = engine.classify(run, scaled_progress(progress_bridge(feedback), start, 1.0),
                                     feedback.isCanceled)
        style_classified(result, context, self._post_processors, "Land cover (CLAIRE, your checkpoint)",
                         "Land cover with the new checkpoint")
        return result.output


def map_model(report: Dict[str, Any], network: str, choice: int) -> tuple:
    """(checkpoint that maps the scene, a line saying which and why) for CLASSIFY_WITH `choice`."""
    from ..core.errors import ClaireError
    from ..core.training.scorecard import ARM_CHECKPOINT, ARM_TITLES

    if choice == 0:
        return network, "classifying with the fine-tuned network"
    if not report.get("forest_checkpoint"):
        raise ClaireError(f"CLASSIFY_WITH asks for {CLASSIFY_WITH[choice][0].lower() + CLASSIFY_WITH[choice][1:]}, "
                          "but this run wrote no random forest (RF_TREES is 0); set RF_TREES above 0 or classify "
                          "with the fine-tuned network")
    paths = {"finetuned": network, **{arm: report.get(key) for arm, key in ARM_CHECKPOINT.items()}}
    if choice in CHOICE_ARM:
        arm = CHOICE_ARM[choice]
        return paths[arm], f"classifying with {ARM_TITLES[arm]}"
    scores = {arm: report["arms"][arm]["clear"]["macro_f1"] or 0.0 for arm in paths
              if paths[arm] and arm in report.get("arms", {})}
    best = max(scores, key=lambda a: (scores[a], a == "finetuned"))  # ties: the network
    others = ", ".join(f"{scores[a]:.3f} for {ARM_TITLES[a]}" for a in scores if a != best)
    return paths[best], (f"classifying with {ARM_TITLES[best]}: held-out macro-F1 {scores[best]:.3f} against "
                         f"{others}")


def scaled_progress(report: Callable[[float, str], None], start: float, end: float) -> Callable[[float, str], None]:
    """A progress callback mapping [0, 1] onto [start, end] of `report`."""
    return lambda fraction, message: report(start + (end - start) * fraction, message)


def epoch_reporter(feedback, report: Callable[[float, str], None]) -> Callable[[Dict[str, Any]], None]:
    """on_epoch for train_from_polygons: one log line per epoch; progress moves from 5 % to 85 % with epochs."""
    def on_epoch(e: Dict[str, Any]) -> None:
        from ..core.training.polygons import epoch_score_text

        f1 = epoch_score_text(e)
        text = (f"epoch {e['epoch']} of {e['epochs']} (stage {e['stage']}): loss {e['loss']:.4f}, held-out "
                f"macro-F1 {f1}")
        feedback.pushInfo(f"{text}, {e['seconds']:.0f} s")
        report(0.05 + 0.8 * e["epoch"] / max(1, e["epochs"]), text)

    return on_epoch


def score_lines(report: Dict[str, Any]) -> str:
    """Held-out macro-F1 / OA / kappa of every arm, clear, and the leakage check, one line each."""
    from ..core.training.labels import units_of
    from ..core.training.scorecard import arm_title, interval_text, ordered_arms

    many = units_of(report.get("labels")).many
    lines = [f"held-out {many}, clear:"]
    for arm in ordered_arms(report):
        m = report["arms"][arm]["clear"]
        ci = interval_text(m.get("macro_f1_ci95"))
        lines.append(f"  {arm_title(report, arm)}: macro-F1 {m['macro_f1'] or 0:.3f}"
                     + (f" (95 % interval {ci})" if ci else "")
                     + f", OA {m['oa'] or 0:.3f}, kappa {m['kappa'] or 0:.3f}")
    leak = report.get("leakage")
    if leak:
        lines.append(f"leakage check: random-pixel split macro-F1 {leak['pixel_split']['macro_f1'] or 0:.3f} vs "
                     f"held-out {many} {leak['polygon_split']['macro_f1'] or 0:.3f} (random forest)")
    from ..core.training.scorecard import macroclass_lines, sar_only_lines, verdicts

    lines += sar_only_lines(report) + macroclass_lines(report) + verdicts(report)
    return "\n".join(lines)


def _check_classified(params, classified: str) -> None:
    """The classified scene's path checked before training, against the inputs and the training's outputs."""
    from ..core.engine.runner import check_geotiff_name
    from ..core.io.writer import check_outputs
    from ..core.training.heldout import held_out_output
    from ..core.training.polygons import ensemble_output, forest_output
    from ..core.training.scorecard import html_path_for

    check_outputs([("classified map", classified)], [
        ("optical raster", params.optical), ("SAR raster", params.sar), ("labels", params.labels),
        ("held-out polygons", held_out_output(params.output, params.labels, params.validation)),
        ("new checkpoint", params.output), ("random forest's checkpoint", forest_output(params)),
        ("ensemble checkpoint", ensemble_output(params)),
        ("training report", params.report),
        ("training report's HTML copy", html_path_for(params.report) if params.report else None)])
    check_geotiff_name(classified, "classified map")
