"""Render a classified raster to a PNG quick-look with QGIS: styled map, legend, title and scale bar."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional


def render_quicklook(raster: str, png: str, title: str = "Land cover (CLAIRE)",
                     optical_rgb: Optional[str] = None, dpi: int = 110) -> str:
    """Lay out the styled land-cover map (and optionally the optical true colour) with a legend; save PNG."""
    from qgis.core import (
        QgsLayout, QgsLayoutExporter, QgsLayoutItemLabel, QgsLayoutItemLegend, QgsLayoutItemMap,
        QgsLayoutItemScaleBar, QgsLayoutPoint, QgsLayoutSize, QgsMultiBandColorRenderer, QgsProject,
        QgsRasterLayer, QgsContrastEnhancement, QgsUnitTypes, QgsLegendStyle,
    )
    from qgis.PyQt.QtGui import QColor, QFont

    from .style import apply_landcover_style, classes_from_raster

    project = QgsProject()
    layer = QgsRasterLayer(raster, "Land cover", "gdal")
    if not layer.isValid():
        raise RuntimeError(f"Cannot open {raster} for the quick-look.")
    apply_landcover_style(layer, classes_from_raster(raster))
    project.addMapLayer(layer)
    layers = [layer]
    rgb = None
    if optical_rgb:
        rgb = QgsRasterLayer(optical_rgb, "Optical (true colour)", "gdal")
        if rgb.isValid() and rgb.bandCount() >= 4:
            renderer = QgsMultiBandColorRenderer(rgb.dataProvider(), 4, 3, 2)
            for band, setter in ((4, renderer.setRedContrastEnhancement), (3, renderer.setGreenContrastEnhancement),
                                 (2, renderer.setBlueContrastEnhancement)):
                ce = QgsContrastEnhancement(rgb.dataProvider().dataType(band))
                stats = rgb.dataProvider().bandStatistics(band)
                ce.setMinimumValue(stats.minimumValue)
                ce.setMaximumValue(stats.mean + 2.5 * stats.stdDev)
                ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
                setter(ce)
            rgb.setRenderer(renderer)
            project.addMapLayer(rgb, False)
        else:
            rgb = None

    layout = QgsLayout(project)
    layout.initializeDefaults()
    map_w = 120.0
    page_w = 20 + map_w + (map_w + 10 if rgb else 0) + 75
    layout.pageCollection().page(0).setPageSize(QgsLayoutSize(page_w, 170))
    label = QgsLayoutItemLabel(layout)
    label.setText(title)
    label.setFont(QFont("DejaVu Sans", 16, QFont.Bold))
    label.attemptMove(QgsLayoutPoint(10, 6))
    label.attemptResize(QgsLayoutSize(page_w - 20, 12))
    layout.addLayoutItem(label)

    def add_map(x: float, map_layers, caption: str) -> QgsLayoutItemMap:
        item = QgsLayoutItemMap(layout)
        item.attemptMove(QgsLayoutPoint(x, 24))
        item.attemptResize(QgsLayoutSize(map_w, map_w))
        item.setLayers(map_layers)
        item.setCrs(layer.crs())
        item.zoomToExtent(layer.extent())
        item.setFrameEnabled(True)
        item.setBackgroundColor(QColor("#ffffff"))
        layout.addLayoutItem(item)
        cap = QgsLayoutItemLabel(layout)
        cap.setText(caption)
        cap.setFont(QFont("DejaVu Sans", 10))
        cap.attemptMove(QgsLayoutPoint(x, 24 + map_w + 2))
        cap.attemptResize(QgsLayoutSize(map_w, 8))
        layout.addLayoutItem(cap)
        return item

    x = 10.0
    if rgb:
        add_map(x, [rgb], "Optical input (true colour)")
        x += map_w + 10
    main_map = add_map(x, layers, os.path.basename(raster))
    bar = QgsLayoutItemScaleBar(layout)
    bar.setStyle("Single Box")
    bar.setLinkedMap(main_map)
    bar.applyDefaultSize(QgsUnitTypes.DistanceMeters)
    bar.setNumberOfSegments(2)
    bar.setNumberOfSegmentsLeft(0)
    bar.attemptMove(QgsLayoutPoint(x, 24 + map_w + 11))
    layout.addLayoutItem(bar)

    legend = QgsLayoutItemLegend(layout)
    legend.setTitle("Land cover")
    legend.setLinkedMap(main_map)
    legend.setAutoUpdateModel(False)
    root = legend.model().rootGroup()
    root.clear()
    root.addLayer(layer)
    legend.setStyleFont(QgsLegendStyle.Title, QFont("DejaVu Sans", 13, QFont.Bold))
    legend.setStyleFont(QgsLegendStyle.SymbolLabel, QFont("DejaVu Sans", 11))
    legend.setStyleFont(QgsLegendStyle.Subgroup, QFont("DejaVu Sans", 1))
    legend.setSymbolHeight(6)
    legend.setSymbolWidth(10)
    legend.attemptMove(QgsLayoutPoint(x + map_w + 8, 24))
    layout.addLayoutItem(legend)
    legend.adjustBoxSize()

    os.makedirs(os.path.dirname(os.path.abspath(png)), exist_ok=True)
    settings = QgsLayoutExporter.ImageExportSettings()
    settings.dpi = dpi
    result = QgsLayoutExporter(layout).exportToImage(png, settings)
    if result != QgsLayoutExporter.Success:
        raise RuntimeError(f"QGIS could not write the quick-look {png} (error {result}).")
    return png


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Render a CLAIRE land-cover GeoTIFF to a PNG quick-look.")
    parser.add_argument("raster")
    parser.add_argument("png")
    parser.add_argument("--optical", help="optical raster shown beside the map in true colour (bands 4,3,2)")
    parser.add_argument("--title", default="Land cover (CLAIRE)")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    try:
        print(render_quicklook(args.raster, args.png, args.title, args.optical))
    finally:
        app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
