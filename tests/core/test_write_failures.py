"""Writes that fail where GDAL does not raise: it flushes a GeoTIFF's last blocks and its category sidecar on
close, and a full disk there only signalled an error; the run exited 0 with a map cut short under its final name.
A file-size limit (RLIMIT_FSIZE, as `ulimit -f`) stands in for the full disk, in a child process."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from claire.tests.fixtures.helpers import write_raster

SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import rasterio
    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.core.io.writer import GridWriter

    grid, out, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with rasterio.open(grid) as g:
        w = GridWriter(out, g, "float32", -1.0)
        w.put(0, 0, np.random.default_rng(0).random((g.height, g.width)).astype("float32"))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        try:
            w.close()
        except ClaireError as exc:
            print("REFUSED", exc)
            sys.exit(2)
    print("CLOSED")
""")


def _run(tmp_path, limit: int):
    grid = write_raster(str(tmp_path / "grid.tif"), np.zeros((1, 1024, 1024), np.uint8))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, grid, str(tmp_path / "out.tif"), str(limit)],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_a_raster_cut_short_when_closed_is_a_write_error(tmp_path):
    rc, out = _run(tmp_path, 300_000)  # 4 MB of float32 noise does not fit
    assert rc == 2 and "REFUSED writing" in out and str(tmp_path / "out.tif") in out, out
    assert "File too large" in out or "Write error" in out, out


def test_a_raster_that_fits_closes(tmp_path):
    rc, out = _run(tmp_path, 64_000_000)
    assert rc == 0 and "CLOSED" in out, out


def test_a_temporary_removed_before_its_class_names_is_a_write_error_not_a_traceback(tmp_path):
    """The output folder deleted during a run: set_classes reopened the temporary and raised TypeError."""
    import os

    import pytest
    import rasterio

    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.core.io.writer import GridWriter, set_classes

    grid = write_raster(str(tmp_path / "grid.tif"), np.zeros((1, 64, 64), np.uint8))
    out = str(tmp_path / "lc.tif")
    with rasterio.open(grid) as g:
        w = GridWriter(out, g, "uint8", 0)
        w.put(0, 0, np.ones((64, 64), np.uint8))
        w.close()
    os.remove(w.tmp)
    with pytest.raises(ClaireError, match=r"writing '.*lc\.tif' failed .*No such file"):
        set_classes(w.tmp, 0, [{"value": 1, "name": "water"}], {1: (0, 0, 255)}, out)


def test_every_run_writes_the_maps_style_and_replaces_one_of_other_classes(tmp_path):
    """QGIS applies NAME.qml whenever it opens NAME.tif. A map from the command line had none: opened by hand it
    showed a legend of 256 colour-table entries, and no class names where GDAL_PAM_ENABLED=NO (QGIS then ignores
    the .aux.xml holding them). A style of other classes (an earlier run's) drew a new map with wrong names."""
    from claire.claire_plugin.core.io.qml import palette_of, write_class_style

    qml = tmp_path / "lc.qml"
    raster = str(tmp_path / "lc.tif")
    same = [{"value": 1, "name": "water", "color": "#0000ff"}, {"value": 2, "name": "trees & <shrubs>",
                                                                "color": "#00ff00"}]
    assert write_class_style(raster, same) is None
    assert palette_of(str(qml)) == [(1, "water"), (2, "trees & <shrubs>")]
    text = qml.read_text()
    assert 'type="paletted"' in text and 'color="#0000ff"' in text and "&amp;" in text
    qml.write_text(text.replace("#0000ff", "#123456"))  # the user's own colours for the same classes: kept
    assert write_class_style(raster, same) is None and "#123456" in qml.read_text()
    other = [{"value": 1, "name": "built area", "color": "#ff0000"}, {"value": 2, "name": "crops", "color": "#ffff00"}]
    note = write_class_style(raster, other)
    assert note.startswith(f"replaced {qml}") and "1 water, 2 trees" in note
    assert palette_of(str(qml)) == [(1, "built area"), (2, "crops")]
    first_alike = [other[0], {"value": 2, "name": "trees", "color": "#00ff00"}]  # only the first class the same
    assert write_class_style(raster, first_alike).startswith(f"replaced {qml}")
    assert palette_of(str(qml)) == [(1, "built area"), (2, "trees")]
    qml.write_text("<qgis><pipe><rasterrenderer type='singlebandgray'/></pipe></qgis>")  # not a class style: kept
    note = write_class_style(raster, other)  # kept, and said: QGIS would draw the map with it
    assert note.startswith(f"warning: kept {qml}") and "delete or rename it" in note
    assert "singlebandgray" in qml.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["lc.qml"]  # no temporary left



CHECKPOINT_SCRIPT = textwrap.dedent("""
    import resource, sys
    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.core.io.atomic import OutputSet
    from claire.models.checkpoint import save_checkpoint
    from claire.models.registry import build_model
    from claire.tests.fixtures.helpers import tiny_card

    card = tiny_card()
    model = build_model("claire", card["config"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
    try:
        with OutputSet() as files:
            files.write_with(sys.argv[1], lambda tmp: save_checkpoint(tmp, model, card), "checkpoint")
    except ClaireError as exc:
        print("REFUSED", exc)
        sys.exit(2)
    print("WRITTEN")
""")


def test_a_checkpoint_that_does_not_fit_is_a_write_error_not_a_traceback(tmp_path):
    """QA (small machines): a training on a full disk ended in safetensors' SafetensorError traceback, exit 1."""
    import os
    import signal

    out = tmp_path / "model.safetensors"
    proc = subprocess.run([sys.executable, "-c", CHECKPOINT_SCRIPT, str(out)], capture_output=True, text=True,
                          timeout=120, preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN))
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "REFUSED writing the checkpoint" in text and "Traceback" not in text, text
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.endswith(".tif") or "partial" in p]


@pytest.mark.parametrize("exc", [RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate "
                                              "memory: you tried to allocate 3145728 bytes"), MemoryError()])
def test_a_training_out_of_memory_is_named_with_smaller_settings(monkeypatch, tmp_path, exc):
    """QA (small machines): under a memory limit a training ended in torch's allocator traceback after minutes."""
    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.core.training import polygons

    def runs_out(*args, **kwargs):
        raise exc

    monkeypatch.setattr(polygons, "_train_from_polygons", runs_out)
    params = polygons.PolygonTrainParams("o.tif", "s.tif", "l.gpkg", str(tmp_path / "m.safetensors"))
    with pytest.raises(ClaireError, match=r"ran out of memory \(batch 8 of 128 px crops\); use --batch-size 4"):
        polygons.train_from_polygons(params)
    monkeypatch.setattr(polygons, "_train_from_polygons", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(RuntimeError, match="^x$"):  # other errors as they are
        polygons.train_from_polygons(params)


def test_the_forest_out_of_memory_names_its_own_settings(monkeypatch):
    """QA (failures): a MemoryError of the random forest, after the network had trained, was blamed on the
    network's batch size."""
    import numpy as np
    import sklearn.ensemble

    from claire.claire_plugin.core.errors import ClaireError
    from claire.claire_plugin.core.training.baseline import fit_forest

    def runs_out(self, x, y):
        raise MemoryError

    monkeypatch.setattr(sklearn.ensemble.RandomForestClassifier, "fit", runs_out)
    with pytest.raises(ClaireError, match=r"the random-forest baseline ran out of memory \(200 trees on 40 training "
                                          r"pixels\); use --rf-trees 50, or --no-baseline"):
        fit_forest(np.ones((40, 3), np.float32), np.arange(40) % 2)
