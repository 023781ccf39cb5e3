"""`make screenshots`: render the dock (before / after a real run), the picker and the styled map to PNG.

Runs real QGIS offscreen: the bundled Sentinel-2 + Sentinel-1 pair is classified with the default
checkpoint through the dock's own task, with the bundled land-cover labels as reference.

    python -m claire.claire_plugin.tools.screenshots --out docs/screenshots [--checkpoint PATH]
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from ..paths import PACKAGE_ROOT, resource

DATA = resource("data", "terramesh")
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

    from ..layers.layers import no_input_sidecars
    from .quicklook import true_colour

    project = QgsProject.instance()
    project.clear()
    layers = {}
    for sub, name in (("LULC", "Reference labels (ESRI LULC)"), ("S1RTC", "Sentinel-1 RTC VV VH (dB)"),
                      ("S2L2A", "Sentinel-2 L2A 12 bands")):
        with no_input_sidecars():
            layer = QgsRasterLayer(os.path.join(DATA, sub, f"{SITE}.tif"), f"{name} {SITE}", "gdal")
        if not layer.isValid():
            raise SystemExit(f"cannot open {layer.source()}")
        project.addMapLayer(layer)
        layers[sub] = layer
    true_colour(layers["S2L2A"])
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

    from ..gui.dock import ClaireDock
    from ..gui.tasks import ClassifyTask, ExplainTask

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
    # Tall enough to show the whole results page without scrolling.
    page = dock.results
    dock.resize(DOCK_SIZE[0], max(DOCK_SIZE[1], page.sizeHint().height() + 170))
    shots.append(_grab(dock, os.path.join(out, "dock_after_run.png")))
    return shots + [dock]


def render_picker(out: str, checkpoint: str) -> str:
    """The checkpoint dialog showing the model card."""
    from ..gui.picker import CheckpointDialog

    dialog = CheckpointDialog(None, checkpoint)
    dialog.picker.checkLayers(12, 2)
    dialog.resize(560, 600)
    dialog.show()
    doc = dialog.picker.card_view.document()
    doc.setTextWidth(dialog.picker.card_view.viewport().width())
    dialog.resize(560, min(1100, int(doc.size().height()) + 130))
    return _grab(dialog, os.path.join(out, "checkpoint_picker.png"))


def render_map(out: str, layers_to_show, optical=None) -> str:
    """A QGIS print layout of the styled land cover with its legend (beside the optical input), to PNG."""
    from .quicklook import render_layout

    path = render_layout(layers_to_show[0], os.path.join(out, "landcover_map.png"),
                         f"CLAIRE land cover — TerraMesh site {SITE} (Sentinel-2 + Sentinel-1)", optical)
    print(f"wrote {path}")
    return path


def main(argv: Optional[List[str]] = None) -> int:
    """Render every screenshot into --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(PACKAGE_ROOT, "docs", "screenshots"))
    parser.add_argument("--checkpoint", default=None, help="default: the bundled checkpoint")
    args = parser.parse_args(argv)
    from ..gui.picker import bundled_checkpoint

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
