"""`make screenshots` (Train tab): a QGIS-like main window (map canvas + the CLAIRE dock at the ~300 px a new
dock gets), the Train tab before and after a short real training run on a bundled site, and the Run tab.

Run under a display (e.g. `xvfb-run -s "-screen 0 1600x1000x24" python -m claire.claire_plugin.tools.
screenshots_train --out docs/screenshots`). Polygons are squares drawn in homogeneous areas of the site's
LULC map (tools/bench_train.square_polygons) through the panel's own "New training layer"; the run is short
(few epochs and steps) so the numbers shown are a demonstration, not a benchmark.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional

from ..paths import resource
from .screenshots import SITE, _app

DOCK_WIDTH = 300
WINDOW = (1400, 900)


def _window(layers):
    """QMainWindow with a map canvas of `layers` and the CLAIRE dock on the right at DOCK_WIDTH px."""
    from qgis.gui import QgsMapCanvas
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtWidgets import QMainWindow

    from ..gui.dock import ClaireDock

    win = QMainWindow()
    win.setWindowTitle("QGIS — CLAIRE")
    canvas = QgsMapCanvas(win)
    canvas.setLayers(layers)
    canvas.setDestinationCrs(layers[-1].crs())
    canvas.setExtent(layers[-1].extent())
    win.setCentralWidget(canvas)
    dock = ClaireDock(None, win)
    win.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    win.resize(*WINDOW)
    win.show()
    win.resizeDocks([dock], [DOCK_WIDTH], Qt.Orientation.Horizontal)
    return win, canvas, dock


def _settle(seconds: float = 0.3) -> None:
    from qgis.PyQt.QtWidgets import QApplication

    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def _shot(win, path: str) -> str:
    from qgis.gui import QgsMapCanvas

    canvas = win.centralWidget()
    if isinstance(canvas, QgsMapCanvas):
        canvas.refreshAllLayers()
        _settle(0.3)
        canvas.waitWhileRendering()
    _settle()
    win.grab().save(path)
    print(f"wrote {path}")
    return path


def draw_squares(layer, lulc_path: str, size: int = 6, n: int = 6, also: Optional[Dict[str, Dict[str, str]]] = None
                 ) -> int:
    """Add squares of homogeneous LULC classes to the editable training layer; returns how many. `also`: more
    fields to set, field -> {class name: value}."""
    import rasterio
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY

    from .bench_train import NAMES, square_polygons

    with rasterio.open(lulc_path) as ds:
        squares = square_polygons(ds.read(1), n, size, seed=0)
        t = ds.transform
    for r, c, v in squares:
        pts = [QgsPointXY(*(t * (c + dc, r + dr))) for dr, dc in ((0, 0), (0, size), (size, size), (size, 0))]
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromPolygonXY([pts]))
        f["class"] = NAMES[v]
        for name, values in (also or {}).items():
            f[name] = values[NAMES[v]]
        layer.addFeature(f)
    return len(squares)


def _train(panel, epochs: int, steps: int) -> None:
    """Run the panel's training through the task manager with a short configuration; wait for it."""
    params = panel.build_params()
    params.config.steps_per_epoch, params.config.batch_size, params.config.crop = steps, 4, 64
    params.rf_trees = 100
    panel.epochs.setValue(epochs)
    params.config.epochs = epochs
    if panel.start(params) is None:
        raise SystemExit(f"training did not start: {panel.status.text()}")
    while panel.task is not None:
        _settle(0.2)
    if panel.report is None:
        raise SystemExit(f"training failed: {panel.status.text()}")


def render(out: str, work: str, epochs: int, steps: int) -> List[str]:
    """Train tab with a new layer, after training (chart, report), Run tab after "Classify with this model",
    Results of the new checkpoint."""
    from qgis.core import QgsProject, QgsRasterLayer

    from ..gui.picker import bundled_checkpoint
    from ..layers.layers import no_input_sidecars
    from .quicklook import true_colour

    project = QgsProject.instance()
    project.clear()
    data = resource("data", "terramesh")
    layers = {}
    for sub in ("LULC", "S1RTC", "S2L2A"):  # one site: three layers with the same name, as a user loads them
        with no_input_sidecars():
            layers[sub] = QgsRasterLayer(os.path.join(data, sub, f"{SITE}.tif"), SITE, "gdal")
        project.addMapLayer(layers[sub])
    true_colour(layers["S2L2A"])
    win, canvas, dock = _window([layers["S2L2A"]])
    dock.optical.setLayer(layers["S2L2A"])
    dock.sar.setLayer(layers["S1RTC"])
    shots: List[str] = []
    panel = dock.train_panel
    panel.optical.setLayer(layers["S2L2A"])
    panel.sar.setLayer(layers["S1RTC"])
    panel.ask_folder = lambda: work
    panel.picker.setCheckpoint(bundled_checkpoint())
    dock.tabs.setCurrentIndex(2)
    layer = panel.new_training_layer()
    print(f"  {draw_squares(layer, os.path.join(data, 'LULC', f'{SITE}.tif'))} squares drawn")
    canvas.setLayers([layer, layers["S2L2A"]])
    canvas.refresh()
    shots.append(_shot(win, os.path.join(out, "window_train_tab.png")))
    _train(panel, epochs, steps)
    held = [project.mapLayer(i) for i in panel.held_out_ids if project.mapLayer(i) is not None]
    canvas.setLayers(held + [layer, layers["S2L2A"]])  # the held-out polygons dashed over the training layer
    canvas.refresh()
    dock.tabs.currentWidget().ensureWidgetVisible(panel.chart, 0, 50)
    shots.append(_shot(win, os.path.join(out, "window_train_chart.png")))
    dock.tabs.currentWidget().ensureWidgetVisible(panel.classify_button, 0, 50)
    shots.append(_shot(win, os.path.join(out, "window_train_report.png")))
    panel.classify_button.click()
    shots.append(_shot(win, os.path.join(out, "window_run_after_train.png")))
    dock.tabs.currentWidget().ensureWidgetVisible(dock.explainer, 0, 50)
    shots.append(_shot(win, os.path.join(out, "window_run_options.png")))
    dock.output.setFilePath(os.path.join(work, f"{SITE}_your_model.tif"))
    if dock.start() is None:
        raise SystemExit(f"classification did not start: {dock.status.text()}")
    while dock.task is not None or dock.explain_task is not None:
        _settle(0.2)
    canvas.setLayers(dock.added_layers[:1] + [layers["S2L2A"]])
    shots.append(_shot(win, os.path.join(out, "window_results_tab.png")))
    return shots


def main(argv: Optional[List[str]] = None) -> int:
    """Render the Train-tab screenshots into --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    _app()
    with tempfile.TemporaryDirectory() as work:
        render(args.out, work, args.epochs, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
