"""The command line states GDAL's error mode without changing it (GDAL 3.9+ warns mid-run otherwise)."""
from __future__ import annotations

import subprocess
import sys

from claire.claire_plugin.paths import PACKAGE_ROOT

PROBE = """
import warnings
from osgeo import gdal
from claire.claire_plugin.core.runtime.environment import state_gdal_error_mode
if {chosen!r}:
    gdal.UseExceptions()
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    stated = state_gdal_error_mode()
    gdal.Info({path!r}, format="json")
print(stated, gdal.GetUseExceptions(), sum("explicitly called" in str(w.message) for w in seen))
"""


def _probe(chosen: bool) -> str:
    path = f"{PACKAGE_ROOT}/resources/data/terramesh/LULC/433D_629L_3_1.tif"
    out = subprocess.run([sys.executable, "-c", PROBE.format(chosen=chosen, path=path)], capture_output=True,
                         text=True, check=True)
    return out.stdout.split()


def test_the_default_mode_is_stated_and_kept():
    assert _probe(False) == ["True", "0", "0"]  # no GDAL 4.0 warning, exceptions still off


def test_a_mode_already_chosen_is_left_alone():
    assert _probe(True) == ["False", "1", "0"]
