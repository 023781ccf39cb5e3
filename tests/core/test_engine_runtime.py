"""The engine with a runtime (ClassifyParams.runtime) and with its thread count steered between batches
(schedule.ThreadSteering) on the bundled real site."""
from __future__ import annotations

import os

import numpy as np
import rasterio
import torch

from claire.claire_plugin.core.engine import run, schedule
from claire.claire_plugin.core.engine.runner import load_model
from claire.claire_plugin.core.params import ClassifyParams
from claire.claire_plugin.core.runtime import compiled, contention
from claire.claire_plugin.paths import resource

SITE = "282D_485L_3_3.tif"


def _classify(tmp_path, name: str, runtime: str, cloud_gate: bool = False):
    """The bundled site classified with the default checkpoint; without its cloud gate unless asked (the
    compiled runtimes take optical and SAR only)."""
    model, card = load_model(None)
    card = {**card, "config": {**card["config"], "cloud_gate": cloud_gate}}
    root = resource("data", "terramesh")
    params = ClassifyParams(os.path.join(root, "S2L2A", SITE), os.path.join(root, "S1RTC", SITE),
                            str(tmp_path / f"{name}.tif"), confidence=str(tmp_path / f"{name}_conf.tif"),
                            runtime=runtime)
    res = run(params, model, card)
    with rasterio.open(res.output) as c, rasterio.open(res.confidence) as f:
        return res, c.read(1), f.read(1)


def test_an_aot_runtime_gives_the_eager_map_through_the_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAIRE_CACHE_DIR", str(tmp_path / "cache"))
    eager, cls, conf = _classify(tmp_path, "eager", "eager")
    assert eager.stats["runtime"] == "eager" and any(m.startswith("runtime: eager") for m in eager.messages)

    def build(model, path, tile, batch, channels):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").close()
        return path

    calls = []

    def load(path):
        model, _ = load_model(None)

        def fn(o, s):  # stands in for the compiled code: the eager model, at the compiled batch only
            calls.append(o.shape[0])
            return model(o, s)
        return fn

    monkeypatch.setattr(compiled, "compiler_missing", lambda: None)
    monkeypatch.setattr(compiled, "build_aot", build)
    monkeypatch.setattr(compiled, "load_aot", load)
    monkeypatch.setattr(compiled, "MIN_SPEEDUP", 0.0)  # the stand-in is eager itself: no faster
    aot, cls2, conf2 = _classify(tmp_path, "aot", "aot")
    assert aot.stats["runtime"] == "aot" and set(calls) == {4}  # one 224 px tile padded to the batch of 4
    np.testing.assert_array_equal(cls, cls2)
    assert np.abs(conf.astype(int) - conf2.astype(int)).max() <= 1
    again, _, _ = _classify(tmp_path, "auto", "auto")
    assert again.stats["runtime"] == "aot"
    gated, _, _ = _classify(tmp_path, "gated", "aot", cloud_gate=True)
    assert gated.stats["runtime"] == "eager" and any("cloud gate" in m for m in gated.messages)


def test_thread_steering_starts_low_beside_busy_cores_and_notes_each_change(monkeypatch):
    monkeypatch.setattr(schedule, "cpu_cores", lambda: 2)
    busy = {"others": 1}
    monkeypatch.setattr(contention, "other_runnable", lambda: busy["others"])
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        messages = []
        steer = schedule.ThreadSteering(torch.device("cpu"), messages)
        assert torch.get_num_threads() == 1 and "starting with 1 of 2" in messages[0]
        busy["others"] = 0
        done = 0
        for _ in range(12):
            per = 0.013 if torch.get_num_threads() == 2 else 0.023
            done += 4
            steer.after_batch(per * 4, 4, done)
        assert torch.get_num_threads() == 2
        assert any("1 -> 2" in m and "free again" in m for m in messages)
        counts = []
        for _ in range(5):  # short batches: slow per tile (padding, end of a row) but no sign of contention
            done += 1
            steer.after_batch(0.013 * 4, 1, done)
            counts.append(torch.get_num_threads())
        assert counts == [2] * 5
        assert steer.tiles_at[1] > 0 and steer.tiles_at[2] > 0 and sum(steer.tiles_at.values()) == done
        torch.set_num_threads(1)
        assert schedule.ThreadSteering(torch.device("cpu"), []).policy is None  # one thread: nothing to steer
    finally:
        torch.set_num_threads(old)
