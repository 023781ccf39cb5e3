"""`make demo` end to end: qgis_process on the bundled real scene with the bundled default checkpoint."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _snapshot(folder: str) -> dict:
    return {os.path.join(d, f): os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs}


@pytest.mark.slow
def test_demo_makes_a_styled_map_with_a_quicklook(tmp_path, default_checkpoint):
    data = os.path.join(REPO, "resources", "data")
    before = _snapshot(data)
    proc = subprocess.run([sys.executable, "-m", "claire.claire_plugin.tools.demo", "--build", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "demo" / "landcover.tif"
    png = tmp_path / "demo" / "landcover_quicklook.png"
    assert f"Classified GeoTIFF: {out}" in proc.stdout and f"Quick-look PNG:     {png}" in proc.stdout
    with rasterio.open(out) as dst:
        values = np.unique(dst.read(1))
        assert dst.colormap(1) is not None
    assert len(set(values.tolist()) - {0}) >= 3, "the real scene shows at least three land-cover classes"
    assert (tmp_path / "demo" / "landcover.qml").exists()
    assert png.stat().st_size > 20_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _snapshot(data) == before, "the bundled samples are left exactly as shipped"
