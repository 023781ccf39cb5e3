"""Background tasks (QgsTask) for the dock: classification, training and explanation.

Threading rules: a task gets plain file paths (resolved from layers on the main thread), does its work
in `run()` without touching iface, layers or widgets, and hands results back in `finished()`, which
QGIS calls on the main thread. Progress text and streamed explanation text travel by Qt signals, which
Qt queues onto the main thread.
"""
from __future__ import annotations

import re
import traceback
from typing import Any, Callable, Dict, Optional, Tuple

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..core.explain import Explanation
from ..layers.layers import project_generation


class EngineTask(QgsTask):
    """A cancellable task that runs the engine: its progress as a share and as the dock's text (`progressText`),
    its user-facing `error` (and a bug's `details`) for `on_done`."""

    progressText = pyqtSignal(str)  # noqa: N815 (Qt signal naming)

    def __init__(self, description: str, on_done: Optional[Callable[[Any], None]] = None) -> None:
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.on_done = on_done
        self.error: Optional[str] = None
        self.details: Optional[str] = None
        self.last_message = ""
        self.project = project_generation()  # its layers go only into the project it started in (same_project)

    def _progress(self, fraction: float, message: str) -> None:
        self.setProgress(max(0.0, min(100.0, 100.0 * float(fraction))))
        message = progress_text(message)
        if message and message != self.last_message:
            self.last_message = message
            self.progressText.emit(message)


class ClassifyTask(EngineTask):
    """Runs `engine.classify(params)` in the background; cancellable from the task manager."""

    def __init__(self, params, on_done: Optional[Callable[["ClassifyTask"], None]] = None,
                 description: str = "CLAIRE land-cover classification") -> None:
        super().__init__(description, on_done)
        self.params = params
        self.result = None

    def run(self) -> bool:
        """Worker thread: run the engine; keep the result or a user-facing error message."""
        try:
            from ..core import engine
            self.result = engine.classify(self.params, self._progress, self.isCanceled)
            return True
        except Exception as exc:  # noqa: BLE001 - ClaireError, CheckpointError or a bug: shown in the panel
            return _failed(self, exc)

    def finished(self, ok: bool) -> None:  # main thread
        """Main thread: hand the outcome to the dock."""
        _hand_over(self, ok, "The classification stopped without a message.")


def epoch_progress(e: Dict[str, Any], minutes: Optional[float] = None) -> Tuple[float, str]:
    """(share of the training loop done, status text) after an epoch; with a time budget `minutes` the budget
    used counts too (it usually ends the run long before the most epochs: "epoch 1 of 12" misled)."""
    share = e["epoch"] / max(1, e["epochs"])
    if not minutes:
        return share, f"epoch {e['epoch']} of {e['epochs']}"
    used = float(e.get("seconds") or 0.0) / 60.0
    return (max(share, min(1.0, used / minutes)),
            f"epoch {e['epoch']} (at most {e['epochs']}): {used:.1f} of {minutes:g} min used")


class TrainTask(QgsTask):
    """Runs `train_from_polygons(params)` in the background; each finished epoch is sent by `epochDone`
    (a dict: epoch, epochs, stage, loss, val_macro_f1, seconds), queued onto the main thread."""

    progressText = pyqtSignal(str)  # noqa: N815 (Qt signal naming)
    epochDone = pyqtSignal(object)  # noqa: N815 (Qt signal naming)

    def __init__(self, params, on_done: Optional[Callable[["TrainTask"], None]] = None,
                 description: str = "CLAIRE training") -> None:
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.params = params
        self.on_done = on_done
        self.report: Optional[Dict[str, Any]] = None
        self.error: Optional[str] = None
        self.details: Optional[str] = None
        self.last_message = ""
        self.project = project_generation()

    def _progress(self, fraction: float, message: str) -> None:
        # never back: the epochs' share and the steps' share of the bar differ a little (a time budget)
        self.setProgress(max(self.progress(), min(100.0, 100.0 * float(fraction))))
        if message and message != self.last_message:
            self.last_message = message
            self.progressText.emit(message)

    def _epoch(self, e: Dict[str, Any]) -> None:
        share, text = epoch_progress(e, self.params.config.minutes)
        self._progress(0.05 + 0.8 * share, text)
        self.epochDone.emit(dict(e))

    def run(self) -> bool:
        """Worker thread: train; keep the report or a user-facing error message."""
        try:
            from ..core.runtime.torch_thread import call, in_caller
            from ..core.training.polygons import train_from_polygons

            # on the process's one torch thread, like the engine (one OpenMP team); callbacks come back here
            self.report = call(train_from_polygons, self.params, in_caller(self._progress), in_caller(self._epoch),
                               self.isCanceled, stop_waiting=self.isCanceled)
            return True
        except Exception as exc:  # noqa: BLE001 (shown to the user, never raised in Qt)
            return _failed(self, exc, TRAIN_FLAG_TO_FIELD)

    def finished(self, ok: bool) -> None:  # main thread
        """Main thread: hand the outcome to the panel."""
        _hand_over(self, ok, "The training stopped without a message.")


class SuggestTask(EngineTask):
    """After a training: map the scene with its network and its forest and find the places where they disagree
    (core.suggest.places_after_training); `suggestions` and `maps` when done."""

    def __init__(self, params, forest: str, output: str,
                 on_done: Optional[Callable[["SuggestTask"], None]] = None) -> None:
        super().__init__("CLAIRE: where to label next", on_done)
        self.params, self.forest, self.output = params, forest, output
        self.suggestions = None
        self.maps: Dict[str, str] = {}

    def run(self) -> bool:
        """Worker thread: two maps, then the places."""
        try:
            from ..core.suggest import places_after_training

            self.suggestions, self.maps = places_after_training(self.params, self.forest, self.output,
                                                                progress=self._progress,
                                                                is_cancelled=self.isCanceled)
            return True
        except Exception as exc:  # noqa: BLE001 (shown to the user, never raised in Qt)
            return _failed(self, exc, TRAIN_FLAG_TO_FIELD)

    def finished(self, ok: bool) -> None:  # main thread
        """Main thread: hand the outcome to the panel."""
        _hand_over(self, ok, "Finding the places to label stopped without a message.")


#: The message of a run the user cancelled (shown as cancelled, not as a failure).
CANCELLED = "Cancelled by the user; no output was written."


class ExplainTask(QgsTask):
    """Builds the facts of a run and writes the explanation, streaming text as it comes."""

    textChunk = pyqtSignal(str)  # noqa: N815 (Qt signal naming)

    def __init__(self, summary: Dict[str, Any], card: Dict[str, Any], explainer: Optional[str],
                 on_done: Optional[Callable[["ExplainTask"], None]] = None, device: str = "auto") -> None:
        super().__init__("CLAIRE explanation", QgsTask.Flag.CanCancel)
        self.summary, self.device = summary, device
        self.card = card
        self.explainer = explainer or None
        self.on_done = on_done
        self.explanation: Optional[Explanation] = None
        self.error: Optional[str] = None
        self.details: Optional[str] = None

    def run(self) -> bool:
        """Worker thread: facts → explanation (language model if configured, else the template)."""
        try:
            from ..core.explain import explain
            from ..core.explain.facts import build_facts
            facts = build_facts(self.summary, self.card)
            out = explain(facts, self.explainer, on_text=self.textChunk.emit, is_cancelled=self.isCanceled,
                          device=self.device)  # the run's device: "cpu" keeps the language model off the GPU too
            self.explanation = out
            return True
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return _failed(self, exc)

    def finished(self, ok: bool) -> None:  # main thread
        """Main thread: hand the explanation (or the error) to the dock; a cancelled one without a message."""
        if self.isCanceled():
            if self.on_done is not None:
                self.on_done(self)
            return
        _hand_over(self, ok, "The explanation stopped without a message.")


_TILE = re.compile(r"tile row (\d+)/(\d+), tile (\d+)/(\d+)")


def progress_text(message: str) -> str:
    """The engine's "tile row 4/20, tile 3/20" as "tile 63 of 400" (the count a user can follow)."""
    def count(m: "re.Match") -> str:
        row, rows, col, cols = (int(g) for g in m.groups())
        return f"tile {(row - 1) * cols + col} of {rows * cols}"

    return _TILE.sub(count, message or "")


def _is_user_error(exc: BaseException) -> bool:
    from ..core.errors import USER_ERRORS

    return isinstance(exc, USER_ERRORS)


_SAR_UNITS_ALL = "--sar-units dB, --sar-units linear-power or --sar-units amplitude"
_SAR_UNITS_LINEAR = "--sar-units linear-power or --sar-units amplitude"

#: Command-line flags in engine messages and the Run tab's fields that set the same thing.
FLAG_TO_FIELD = {"--optical-bands": "the optical 'bands' field", "--sar-bands": "the SAR 'bands' field",
                 "--optical-offset": "the optical 'offset' field", "--tile-size": "'Tile size'",
                 "--context": "'Tile context'", "--batch-size": "'Batch size'", "--checkpoint": "the checkpoint picker",
                 _SAR_UNITS_ALL: "'SAR units' in Options (dB, linear-power or amplitude)",
                 _SAR_UNITS_LINEAR: "'SAR units' in Options (linear-power or amplitude)",
                 "--sar-units": "'SAR units' in Options", "--runtime": "'Runtime' in Options",
                 "--level": "'Map level' in Options", "--macro-field": "the Train tab's Macroclass field",
                 "--device": "'Device' in Options", "--explainer": "'Explainer model' in Options",
                 "--unfamiliar": "'unlike training data' under Also write",
                 "--extent": "the map view of Preview view",
                 "--reliance": "'SAR gate weight' under Also write",
                 "--layer": "the layer: add the one you mean to the project and choose it",
                 "`claire classify --summary-json`": "a CLAIRE classification",
                 "--threads": "the thread count (a setting of the `claire classify` command; the Run tab uses its "
                              "default)"}


def _not_in_dock(what: str) -> str:
    return f"{what} (a setting of the `claire train` command; the Train tab uses its default)"


#: The same for the Train tab: its own fields, and what only the `claire train` command sets.
TRAIN_FLAG_TO_FIELD = {
    **FLAG_TO_FIELD, "--epochs": "'Epochs'", "--minutes": "'Minutes'", "--device": "'Device' under Training",
    "--checkpoint": "'Start from'", "--labels": "the training polygons' 'Layer'", "--field": "'Class field'",
    _SAR_UNITS_ALL: "'SAR units' under Training (dB, linear-power or amplitude)",
    _SAR_UNITS_LINEAR: "'SAR units' under Training (linear-power or amplitude)",
    "--sar-units": "'SAR units' under Training",
    "--optical-bands": _not_in_dock("the optical band list; the Train tab reads the bands by their names or the "
                                    "Sentinel-2 layout"),
    "--sar-bands": _not_in_dock("the SAR band list; the Train tab reads the bands by their names or as VV, VH"),
    "--optical-offset": _not_in_dock("the optical offset; the Train tab reads it from the file"),
    "--steps-per-epoch": _not_in_dock("the steps per epoch"), "--batch-size": _not_in_dock("the batch size"),
    "--crop": _not_in_dock("the crop size"), "--lr": _not_in_dock("the learning rate"),
    "--weight-decay": _not_in_dock("the weight decay"), "--threads": _not_in_dock("the thread count"),
    "--val-share": _not_in_dock("the share of polygons held out"),
    "--buffer": _not_in_dock("the buffer between training and validation polygons"),
    "--rf-trees": _not_in_dock("the random forest's tree count"),
    "--context": _not_in_dock("the network's context of a training from a folder"),
    "--size": _not_in_dock("the network size of a training from a folder"),
    "--no-baseline": _not_in_dock("skipping the random-forest baseline"),
    "--validation": _not_in_dock("a separate validation layer"),
    "--classes": _not_in_dock("the names of a label raster's codes; the Train tab trains from polygons or points, "
                              "named by their 'Class field'"),
    "--name-field": "the Train tab's Class names field",
    "--label-layer": "the 'Layer' of the training polygons",
    "--validation-layer": _not_in_dock("a separate validation layer"),
}


def dock_message(text: str, fields: Optional[Dict[str, str]] = None) -> str:
    """An engine message with its command-line flags named as the dock's fields (`fields`: the Run tab's
    by default, TRAIN_FLAG_TO_FIELD for the Train tab)."""
    from ..core.errors import rename_flags

    return rename_flags(text, FLAG_TO_FIELD if fields is None else fields)


def _user_message(exc: BaseException, fields: Optional[Dict[str, str]] = None) -> str:
    if isinstance(exc, (ImportError, OSError)):  # a package missing, or there but failing to load
        from ..deps import missing_package_hint

        hint = missing_package_hint(exc)
        if hint:
            return hint
    if _is_user_error(exc):
        return dock_message(str(exc), fields)
    return (f"Unexpected error ({type(exc).__name__}: {exc}). Please report it with the Diagnostics report "
            f"(Raster > CLAIRE land cover), which holds its details.")


#: The details of the session's last failed task (a bug's traceback, or what a refused run had planned), for the
#: Diagnostics report: the dock shows one line, the report carries the rest.
LAST_FAILURE: Dict[str, str] = {}


def _failed(task, exc: BaseException, fields: Optional[Dict[str, str]] = None) -> bool:
    """Worker thread: keep a task's user-facing message and its details (the traceback of a bug, or what a
    run refused after planning had planned: memory, tile, lanes, bands); returns False."""
    task.error = _user_message(exc, fields)
    if not _is_user_error(exc):
        task.details = traceback.format_exc()
    elif getattr(exc, "run_messages", None):
        task.details = "\n".join(f"planned: {dock_message(m, fields)}" for m in exc.run_messages)
    return False


def detach(task) -> None:
    """Cut a task loose from widgets that are going away (the plugin unloaded or reloaded while it runs): it is
    cancelled and never calls back; its signals reach only bound methods of its widgets, which Qt disconnects
    when they are deleted."""
    if task is None:
        return
    task.on_done = None
    task.cancel()


def _hand_over(task, ok: bool, silent: str) -> None:
    """Main thread: name a cancelled or silent failure, then call the task's `on_done`."""
    if not ok and (task.error is None or task.isCanceled()):
        task.error = CANCELLED if task.isCanceled() else silent
    if not ok and task.error != CANCELLED:  # the latest failure, with or without details (a refusal has none)
        LAST_FAILURE.clear()
        LAST_FAILURE.update(task=task.description(), error=task.error, details=task.details or "")
        if task.details:
            from qgis.core import Qgis, QgsMessageLog

            text = f"{task.description()}: {task.error}\n{task.details}"
            QgsMessageLog.logMessage(text, "CLAIRE", Qgis.MessageLevel.Warning)
    if task.on_done is not None:
        task.on_done(task)
