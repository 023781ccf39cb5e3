"""Text and background colours of the panel's messages that stay readable under QGIS's light and dark UI themes
(Night Mapping): the dark theme gets lighter tones of the same meaning, and muted text is the palette's own text
blended towards its background (a fixed light grey on a dark theme) instead of a fixed dark grey."""
from __future__ import annotations

from typing import Dict, Optional

#: Tones on a light palette (QGIS's default) and on a dark one: errors, warnings, confirmations, notes, the
#: fills of table headers, of the "do not trust" box and of flagged sentences.
_LIGHT = {"error": "#b00020", "warning": "#8a4b00", "ok": "#256b29", "info": "#1f4e79",
          "header_bg": "#eef2f6", "warn_bg": "#fff4e5", "warn_border": "#e0a040", "flag_bg": "#fff3cd",
          "loss": "#c0392b", "score": "#2471a3"}
_DARK = {"error": "#ff8a80", "warning": "#ffb74d", "ok": "#81c784", "info": "#90caf9",
         "header_bg": "#28313a", "warn_bg": "#3f3219", "warn_border": "#c08a30", "flag_bg": "#443708",
         "loss": "#ff7961", "score": "#64b5f6"}


def _mix(a, b, share: float) -> str:
    """`share` of colour `a` and the rest of `b`, as #rrggbb."""
    return "#{:02x}{:02x}{:02x}".format(*(round(share * x + (1 - share) * y) for x, y in
                                          zip((a.red(), a.green(), a.blue()), (b.red(), b.green(), b.blue()))))


def tones(widget=None) -> Dict[str, str]:
    """The tones for `widget`'s palette (else the application's; the light ones without a QApplication), plus
    `text` (the palette's own text colour) and `muted` (text blended a little towards the window)."""
    from qgis.PyQt.QtGui import QPalette
    from qgis.PyQt.QtWidgets import QApplication

    palette: Optional[QPalette] = widget.palette() if widget is not None else (
        QApplication.palette() if QApplication.instance() is not None else None)
    if palette is None:
        return dict(_LIGHT, text="#000000", muted="#5f6b76")
    window = palette.color(QPalette.ColorRole.Window)
    if window.lightness() < 128:  # QGIS's dark themes colour text in their style sheets: their palettes'
        return dict(_DARK, text="#dddddd", muted="#9a9a9a")  # text roles are as dark as the window (#535353)
    text = palette.color(QPalette.ColorRole.WindowText)
    return dict(_LIGHT, text=text.name(), muted=_mix(text, window, 0.65))



def status_html(text: str, error: bool = False, widget=None) -> str:
    """A status line's rich text: an error in the error tone, anything else in the theme's own text colour; long
    names in it breakable (widgets.breakable_text)."""
    import html

    from .widgets import breakable_text

    text = html.escape(breakable_text(text))
    return f"<span style='color:{tones(widget)['error']}'>{text}</span>" if error else text


class Restyled:
    """A mixin for the panel's widgets whose colours come from `tones`: `restyle()` runs again when the palette or
    style changes (QGIS's UI theme switched while QGIS runs left light-theme greys on the dark theme, 1.5-2.2:1).
    `restyle` must style children only: a widget's own style sheet would send it another StyleChange."""

    def changeEvent(self, event) -> None:  # noqa: N802
        from qgis.PyQt.QtCore import QEvent

        super().changeEvent(event)  # type: ignore[misc]
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self.restyle()

    def restyle(self) -> None:
        """Apply the current tones to the children (override)."""
