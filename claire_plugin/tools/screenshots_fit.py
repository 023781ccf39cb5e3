"""Screenshots of the dock's fit check (issue 19 class 9) and advanced options, in the QGIS-like main window
of screenshots_train (map canvas + the CLAIRE dock at the ~300 px a new dock gets): one PNG per mistake a new
user makes with the bundled site (the same layer twice, SAR not in dB, a SAR of another place, band files
stacked alphabetically with B10 for B8A, or with B8A last and reordered, a 60 m optical, unnamed bands on a snow
scene whose order cannot be checked), cropped to the dock's
input and checkpoint boxes, one of the options and one of the Train tab's settings.

    xvfb-run -s "-screen 0 1600x1000x24" python -m claire.claire_plugin.tools.screenshots_fit --out build/shots
    python -m claire.claire_plugin.tools.screenshots_fit --out build/shots/qgis --qgis build/qgis-shots

With --qgis the same cases are rendered in real QGIS desktop (`qgis --code`), its dock opened by the plugin's own
action at the width QGIS gives it.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Dict, List, Optional

from ..paths import resource
from .screenshots import SITE, _app
from .screenshots_train import _settle, _window

S2_L2A = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def _inputs(work: str) -> Dict[str, Dict[str, str]]:
    """{case: {optical, sar}} files made from the bundled site in `work` (the bundled files stay as shipped)."""
    import numpy as np
    import rasterio
    from osgeo import gdal

    data = resource("data", "terramesh")
    s2, s1 = os.path.join(data, "S2L2A", f"{SITE}.tif"), os.path.join(data, "S1RTC", f"{SITE}.tif")
    with rasterio.open(s1) as src:
        profile, db = src.profile, src.read().astype("float32")
    dn = os.path.join(work, "S1_digital_numbers.tif")
    with rasterio.open(dn, "w", **dict(profile, dtype="float32", nodata=None)) as dst:
        dst.write((600 * 10 ** (np.nan_to_num(db, nan=-20.0) / 20)).astype("float32"))
    files = {}
    with rasterio.open(s2) as src:
        for i, band in enumerate(S2_L2A):
            files[band] = os.path.join(work, f"T31TCJ_{band}_10m.tif")
            with rasterio.open(files[band], "w", **dict(src.profile, count=1)) as dst:
                dst.write(src.read(i + 1), 1)
    ordered = os.path.join(work, "stack_alphabetical.vrt")  # all 12 bands, as `ls *.tif` lists them: reordered
    gdal.BuildVRT(ordered, [files[b] for b in sorted(files)], separate=True).FlushCache()
    files["B10"] = os.path.join(work, "T31TCJ_B10_10m.tif")  # B10 in place of B8A: refused
    gdal.Translate(files["B10"], files.pop("B8A")).FlushCache()
    vrt = os.path.join(work, "stack.vrt")
    gdal.BuildVRT(vrt, [files[b] for b in sorted(files)], separate=True).FlushCache()
    coarse = os.path.join(work, "S2_60m.tif")
    gdal.Translate(coarse, s2, xRes=60, yRes=60, resampleAlg="average").FlushCache()
    far = os.path.join(work, "S1_another_place.tif")  # the same SAR moved 50 km east: no pixel in common
    with rasterio.open(s1) as src:
        gdal.Translate(far, s1, outputBounds=[src.bounds.left + 50000, src.bounds.top, src.bounds.right + 50000,
                                              src.bounds.bottom]).FlushCache()
    return {"same_layer": {"optical": s2, "sar": s2}, "sar_not_db": {"optical": s2, "sar": dn},
            "not_overlapping": {"optical": s2, "sar": far},
            "vrt_alphabetical": {"optical": vrt, "sar": s1}, "vrt_reordered": {"optical": ordered, "sar": s1},
            "pixel_60m": {"optical": coarse, "sar": s1},
            "order_unchecked": {"optical": os.path.join(data, "S2L2A", "609U_541L_3_0.tif"),  # snow: no vegetation
                                "sar": os.path.join(data, "S1RTC", "609U_541L_3_0.tif")}}


def _crop(dock, path: str) -> str:
    """The dock's input and checkpoint boxes, as laid out at the dock's width."""
    from qgis.PyQt.QtCore import QPoint, QRect

    page = dock.optical.window() and dock.picker.parentWidget().parentWidget()
    inputs, model = dock.optical.parentWidget().parentWidget(), dock.picker.parentWidget()
    top = inputs.mapTo(page, QPoint(0, 0)).y()
    bottom = model.mapTo(page, QPoint(0, model.height())).y()
    page.grab(QRect(0, top, page.width(), bottom - top)).save(path)
    print(f"wrote {path} ({page.width()} px wide)")
    return path


def render(out: str, work: str) -> List[str]:
    """One PNG per mistake and one of the advanced options, into `out` (the QGIS-like window)."""
    win = canvas = dock = None
    from qgis.core import QgsProject, QgsRasterLayer

    from ..layers.layers import no_input_sidecars

    with no_input_sidecars():
        first = QgsRasterLayer(resource("data", "terramesh", "S2L2A", f"{SITE}.tif"), SITE, "gdal")
    QgsProject.instance().addMapLayer(first)
    win, canvas, dock = _window([first])
    return _render_cases(dock, win, out, work)


def _render_cases(dock, win, out: str, work: str) -> List[str]:
    from qgis.core import QgsProject, QgsRasterLayer

    from ..layers.layers import no_input_sidecars

    project, shots = QgsProject.instance(), []
    for name, pair in _inputs(work).items():
        layers = {}
        for role in ("optical", "sar"):
            if pair[role] not in layers:
                with no_input_sidecars():
                    layers[pair[role]] = QgsRasterLayer(pair[role], f"{role} {os.path.basename(pair[role])}", "gdal")
                project.addMapLayer(layers[pair[role]])
        dock.optical.setLayer(layers[pair["optical"]])
        dock.sar.setLayer(layers[pair["sar"]])
        dock._update_fit()
        _settle(0.4)
        shots.append(_crop(dock, os.path.join(out, f"fit_{name}.png")))
    dock.tabs.setCurrentIndex(0)
    dock.tabs.currentWidget().ensureWidgetVisible(dock.runtime, 0, 50)
    _settle(0.3)
    for path, widget in (("options_advanced.png", dock.runtime.parentWidget()), ("dock_at_default_width.png", dock),
                         ("window_fit_pixel_60m.png", win)):
        widget.grab().save(os.path.join(out, path))
        print(f"wrote {os.path.join(out, path)} ({widget.width()} px wide)")
        shots.append(os.path.join(out, path))
    dock.tabs.setCurrentWidget(dock.tabs.widget(dock.tabs.count() - 1))
    dock.tabs.currentWidget().ensureWidgetVisible(dock.train_panel.sar_units, 0, 50)
    _settle(0.3)
    path = os.path.join(out, "train_settings.png")
    dock.train_panel.sar_units.parentWidget().grab().save(path)
    print(f"wrote {path} ({dock.train_panel.width()} px wide)")
    return shots + [path]


def render_in_qgis(iface, out: str) -> List[str]:
    """Inside QGIS desktop (`qgis --code`): open the plugin's dock the way its menu does, in QGIS's main window
    at the width QGIS gives a new dock, and render the same cases as `render`."""
    from qgis.utils import plugins

    from ..gui.actions import toggle_dock

    plugin = plugins["claire"]
    toggle_dock(plugin, True)
    _settle(1.0)
    work = tempfile.mkdtemp(prefix="claire_shots_")
    return _render_cases(plugin.dock, iface.mainWindow(), out, work)


_CODE = """import os, sys, traceback
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface

def _go():
    try:
        win = iface.mainWindow()
        if win.width() < 1280 or win.height() < 800:  # QGIS 3.40 under Xvfb, no window manager: ~1150 x 380
            win.resize(max(win.width(), 1280), max(win.height(), 800))
        from claire.claire_plugin.tools.{module} import render_in_qgis
        render_in_qgis(iface, {out!r})
    except Exception:
        traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # no dataset is closed: nothing is written next to the inputs on the way out

QTimer.singleShot(3000, _go)
"""


def run_qgis(out: str, root: str, module: str = "screenshots_fit", timeout: int = 600) -> int:
    """Start QGIS desktop (`qgis`, under xvfb-run when there is no display) with a fresh profile in `root`
    holding this plugin, and run `render_in_qgis(iface, out)` of tools/`module` in its main window; returns
    QGIS's exit status (`timeout`: seconds before it is stopped)."""
    import subprocess

    from ..install import install

    install(os.path.join(root, "profiles", "default"))
    runtime = os.path.join(root, "runtime")
    os.makedirs(runtime, mode=0o700, exist_ok=True)
    code = os.path.join(root, "screenshots_fit_code.py")
    with open(code, "w", encoding="utf-8") as fh:
        fh.write(_CODE.format(out=os.path.abspath(out), module=module))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(XDG_RUNTIME_DIR=runtime, QT_QPA_PLATFORM="xcb")
    cmd = ["qgis", "--profiles-path", root, "--profile", "default", "--nologo", "--noversioncheck", "--code", code]
    if not os.environ.get("DISPLAY"):
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24"] + cmd
    return subprocess.run(cmd, env=env, timeout=timeout).returncode


def qgis_main(argv: Optional[List[str]], module: str, description: str, timeout: int = 600) -> int:
    """The command line of a tools/`module` rendered in real QGIS desktop: --out, --qgis (a fresh profile root)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", required=True)
    parser.add_argument("--qgis", required=True, metavar="PROFILE_ROOT", help="fresh QGIS profile folder to use")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    return run_qgis(args.out, args.qgis, module=module, timeout=timeout)


def main(argv: Optional[List[str]] = None) -> int:
    """Render the fit-check screenshots into --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--qgis", metavar="PROFILE_ROOT",
                        help="render in real QGIS desktop, with a fresh profile under this folder")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.qgis:
        return run_qgis(args.out, args.qgis)
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    _app()
    with tempfile.TemporaryDirectory() as work:
        render(args.out, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
