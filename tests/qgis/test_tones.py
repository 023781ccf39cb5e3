"""The panel's message colours under QGIS's light and dark (Night Mapping) palettes (QA, themes: the status line
was #303030 on the dark theme's #323232, 1.03:1; errors 1.75:1; table headers light text on a light fill)."""
from __future__ import annotations

import pytest


def _luminance(hex_color: str) -> float:
    rgb = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.parametrize("window,text", [("#535353", "#535353"),  # Night Mapping's palette (its QSS: #aaa on #323232)
                                         ("#373737", "#0e0e0e"),  # Blend of Gray's
                                         ("#222222", "#dddddd"), ("#efefef", "#000000"), ("#ffffff", "#303030")])
def test_every_tone_is_readable_on_its_palette(qgis_app, window, text):
    from qgis.PyQt.QtGui import QColor, QPalette
    from qgis.PyQt.QtWidgets import QLabel

    from claire.claire_plugin.gui.tones import status_html, tones

    label = QLabel()
    palette = label.palette()
    palette.setColor(QPalette.ColorRole.Window, QColor(window))
    palette.setColor(QPalette.ColorRole.WindowText, QColor(text))
    label.setPalette(palette)
    t = tones(label)
    shown = ("#323232", "#222222") if t["text"] == "#dddddd" else (window,)  # the grounds the dark QSS paints
    for role in ("error", "warning", "ok", "info", "muted", "text"):
        for ground in shown:
            least = 3.5 if role == "muted" else 4.5
            assert _contrast(t[role], ground) >= least, (role, t[role], ground, _contrast(t[role], ground))
    assert _contrast(t["text"], t["header_bg"]) >= 4.5 and _contrast(t["text"], t["warn_bg"]) >= 4.5
    assert _contrast(t["text"], t["flag_bg"]) >= 4.5
    base = "#222222" if t["text"] == "#dddddd" else window  # the chart paints on the palette's base
    assert _contrast(t["loss"], base) >= 3.0 and _contrast(t["score"], base) >= 3.0  # WCAG's 3:1 for graphics
    assert status_html("Ready <now>", widget=label) == "Ready &lt;now&gt;"  # the theme's own text colour
    assert f"color:{t['error']}" in status_html("No layer", True, label)


def test_switching_to_a_dark_theme_while_qgis_runs_restyles_the_panel(qgis_app, tiny_checkpoint):
    """QA (QGIS 3.40, Night Mapping): switching the UI theme while QGIS ran left the light theme's greys on the dark
    one (1.5-2.2:1): the widgets take the new tones when their palette or style changes."""
    from qgis.PyQt.QtGui import QColor, QPalette

    from claire.claire_plugin.gui.picker import CheckpointPicker
    from claire.claire_plugin.gui.results import ResultsView
    from claire.claire_plugin.gui.widgets import RasterChooser

    view, picker, chooser = ResultsView(), CheckpointPicker(), RasterChooser()
    picker.setCheckpoint(tiny_checkpoint)
    view.showSummary({"classes": [], "unfamiliar_share": 0.5, "cloud_share": 0.0, "sar_only_share": 0.0},
                     "scene", ["warning: the SAR is coarse", "a note"], {})
    light = (view.messages.styleSheet(), view.trust.styleSheet(), chooser.hint.styleSheet())
    assert "#fff4e5" in light[1] and "#8a4b00" in view.messages.text()
    dark = QPalette(view.palette())
    dark.setColor(QPalette.ColorRole.Window, QColor("#535353"))
    dark.setColor(QPalette.ColorRole.WindowText, QColor("#535353"))
    for widget in (view, picker, chooser):
        widget.setPalette(dark)  # what a theme switch sends: a PaletteChange
    assert view.messages.styleSheet() == "color:#9a9a9a;" and "#3f3219" in view.trust.styleSheet()
    assert "#ffb74d" in view.messages.text() and "#8a4b00" not in view.messages.text()
    assert chooser.hint.styleSheet() == "color:#9a9a9a;" and "#81c784" in picker.status.text()
    assert "#28313a" in picker.card_view.toHtml() and "#eef2f6" not in picker.card_view.toHtml()  # the card's headers
    assert all(tile.caption.styleSheet() == "color:#9a9a9a;" for tile in view.tiles.values())
