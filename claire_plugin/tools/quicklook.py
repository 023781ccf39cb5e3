"""Map pictures made by QGIS: a print layout of the styled land cover (optionally beside the optical input
in true colour) with its legend, scale bar and attribution, exported to PNG. Used by `make demo` and
`make screenshots`."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

ATTRIBUTION = "Data: TerraMesh (IBM / ESA),\nCC-BY-SA-4.0. No-data is transparent."


def true_colour(layer, stretch_max: float = 2000.0, rgb: tuple = (4, 3, 2)) -> None:
    """Show a Sentinel-2 band stack in true colour (B04, B03, B02: bands `rgb`, 4, 3, 2 in the 12/13-band
    layout), reflectance 0..stretch_max."""
    from qgis.core import QgsContrastEnhancement, QgsMultiBandColorRenderer

    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), *rgb)
    for band, setter in zip(rgb, (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
                                  renderer.setBlueContrastEnhancement)):
        ce = QgsContrastEnhancement(layer.dataProvider().dataType(band))
        ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
        ce.setMinimumValue(0)
        ce.setMaximumValue(stretch_max)
        setter(ce)
    layer.setRenderer(renderer)


def _mm():
    from qgis.core import QgsUnitTypes

    return QgsUnitTypes.LayoutUnit.LayoutMillimeters


def _label(layout, text: str, x: float, y: float, w: float, h: float, font) -> None:
    """A left-aligned text label at (x, y) mm, w x h mm."""
    from qgis.core import QgsLayoutItemLabel, QgsLayoutPoint, QgsLayoutSize
    from qgis.PyQt.QtCore import Qt

    item = QgsLayoutItemLabel(layout)
    item.setText(text)
    _set_font(item, font)
    item.setHAlign(Qt.AlignmentFlag.AlignLeft)
    item.attemptMove(QgsLayoutPoint(x, y, _mm()))
    item.attemptResize(QgsLayoutSize(w, h, _mm()))
    layout.addLayoutItem(item)


def _map(layout, layer, land, x: float, caption: str):
    """A 108 mm map of `layer` on `land`'s extent at x mm, with its caption below."""
    from qgis.core import QgsLayoutItemMap, QgsLayoutPoint, QgsLayoutSize
    from qgis.PyQt.QtGui import QFont

    item = QgsLayoutItemMap(layout)
    item.attemptMove(QgsLayoutPoint(x, 18, _mm()))
    item.attemptResize(QgsLayoutSize(108, 108, _mm()))
    item.setLayers([layer])
    item.setCrs(land.crs())
    item.setExtent(land.extent())
    item.setFrameEnabled(True)
    layout.addLayoutItem(item)
    _label(layout, caption, x, 129, 108, 8, QFont("DejaVu Sans", 10))
    return item


def _legend(layout, land, land_map, x: float) -> None:
    """The land-cover classes (without the band header line) at x mm."""
    from qgis.core import QgsLayoutItemLegend, QgsLayoutPoint, QgsLegendRenderer, QgsLegendStyle, QgsMapLayerLegendUtils
    from qgis.PyQt.QtGui import QFont

    legend = QgsLayoutItemLegend(layout)
    legend.setTitle("Land cover classes")
    legend.setLinkedMap(land_map)
    legend.setAutoUpdateModel(False)
    root = legend.model().rootGroup()
    root.removeAllChildren()
    root.addLayer(land)
    node = root.findLayer(land)
    QgsLegendRenderer.setNodeLegendStyle(node, QgsLegendStyle.Style.Hidden)
    count = len(legend.model().layerLegendNodes(node))
    if count > 1:  # drop the "Band 1 (Palette)" header line, keep the classes
        QgsMapLayerLegendUtils.setLegendNodeOrder(node, list(range(1, count)))
        legend.model().refreshLayerLegend(node)
    _set_legend_font(legend, QgsLegendStyle.Style.Title, QFont("DejaVu Sans", 13, QFont.Weight.Bold))
    _set_legend_font(legend, QgsLegendStyle.Style.SymbolLabel, QFont("DejaVu Sans", 11))
    legend.setSymbolWidth(8)
    legend.setSymbolHeight(5)
    legend.attemptMove(QgsLayoutPoint(x, 18, _mm()))
    layout.addLayoutItem(legend)


def _scale_bar(layout, land, land_map, x: float) -> None:
    """A two-segment scale bar in metres at x mm."""
    from qgis.core import QgsLayoutItemScaleBar, QgsLayoutPoint, QgsUnitTypes

    bar = QgsLayoutItemScaleBar(layout)
    bar.setStyle("Single Box")
    bar.setLinkedMap(land_map)
    bar.applyDefaultSize()
    bar.setUnits(QgsUnitTypes.DistanceUnit.DistanceMeters)
    bar.setNumberOfSegments(2)
    bar.setNumberOfSegmentsLeft(0)
    bar.setUnitsPerSegment(_nice_segment(land.extent().width()))
    bar.setUnitLabel("m")
    bar.attemptMove(QgsLayoutPoint(x, 108, _mm()))
    layout.addLayoutItem(bar)


def _export(layout, png: str, dpi: int) -> str:
    """Export the layout to `png` (no world file)."""
    from osgeo import gdal
    from qgis.core import QgsLayoutExporter

    os.makedirs(os.path.dirname(os.path.abspath(png)), exist_ok=True)
    settings = QgsLayoutExporter.ImageExportSettings()
    settings.dpi = dpi
    settings.exportMetadata = False
    layout.setCustomProperty("exportWorldFile", False)
    gdal.PushErrorHandler("CPLQuietErrorHandler")  # QGIS tries to georeference the PNG in place; PNG can't
    try:
        result = QgsLayoutExporter(layout).exportToImage(png, settings)
    finally:
        gdal.PopErrorHandler()
    if result != QgsLayoutExporter.ExportResult.Success:
        raise RuntimeError(f"QGIS could not write {png} (layout export error {result}).")
    return png


def render_layout(land, png: str, title: str, optical=None, attribution: str = ATTRIBUTION,
                  project=None, dpi: int = 110) -> str:
    """Export a layout of the styled land-cover layer `land` (and `optical` beside it) to `png`."""
    from qgis.core import QgsLayout, QgsLayoutSize, QgsProject
    from qgis.PyQt.QtGui import QFont

    layout = QgsLayout(project or QgsProject.instance())
    layout.initializeDefaults()
    x_land = 122 if optical is not None else 8
    layout.pageCollection().page(0).setPageSize(QgsLayoutSize(x_land + 178, 140, _mm()))
    _label(layout, title, 8, 5, x_land + 162, 10, QFont("DejaVu Sans", 14, QFont.Weight.Bold))
    if optical is not None:
        _map(layout, optical, land, 8, "Input: Sentinel-2 true colour (B4, B3, B2)")
    land_map = _map(layout, land, land, x_land, "CLAIRE land cover (optical + SAR fused)")
    _legend(layout, land, land_map, x_land + 114)
    _scale_bar(layout, land, land_map, x_land + 114)
    if attribution:
        _label(layout, attribution, x_land + 114, 122, 60, 12, QFont("DejaVu Sans", 8))
    return _export(layout, png, dpi)


def _set_font(label, font) -> None:
    """A layout label's font: as a text format where QGIS has it (3.24+; setFont is deprecated there)."""
    from qgis.core import QgsTextFormat

    if hasattr(label, "setTextFormat"):
        label.setTextFormat(QgsTextFormat.fromQFont(font))
    else:
        label.setFont(font)


def _set_legend_font(legend, component, font) -> None:
    """A legend component's font: through its style's text format where QGIS has it (3.30+)."""
    from qgis.core import QgsTextFormat

    style = legend.rstyle(component)
    if hasattr(style, "setTextFormat"):
        style.setTextFormat(QgsTextFormat.fromQFont(font))
    else:
        legend.setStyleFont(component, font)


def _nice_segment(width_m: float) -> float:
    """A round scale-bar segment length (1, 2 or 5 x 10^k m) of about a quarter of the map width."""
    target = max(width_m / 4.0, 1.0)
    power = 10 ** int(f"{target:e}".split("e")[1])
    return max(step * power for step in (1, 2, 5) if step * power <= target)


def render_quicklook(raster: str, png: str, title: str = "Land cover (CLAIRE)",
                     optical_path: Optional[str] = None, attribution: str = ATTRIBUTION) -> str:
    """Open a classified GeoTIFF (and the optical input), style it from its own classes, export the layout."""
    from qgis.core import QgsProject, QgsRasterLayer

    from ..layers.layers import no_input_sidecars
    from ..layers.style import apply_landcover_style, classes_from_raster

    project = QgsProject()
    land = QgsRasterLayer(raster, "Land cover", "gdal")
    if not land.isValid():
        raise RuntimeError(f"Cannot open {raster} for the quick-look.")
    apply_landcover_style(land, classes_from_raster(raster))
    project.addMapLayer(land)
    project.setCrs(land.crs())
    optical = None
    if optical_path:
        with no_input_sidecars():
            optical = QgsRasterLayer(optical_path, "Optical", "gdal")
        if optical.isValid() and optical.bandCount() >= 4:
            true_colour(optical)
            project.addMapLayer(optical)
        else:
            optical = None
    return render_layout(land, png, title, optical, attribution, project)


def main(argv=None) -> int:
    """Command line: render a land-cover GeoTIFF to a PNG quick-look with QGIS offscreen."""
    parser = argparse.ArgumentParser(description="Render a CLAIRE land-cover GeoTIFF to a PNG quick-look.")
    parser.add_argument("raster")
    parser.add_argument("png")
    parser.add_argument("--optical", help="optical raster shown beside the map in true colour (bands 4,3,2)")
    parser.add_argument("--title", default="Land cover (CLAIRE)")
    parser.add_argument("--attribution", default=ATTRIBUTION)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    try:
        print(render_quicklook(args.raster, args.png, args.title, args.optical, args.attribution))
    finally:
        app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
