"""The Train tab's chart at larger fonts (QA, themes and scaling: "0.087" was drawn as ")087" in a fixed 32 px
box at 9 pt and as "087" at 12-14 pt; the first loss dot sat on the label's last digit)."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("points", [9, 12, 14])
@pytest.mark.parametrize("loss", [0.39, 0.087, 1.4])
def test_the_axes_numbers_fit_their_font_and_clear_the_dots(qgis_app, points, loss):
    from qgis.PyQt.QtGui import QFont, QFontMetrics

    from claire.claire_plugin.gui.epoch_chart import EpochChart

    chart = EpochChart()
    font = QFont(chart.font())
    font.setPointSize(points)
    chart.setFont(font)
    chart.resize(298, chart.height())
    chart.addEpoch(loss, 0.5, 3)
    plot, label = chart.plot_area()
    fm = QFontMetrics(font)
    assert label == f"{loss:.2g}"
    assert fm.horizontalAdvance(label) + 6 <= plot.left() - 2.5  # the label's box ends 6 px before the dot
    assert plot.height() >= 2 * fm.height() and plot.width() > 150
    chart.grab()  # paints without error


def test_a_score_on_a_sample_of_the_held_out_windows_says_so_until_the_next_run(qgis_app, tmp_path):
    """Round 21: the per-epoch score of a run with many held-out windows is measured on a spread of them."""
    from claire.claire_plugin.gui.epoch_chart import SCORE_LABEL, EpochChart

    chart = EpochChart()
    chart.resize(298, chart.height())
    chart.sampled(71, 421)
    chart.addEpoch(1.2, 0.3, 4)
    assert chart.score_label == "macro-F1 (sample)" and "71 of the 421 held-out windows" in chart.toolTip()
    chart.grab().save(str(tmp_path / "sampled.png"))
    chart.clear(3)
    assert chart.score_label == SCORE_LABEL and chart.toolTip() == ""
