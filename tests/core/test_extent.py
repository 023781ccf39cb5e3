"""ClassifyParams.extent: the pixels an extent touches, classified on their own, equal the same pixels of a run
over the whole overlap (the same tiles: tiling.window), on a raster of that extent; bad extents are refused."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio

from claire.claire_plugin.core.engine import classify
from claire.claire_plugin.core.engine.tiling import TileGrid, window
from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.params import run_options
from claire.tests.fixtures.helpers import synthetic_scene, write_raster

X0, Y0, PX = 500000.0, 4600000.0, 10.0  # synthetic_scene's grid: origin and pixel size


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform


def _extent(r0, c0, r1, c1, inset=0.0):
    """The map extent of optical rows [r0, r1) and columns [c0, c1), shrunk by `inset` pixels."""
    return (X0 + (c0 + inset) * PX, Y0 - (r1 - inset) * PX, X0 + (c1 - inset) * PX, Y0 - (r0 + inset) * PX)


@pytest.fixture
def scene(tmp_path):
    optical, sar, _ = synthetic_scene(150, 130)
    opt = write_raster(str(tmp_path / "o.tif"), optical)
    # the SAR covers optical columns 0..109 and starts 30 rows lower: the overlap is rows 30..149, cols 0..109
    s = write_raster(str(tmp_path / "s.tif"), sar[:, :, :110], origin=(X0, Y0 - 30 * PX), descriptions=["VV", "VH"])
    return opt, s


def test_an_extent_gives_the_whole_runs_pixels_on_a_raster_of_that_extent(tmp_path, tiny_checkpoint, scene):
    opt, s = scene
    options = run_options(checkpoint=tiny_checkpoint, tile_size=32, context=16, threads=1)
    outs = dict(confidence="c.tif", reliance="r.tif")
    full = classify(options.params(opt, s, str(tmp_path / "full.tif"),
                                   **{k: str(tmp_path / f"full_{v}") for k, v in outs.items()}))
    want = {k: _read(getattr(full, k))[0] for k in ("output", "confidence", "reliance")}
    transform = _read(full.output)[1]
    cases = [((40, 10, 90, 70), 0.0, (40, 10, 90, 70)),     # inside the overlap
             ((40, 10, 90, 70), 0.3, (40, 10, 90, 70)),     # corners inside pixels: every pixel touched
             ((0, 90, 60, 130), 0.0, (30, 90, 60, 110)),    # across the overlap's edges: clipped to it
             ((100, 0, 150, 110), 0.0, (100, 0, 150, 110)),  # the last rows and columns of the overlap
             ((77, 55, 78, 56), 0.0, (77, 55, 78, 56))]     # one pixel
    for n, (box, inset, (r0, c0, r1, c1)) in enumerate(cases):
        params = options.params(opt, s, str(tmp_path / f"e{n}.tif"),
                                **{k: str(tmp_path / f"e{n}_{v}") for k, v in outs.items()})
        params.extent = _extent(*box[:2], *box[2:], inset=inset)
        res = classify(params)
        assert any(m.startswith("classifying the extent only") for m in res.messages)
        for key, full_values in want.items():
            got, t = _read(getattr(res, key))
            assert got.shape == (r1 - r0, c1 - c0), (n, key)
            assert np.array_equal(got, full_values[r0:r1, c0:c1]), (n, key)
            assert t == transform * rasterio.Affine.translation(c0, r0), (n, key)
        with rasterio.open(full.output) as ds:
            valid = int((want["output"][r0:r1, c0:c1] != ds.nodata).sum())
        assert res.summary["valid_pixels"] == valid and res.summary["nodata_pixels"] == (r1 - r0) * (c1 - c0) - valid
        counts = np.bincount(want["output"][r0:r1, c0:c1].ravel(), minlength=256)
        assert {c["value"]: c["pixels"] for c in res.summary["classes"]} == {
            c["value"]: int(counts[c["value"]]) for c in res.summary["classes"]}, n
        assert res.stats["tiles"] < full.stats["tiles"] or (r1 - r0, c1 - c0) == (120, 110)


def test_the_window_grid_runs_only_the_tiles_that_keep_the_columns():
    grid = TileGrid(0, 7, 64, 300, 32, 16)
    bounds = grid.col_axis[1]
    for start, stop in [(7, 40), (60, 61), (100, 307), (0, 400)]:
        sub, keep_rows, keep = window(grid, None, (start, stop))
        assert keep_rows is None and sub.row_range == grid.row_range and sub.col_axis == grid.col_axis
        a, b = sub.col_range
        assert bounds[a] <= keep[0] < bounds[a + 1] and bounds[b - 1] < keep[1] <= bounds[b]
        assert grid.col0 + keep[0] == max(start, 7) and grid.col0 + keep[1] == min(stop, 307)
        assert [j0 for _, j0, _ in sub.chunks(2)][:1] == [a] and max(j1 for _, _, j1 in sub.chunks(2)) == b


@pytest.mark.parametrize("extent, message", [
    ((500100.0, 4599000.0, 500100.0, 4599500.0), "is empty"),
    ((600000.0, 4599000.0, 600100.0, 4599500.0), "lies outside the optical raster"),
    ((500100.0, 4599800.0, 500500.0, 4599900.0), "holds no pixel where the optical and SAR rasters overlap"),
    (("a", 1, 2, 3), "is not four numbers"),
])
def test_a_bad_extent_is_refused_before_anything_is_written(tmp_path, tiny_checkpoint, scene, extent, message):
    opt, s = scene
    params = run_options(checkpoint=tiny_checkpoint, tile_size=32, context=16, threads=1).params(
        opt, s, str(tmp_path / "x.tif"))
    params.extent = extent
    with pytest.raises(ClaireError, match=message) as info:
        classify(params)
    assert str(info.value).startswith("the extent (--extent) ")  # the option named, as Processing and the dock rename it
    assert not (tmp_path / "x.tif").exists() and not list(tmp_path.glob("*.tmp*"))


def test_an_extent_starting_with_a_minus_sign_reaches_the_run(tmp_path, tiny_checkpoint):
    """`--extent -48.1,-25.4,-48.0,-25.3` (any extent west of Greenwich or south of the equator in degrees) was
    refused by argparse ("expected one argument"); a lone negative number still parses as before."""
    from claire.claire_plugin.cli.main import build_parser, join_negative_lists

    argv = ["classify", "--optical", "o.tif", "--sar", "s.tif", "--output", "c.tif", "--extent",
            "-48.1,-25.4,-4.8e1,-25.3", "--optical-offset", "-1000"]
    joined = join_negative_lists(argv)
    assert joined[-3:] == ["--extent=-48.1,-25.4,-4.8e1,-25.3", "--optical-offset", "-1000"]
    args = build_parser().parse_args(joined)
    assert args.extent == "-48.1,-25.4,-4.8e1,-25.3"
    assert join_negative_lists(["--extent", "500000,4600000,500100,4600100"])[1] == "500000,4600000,500100,4600100"


def test_extent_text_in_messages_has_no_exponents():
    """Bounds in extent messages as typed (a UTM northing printed as 7.1958e+06 before)."""
    from claire.claire_plugin.core.engine.plan import _extent_text

    assert _extent_text((500000.0, 7195800.25, -48.123456, 0.5)) == "500000,7195800.25,-48.123456,0.5"
