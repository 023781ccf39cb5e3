"""The installed plugin seen by a plain qgis_process (isolated profile, no extra environment variables)."""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
import rasterio

QGIS_PROCESS = "/usr/bin/qgis_process.bin"


def _env(root: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = "/usr/bin:/bin"
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=root, XDG_RUNTIME_DIR=root,
               GDAL_PAM_ENABLED="NO")
    return env


@pytest.mark.slow
def test_qgis_process_lists_and_runs_classify(tmp_path, raster_pair, tiny_checkpoint):
    from claire.claire_plugin.install import install

    root = str(tmp_path / "qgis")
    install(os.path.join(root, "profiles", "default"))
    listing = subprocess.run([QGIS_PROCESS, "list"], env=_env(root), capture_output=True, text=True, timeout=300)
    assert "claire:classify" in listing.stdout, listing.stdout[-2000:] + listing.stderr[-2000:]
    assert "claire:train" in listing.stdout

    out = str(tmp_path / "lc.tif")
    proc = subprocess.run(
        [QGIS_PROCESS, "run", "claire:classify", "--json", "--", f"OPTICAL={raster_pair['optical']}",
         f"SAR={raster_pair['sar']}", f"CHECKPOINT={tiny_checkpoint}", f"REFERENCE={raster_pair['labels']}",
         f"OUTPUT={out}"],
        env=_env(root), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(proc.stdout[proc.stdout.find("{"):])["results"]
    assert results["OUTPUT"] == out
    assert 0.0 <= results["MIOU"] <= 1.0
    with rasterio.open(out) as dst:
        assert dst.shape == raster_pair["shape"]
        assert set(np.unique(dst.read(1)).tolist()) <= {1, 2, 4, 5}
    from osgeo import gdal

    # PAM was off for the whole qgis_process run, yet the output carries its class names ...
    assert gdal.Info(out, format="json")["bands"][0]["categories"][1] == "water"
    # ... and QGIS left no statistics sidecar next to the inputs.
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".aux.xml") and not p.startswith("lc.")]


def _state(folder: str) -> dict:
    """{name: (bytes, mtime_ns)} of every file in `folder`."""
    out = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        with open(path, "rb") as fh:
            out[name] = (fh.read(), os.stat(path).st_mtime_ns)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("optical_name", ["optical.tif", "optical.vrt"])
def test_qgis_process_leaves_input_folder_untouched_without_any_setting(tmp_path, raster_pair, tiny_checkpoint,
                                                                         optical_name):
    """Issue 19 class 8: a plain `qgis_process run claire:classify`, GDAL_PAM_ENABLED not set by anyone, on
    copies of the inputs (with a reference, and once with the optical as a VRT) in their own folder: afterwards
    the folder lists the same files with the same bytes and modification times. Before, qgis_process loaded
    every raster parameter as a layer, and QGIS's layer statistics were saved at exit as optical.tif.aux.xml,
    sar.tif.aux.xml... or written into the .vrt itself. The class map still carries its category names."""
    import shutil

    from osgeo import gdal

    from claire.claire_plugin.install import install

    inputs = tmp_path / "in"
    inputs.mkdir()
    for key in ("optical", "sar", "labels"):
        shutil.copy(raster_pair[key], inputs / os.path.basename(raster_pair[key]))
    if optical_name.endswith(".vrt"):
        gdal.BuildVRT(str(inputs / optical_name), [str(inputs / "optical.tif")]).FlushCache()
    shutil.copy(tiny_checkpoint, inputs / "tiny.safetensors")
    root = str(tmp_path / "qgis")
    install(os.path.join(root, "profiles", "default"))
    env = _env(root)
    del env["GDAL_PAM_ENABLED"]
    before = _state(str(inputs))
    out = str(tmp_path / "lc.tif")
    proc = subprocess.run(
        [QGIS_PROCESS, "run", "claire:classify", "--json", "--", f"OPTICAL={inputs / optical_name}",
         f"SAR={inputs / 'sar.tif'}", f"REFERENCE={inputs / 'labels.tif'}", f"CHECKPOINT={inputs / 'tiny.safetensors'}",
         f"OUTPUT={out}"],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = _state(str(inputs))
    assert sorted(after) == sorted(before)
    assert not [n for n in after if n.endswith(".aux.xml")]
    assert after == before
    assert gdal.Info(out, format="json")["bands"][0]["categories"][1] == "water"


@pytest.mark.slow
def test_torch_keeps_its_own_blas_inside_qgis_process(tmp_path, raster_pair, tiny_checkpoint):
    """qgis_process links the system BLAS (GDAL -> armadillo -> libblas.so.3); the plugin makes torch's matrix
    products stay in torch's own (deps.torch_own_symbols), as the dynamic linker's account of its bindings
    shows. Without it they ran in the reference BLAS on Debian 13 (docs/benchmark.md)."""
    from claire.claire_plugin.install import install

    root = str(tmp_path / "qgis")
    install(os.path.join(root, "profiles", "default"))
    targets = {}
    for own in ("1", "0"):
        log = tmp_path / f"ld{own}"
        env = {k: v for k, v in _env(root).items() if k != "LD_PRELOAD"}
        env.update(LD_DEBUG="bindings", LD_DEBUG_OUTPUT=str(log), CLAIRE_TORCH_OWN_SYMBOLS=own)
        proc = subprocess.run(
            [QGIS_PROCESS, "run", "claire:classify", "--", f"OPTICAL={raster_pair['optical']}",
             f"SAR={raster_pair['sar']}", f"CHECKPOINT={tiny_checkpoint}", f"OUTPUT={tmp_path / f'lc{own}.tif'}"],
            env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        targets[own] = set()
        for path in tmp_path.glob(f"ld{own}.*"):
            with open(path, errors="replace") as fh:
                for line in fh:
                    if "`sgemm_'" in line and "libtorch_cpu.so" in line.split(" to ", 1)[0]:
                        targets[own].add(line.split(" to ", 1)[1].split(" [")[0].rsplit("/", 1)[-1])
            path.unlink()
    assert targets["1"] == {"libtorch_cpu.so"}, targets
    assert targets["0"] and "libtorch_cpu.so" not in targets["0"], targets
