"""Property test of the engine (issue 7): over random raster shapes, optical dtypes, nodata masks, CRS pairs
and tile/overlap settings, the output lies on the optical grid, is uint8 with the card's nodata, is nodata
exactly where an input is invalid, and holds only the checkpoint's class values. A run whose SAR has no valid
pixel, or whose optical has no valid pixel under the SAR, must instead end in a ClaireError that says so
(and leave no output).

Invalid input pixel: an optical band is not finite, or every optical band equals the optical nodata value,
or a SAR band is not finite (or outside the SAR footprint) after resampling onto the optical grid
(the oracle resamples with GDAL's warper the way the engine documents: bilinear, onto the optical grid).
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st

torch.set_num_threads(1)
from claire.tests.fixtures import bad_inputs as C

_MODEL = {}


def tiny_model():
    """(model, card) of the tiny checkpoint, built and loaded once per session."""
    if not _MODEL:
        from claire.models.checkpoint import load_checkpoint

        folder = tempfile.mkdtemp(prefix="claire_prop_")
        _MODEL["mc"] = load_checkpoint(C.make_tiny_checkpoint(os.path.join(folder, "tiny.safetensors")))
    return _MODEL["mc"]


#: 0-based bands of a 12-band L2A stack that the checkpoint uses (all but B01 and B09).
USED_L2A = [1, 2, 3, 4, 5, 6, 7, 8, 10, 11]
#: Reflectance x 10000 of any surface (values no surface has are refused: test_units.py), plus pixels at the
#: type's maximum, Sentinel-2's saturation marker. 8-bit optical is refused (not reflectance x 10000).
DTYPES = {"uint16": (1, 12000), "int16": (-50, 12000), "float32": (0.0, 12000.0)}


@st.composite
def scenes(draw):
    rows = draw(st.integers(1, 45))
    cols = draw(st.integers(1, 45))
    tile = draw(st.sampled_from([32, 64, 96]))
    context = draw(st.sampled_from([0, 16, 32]))
    return dict(
        rows=rows, cols=cols, tile=tile, context=context,
        dtype=draw(st.sampled_from(sorted(DTYPES))),
        opt_nodata=draw(st.booleans()),
        opt_holes=draw(st.sampled_from([0.0, 0.05, 0.4, 0.9, 0.0, 1.0])),
        sar_holes=draw(st.sampled_from([0.0, 0.05, 0.4, 0.9, 0.0, 1.0])),
        crs_pair=draw(st.sampled_from(["same grid", "SAR at 20 m", "SAR in EPSG:4326", "SAR shifted"])),
        seed=draw(st.integers(0, 2 ** 16)),
    )


def _write_inputs(folder: str, s: dict):
    """Write the optical and SAR rasters of a drawn scene; return their paths and the optical invalid mask."""
    rng = np.random.default_rng(s["seed"])
    rows, cols, dtype = s["rows"], s["cols"], np.dtype(s["dtype"])
    lo, hi = DTYPES[s["dtype"]]
    # any brightness, in a surface's spectral shape (B01..B12 without B10): independent random bands are no
    # image, and the engine refuses bands whose spectra say they are stacked in another order (test_bands.py)
    shape = np.array([0.45, 0.5, 0.55, 0.5, 0.65, 0.8, 0.85, 0.9, 0.9, 0.3, 0.75, 0.55])[:, None, None]
    brightness = rng.uniform(0.0, 1.0, (1, rows, cols))
    opt = lo + (hi - lo) * brightness * shape * rng.uniform(0.9, 1.1, (12, rows, cols))
    saturated = rng.random((rows, cols)) < 0.05
    saturated.flat[0] = False  # an image, not only saturated pixels
    opt[:, saturated] = np.iinfo(dtype).max if dtype.kind in "ui" else hi
    opt = opt.astype(dtype)
    holes = rng.random((rows, cols)) < s["opt_holes"]
    nodata = None
    opt_bad = np.zeros((rows, cols), bool)
    if s["opt_nodata"]:
        nodata = 0 if dtype.kind in "ui" else -9999.0
        opt[:, holes] = nodata
        opt_bad |= holes
    elif dtype.kind == "f":
        band = rng.integers(0, 12, (rows, cols))
        for b in range(12):
            opt[b][holes & (band == b)] = np.nan  # NaN in one band the checkpoint uses is enough
        opt_bad |= holes & np.isin(band, USED_L2A)
    optical = C.write_tif(os.path.join(folder, "optical.tif"), opt, nodata=nodata)

    pair = s["crs_pair"]
    if pair == "same grid":
        s_rows, s_cols, origin, res, crs = rows, cols, C.ORIGIN, C.RES, "EPSG:32631"
    elif pair == "SAR shifted":  # partial overlap: the SAR starts half-way into the optical
        s_rows, s_cols, crs, res = rows, cols, "EPSG:32631", C.RES
        origin = (C.ORIGIN[0] + (cols // 2) * C.RES, C.ORIGIN[1] - (rows // 2) * C.RES)
    elif pair == "SAR at 20 m":
        s_rows, s_cols, origin, res, crs = rows // 2 + 3, cols // 2 + 3, (C.ORIGIN[0] - 20, C.ORIGIN[1] + 20), 20.0, \
            "EPSG:32631"
    else:
        from rasterio.warp import transform_bounds

        left, bottom, right, top = transform_bounds("EPSG:32631", "EPSG:4326", C.ORIGIN[0], C.ORIGIN[1] - rows * C.RES,
                                                    C.ORIGIN[0] + cols * C.RES, C.ORIGIN[1])
        res = 8e-5
        s_rows, s_cols = int((top - bottom) / res) + 6, int((right - left) / res) + 6
        origin, crs = (left - 3 * res, top + 3 * res), "EPSG:4326"
    sar = (np.array([-12.0, -18.0])[:, None, None] + rng.normal(0, 4, (2, s_rows, s_cols))).astype(np.float32)
    s_holes = rng.random((s_rows, s_cols)) < s["sar_holes"]
    sar[rng.integers(0, 2), s_holes] = np.nan
    sar_path = C.write_tif(os.path.join(folder, "sar.tif"), sar, crs=crs, origin=origin, res=res,
                           descriptions=["VV", "VH"])
    return optical, sar_path, opt_bad


def _sar_invalid_on_optical_grid(optical: str, sar: str) -> np.ndarray:
    """The SAR resampled onto the optical grid (core.warp.GridWarp, bilinear, NaN outside; checked against
    a per-pixel oracle in test_warp.py), invalid where not finite."""
    import rasterio

    from claire.claire_plugin.core.io.warp import GridWarp

    with rasterio.open(optical) as o, rasterio.open(sar) as s:
        return ~np.isfinite(GridWarp(s, o).read()).all(axis=0)


@seed(20240607)
@settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenes())
def test_engine_invariants(s):
    import rasterio

    from claire.claire_plugin.core.engine import run
    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.core.params import ClassifyParams

    model, card = tiny_model()
    values = {int(c["value"]) for c in card["classes"]}
    nodata = int(card["nodata"])
    with tempfile.TemporaryDirectory() as folder:
        optical, sar, opt_bad = _write_inputs(folder, s)
        invalid = opt_bad | _sar_invalid_on_optical_grid(optical, sar)
        out = os.path.join(folder, "out.tif")
        params = ClassifyParams(optical=optical, sar=sar, output=out, tile_size=s["tile"], context=s["context"],
                                batch_size=2, device="cpu")
        region = np.ones_like(invalid)  # the overlap the engine processes (optical pixels under the SAR)
        if s["crs_pair"] == "SAR shifted":
            region[:] = False
            region[s["rows"] // 2:, s["cols"] // 2:] = True
        sar_valid = ~_sar_invalid_on_optical_grid(optical, sar)
        opt_valid = ~opt_bad & region
        event(f"{s['crs_pair']}, {s['dtype']}")
        if not sar_valid.any() or not opt_valid.any():
            which = "SAR" if not sar_valid.any() else "optical"
            event(f"refused: no valid {which} pixel")
            with pytest.raises(ClaireError, match=f"the {which} raster has no valid values"):
                run(params, model, card)
            assert not os.path.exists(out)
            assert sorted(os.listdir(folder)) == ["optical.tif", "sar.tif"], "no partial file left"
            return
        result = run(params, model, card)
        assert result.output == out
        with rasterio.open(optical) as o, rasterio.open(out) as d:
            assert (d.crs, d.transform, d.width, d.height) == (o.crs, o.transform, o.width, o.height)
            assert d.count == 1 and d.dtypes[0] == "uint8" and d.nodata == nodata
            got = d.read(1)
        assert set(np.unique(got).tolist()) <= values | {nodata}
        np.testing.assert_array_equal(got == nodata, invalid, err_msg=f"nodata mask differs for {s}")
        assert result.summary["valid_pixels"] == int((~invalid).sum())
