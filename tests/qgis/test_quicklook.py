"""The quick-look layout renders in this QGIS without calling anything it marks deprecated
(QGIS 3.40 deprecates the label and legend font setters that 3.22 still needs)."""
from __future__ import annotations

import warnings

import numpy as np

from claire.tests.fixtures.helpers import TINY_CLASSES, write_raster


def test_quicklook_renders_without_deprecated_calls(qgis_app, tmp_path):
    from qgis.core import QgsRasterLayer

    from claire.claire_plugin.layers.style import apply_landcover_style
    from claire.claire_plugin.tools.quicklook import render_layout

    labels = np.ones((60, 80), np.uint8)
    labels[:, 40:] = 2
    labels[30:, :] = 5
    path = write_raster(str(tmp_path / "lc.tif"), labels, nodata=0)
    land = QgsRasterLayer(path, "Land cover", "gdal")
    apply_landcover_style(land, TINY_CLASSES, nodata=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        png = render_layout(land, str(tmp_path / "ql.png"), "Land cover")
    ours = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)
            and w.filename.endswith("quicklook.py")]
    assert ours == []
    with open(png, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
