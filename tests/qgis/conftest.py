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
