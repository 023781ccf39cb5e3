"""`make screenshots`: render the dock (before / after a real run), the picker and the styled map to PNG.

Runs real QGIS offscreen: the bundled Sentinel-2 + Sentinel-1 pair is classified with the default
checkpoint through the dock's own task, with the bundled land-cover labels as reference.

    python -m claire.claire_plugin.gui.screenshots --out docs/screenshots [--checkpoint PATH]
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
DATA = os.path.join(PACKAGE_ROOT, "resources", "data", "terramesh")
SITE = "433D_629L_3_1"
DOCK_SIZE = (540, 1010)


def _app():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication.instance()
    if app is None:
        app = QgsApplication([], True)
        app.initQgis()
        _keep.append(app)
    from qgis.PyQt.QtGui import QFont
    font = QFont("DejaVu Sans")
    font.setPointSizeF(9.0)
    app.setFont(font)
    return app


_keep: List[object] = []


def _load_layers():
    from qgis.core import QgsProject, QgsRasterLayer
    from qgis.core import QgsContrastEnhancement, QgsMultiBandColorRenderer

    project = QgsProject.instance()
    project.clear()
    layers = {}
    for sub, name in (("LULC", "Reference labels (ESRI LULC)"), ("S1RTC", "Sentinel-1 RTC VV VH (dB)"),
                      ("S2L2A", "Sentinel-2 L2A 12 bands")):
        layer = QgsRasterLayer(os.path.join(DATA, sub, f"{SITE}.tif"), f"{name} {SITE}", "gdal")
        if not layer.isValid():
            raise SystemExit(f"cannot open {layer.source()}")
        project.addMapLayer(layer)
        layers[sub] = layer
    # True-colour view of the optical layer (B04, B03, B02).
    s2 = layers["S2L2A"]
    renderer = QgsMultiBandColorRenderer(s2.dataProvider(), 4, 3, 2)
    for band, setter in ((4, renderer.setRedContrastEnhancement), (3, renderer.setGreenContrastEnhancement),
                         (2, renderer.setBlueContrastEnhancement)):
        ce = QgsContrastEnhancement(s2.dataProvider().dataType(band))
        ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
        ce.setMinimumValue(0)
        ce.setMaximumValue(2000)
        setter(ce)
    s2.setRenderer(renderer)
    return layers


def _grab(widget, path: str) -> str:
    from qgis.PyQt.QtWidgets import QApplication

    widget.show()
    for _ in range(3):
        QApplication.processEvents()
    widget.grab().save(path)
    print(f"wrote {path}")
    return path


def render_dock(out: str, checkpoint: str) -> list:
    """Dock before the run, run the real classification through the dock's task, dock after the run."""
    from qgis.PyQt.QtWidgets import QApplication

    from .dock import ClaireDock
    from .tasks import ClassifyTask, ExplainTask

    layers = _load_layers()
    dock = ClaireDock(None)
    dock.resize(*DOCK_SIZE)
    dock.optical.setLayer(layers["S2L2A"])
    dock.sar.setLayer(layers["S1RTC"])
    dock.reference.setLayer(layers["LULC"])
    dock.picker.setCheckpoint(checkpoint)
    dock.want_reliance.setChecked(True)
    os.makedirs(os.path.join(PACKAGE_ROOT, "build", "screenshots"), exist_ok=True)
    dock.output.setFilePath(os.path.join(PACKAGE_ROOT, "build", "screenshots", f"{SITE}_landcover.tif"))
    dock._update_fit()
    run_page = dock.tabs.widget(0).widget()
    dock.resize(DOCK_SIZE[0], run_page.sizeHint().height() + 150)
    shots = [_grab(dock, os.path.join(out, "dock_before_run.png"))]

    params = dock.build_params()
    dock.last_card = dock.picker.card()
    task = ClassifyTask(params)
    task.progressText.connect(lambda m: print(f"  {m}"))
    if not task.run():
        raise SystemExit(f"classification failed: {task.error}\n{task.details or ''}")
    dock.show_result(task.result, dock.last_card, params, add_layers=True, explain=False)
    expl = ExplainTask(task.result.summary, dock.last_card, None, on_done=dock.on_explained)
    dock.results.startExplanation()
    if not expl.run():
        print(f"explanation failed: {expl.error}", file=sys.stderr)
    expl.finished(True)
    dock.show()
    QApplication.processEvents()
    dock.results.fitExplanation()
    # Tall enough to show the whole results page without scrolling.
    page = dock.results
    dock.resize(DOCK_SIZE[0], max(DOCK_SIZE[1], page.sizeHint().height() + 170))
    shots.append(_grab(dock, os.path.join(out, "dock_after_run.png")))
    return shots + [dock]


def render_picker(out: str, checkpoint: str) -> str:
    """The checkpoint dialog showing the model card."""
    from .picker import CheckpointDialog

    dialog = CheckpointDialog(None, checkpoint)
    dialog.picker.checkLayers(12, 2)
    dialog.resize(560, 600)
    dialog.show()
    doc = dialog.picker.card_view.document()
    doc.setTextWidth(dialog.picker.card_view.viewport().width())
    dialog.resize(560, min(1100, int(doc.size().height()) + 130))
    return _grab(dialog, os.path.join(out, "checkpoint_picker.png"))


def render_map(out: str, layers_to_show, optical=None) -> str:
    """A QGIS print layout of the styled land cover with its legend, exported to PNG."""
    from qgis.core import (
        QgsLayout, QgsLayoutExporter, QgsLayoutItemLabel, QgsLayoutItemLegend, QgsLayoutItemMap,
        QgsLayoutItemScaleBar, QgsLayoutPoint, QgsLayoutSize, QgsProject, QgsUnitTypes, QgsLegendStyle,
        QgsLegendRenderer, QgsMapLayerLegendUtils,
    )
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QFont

    project = QgsProject.instance()
    land = layers_to_show[0]
    layout = QgsLayout(project)
    layout.initializeDefaults()
    page = layout.pageCollection().page(0)
    page.setPageSize(QgsLayoutSize(300, 140, QgsUnitTypes.LayoutMillimeters))

    title = QgsLayoutItemLabel(layout)
    title.setText(f"CLAIRE land cover — TerraMesh site {SITE} (Sentinel-2 + Sentinel-1)")
    title.setFont(QFont("DejaVu Sans", 14, QFont.Bold))
    title.attemptMove(QgsLayoutPoint(8, 5, QgsUnitTypes.LayoutMillimeters))
    title.attemptResize(QgsLayoutSize(284, 10, QgsUnitTypes.LayoutMillimeters))
    layout.addLayoutItem(title)

    def caption(text: str, x: float) -> None:
        label = QgsLayoutItemLabel(layout)
        label.setText(text)
        label.setFont(QFont("DejaVu Sans", 10))
        label.attemptMove(QgsLayoutPoint(x, 129, QgsUnitTypes.LayoutMillimeters))
        label.attemptResize(QgsLayoutSize(108, 8, QgsUnitTypes.LayoutMillimeters))
        layout.addLayoutItem(label)

    x_land = 8
    if optical is not None:
        omap = QgsLayoutItemMap(layout)
        omap.attemptMove(QgsLayoutPoint(8, 18, QgsUnitTypes.LayoutMillimeters))
        omap.attemptResize(QgsLayoutSize(108, 108, QgsUnitTypes.LayoutMillimeters))
        omap.setLayers([optical])
        omap.setCrs(land.crs())
        omap.setExtent(land.extent())
        omap.setFrameEnabled(True)
        layout.addLayoutItem(omap)
        caption("Input: Sentinel-2 L2A true colour (B4, B3, B2)", 8)
        x_land = 122
    amap = QgsLayoutItemMap(layout)
    amap.attemptMove(QgsLayoutPoint(x_land, 18, QgsUnitTypes.LayoutMillimeters))
    amap.attemptResize(QgsLayoutSize(108, 108, QgsUnitTypes.LayoutMillimeters))
    amap.setLayers([land])
    amap.setCrs(land.crs())
    amap.setExtent(land.extent())
    amap.setFrameEnabled(True)
    layout.addLayoutItem(amap)
    caption("CLAIRE land cover (optical + SAR fused)", x_land)

    legend = QgsLayoutItemLegend(layout)
    legend.setTitle("Land cover classes")
    legend.setLinkedMap(amap)
    legend.setAutoUpdateModel(False)
    root = legend.model().rootGroup()
    root.removeAllChildren()
    root.addLayer(land)
    node = root.findLayer(land)
    QgsLegendRenderer.setNodeLegendStyle(node, QgsLegendStyle.Hidden)
    count = len(legend.model().layerLegendNodes(node))
    if count > 1:  # drop the "Band 1: … (Palette)" header line, keep the classes
        QgsMapLayerLegendUtils.setLegendNodeOrder(node, list(range(1, count)))
        legend.model().refreshLayerLegend(node)
    legend.setStyleFont(QgsLegendStyle.Title, QFont("DejaVu Sans", 13, QFont.Bold))
    legend.setStyleFont(QgsLegendStyle.Subgroup, QFont("DejaVu Sans", 11, QFont.Bold))
    legend.setStyleFont(QgsLegendStyle.SymbolLabel, QFont("DejaVu Sans", 11))
    legend.setSymbolWidth(8)
    legend.setSymbolHeight(5)
    legend.attemptMove(QgsLayoutPoint(x_land + 114, 18, QgsUnitTypes.LayoutMillimeters))
    layout.addLayoutItem(legend)

    bar = QgsLayoutItemScaleBar(layout)
    bar.setStyle("Single Box")
    bar.setLinkedMap(amap)
    bar.applyDefaultSize()
    bar.setUnits(QgsUnitTypes.DistanceMeters)
    bar.setNumberOfSegments(2)
    bar.setNumberOfSegmentsLeft(0)
    bar.setUnitsPerSegment(500)
    bar.setUnitLabel("m")
    bar.attemptMove(QgsLayoutPoint(x_land + 114, 108, QgsUnitTypes.LayoutMillimeters))
    layout.addLayoutItem(bar)

    note = QgsLayoutItemLabel(layout)
    note.setText("Data: TerraMesh (IBM / ESA), CC-BY-SA-4.0. Nodata transparent.")
    note.setFont(QFont("DejaVu Sans", 8))
    note.setText("Data: TerraMesh (IBM / ESA),\nCC-BY-SA-4.0. No-data is transparent.")
    note.setHAlign(Qt.AlignLeft)
    note.attemptMove(QgsLayoutPoint(x_land + 114, 122, QgsUnitTypes.LayoutMillimeters))
    note.attemptResize(QgsLayoutSize(60, 12, QgsUnitTypes.LayoutMillimeters))
    layout.addLayoutItem(note)

    path = os.path.join(out, "landcover_map.png")
    settings = QgsLayoutExporter.ImageExportSettings()
    settings.dpi = 110
    result = QgsLayoutExporter(layout).exportToImage(path, settings)
    if result != QgsLayoutExporter.Success:
        raise SystemExit(f"map export failed ({result})")
    print(f"wrote {path}")
    return path


def main(argv: Optional[List[str]] = None) -> int:
    """Render every screenshot into --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(PACKAGE_ROOT, "docs", "screenshots"))
    parser.add_argument("--checkpoint", default=None, help="default: the bundled checkpoint")
    args = parser.parse_args(argv)
    from .picker import bundled_checkpoint

    checkpoint = args.checkpoint or bundled_checkpoint()
    if not os.path.exists(checkpoint):
        print(f"{checkpoint} is missing: run `make checkpoint` first.", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    _app()
    *_, dock = render_dock(args.out, checkpoint)
    render_picker(args.out, checkpoint)
    from qgis.core import QgsProject
    optical = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name().startswith("Sentinel-2")]
    render_map(args.out, dock.added_layers, optical[0] if optical else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
