"""core.cluster_scene: one scene in bands of rows on a real Dask cluster equals a single-machine run."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio

from claire.claire_plugin.cli.main import main
from claire.claire_plugin.core.cluster_scene import split_rows
from claire.claire_plugin.core.errors import ClaireError
from claire.tests.fixtures.helpers import synthetic_scene, write_raster

ARGS = ["--tile-size", "32", "--context", "16", "--threads", "1", "--quiet"]


def test_split_rows_covers_the_raster_once():
    assert split_rows(300, 3) == [(0, 100), (100, 200), (200, 300)]
    assert split_rows(5000, 3) == [(0, 1792), (1792, 3584), (3584, 5000)]  # block-row edges
    assert split_rows(10, 4) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    with pytest.raises(ClaireError, match="--parts 0"):
        split_rows(10, 0)


def _read(path, colours: bool = False):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform, ds.crs, ds.colormap(1) if colours else None


def test_a_scene_split_over_the_cluster_equals_the_single_run(dask_cluster, tmp_path, tiny_checkpoint):
    optical, sar, _ = synthetic_scene(300, 70)
    opt = write_raster(str(tmp_path / "o.tif"), optical)
    s = write_raster(str(tmp_path / "s.tif"), sar, descriptions=["VV", "VH"])
    common = ["classify", "--optical", opt, "--sar", s, "--checkpoint", tiny_checkpoint, *ARGS]
    assert main([*common, "--output", str(tmp_path / "one.tif"), "--confidence", str(tmp_path / "one_c.tif")]) == 0
    assert main([*common, "--output", str(tmp_path / "split.tif"), "--confidence", str(tmp_path / "split_c.tif"),
                 "--scheduler", dask_cluster.address, "--parts", "3"]) == 0
    assert main([*common, "--output", str(tmp_path / "split.vrt"), "--confidence", str(tmp_path / "split_c.vrt"),
                 "--scheduler", dask_cluster.address, "--parts", "4", "--vrt"]) == 0
    one, transform, crs, cmap = _read(str(tmp_path / "one.tif"), colours=True)
    one_c = _read(str(tmp_path / "one_c.tif"))[0]
    for name, conf in (("split.tif", "split_c.tif"), ("split.vrt", "split_c.vrt")):
        got, t, c, got_cmap = _read(str(tmp_path / name), colours=True)
        assert (t, c) == (transform, crs) and got_cmap[1] == cmap[1]
        assert np.array_equal(got, one), name
        assert np.array_equal(_read(str(tmp_path / conf))[0], one_c), conf
    kept = sorted(n for n in os.listdir(tmp_path / "split_parts") if n.endswith(".tif"))
    assert kept == [f"part_00{k}{s}.tif" for k in range(4) for s in ("", "_confidence")]
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []
    from osgeo import gdal

    from claire.claire_plugin.core.io.pam import pam_on

    with pam_on():  # the category names live in the .aux.xml, which GDAL_PAM_ENABLED=NO hides
        info = gdal.Info(str(tmp_path / "split.vrt"), format="json")["bands"][0]  # described as the GeoTIFF is
        single = gdal.Info(str(tmp_path / "one.tif"), format="json")["bands"][0]
    assert info["description"] == single["description"] == "land cover class"
    assert info["categories"] == single["categories"] and info["metadata"][""] == single["metadata"][""]
    # a second run replaces the first run's parts, never a folder of other files (the inputs here)
    assert main([*common, "--output", str(tmp_path / "split.vrt"), "--scheduler", dask_cluster.address,
                 "--parts", "2", "--vrt"]) == 0
    assert sorted(n for n in os.listdir(tmp_path / "split_parts") if n.endswith(".tif")) == ["part_000.tif",
                                                                                             "part_001.tif"]


def test_a_vrt_never_replaces_a_folder_of_other_files(tmp_path, tiny_checkpoint):
    """`<output stem>_parts/` holding anything but an earlier run's parts (here the optical input itself, and a
    notes file) is refused before any band runs, and left as it was."""
    from claire.claire_plugin.core.cluster_scene import classify_scene
    from claire.claire_plugin.core.params import run_options

    optical, sar, _ = synthetic_scene(64, 64)
    parts = tmp_path / "scene_parts"
    parts.mkdir()
    opt = write_raster(str(parts / "s2.tif"), optical)
    s = write_raster(str(tmp_path / "s.tif"), sar, descriptions=["VV", "VH"])

    class NoCluster:
        def run(self, *a, **k):
            raise AssertionError("no band may run")
    with pytest.raises(ClaireError, match=r"scene_parts.*holds files that are not an earlier run's parts \(.*s2\.tif"):
        classify_scene(run_options(checkpoint=tiny_checkpoint), opt, s, str(tmp_path / "scene.vrt"), NoCluster(),
                       parts=2, vrt=True)
    (parts / "notes.txt").write_text("mine")
    with pytest.raises(ClaireError, match=r"notes\.txt"):
        classify_scene(run_options(checkpoint=tiny_checkpoint), s, s, str(tmp_path / "scene.vrt"), NoCluster(),
                       parts=2, vrt=True)
    assert sorted(os.listdir(parts)) == ["notes.txt", "s2.tif"]


def test_bands_thinner_than_a_row_of_tiles_are_not_made(tmp_path):
    """A band runs every tile keeping one of its rows: on a raster of one row of tiles, --parts 1000 made 1000
    bands each running the whole raster (90x the time); at most one band per row of tiles is made."""
    from claire.claire_plugin.core.cluster_scene import most_parts
    from claire.claire_plugin.core.params import run_options

    assert most_parts(224, 224, run_options()) == 1  # read whole, one window
    assert most_parts(300, 70, run_options(tile_size=32, context=16)) == 9  # kept cores of 32 px
    assert most_parts(5000, 5000, run_options()) == 6


def test_the_most_bands_follow_the_checkpoints_tiling(tiny_checkpoint):
    """QA (round 19): the rows of tiles were counted at the engine's defaults (896 px cores), not the checkpoint's:
    with the tiny card's 32 px cores a 96 px scene was "1 row of tiles" where its run makes 2 (and more bands)."""
    from claire.claire_plugin.core.cluster_scene import most_parts
    from claire.claire_plugin.core.engine.tiling import TileGrid, card_tiling
    from claire.claire_plugin.core.params import run_options
    from claire.models.checkpoint import read_card

    core, context = card_tiling(read_card(tiny_checkpoint))
    rows = len(TileGrid.fitted(0, 0, 300, 96, core, context).row_axis[0])
    assert core == 32 and rows > 1
    assert most_parts(300, 96, run_options(checkpoint=tiny_checkpoint)) == rows
    assert most_parts(300, 96, run_options(checkpoint="/on/the/workers/only.safetensors")) == 1  # the defaults


def test_parts_below_one_are_refused_before_any_cluster(tmp_path, raster_pair, capsys):
    for extra in (["--scheduler", "tcp://127.0.0.1:1"], []):
        code = main(["classify", "--optical", raster_pair["optical"], "--sar", raster_pair["sar"], "--output",
                     str(tmp_path / "x.tif"), "--parts", "0", *extra])
        assert code == 2 and "--parts 0: give 1 or more bands" in capsys.readouterr().err


def test_paths_for_workers_are_absolute():
    from claire.claire_plugin.core.cluster import shared_path

    assert shared_path("a/b.tif") == os.path.join(os.getcwd(), "a", "b.tif")
    assert shared_path("/vsis3/bucket/b.tif") == "/vsis3/bucket/b.tif" and shared_path(None) is None
    assert shared_path('NETCDF:"x.nc":vv') == 'NETCDF:"x.nc":vv'


def test_split_options_need_a_scheduler(tmp_path, raster_pair, capsys):
    code = main(["classify", "--optical", raster_pair["optical"], "--sar", raster_pair["sar"], "--output",
                 str(tmp_path / "x.vrt"), "--vrt"])
    assert code == 2 and "give --scheduler too" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--extent", "--cloud", "--unfamiliar"])
def test_switches_a_split_scene_cannot_honour_are_refused_not_ignored(tmp_path, raster_pair, capsys, flag):
    value = {"--extent": ["500000,4599500,500300,4600000"], "--cloud": [str(tmp_path / "c.tif")],
             "--unfamiliar": [str(tmp_path / "u.tif")]}.get(flag, [])
    code = main(["classify", "--optical", raster_pair["optical"], "--sar", raster_pair["sar"], "--output",
                 str(tmp_path / "x.tif"), "--scheduler", "local:1", flag, *value])
    err = capsys.readouterr().err
    assert code == 2 and f"{flag} cannot be combined with --scheduler" in err
    assert not os.path.exists(tmp_path / "x.tif")


def test_the_output_name_follows_what_is_written(tmp_path):
    """--vrt writes a VRT over the parts: a .tif name would hold VRT text; without --vrt a .vrt name would hold a
    GeoTIFF. Both refused before the cluster is asked anything."""
    from claire.claire_plugin.core.cluster_scene import classify_scene
    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.core.params import run_options

    opt = tmp_path / "o.tif"
    opt.write_text("never read\n")
    for name, vrt, words in (("m.tif", True, r"ends in \.tif, but the output is written as a VRT over the parts"),
                             ("m.vrt", False, r"ends in \.vrt, but the output is written as a GeoTIFF")):
        with pytest.raises(ClaireError, match=words):
            classify_scene(run_options(), str(opt), str(opt), str(tmp_path / name), None, parts=2, vrt=vrt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.tif"]


def test_the_bands_note_gives_the_number_of_bands_used():
    """QA (consistency): "--parts 4" on a 1024 px scene said "using 3 band(s)" and ran 2 (the 256-row edges)."""
    from claire.claire_plugin.core.cluster_scene import ROW_ALIGN, bands_note, split_rows

    used = len(split_rows(1024, 3))
    assert used == 2 and ROW_ALIGN == 256
    assert bands_note(4, 3, used) == ("4 bands of rows asked for; using 2: the scene's tiles make 3 row(s) of tiles, "
                                      "and a band within a row of tiles would run the same tiles again; bands are cut "
                                      "on 256-row edges")
    assert bands_note(3, 6, 3) is None
    assert bands_note(5, 6, 4) == "5 bands of rows asked for; using 4: bands are cut on 256-row edges"


def test_an_earlier_runs_parts_that_cannot_move_stop_the_run_with_the_map_intact(tmp_path, monkeypatch):
    """QA round 13 (Windows): the earlier parts were deleted one by one until a part open in QGIS failed, leaving
    the earlier VRT over missing files and a traceback. They are moved aside whole, or the run stops."""
    import claire.claire_plugin.core.cluster_scene as cs

    kept = tmp_path / "scene_parts"
    kept.mkdir()
    for name in ("part_000.tif", "part_001.tif"):
        (kept / name).write_bytes(b"earlier part")
    real = os.replace

    def open_in_qgis(src, dst, *args, **kwargs):
        if os.path.abspath(src) == str(kept):
            raise PermissionError(13, "[WinError 32] The file is being used by another process", str(src))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(cs.os, "replace", open_in_qgis)
    with pytest.raises(ClaireError, match=r"cannot be replaced .*remove the QGIS layers.*earlier map is unchanged"):
        cs._set_aside(str(kept))
    assert sorted(os.listdir(kept)) == ["part_000.tif", "part_001.tif"]
    monkeypatch.setattr(cs.os, "replace", real)
    aside = cs._set_aside(str(kept))
    assert not kept.exists() and sorted(os.listdir(aside)) == ["part_000.tif", "part_001.tif"]
    assert os.path.dirname(aside) == str(tmp_path) and os.path.basename(aside).startswith(".scene_parts.")
    assert cs._set_aside(str(tmp_path / "none")) is None


def test_a_vrt_that_cannot_be_built_puts_the_earlier_parts_back(tmp_path, monkeypatch, tiny_checkpoint):
    """Review of QA round 13: once the earlier parts were set aside, a failure writing the VRTs left the earlier VRT
    over the new parts and the earlier ones in a hidden folder nothing removed."""
    import claire.claire_plugin.core.cluster_scene as cs
    from claire.claire_plugin.core.batch import LocalExecutor
    from claire.claire_plugin.core.params import run_options

    optical, sar, _ = synthetic_scene(64, 64)
    opt = write_raster(str(tmp_path / "o.tif"), optical)
    s = write_raster(str(tmp_path / "s.tif"), sar, descriptions=["VV", "VH"])
    out = str(tmp_path / "scene.vrt")
    options = run_options(checkpoint=tiny_checkpoint, tile_size=32, context=16, threads=1)
    cs.classify_scene(options, opt, s, out, LocalExecutor(), parts=2, vrt=True)
    kept = tmp_path / "scene_parts"
    before = {n: (kept / n).read_bytes() for n in os.listdir(kept)}
    vrt_before = Path(out).read_text(encoding="utf-8")

    def no_vrt(sources, card, tmp):
        raise ClaireError("GDAL could not build a VRT")

    monkeypatch.setattr(cs, "_build_vrt", no_vrt)
    with pytest.raises(ClaireError, match="could not build a VRT"):
        cs.classify_scene(options, opt, s, out, LocalExecutor(), parts=2, vrt=True)
    assert {n: (kept / n).read_bytes() for n in os.listdir(kept)} == before
    assert Path(out).read_text(encoding="utf-8") == vrt_before
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".scene_parts")]


@pytest.mark.parametrize("fill", [True, False])
def test_the_sar_fill_and_snow_switches_reach_every_band(dask_cluster, tmp_path, default_checkpoint, fill):
    """QA round 20: --no-sar-fill / --no-snow-check were refused with --scheduler after the bands learnt to honour
    them. A split scene with an optical gap equals the single run, switch for switch (the bundled model: only a
    gated one fills gaps)."""
    optical, sar, _ = synthetic_scene(64, 64)
    optical[:, 20:40, 20:40] = 0
    opt = write_raster(str(tmp_path / "o.tif"), optical, nodata=0)
    s = write_raster(str(tmp_path / "s.tif"), sar, descriptions=["VV", "VH"])
    switches = [] if fill else ["--no-sar-fill", "--no-snow-check"]
    assert main(["classify", "--optical", opt, "--sar", s, "--checkpoint", default_checkpoint, *ARGS,
                 "--output", str(tmp_path / "one.tif"), *switches]) == 0
    assert main(["classify", "--optical", opt, "--sar", s, "--checkpoint", default_checkpoint, *ARGS,
                 "--output", str(tmp_path / "split.tif"), "--scheduler", dask_cluster.address, "--parts", "2",
                 *switches]) == 0
    one, split = _read(str(tmp_path / "one.tif"))[0], _read(str(tmp_path / "split.tif"))[0]
    assert np.array_equal(split, one)
    assert (one[20:40, 20:40] != 0).all() if fill else (one[20:40, 20:40] == 0).all()
