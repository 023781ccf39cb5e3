"""Does a run fit in memory? Checked before anything is written, so that a tile size or batch size too
large for the machine gets a message with sizes that fit instead of the operating system killing QGIS;
and an out-of-memory error during a forward becomes the same kind of message.

The model's activation memory per tile pixel is measured on the run's own model: one small forward
records the bytes of every module output that is alive at the same time (tensors are freed as soon as
nothing holds them). Temporaries inside a module and functional code are not seen; on the shipped
architectures the process's real peak was 1.1-2.1x the tracked one (tools: /proc VmHWM at tiles of
256-512 px), hence SAFETY. Available memory comes from core.runtime.resources.available_bytes;
where it cannot be read, the check is skipped.
"""
from __future__ import annotations

import weakref
from typing import Optional, Tuple

from ..errors import ClaireError
from ..runtime.resources import available_bytes
from .tiling import tiles_per_chunk

#: Real peak over tracked module outputs (measured 1.1-2.1 on the shipped architectures).
SAFETY = 2.5
#: Share of the available memory a run may plan to use.
USABLE = 0.8
#: Chunks of inputs and outputs alive at once (being read, queued, in the model, being written).
CHUNKS_IN_FLIGHT = 3
CALIBRATION_TILE = 128


_measured: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def activation_bytes_per_pixel(model, device, optical_channels: int, sar_channels: int) -> float:
    """Peak bytes of module outputs alive at once during one forward, per input pixel (batch 1,
    CALIBRATION_TILE px; the figure does not depend on the tile size for these fully convolutional nets).
    Measured once per model, device and input shape."""
    key = (str(device), optical_channels, sar_channels)
    known = _measured.get(model, {})
    if key not in known:
        known[key] = _measure(model, device, optical_channels, sar_channels)
        _measured[model] = known
    return known[key]


def _measure(model, device, optical_channels: int, sar_channels: int) -> float:
    import torch

    live = {"now": 0, "peak": 0}
    seen = {}

    def track(t) -> None:
        if not isinstance(t, torch.Tensor):
            return
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen:
            return
        n = t.untyped_storage().nbytes()
        seen[ptr] = n
        live["now"] += n
        live["peak"] = max(live["peak"], live["now"])

        def freed(ptr=ptr, n=n):
            if seen.pop(ptr, None) is not None:
                live["now"] -= n

        weakref.finalize(t, freed)

    def hook(_module, _inputs, out):
        items = out.values() if isinstance(out, dict) else out if isinstance(out, (tuple, list)) else (out,)
        for t in items:
            track(t)

    T = CALIBRATION_TILE
    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.inference_mode():
            o = torch.zeros(1, optical_channels, T, T, device=device)
            s = torch.zeros(1, sar_channels, T, T, device=device)
            track(o)
            track(s)
            model(o, s)
            del o, s
    finally:
        for h in handles:
            h.remove()
    work = getattr(model, "work_bytes_per_pixel", None)  # buffers outside torch (models.forest)
    return live["peak"] / float(T * T) + (float(work()) if work is not None else 0.0)


def run_bytes(bpp: float, px: int, batch: int, chunk_tiles: int, channels_in: int, channels_out: int,
              lanes: int = 1) -> int:
    """Planned peak of a run beyond the loaded model: the forward's activations for one batch of windows of
    `px` pixels in each of `lanes` forward lanes, plus the float32 inputs and outputs of the chunks in flight
    (one more per extra lane)."""
    forward = SAFETY * bpp * batch * px * lanes
    buffers = (CHUNKS_IN_FLIGHT + lanes - 1) * chunk_tiles * px * 4 * (channels_in + channels_out)
    return int(forward + buffers)


def check_fits(model, device, tile: int, context: int, batch: int, channels_in: Tuple[int, int],
               channels_out: int, available: Optional[Tuple[Optional[int], str]] = None,
               lanes: int = 1) -> Optional[str]:
    """Raise ClaireError (with a batch or tile size that fits) when the run would need more than USABLE of
    the available memory; else return a note of what it plans to use (None when unknown). Tiles keep
    `tile` px cores read with `context` px around them, `lanes` windows run at once (schedule.forward_lanes);
    planned for full windows even where the raster is smaller than one (its window is then smaller: the plan
    errs on the safe side)."""
    avail, where = available or available_bytes(device)
    if avail is None:
        return None
    co, cs = channels_in
    bpp = activation_bytes_per_pixel(model, device, co, cs)

    def need(t: int, b: int) -> int:
        w = t + 2 * context
        return run_bytes(bpp, w * w, b, tiles_per_chunk(b, w), co + cs, channels_out, lanes)

    budget = USABLE * avail
    planned = need(tile, batch)
    if planned <= budget:
        at_once = f" x {lanes} windows at once" if lanes > 1 else ""
        return (f"memory: about {_gb(planned)} planned for tile {tile} px (+ {context} px of context) x batch "
                f"{batch}{at_once} ({_gb(avail)} {where})")
    fix = next((f"--batch-size {b}" for b in range(batch - 1, 0, -1) if need(tile, b) <= budget), None)
    if fix is None:
        t = next((t for t in range(tile - 32, 31, -32) if need(t, 1) <= budget), None)
        fix = f"--tile-size {t} and --batch-size 1" if t else "a machine or device with more free memory"
    kind = "GPU" if device.type == "cuda" else "CPU"
    other = ("raise the limit" if "limit" in where else "close other programs")
    raise ClaireError(f"tile {tile} px (+ {context} px of context) x batch {batch} needs about {_gb(planned)} of "
                      f"{kind} memory (at most {USABLE:.0%} of what is left is planned), but only {_gb(avail)} is "
                      f"{where}; use {fix}, or {other}")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is torch running out of CPU or device memory."""
    text = str(exc)
    return isinstance(exc, RuntimeError) and (type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text
                                             or "can't allocate memory" in text)


def out_of_memory_error(device, tile: int, batch: int) -> ClaireError:
    """The message for an out-of-memory error during the forward."""
    smaller = f"--batch-size {max(1, batch // 2)}" if batch > 1 else f"--tile-size {max(32, tile // 2 // 32 * 32)}"
    other = ", or --device cpu" if device.type != "cpu" else ""
    return ClaireError(f"the model ran out of {device.type.upper()} memory at tile {tile} px x batch {batch}; "
                       f"use {smaller}{other}, or close other programs. Nothing was written")


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"
