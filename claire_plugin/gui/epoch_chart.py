"""A small line chart of a training run: loss and held-out macro-F1 per epoch (QPainter, no QtCharts)."""
from __future__ import annotations

from typing import List, Optional, Tuple

from qgis.PyQt.QtCore import QPointF, QRectF, QSize, Qt
from qgis.PyQt.QtGui import QColor, QFontMetrics, QPainter, QPen
from qgis.PyQt.QtWidgets import QSizePolicy, QWidget

from .tones import tones

#: The legend of the score's curve.
SCORE_LABEL = "held-out macro-F1"


class EpochChart(QWidget):
    """Loss (left scale, from 0 to its maximum) and held-out macro-F1 (right scale, 0..1) against epochs."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._loss: List[float] = []
        self._score: List[Optional[float]] = []
        self._epochs = 0
        self.score_label = SCORE_LABEL
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(200)
        self.setFixedHeight(max(150, 9 * QFontMetrics(self.font()).height()))  # a larger font gets a taller chart

    def clear(self, epochs: int = 0) -> None:
        """Forget the points; `epochs` sets the x axis until the run says otherwise."""
        self._loss, self._score, self._epochs = [], [], epochs
        self.score_label = SCORE_LABEL
        self.setToolTip("")
        self.update()

    def sampled(self, windows: int, of: int) -> None:
        """Say that the run's per-epoch score is measured on `windows` of its `of` held-out windows."""
        self.score_label = "macro-F1 (sample)"  # as short as SCORE_LABEL: the legend fits the same width
        self.setToolTip(f"The held-out macro-F1 after each epoch is measured on {windows} of the {of} held-out "
                        f"windows, every class among them; the report scores all of them.")
        self.update()

    def addEpoch(self, loss: float, score: Optional[float], epochs: int) -> None:  # noqa: N802
        """Append one epoch's loss and held-out score (None: not measured)."""
        self._loss.append(float(loss))
        self._score.append(None if score is None else float(score))
        self._epochs = max(epochs, len(self._loss))
        self.update()

    def points(self) -> Tuple[List[float], List[Optional[float]]]:
        """The loss and score points shown now."""
        return list(self._loss), list(self._score)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(280, self.height())

    def _legend(self, painter: QPainter, fm: QFontMetrics, y: float) -> None:
        x = 8.0
        t = tones(self)  # lines that stay visible on a dark theme's base too
        for color, text in ((t["loss"], "loss"), (t["score"], self.score_label)):
            painter.setPen(QPen(QColor(color), 2))
            painter.drawLine(QPointF(x, y), QPointF(x + 14, y))
            painter.setPen(self.palette().text().color())
            painter.drawText(QPointF(x + 18, y + fm.ascent() / 2 - 1), text)
            x += 30 + fm.horizontalAdvance(text)

    def plot_area(self) -> Tuple[QRectF, str]:
        """(the plot's rectangle, the loss axis's top label): the axes' numbers take the room the font needs, and
        stay clear of the first and last epoch's dots."""
        fm = QFontMetrics(self.font())
        top = max(self._loss) if self._loss else 1.0
        label = f"{top or 1.0:.2g}"
        left_w, right_w = fm.horizontalAdvance(label) + 10, fm.horizontalAdvance("1") + 12
        return QRectF(left_w, fm.height() + 12, self.width() - left_w - right_w,
                      self.height() - fm.height() * 2 - 20), label

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        fm = QFontMetrics(self.font())
        painter.fillRect(self.rect(), self.palette().base())
        self._legend(painter, fm, fm.height() / 2 + 4)
        plot, label = self.plot_area()
        left_w, right_w = plot.left(), self.width() - plot.right()
        top = max(self._loss) if self._loss else 1.0
        painter.setPen(QPen(QColor("#9e9e9e"), 1))
        painter.drawRect(plot)
        if not self._loss:
            painter.drawText(plot, Qt.AlignmentFlag.AlignCenter, "Epochs appear here.")
            return
        top = top or 1.0
        n = max(self._epochs, 2)
        text = self.palette().text().color()
        painter.setPen(text)
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        left = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        h = fm.height()
        painter.drawText(QRectF(0, plot.top() - h / 2, left_w - 6, h), right, label)
        painter.drawText(QRectF(0, plot.bottom() - h / 2, left_w - 6, h), right, "0")
        painter.drawText(QRectF(plot.right() + 6, plot.top() - h / 2, right_w, h), left, "1")
        painter.drawText(QRectF(plot.right() + 6, plot.bottom() - h / 2, right_w, h), left, "0")
        painter.drawText(QRectF(plot.left(), plot.bottom() + 2, plot.width(), fm.height()),
                         Qt.AlignmentFlag.AlignCenter,
                         f"epoch {len(self._loss)} of {self._epochs}")

        def at(i: int, value: float, scale: float) -> QPointF:
            return QPointF(plot.left() + plot.width() * i / (n - 1), plot.bottom() - plot.height() * value / scale)

        t = tones(self)
        for values, color, scale in ((self._loss, t["loss"], top), (self._score, t["score"], 1.0)):
            pts = [at(i, v, scale) for i, v in enumerate(values) if v is not None]
            painter.setPen(QPen(QColor(color), 2))
            for a, b in zip(pts, pts[1:]):
                painter.drawLine(a, b)
            painter.setBrush(QColor(color))
            for p in pts:
                painter.drawEllipse(p, 2.5, 2.5)
        painter.end()
