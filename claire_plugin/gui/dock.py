"""The CLAIRE dock panel: choose layers, checkpoint and options; run in a QgsTask; show the results."""
from __future__ import annotations

import html
import os
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from qgis.core import QgsApplication, QgsProcessingUtils, QgsProject, QgsSettings
from qgis.gui import QgsDockWidget, QgsFileWidget
from qgis.PyQt.QtCore import Qt, QTimer, pyqtSignal
from qgis.PyQt.QtGui import QKeySequence
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QShortcut,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...models.macroclass import LEVELS
from ..core.inputs.units import SAR_UNITS
from ..core.params import BATCH_MAX, CONTEXT_MAX, FROM_CARD, RUNTIMES, TILE_MAX
from ..layers.layers import (
    COMPANION_STYLES,
    PROJECT_CHANGED,
    add_to_project,
    layer_file,
    remove_layers_showing,
    result_layers,
    same_project,
)
from .picker import CheckpointPicker
from .results import ResultsView, done_html, replaced_html, result_title
from .tasks import CANCELLED, ClassifyTask, ExplainTask, dock_message
from .tones import Restyled, status_html
from .train_panel import TrainPanel
from .widgets import (
    RasterChooser,
    compact_combo,
    copy_without_breaks,
    narrow_form,
    parse_band_list,
    parse_offset,
    vertical_scroll,
    wrap_tooltips,
)

EXPLAINER_KEY = "claire/explainer_path"
#: Optical pixels a Preview view classifies at most (4096 x 4096: seconds to a minute on two cores); a view of a whole
#: Sentinel-2 tile was a full 10980 x 10980 run written to a temporary file.
PREVIEW_MAX_PIXELS = 4096 * 4096
DEVICES = ["auto", "cpu", "cuda", "mps"]


def _unused_name(folder: str, stem: str) -> str:
    """`folder/stem.tif`, or `stem_2.tif`, ... when a run of the same second took it (two previews within a second
    wrote one file, the second over the one the first one's layers still had open)."""
    path, n = os.path.join(folder, f"{stem}.tif"), 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(folder, f"{stem}_{n}.tif")
    return path


def missing_required() -> List[str]:
    """Required packages that cannot be found (cheap: no import)."""
    from ..deps import missing
    return missing()


#: The companion rasters' names, as ClassifyParams and ClassifyResult call them.
COMPANIONS = tuple(key for key, _name, _ramp in COMPANION_STYLES)


def release_outputs(params) -> List[str]:
    """On Windows, remove the project's layers that show the files this run will write, before it starts, and return
    their names: Windows cannot replace a file QGIS holds open, so a re-run into a loaded output failed at its end
    (elsewhere the layers are replaced after the run, as before)."""
    from ..core.io import atomic

    if not atomic.WINDOWS:
        return []
    return remove_layers_showing([params.output] + [getattr(params, k, None) for k in COMPANIONS])


def run_files(result, params) -> List[str]:
    """The files a run wrote, and the companions it was asked for but could not write (a model without
    familiarity statistics writes no "unlike the training data" raster): those are an earlier run's, at the
    names this dock gives them, and are removed so that no layer or folder pairs them with this map."""
    files = [result.output] + [getattr(result, k, None) for k in COMPANIONS]
    for key in COMPANIONS:
        asked = getattr(params, key, None) if params is not None else None
        if asked and not getattr(result, key, None) and os.path.isfile(asked):
            files.append(asked)
            try:
                os.remove(asked)
            except OSError:
                pass
    return [f for f in files if f]


#: The engine's check of the chosen pair starts this long after the last change (typing, scrolling a combo).
FIT_DELAY_MS = 150


class ClaireDock(Restyled, QgsDockWidget):
    """Dock panel of the plugin (created by the plugin's menu/toolbar action)."""

    fitChecked = pyqtSignal(int, list, list)  # noqa: N815 (Qt signal naming): generation, warnings, notes

    def __init__(self, iface=None, parent: Optional[QWidget] = None) -> None:
        super().__init__("CLAIRE land cover", parent)
        self.setObjectName("ClaireDock")
        self.iface = iface
        self.task: Optional[ClassifyTask] = None
        self.explain_task: Optional[ExplainTask] = None
        self.last_result = None
        self.last_card: Optional[Dict[str, Any]] = None
        self.added_layers: List = []
        self.preview_layers: Dict[str, str] = {}  # the last preview's layers (id: name): a new preview replaces them
        self._fit_gen = self._fit_shown = 0  # the inputs' generation; the one whose check is shown
        self._training_preloaded = False  # the training code loaded in the background (the Train tab shown once)
        self._fit_threads: List[threading.Thread] = []  # checks still reading (older ones' results are dropped)
        self._fit_results: Dict[int, Tuple[List[str], List[str]]] = {}  # generation: (warnings, notes)
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(FIT_DELAY_MS)
        self._fit_timer.timeout.connect(self._start_fit)
        self.fitChecked.connect(self._apply_fit)
        self._build()
        self._check_dependencies()
        self._schedule_fit()

    # -- layout --------------------------------------------------------------------------------------
    def _build(self) -> None:
        root = QWidget(self)
        self.tabs = QTabWidget(root)
        run_page = QWidget()
        rl = QVBoxLayout(run_page)
        rl.setContentsMargins(4, 4, 4, 4)
        rl.addWidget(self._build_inputs_box(run_page))
        rl.addWidget(self._build_model_box(run_page))
        rl.addWidget(self._build_options_box(run_page))
        rl.addStretch(1)
        self.tabs.addTab(vertical_scroll(run_page), "Run")
        self.results = ResultsView()
        self.results.trainRequested.connect(lambda: self.tabs.setCurrentIndex(2))
        self.tabs.addTab(vertical_scroll(self.results), "Results")
        self.train_panel = TrainPanel(self.iface)
        self.tabs.addTab(vertical_scroll(self.train_panel), "Train")
        lay = QVBoxLayout(root)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self._build_banner(root))
        lay.addWidget(self.tabs, 1)
        lay.addWidget(self._build_footer(root))
        self.setWidget(root)
        self._tips = wrap_tooltips(root)
        self._connect()

    def _build_inputs_box(self, page: QWidget) -> QGroupBox:
        """Optical and SAR layers with their bands and offset, and the optional reference."""
        form = narrow_form()
        optical = RasterChooser(page)
        self.optical = optical.combo
        self.optical_bands = QLineEdit(page)
        self.optical_bands.setPlaceholderText("auto (band names or Sentinel-2 layout)")
        self.optical_bands.setToolTip("The raster's band numbers (from 1) in the order of the checkpoint's bands, "
                                      "which its card lists. Empty: auto, by the raster's band names or the "
                                      "Sentinel-2 layout.")
        self.optical_offset = QLineEdit(page)
        self.optical_offset.setPlaceholderText("from the file (Sentinel-2 2022+: -1000)")
        self.optical_offset.setToolTip("Value added to the optical values before the checkpoint's scaling. Empty: "
                                       "read from the file (GDAL scale/offset, BOA_ADD_OFFSET, "
                                       "PROCESSING_BASELINE); the log says which was used.")
        sar = RasterChooser(page)
        self.sar = sar.combo
        self.sar_bands = QLineEdit(page)
        self.sar_bands.setPlaceholderText("auto (e.g. 1,2 for VV,VH)")
        self.sar_bands.setToolTip("1-based band numbers of VV and VH, e.g. 1,2. Empty: auto, by the band names.")
        reference = RasterChooser(page, optional=True, help_text="Optional label raster with the checkpoint's class "
                                  "values: adds IoU, precision, recall, F1, OA, mIoU and kappa.")
        self.reference = reference.combo
        form.addRow("Optical raster", optical)
        form.addRow("  bands", self.optical_bands)
        form.addRow("  offset", self.optical_offset)
        form.addRow("SAR raster", sar)
        form.addRow("  bands", self.sar_bands)
        form.addRow("Reference (optional)", reference)
        # what a screen reader says (the form's labels name the choosers' frames, and two of them say "bands")
        for widget, name in ((self.optical, "Optical raster"), (self.optical_bands, "Optical bands"),
                             (self.optical_offset, "Optical offset"), (self.sar, "SAR raster"),
                             (self.sar_bands, "SAR bands"), (self.reference, "Reference raster (optional)")):
            widget.setAccessibleName(name)
        box = QGroupBox("Input rasters", page)
        box.setLayout(form)
        return box

    def _build_model_box(self, page: QWidget) -> QGroupBox:
        """The checkpoint picker with its model card."""
        self.picker = CheckpointPicker(page)
        self.picker.card_view.setMinimumHeight(120)
        self.picker.card_view.setMaximumHeight(190)
        box = QGroupBox("Checkpoint", page)
        QVBoxLayout(box).addWidget(self.picker)
        return box

    def _build_options_box(self, page: QWidget) -> QGroupBox:
        """Tiling, batch, device, extra outputs, output file and explainer."""
        self.tile_size = QSpinBox(page)
        self.tile_size.setRange(0, TILE_MAX)
        self.tile_size.setSingleStep(32)
        self.tile_size.setSpecialValueText("auto")
        self.tile_size.setToolTip("The part of each tile that is kept (multiple of 32); the classes hardly "
                                  "depend on it (the same on 99.6-99.8 % of pixels), larger is faster and needs "
                                  "more memory. auto: 896.")
        self.context = QSpinBox(page)
        self.context.setRange(FROM_CARD, CONTEXT_MAX)
        self.context.setSingleStep(16)
        self.context.setValue(FROM_CARD)
        self.context.setSpecialValueText("auto")
        self.context.setToolTip("Pixels each tile reads around the part it keeps (multiple of 16). auto: 128, "
                                "with which the classes hardly depend on the tile size; less is faster.")
        self.batch = QSpinBox(page)
        self.batch.setRange(0, BATCH_MAX)
        self.batch.setValue(0)
        self.batch.setSpecialValueText("auto")
        self.batch.setToolTip("Windows the model takes at once. auto: as many as fit in four 256 x 256 px of "
                              "input, 1 to 4 (one window at the default tile size); a run that would not fit the "
                              "memory left is refused with the batch and tile that fit.")
        self.device = compact_combo(QComboBox(page))
        self.device.addItems(DEVICES)
        self.device.setToolTip("auto: CUDA if available, then Apple MPS, else the CPU.")
        self.sar_units = compact_combo(QComboBox(page))
        self.sar_units.addItems(list(SAR_UNITS))
        self.sar_units.setToolTip("Unit of the SAR values. auto: from the file's metadata and values; linear values "
                                  "must be declared as linear-power (sigma0, gamma0) or amplitude, and are "
                                  "converted to dB.")
        self.runtime = compact_combo(QComboBox(page))
        self.runtime.addItems(list(RUNTIMES))
        self.runtime.setToolTip("How the network runs. auto: a compiled package where one was built, checked "
                                "against eager and found faster on this machine, else eager; compiled: "
                                "torch.compile (about 30 s per session); aot: built once (minutes, needs a C++ "
                                "compiler; a bfloat16 one too where the CPU has bfloat16 instructions), then "
                                "cached.")
        self.level = compact_combo(QComboBox(page))
        self.level.addItems(list(LEVELS))
        self.level.setToolTip("class: map the checkpoint's classes. macroclass: map its macroclasses (a checkpoint "
                              "trained with a macroclass field): each pixel gets the macroclass whose classes' "
                              "probabilities sum highest.")
        outputs_row, rules_row = self._build_output_switches(page)
        self._build_file_fields(page)
        form = narrow_form()
        for label, widget in (("Tile size (px)", self.tile_size), ("Tile context (px)", self.context),
                              ("Batch size", self.batch), ("Device", self.device), ("SAR units", self.sar_units),
                              ("Runtime", self.runtime), ("Map level", self.level)):
            form.addRow(label, widget)
        form.addRow(QLabel("Also write", page))
        form.addRow(outputs_row)  # full width: a form's minimum width counts label + field, wrapped or not
        form.addRow(QLabel("While classifying", page))  # switches of the map itself, not files
        form.addRow(rules_row)
        for label, widget in (("Output", self.output), ("Explainer model", self.explainer)):
            form.addRow(label, widget)
        box = QGroupBox("Options", page)
        box.setLayout(form)
        return box

    def _build_file_fields(self, page: QWidget) -> None:
        """The output file and the explainer model folder."""
        self.output = QgsFileWidget(page)
        self.output.setStorageMode(QgsFileWidget.SaveFile)
        self.output.setFilter("GeoTIFF (*.tif *.tiff)")
        self.output.lineEdit().setPlaceholderText("temporary file")
        self.output.setToolTip("The land-cover GeoTIFF to write. Empty: a temporary file, deleted when QGIS closes.")
        self.output.lineEdit().setToolTip(self.output.toolTip())  # the field's own tooltip is QGIS's generic one
        self.output.lineEdit().setAccessibleName("Output land-cover GeoTIFF")
        self.explainer = QgsFileWidget(page)
        self.explainer.setStorageMode(QgsFileWidget.GetDirectory)
        self.explainer.lineEdit().setPlaceholderText("none: template writer")
        self.explainer.setFilePath(QgsSettings().value(EXPLAINER_KEY, "", type=str))
        self.explainer.setToolTip("Folder of a local language model (e.g. Phi-3) for the explanation; "
                                  "empty: the deterministic template.")
        self.explainer.lineEdit().setToolTip(self.explainer.toolTip())
        self.explainer.lineEdit().setAccessibleName("Explainer model folder")

    def _build_output_switches(self, page: QWidget) -> Tuple[QVBoxLayout, QVBoxLayout]:
        """The extra outputs to write, and the run's switches (SAR fill, snow check): one check box a line."""
        self.want_confidence = QCheckBox("confidence", page)
        self.want_confidence.setChecked(True)
        # short texts: a check box does not wrap, and the dock is ~300 px wide; the tooltips say more
        self.want_reliance = QCheckBox("SAR gate weight", page)
        self.want_reliance.setToolTip("The SAR share of the fusion gate per pixel, in percent (0 = all optical, "
                                      "100 = all SAR): how the network mixed the two sensors' features there, not "
                                      "which of them decided the class.")
        self.want_confidence.setToolTip("Also write the top-class probability per pixel, in percent (rounded down).")
        self.want_cloud = QCheckBox("cloud probability", page)
        self.want_cloud.setToolTip("Also write the cloud probability the model saw per pixel.")
        self.want_unfamiliar = QCheckBox("unlike training data", page)
        self.want_unfamiliar.setChecked(True)
        self.want_unfamiliar.setToolTip("Also write where the scene is unlike the data the model was trained on "
                                        "(100 = at the calibrated threshold): do not trust the map there.")
        self.fill_from_sar = QCheckBox("SAR fills optical gaps", page)
        self.fill_from_sar.setChecked(True)
        self.fill_from_sar.setToolTip("Pixels without optical data (swath edge, masked clouds) are classified from "
                                      "the SAR instead of left empty (checkpoints with a cloud gate).")
        self.snow_check = QCheckBox("snow check (NDSI)", page)
        self.snow_check.setChecked(True)
        self.snow_check.setToolTip("Snow / ice is ruled out where the optical shows none (a snow index, NDSI of B03 "
                                   "and B11, at or below 0, or a near-infrared at or below 0.03), under thick "
                                   "cloud unless the clear ground within about 70 px shows snow, and where the "
                                   "map comes from SAR alone: the next most likely class is mapped there.")
        outputs_row, rules_row = QVBoxLayout(), QVBoxLayout()
        for box in (self.want_confidence, self.want_reliance, self.want_cloud, self.want_unfamiliar):
            outputs_row.addWidget(box)
        for box in (self.fill_from_sar, self.snow_check):
            rules_row.addWidget(box)
        return outputs_row, rules_row

    def _build_banner(self, root: QWidget) -> QLabel:
        """The missing-packages banner (hidden unless something is missing)."""
        self.banner = QLabel(root)
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.banner.setStyleSheet("background:#fdecea;color:#611a15;padding:6px;border-radius:3px;")
        self.banner.setVisible(False)
        return self.banner

    def _build_footer(self, root: QWidget) -> QWidget:
        """Classify / Cancel, progress and status of the Run tab (hidden on the Train tab, which has its own)."""
        self.footer = QWidget(root)
        self.run_button = QPushButton("Classify", self.footer)
        self.run_button.setDefault(True)
        self.preview_button = QPushButton("Preview view", self.footer)
        self.preview_button.setToolTip("Classify only what the map shows, with the values a full run gives there: "
                                       "a quick look before classifying the whole scene (written to a temporary "
                                       "file).")
        self.cancel_button = QPushButton("Cancel", self.footer)
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar(self.footer)
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.status = copy_without_breaks(QLabel("Choose an optical and a SAR layer, then Classify.", self.footer))
        self.status.setTextFormat(Qt.TextFormat.RichText)  # status_html's text: entities shown as characters
        self.status.setWordWrap(True)
        self.status.setOpenExternalLinks(True)
        self.status.setTextInteractionFlags(Qt.TextBrowserInteraction)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button, 2)
        buttons.addWidget(self.preview_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        lay = QVBoxLayout(self.footer)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        return self.footer

    def _connect(self) -> None:
        self.visibilityChanged.connect(lambda shown: None if shown else self.train_panel.stop_wand())
        self.run_button.clicked.connect(lambda: self.start())
        self.preview_button.clicked.connect(lambda: self.start(preview=True))
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setToolTip("Stop the run (Esc while the panel has the focus); nothing is written.")
        escape = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        escape.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        escape.activated.connect(self.cancel)
        for combo in (self.optical, self.sar):
            combo.layerChanged.connect(self._schedule_fit)
            combo.layerChanged.connect(self._scene_to_train)
        self.optical_bands.editingFinished.connect(self._schedule_fit)
        self.optical_offset.editingFinished.connect(self._schedule_fit)  # the reflectance checks read it
        self.sar_bands.editingFinished.connect(self._schedule_fit)
        self.picker.checkpointChanged.connect(lambda _p: self._schedule_fit())
        self.sar_units.currentIndexChanged.connect(self._schedule_fit)
        self.explainer.fileChanged.connect(lambda p: QgsSettings().setValue(EXPLAINER_KEY, p))
        self.tabs.currentChanged.connect(lambda i: self.footer.setVisible(self.tabs.widget(i).widget()
                                                                          is not self.train_panel))
        self.tabs.currentChanged.connect(self._preload_training)
        self.train_panel.classifyWith.connect(self.classify_with)
        self.train_panel.checkpointsWritten.connect(lambda: self.picker.reload(self.picker.checkpointPath()))
        QgsProject.instance().layersAdded.connect(self._roles_by_bands)
        QgsProject.instance().cleared.connect(self._project_cleared)
        self._roles_by_bands()

    def _project_cleared(self) -> None:
        """File > New or another project opened: the Output field named the last project's map (Classify then
        overwrote it, and that project showed the new scene under its old layer), and the Results tab showed the
        last project's results. Both are cleared; a run in progress keeps its own output."""
        self.output.setFilePath("")
        self.results.clearResults()

    def _roles_by_bands(self, *_args) -> None:
        """When both combos show one raster (QGIS gives each the first layer by name, often the SAR of a pair
        added together), the raster with the most bands becomes the optical and one with the fewest the SAR.
        A pair the user chose (two different layers) is never changed."""
        from qgis.PyQt import sip

        from .widgets import layers_overlap, roles_by_bands

        if sip.isdeleted(self) or sip.isdeleted(self.optical) or sip.isdeleted(self.sar):
            return
        if self.optical.currentLayer() is None or self.optical.currentLayer() is not self.sar.currentLayer():
            return
        layers = [self.optical.layer(i) for i in range(self.optical.count())]
        layers = [layer for layer in layers if layer is not None and layer.isValid()]
        sar_n = ((self.picker.card() or {}).get("config") or {}).get("sar_channels")
        roles = roles_by_bands([layer.bandCount() for layer in layers], sar_n,
                               lambda i, j: layers_overlap(layers[i], layers[j]))
        if roles is not None:
            self.optical.setLayer(layers[roles[0]])
            self.sar.setLayer(layers[roles[1]])

    def _scene_to_train(self, *_args) -> None:
        """The Train tab trains on the scene chosen here (its own combos offered the first raster twice)."""
        from qgis.PyQt import sip

        if getattr(self, "_taking_train_scene", False):  # classify_with sets both: the Train tab keeps its own
            return
        for mine, train in ((self.optical, self.train_panel.optical), (self.sar, self.train_panel.sar)):
            if sip.isdeleted(mine) or sip.isdeleted(train):  # the dock is being destroyed
                return
            if mine.currentLayer() is not None and train.currentLayer() is not mine.currentLayer():
                train.setLayer(mine.currentLayer())

    def classify_with(self, checkpoint: str) -> None:
        """Make `checkpoint` the Run tab's checkpoint (its card shown), with the Train tab's scene, and go there."""
        self.picker.setCheckpoint(checkpoint)
        # both layers read first and set without the Run -> Train sync in between: setting the optical alone
        # pushed the Run tab's old SAR (another scene) into the Train tab, and from there back here
        scene = [(mine, theirs.currentLayer()) for mine, theirs in ((self.optical, self.train_panel.optical),
                                                                    (self.sar, self.train_panel.sar))]
        self._taking_train_scene = True
        try:
            for mine, layer in scene:
                if layer is not None:
                    mine.setLayer(layer)
        finally:
            self._taking_train_scene = False
        self.sar_units.setCurrentText(self.train_panel.sar_units.currentText())  # as the training read the SAR
        self.tabs.setCurrentIndex(0)
        self._schedule_fit()

    # -- checks --------------------------------------------------------------------------------------
    def _check_dependencies(self) -> None:
        missing = missing_required()
        if missing:
            from ..deps import install_hint
            self.banner.setText(f"⚠ {html.escape(install_hint(missing))}")
            self.banner.setVisible(True)
            self.run_button.setEnabled(False)
            self.preview_button.setEnabled(False)

    def _update_fit(self, *_args) -> List[str]:
        """Compare the chosen layers with the checkpoint's model card now, the engine's reading of the pair
        included (here, in this thread: the tools and tests; a change in the dock goes through _schedule_fit)."""
        self._fit_gen += 1
        self._fit_timer.stop()
        heavy, warnings = self._band_fit()
        if heavy:
            warnings = self.picker.addWarnings(*self._pair_check(*heavy))
        self._fit_shown = self._fit_gen
        self._show_fit_status(warnings)
        return warnings

    def _preload_training(self, index: int) -> None:
        """The Train tab shown: import the training code (torch) in a thread of its own, once; the first press of
        Train imported it on the main thread, QGIS frozen for 1.7 s."""
        if self.tabs.widget(index).widget() is not self.train_panel or self._training_preloaded:
            return
        self._training_preloaded = True

        def load() -> None:
            try:
                from ..core.training import polygons  # noqa: F401 - imported for its side effect: loaded
            except Exception:  # noqa: BLE001 - a missing package is said when Train is pressed
                pass

        threading.Thread(target=load, name="claire-preload-training", daemon=True).start()

    def _schedule_fit(self, *_args) -> None:
        """A change of layers, bands, offset, SAR units or checkpoint: the band counts checked now; the engine's
        reading of the pair, which samples both rasters (up to a second or more on the main thread with large
        blocks: QGIS froze at every change), FIT_DELAY_MS after the last change in a thread of its own."""
        self._fit_gen += 1
        heavy, warnings = self._band_fit()
        if heavy:
            self._fit_timer.start()
            if self.task is None:
                self._set_status("Checking the chosen layers…")
        else:
            self._fit_timer.stop()
            self._fit_shown = self._fit_gen
            self._show_fit_status(warnings)

    def _band_fit(self) -> Tuple[Optional[tuple], List[str]]:
        """(the pair check's arguments when it is to run, else None; the band-count warnings shown now)."""
        opt, sar = self.optical.currentLayer(), self.sar.currentLayer()
        try:
            ob = parse_band_list(self.optical_bands.text())
            sb = parse_band_list(self.sar_bands.text())
        except ValueError:
            ob = sb = None
        warnings = self.picker.checkLayers(opt.bandCount() if opt else None, sar.bandCount() if sar else None,
                                           ob, sb)
        heavy = (opt, sar, ob, sb) if not warnings and opt is not None and sar is not None and self.picker.card() \
            else None
        return heavy, warnings

    def _show_fit_status(self, warnings: List[str]) -> None:
        if self.task is not None:
            return
        self.progress.setValue(0)  # a finished run's 100 % is not this setup's
        if self.optical.currentLayer() is None or self.sar.currentLayer() is None:
            self._set_status("Choose an optical and a SAR layer, then Classify.")
        elif warnings or self.picker.error():
            self._set_status("Check the warnings above before classifying.", error=True)
        else:
            self._set_status("Ready: press Classify to run in the background (see the task manager).")

    def _start_fit(self) -> None:
        """The pair check of the current inputs in a thread; its result comes back through fitChecked."""
        from .fit_check import check_files, pair_files

        gen = self._fit_gen
        heavy, _ = self._band_fit()
        files = pair_files(heavy[0], heavy[1]) if heavy else None
        if files is None:
            self._apply_fit(gen, [], [])
            return
        args = files + (self.picker.card(), heavy[2], heavy[3], self.sar_units.currentText(), self._fit_offset())

        def work() -> None:
            try:
                warnings, notes = check_files(*args)
            except Exception:  # noqa: BLE001 - the run itself says what is wrong with the inputs
                warnings, notes = [], []
            self._fit_results[gen] = (warnings, notes)
            try:
                self.fitChecked.emit(gen, warnings, notes)
            except RuntimeError:  # the dock is gone
                pass

        self._fit_threads = [t for t in self._fit_threads if t.is_alive()]
        thread = threading.Thread(target=work, name="claire-fit-check", daemon=True)
        self._fit_threads.append(thread)
        thread.start()

    def _apply_fit(self, gen: int, warnings: List[str], notes: List[str]) -> None:
        """Main thread: show a pair check's result, unless the inputs changed since it started or it is shown."""
        self._fit_results.pop(gen, None)
        if gen != self._fit_gen or gen == self._fit_shown:
            return
        self._fit_shown = gen
        self._show_fit_status(self.picker.addWarnings(warnings, notes))

    def wait_for_fit(self) -> List[str]:
        """Run a pending pair check to its end and show it (tools, tests); the picker's warnings."""
        if self._fit_timer.isActive():
            self._fit_timer.stop()
            self._start_fit()
        self._join_fit_threads()
        result = self._fit_results.get(self._fit_gen)
        if result is not None:
            self._apply_fit(self._fit_gen, *result)
        return self.picker.warnings()

    def _join_fit_threads(self) -> None:
        for thread in self._fit_threads:
            thread.join()
        self._fit_threads = []

    def _fit_offset(self) -> Optional[float]:
        try:
            return parse_offset(self.optical_offset.text())
        except ValueError:
            return None  # the field's own message comes when Classify is pressed

    def _pair_check(self, opt, sar, ob, sb) -> Tuple[List[str], List[str]]:
        """The engine's checks of the chosen pair (gui.fit_check), in the dock's words: (warnings, notes)."""
        from .fit_check import pair_check

        return pair_check(opt, sar, self.picker.card(), ob, sb, self.sar_units.currentText(), self._fit_offset())

    # -- run -----------------------------------------------------------------------------------------
    def build_params(self, preview: bool = False):
        """ClassifyParams from the widgets (main thread: layers are resolved to file paths here); with `preview`,
        of the map canvas's visible extent only, to a temporary file."""
        from ..core.params import run_options

        optical, err = layer_file(self.optical.currentLayer())
        if err:
            raise ValueError(f"Optical raster: {err}.")
        sar, err = layer_file(self.sar.currentLayer())
        if err:
            raise ValueError(f"SAR raster: {err}.")
        reference = None
        if self.reference.currentLayer() is not None:
            reference, err = layer_file(self.reference.currentLayer())
            if err:
                raise ValueError(f"Reference raster: {err}.")
        checkpoint = self.picker.checkpointPath()
        if self.picker.error():
            raise ValueError(f"Checkpoint: {self.picker.error()}")
        extent = self._visible_extent() if preview else None
        output = "" if preview else self.output.filePath().strip()
        if not output:
            stem = os.path.splitext(os.path.basename(optical))[0] + ("_preview" if preview else "")
            output = _unused_name(QgsProcessingUtils.tempFolder(), f"claire_{stem}_{time.strftime('%Y%m%d_%H%M%S')}")
        if not output.lower().endswith((".tif", ".tiff")):
            output += ".tif"
        base = os.path.splitext(output)[0]
        options = run_options(
            checkpoint=checkpoint, optical_bands=parse_band_list(self.optical_bands.text(), "Optical bands"),
            sar_bands=parse_band_list(self.sar_bands.text(), "SAR bands"),
            optical_offset=parse_offset(self.optical_offset.text()), tile_size=self.tile_size.value(),
            context=self.context.value(), batch_size=self.batch.value(), device=self.device.currentText(),
            sar_units=self.sar_units.currentText(), runtime=self.runtime.currentText(),
            level=self.level.currentText(), fill_from_sar=self.fill_from_sar.isChecked(),
            snow_check=self.snow_check.isChecked())
        return options.params(
            optical, sar, output,
            confidence=f"{base}_confidence.tif" if self.want_confidence.isChecked() else None,
            reliance=f"{base}_reliance.tif" if self.want_reliance.isChecked() else None,
            cloud=f"{base}_cloud.tif" if self.want_cloud.isChecked() else None,
            unfamiliar=f"{base}_unfamiliar.tif" if self.want_unfamiliar.isChecked() else None,
            reference=reference, extent=extent,
        )

    def _visible_extent(self) -> Tuple[float, float, float, float]:
        """The map canvas's visible extent in the optical layer's CRS (xmin, ymin, xmax, ymax)."""
        from qgis.core import QgsCoordinateTransform, QgsProject

        canvas = self.iface.mapCanvas() if self.iface is not None else None
        layer = self.optical.currentLayer()
        if canvas is None or layer is None:
            raise ValueError("Preview view classifies what the map canvas shows: open the optical layer in the map.")
        rect = canvas.extent()
        source, target = canvas.mapSettings().destinationCrs(), layer.crs()
        if source.isValid() and target.isValid() and source != target:
            rect = QgsCoordinateTransform(source, target, QgsProject.instance()).transformBoundingBox(rect)
        seen = rect.intersect(layer.extent())
        if seen.isEmpty() or seen.width() <= 0 or seen.height() <= 0:
            raise ValueError("The map view does not show the optical raster: zoom to it (right-click the layer ▸ "
                             "Zoom to Layer), then press Preview view.")
        w = seen.width() / max(layer.rasterUnitsPerPixelX(), 1e-12)
        h = seen.height() / max(layer.rasterUnitsPerPixelY(), 1e-12)
        if w * h > PREVIEW_MAX_PIXELS:  # a whole Sentinel-2 tile in view: a preview would be a whole run
            side = int(PREVIEW_MAX_PIXELS ** 0.5)
            raise ValueError(f"The view shows {w:.0f} x {h:.0f} px of the optical raster, as much as a whole run: "
                             f"zoom in for a quick preview (up to about {side} x {side} px), or press Classify for "
                             f"the whole scene.")
        return rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()

    def start(self, preview: bool = False) -> Optional[ClassifyTask]:
        """Validate the form, then start a ClassifyTask in QGIS's task manager (`preview`: the visible extent)."""
        if self.task is not None:
            return None
        try:
            params = self.build_params(preview)
        except ValueError as exc:
            self._set_status(str(exc), error=True)
            return None
        self.last_card = self.picker.card()
        released = release_outputs(params)
        task = ClassifyTask(params, on_done=self.on_classified,
                            description=f"CLAIRE: {os.path.basename(params.optical)}")
        task.progressChanged.connect(self._show_progress)  # bound methods: Qt drops them with the dock
        task.progressText.connect(self._set_status)
        self.task = task
        pressed = self.run_button.hasFocus() or self.preview_button.hasFocus()
        self.run_button.setEnabled(False)
        self.preview_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        if pressed:  # from the keyboard: the disabled button's focus would fall past Cancel
            self.cancel_button.setFocus()
        self.progress.setValue(0)
        self._set_status("Starting…" + (f" (layers showing the files this run replaces were removed, as Windows "
                                        f"cannot replace a file QGIS has open: {', '.join(released)})"
                                        if released else ""))
        QgsApplication.taskManager().addTask(task)
        return task

    def _show_progress(self, value: float) -> None:
        self.progress.setValue(int(value))

    def shutdown(self) -> None:
        """The plugin is unloading: running tasks are cancelled and never call back into this dock (they raised
        'wrapped C/C++ object ... has been deleted' on every progress step, a dialog each during a training)."""
        from .tasks import detach

        for task in (self.task, self.explain_task):
            detach(task)
        self.task = self.explain_task = None
        self._fit_timer.stop()
        self._fit_gen += 1  # a check still reading is never shown
        self._join_fit_threads()  # their rasters closed before QGIS unloads GDAL
        self.train_panel.shutdown()
        try:
            QgsProject.instance().cleared.disconnect(self._project_cleared)
        except TypeError:  # not connected
            pass

    def cancel(self) -> None:
        """Ask the running task to stop (it stops at the next tile)."""
        if self.task is not None:
            self._set_status("Cancelling…")  # before cancel(): a queued task finishes inside cancel()
            self.task.cancel()

    def on_classified(self, task: ClassifyTask) -> None:
        """Main thread: add the styled layers, fill the results view, start the explanation."""
        self.task = None
        self.run_button.setEnabled(True)
        self.preview_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if task.error == CANCELLED:
            self.progress.setValue(0)
            self._set_status("Cancelled: no output was written.")
            return
        if task.error or task.result is None:
            self.progress.setValue(0)
            self._set_status(task.error or "The classification failed.", error=True)
            self._push("CLAIRE", task.error or "The classification failed.", warning=True)
            return
        here = same_project(task)
        self.show_result(task.result, self.last_card, task.params, add_layers=here)
        if not here:
            self.status.setText(f"{self.status.text()}<br><i>{html.escape(PROJECT_CHANGED.capitalize())}.</i>")
            self._done = None  # the line is more than a finished run's: a theme switch keeps it as it is

    def show_result(self, result, card: Optional[Dict[str, Any]], params=None, add_layers: bool = True,
                    explain: bool = True) -> None:
        """Show a finished ClassifyResult: layers, table, chart, then the explanation."""
        self.last_result = result
        card = getattr(result, "card", None) or card or self.picker.card() or {}
        self.last_card = card
        title = result_title(params.optical if params else result.output, getattr(params, "checkpoint", None))
        preview = getattr(params, "extent", None) is not None
        if preview:
            title = f"{title} (preview)"
        replaced: List[str] = []
        if add_layers:
            self.added_layers = result_layers(result, card, title)
            if preview:
                self._replace_preview({layer.id(): layer.name() for layer in self.added_layers})
            replaced = remove_layers_showing(run_files(result, params), keep=[x.id() for x in self.added_layers])
            add_to_project(self.added_layers)
        messages = [dock_message(str(m)) for m in (result.messages or [])]
        if not any(m.lower().startswith("device") for m in messages):
            messages.insert(0, f"Device: {result.device}")
        self.results.showSummary(result.summary, f"Land cover of {title}", messages, card)
        self.progress.setValue(100)
        self._done = (result.output, replaced, preview)
        self.restyle()
        self.tabs.setCurrentIndex(1)
        self.tabs.widget(1).verticalScrollBar().setValue(0)  # a new map's headline and trust line first
        if explain:
            self.start_explanation(result.summary, card)

    def _replace_preview(self, new: Dict[str, str]) -> None:
        """Remove the previous preview's layers still in the project as they were added (panning and previewing
        again does not pile up layers); the full runs' layers stay, and so does a preview layer the user renamed
        or moved into a group: that one they chose to keep."""
        from qgis.core import QgsProject

        project = QgsProject.instance()
        root = project.layerTreeRoot()
        old = []
        for layer_id, name in self.preview_layers.items():
            layer, node = project.mapLayer(layer_id), root.findLayer(layer_id)
            if layer is not None and layer.name() == name and node is not None and node.parent() is root:
                old.append(layer_id)
        if old:
            project.removeMapLayers(old)
        self.preview_layers = dict(new)

    def start_explanation(self, summary: Dict[str, Any], card: Dict[str, Any]) -> ExplainTask:
        """Write the explanation in its own task; text streams into the view."""
        explainer = self.explainer.filePath().strip() or None
        self.results.startExplanation("Writing the explanation…" + (
            f" (language model in {os.path.basename(explainer)})" if explainer else " (template)"))
        task = ExplainTask(summary, card, explainer, on_done=self.on_explained, device=self.device.currentText())
        task.textChunk.connect(self.results.appendExplanation)
        self.explain_task = task
        QgsApplication.taskManager().addTask(task)
        return task

    def on_explained(self, task: ExplainTask) -> None:
        """Main thread: show the final explanation with its generator and flagged sentences."""
        self.explain_task = None
        if task.explanation is not None:
            self.results.showExplanation(task.explanation)
        else:
            self.results.showExplanationError(task.error or "cancelled")

    # -- feedback ------------------------------------------------------------------------------------
    def _set_status(self, text: str, error: bool = False) -> None:
        self._done = None
        self.status.setText(status_html(text, error, self))

    def restyle(self) -> None:
        """A finished run's status line in the current theme's tones (other lines are plain or redrawn)."""
        done = getattr(self, "_done", None)
        if done is not None:
            self.status.setText(done_html(done[0], self, preview=done[2]) + replaced_html(done[1]))

    def _push(self, title: str, text: str, warning: bool = False) -> None:
        bar = getattr(self.iface, "messageBar", None) if self.iface is not None else None
        if bar is None:
            return
        try:
            (bar().pushWarning if warning else bar().pushInfo)(title, html.escape(text))  # a path may hold <i>
        except Exception:  # noqa: BLE001 - no message bar (QGIS closing): the message goes to the log instead
            from qgis.core import Qgis, QgsMessageLog

            QgsMessageLog.logMessage(f"{title}: {text}", "CLAIRE", Qgis.MessageLevel.Warning if warning
                                     else Qgis.MessageLevel.Info)
