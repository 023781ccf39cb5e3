"""The "Diagnostics report" dialog: the core report plus QGIS's own versions, copyable in one click."""
from __future__ import annotations

from typing import Optional

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtGui import QFont, QGuiApplication
from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from .widgets import fit_on_screen


def qgis_facts() -> dict:
    """QGIS-side facts for the report (version, Qt, GDAL as QGIS links it)."""
    from osgeo import gdal
    from qgis.PyQt.QtCore import QT_VERSION_STR

    return {"QGIS": f"{Qgis.QGIS_VERSION} ({Qgis.QGIS_DEV_VERSION or 'release'})",
            "Qt": QT_VERSION_STR, "GDAL (QGIS)": gdal.__version__,
            "QGIS prefix": QgsApplication.prefixPath()}


def diagnostics_text(checkpoint: Optional[str] = None, device: str = "auto") -> str:
    """The full report as Markdown, including the QGIS facts."""
    from ..core.diagnostics import collect, format_report
    from .tasks import LAST_FAILURE

    text = format_report(collect(checkpoint=checkpoint, device=device, host=qgis_facts()))
    if LAST_FAILURE:
        text += f"\n## Last failure in this QGIS session\n\n{LAST_FAILURE['task']}: {LAST_FAILURE['error']}\n"
        if LAST_FAILURE["details"]:
            text += f"\n```\n{LAST_FAILURE['details'].rstrip()}\n```\n"
    return text


class DiagnosticsDialog(QDialog):
    """Shows the report in a monospace view with a "Copy to clipboard" button."""

    def __init__(self, parent: Optional[QWidget] = None, checkpoint: Optional[str] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("CLAIRE diagnostics report")
        intro = QLabel("Paste this report into a bug report. It lists versions, the devices torch sees, "
                       "the device a run would use and why, and whether the checkpoint is valid.", self)
        intro.setWordWrap(True)
        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        font = QFont("Monospace")
        font.setStyleHint(QFont.StyleHint.TypeWriter)
        self.text.setFont(font)
        self.text.setPlainText(diagnostics_text(checkpoint))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        copy = buttons.addButton("Copy to clipboard", QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(self.copy)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(self.text, 1)
        lay.addWidget(buttons)
        fit_on_screen(self, 720, 560)

    def copy(self) -> None:
        """Copy the report to the clipboard."""
        QGuiApplication.clipboard().setText(self.text.toPlainText())


def open_diagnostics(iface=None, checkpoint: Optional[str] = None) -> DiagnosticsDialog:
    """Open the diagnostics dialog (non-modal) over QGIS's main window and return it."""
    parent = iface.mainWindow() if iface is not None and hasattr(iface, "mainWindow") else None
    dialog = DiagnosticsDialog(parent, checkpoint)
    dialog.show()
    return dialog
