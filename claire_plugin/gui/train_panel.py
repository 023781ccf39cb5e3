"""The dock's Train tab: draw polygons in a new training layer, fine-tune in a QgsTask with a live chart,
read the held-out report and classify with the new checkpoint."""
from __future__ import annotations

import html
import os
import time
from typing import Any, Callable, Dict, Optional, Tuple

from qgis.core import QgsApplication, QgsFieldProxyModel, QgsProject, QgsWkbTypes
from qgis.gui import QgsFieldComboBox, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...models.card_schema import ENSEMBLE, FOREST
from ..core.inputs.units import SAR_UNITS
from ..core.io.gdal_names import source_file
from ..core.training.checks import EPOCHS_MAX, MINUTES_MAX
from ..core.training.labels import units_of
from ..core.training.scorecard import weight_phrase
from ..core.training.wand import MAX_WIDTH as WAND_WIDTH
from ..core.training.wand import TOLERANCE, TOLERANCE_RANGE
from ..layers.layers import PROJECT_CHANGED, layer_crs, layer_file, same_project, vector_file
from ..layers.training_layer import is_training_layer, project_training_layer
from ..qgis_compat import layer_filters
from .epoch_chart import EpochChart
from .picker import BASE_KEY, CheckpointPicker, remember_checkpoint
from .tasks import CANCELLED, SuggestTask, TrainTask
from .tones import Restyled, status_html, tones
from .train_report import HELD_OUT, SELECT_SCHEME, VALIDATE_SCHEME, report_html
from .wand import SceneCache
from .widgets import (
    AutoHeightBrowser,
    DecimalSpinBox,
    RasterChooser,
    WrapLabel,
    breakable,
    compact_combo,
    copy_without_breaks,
    local_number,
    narrow_form,
)

DEVICES = ["auto", "cpu", "cuda"]
#: Under the wand before its first click.
WAND_HINT = "Switch the wand on, then click inside a uniform area of the map: one polygon of the wand's class each."
#: What an empty "Validate on" means.
HOLD_OUT_TEXT = "hold out 30 %"
NOT_A_BASE = ("Start from: that checkpoint holds a random forest, which cannot be fine-tuned; choose a network (the "
              "bundled one, or the model written beside the forest).")


def _held_out_layer(path: Optional[str]):
    """The held-out polygons written by a run (`NAME.heldout.gpkg`) as a styled layer named after the run; None
    when there are none or the file cannot be read."""
    from ..layers.style import held_out_layer

    if not path or not os.path.exists(path):
        return None
    return held_out_layer(path, os.path.splitext(os.path.basename(path))[0])


def allow_empty_layer(combo: QgsMapLayerComboBox, text: str) -> None:
    """Let `combo` be empty, showing `text` there (a blank entry where QGIS's bindings take no text)."""
    try:
        combo.setAllowEmptyLayer(True, text)
    except TypeError:
        combo.setAllowEmptyLayer(True)


class TrainPanel(Restyled, QWidget):
    """Widgets and run of the Train tab; `classifyWith(path)` asks the dock to classify with a checkpoint."""

    classifyWith = pyqtSignal(str)  # noqa: N815 (Qt signal naming)
    checkpointsWritten = pyqtSignal()  # noqa: N815 - a training's checkpoints joined the recent list

    def __init__(self, iface=None, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.task: Optional[TrainTask] = None
        self.places_task: Optional[SuggestTask] = None
        self.places = None  # the last places to label next (core.suggest.Suggestions)
        self.params = None  # the finished training's PolygonTrainParams (places to label next need them)
        self.report: Optional[Dict[str, Any]] = None
        self.checkpoint: Optional[str] = None
        self.forest: Optional[str] = None
        self.ensemble: Optional[str] = None
        self.held_out_ids: list = []  # the held-out layer the panel added for its last run
        self.chart_pending = True  # the chart shows the last run's curve until a new run's first epoch
        self.places_ids: list = []  # the "Places to label next" layer the panel added for its last model
        self.wand_tool = None
        self.wand_scenes = SceneCache()
        self.watched = None  # the training layer whose edits update the tally
        self.tally_timer = QTimer(self)
        self.tally_timer.setSingleShot(True)  # many edits at once: counted once
        self.tally_timer.timeout.connect(self.update_tally)
        #: asks for a folder when the project is unsaved (replaced in tests)
        self.ask_folder: Callable[[], str] = lambda: QFileDialog.getExistingDirectory(
            self, "Folder for the new training layer")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self._build_scene_box())
        lay.addWidget(self._build_labels_box())
        lay.addWidget(self._build_settings_box())
        lay.addLayout(self._build_run_row())
        lay.addWidget(self._build_result_box())
        lay.addStretch(1)
        self._update_ready()
        QgsProject.instance().readProject.connect(self.adopt_training_layer)
        self.adopt_training_layer()

    def adopt_training_layer(self, *_a) -> None:
        """With no training layer chosen, choose the project's own (one the tab created, saved in the project):
        after reopening a project the combo was empty and the layer had to be found again."""
        if self.labels.currentLayer() is None:
            layer = project_training_layer()
            if layer is not None:
                self.labels.setLayer(layer)

    # -- layout --------------------------------------------------------------------------------------
    def _build_scene_box(self) -> QGroupBox:
        box = QGroupBox("Scene (optical + SAR)", self)
        form = narrow_form()
        optical, sar = RasterChooser(box), RasterChooser(box)
        self.optical, self.sar = optical.combo, sar.combo
        self.optical.setAccessibleName("Training scene: optical raster")
        self.sar.setAccessibleName("Training scene: SAR raster")
        form.addRow("Optical", optical)
        form.addRow("SAR", sar)
        box.setLayout(form)
        return box

    def _build_labels_box(self) -> QGroupBox:
        box = QGroupBox("Training polygons or points", self)
        form = narrow_form()
        self.new_layer_button = QPushButton("New training layer", box)
        self.new_layer_button.setToolTip("Create a GeoPackage beside the project whose 'class' field offers the "
                                         "base checkpoint's classes, add it and start drawing.")
        self.labels = compact_combo(QgsMapLayerComboBox(box))
        self.labels.setFilters(layer_filters("PolygonLayer", "PointLayer"))
        self.labels.setAllowEmptyLayer(True)
        self.labels.setLayer(None)
        self.field = compact_combo(QgsFieldComboBox(box))
        kinds = QgsFieldProxyModel.Filter
        self.field.setFilters(kinds.String | kinds.Int | kinds.LongLong)
        self.name_field = compact_combo(QgsFieldComboBox(box))
        self.name_field.setFilters(kinds.String)
        self.name_field.setAllowEmptyFieldName(True)
        self.name_field.setToolTip("Optional, when the class field holds integer codes (1..254): a field with each "
                                   "code's name. The map keeps your codes and carries the names (empty: 'class 31').")
        self.macro_field = compact_combo(QgsFieldComboBox(box))
        self.macro_field.setFilters(kinds.String | kinds.Int | kinds.LongLong)
        self.macro_field.setAllowEmptyFieldName(True)
        self.macro_field.setToolTip("Optional: a field with each class's macroclass (e.g. 'clear water' and 'turbid "
                                    "water' in 'water'; every polygon of a class in the same one). The network "
                                    "learns the classes, the report scores the macroclasses too, and Options > Map "
                                    "level 'macroclass' maps them.")
        self._build_wand(box)  # created before the widgets below it: Qt's Tab order is the order of creation
        self.validation = compact_combo(QgsMapLayerComboBox(box))
        self.validation.setFilters(layer_filters("PolygonLayer", "PointLayer"))
        allow_empty_layer(self.validation, HOLD_OUT_TEXT)
        self.validation.setLayer(None)
        self.validation.setCurrentIndex(0)  # the empty row: setLayer(None) leaves the combo blank beside layers
        self.validation.setToolTip("Empty: 30 % of each class's polygons held out (NAME.heldout.gpkg); from your "
                                   "own checkpoint, those that validated it again. Or an earlier run's held-out "
                                   "layer: this training is scored on the same polygons (they validate only).")
        self.picker = CheckpointPicker(box, show_card=False, last_key=BASE_KEY, bases_only=True)
        form.addRow(self.new_layer_button)
        form.addRow("Layer", self.labels)
        form.addRow("Class field", self.field)
        form.addRow("Class names", self.name_field)
        self.tally = QLabel(box)
        self.tally.setTextFormat(Qt.TextFormat.PlainText)  # class names are the user's: "a < b" hid the counts after it
        self.tally.setWordWrap(True)
        self.tally.setToolTip("Training needs at least 3 polygons (or points) of every class, whole ones on both sides "
                              "of the held-out split; counted from the layer as it is, unsaved edits included.")
        form.addRow(self.tally)
        form.addRow("Macroclass", self.macro_field)
        form.addRow(self.wand_button)
        form.addRow("Wand class", self.wand_class)
        form.addRow("Tolerance", self.wand_tolerance)
        form.addRow(self.wand_status)
        form.addRow("Validate on", self.validation)
        form.addRow("Start from", self.picker)
        box.setLayout(form)
        self.labels.layerChanged.connect(self._labels_changed)
        self.new_layer_button.clicked.connect(self.new_training_layer)
        for combo in (self.optical, self.sar):
            combo.layerChanged.connect(self._update_ready)
        self.field.fieldChanged.connect(self._update_ready)
        self.name_field.fieldChanged.connect(lambda *_a: self.update_tally())
        self.picker.checkpointChanged.connect(self._update_ready)
        self.field.fieldChanged.connect(self._refresh_wand_classes)
        self.field.fieldChanged.connect(self._watch_labels)
        return box

    def _build_wand(self, box: QWidget) -> None:
        self.wand_button = QPushButton("Magic wand: click the map", box)
        self.wand_button.setCheckable(True)
        self.wand_button.setToolTip("Click in a uniform area of the map: the pixels around it whose optical values are "
                                    "within the tolerance become one polygon of the wand's class (Ctrl+Z undoes it).")
        self.wand_class = compact_combo(QComboBox(box))
        self.wand_class.setEditable(True)
        # "crops" typed must not pick "Crops": names are classes as written (Qt matches typed text regardless of case)
        self.wand_class.completer().setCaseSensitivity(Qt.CaseSensitivity.CaseSensitive)
        self.wand_class.setToolTip("Class of the wand's polygons (a value of the class field)")
        self.wand_tolerance = DecimalSpinBox(box)
        self.wand_tolerance.setRange(*TOLERANCE_RANGE)
        self.wand_tolerance.setSingleStep(0.05)
        self.wand_tolerance.setValue(TOLERANCE)
        self.wand_tolerance.setToolTip("How far, in the model's standard deviations (RMS over the optical bands), a "
                                       f"pixel may be from the clicked one to join; {local_number(TOLERANCE, 2)} by "
                                       "default. Raise "
                                       "it when the polygons stay small, lower it when they spill over an edge.")
        # under the wand: the status line is far below while one draws
        self.wand_status = copy_without_breaks(WrapLabel(box))
        self.wand_status.setTextFormat(Qt.TextFormat.RichText)  # the status line's text (status_html)
        self._show_wand_hint()
        self.wand_button.toggled.connect(self.toggle_wand)

    def _build_settings_box(self) -> QGroupBox:
        box = QGroupBox("Training", self)
        form = narrow_form()
        self.epochs = QSpinBox(box)
        self.epochs.setRange(1, EPOCHS_MAX)
        self.epochs.setValue(12)
        self.minutes = DecimalSpinBox(box)
        self.minutes.setRange(0, MINUTES_MAX)
        self.minutes.setDecimals(1)
        self.minutes.setSpecialValueText("no limit")
        self.minutes.setToolTip(f"Time budget of the training loop ({local_number(0.1, 1)} minutes and up); with it, "
                                "Epochs is the most "
                                "epochs run. Its lowest setting, 0, reads \"no limit\": then Epochs alone sets the "
                                "length.")
        self.epochs.setToolTip("Passes over the training pixels (with Minutes, the most run).")
        self.device = compact_combo(QComboBox(box))
        self.device.addItems(DEVICES)
        self.device.setToolTip("Where the training runs: auto takes CUDA if available, then Apple MPS, else the CPU.")
        self.sar_units = compact_combo(QComboBox(box))
        self.sar_units.addItems(list(SAR_UNITS))
        self.sar_units.setToolTip("Unit of the SAR values. auto: from the file's metadata and values; linear values "
                                  "must be declared as linear-power (sigma0, gamma0) or amplitude.")
        form.addRow("Epochs", self.epochs)
        form.addRow("Minutes", self.minutes)
        form.addRow("Device", self.device)
        form.addRow("SAR units", self.sar_units)
        box.setLayout(form)
        return box

    def _build_run_row(self) -> QVBoxLayout:
        self.train_button = QPushButton("Train", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.status = copy_without_breaks(QLabel(self))
        self.status.setTextFormat(Qt.TextFormat.RichText)  # status_html's text: "'trees'" was shown "&#x27;trees&#x27;"
        self.status.setWordWrap(True)
        self.chart = EpochChart(self)
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        col = QVBoxLayout()
        col.addLayout(buttons)
        col.addWidget(self.progress)
        col.addWidget(self.status)
        col.addWidget(self.chart)
        self.train_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        return col

    def _build_result_box(self) -> QGroupBox:
        self.result_box = QGroupBox("Held-out report", self)
        self.report_view = AutoHeightBrowser(self.result_box)
        self.report_view.setOpenLinks(False)  # the full report opens outside; "select" links act on the layer
        self.report_view.anchorClicked.connect(self._on_report_link)
        self.report_view.setFrameShape(QFrame.Shape.NoFrame)
        self.report_view.document().setDocumentMargin(2)
        self.classify_button = QPushButton("Classify with this model", self.result_box)
        self.classify_button.setEnabled(False)
        self.classify_button.clicked.connect(lambda: self.classifyWith.emit(self.checkpoint or ""))
        self.forest_button = QPushButton("Classify with the random forest", self.result_box)
        self.forest_button.setToolTip("The baseline forest (optical + SAR) of this training, written as a "
                                      "checkpoint beside your model: a per-pixel map, scored in the report above")
        self.forest_button.setVisible(False)
        self.forest_button.clicked.connect(lambda: self.classifyWith.emit(self.forest or ""))
        self.ensemble_button = QPushButton("Classify with both averaged", self.result_box)
        self.ensemble_button.setToolTip("Your model and the random forest averaged per pixel, the forest's weight "
                                        "falling to nothing under cloud: written beside your model, scored in the "
                                        "report above")
        self.ensemble_button.setVisible(False)
        self.ensemble_button.clicked.connect(lambda: self.classifyWith.emit(self.ensemble or ""))
        self.next_button = QPushButton("Where to label next", self.result_box)
        self.next_button.setToolTip("Map the scene with your model and with the random forest and mark the places "
                                    "where the two disagree most, away from your polygons: draw polygons of what "
                                    "you see there, then train again")
        self.next_button.setVisible(False)
        self.next_button.clicked.connect(self.find_places)
        # beside the button: the user is down here, not at the top
        self.places_status = copy_without_breaks(QLabel(self.result_box))
        self.places_status.setTextFormat(Qt.TextFormat.RichText)
        self.places_status.setWordWrap(True)
        self.places_status.setVisible(False)
        col = QVBoxLayout(self.result_box)
        col.addWidget(self.report_view)
        col.addWidget(self.classify_button)
        col.addWidget(self.ensemble_button)
        col.addWidget(self.forest_button)
        col.addWidget(self.next_button)
        col.addWidget(self.places_status)
        self.result_box.setVisible(False)
        return self.result_box

    # -- training layer ------------------------------------------------------------------------------
    def new_training_layer(self):
        """Create the GeoPackage (project folder, else a folder the user picks), style it, add it, edit it."""
        from ..layers.style import classes_from
        from ..layers.training_layer import create_training_layer, default_folder, new_layer_path

        folder = default_folder() or self.ask_folder()
        if not folder:
            return None
        card = self.picker.card() or {}
        opt = self.optical.currentLayer()
        crs = opt.crs() if opt is not None else QgsProject.instance().crs()
        try:
            layer = create_training_layer(new_layer_path(folder), crs, classes_from(card))
        except OSError as exc:
            self._set_status(str(exc), error=True)
            return None
        QgsProject.instance().addMapLayer(layer)
        layer.startEditing()
        self.labels.setLayer(layer)
        self.field.setField("class")
        if self.iface is not None:
            self.iface.setActiveLayer(layer)
            self.iface.actionAddFeature().trigger()
        self._set_status(f"Draw polygons in '{layer.name()}' and pick a class for each, then Train. "
                         f"File: {breakable(source_file(layer.source()))}")
        return layer

    def _labels_changed(self, layer) -> None:
        self.field.setLayer(layer)
        for optional in (self.name_field, self.macro_field):
            optional.setLayer(layer)
            optional.setField("")
        if layer is not None and layer.fields().indexOf("class") >= 0:
            self.field.setField("class")
        self._refresh_wand_classes()
        self._watch_labels()
        self._update_ready()

    _EDIT_SIGNALS = ("featureAdded", "featureDeleted", "attributeValueChanged", "afterRollBack", "dataChanged")

    def _watch_labels(self, *_a) -> None:
        """Count the training layer's polygons per class now and whenever it is edited."""
        layer = self.labels.currentLayer()
        if layer is not self.watched:
            for name in self._EDIT_SIGNALS if self.watched is not None else ():
                try:
                    getattr(self.watched, name).disconnect(self.tally_timer.start)
                except (RuntimeError, TypeError):  # the layer was deleted meanwhile
                    pass
            self.watched = layer
            for name in self._EDIT_SIGNALS if layer is not None else ():
                getattr(layer, name).connect(self.tally_timer.start)
        self.update_tally()

    def update_tally(self) -> None:
        """The line under the class field: polygons per class, the classes short of the minimum marked."""
        from ..core.training.labels import MIN_POLYGONS
        from ..layers.training_layer import class_tally, tally_text

        layer = self.labels.currentLayer()
        if layer is None:
            self.tally.setText("")
            return
        what = "points" if layer.geometryType() == QgsWkbTypes.GeometryType.PointGeometry else "polygons"
        self.tally.setText(tally_text(class_tally(layer, self.field.currentField(), self.name_field.currentField()),
                                      MIN_POLYGONS, what))

    # -- magic wand ----------------------------------------------------------------------------------
    def _refresh_wand_classes(self, *_a) -> None:
        from .wand import class_choices

        current = self.wand_class.currentText()
        self.wand_class.clear()
        self.wand_class.addItems(class_choices(self.labels.currentLayer(), self.field.currentField()))
        if current:
            self.wand_class.setCurrentText(current)

    def toggle_wand(self, on: bool) -> None:
        """Make the wand the map canvas's tool (on) or give the canvas back its previous tool (off)."""
        from ..core.errors import ClaireError
        from .wand import WandTool

        if on:
            try:  # opened now in the background: the first click would freeze QGIS for seconds
                self.wand_scenes.prefetch(*self._wand_inputs())
            except ClaireError:  # the click says what is missing
                pass
        if self.iface is None:
            return
        canvas = self.iface.mapCanvas()
        if on:
            if self.wand_tool is None:
                self.wand_tool = WandTool(canvas, self.wand_at)
                self.wand_tool.deactivated.connect(lambda: self.wand_button.setChecked(False))
            canvas.setMapTool(self.wand_tool)
            self._set_wand_status("Click in a uniform area of the map to add a polygon of "
                             f"'{self.wand_class.currentText() or '?'}'.")
        else:
            self.wand_scenes.close()
            if self.wand_tool is not None and canvas.mapTool() is self.wand_tool:
                canvas.unsetMapTool(self.wand_tool)

    def stop_wand(self) -> None:
        """Give the canvas its tool back and close the rasters the wand read (the plugin's unload calls it: GDAL
        datasets left to the interpreter's exit crash QGIS)."""
        self.wand_button.setChecked(False)
        self.wand_scenes.close()

    def wand_at(self, point, crs) -> Optional[int]:
        """Grow a region at `point` (in `crs`) and add it to the training layer; the new feature id, or None
        with the reason in the status line."""
        from ..core.errors import ClaireError
        from .wand import add_region, field_value

        layer, field = self.labels.currentLayer(), self.field.currentField()
        try:
            if layer is None or not field:
                raise ClaireError("Choose the training layer and its class field before using the wand.")
            value = field_value(layer, field, self.wand_class.currentText())
            inputs = self._wand_inputs()
            QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)  # a scene not yet open takes seconds
            try:
                scene = self.wand_scenes.get(*inputs)
                added, fid = add_region(layer, field, value, scene, self.optical.currentLayer().crs(), point,
                                        crs, self.wand_tolerance.value(), WAND_WIDTH)
            finally:
                QApplication.restoreOverrideCursor()
        except ClaireError as exc:
            self._set_wand_status(str(exc), error=True)
            return None
        notes = [f"it reached the {WAND_WIDTH} px square's edge"] if added.truncated else []
        if added.left_out:
            notes.append(f"{added.left_out} pixels already in other polygons left out")
        self._set_wand_status(f"Added a polygon of {added.pixels} pixels as '{value}' to {layer.name()}"
                         f"{'; ' + '; '.join(notes) if notes else ''}. Ctrl+Z removes it; click again for more.")
        return fid

    def _wand_inputs(self) -> Tuple[str, str, Dict[str, Any], str, str]:
        """(optical file, SAR file, normalisation card, checkpoint key, SAR units) the wand reads; ClaireError
        naming a layer that is no file."""
        from ..core.errors import ClaireError
        from ..core.training.wand import normalisation_card

        paths = {}
        for what, combo in (("Optical", self.optical), ("SAR", self.sar)):
            paths[what], err = layer_file(combo.currentLayer())
            if err:
                raise ClaireError(f"{what}: {err}.")
        return (paths["Optical"], paths["SAR"], normalisation_card(self.picker.card()), self.picker.checkpointPath(),
                self.sar_units.currentText())

    def _update_ready(self, *_a) -> None:
        """What is missing or wrong before Train is pressed, else "Ready"."""
        from .widgets import layers_overlap

        if self.task is not None:
            return
        self.progress.setValue(0)  # a finished run's 100 % is not this setup's
        missing = [n for n, w in (("an optical layer", self.optical), ("a SAR layer", self.sar),
                                  ("a training layer", self.labels)) if w.currentLayer() is None]
        optical, sar = self.optical.currentLayer(), self.sar.currentLayer()
        if missing:
            self._set_status(f"Choose {', '.join(missing)}.")
        elif (self.picker.card() or {}).get("arch") in (FOREST, ENSEMBLE):
            self._set_status(NOT_A_BASE, error=True)
        elif optical is not sar and not layers_overlap(optical, sar):
            self._set_status(f"The optical ({optical.name()}) and SAR ({sar.name()}) layers do not overlap: choose "
                             "the SAR of the same place.", error=True)
        else:
            self._set_status("Ready: press Train.")

    # -- run -----------------------------------------------------------------------------------------
    def build_params(self):
        """PolygonTrainParams from the widgets; layers resolved to files here (main thread). ValueError when
        something is missing; the panel's own training layer gets its edits saved first."""
        from ..core.training.finetune import FinetuneConfig
        from ..core.training.polygons import PolygonTrainParams

        paths = {}
        for what, combo in (("Optical", self.optical), ("SAR", self.sar)):
            paths[what], err = layer_file(combo.currentLayer())
            if err:
                raise ValueError(f"{what}: {err}.")
        layer = self.labels.currentLayer()
        if is_training_layer(layer) and layer.isModified():  # the tab's own layer: its edits are saved for it
            layer.commitChanges()
            layer.startEditing()
        labels, layer_name, err = vector_file(layer)
        if err:
            raise ValueError(f"Training layer: {err}.")
        validation = validation_layer = None
        chosen = self.validation.currentLayer()
        if chosen is not None:
            if layer is not None and chosen.id() == layer.id():
                raise ValueError("Validate on: that is the training layer itself; choose another layer (an earlier "
                                 "run's held-out polygons), or leave it empty to hold out a share of the polygons.")
            validation, validation_layer, err = vector_file(chosen)
            if err:
                raise ValueError(f"Validate on: {err}.")
        if not self.field.currentField():
            raise ValueError("Class field: choose the field that holds the class.")
        if self.picker.error():
            raise ValueError(f"Checkpoint: {self.picker.error()}")
        if (self.picker.card() or {}).get("arch") in (FOREST, ENSEMBLE):
            raise ValueError(NOT_A_BASE)
        stem = os.path.splitext(os.path.basename(labels))[0]
        out = os.path.join(os.path.dirname(labels), f"{stem}_{time.strftime('%Y%m%d_%H%M%S')}.safetensors")
        cfg = FinetuneConfig(epochs=self.epochs.value(), minutes=self.minutes.value() or None,
                             device=self.device.currentText())
        return PolygonTrainParams(optical=paths["Optical"], sar=paths["SAR"], labels=labels,
                                  field=self.field.currentField(), layer=layer_name, output=out,
                                  name_field=self.name_field.currentField() or None,
                                  macro_field=self.macro_field.currentField() or None,
                                  validation=validation, validation_layer=validation_layer,
                                  labels_crs=layer_crs(layer), validation_crs=layer_crs(chosen),
                                  checkpoint=self.picker.checkpointPath() or None,
                                  report=os.path.splitext(out)[0] + "_report.json",
                                  sar_units=self.sar_units.currentText(), config=cfg)

    def start(self, params=None) -> Optional[TrainTask]:
        """Start a TrainTask in QGIS's task manager (`params`: built from the widgets when None)."""
        if self.task is not None:
            return None
        try:
            params = params or self.build_params()
        except ValueError as exc:
            self._set_status(str(exc), error=True)
            return None
        name = os.path.basename(params.labels)
        task = TrainTask(params, on_done=self.on_trained, description=f"CLAIRE training: {name}")
        task.progressChanged.connect(self._show_progress)  # bound methods: Qt drops them with the panel
        task.progressText.connect(self._set_status)
        task.epochDone.connect(self.on_epoch)
        self.task = task
        self.chart_pending = True  # the last run's curve stays until this run's first epoch
        self.result_box.setVisible(False)
        self.train_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self._set_status("Reading the scene and the polygons…")
        QgsApplication.taskManager().addTask(task)
        return task

    def _show_progress(self, value: float) -> None:
        self.progress.setValue(int(value))

    def shutdown(self) -> None:
        """The plugin is unloading: the wand is put down and running tasks are cancelled, never calling back."""
        from .tasks import detach

        self.stop_wand()
        for task in (self.task, self.places_task):
            detach(task)
        self.task = self.places_task = None
        try:
            QgsProject.instance().readProject.disconnect(self.adopt_training_layer)
        except TypeError:  # not connected
            pass

    def cancel(self) -> None:
        """Ask the running training, or the search for places to label next, to stop (within a step)."""
        for task in (self.task, self.places_task):
            if task is not None:
                self._set_status("Cancelling…")
                task.cancel()

    def on_epoch(self, e: Dict[str, Any]) -> None:
        """Main thread: one more point on the chart (the first of a run clears the last run's curve)."""
        if self.chart_pending:
            self.chart.clear(e["epochs"])
            self.chart_pending = False
            if e.get("val_windows"):
                self.chart.sampled(*e["val_windows"])
        self.chart.addEpoch(e["loss"], e.get("val_macro_f1"), e["epochs"])

    def on_trained(self, task: TrainTask) -> None:
        """Main thread: show the report, remember the checkpoint, offer to classify with it."""
        self.task = None
        self.train_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if task.report is None:
            self.progress.setValue(0)
            self._set_status(task.error or "The training failed.", error=task.error != CANCELLED)
            # the last finished training's report and buttons (its model is still on disk) come back
            self.result_box.setVisible(self.report is not None and bool(self.checkpoint)
                                       and os.path.exists(self.checkpoint))
            return
        self.params = task.params
        self.show_report(task.report, task.params.output, task.params.report)
        if same_project(task):
            self.add_held_out(task.report)
            for stale in self.places_ids:  # the last model's places: the new model would put them elsewhere
                if QgsProject.instance().mapLayer(stale) is not None:
                    QgsProject.instance().removeMapLayer(stale)
            self.places_ids = []
        else:
            self._set_status(f"Trained; {PROJECT_CHANGED}.")

    def add_held_out(self, report: Dict[str, Any]) -> None:
        """Add the run's held-out polygons above the training layer (dashed outlines), replacing those of the
        panel's previous run unless the user validates on them."""
        layer = _held_out_layer(report.get("held_out_layer"))
        if layer is None:
            return
        project = QgsProject.instance()
        chosen = self.validation.currentLayer()
        for stale in self.held_out_ids:  # not the one the user validates on
            if project.mapLayer(stale) is not None and (chosen is None or chosen.id() != stale):
                project.removeMapLayer(stale)
        self.held_out_ids = [layer.id()]
        project.addMapLayer(layer, False)
        project.layerTreeRoot().insertLayer(0, layer)

    def show_report(self, report: Dict[str, Any], checkpoint: str, report_json: Optional[str] = None) -> None:
        """Show a finished training's report and make its checkpoint the recent one."""
        self.report, self.checkpoint = report, checkpoint
        written = [report.get(k) for k in ("forest_checkpoint", "ensemble_checkpoint")]
        self.forest, self.ensemble = (p if p and os.path.exists(p) else None for p in written)
        for other in (self.forest, self.ensemble):
            if other:
                remember_checkpoint(other)
        remember_checkpoint(checkpoint)  # the network stays the most recent, then the ensemble, the forest
        self.picker.reload(self.picker.checkpointPath())  # listed now, the choice kept
        self.checkpointsWritten.emit()
        self.forest_button.setVisible(self.forest is not None)
        known = self.params is not None and self.params.output == checkpoint
        self.next_button.setVisible(self.forest is not None and known)
        self.next_button.setEnabled(True)
        self.places_status.setVisible(False)  # a new run's report: the last run's places are not its own
        self.ensemble_button.setVisible(self.ensemble is not None)
        alone = (report.get("ensemble_weight") or {}).get("chosen") == 0
        self.ensemble_button.setEnabled(not alone)
        self.ensemble_button.setToolTip(
            f"Not needed: {weight_phrase(report)}; use Classify with this model" if alone else
            f"Your model and the random forest averaged per pixel, {weight_phrase(report)}: written beside your "
            f"model, scored in the report above")
        html_path = os.path.splitext(report_json)[0] + ".html" if report_json else ""
        self._report_shown = (report, checkpoint, html_path if os.path.exists(html_path) else "")
        self.report_view.setHtml(report_html(*self._report_shown, self))
        self.result_box.setVisible(True)
        self.classify_button.setEnabled(True)
        self.progress.setValue(100)
        f1 = report["arms"]["finetuned"]["clear"]["macro_f1"]
        optimistic = " (optimistic: see the report)" if (report.get("split") or {}).get("optimistic") else ""
        self._set_status(f"Done: held-out macro-F1 {f1:.3f}{optimistic}. Checkpoint {breakable(checkpoint)}")

    def _on_report_link(self, url) -> None:
        """A link of the report: SELECT_SCHEME selects those features of the training layer and zooms to them;
        anything else opens outside QGIS."""
        from qgis.PyQt.QtGui import QDesktopServices

        if url.scheme() == VALIDATE_SCHEME:  # the shown report's own layer (no path in the link to mangle)
            self.validate_on((self.report or {}).get("held_out_layer") or "")
            return
        if url.scheme() != SELECT_SCHEME:
            QDesktopServices.openUrl(url)
            return
        layer = self.labels.currentLayer()
        ids = [int(v) for v in url.path().split(",") if v.strip().isdigit()]
        if layer is None or not ids:
            self._set_status(f"Choose the training layer the model was trained on to select its "
                             f"{units_of((self.report or {}).get('labels')).many}.", error=True)
            return
        layer.selectByIds(ids)
        found = layer.selectedFeatureCount()
        if self.iface is not None and found:
            self.iface.setActiveLayer(layer)
            self.iface.mapCanvas().zoomToSelected(layer)
        one = units_of((self.report or {}).get("labels")).one
        what = f"held-out {one}(s)" if url.fragment() == HELD_OUT else f"{one}(s) to check"
        self._set_status(f"Selected {found} of {len(ids)} {what} in {layer.name()}.", error=found == 0)

    def validate_on(self, path: str) -> None:
        """Choose the held-out polygons in `path` (loaded when they are not in the project) as "Validate on"."""
        layer = next((lyr for lyr in QgsProject.instance().mapLayers().values()
                      if path and vector_file(lyr)[0] == path), None)
        if layer is None:
            layer = _held_out_layer(path)
            if layer is None:
                self._set_status(f"The held-out {units_of((self.report or {}).get('labels')).many} {path} cannot be "
                                 f"read any more.", error=True)
                return
            QgsProject.instance().addMapLayer(layer)
        self.validation.setLayer(layer)
        self._set_status(f"The next training is validated on {layer.name()}: the "
                         f"{units_of((self.report or {}).get('labels')).many} that scored this run will score it "
                         f"too.")

    def places_path(self) -> str:
        """Where the places of the current checkpoint go: `<checkpoint stem>_label_next.gpkg` beside it."""
        return os.path.splitext(self.checkpoint or "")[0] + "_label_next.gpkg"

    def find_places(self) -> Optional[SuggestTask]:
        """Start a SuggestTask for the finished training (its network and forest, its polygons)."""
        if self.places_task is not None or self.params is None or not self.forest:
            return None
        task = SuggestTask(self.params, self.forest, self.places_path(), on_done=self.on_places)
        task.progressChanged.connect(self._show_progress)
        task.progressText.connect(self._set_places_status)
        self.places_task = task
        self.next_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._set_places_status("Mapping the scene with your model and with the random forest…")
        QgsApplication.taskManager().addTask(task)
        return task

    def on_places(self, task: SuggestTask) -> None:
        """Main thread: add the places above the other layers and say what the two maps disagree on."""
        from ..core.suggest import short_summary
        from ..layers.style import places_layer

        self.places_task = None
        self.places = task.suggestions
        self.next_button.setEnabled(True)
        self.cancel_button.setEnabled(self.task is not None)
        if task.suggestions is None:
            self.progress.setValue(0)
            self._set_places_status(task.error or "Finding the places failed.", error=task.error != CANCELLED)
            return
        old = QgsProject.instance().mapLayersByName("Places to label next")
        layer = places_layer(task.output) if same_project(task) else None
        if layer is not None:
            for stale in old:
                QgsProject.instance().removeMapLayer(stale.id())
            QgsProject.instance().addMapLayer(layer, False)
            QgsProject.instance().layerTreeRoot().insertLayer(0, layer)
            self.places_ids = [layer.id()]
        self.progress.setValue(100)
        said = short_summary(task.suggestions, "your model", "the random forest")
        self._set_places_status(f"{said} Draw polygons of what you see at the numbered points, then Train again. "
                                f"File: {breakable(task.output)}")

    def _set_wand_status(self, text: str, error: bool = False) -> None:
        """The line under the wand and the tab's status line, both."""
        self._set_status(text, error)
        self.wand_status.setText(self.status.text())

    def _set_places_status(self, text: str, error: bool = False) -> None:
        """The line under "Where to label next" and the tab's status line above, both."""
        self._set_status(text, error)
        self.places_status.setText(self.status.text())
        self.places_status.setVisible(True)

    def _show_wand_hint(self) -> None:
        self.wand_status.setText(f"<span style='color:{tones(self)['muted']}'>{html.escape(WAND_HINT)}</span>")

    def restyle(self) -> None:
        """The wand's hint in the current theme's tones (a status there is redrawn by the next one)."""
        if hasattr(self, "wand_status") and html.escape(WAND_HINT) in self.wand_status.text():
            self._show_wand_hint()
        if getattr(self, "_report_shown", None) is not None:
            self.report_view.setHtml(report_html(*self._report_shown, self))

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.setText(status_html(text, error, self))
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
