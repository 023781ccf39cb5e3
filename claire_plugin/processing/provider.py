"""The `claire` Processing provider."""
from __future__ import annotations

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..paths import resource

ICON = resource("icons", "claire.svg")


class ClaireProvider(QgsProcessingProvider):
    """Registers CLAIRE's algorithms in the toolbox, batch mode, modeller and qgis_process."""

    def id(self) -> str:
        return "claire"

    def name(self) -> str:
        return "CLAIRE land cover"

    def longName(self) -> str:  # noqa: N802
        return "CLAIRE: optical + SAR land-cover classification"

    def icon(self) -> QIcon:
        return QIcon(ICON)

    def svgIconPath(self) -> str:  # noqa: N802
        return ICON

    def loadAlgorithms(self) -> None:  # noqa: N802
        from .classify import ClassifyAlgorithm

        self.addAlgorithm(ClassifyAlgorithm())
        for module, cls in (("classify_folder", "ClassifyFolderAlgorithm"), ("evaluate", "EvaluateAlgorithm")):
            try:
                mod = __import__(f"{__package__}.{module}", fromlist=[cls])
            except ModuleNotFoundError as exc:
                if exc.name == f"{__package__}.{module}":
                    continue
                raise
            self.addAlgorithm(getattr(mod, cls)())
