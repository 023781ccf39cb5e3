"""One size and one runtime of `claire bench`, in a fresh process (tools/bench.py starts it).

In order: the one-time cost of the runtime (`core.runtime.compiled.prepare` timed: an AOT package built or
loaded from the cache, torch.compile with its check, nothing for eager); the end-to-end run with that runtime
(its peak RSS counted from after that preparation: VmHWM reset); then, alternating with more end-to-end runs
when `repeats` > 1, the bare forward of the same runtime (the model `prepare` gives, prepared again, so its
timing never includes a build) and the bare eager float32 forward, both fed the engine's batches (the last
batch of each tile row short, so a compiled runtime pads it), with the cloud probability for a cloud-gated
checkpoint and asking for the familiarity features when the card has them, as the engine does.
"""
from __future__ import annotations

import gc
import time
from typing import Dict, List, Optional

from .bench import _bare, _cpu_s, _load, _vmhwm_mb, output_path, reset_peak_rss, write_pair


def measure_one(folder: str, size: int, checkpoint: Optional[str], batch: int, threads: Optional[int],
                bare_tiles: Optional[int] = None, repeats: int = 1, layout: str = "plain",
                runtime: str = "auto") -> dict:
    """The row of `size` and `runtime` (see the module). With `repeats` > 1 the end-to-end run and both
    bare forwards are measured again, alternating, and the fastest of each is kept (robust on a shared
    machine); with `bare_tiles` the bare forwards run on the first batches holding that many tiles, scaled
    to the full count. Everything runs on the engine's torch thread (core.runtime.torch_thread)."""
    from ..core.runtime.torch_thread import call

    return call(_measure_one, folder, size, checkpoint, batch, threads, bare_tiles, repeats, layout, runtime)


def _e2e(paths: Dict[str, str], out: str, checkpoint: Optional[str], batch: int, threads: Optional[int],
         runtime: str = "auto"):
    from ..core.engine import run
    from ..core.params import run_options

    c0, t0 = _cpu_s(), time.perf_counter()
    model, card, name = _load(checkpoint)
    params = run_options(checkpoint=checkpoint, batch_size=batch, device="auto", threads=threads,
                         runtime=runtime).params(paths["optical"], paths["sar"], out)  # named in the run record
    res = run(params, model, card)
    return time.perf_counter() - t0, _cpu_s() - c0, res, model, name


def model_inputs(card: dict, batch: int, size: int) -> dict:
    """What the engine builds its runtime for with this card on a `size` x `size` pair: kept core, context,
    forward window, batch, channel counts, whether the model takes the cloud probability and gives the
    familiarity features."""
    from ...models.card_schema import takes_cloud
    from ..core.engine.tiling import TileGrid, resolve_tiling
    from ..core.params import ClassifyParams

    cfg, inputs = card.get("config") or {}, card.get("inputs") or {}
    tile, context, batch = resolve_tiling(ClassifyParams("", "", "", batch_size=batch), card)
    channels = tuple(int(cfg.get(f"{role}_channels") or len(inputs.get(role, {}).get("bands") or []))
                     for role in ("optical", "sar"))
    grid = TileGrid.fitted(0, 0, size, size, tile, context)
    return {"tile": grid.tile, "context": context, "window": grid.shape[0],
            "batch": batch, "channels": channels, "cloud": takes_cloud(card),
            "features": bool(card.get("familiarity"))}


def engine_batches(size: int, tile: int, context: int, batch: int) -> List[int]:
    """The batch sizes the engine runs on a `size` x `size` pair, in order (core.engine.tiling: chunks of a
    tile row cut into batches, so each row may end with a short batch)."""
    from ..core.engine.tiling import TileGrid, tiles_per_chunk

    grid = TileGrid(0, 0, size, size, tile, context)
    out: List[int] = []
    for _, j0, j1 in grid.chunks(tiles_per_chunk(batch, grid.window)):
        out += [min(batch, j1 - j0 - b) for b in range(0, j1 - j0, batch)]
    return out


def _prepare(model, card, dev, runtime: str, shape: dict, batch: int):
    from ..core.runtime.compiled import prepare

    return prepare(model, card, dev, runtime, shape["window"], batch, shape["channels"], cloud=shape["cloud"],
                   features=shape["features"])


def _measure_one(folder: str, size: int, checkpoint: Optional[str], batch: int, threads: Optional[int],
                 bare_tiles: Optional[int], repeats: int, layout: str, runtime: str = "auto") -> dict:
    import torch

    from ..core.runtime.device import resolve_device

    if threads:
        torch.set_num_threads(threads)
    paths = write_pair(folder, size, layout=layout)
    out = output_path(folder, size, runtime)
    model, card, _ = _load(checkpoint)
    dev, shape = resolve_device("auto")[0], model_inputs(card, batch, size)
    batch = shape["batch"]
    t = time.perf_counter()
    first = _prepare(model.to(dev).eval(), card, dev, runtime, shape, batch)
    one_time = {"build_load_s": round(time.perf_counter() - t, 2), "build": first.origin or "none",
                "runtime_note": first.note}
    del first, model
    gc.collect()
    reset_peak_rss()
    rss_start = _vmhwm_mb()
    e2e, e2e_cpu, res, model, name = _e2e(paths, out, checkpoint, batch, threads, runtime)
    rss = _vmhwm_mb()
    st = res.stats
    model = model.to(dev).eval()
    bare_model = _prepare(model, card, dev, runtime, shape, batch).model
    batches = engine_batches(size, shape["tile"], shape["context"], batch)
    if sum(batches) != st["tiles"]:
        batches = None  # not the grid this bench expects: full batches then
    co, cs = len(res.band_choice["optical"]["indices"]), len(res.band_choice["sar"]["indices"])
    timed = min(st["tiles"], bare_tiles) if bare_tiles else st["tiles"]
    bare_args = (dev, co, cs, shape["window"], batch, st["tiles"], timed)
    bare_kw = {"cloud": shape["cloud"], "features": shape["features"], "batches": batches}
    runs = {"e2e": [(e2e, e2e_cpu)], "bare": [], "eager": []}
    internal = [st["seconds"] / st["forward_seconds"]] if st["forward_seconds"] else []
    for i in range(max(1, repeats)):
        runs["bare"].append(_bare(bare_model, *bare_args, **bare_kw))
        runs["eager"].append(runs["bare"][-1] if bare_model is model else _bare(model, *bare_args, **bare_kw))
        if i < repeats - 1:
            w, c, r2, _, _ = _e2e(paths, out, checkpoint, batch, threads, runtime)
            runs["e2e"].append((w, c))
            internal.append(r2.stats["seconds"] / r2.stats["forward_seconds"])
    row = _row(size, layout, st, batch, res.device, name, runs, rss, rss_start, timed, internal)
    row.update(runtime=runtime, runtime_used=st.get("runtime"), output=out, **one_time)
    return row


def _row(size, layout, st, batch, device, name, runs, rss, rss_start, timed, internal) -> dict:
    import torch

    (e2e, _), (bare, _), (eager, _) = (min(runs[k]) for k in ("e2e", "bare", "eager"))
    e2e_cpu, bare_cpu, eager_cpu = (min(c for _, c in runs[k]) for k in ("e2e", "bare", "eager"))
    return {"size": size, "layout": layout, "pixels": size * size, "tiles": st["tiles"], "tile_size": st["tile_size"],
            "batch_size": batch, "device": device, "threads": torch.get_num_threads(), "model": name,
            "end_to_end_s": round(e2e, 2), "bare_forward_s": round(bare, 2), "bare_eager_s": round(eager, 2),
            "ratio": round(e2e / bare, 3) if bare else None,
            "ratio_vs_eager": round(e2e / eager, 3) if eager else None,
            "mpix_per_s": round(size * size / e2e / 1e6, 3), "peak_rss_mb": round(rss, 1),
            "rss_before_run_mb": round(rss_start, 1), "end_to_end_cpu_s": round(e2e_cpu, 2),
            "bare_forward_cpu_s": round(bare_cpu, 2), "bare_eager_cpu_s": round(eager_cpu, 2),
            "bare_tiles_timed": timed, "cpu_ratio": round(e2e_cpu / bare_cpu, 3) if bare_cpu else None,
            "engine_forward_s": round(st["forward_seconds"], 2), "reader_threads": st.get("reader_threads"),
            "in_run_ratio": round(min(internal), 3) if internal else None,
            "end_to_end_runs_s": [round(w, 2) for w, _ in runs["e2e"]],
            "bare_forward_runs_s": [round(w, 2) for w, _ in runs["bare"]],
            "bare_eager_runs_s": [round(w, 2) for w, _ in runs["eager"]], "phases": st.get("phases", {})}

