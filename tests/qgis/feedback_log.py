"""A Processing feedback that keeps what an algorithm logs, for the tests to read."""
from __future__ import annotations

from qgis.core import QgsProcessingFeedback


class FeedbackLog(QgsProcessingFeedback):
    """`lines`: every pushInfo text; `warnings`: every pushWarning text."""

    def __init__(self) -> None:
        super().__init__()
        self.lines = []
        self.warnings = []

    def pushInfo(self, info):  # noqa: N802 - QGIS's name
        self.lines.append(info)

    def pushWarning(self, warning):  # noqa: N802 - QGIS's name
        self.warnings.append(warning)
