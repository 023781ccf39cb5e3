"""Screenshots of a real cloudy scene in QGIS desktop: the bundled SEN12MS-CR pair (Sentinel-2 Level-1C under
thick cloud + Sentinel-1), classified from the CLAIRE dock at the width QGIS gives it, the Results tab with
the trust line (cloud share, share unlike the training data, link to the Train tab) and the explanation,
the map canvas showing the "unlike the training data" raster, and a Preview view of the middle of the scene.

    python -m claire.claire_plugin.tools.screenshots_cloud --out docs/screenshots --qgis build/qgis-shots
"""
from __future__ import annotations

import os
import sys
import tempfile
from typing import List, Optional

from ..paths import resource
from .screenshots_fit import qgis_main
from .screenshots_train import _settle

SCENE = "ROIs2017_winter_112_p797"


def _layers(project):
    """The cloudy optical (true colour) and the SAR as QGIS layers named by role."""
    from qgis.core import QgsRasterLayer

    from ..layers.layers import no_input_sidecars
    from .quicklook import true_colour

    root = resource("data", "sen12ms_cr")
    with no_input_sidecars():
        optical = QgsRasterLayer(os.path.join(root, "s2_cloudy", f"{SCENE}.tif"), "Sentinel-2 L1C, cloudy", "gdal")
        sar = QgsRasterLayer(os.path.join(root, "s1", f"{SCENE}.tif"), "Sentinel-1 VV VH (dB)", "gdal")
    for layer in (optical, sar):
        if not layer.isValid():
            raise SystemExit(f"cannot open {layer.source()}")
        project.addMapLayer(layer)
    true_colour(optical)
    return optical, sar


def render_in_qgis(iface, out: str) -> List[str]:
    """Inside QGIS desktop: open the dock through the plugin's action, classify the cloudy pair, grab the
    main window on the Results tab and with the unfamiliar raster on the map."""
    from qgis.core import QgsProject
    from qgis.utils import plugins

    from ..gui.actions import toggle_dock

    plugin = plugins["claire"]
    toggle_dock(plugin, True)
    _settle(1.0)
    dock, win = plugin.dock, iface.mainWindow()
    optical, sar = _layers(QgsProject.instance())
    dock.optical.setLayer(optical)
    dock.sar.setLayer(sar)
    dock.want_cloud.setChecked(True)
    dock.want_unfamiliar.setChecked(True)
    dock.output.setFilePath(os.path.join(tempfile.mkdtemp(prefix="claire_cloud_"), f"{SCENE}_landcover.tif"))
    if dock.start() is None:
        raise SystemExit(f"classification did not start: {dock.status.text()}")
    while dock.task is not None or dock.explain_task is not None:
        _settle(0.2)
    iface.mapCanvas().setExtent(optical.extent())
    dock.tabs.setCurrentIndex(1)
    shots = [_grab(iface, win, os.path.join(out, "window_cloudy_results.png"), f"dock {dock.width()} px wide")]
    root = QgsProject.instance().layerTreeRoot()
    for layer in dock.added_layers:  # the unlike-the-training-data raster alone over the optical
        if "nfamiliar" not in layer.name() and "nlike" not in layer.name():
            root.findLayer(layer.id()).setItemVisibilityChecked(False)
    dock.tabs.currentWidget().ensureWidgetVisible(dock.results.explanation, 0, 120)
    shots.append(_grab(iface, win, os.path.join(out, "window_cloudy_explanation.png"), "map: unlike the training data"))
    shots.append(_preview(iface, win, dock, optical, out))
    return shots


def _preview(iface, win, dock, optical, out: str) -> str:
    """Zoom the map to the middle of the scene, hide the full run's layers and press Preview view: only the
    visible part is classified, over the true-colour optical."""
    from qgis.core import QgsProject

    root = QgsProject.instance().layerTreeRoot()
    for layer in dock.added_layers:
        root.findLayer(layer.id()).setItemVisibilityChecked(False)
    full = optical.extent()
    iface.mapCanvas().setExtent(full.buffered(-0.3 * min(full.width(), full.height())))
    iface.mapCanvas().refresh()
    _settle(1.0)
    dock.tabs.setCurrentIndex(0)
    if dock.start(preview=True) is None:
        raise SystemExit(f"the preview did not start: {dock.status.text()}")
    while dock.task is not None or dock.explain_task is not None:
        _settle(0.2)
    iface.mapCanvas().zoomByFactor(1.6)  # the preview's edges inside the view, the optical around it
    dock.tabs.setCurrentIndex(1)
    return _grab(iface, win, os.path.join(out, "window_cloudy_preview.png"), "Preview view of the middle")


def _grab(iface, win, path: str, note: str) -> str:
    """The main window to `path` once the canvas has rendered."""
    _settle(1.0)
    iface.mapCanvas().waitWhileRendering()
    win.grab().save(path)
    print(f"wrote {path} ({note})")
    return path


def main(argv: Optional[List[str]] = None) -> int:
    """Render the cloudy-scene screenshots in real QGIS desktop (a fresh profile under --qgis)."""
    return qgis_main(argv, "screenshots_cloud", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
