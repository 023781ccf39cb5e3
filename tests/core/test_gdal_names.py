"""GDAL dataset names (archive members, pages, subdatasets, remote files) as inputs: what counts as
missing, and which file on disk an output must not overwrite (core/gdal_names.py, raster_io.same_file)."""
from __future__ import annotations

import zipfile

import pytest

from claire.claire_plugin.core.io.gdal_names import is_gdal_name, local_files, missing_message
from claire.claire_plugin.core.io.raster_io import same_file


@pytest.fixture()
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stack.tif").write_bytes(b"x")
    with zipfile.ZipFile(tmp_path / "scene.zip", "w") as z:
        z.writestr("B04.tif", b"x")
    return tmp_path


@pytest.mark.parametrize("name, gdal", [
    ("stack.tif", False), ("/data/s2/T33UUP.tif", False), ("C:/data/x.tif", False), ("C:\\data\\x.tif", False),
    ("/vsizip/scene.zip/B04.tif", True), ("GTIFF_DIR:2:stack.tif", True), ("/vsicurl/https://host/a.tif", True),
    ('NETCDF:"stack.tif":VV', True), ("SENTINEL2_L2A:/d/MTD_MSIL2A.xml:10m:EPSG_32633", True),
])
def test_which_names_are_gdal_names(name, gdal):
    assert is_gdal_name(name) is gdal


def test_files_behind_names(files):
    z, st = str(files / "scene.zip"), str(files / "stack.tif")
    assert local_files("/vsizip/scene.zip/B04.tif") == ["scene.zip"]
    assert local_files(f"/vsizip/{z}/B04.tif") == [z]  # QGIS writes /vsizip//abs/path
    assert local_files(f"/vsizip/{{{z}}}/B04.tif") == [z]
    assert local_files(f"/vsizip//vsizip/{z}/inner.zip/B04.tif") == [z]
    assert local_files("GTIFF_DIR:2:stack.tif") == ["stack.tif"]
    assert local_files(f'NETCDF:"{st}":VV') == [st]
    assert local_files(f"SENTINEL2_L2A:{st}:10m:EPSG_32633") == [st]
    assert local_files("/vsicurl/https://host/a.tif") == []
    assert local_files("/vsizip/missing.zip/B04.tif") == []


def test_missing_names_are_reported_and_remote_ones_left_to_gdal(files):
    assert missing_message("/vsizip/scene.zip/B04.tif", "optical") is None
    assert missing_message("GTIFF_DIR:1:stack.tif", "SAR") is None
    assert missing_message("/vsicurl/https://host/a.tif", "SAR") is None
    assert "does not exist; check the path" in missing_message("gone.tif", "optical")
    msg = missing_message("/vsizip/gone.zip/B04.tif", "optical")
    assert "GDAL dataset name" in msg and "check the path inside the name" in msg


def test_an_output_is_the_same_file_as_the_file_behind_an_input_name(files):
    z = str(files / "scene.zip")
    assert same_file("stack.tif", "GTIFF_DIR:1:stack.tif")
    assert same_file(z, f"/vsizip/{z}/B04.tif")
    assert same_file("scene.zip", f"/vsizip/{z}/B04.tif")
    assert not same_file("other.tif", "GTIFF_DIR:1:stack.tif")
    assert not same_file("stack.tif", "/vsicurl/https://host/stack.tif")
