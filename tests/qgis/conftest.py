"""Real QGIS (pytest-qgis, offscreen) with the CLAIRE plugin loaded through classFactory."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def claire_plugin(qgis_app, qgis_iface, qgis_processing):
    """The plugin as QGIS loads it: classFactory(iface) then initGui(); unloaded at the end."""
    import claire

    plugin = claire.classFactory(qgis_iface)
    plugin.initGui()
    yield plugin
    plugin.unload()


@pytest.fixture(autouse=True)
def _docks_closed_after_each_test():
    """Every dock a test made and left open is shut down (its wand, scene and background checks) and deleted
    after the test: PyQt's clean-up of live docks at the interpreter's exit crashed (rc 139 after "40 passed" in
    8 of 12 runs of test_gui.py alone, QA round 18)."""
    from qgis.PyQt.QtWidgets import QApplication

    app = QApplication.instance()
    before = {id(w) for w in app.topLevelWidgets()} if app is not None else set()
    yield
    if app is None:
        return
    from qgis.PyQt import sip

    from claire.claire_plugin.gui.dock import ClaireDock

    for widget in app.topLevelWidgets():
        if isinstance(widget, ClaireDock) and id(widget) not in before and not sip.isdeleted(widget):
            widget.shutdown()
            sip.delete(widget)
