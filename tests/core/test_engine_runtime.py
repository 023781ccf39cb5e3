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


def _classify(tmp_path, name: str, runtime: str, bundled: bool = False):
    """The bundled site classified with the default checkpoint: as bundled (cloud gate and familiarity
    statistics) or, by default, without its gate and statistics (optical and SAR in, no features out)."""
    model, card = load_model(None)
    if not bundled:
        card = {k: v for k, v in card.items() if k != "familiarity"}
        card = {**card, "config": {**card["config"], "cloud_gate": False}}
    root = resource("data", "terramesh")
    params = ClassifyParams(os.path.join(root, "S2L2A", SITE), os.path.join(root, "S1RTC", SITE),
                            str(tmp_path / f"{name}.tif"), confidence=str(tmp_path / f"{name}_conf.tif"),
                            cloud=str(tmp_path / f"{name}_cloud.tif"), runtime=runtime, batch_size=4)
    res = run(params, model, card)
    with rasterio.open(res.output) as c, rasterio.open(res.confidence) as f:
        return res, c.read(1), f.read(1)


def _stand_in_packages(monkeypatch) -> list:
    """AOT packages stood in for by the eager model behind Positional, as built (with or without the
    features); returns the list of the batch sizes of each input of every call of theirs."""
    built = {}

    def build(model, path, tile, batch, channels, cloud=False, features=False, precision="float32"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").close()
        built[path] = features
        return path

    calls = []

    def load(path):
        model, _ = load_model(None)
        positional = compiled.Positional(model, built[path])

        def fn(*inputs):  # stands in for the compiled code: the eager model, at the compiled batch only
            calls.append(tuple(x.shape[0] for x in inputs))
            return positional(*inputs)
        return fn

    monkeypatch.setattr(compiled, "compiler_missing", lambda: None)
    monkeypatch.setattr(compiled, "bf16_cpu", lambda: None)  # one (float32) package, whatever this CPU has
    monkeypatch.setattr(compiled, "build_aot", build)
    monkeypatch.setattr(compiled, "load_aot", load)
    monkeypatch.setattr(compiled, "MIN_SPEEDUP", 0.0)  # the stand-in is eager itself: no faster
    return calls


def test_an_aot_runtime_gives_the_eager_map_through_the_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAIRE_CACHE_DIR", str(tmp_path / "cache"))
    eager, cls, conf = _classify(tmp_path, "eager", "eager")
    assert eager.stats["runtime"] == "eager" and any(m.startswith("runtime: eager") for m in eager.messages)
    calls = _stand_in_packages(monkeypatch)
    aot, cls2, conf2 = _classify(tmp_path, "aot", "aot")
    assert aot.stats["runtime"] == "aot" and set(calls) == {(4, 4)}  # one 224 px tile padded to the batch of 4
    np.testing.assert_array_equal(cls, cls2)
    assert np.abs(conf.astype(int) - conf2.astype(int)).max() <= 1
    again, _, _ = _classify(tmp_path, "auto", "auto")
    assert again.stats["runtime"] == "aot"


def test_the_bundled_gated_checkpoint_runs_its_aot_package_with_the_sites_cloud(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAIRE_CACHE_DIR", str(tmp_path / "cache"))
    calls = _stand_in_packages(monkeypatch)
    eager, cls, conf = _classify(tmp_path, "eager", "eager", bundled=True)
    first = _classify(tmp_path, "plain", "aot")[0]  # a package without the cloud input is cached first
    assert first.stats["runtime"] == "aot"
    assert _classify(tmp_path, "auto", "auto", bundled=True)[0].stats["runtime"] == "eager"  # not that one
    calls.clear()
    gated, cls2, conf2 = _classify(tmp_path, "gated", "aot", bundled=True)
    assert gated.stats["runtime"] == "aot" and any("fed to the cloud gate" in m for m in gated.messages)
    assert set(calls) == {(4, 4, 4)}  # optical, SAR and cloud of the site's tile, padded to the batch of 4
    np.testing.assert_array_equal(cls, cls2)
    assert np.abs(conf.astype(int) - conf2.astype(int)).max() <= 1
    with rasterio.open(gated.cloud) as c:  # the check fed the site the engine's cloud probability
        engine_cloud = c.read(1).astype(int)
    _, _, site_cloud, _, _ = compiled._site_tiles(gated.card, 256)
    first_site = np.floor(site_cloud[0, 0, :engine_cloud.shape[0], :engine_cloud.shape[1]].numpy() * 100)
    assert engine_cloud.max() > 50 and np.abs(first_site - engine_cloud).max() <= 1


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


def test_step_steering_judges_groups_of_training_steps(monkeypatch):
    """Training's steering sees the summed time of `every` steps at once (one step is too noisy a measure) and
    counts the steps of a group in progress too."""
    monkeypatch.setattr(schedule, "cpu_cores", lambda: 2)
    monkeypatch.setattr(contention, "other_runnable", lambda: 0)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        steer = schedule.StepSteering(torch.device("cpu"), [], every=4)
        seen = []
        monkeypatch.setattr(steer.steering, "after_batch", lambda s, n, done: seen.append((round(s, 3), n, done)))
        for done in range(1, 10):
            steer.after_step(0.25 + 0.01 * done, done)
        assert seen == [(1.1, 4, 4), (1.26, 4, 8)]
        assert steer.steps_at_threads() == {"2": 1}  # the 9th step, its group not judged yet
    finally:
        torch.set_num_threads(old)


def test_a_thread_count_the_user_gave_is_kept_by_trainings_steering(monkeypatch):
    """QA (consistency): `claire train --threads 2` still started on 1 thread beside a busy core ("threads: starting
    with 1 of 2") and moved between counts, so the same seed gave other weights. Given, the count is kept."""
    from claire.claire_plugin.core.training.finetune import FinetuneConfig

    monkeypatch.setattr(schedule, "cpu_cores", lambda: 2)
    monkeypatch.setattr(contention, "other_runnable", lambda: 4)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        notes = []
        with schedule.StepSteering(torch.device("cpu"), notes, every=1, steer=False) as steer:
            assert torch.get_num_threads() == 2
            for done in range(1, 13):
                steer.after_step(0.5 * done, done)  # ever slower steps, as beside a busy program
            assert torch.get_num_threads() == 2 and steer.steps_at_threads() == {"2": 12}
        # QA round 18: the count kept beside a busy machine is said (a step then took several times its CPU)
        assert len(notes) == 1 and "keeping the 2 given although other programs have 4 thread(s)" in notes[0]
        notes.clear()
        monkeypatch.setattr(contention, "other_runnable", lambda: 2)  # as many as the cores: still oversubscribed
        with schedule.StepSteering(torch.device("cpu"), notes, steer=False):
            assert len(notes) == 1 and "keeping the 2 given" in notes[0]
        notes.clear()
        schedule.ThreadSteering(torch.device("cpu"), notes, steer=False)  # a classification's lanes: no such note
        assert notes == []
        monkeypatch.setattr(contention, "other_runnable", lambda: 4)
        with schedule.StepSteering(torch.device("cpu"), notes):  # not given: steered
            assert torch.get_num_threads() == 1 and "starting with 1 of 2" in notes[0]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)
    from claire.claire_plugin.cli.main import build_parser
    from claire.claire_plugin.cli.train_polygons import params_from_args

    base = ["train", "--optical", "o.tif", "--sar", "s.tif", "--labels", "l.gpkg", "--field", "class", "--output", "m.safetensors"]
    assert params_from_args(build_parser().parse_args(base + ["--threads", "2"])).config.steer_threads is False
    assert params_from_args(build_parser().parse_args(base)).config.steer_threads is True
    assert FinetuneConfig().steer_threads is True


def test_the_engine_upsamples_the_kept_parts_only_and_writes_the_same_rasters(tmp_path, monkeypatch):
    """Several 64 px cores read with 32 px of context (edge tiles moved back): the network is asked for its
    cells and every output raster is the one of upsampling whole tiles, byte for byte."""
    model, card = load_model(None)
    root = resource("data", "terramesh")
    asked = []
    forward = type(model).forward

    def spy(self, *args, **kw):
        asked.append(kw.get("full_size", True))
        return forward(self, *args, **kw)

    def classify(name):
        outs = {k: str(tmp_path / f"{name}_{k}.tif") for k in ("confidence", "reliance", "unfamiliar")}
        params = ClassifyParams(os.path.join(root, "S2L2A", SITE), os.path.join(root, "S1RTC", SITE),
                                str(tmp_path / f"{name}.tif"), tile_size=64, context=32, runtime="eager", **outs)
        run(params, model, card)
        out = []
        for path in [params.output] + list(outs.values()):
            with rasterio.open(path) as f:
                out.append(f.read())
        return out

    monkeypatch.setattr(type(model), "forward", spy)
    parts = classify("parts")
    assert asked.count(False) >= 3  # every batch (the memory check's one forward wants the full size)
    monkeypatch.setattr(type(model), "gives_cells", False)
    asked.clear()
    whole = classify("whole")
    assert asked and all(asked)
    for a, b in zip(parts, whole):
        np.testing.assert_array_equal(a, b)


def test_a_runtime_asked_for_by_name_and_not_given_is_a_warning(tmp_path, monkeypatch):
    """QA round 17 (scripts): `--runtime aot` that fell back to eager (no compiler, a read-only cache) said so only
    in the plan's lines on stdout, so `--quiet` and a log's grep for warnings saw nothing."""
    from claire.claire_plugin.core.runtime import compiled

    monkeypatch.setenv("CLAIRE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(compiled, "compiler_missing", lambda: "no C++ compiler (g++) was found")
    res, _, _ = _classify(tmp_path, "aot", "aot")
    assert res.stats["runtime"] == "eager"
    warned = [m for m in res.messages if m.startswith("warning: --runtime aot was asked for but is not used here; "
                                                      "runtime: eager")]
    assert len(warned) == 1 and not any(m.startswith("runtime:") for m in res.messages)
    auto, _, _ = _classify(tmp_path, "auto", "auto")
    assert not any(m.startswith("warning: --runtime") for m in auto.messages)
