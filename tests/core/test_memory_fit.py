"""Memory fit (core/memory_fit.py): a tile x batch too large for the memory left is refused before
anything is written, with sizes that fit; running out of memory inside the forward gives the same kind
of message; the memory limit of a cgroup (container, Slurm job) counts."""
from __future__ import annotations

import os

import pytest
import torch

from claire.claire_plugin.core.engine import memory_fit as M
from claire.claire_plugin.core.engine import run
from claire.claire_plugin.core.engine.tiling import tiles_per_chunk
from claire.claire_plugin.core.errors import ClaireError
from claire.claire_plugin.core.params import ClassifyParams
from claire.claire_plugin.core.runtime import resources as R
from claire.models.registry import build_model

CPU = torch.device("cpu")


def _net(size: str):
    return build_model("claire", {"num_classes": 4, "optical_channels": 10, "sar_channels": 2, "size": size}).eval()


def test_activation_bytes_per_pixel_grow_with_the_network_not_with_the_tile(monkeypatch):
    tiny, small = _net("tiny"), _net("small")
    b_tiny = M._measure(tiny, CPU, 10, 2)
    b_small = M._measure(small, CPU, 10, 2)
    # inputs alone are 12 float32 per pixel; every stage adds live feature maps
    assert 12 * 4 < b_tiny < b_small
    monkeypatch.setattr(M, "CALIBRATION_TILE", 256)
    assert M._measure(small, CPU, 10, 2) == pytest.approx(b_small, rel=0.05)


def _between(net, fits: int) -> int:
    """Bytes available where batch `fits` of 256 px tiles fits the memory left and `fits + 1` does not."""
    bpp = M.activation_bytes_per_pixel(net, CPU, 10, 2)

    def need(b, t=256):
        return M.run_bytes(bpp, t * t, b, tiles_per_chunk(b, t), 12, 5)

    return int((need(fits) + need(fits + 1)) / 2 / M.USABLE)


def test_a_batch_that_fits_is_proposed_when_the_chosen_one_does_not():
    net = _net("tiny")
    avail = _between(net, 5)
    with pytest.raises(ClaireError) as err:
        M.check_fits(net, CPU, 256, 0, 16, (10, 2), 5, available=(avail, "free in the test"))
    msg = str(err.value)
    assert "tile 256 px (+ 0 px of context) x batch 16 needs about" in msg and "free in the test" in msg
    assert "use --batch-size 5," in msg
    note = M.check_fits(net, CPU, 256, 0, 5, (10, 2), 5, available=(avail, "free in the test"))
    assert note.startswith("memory: about") and "batch 5" in note


def test_a_smaller_tile_is_proposed_when_batch_one_does_not_fit():
    net = _net("tiny")
    bpp = M.activation_bytes_per_pixel(net, CPU, 10, 2)
    avail = int(M.run_bytes(bpp, 512 * 512, 1, tiles_per_chunk(1, 512), 12, 5) / M.USABLE) + 1
    with pytest.raises(ClaireError, match=r"use --tile-size 512 and --batch-size 1"):
        M.check_fits(net, CPU, 1024, 0, 2, (10, 2), 5, available=(avail, "free"))
    assert M.check_fits(net, CPU, 1024, 0, 2, (10, 2), 5, available=(None, "unknown")) is None


def test_cgroup_limit_v2_v1_and_no_limit(tmp_path):
    proc = tmp_path / "cgroup"
    (tmp_path / "fs" / "job").mkdir(parents=True)
    (tmp_path / "fs" / "job" / "memory.max").write_text("8000000000\n")
    (tmp_path / "fs" / "job" / "memory.current").write_text("3000000000\n")
    proc.write_text("0::/job\n")
    assert R._cgroup_available(str(tmp_path / "fs"), str(proc)) == 5_000_000_000
    (tmp_path / "fs" / "job" / "memory.max").write_text("max\n")
    assert R._cgroup_available(str(tmp_path / "fs"), str(proc)) is None
    (tmp_path / "fs" / "memory" / "slurm").mkdir(parents=True)
    (tmp_path / "fs" / "memory" / "slurm" / "memory.limit_in_bytes").write_text("4000000000\n")
    (tmp_path / "fs" / "memory" / "slurm" / "memory.usage_in_bytes").write_text("1000000000\n")
    proc.write_text("12:cpuset:/\n5:memory:/slurm\n")
    assert R._cgroup_available(str(tmp_path / "fs"), str(proc)) == 3_000_000_000


def test_engine_refuses_a_tile_and_batch_no_machine_has_memory_for(engine_scene, standin_model, standin_card):
    out = os.path.join(engine_scene["dir"], "lc.tif")
    with open(out, "wb") as f:
        f.write(b"earlier")
    before = sorted(os.listdir(engine_scene["dir"]))
    params = ClassifyParams(engine_scene["optical"], engine_scene["sar"], out, tile_size=8192, context=0,
                            batch_size=256, threads=1)  # the largest the engine takes
    with pytest.raises(ClaireError, match=r"tile 8192 px \(\+ 0 px of context\) x batch 256 needs about [\d.]+ GB of CPU memory"):
        run(params, standin_model, standin_card)
    assert sorted(os.listdir(engine_scene["dir"])) == before
    with open(out, "rb") as f:
        assert f.read() == b"earlier"


class _OutOfMemory(torch.nn.Module):
    def __init__(self, inner, text):
        super().__init__()
        self.inner, self.text = inner, text

    def forward(self, optical, sar):
        raise RuntimeError(self.text)


@pytest.mark.parametrize("text, user_error", [
    ("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate "
     "68719476736 bytes. Error code 12 (Cannot allocate memory)", True),
    ("CUDA out of memory. Tried to allocate 20.00 GiB", True),
    ("Expected 4-dimensional input", False),
])
def test_out_of_memory_in_the_forward_is_a_user_error(engine_scene, standin_model, standin_card, text, user_error,
                                                      monkeypatch):
    monkeypatch.setattr(M, "available_bytes", lambda device: (None, "unknown"))  # only the forward fails
    out = os.path.join(engine_scene["dir"], "lc.tif")
    params = ClassifyParams(engine_scene["optical"], engine_scene["sar"], out, tile_size=64, batch_size=4, threads=1)
    with pytest.raises(ClaireError) as err:
        run(params, _OutOfMemory(standin_model, text), standin_card)
    if user_error:
        assert "ran out of CPU memory at tile 64 px x batch 4; use --batch-size 2" in str(err.value)
    else:  # (QA, failures) any other fault of the forward was a 40-line traceback
        assert str(err.value) == (f"the model failed on the tiles of row 1 (RuntimeError: {text}); nothing was "
                                  "written. Report it with the output of `claire diagnostics`")
        assert isinstance(err.value.__cause__, RuntimeError)
    assert not os.path.exists(out)
    assert not [n for n in os.listdir(engine_scene["dir"]) if n.endswith(".partial.tif")]


def test_the_default_tile_is_lowered_to_fit_the_memory_left(engine_scene, standin_model, standin_card, monkeypatch):
    """Without --tile-size, a run that would not fit takes the largest smaller core that does, and says so;
    with it, the same run is refused."""
    card = {k: v for k, v in standin_card.items() if k != "core"}  # the engine's default core (896)
    bpp = M.activation_bytes_per_pixel(standin_model, CPU, 10, 2)
    fits = M.run_bytes(bpp, (768 + 32) ** 2, 1, tiles_per_chunk(1, 800), 12, 5)
    monkeypatch.setattr(M, "available_bytes", lambda device: (int(fits / M.USABLE) + 1, "free in the test"))
    out = os.path.join(engine_scene["dir"], "lc.tif")
    res = run(ClassifyParams(engine_scene["optical"], engine_scene["sar"], out, threads=1), standin_model, card)
    assert "tile size lowered from 896 to 768 px so that the run fits in the memory left" in res.messages
    assert res.stats["tile_size"] == 768 and os.path.exists(out)
    with pytest.raises(ClaireError, match=r"tile 896 px \(\+ 16 px of context\) x batch 1 needs about"):
        run(ClassifyParams(engine_scene["optical"], engine_scene["sar"], out, tile_size=896, threads=1),
            standin_model, card)


def test_two_forward_lanes_give_way_to_one_before_the_tile_is_lowered(engine_scene, standin_model, standin_card,
                                                                      monkeypatch):
    """Where one window of the default core fits but two at once do not, the run keeps the core and runs one
    window at a time, and says so; where two fit, it plans for two."""
    from claire.claire_plugin.core.engine import schedule

    monkeypatch.setattr(schedule, "forward_lanes", lambda device, model, threads=None: 2)
    card = {k: v for k, v in standin_card.items() if k != "core"}
    bpp = M.activation_bytes_per_pixel(standin_model, CPU, 10, 2)
    one = M.run_bytes(bpp, (896 + 32) ** 2, 1, tiles_per_chunk(1, 928), 12, 5)
    two = M.run_bytes(bpp, (896 + 32) ** 2, 1, tiles_per_chunk(1, 928), 12, 5, lanes=2)
    assert two > 1.5 * one
    from claire.tests.fixtures.helpers import synthetic_scene, write_raster

    optical, sar, _ = synthetic_scene(40, 1792)  # two windows of the 896 px core (one window runs alone anyway)
    d = engine_scene["dir"]
    engine_scene = {"optical": write_raster(os.path.join(d, "wide_o.tif"), optical),
                    "sar": write_raster(os.path.join(d, "wide_s.tif"), sar, descriptions=["VV", "VH"])}
    out = os.path.join(d, "lc.tif")
    monkeypatch.setattr(M, "available_bytes", lambda device: (int(one / M.USABLE) + 1, "free in the test"))
    res = run(ClassifyParams(engine_scene["optical"], engine_scene["sar"], out), standin_model, card)
    assert res.stats["tile_size"] == 896 and res.stats["lanes"] == 1
    assert "one window at a time: 2 at once (forward lanes) would not fit in the memory left" in res.messages
    monkeypatch.setattr(M, "available_bytes", lambda device: (int(two / M.USABLE) + 1, "free in the test"))
    res = run(ClassifyParams(engine_scene["optical"], engine_scene["sar"], out), standin_model, card)
    assert res.stats["tile_size"] == 896 and res.stats["lanes"] == 2
    assert any(m.startswith("2 forward lanes: 2 windows run at once") for m in res.messages)
    assert any("x 2 windows at once" in m for m in res.messages if m.startswith("memory:"))


def test_a_run_of_one_window_plans_and_says_one_window_at_a_time(engine_scene, standin_model, standin_card,
                                                                  monkeypatch):
    """QA (round 19, desktop): a 224 px scene, one window, was planned and described as "2 forward lanes: 2 windows
    run at once", its memory "x 2 windows at once"."""
    from claire.claire_plugin.core.engine import schedule

    monkeypatch.setattr(schedule, "forward_lanes", lambda device, model, threads=None: 2)
    card = {k: v for k, v in standin_card.items() if k != "core"}
    out = os.path.join(engine_scene["dir"], "lc.tif")
    monkeypatch.setattr(M, "available_bytes", lambda device: (64 << 30, "free in the test"))
    res = run(ClassifyParams(engine_scene["optical"], engine_scene["sar"], out), standin_model, card)
    assert res.stats["lanes"] == 1 and "one window at a time: the run has one window" in res.messages
    assert not any("windows at once" in m for m in res.messages), res.messages
    # QA (round 19, review): four tiles of 32 px read as one chunk are one window for the lanes too
    from claire.tests.fixtures.helpers import synthetic_scene, write_raster

    optical, sar, _ = synthetic_scene(32, 128)
    d = engine_scene["dir"]
    res = run(ClassifyParams(write_raster(os.path.join(d, "row_o.tif"), optical),
                             write_raster(os.path.join(d, "row_s.tif"), sar, descriptions=["VV", "VH"]), out),
              standin_model, standin_card)
    assert res.stats["lanes"] == 1 and not any("windows at once" in m for m in res.messages), res.messages


def test_an_address_space_limit_counts_as_memory_left():
    """QA (small machines): under `ulimit -v` the plan saw 23 GB available and a run died in a traceback (at
    1.6 GB) or blamed the files (1.7 GB); the limit minus what the process maps is memory left."""
    import subprocess
    import sys

    code = ("import resource, torch\n"
            "size = next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmSize:'))\n"
            "resource.setrlimit(resource.RLIMIT_AS, (size + 2 ** 29, resource.RLIM_INFINITY))\n"
            "from claire.claire_plugin.core.runtime.resources import available_bytes\n"
            "n, why = available_bytes(torch.device('cpu'))\n"
            "print(n, why)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    n, why = out.stdout.split(" ", 1)
    assert "address-space limit (ulimit -v)" in why and int(n) <= 2 ** 29, out


def test_batch_one_is_proposed_before_a_smaller_tile():
    """Mutation audit (QA round 14): batch 1 fits, so it is proposed, not a smaller tile."""
    net = _net("tiny")
    with pytest.raises(ClaireError) as err:
        M.check_fits(net, CPU, 256, 0, 8, (10, 2), 5, available=(_between(net, 1), "free in the test"))
    assert "use --batch-size 1," in str(err.value)


@pytest.mark.parametrize("tile, hint", [(96, "--tile-size 32"), (224, "--tile-size 96"), (896, "--tile-size 448"),
                                        (32, "--tile-size 32")])
def test_out_of_memory_at_batch_one_proposes_a_tile_the_engine_accepts(tile, hint):
    """At batch 1 the hint halves the tile to a multiple of 32 (a half of 96, 48, would be refused)."""
    assert f"use {hint}, or close other programs" in str(M.out_of_memory_error(CPU, tile, 1))


def test_free_gpu_memory_counts_what_this_process_keeps_cached(monkeypatch):
    """QA round 17 (GPU paths): in QGIS a second run on the GPU saw the first run's cached blocks as used."""
    import torch

    from claire.claire_plugin.core.runtime.resources import available_bytes

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 << 30, 80 << 30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 5 << 30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 1 << 30)
    assert available_bytes(torch.device("cuda:0")) == (6 << 30, "free on cuda:0")


def test_the_lanes_note_says_why_fewer_lanes_run():
    """Mutation check (round 19): fewer lanes for want of windows, or of memory, each said as it is."""
    from claire.claire_plugin.core.engine.schedule import lanes_note

    assert "(not 4: the run has 3 windows)" in lanes_note(3, 4, 3)
    assert "(not 4: the memory left)" in lanes_note(3, 4, 10)
    assert lanes_note(1, 2, 1) == "one window at a time: the run has one window"
