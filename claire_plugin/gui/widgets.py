"""Small widget helpers that keep the dock readable at the ~300 px QGIS gives a new dock."""
from __future__ import annotations

import html
import os
from typing import Callable, List, Optional, Tuple

from qgis.core import QgsMapLayerProxyModel
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import QEvent, QObject, Qt
from qgis.PyQt.QtGui import QTextOption
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QTextBrowser,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from ..layers.layers import layer_hint
from .tones import Restyled, tones

ZWSP = "\u200b"
QWIDGETSIZE_MAX = (1 << 24) - 1  # Qt's largest widget size


#: Plain tooltips longer than this (characters) are shown wrapped (Qt draws plain text on one line: the SAR gate
#: weight's 160 characters spanned a 1366 px screen).
WRAP_TIP_CHARS = 80


class WrappedTips(QObject):
    """Event filter showing a widget's long plain-text tooltip as wrapped rich text (the tooltip text itself is left
    as it is, so that what the widget says stays one truth)."""

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.ToolTip and isinstance(obj, QWidget):
            text = obj.toolTip()
            if len(text) > WRAP_TIP_CHARS and not Qt.mightBeRichText(text):
                body = html.escape(text).replace("\n", "<br>")
                QToolTip.showText(event.globalPos(), f"<p>{body}</p>", obj)
                return True
        return False


def wrap_tooltips(root: QWidget, tips: Optional[WrappedTips] = None) -> WrappedTips:
    """Install one WrappedTips on `root` and every widget below it; returns the filter (keep a reference)."""
    tips = tips or WrappedTips(root)
    for widget in [root] + root.findChildren(QWidget):
        widget.installEventFilter(tips)
    return tips


def file_url(path: str) -> str:
    """A file:// URL of `path` that survives an HTML attribute in a Qt rich text: every character a path may hold
    that means something in a URL or in HTML (#, %, &, ', ", spaces, non-ASCII) percent-encoded, since Qt does not
    decode entities in an href (a folder "Tom & Jerry" opened "Tom &amp; Jerry", "l'été" opened "l")."""
    from qgis.PyQt.QtCore import QUrl

    url = QUrl.fromLocalFile(os.path.abspath(path)).toString(QUrl.ComponentFormattingOption.FullyEncoded)
    return url.replace("&", "%26").replace("'", "%27").replace('"', "%22").replace("<", "%3C").replace(">", "%3E")


def breakable(path: str) -> str:
    """`path` with zero-width spaces after separators, so a word-wrapped QLabel can break a long path
    instead of widening the dock to its length (text browsers use WrapAtWordBoundaryOrAnywhere instead)."""
    for sep in ("/", "\\", "_", "."):
        path = path.replace(sep, sep + ZWSP)
    return path


def breakable_text(text: str, longest: int = 24) -> str:
    """`text` with every word longer than `longest` characters made breakable (after separators as `breakable`,
    then every `longest` characters): a layer or file name in a status line widened the dock's tab past its
    width, cutting its left edge off."""
    import re

    def fix(match) -> str:
        pieces = breakable(match.group(0)).split(ZWSP)
        return ZWSP.join(ZWSP.join(p[i:i + longest] for i in range(0, len(p), longest)) or p for p in pieces)

    return re.sub(r"[^\s\u200b]{%d,}" % (longest + 1), fix, text)


class _CopyWithoutBreaks(QObject):
    """Ctrl+C and the context menu's Copy of a selectable label, without the zero-width spaces breakable_text put
    in its long names (a copied path did not exist; a copied command did not run)."""

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        from qgis.PyQt.QtGui import QKeySequence
        from qgis.PyQt.QtWidgets import QApplication, QMenu

        if event.type() == QEvent.Type.KeyPress and event.matches(QKeySequence.StandardKey.Copy) \
                and obj.hasSelectedText():
            QApplication.clipboard().setText(obj.selectedText().replace(ZWSP, ""))
            return True
        if event.type() == QEvent.Type.ContextMenu:
            from qgis.PyQt.QtGui import QTextDocument

            doc = QTextDocument()
            doc.setHtml(obj.text())
            menu = QMenu(obj)
            part = menu.addAction("Copy")
            part.setEnabled(obj.hasSelectedText())
            part.triggered.connect(lambda: QApplication.clipboard().setText(obj.selectedText().replace(ZWSP, "")))
            whole = menu.addAction("Copy all")
            whole.triggered.connect(lambda: QApplication.clipboard().setText(doc.toPlainText().replace(ZWSP, "")))
            menu.exec(event.globalPos())
            return True
        return False


def copy_without_breaks(label: QLabel) -> QLabel:
    """`label`'s copies leave out the zero-width spaces of breakable_text / breakable; returns the label."""
    keeper = _CopyWithoutBreaks(label)  # parented: lives as long as the label
    label.installEventFilter(keeper)
    return label


class WrapLabel(QLabel):
    """A word-wrapped label that keeps the height its text needs at its width: in a form row spanning both
    columns Qt sized it for one line less at the dock's width, cutting the last words."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)

    def _fit(self) -> None:
        if not self.isVisible():  # its width is not the laid-out one yet
            return
        # the text's own height, not the one set before: QLabel answers heightForWidth within its size limits
        low, high = self.minimumHeight(), self.maximumHeight()
        self.setMinimumHeight(0)
        self.setMaximumHeight(QWIDGETSIZE_MAX)
        need = self.heightForWidth(self.width())
        # both ways: with only a minimum, a short message after a longer one kept the longer one's height
        # (a blank gap under the wand's status in QGIS 3.40)
        if need > 0:
            self.setFixedHeight(need)
        else:
            self.setMinimumHeight(low)
            self.setMaximumHeight(high)

    def setText(self, text: str) -> None:  # noqa: N802
        super().setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit()


class AutoHeightBrowser(QTextBrowser):
    """A text browser as tall as its document at the current width: the page scrolls, not the browser."""

    def __init__(self, parent: QWidget = None) -> None:
        super().__init__(parent)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWordWrapMode(QTextOption.WrapMode.WordWrap)  # Qt's default breaks inside words when a column is narrow
        self.document().contentsChanged.connect(self._fit)

    def _fit(self) -> None:
        doc = self.document()
        doc.setTextWidth(self.viewport().width())
        self.setFixedHeight(int(doc.size().height()) + 2 * self.frameWidth() + 4)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit()


class DecimalSpinBox(QDoubleSpinBox):
    """A QDoubleSpinBox that also takes '.' as the decimal separator where QGIS's locale writes ',': in a German or
    French QGIS, typing 0.15 (as the tooltips and docs write it) gave 1,00, the point read as a group separator."""

    def _as_locale(self, text: str) -> str:
        point = self.locale().decimalPoint()
        return text.replace(".", point) if point != "." else text

    def validate(self, text: str, pos: int):
        return super().validate(self._as_locale(text), pos)

    def valueFromText(self, text: str) -> float:  # noqa: N802
        return super().valueFromText(self._as_locale(text))


def local_number(value: float, decimals: int) -> str:
    """`value` as QGIS's locale writes it (0,15 in a German QGIS), for tooltips beside the fields that show it so."""
    from qgis.PyQt.QtCore import QLocale

    return QLocale().toString(float(value), "f", decimals)


def compact_combo(combo: QComboBox, chars: int = 8) -> QComboBox:
    """A combo that shrinks to the dock's width instead of widening it to its longest item."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)
    return combo


def narrow_form() -> QFormLayout:
    """A form whose labels go above their fields when the dock is too narrow for both on one row."""
    form = QFormLayout()
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    return form


def vertical_scroll(page: QWidget) -> QScrollArea:
    """`page` in a frameless scroll area that scrolls vertically and fits its width to the dock; where the page
    cannot be as narrow as the dock (a large font in QGIS's settings), it scrolls sideways too rather than cut
    off its right side."""
    scroll = QScrollArea()
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    scroll.setWidget(page)
    return scroll


class RasterChooser(Restyled, QWidget):
    """A raster layer combo with a grey line under it naming the file's folder and band count, so layers
    of one site that share a name can be told apart. `combo` is the QgsMapLayerComboBox itself."""

    def __init__(self, parent: QWidget = None, optional: bool = False, help_text: str = "") -> None:
        super().__init__(parent)
        self.help_text = help_text  # the combo's tooltip, after the chosen layer's full name
        self.combo = compact_combo(QgsMapLayerComboBox(self))
        self.combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        if optional:
            self.combo.setAllowEmptyLayer(True)
            self.combo.setLayer(None)
        self.hint = QLabel(self)
        self.hint_text = ""
        self.restyle()
        # the line is elided to the width the dock gives; its full text must not ask for more (a long folder
        # name widened the whole page past the dock, cutting every row)
        self.hint.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(1)
        lay.addWidget(self.combo)
        lay.addWidget(self.hint)
        self.combo.layerChanged.connect(self._show_hint)
        self._show_hint(self.combo.currentLayer())

    def restyle(self) -> None:
        if hasattr(self, "hint"):
            self.hint.setStyleSheet(f"color:{tones(self)['muted']};")

    def _show_hint(self, layer) -> None:
        text = self.hint_text = layer_hint(layer)
        # the name elided to the width laid out (a hidden tab gets its resize before it shows), its band count
        # always whole ("…0 bands" read as none for ten); the tooltip has the path
        where, sep, bands = text.rpartition(" · ") if " · " in text else (text, "", "")
        metrics = self.hint.fontMetrics()
        room = max(40, self.width() - 4 - metrics.horizontalAdvance(sep + bands))
        text = metrics.elidedText(where, Qt.TextElideMode.ElideMiddle, room) + sep + bands
        self.hint.setText(text)
        self.hint.setToolTip(layer.source() if layer is not None else "")
        # the combo cuts long names at the 298 px of a new dock: its tooltip has the whole name
        self.combo.setToolTip("\n\n".join(t for t in (layer.name() if layer is not None else "", self.help_text) if t))
        self.hint.setVisible(bool(text))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._show_hint(self.combo.currentLayer())


def parse_band_list(text: str, name: str = "Bands") -> Optional[List[int]]:
    """The dock's band field read with the one band-list rule (core.params.parse_bands); ValueError with the
    rule's message when it is not a band list."""
    from ..core.errors import ClaireError
    from ..core.params import parse_bands

    try:
        return parse_bands(text, name)
    except ClaireError as exc:
        raise ValueError(str(exc)) from None


def parse_offset(text: str) -> Optional[float]:
    """'-1000' → -1000.0 (a decimal comma, group spaces and a Unicode minus read too); empty → None (the engine
    reads the file); raises ValueError with a readable message."""
    from ..core.numbers import offset_value

    return offset_value(text, "Optical offset")


def roles_by_bands(counts: List[int], sar_n: Optional[int] = None,
                   overlaps: Optional[Callable[[int, int], bool]] = None) -> Optional[Tuple[int, int]]:
    """(optical, SAR) indices into `counts` (the band counts of the rasters on offer): the optical has the most
    bands, the SAR the fewest of those with at least the checkpoint's SAR bands (`sar_n`) where any has, among
    those that overlap the optical where `overlaps(i, j)` tells and any does (a project of two scenes paired one
    scene's optical with the other's SAR); None when the counts cannot tell the two apart (one raster, or every
    raster with as many bands)."""
    if len(counts) < 2:
        return None
    optical = max(range(len(counts)), key=lambda i: (counts[i], -i))
    rest = [i for i in range(len(counts)) if counts[i] < counts[optical]]
    pool = [i for i in rest if sar_n is None or counts[i] >= sar_n] or rest
    if not pool:
        return None
    if overlaps is not None:
        pool = [i for i in pool if overlaps(optical, i)] or pool
    return optical, min(pool, key=lambda i: (counts[i], i))


def layers_overlap(a, b) -> bool:
    """Whether two map layers' extents overlap (b's taken into a's CRS); True where that cannot be told."""
    from qgis.core import QgsCoordinateTransform, QgsProject

    try:
        extent = b.extent()
        if b.crs() != a.crs():
            extent = QgsCoordinateTransform(b.crs(), a.crs(), QgsProject.instance()).transformBoundingBox(extent)
        return a.extent().intersects(extent)
    except Exception:  # noqa: BLE001 - a CRS without a transform: not told apart here (the run's check says it)
        return True


def fit_on_screen(dialog: QWidget, width: int, height: int) -> None:
    """Resize `dialog` to `width` x `height`, or to 90 % of the screen's available area where that is smaller
    (a laptop screen at 200 % scaling is 960 x 540 logical pixels), so that its buttons stay on the screen."""
    from qgis.PyQt.QtGui import QGuiApplication

    screen = dialog.screen() if hasattr(dialog, "screen") else None
    screen = screen or QGuiApplication.primaryScreen()
    if screen is not None:
        area = screen.availableGeometry()
        width, height = min(width, int(area.width() * 0.9)), min(height, int(area.height() * 0.9))
    dialog.resize(width, height)
