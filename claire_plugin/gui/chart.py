"""A small horizontal bar chart painted with QPainter (QtCharts is not part of every QGIS)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

from qgis.PyQt.QtCore import QRectF, QSize, Qt
from qgis.PyQt.QtGui import QColor, QFontMetrics, QPainter, QPen
from qgis.PyQt.QtWidgets import QSizePolicy, QWidget

ALIGN_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
ALIGN_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


@dataclass
class Bar:
    """One row of the chart: a label, a colour, a value in [0, maximum] and the text shown after it."""

    label: str
    color: str
    value: float
    text: str


class ClassBarChart(QWidget):
    """Horizontal bars, one per class, in the class colour, with the label left and the value right."""

    ROW_HEIGHT = 22
    GAP = 6

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._bars: List[Bar] = []
        self._title = ""
        self._maximum = 1.0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(180)

    def setBars(self, bars: Sequence[Bar], title: str = "", maximum: Optional[float] = None) -> None:  # noqa: N802
        """Show ``bars``; the bar length is value / maximum (default: the largest value)."""
        self._bars = list(bars)
        self._title = title
        largest = max((b.value for b in self._bars), default=0.0)
        self._maximum = float(maximum if maximum is not None else largest) or 1.0
        self.setFixedHeight(self.sizeHint().height())
        self.update()

    def bars(self) -> List[Bar]:
        """The bars currently shown."""
        return list(self._bars)

    def _title_height(self) -> int:
        return QFontMetrics(self.font()).height() + 8 if self._title else 0

    def sizeHint(self) -> QSize:  # noqa: N802
        rows = max(1, len(self._bars))
        return QSize(360, self._title_height() + rows * (self.ROW_HEIGHT + self.GAP) + self.GAP)

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        fm = QFontMetrics(self.font())
        rect = self.rect()
        painter.fillRect(rect, self.palette().base())
        y = 4
        text_color = self.palette().text().color()
        if self._title:
            bold = painter.font()
            bold.setBold(True)
            painter.setFont(bold)
            painter.setPen(text_color)
            painter.drawText(QRectF(8, y, rect.width() - 16, fm.height()), ALIGN_LEFT, self._title)
            painter.setFont(self.font())
            y = self._title_height()
        if not self._bars:
            painter.setPen(QColor("#808080"))
            painter.drawText(QRectF(rect), Qt.AlignmentFlag.AlignCenter, "No classes to show yet.")
            return
        label_w = min(max(fm.horizontalAdvance(b.label) for b in self._bars) + 14, int(rect.width() * 0.4))
        value_w = max(fm.horizontalAdvance(b.text) for b in self._bars) + 12
        bar_x = 8 + label_w
        bar_w_max = max(10, rect.width() - bar_x - value_w - 8)
        for bar in self._bars:
            row = QRectF(8, y + self.GAP, rect.width() - 16, self.ROW_HEIGHT)
            painter.setPen(text_color)
            label = fm.elidedText(bar.label, Qt.TextElideMode.ElideRight, label_w - 8)
            painter.drawText(QRectF(row.left(), row.top(), label_w - 8, row.height()),
                             ALIGN_RIGHT, label)
            fraction = max(0.0, min(1.0, bar.value / self._maximum))
            width = max(2.0, bar_w_max * fraction) if bar.value > 0 else 0.0
            color = QColor(bar.color) if QColor.isValidColor(bar.color) else QColor("#808080")
            painter.setPen(QPen(color.darker(130), 1))
            painter.setBrush(color)
            painter.drawRoundedRect(QRectF(bar_x, row.top() + 3, width, row.height() - 6), 2, 2)
            painter.setPen(text_color)
            painter.drawText(QRectF(bar_x + width + 6, row.top(), value_w, row.height()),
                             ALIGN_LEFT, bar.text)
            y += self.ROW_HEIGHT + self.GAP
        painter.end()


def bars_from_summary(summary: dict, metric: str = "share") -> List[Bar]:
    """Bars of an engine summary's classes, largest first, for ``metric`` in {share, iou}."""
    bars: List[Bar] = []
    per_class = {}
    metrics = summary.get("metrics") or {}
    for row in metrics.get("per_class", []) or []:
        per_class[row.get("name")] = row
    for cls in summary.get("classes", []):
        if metric == "iou":
            m = per_class.get(cls.get("name"))
            if not m or m.get("iou") is None:
                continue
            value = float(m["iou"])
        else:
            value = float(cls.get("share") or 0.0)
        bars.append(Bar(str(cls.get("name")), str(cls.get("color") or "#808080"), value, f"{100 * value:.1f} %"))
    bars.sort(key=lambda b: b.value, reverse=True)
    return bars
