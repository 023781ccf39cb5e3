"""core.io.pam: the scoped switch of GDAL's PAM."""
from __future__ import annotations

from claire.claire_plugin.core.io.pam import pam_off


def test_pam_off_is_scoped_and_restores_the_previous_value():
    from osgeo import gdal

    gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", "YES")
    try:
        with pam_off():
            assert gdal.GetConfigOption("GDAL_PAM_ENABLED") == "NO"
        assert gdal.GetConfigOption("GDAL_PAM_ENABLED") == "YES"
    finally:
        gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", None)
