"""The `claire` Processing provider."""
from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .base import ICON
from .classify import ClassifyAlgorithm
from .classify_folder import ClassifyFolderAlgorithm
from .evaluate import EvaluateAlgorithm
from .grow_polygons import GrowPolygonsAlgorithm
from .map_accuracy import MapAccuracyAlgorithm, SamplePointsAlgorithm
from .suggest import SuggestAlgorithm
from .train import TrainAlgorithm


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

    def supportedOutputRasterLayerExtensions(self) -> list:  # noqa: N802
        """Every raster CLAIRE writes is a GeoTIFF (tiled, deflate, with its classes): the file dialog offers only
        that (it listed .gpkg, .img, .mbtiles, ... which the run then refused)."""
        return ["tif"]

    def defaultRasterFileExtension(self) -> str:  # noqa: N802
        return "tif"

    def loadAlgorithms(self) -> None:  # noqa: N802
        self.addAlgorithm(ClassifyAlgorithm())
        self.addAlgorithm(ClassifyFolderAlgorithm())
        self.addAlgorithm(EvaluateAlgorithm())
        self.addAlgorithm(SamplePointsAlgorithm())
        self.addAlgorithm(MapAccuracyAlgorithm())
        self.addAlgorithm(TrainAlgorithm())
        self.addAlgorithm(SuggestAlgorithm())
        self.addAlgorithm(GrowPolygonsAlgorithm())
