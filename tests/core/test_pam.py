"""core.io.pam: which processes switch GDAL's PAM off, and the scoped switch."""
from __future__ import annotations

from claire.claire_plugin.core.io.pam import pam_off, runs_claire_algorithm


def test_only_a_claire_run_of_qgis_process_counts():
    assert runs_claire_algorithm(["/usr/bin/qgis_process.bin", "run", "claire:classify", "--json", "--", "A=1"])
    assert runs_claire_algorithm(["qgis_process", "--json", "run", "claire:train"])
    assert not runs_claire_algorithm(["qgis_process", "run", "native:buffer", "--", "INPUT=claire:x"])
    assert not runs_claire_algorithm(["qgis_process", "help", "claire:classify"])
    assert not runs_claire_algorithm(["qgis_process"])


def test_pam_off_is_scoped_and_restores_the_previous_value():
    from osgeo import gdal

    gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", "YES")
    try:
        with pam_off():
            assert gdal.GetConfigOption("GDAL_PAM_ENABLED") == "NO"
        assert gdal.GetConfigOption("GDAL_PAM_ENABLED") == "YES"
    finally:
        gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", None)
