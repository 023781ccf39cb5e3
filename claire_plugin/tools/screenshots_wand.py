"""The magic wand used as a user does, in real QGIS desktop, on the bundled June farmland patch (33UUP).

In QGIS's main window (`qgis --code`, under Xvfb when there is no display): load the patch's optical and SAR
(VRTs of its band files), open the dock's Train tab, press "New training layer", switch the magic wand on and
click with the mouse on the map at the centre of each shipped hand-drawn polygon, giving the wand that
polygon's class. One PNG of the whole window, docs/screenshots/train_wand.png, and per click the wand
polygon's size and how much of the hand-drawn polygon it covers, printed and written to train_wand.json.

    python -m claire.claire_plugin.tools.screenshots_wand --out docs/screenshots --qgis build/qgis-wand
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

from .demo_train import POLYGONS
from .screenshots_cloud import _grab
from .screenshots_fit import qgis_main
from .screenshots_train import _settle
from .screenshots_walk import _only_visible, open_patch


def _click(canvas, point) -> None:
    """A real left click of the mouse on the canvas at map point `point` (canvas CRS)."""
    from qgis.PyQt.QtCore import QPoint, Qt
    from qgis.PyQt.QtTest import QTest

    pixel = canvas.getCoordinateTransform().transform(point)
    QTest.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(int(round(pixel.x())), int(round(pixel.y()))))
    _settle(0.3)


def _clicks(iface, panel, layer) -> List[Dict[str, Any]]:
    """Click the wand at the centre of every shipped polygon with its class; what each click gave."""
    from qgis.core import QgsCoordinateTransform, QgsProject, QgsVectorLayer

    hand = QgsVectorLayer(POLYGONS, "hand", "ogr")
    canvas = iface.mapCanvas()
    to_canvas = QgsCoordinateTransform(hand.crs(), canvas.mapSettings().destinationCrs(), QgsProject.instance())
    to_layer = QgsCoordinateTransform(hand.crs(), layer.crs(), QgsProject.instance())
    rows = []
    for feature in hand.getFeatures():
        before = {f.id() for f in layer.getFeatures()}
        panel.wand_class.setCurrentText(str(feature["class"]))
        centre = feature.geometry().pointOnSurface().asPoint()
        _click(canvas, to_canvas.transform(centre))
        added = [f for f in layer.getFeatures() if f.id() not in before]
        row: Dict[str, Any] = {"class": feature["class"], "status": panel.status.text()}
        if added:
            drawn = feature.geometry()
            drawn.transform(to_layer)
            wand = added[0].geometry()
            row.update(wand_area_m2=round(wand.area(), 1), hand_area_m2=round(drawn.area(), 1),
                       hand_covered=round(wand.intersection(drawn).area() / drawn.area(), 3),
                       class_set=added[0]["class"])
        rows.append(row)
    return rows


def render_in_qgis(iface, out: str) -> List[str]:
    """Inside QGIS desktop: the wand clicked at the shipped polygons; one PNG and train_wand.json in `out`."""
    started = time.time()
    dock, project, work, optical, sar = open_patch("claire_wand_")
    panel = dock.train_panel
    dock.tabs.setCurrentIndex(2)
    panel.optical.setLayer(optical)
    panel.sar.setLayer(sar)
    panel.ask_folder = lambda: work  # the unsaved project's folder question, answered
    layer = panel.new_training_layer()
    if layer is None:
        raise SystemExit(f"no training layer: {panel.status.text()}")
    _only_visible(project, [layer, optical])
    iface.mapCanvas().setExtent(optical.extent())
    _settle(1.0)
    panel.wand_button.click()
    rows = _clicks(iface, panel, layer)
    scroll = dock.tabs.currentWidget()
    scroll.ensureWidgetVisible(panel.wand_status, 0, 40)
    _settle(0.5)
    shot = _grab(iface, iface.mainWindow(), os.path.join(out, "train_wand.png"), "wand polygons")
    facts = {"clicks": rows, "features": layer.featureCount(), "tolerance": panel.wand_tolerance.value(),
             "dock_width": dock.width(), "window": [iface.mainWindow().width(), iface.mainWindow().height()],
             "seconds": round(time.time() - started, 1)}
    with open(os.path.join(out, "train_wand.json"), "w", encoding="utf-8") as fh:
        json.dump(facts, fh, indent=1, default=str)
    print(json.dumps(facts, indent=1, default=str))
    return [shot]


def main(argv: Optional[List[str]] = None) -> int:
    """Render the wand screenshot in real QGIS desktop (a fresh profile under --qgis)."""
    return qgis_main(argv, "screenshots_wand", __doc__.splitlines()[0], timeout=300)


if __name__ == "__main__":
    sys.exit(main())
