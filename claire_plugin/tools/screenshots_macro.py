"""Macroclasses used as a user does, in real QGIS desktop, on a bundled TerraMesh site.

In QGIS's main window (`qgis --code`, under Xvfb when there is no display): load the site's optical and SAR,
press "New training layer" on the Train tab, add a text field `macroclass` to it, draw squares of homogeneous
LULC classes (tools/bench_train.square_polygons) with their class and macroclass (trees, crops, rangeland and
flooded vegetation in "vegetation"), choose the field as Macroclass, train briefly, then classify with Options >
Map level "macroclass". Four PNGs of the whole window (the Train tab with the Macroclass field chosen; the
report with its SAR-alone and macroclass tables; the Run tab's Map level; the macroclass map and its Results
tab) and the run's facts in train_macro.json.

    python -m claire.claire_plugin.tools.screenshots_macro --out docs/screenshots --qgis build/qgis-macro
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

from ..deps import torch_blas
from ..paths import resource
from .screenshots import SITE
from .screenshots_cloud import _grab
from .screenshots_fit import qgis_main
from .screenshots_train import _settle, draw_squares
from .screenshots_walk import _only_visible, _wait

#: The grouping drawn: LULC class name -> macroclass name.
MACRO = {"water": "water", "trees": "vegetation", "flooded vegetation": "vegetation", "crops": "vegetation",
         "rangeland": "vegetation", "built area": "built area", "bare ground": "bare ground", "snow/ice": "snow/ice"}


def _load_site(project) -> Dict[str, Any]:
    """The site's optical (true colour), SAR and LULC as layers, as a user adds them."""
    from qgis.core import QgsRasterLayer

    from ..layers.layers import no_input_sidecars
    from .quicklook import true_colour

    data, layers = resource("data", "terramesh"), {}
    for sub in ("LULC", "S1RTC", "S2L2A"):
        with no_input_sidecars():
            layers[sub] = QgsRasterLayer(os.path.join(data, sub, f"{SITE}.tif"), f"{SITE} {sub}", "gdal")
        project.addMapLayer(layers[sub])
    true_colour(layers["S2L2A"])
    return layers


def _draw(layer, lulc_path: str) -> int:
    """A text field `macroclass` added to the editable layer, then squares of homogeneous LULC classes with their
    class and macroclass."""
    from qgis.core import QgsField
    from qgis.PyQt.QtCore import QVariant

    layer.addAttribute(QgsField("macroclass", QVariant.Type.String))
    layer.updateFields()
    return draw_squares(layer, lulc_path, also={"macroclass": MACRO})


def _train(panel) -> Dict[str, Any]:
    """Train from the panel's widgets with a short configuration (a demonstration, not a benchmark)."""
    params = panel.build_params()
    params.config.epochs, params.config.steps_per_epoch, params.config.batch_size = 6, 6, 4
    params.config.crop, params.rf_trees = 64, 100
    if panel.start(params) is None:
        raise SystemExit(f"training did not start: {panel.status.text()}")
    _wait(lambda: panel.task is not None, "training")
    if panel.report is None:
        raise SystemExit(f"training failed: {panel.status.text()}")
    return panel.report


def _scroll_to_text(scroll, browser, text: str) -> None:
    """Scroll the tab `scroll` so that `text` of the report `browser` is near its top."""
    from qgis.PyQt.QtCore import QPoint

    cursor = browser.document().find(text)
    top = browser.mapTo(scroll.widget(), QPoint(0, 0)).y() + browser.cursorRect(cursor).top()
    scroll.verticalScrollBar().setValue(max(0, top - 80))
    _settle(0.5)


def render_in_qgis(iface, out: str) -> List[str]:
    """Inside QGIS desktop: train with a macroclass field, map the macroclasses; two PNGs and a JSON in `out`."""
    from qgis.core import QgsProject
    from qgis.utils import plugins

    from ..gui.actions import toggle_dock
    from ..gui.picker import bundled_checkpoint

    started = time.time()
    plugin = plugins["claire"]
    toggle_dock(plugin, True)
    _settle(1.0)
    dock, project, work = plugin.dock, QgsProject.instance(), tempfile.mkdtemp(prefix="claire_macro_")
    layers = _load_site(project)
    panel, win = dock.train_panel, iface.mainWindow()
    dock.tabs.setCurrentIndex(2)
    panel.optical.setLayer(layers["S2L2A"])
    panel.sar.setLayer(layers["S1RTC"])
    panel.ask_folder = lambda: work
    panel.picker.setCheckpoint(bundled_checkpoint())
    layer = panel.new_training_layer()
    if layer is None:
        raise SystemExit(f"no training layer: {panel.status.text()}")
    drawn = _draw(layer, os.path.join(resource("data", "terramesh"), "LULC", f"{SITE}.tif"))
    panel.macro_field.setField("macroclass")
    _only_visible(project, [layer, layers["S2L2A"]])
    iface.mapCanvas().setExtent(layers["S2L2A"].extent())
    dock.tabs.currentWidget().ensureWidgetVisible(panel.macro_field, 0, 120)
    shots = [_grab(iface, win, os.path.join(out, "train_macro_tab.png"), "the Macroclass field chosen")]
    report = _train(panel)
    _scroll_to_text(dock.tabs.currentWidget(), panel.report_view, "Optical missing")
    shots.append(_grab(iface, win, os.path.join(out, "train_macro_report.png"), f"dock {dock.width()} px wide"))
    dock.optical.setLayer(layers["S2L2A"])
    dock.sar.setLayer(layers["S1RTC"])
    panel.classify_button.click()  # the Run tab with the new checkpoint, as a user goes on
    dock.level.setCurrentText("macroclass")
    dock.tabs.currentWidget().ensureWidgetVisible(dock.level, 0, 120)
    shots.append(_grab(iface, win, os.path.join(out, "train_macro_level.png"), "Map level in the Run tab's Options"))
    dock.output.setFilePath(os.path.join(work, f"{SITE}_macroclasses.tif"))
    dock.run_button.click()
    _wait(lambda: dock.task is not None or dock.explain_task is not None, "classification")
    if dock.last_result is None:
        raise SystemExit(f"classification failed: {dock.status.text()}")
    _only_visible(project, dock.added_layers[:1] + [layers["S2L2A"]])
    dock.tabs.setCurrentIndex(1)
    dock.tabs.currentWidget().verticalScrollBar().setValue(0)
    shots.append(_grab(iface, win, os.path.join(out, "train_macro_map.png"), "macroclass map"))
    facts = {"site": SITE, "polygons": drawn, "macroclasses": report.get("macroclasses", {}).get("classes"),
             "class_level": {a: c["clear"]["macro_f1"] for a, c in report["arms"].items()},
             "macroclass_level": {a: c["clear"]["macro_f1"] for a, c in report["macroclasses"]["arms"].items()},
             "map_classes": [(c["name"], round(c.get("share", 0), 3)) for c in dock.last_result.summary["classes"]],
             "dock_width": dock.width(), "window": [win.width(), win.height()],
             "seconds": round(time.time() - started, 1), "matrix_products": torch_blas()}
    with open(os.path.join(out, "train_macro.json"), "w", encoding="utf-8") as fh:
        json.dump(facts, fh, indent=1, default=str)
    print(json.dumps(facts, indent=1, default=str))
    return shots


def main(argv: Optional[List[str]] = None) -> int:
    """Render the macroclass screenshots in real QGIS desktop (a fresh profile under --qgis)."""
    return qgis_main(argv, "screenshots_macro", __doc__.splitlines()[0], timeout=600)


if __name__ == "__main__":
    sys.exit(main())
