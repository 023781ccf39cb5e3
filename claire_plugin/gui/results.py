"""Results view of the dock: headline metrics, per-class table, bar chart and the explanation."""
from __future__ import annotations

import html
import os
import re
from typing import Any, Dict, List, Optional

from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QIcon, QPixmap
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.explain import Explanation
from ..core.numbers import grouped
from .chart import ClassBarChart, bars_from_summary
from .tones import Restyled, tones
from .widgets import AutoHeightBrowser, breakable, file_url

BASE_COLUMNS = ["Class", "ha", "Share", "Conf."]
METRIC_COLUMNS = ["IoU", "Prec.", "Recall", "F1"]
#: Header tooltips of the short column names (the dock is ~300 px wide).
COLUMN_TIPS = {"ha": "Area in hectares", "Share": "Share of the classified area",
               "Conf.": "Mean confidence (top-class probability)", "Prec.": "Precision (user's accuracy)",
               "Recall": "Recall (producer's accuracy)", "IoU": "Intersection over union", "F1": "F1 score"}


def replaced_html(names: List[str]) -> str:
    """A line under the status for the layers a run replaced (they showed the files it has just rewritten)."""
    if not names:
        return ""
    shown = ", ".join(f"'{html.escape(breakable(n))}'" for n in names[:3]) + (", …" if len(names) > 3 else "")
    return (f"<br><i>Removed {len(names)} older layer(s) that showed these files ({shown}): the new map's layers "
            f"replace them.</i>")


def done_html(output: str, widget=None, preview: bool = False) -> str:
    """Status of a finished run: the output's full path, a link to its folder, and whether it is temporary (a
    preview always is: it never writes to the Output)."""
    from ..layers.layers import in_temporary_folder

    folder = os.path.dirname(os.path.abspath(output))
    note = (" <i>A preview's temporary file: deleted when QGIS closes; for a map that stays, choose an Output and "
            "press Classify.</i>" if preview else
            " <i>Temporary file: deleted when QGIS closes; save it with Export or choose an Output.</i>"
            if in_temporary_folder(output) else "")
    t = tones(widget)  # the widget's palette: a theme switched while QGIS runs reaches it, not always the app's
    return (f"Done: {html.escape(breakable(os.path.basename(output)))}<br><span style='color:{t['muted']}'>"
            f"{html.escape(breakable(output))}</span> · <a style='color:{t['info']}' href=\"{file_url(folder)}\">open "
            f"folder</a>{note}")


def result_title(optical: str, checkpoint: Optional[str] = None) -> str:
    """The name of a run's layers and results: the optical file's stem, and the checkpoint's when it is not the
    bundled one (a map of your own model beside the default's: two layers of one name told nothing apart)."""
    from .picker import bundled_checkpoint

    title = os.path.splitext(os.path.basename(optical))[0]
    if checkpoint and os.path.abspath(checkpoint) != os.path.abspath(bundled_checkpoint()):
        title += f" · {os.path.splitext(os.path.basename(checkpoint))[0]}"
    return title


def _swatch(color: str, size: int = 12) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(color) if QColor.isValidColor(color) else QColor("#808080"))
    return QIcon(pix)


def _pct(value: Any, unit: bool = True) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}" + (" %" if unit else "")


EMPTY_HEADLINE = "Run a classification to see per-class results here."


def class_rows(summary: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Rows of the per-class table: the summary's classes joined with the metrics' per-class rows."""
    metrics = summary.get("metrics") or {}
    per_class = {m.get("name"): m for m in (metrics.get("per_class") or [])}
    rows = []
    for cls in summary.get("classes", []):
        m = per_class.get(cls.get("name"), {})
        rows.append({
            "name": cls.get("name"), "color": cls.get("color") or "#808080", "value": cls.get("value"),
            "area_ha": cls.get("area_ha"), "share": cls.get("share"),
            "mean_confidence": cls.get("mean_confidence"),
            "iou": m.get("iou"), "precision": m.get("precision"), "recall": m.get("recall"), "f1": m.get("f1"),
        })
    return rows


class MetricTile(Restyled, QFrame):
    """A small framed box with a big number and a caption (OA, mIoU, kappa, …)."""

    def __init__(self, caption: str, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.value = QLabel("–", self)
        font = self.value.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.value.setFont(font)
        self._size = font.pointSizeF()
        self.value.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.value.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # shrinks with a narrow dock
        self.value.setMinimumWidth(40)
        self.caption = QLabel(caption, self)
        self.caption.setWordWrap(True)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.restyle()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.setSpacing(0)
        lay.addWidget(self.value)
        lay.addWidget(self.caption)

    def restyle(self) -> None:
        if hasattr(self, "caption"):
            self.caption.setStyleSheet(f"color:{tones(self)['muted']};")

    def setValue(self, text: str) -> None:  # noqa: N802
        """Show ``text`` as the tile's number."""
        self.value.setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        """The number in a smaller font where the tile is narrower than it (a narrow dock, a large scale): a
        centred number wider than its tile loses its first digit on the left."""
        from qgis.PyQt.QtGui import QFontMetricsF

        font = self.value.font()
        font.setPointSizeF(self._size)
        room = max(1, self.value.width() - 4)
        wide = QFontMetricsF(font).horizontalAdvance(self.value.text())
        if wide > room:
            font.setPointSizeF(max(6.0, self._size * room / wide))
        if font.pointSizeF() != self.value.font().pointSizeF():
            self.value.setFont(font)


def trust_html(summary: Dict[str, Any], card: Optional[Dict[str, Any]] = None) -> str:
    """The scene's trust line: where the model should not be trusted (unlike its training data, with a link
    to the Train tab), or that the model's `card` cannot tell (no familiarity statistics, and why), what was
    under cloud and what came from SAR alone; empty when there is nothing to say."""
    from ..core.explain.facts import pct, smaller_than_calibration, trained_on_labels  # pct: rounded as shown
    from ..core.explain.template import MOSTLY_PCT, UNFAMILIAR_WARN_PCT
    from ..core.training.labels import units_of

    parts = []
    unfamiliar = summary.get("unfamiliar_share")
    if unfamiliar is None and card is not None and not card.get("familiarity"):
        note = (card.get("training") or {}).get("familiarity")  # why a trained card has none
        many = units_of(((card.get("training") or {}).get("labels"))).many
        more = (f"A larger scene around the {many}, or {many} spread wider, gives it that check"
                if trained_on_labels(card) else "Training on more or larger images gives it that check")
        why = (f"{str(note).removeprefix('not measured: ')}. {more}" if note else
               "its card has no familiarity statistics")
        parts.append(f"This model cannot tell where the scene is unlike its training data: {html.escape(why)}.")
    gaps = summary.get("sar_only_share") or 0.0  # the optical's gaps in the map (none where neither has data)
    if unfamiliar is not None and pct(unfamiliar) >= UNFAMILIAR_WARN_PCT:
        cloud = summary.get("cloud_share") or 0.0
        causes = [f"the optical's gaps, {_pct(gaps)} of it," if pct(gaps) >= UNFAMILIAR_WARN_PCT else "",
                  f"the cloud, {_pct(cloud)} of it," if pct(cloud) >= UNFAMILIAR_WARN_PCT else ""]
        by_gaps = f" ({' and '.join(c for c in causes if c)} may add to this)" if any(causes) else ""
        if summary.get("optical_offset_suspected") and pct(cloud) >= MOSTLY_PCT:  # thick cloud: bright too
            advice = ("The optical is bright everywhere, as under thick cloud or in Sentinel-2 whose +1000 "
                      "reflectance offset was not removed: if the scene is not this cloudy, classify again with the "
                      "offset removed (the run's details say how).")
        elif summary.get("optical_offset_suspected"):  # as the explanation says it: the likelier causes first
            advice = ("First, though, the optical looks like Sentinel-2 whose +1000 reflectance offset was not "
                      "removed (the run's details say how): classify again with the offset removed.")
        elif smaller_than_calibration(summary.get("region_shape")):
            advice = ("The scene is smaller than those the score was calibrated on, which overstates it: classify "
                      "a larger extent around your area to check.")
        elif trained_on_labels(card):
            many = units_of(((card.get("training") or {}).get("labels"))).many
            advice = (f"It was trained on your {many}: <a href='train'>add {many} there</a> (the unfamiliar "
                      f"layer shows where) and train again.")
        elif pct(cloud) + pct(gaps) >= MOSTLY_PCT:
            advice = ("If a clear scene of the same place shows as much, <a href='train'>train it on your "
                      "area</a>.")
        else:
            advice = "<a href='train'>Train it on your area</a> with a few polygons per class."
        parts.append(f"<b>Do not trust the map on {_pct(unfamiliar)} of its area</b>: there it is unlike the "
                     f"data the model was trained on{by_gaps}. {advice}")
    elif unfamiliar is not None:
        parts.append(f"The scene resembles the model's training data ({_pct(unfamiliar)} unlike it).")
    cloud, sar_only = summary.get("cloud_share"), summary.get("sar_only_share")
    if _shown(cloud):
        parts.append(f"{_pct(cloud)} under cloud, haze or cloud shadow{_lean(summary)}.")
    if _shown(sar_only):
        parts.append(f"{_pct(sar_only)} from SAR alone (no optical data).")
    snow = summary.get("snow_ruled_out_share")
    clouded = min(summary.get("snow_ruled_out_clouded_share") or 0.0, snow or 0.0)
    if _shown((snow or 0.0) - clouded):
        parts.append(f"{_pct(snow - clouded)} called snow or ice by the model where the optical shows no snow: mapped "
                     f"as the next most likely class.")
    if _shown(clouded):
        parts.append(f"{_pct(clouded)} called snow or ice under cloud, where the optical sees little or no ground, "
                     f"the radar cannot tell snow and the clear ground around shows none: mapped as the next most "
                     f"likely class.")
    return "<br>".join(parts)


def _shown(share: Optional[float]) -> bool:
    """Whether a share is worth a line: it is there and does not read 0.0 %."""
    return share is not None and round(100 * float(share), 1) > 0


def _lean(summary: Dict[str, Any]) -> str:
    """How the fusion leaned on SAR on the clouded pixels, measured as the report says it (explain.template)."""
    from ..core.explain.template import no_lean, sar_lean

    on_cloud, on_clear = summary.get("mean_sar_share_clouded"), summary.get("mean_sar_share_clear")
    if on_cloud is None or on_clear is None:
        return ""
    word = sar_lean(100 * on_cloud, 100 * on_clear)
    if not word:
        return (f": the fusion {no_lean(100 * on_cloud, 100 * on_clear)} on SAR there ({_pct(on_cloud)} SAR "
                f"weight, {_pct(on_clear)} on clear)")
    return f": the fusion leaned {word} on SAR there ({_pct(on_cloud)} SAR weight, {_pct(on_clear)} on clear)"


class ResultsView(Restyled, QWidget):
    """Everything the dock shows after a run."""

    #: The user followed the "train it on your area" link.
    trainRequested = pyqtSignal()  # noqa: N815

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.summary: Dict[str, Any] = {}
        self.headline = QLabel(EMPTY_HEADLINE, self)
        self.headline.setWordWrap(True)
        self.trust = QLabel("", self)
        self.trust.setWordWrap(True)
        self.trust.setTextFormat(Qt.TextFormat.RichText)
        self.trust.linkActivated.connect(lambda _link: self.trainRequested.emit())
        self.trust.setVisible(False)
        tiles = self._build_tiles()

        self.table = self._make_table()
        self.accuracy_label = QLabel("<b>Accuracy against the reference</b> (%)", self)
        self.accuracy_label.setWordWrap(True)
        self.accuracy_table = self._make_table()
        self.chart_metric = QComboBox(self)
        self.chart_metric.addItem("Share of the area", "share")
        self.chart_metric.addItem("IoU against the reference", "iou")
        self.chart_metric.currentIndexChanged.connect(self._update_chart)
        self.chart_metric.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.chart_metric.setMinimumContentsLength(8)
        self.chart = ClassBarChart(self)
        chart_row = QHBoxLayout()
        chart_row.addWidget(QLabel("Chart:", self))
        chart_row.addWidget(self.chart_metric, 1)

        self.generator = QLabel("", self)
        self.generator.setWordWrap(True)
        self.explanation = AutoHeightBrowser(self)  # as tall as its text: the tab scrolls, not a box inside it
        self.explanation.setPlaceholderText("The explanation appears here after a run.")
        self._streamed = ""
        expl_box = QGroupBox("Explanation", self)
        el = QVBoxLayout(expl_box)
        el.addWidget(self.generator)
        el.addWidget(self.explanation, 1)

        self.messages_box = QGroupBox("Run details", self)
        self.messages = QLabel("", self.messages_box)
        self.messages.setWordWrap(True)
        self._messages: List[str] = []
        self._trust_warn = False
        self.restyle()
        self.messages.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(8)
        lay.addWidget(self.headline)
        lay.addWidget(self.trust)
        lay.addLayout(tiles)
        classes_label = QLabel("<b>Classes in the map</b>", self)
        classes_label.setWordWrap(True)
        lay.addWidget(classes_label)
        lay.addWidget(self.table)
        lay.addWidget(self.accuracy_label)
        lay.addWidget(self.accuracy_table)
        lay.addLayout(chart_row)
        lay.addWidget(self.chart)
        lay.addWidget(expl_box, 1)
        ml = QVBoxLayout(self.messages_box)
        ml.addWidget(self.messages)
        lay.addWidget(self.messages_box)

    def _build_tiles(self) -> QGridLayout:
        """Area and confidence on one row, OA / mIoU / kappa on the next; they shrink with the dock."""
        self.tiles = {key: MetricTile(caption, self) for key, caption in (
            ("area", "classified area"), ("confidence", "mean confidence"), ("oa", "overall accuracy"),
            ("miou", "mean IoU"), ("kappa", "Cohen's kappa"))}
        tiles = QGridLayout()
        tiles.setSpacing(4)
        tiles.addWidget(self.tiles["area"], 0, 0, 1, 3)
        tiles.addWidget(self.tiles["confidence"], 0, 3, 1, 3)
        for i, key in enumerate(("oa", "miou", "kappa")):
            tiles.addWidget(self.tiles[key], 1, 2 * i, 1, 2)
        for col in range(6):
            tiles.setColumnStretch(col, 1)
        return tiles

    # -- summary -------------------------------------------------------------------------------------
    def restyle(self) -> None:
        """The muted labels, the trust box and the run's messages in the current theme's tones."""
        if not hasattr(self, "_messages"):  # a change event while __init__ runs
            return
        t = tones(self)
        for label in (self.generator, self.messages):
            label.setStyleSheet(f"color:{t['muted']};")
        self.trust.setStyleSheet(f"background:{t['warn_bg']}; color:{t['text']}; border:1px solid {t['warn_border']}; "
                                 "padding:4px;" if self._trust_warn else f"color:{t['muted']};")
        self.messages.setText("<br>".join(  # paths wrap; a warning stands out from the notes
            (f"<b style='color:{t['warning']}'>{html.escape(breakable(m))}</b>" if m.startswith("warning:")
             else html.escape(breakable(m))) for m in self._messages))

    def showSummary(self, summary: Dict[str, Any], title: str = "", messages: Optional[List[str]] = None,  # noqa: N802
                    card: Optional[Dict[str, Any]] = None) -> None:
        """Fill tiles, table and chart from an engine summary (`card`: the model's, for the trust line)."""
        self.summary = summary or {}
        metrics = self.summary.get("metrics") or {}
        rows = class_rows(self.summary)
        total_ha = sum(float(r["area_ha"] or 0) for r in rows)
        self.headline.setText(f"<b>{html.escape(breakable(title))}</b>" if title else "")  # long stems wrap
        self.headline.setVisible(bool(title))
        trust = trust_html(self.summary, card)
        warn = "Do not trust" in trust
        self.trust.setText(trust)
        self._trust_warn = warn
        self.trust.setVisible(bool(trust))
        self.tiles["area"].setValue(f"{grouped(total_ha, 1)} ha")
        self.tiles["confidence"].setValue(_pct(self.summary.get("mean_confidence")))
        self.tiles["oa"].setValue(_pct(metrics.get("oa")) if metrics else "–")
        self.tiles["miou"].setValue(_pct(metrics.get("miou")) if metrics else "–")
        self.tiles["kappa"].setValue(f"{metrics['kappa']:.2f}" if metrics.get("kappa") is not None else "–")
        for key in ("oa", "miou", "kappa"):
            self.tiles[key].setToolTip("" if metrics else "Give a reference raster to measure accuracy.")
            self.tiles[key].setEnabled(bool(metrics))

        self._fill(self.table, BASE_COLUMNS, rows, lambda row: [
            grouped(float(row['area_ha'] or 0), 1), _pct(row["share"]), _pct(row["mean_confidence"])])
        self._fill(self.accuracy_table, ["Class"] + METRIC_COLUMNS, rows,
                   lambda row: [_pct(row[k], unit=False) for k in ("iou", "precision", "recall", "f1")])
        self.accuracy_table.setVisible(bool(metrics))
        left = metrics.get("reference_left_out") or {}
        note = (f"<br><span style='color:{tones(self)['warning']}'>{html.escape(grouped(left['pixels']))} "
                f"reference pixels "
                f"({_pct(left['share'])}) hold codes that are no class of this map "
                f"({html.escape(', '.join(list(left['codes'])[:8]))}) and were left out of these figures.</span>"
                if left.get("pixels") else "")
        self.accuracy_label.setText(f"<b>Accuracy against the reference</b> (%){note}")
        self.accuracy_label.setVisible(bool(metrics))
        self.chart_metric.setEnabled(bool(metrics))
        self.chart_metric.setToolTip("" if metrics else "Give a reference raster to chart accuracy per class.")
        if not metrics:
            self.chart_metric.setCurrentIndex(0)
        self._update_chart()
        self._messages = list(messages or [])
        self.restyle()
        self.messages_box.setVisible(bool(messages))

    def clearResults(self) -> None:  # noqa: N802
        """Back to the empty view (another project: the last one's results no longer belong to anything shown)."""
        self.showSummary({})
        for tile in self.tiles.values():  # "0.0 ha" of nothing read as a result
            tile.setValue("–")
        self.headline.setText(EMPTY_HEADLINE)
        self.headline.setVisible(True)
        self.explanation.clear()
        self.generator.setText("")

    def _make_table(self) -> QTableWidget:
        table = QTableWidget(0, 1, self)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.verticalHeader().setVisible(False)
        table.setAlternatingRowColors(True)
        table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        table.setWordWrap(False)
        table.setTabKeyNavigation(False)  # Tab moves on to the next control instead of walking the cells for ever
        return table

    @staticmethod
    def _fill(table: QTableWidget, columns: List[str], rows: List[Dict[str, Any]], values) -> None:
        """Fill one table: a class column with colour swatches, then right-aligned numbers."""
        table.clear()
        table.setColumnCount(len(columns))
        table.setHorizontalHeaderLabels(columns)
        for c, name in enumerate(columns):
            table.horizontalHeaderItem(c).setToolTip(COLUMN_TIPS.get(name, name))
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            name = QTableWidgetItem(_swatch(row["color"]), str(row["name"]))
            name.setToolTip(html.escape(f"{row['name']} (value {row['value']})"))  # tooltips read markup
            table.setItem(r, 0, name)
            for c, text in enumerate(values(row), start=1):
                item = QTableWidgetItem(text)
                item.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))
                table.setItem(r, c, item)
        table.resizeRowsToContents()
        header = table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, len(columns)):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        height = header.sizeHint().height() + 2 * table.frameWidth()
        height += sum(table.rowHeight(r) for r in range(len(rows)))
        table.setFixedHeight(height + 2)
        # as narrow as its numbers and the class swatch allow: narrower, the tab scrolls sideways
        numbers = sum(max(table.sizeHintForColumn(c), header.sectionSizeHint(c)) for c in range(1, len(columns)))
        swatch = table.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        name = table.fontMetrics().horizontalAdvance("w…") + swatch + 8
        table.setMinimumWidth(numbers + name + 2 * table.frameWidth())

    def _update_chart(self) -> None:
        metric = self.chart_metric.currentData() or "share"
        title = "Share of the classified area" if metric == "share" else "IoU against the reference"
        self.chart.setBars(bars_from_summary(self.summary, metric), title, maximum=1.0 if metric == "iou" else None)

    # -- explanation ---------------------------------------------------------------------------------
    def startExplanation(self, note: str = "Writing the explanation…") -> None:  # noqa: N802
        """Clear the view before streamed text arrives."""
        self._streamed = ""
        self.explanation.clear()
        self.generator.setText(note)

    def appendExplanation(self, chunk: str) -> None:  # noqa: N802
        """Append streamed text (main thread, from the task's signal)."""
        self._streamed += chunk
        self.explanation.setPlainText(self._streamed)

    def showExplanation(self, expl: Explanation) -> None:  # noqa: N802
        """Show the final text, who wrote it and the flagged (ungrounded) sentences highlighted."""
        body = html.escape(expl.text or self._streamed)
        flagged = sorted({html.escape(s.strip()) for s in expl.flagged_sentences if s.strip()}, key=len, reverse=True)
        if flagged:  # one pass: a sentence repeated (or inside another) is marked once where it stands, never nested
            mark = f"<span style='background:{tones(self)['flag_bg']}' title='Not backed by the facts'>{{}} ⚠</span>"
            body = re.sub("|".join(map(re.escape, flagged)), lambda m: mark.format(m.group(0)), body)
        body = "".join(f"<p>{p}</p>" for p in body.split("\n\n") if p.strip()).replace("\n", "<br>")
        self.explanation.setHtml(body)
        parts = [f"Written by: <b>{html.escape(expl.label)}</b>",
                 f"numbers checked against the facts: {100 * expl.grounded_share:.0f} % grounded"]
        if expl.flagged_sentences:
            parts.append(f"<span style='color:{tones(self)['warning']}'>{len(expl.flagged_sentences)} sentence(s) "
                         f"flagged ⚠ as not "
                         f"backed by the facts</span>")
        if expl.fallback_reason:
            parts.append(html.escape(expl.fallback_reason))
        self.generator.setText(" · ".join(parts))

    def showExplanationError(self, message: str) -> None:  # noqa: N802
        """Say why no explanation could be written."""
        self.generator.setText(f"<span style='color:{tones(self)['error']}'>No explanation: "
                               f"{html.escape(message)}</span>")
