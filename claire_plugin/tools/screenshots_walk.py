"""The Train tab walked through as a user does it, in real QGIS desktop, on a scene the default model gets
wrong: the bundled BigEarthNet June farmland patch (33UUP), where the default checkpoint paints built area and
snow/ice over ripe fields.

In QGIS's own main window (`qgis --code`, under Xvfb when there is no display), with the dock opened by the
plugin's action at the width QGIS gives it: load the optical and SAR of the patch (band files stacked into
VRTs, as Raster > Build Virtual Raster does), classify with the bundled checkpoint (Results tab: the trust
line), follow its "Train it on your area" link to the Train tab, load the shipped polygons as the training
layer (the class field is picked), train with a short time budget, read the held-out report, press "Classify
with this model" and classify again, then with the run's random forest and with the two averaged, and ask
"Where to label next" (numbered places over the polygons). One PNG
of the whole window per step, docs/screenshots/train_walk_*.png, and the numbers seen (class shares before /
after, held-out scores) printed and written to train_walk.json.

    python -m claire.claire_plugin.tools.screenshots_walk --out docs/screenshots --qgis build/qgis-walk
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

from ..deps import torch_blas
from .demo_train import POLYGONS, shares, stack_patch
from .screenshots_cloud import _grab
from .screenshots_fit import run_qgis
from .screenshots_train import _settle

MINUTES_KEY = "CLAIRE_WALK_MINUTES"


def _load_patch(project, work: str):
    """The patch's optical (true colour) and SAR as layers, from VRTs of its band files in `work`."""
    from qgis.core import QgsRasterLayer

    from ..layers.layers import no_input_sidecars
    from .quicklook import true_colour

    paths = stack_patch(work)
    with no_input_sidecars():
        optical = QgsRasterLayer(paths["optical"], "S2 L2A 2017-06-13 (10 bands)", "gdal")
        sar = QgsRasterLayer(paths["sar"], "S1 VV VH 2017-06-13 (dB)", "gdal")
    for layer in (optical, sar):
        if not layer.isValid():
            raise SystemExit(f"cannot open {layer.source()}")
    project.addMapLayer(sar)
    project.addMapLayer(optical)
    true_colour(optical, 1800.0, rgb=(3, 2, 1))  # the stack starts at B02
    return optical, sar


def open_patch(prefix: str):
    """Inside QGIS desktop: the plugin's dock opened as its action does, the patch loaded from a new folder.
    Returns (dock, project, work folder, optical layer, SAR layer)."""
    from qgis.core import QgsProject
    from qgis.utils import plugins

    from ..gui.actions import toggle_dock

    plugin = plugins["claire"]
    toggle_dock(plugin, True)
    _settle(1.0)
    work = tempfile.mkdtemp(prefix=prefix)
    optical, sar = _load_patch(QgsProject.instance(), work)
    return plugin.dock, QgsProject.instance(), work, optical, sar


def _wait(busy, what: str, limit_s: float = 900.0) -> None:
    """Let QGIS run until `busy()` is false (a task of the dock); SystemExit after `limit_s`."""
    end = time.time() + limit_s
    while busy():
        if time.time() > end:
            raise SystemExit(f"{what} did not finish in {limit_s:.0f} s")
        _settle(0.2)


def _classify(dock, output: str) -> Dict[str, Any]:
    """Press Classify on the Run tab and wait for the result and its explanation; returns the summary."""
    dock.output.setFilePath(output)
    dock.run_button.click()
    if dock.task is None and dock.last_result is None:
        raise SystemExit(f"classification did not start: {dock.status.text()}")
    _wait(lambda: dock.task is not None or dock.explain_task is not None, "classification")
    if not os.path.exists(output):
        raise SystemExit(f"classification failed: {dock.status.text()}")
    return dict(dock.results.summary)


def _only_visible(project, keep) -> None:
    """Show `keep` layers only (the map the step is about)."""
    root = project.layerTreeRoot()
    ids = {layer.id() for layer in keep}
    for node in root.findLayers():
        node.setItemVisibilityChecked(node.layerId() in ids)


def _classify_step(iface, dock, out: str, output: str, name: str, backdrop) -> Dict[str, Any]:
    """Classify, show the class map over the optical, grab the Results tab."""
    from qgis.core import QgsProject

    summary = _classify(dock, output)
    _only_visible(QgsProject.instance(), dock.added_layers[:1] + [backdrop])
    iface.mapCanvas().setExtent(backdrop.extent())
    dock.tabs.setCurrentIndex(1)
    dock.tabs.currentWidget().verticalScrollBar().setValue(0)
    _grab(iface, iface.mainWindow(), os.path.join(out, name), f"dock {dock.width()} px wide")
    return summary


def _train_step(iface, dock, out: str, labels, minutes: float) -> Dict[str, Any]:
    """On the Train tab: the polygons as training layer, a short budget, Train; grab the tab before, during and
    after (the held-out report); returns the report."""
    panel, win = dock.train_panel, iface.mainWindow()
    scroll = dock.tabs.currentWidget()
    panel.labels.setLayer(labels)
    panel.minutes.setValue(minutes)
    _settle(0.5)
    _grab(iface, win, os.path.join(out, "train_walk_2_train_tab.png"), f"field '{panel.field.currentField()}'")
    panel.train_button.click()
    if panel.task is None:
        raise SystemExit(f"training did not start: {panel.status.text()}")
    _wait(lambda: panel.task is not None and not panel.chart.points()[0], "first epochs")
    scroll.ensureWidgetVisible(panel.chart, 0, 20)
    _grab(iface, win, os.path.join(out, "train_walk_3_training.png"), "training, chart")
    _wait(lambda: panel.task is not None, "training")
    if panel.report is None:
        raise SystemExit(f"training failed: {panel.status.text()}")
    _settle(1.0)  # the report's height is known once it has been laid out
    scroll.ensureWidgetVisible(panel.result_box, 0, 0)
    scroll.verticalScrollBar().setValue(panel.result_box.y())
    _settle(0.3)
    _grab(iface, win, os.path.join(out, "train_walk_4_report.png"), "held-out report")
    return panel.report


def _places_step(iface, dock, out: str, backdrop) -> Dict[str, Any]:
    """Back on the Train tab: "Where to label next", wait, show the numbered places over the polygons and the
    optical, grab the window; returns what the status line and the places said."""
    from qgis.core import QgsProject

    from ..core.suggest import as_dict

    panel = dock.train_panel
    dock.tabs.setCurrentIndex(2)
    if panel.next_button.isHidden():
        raise SystemExit("the report offers no 'Where to label next'")
    panel.next_button.click()
    if panel.places_task is None:
        raise SystemExit(f"finding the places did not start: {panel.status.text()}")
    _wait(lambda: panel.places_task is not None, "where to label next")
    shown = QgsProject.instance().mapLayersByName("Places to label next")
    if not shown:
        raise SystemExit(f"no places layer: {panel.status.text()}")
    _only_visible(QgsProject.instance(), shown + list(backdrop))
    iface.mapCanvas().setExtent(backdrop[-1].extent().buffered(backdrop[-1].extent().width() * 0.04))
    scroll = dock.tabs.currentWidget()
    scroll.verticalScrollBar().setValue(scroll.verticalScrollBar().maximum())
    _settle(0.5)
    _grab(iface, iface.mainWindow(), os.path.join(out, "train_walk_9_label_next.png"), "places to label next")
    d = as_dict(panel.places) if panel.places is not None else {}
    return {"status": panel.status.text(), "places": shown[0].featureCount(),
            "disagreement_pct": d.get("disagreement_pct"), "pairs": d.get("pairs")}


def _facts(work: str, before: Dict[str, Any], after: Dict[str, Any], report: Dict[str, Any],
           minutes: float) -> Dict[str, Any]:
    """What the walk showed, as numbers: class shares and unfamiliar share before / after, the held-out
    macro-F1 / OA / kappa of every arm, the leakage check, the training's epochs and seconds."""
    import torch

    arms = {arm: {cond: {k: m.get(k) for k in ("macro_f1", "oa", "kappa")} for cond, m in conds.items()}
            for arm, conds in report["arms"].items()}
    leak = report.get("leakage") or {}
    return {"shares_default": shares(os.path.join(work, "farmland_default.tif")),
            "shares_your_model": shares(os.path.join(work, "farmland_your_model.tif")),
            "unfamiliar_default": before.get("unfamiliar_share"),
            "unfamiliar_your_model": after.get("unfamiliar_share"),
            "heldout": arms, "random_pixel_split_rf_macro_f1": (leak.get("pixel_split") or {}).get("macro_f1"),
            "familiarity": report.get("familiarity"), "epochs": report["training"]["epochs"],
            "train_seconds": report["training"]["seconds"], "minutes_budget": minutes,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "matrix_products": torch_blas()}


def render_in_qgis(iface, out: str) -> List[str]:
    """Inside QGIS desktop: the whole walk, one PNG per step into `out`; the numbers to `out`/train_walk.json."""
    from qgis.core import QgsVectorLayer

    started = time.time()
    minutes = float(os.environ.get(MINUTES_KEY, "5"))
    dock, project, work, optical, sar = open_patch("claire_walk_")
    dock.optical.setLayer(optical)
    dock.sar.setLayer(sar)
    before = _classify_step(iface, dock, out, os.path.join(work, "farmland_default.tif"),
                            "train_walk_1_results_default.png", optical)
    dock.results.trust.linkActivated.emit("train")  # the user follows "Train it on your area"
    polygons = os.path.join(work, os.path.basename(POLYGONS))  # the user's own file: outputs go beside it
    shutil.copyfile(POLYGONS, polygons)
    labels = QgsVectorLayer(polygons, "my polygons (12)", "ogr")
    project.addMapLayer(labels)
    _only_visible(project, [labels, optical])
    report = _train_step(iface, dock, out, labels, minutes)
    dock.train_panel.classify_button.click()
    dock.tabs.currentWidget().verticalScrollBar().setValue(0)
    _grab(iface, iface.mainWindow(), os.path.join(out, "train_walk_5_run_your_model.png"), "Run tab, new card")
    after = _classify_step(iface, dock, out, os.path.join(work, "farmland_your_model.tif"),
                           "train_walk_6_results_your_model.png", optical)
    dock.tabs.setCurrentIndex(2)
    if dock.train_panel.forest_button.isHidden():
        raise SystemExit("the report offers no forest to classify with")
    dock.train_panel.forest_button.click()  # the user tries the forest too
    forest = _classify_step(iface, dock, out, os.path.join(work, "farmland_forest.tif"),
                            "train_walk_7_results_forest.png", optical)
    dock.tabs.setCurrentIndex(2)
    if dock.train_panel.ensemble_button.isHidden():
        raise SystemExit("the report offers no averaged model to classify with")
    dock.train_panel.ensemble_button.click()  # and the two averaged
    both = _classify_step(iface, dock, out, os.path.join(work, "farmland_both.tif"),
                          "train_walk_8_results_both.png", optical)
    places = _places_step(iface, dock, out, [labels, optical])
    facts = _facts(work, before, after, report, minutes)
    facts["label_next"] = places
    facts["shares_forest"] = shares(os.path.join(work, "farmland_forest.tif"))
    facts["unfamiliar_forest"] = forest.get("unfamiliar_share")
    facts["shares_both"] = shares(os.path.join(work, "farmland_both.tif"))
    facts["unfamiliar_both"] = both.get("unfamiliar_share")
    facts.update(dock_width=dock.width(), window=[iface.mainWindow().width(), iface.mainWindow().height()],
                 walk_seconds=round(time.time() - started, 1))
    with open(os.path.join(out, "train_walk.json"), "w", encoding="utf-8") as fh:
        json.dump(facts, fh, indent=1, default=str)
    print(json.dumps(facts, indent=1, default=str))
    shutil.rmtree(work, ignore_errors=True)
    return sorted(os.path.join(out, f) for f in os.listdir(out) if f.startswith("train_walk_"))


def main(argv: Optional[List[str]] = None) -> int:
    """Render the walk-through in real QGIS desktop (a fresh profile under --qgis)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--qgis", required=True, metavar="PROFILE_ROOT", help="fresh QGIS profile folder to use")
    parser.add_argument("--minutes", type=float, default=5.0,
                        help="training time budget (default 5: a ceiling, so that all 12 epochs run on a busy machine)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    os.environ[MINUTES_KEY] = str(args.minutes)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # one core for torch: the machine stays usable
        os.environ.setdefault(var, "1")
    return run_qgis(args.out, args.qgis, module="screenshots_walk", timeout=900)


if __name__ == "__main__":
    sys.exit(main())
