"""Checkpoint picker: bundled checkpoint, recently used ones, a file browser, and the model card."""
from __future__ import annotations

import html
import os
from typing import Any, Dict, List, Optional, Sequence

from qgis.core import QgsSettings
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QTextOption
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...models.card_schema import model_title
from ...models.macroclass import grouping_text
from ...models.palette import classes_with_colors
from ..paths import DEFAULT_CHECKPOINT
from .tones import Restyled, tones
from .widgets import breakable, copy_without_breaks, fit_on_screen

RECENT_KEY = "claire/recent_checkpoints"
LAST_KEY = "claire/last_checkpoint"
#: The Train tab's own "Start from": the Run tab's last checkpoint (often the user's fine-tuned network or its forest)
#: is not silently the base of the next training.
BASE_KEY = "claire/last_base_checkpoint"
MAX_RECENT = 8
BROWSE = "__browse__"


def bundled_checkpoint() -> str:
    """Path of the checkpoint shipped with the plugin."""
    return DEFAULT_CHECKPOINT


def recent_checkpoints(settings: Optional[QgsSettings] = None) -> List[str]:
    """Recently used checkpoints that still exist, most recent first."""
    settings = settings or QgsSettings()
    value = settings.value(RECENT_KEY, [], type=list) or []
    return [p for p in value if isinstance(p, str) and os.path.exists(p)]


def project_checkpoints(most: int = 12) -> List[str]:
    """Checkpoints in the open project's folder (where the Train tab writes them), newest first: offered when
    the remembered ones point to where the project was before it was moved."""
    from qgis.core import QgsProject

    home = QgsProject.instance().homePath()
    if not home or not os.path.isdir(home):
        return []
    try:
        found = [os.path.join(home, n) for n in os.listdir(home) if n.endswith(".safetensors")]
    except OSError:
        return []
    return sorted(found, key=os.path.getmtime, reverse=True)[:most]


def gone_text(path: str) -> str:
    """What the picker says when the checkpoint it last used is no longer there."""
    return (f"The checkpoint last used, {path}, is no longer there (moved or deleted): the bundled one is chosen. "
            f"Choose yours again from the list or with Browse…")


def remember_checkpoint(path: str, settings: Optional[QgsSettings] = None, last_key: str = LAST_KEY) -> None:
    """Put ``path`` first in the recent list (bounded) and make it the last used checkpoint of the picker whose
    setting is `last_key` (the Run tab's by default)."""
    settings = settings or QgsSettings()
    old = settings.value(RECENT_KEY, [], type=list) or []
    new = [path] + [p for p in old if p != path]
    settings.setValue(RECENT_KEY, new[:MAX_RECENT])
    settings.setValue(last_key, path)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def read_card_safely(path: str) -> Dict[str, Any]:
    """The model card of ``path``; raises an Exception whose message says what is wrong."""
    from ...models.checkpoint import read_card

    return read_card(path)


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return html.escape(str(value))
    return f"{100 * v:.1f} %" if pct else f"{v:.3f}"


def card_classes(card: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The card's classes with a colour each (the card's, else the shared generated palette)."""
    return classes_with_colors(card)


def card_html(card: Dict[str, Any], path: Optional[str] = None, widget=None) -> str:
    """HTML summary of a model card: architecture, classes (swatches), bands, training, metrics."""
    e = html.escape
    t = tones(widget)
    parts = [f"<style>td,th{{padding:2px 6px;}} th{{text-align:left;background:{t['header_bg']};color:{t['text']};}}"
             f" h3{{margin:6px 0 2px 0;}} .muted{{color:{t['muted']};}}</style>"]
    parts.append(f"<h3>Model: {e(model_title(card))}</h3>")
    parts.append(f"<p class='muted'>{' · '.join(_card_meta(card, path))}</p>")
    parts += _classes_html(card) + _bands_html(card) + _training_html(card) + _metrics_html(card)
    return "".join(parts)


def _card_meta(card: Dict[str, Any], path: Optional[str]) -> List[str]:
    """File, format, version, date and tiling of a card, as short escaped phrases."""
    e = html.escape
    meta = []
    if path:
        meta.append(f"File: {e(os.path.basename(path))}")
    if card.get("format"):
        meta.append(f"Format: {e(str(card['format']))}")
    if card.get("claire_version"):
        meta.append(f"CLAIRE {e(str(card['claire_version']))}")
    if card.get("created"):
        meta.append(f"created {e(str(card['created'])[:10])}")
    from ..core.engine.tiling import tiling_text

    meta.append(f"classified in {e(tiling_text(card))}")
    return meta


def _classes_html(card: Dict[str, Any]) -> List[str]:
    """The classes table with colour swatches, and the nodata value."""
    e = html.escape
    parts = ["<h3>Classes</h3><table cellspacing='0'>", "<tr><th></th><th>Value</th><th>Name</th></tr>"]
    for c in card_classes(card):
        parts.append(
            f"<tr><td><table cellspacing='0'><tr><td width='16' height='12' bgcolor='{e(c['color'])}'>"
            f"&nbsp;</td></tr></table></td><td>{e(str(c.get('value')))}</td><td>{e(str(c.get('name')))}</td></tr>")
    parts.append(f"</table><p class='muted'>No data value: {e(str(card.get('nodata', '–')))}</p>")
    grouped = grouping_text(card)
    if grouped:
        parts.append(f"<p><b>Macroclasses</b> (Options &gt; Map level 'macroclass'): {e(grouped)}</p>")
    return parts


def _bands_html(card: Dict[str, Any]) -> List[str]:
    """The optical and SAR bands the card expects, with sensor and units."""
    e = html.escape
    parts = ["<h3>Expected bands</h3><table cellspacing='0'>"]
    for modality, label in (("optical", "Optical"), ("sar", "SAR")):
        spec = (card.get("inputs") or {}).get(modality) or {}
        bands = spec.get("bands") or []
        sensor = spec.get("sensor", "")
        units = spec.get("units", "")
        parts.append(
            f"<tr><td><b>{label}</b></td><td>{len(bands)} bands: {e(', '.join(map(str, bands)))}<br>"
            f"<span class='muted'>{e(str(sensor))}{', ' + e(str(units)) if units else ''}</span></td></tr>")
    parts.append("</table>")
    return parts


def _training_html(card: Dict[str, Any]) -> List[str]:
    """Training data, epochs and seed, when the card records them."""
    e = html.escape
    training = card.get("training") or {}
    if not training:
        return []
    parts = ["<h3>Training</h3><p>"]
    if training.get("data"):
        data = str(training["data"])
        parts.append(f"{e(_labels_noun(card) if data == 'polygons' else data)}<br>")
    if training.get("model"):
        parts.append(f"{e(str(training['model']))}<br>")
    bits = [f"{k}: {e(str(training[k]))}" for k in ("epochs", "seed") if k in training]
    if bits:
        parts.append(f"<span class='muted'>{' · '.join(bits)}</span>")
    if training.get("lr_note"):
        parts.append(f"<br><span class='muted'>{e(str(training['lr_note']))}</span>")
    cal = card.get("calibration") or {}
    for note in (cal.get("note"), (cal.get("sar_only") or {}).get("note")):
        if note:
            parts.append(f"<br><span class='muted'>{e(str(note))}</span>")
    parts.append("</p>")
    return parts


def _labels_noun(card: Dict[str, Any]) -> str:
    """What the card's training labels were: polygons, points or a label raster."""
    from ..core.training.labels import labels_noun

    return labels_noun((card.get("training") or {}).get("labels"))


def _metrics_html(card: Dict[str, Any]) -> List[str]:
    """OA / mIoU / kappa and the per-class IoU/F1 table of every metrics split."""
    from ..core.training.labels import units_of
    from ..core.training.scorecard import interval_text, metric_title

    e = html.escape
    many = units_of((card.get("training") or {}).get("labels")).many
    parts: List[str] = []
    splits = dict(card.get("metrics") or {})
    macro = splits.pop("macroclass", None)  # the same held-out pixels scored at the macroclass level
    if isinstance(macro, dict):
        splits.update({f"macroclasses, {k}": v for k, v in macro.items() if k != "baselines"})
    for split, m in splits.items():
        if not isinstance(m, dict):
            continue
        if split == "baselines":  # a polygon run's other models on the same held-out polygons
            parts += _baselines_html(m, many, (card.get("training") or {}).get("base_checkpoint"))
            continue
        prefix, _, key = str(split).rpartition(", ")
        title = (f"{prefix}, " if prefix else "") + metric_title(key, many)
        parts.append(f"<h3>Metrics ({e(title)})</h3>")
        if split == "heldout_polygons" and (card.get("metrics") or {}).get("heldout_polygons_note"):
            parts.append(f"<p><i>{e(card['metrics']['heldout_polygons_note'])}</i></p>")
        optimistic = ((card.get("training") or {}).get("split") or {}).get("optimistic")
        if split == "heldout_polygons" and optimistic:
            parts.append(f"<p style='color:#a05a00'><b>Optimistic</b>: {e(str(optimistic))}, so these scores are "
                         f"too high.</p>")
        f1 = f"macro-F1 {_fmt(m['macro_f1'])}" if m.get("macro_f1") is not None else ""
        ci = interval_text(m.get("macro_f1_ci95"))
        f1 += (f" (95 % interval {ci}, held-out {many} resampled)" if ci and f1 else "") + (" · " if f1 else "")
        parts.append(f"<p>{f1}OA {_fmt(m.get('oa'), True)} · mIoU {_fmt(m.get('miou'), True)} · "
                     f"kappa {_fmt(m.get('kappa'))}</p>")
        rows = m.get("per_class") or []
        if rows:
            parts.append("<table cellspacing='0'><tr><th>Class</th><th>IoU</th><th>F1</th></tr>")
            for r in rows:
                parts.append(f"<tr><td>{e(str(r.get('name')))}</td><td>{_fmt(r.get('iou'), True)}</td>"
                             f"<td>{_fmt(r.get('f1'), True)}</td></tr>")
            parts.append("</table>")
    return parts


def _baselines_html(baselines: Dict[str, Any], many: str = "polygons", base: Optional[str] = None) -> List[str]:
    """The other models of a polygon run, macro-F1 on the same held-out polygons (`many`), clear and clouded;
    `base`: the checkpoint the run started from (its row is named after it when it is not the bundled one)."""
    from ..core.training.scorecard import ordered_arms, row_title

    e = html.escape
    rows = []
    for arm in ordered_arms({"arms": baselines}):
        conds = baselines[arm] if isinstance(baselines[arm], dict) else {}
        cells = "".join(f"<td>{_fmt((conds.get(c) or {}).get('macro_f1'))}</td>" for c in ("clear", "clouds_60pct"))
        rows.append(f"<tr><td>{e(row_title({'training': {'base_checkpoint': base}}, arm))}</td>{cells}</tr>")
    if not rows:
        return []
    return [f"<h3>Other models, same held-out {many} (macro-F1)</h3><table cellspacing='0'><tr><th>model</th>"
            "<th>clear</th><th>60 % clouds</th></tr>" + "".join(rows) + "</table>"]


def band_fit_warnings(card: Dict[str, Any], optical_count: Optional[int], sar_count: Optional[int],
                      optical_bands: Optional[List[int]] = None,
                      sar_bands: Optional[List[int]] = None) -> List[str]:
    """Sentences saying where the chosen rasters do not fit the bands the card expects (empty: fine)."""
    out: List[str] = []
    inputs = card.get("inputs") or {}
    for label, key, count, chosen in (("optical", "optical", optical_count, optical_bands),
                                      ("SAR", "sar", sar_count, sar_bands)):
        expected = list((inputs.get(key) or {}).get("bands") or [])
        if count is None or not expected:
            continue
        need = len(expected)
        if chosen:
            bad = [b for b in chosen if b < 1 or b > count]
            if bad:
                out.append(f"The {label} band indices {bad} do not exist: the layer has {count} band(s).")
            if len(chosen) != need:
                out.append(f"{len(chosen)} {label} band indices were given, the checkpoint expects {need} "
                           f"({', '.join(expected)}).")
        elif count < need:
            out.append(f"The {label} layer has {count} band(s), the checkpoint expects {need} "
                       f"({', '.join(expected)}). Choose a raster with these bands; files of one band each can be "
                       f"stacked with Raster > Miscellaneous > Build Virtual Raster (each input file a separate "
                       f"band).")
    return out


class CheckpointPicker(Restyled, QWidget):
    """Combo box of checkpoints (bundled, recent, browse…) with the chosen checkpoint's model card."""

    checkpointChanged = pyqtSignal(str)  # noqa: N815 (Qt signal naming)

    def __init__(self, parent: Optional[QWidget] = None, show_card: bool = True, last_key: str = LAST_KEY,
                 bases_only: bool = False) -> None:
        super().__init__(parent)
        self._last_key = last_key  # where this picker remembers its last choice (the recent list is shared)
        self._bases_only = bases_only  # lists no random forest or averaged model (they cannot be fine-tuned)
        self._card: Optional[Dict[str, Any]] = None
        self._error: Optional[str] = None
        self._warnings: List[str] = []
        self._notes: List[str] = []
        self._layers_checked = False
        self.combo = QComboBox(self)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setAccessibleName("Checkpoint")
        self.combo.setMinimumContentsLength(8)
        self.combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.browse_button = QToolButton(self)
        self.browse_button.setText("…")
        self.browse_button.setToolTip("Choose a checkpoint file (.safetensors)")
        self.card_view = QTextBrowser(self)
        self.card_view.setOpenExternalLinks(False)
        self.card_view.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)  # long paths wrap at 300 px
        self.card_view.setVisible(show_card)
        self.card_view.setMinimumHeight(160)
        self.status = copy_without_breaks(QLabel(self))
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo, 1)
        row.addWidget(self.browse_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addWidget(self.status)
        lay.addWidget(self.card_view, 1)
        self.browse_button.clicked.connect(self.browse)
        self.combo.activated.connect(self._on_activated)
        self.combo.currentIndexChanged.connect(self._show_path)
        self.reload()

    # -- choices -------------------------------------------------------------------------------------
    def reload(self, select: Optional[str] = None) -> None:
        """Fill the combo: bundled, recent, browse; select ``select`` or this picker's last used checkpoint."""
        settings = QgsSettings()
        last = settings.value(self._last_key, "", type=str)
        # a remembered checkpoint that was deleted or moved since falls back to the bundled one, and says so (a
        # project folder moved to another place or machine); an explicit choice stays
        self._gone = last if not select and last and not os.path.exists(last) else ""
        select = select or (last if last and os.path.exists(last) else "") or bundled_checkpoint()
        self.combo.blockSignals(True)
        self.combo.clear()
        bundled = bundled_checkpoint()
        self.combo.addItem(f"Bundled: {_stem(bundled)}", bundled)
        self.combo.setItemData(0, bundled, Qt.ItemDataRole.ToolTipRole)
        for path in recent_checkpoints(settings):
            if os.path.abspath(path) != os.path.abspath(bundled) and self._listed(path):
                self.combo.addItem(f"Recent: {_stem(path)}", path)
                self.combo.setItemData(self.combo.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
        for path in project_checkpoints():
            if self.combo.findData(path) < 0 and os.path.abspath(path) != os.path.abspath(bundled) and \
                    self._listed(path):
                self.combo.addItem(f"In the project folder: {_stem(path)}", path)
                self.combo.setItemData(self.combo.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
        if select and self.combo.findData(select) < 0:
            self.combo.addItem(_stem(select), select)
            self.combo.setItemData(self.combo.count() - 1, select, Qt.ItemDataRole.ToolTipRole)
        self.combo.addItem("Browse…", BROWSE)
        self.combo.setCurrentIndex(max(0, self.combo.findData(select)))
        self.combo.blockSignals(False)
        self._show_path()
        self._load(self.checkpointPath())

    def _show_path(self, *_) -> None:
        """The chosen checkpoint's whole path as the box's tooltip (a narrow dock cuts its name short)."""
        data = self.combo.currentData()
        self.combo.setToolTip(str(data) if data and data != BROWSE else "")

    def _listed(self, path: str) -> bool:
        """Whether `path` is offered: with `bases_only`, not a random forest or an averaged model (a file whose
        card cannot be read is offered, and says why when chosen)."""
        if not self._bases_only:
            return True
        from ...models.card_schema import ENSEMBLE, FOREST

        try:
            return read_card_safely(path).get("arch") not in (FOREST, ENSEMBLE)
        except Exception:  # noqa: BLE001 - shown with its reason when chosen, as before
            return True

    def _on_activated(self, index: int) -> None:
        if self.combo.itemData(index) == BROWSE:
            self.browse()
        else:
            self.setCheckpoint(self.combo.itemData(index))

    def browse(self) -> None:
        """Ask for a checkpoint file with a file dialog."""
        start = os.path.dirname(self.checkpointPath() or bundled_checkpoint())
        path, _ = QFileDialog.getOpenFileName(self, "Choose a CLAIRE checkpoint", start,
                                              "CLAIRE checkpoints (*.safetensors);;All files (*)")
        if path:
            self.setCheckpoint(path)
        else:
            self.reload(self.checkpointPath())

    def setCheckpoint(self, path: str) -> None:  # noqa: N802
        """Select ``path`` (remembered as recent when its card reads) and show its card."""
        if path and os.path.exists(path):
            try:
                read_card_safely(path)
                remember_checkpoint(path, last_key=self._last_key)
            except Exception:  # noqa: BLE001 - reported, not raised
                pass
        self.reload(path)
        self.checkpointChanged.emit(self.checkpointPath())

    def checkpointPath(self) -> str:  # noqa: N802
        """The selected checkpoint file."""
        data = self.combo.currentData()
        return "" if data in (None, BROWSE) else str(data)

    # -- card ----------------------------------------------------------------------------------------
    def _load(self, path: str) -> None:
        self._card, self._error = None, None
        if not path:
            self._error = "No checkpoint chosen."
        elif not os.path.exists(path):
            self._error = f"The checkpoint {path} does not exist. Choose another one with …"
        else:
            try:
                self._card = read_card_safely(path)
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                self._error = str(exc)
        self._card_path = path
        self.restyle()

    def restyle(self) -> None:
        """The card and the status lines in the current theme's tones."""
        if not hasattr(self, "_card_path"):  # a change event before the first checkpoint was read
            return
        shown = None
        if self._card:
            try:
                shown = card_html(self._card, self._card_path, self)
            except Exception as exc:  # noqa: BLE001 - a card the schema let through but this view cannot draw
                self._card, self._error = None, f"This checkpoint's card cannot be shown ({exc}); choose another one."
        self.card_view.setHtml(shown or f"<p style='color:{tones(self)['error']}'>{html.escape(self._error or '')}</p>")
        self._show_status()

    def card(self) -> Optional[Dict[str, Any]]:
        """The model card of the selected checkpoint, or None when it cannot be read."""
        return self._card

    def error(self) -> Optional[str]:
        """Why the selected checkpoint cannot be used (None when it can)."""
        return self._error

    def checkLayers(self, optical_count: Optional[int], sar_count: Optional[int],  # noqa: N802
                    optical_bands: Optional[List[int]] = None,
                    sar_bands: Optional[List[int]] = None) -> List[str]:
        """Compare the layers' band counts with the card; show and return the warnings."""
        self._warnings = band_fit_warnings(self._card, optical_count, sar_count, optical_bands,
                                           sar_bands) if self._card else []
        self._notes = []
        self._layers_checked = optical_count is not None and sar_count is not None
        self._show_status()
        return list(self._warnings)

    def addWarnings(self, warnings: List[str], notes: Sequence[str] = ()) -> List[str]:  # noqa: N802
        """Show `warnings` (about the chosen layers, from the dock) with the band-fit ones, and `notes` (how
        the layers will be read; no action needed) below them; return all the warnings."""
        self._warnings += list(warnings)
        self._notes = list(notes)
        self._show_status()
        return list(self._warnings)

    def warnings(self) -> List[str]:
        """The band-fit warnings shown now."""
        return list(self._warnings)

    def notes(self) -> List[str]:
        """The informational lines about the chosen layers shown now."""
        return list(self._notes)

    def _show_status(self) -> None:
        lines, t = [], tones(self)
        if self._error:
            lines = [f"<span style='color:{t['error']}'>⚠ {html.escape(breakable(self._error))}</span>"]
        elif self._warnings:
            lines = [f"<span style='color:{t['warning']}'>⚠ {html.escape(w)}</span>" for w in self._warnings]
        elif self._card:
            n = len(self._card.get("classes") or [])
            fit = "; the layers fit its bands" if self._layers_checked else ""
            lines = [f"<span style='color:{t['ok']}'>✓ {html.escape(str(self._card.get('arch')))}"
                     f" checkpoint, {n} classes{fit}.</span>"]
        if lines and not self._error:
            lines += [f"<span style='color:{t['info']}'>ℹ {html.escape(note)}</span>" for note in self._notes]
        gone = getattr(self, "_gone", "")
        if gone and os.path.abspath(self.checkpointPath()) == os.path.abspath(bundled_checkpoint()):
            lines.insert(0, f"<span style='color:{t['warning']}'>⚠ {html.escape(breakable(gone_text(gone)))}</span>")
        self.status.setText("<br>".join(lines))
        self.status.setVisible(bool(self.status.text()))


class CheckpointDialog(QDialog):
    """A dialog around the picker, showing the model card large (menu action "Model card…")."""

    def __init__(self, parent: Optional[QWidget] = None, path: Optional[str] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("CLAIRE checkpoint and model card")
        self.picker = CheckpointPicker(self)
        if path:
            self.picker.setCheckpoint(path)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.use_button = buttons.addButton("Use in the CLAIRE panel", QDialogButtonBox.ButtonRole.AcceptRole)
        self.use_button.setToolTip("Make this the checkpoint of the panel's Run tab (opens the panel).")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.picker, 1)
        lay.addWidget(buttons)
        fit_on_screen(self, 520, 640)
