"""`make gpu-check`: the engine on a CUDA GPU in one short run (under 8 minutes on a recent GPU).

First, for each size (4096² and 8192² by default), the model's bare forward on the windows and batches the engine
runs on such a pair (with the cloud input and familiarity features it asks for), in float32 and in mixed precision
(torch.autocast, core.runtime.precision): seconds, MPix/s, peak GPU memory (torch.cuda.max_memory_allocated). Then
a few training steps of the `base` CLAIRE with AMP (models.training.train on synthetic crops): seconds per step and
peak GPU memory. These need torch only. Last, where GDAL and rasterio import, the synthetic pair of the benchmark
(tools.bench) classified end to end in both precisions: seconds, the end-to-end / bare ratio, MPix/s, peak GPU and
host memory (VmHWM, reset before each step where Linux allows), and how many pixels the mixed-precision map shares
with the float32 one. A failing stage is recorded and the next runs; the summary (gpu_check.json and gpu_check.md
under --out, default build/) is written after every stage. Without a CUDA GPU it writes that, says so and exits 0.
`claire_plugin/tools/gpu_check.sh OUT` runs it with the machine's own python3 and torch, without `make`'s set-up.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ...models.quoting import quoted
from .bench import _bare, _load, _vmhwm_mb, machine, map_agreement, reset_peak_rss, write_pair

SIZES = (4096, 8192)
#: No new step starts after this many seconds (the whole check must stay under 8 minutes).
BUDGET_S = 400.0
PRECISIONS = ("fp32", "amp")


def run_check(out_dir: str, sizes: Sequence[int] = SIZES, device: str = "cuda", batch: int = 16,
              train_size: str = "base", train_steps: int = 6, train_crop: int = 256, train_batch: int = 8,
              folder: Optional[str] = None, budget_s: float = BUDGET_S, log: Callable[[str], None] = print) -> dict:
    """Run the check (see the module docstring) and write its JSON and Markdown under `out_dir`: the bare forwards
    and the training first (they need torch only), then the engine end to end where GDAL and rasterio import. A
    stage that fails is recorded (`errors`) and the next one runs; the summary is written after every stage, so a
    run stopped at its time limit leaves what it measured."""
    import torch

    report: dict = {"machine": machine(), "device": device, "batch_size": batch, "runs": [], "bare": [],
                    "training": None, "skipped": [], "errors": []}
    if device.startswith("cuda") and not torch.cuda.is_available():
        report["no_gpu"] = (f"no CUDA GPU visible to torch {torch.__version__}: nothing was measured; run "
                            f"`make gpu-check` (or `sh claire_plugin/tools/gpu_check.sh OUT` where nothing can be "
                            f"installed) on a machine with an NVIDIA GPU and a CUDA build of torch")
        log(report["no_gpu"])
        write_summary(report, out_dir)
        return report
    report["float32_matmul"] = _float32_settings(torch)
    t0 = time.perf_counter()

    def stage(name: str, fn: Callable[..., None], *args) -> None:
        if time.perf_counter() - t0 > budget_s:
            report["skipped"].append(f"{name}: time budget of {budget_s:.0f} s spent")
            return
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - recorded; the next stage still runs
            first = (str(exc).strip().splitlines() or [""])[0]
            report["errors"].append({"stage": name, "error": f"{type(exc).__name__}: {first}"})
            log(f"  {name} failed: {type(exc).__name__}: {first}")
        write_summary(report, out_dir)

    for size in sizes:
        for precision in PRECISIONS:
            stage(f"{size}² {precision} bare forward", _bare_stage, report, size, precision, device, batch, log)
    stage("training", _training_stage, report, device, train_size, train_steps, train_crop, train_batch, log)
    missing = engine_missing()
    own = folder is None
    folder = folder or tempfile.mkdtemp(prefix="claire-gpu-check-")
    try:
        for size in sizes:
            for precision in PRECISIONS:
                if missing:
                    report["skipped"].append(f"{size}² {precision} end to end: {missing}")
                    continue
                stage(f"{size}² {precision} end to end", _e2e_stage, report, folder, size, precision, device, batch,
                      log)
            _agreement(report["runs"], size)
    finally:
        if own:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    write_summary(report, out_dir)
    return report


def engine_missing() -> str:
    """Why the engine cannot run here ("" when it can): it reads and writes rasters with GDAL and rasterio, which a
    bare GPU machine may lack (and GDAL's Python bindings have no wheel to carry there)."""
    import importlib

    gone = []
    for module in ("osgeo.gdal", "rasterio"):
        try:
            importlib.import_module(module)
        except ImportError:
            gone.append(module.split(".")[0])
    return f"{' and '.join(gone)} cannot be imported here, so the engine cannot run" if gone else ""


def _float32_settings(torch) -> dict:
    """Whether float32 matrix products and convolutions may use TF32 on this GPU (torch's settings, as the engine
    runs): the "fp32" rows are of these settings."""
    return {"matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32)}


def _bare_stage(report: dict, size: int, precision: str, device: str, batch: int, log) -> None:
    log(f"{size}² {precision}: the bare forward on the engine's windows...")
    row = _bare_row(size, precision, device, batch)
    report["bare"].append(row)
    log(f"  {row['bare_forward_s']} s for {row['tiles']} windows of {row['window']} px, {row['mpix_per_s']} MPix/s, "
        f"GPU peak {row['gpu_peak_mb']} MB")


def _training_stage(report: dict, device: str, size: str, steps: int, crop: int, batch: int, log) -> None:
    log(f"training: {steps} steps of the {quoted(size)} CLAIRE with AMP...")
    report["training"] = _training(device, size, steps, crop, batch)


def _e2e_stage(report: dict, folder: str, size: int, precision: str, device: str, batch: int, log) -> None:
    log(f"{size}² {precision}: classifying end to end...")
    row = _one(folder, size, precision, device, batch)
    bare = next((b for b in report["bare"] if b["size"] == size and b["precision"] == precision), None)
    row["bare_forward_s"] = bare["bare_forward_s"] if bare else None
    row["ratio"] = round(row["end_to_end_s"] / bare["bare_forward_s"], 3) if bare and bare["bare_forward_s"] else None
    report["runs"].append(row)
    log(f"  {row['end_to_end_s']} s end to end, ratio {row['ratio']}, GPU peak {row['gpu_peak_mb']} MB, "
        f"host peak {row['host_peak_mb']} MB")


def _reset_peaks(dev) -> None:
    """Start the peak counters of GPU memory and of the process's RSS (VmHWM) afresh."""
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(dev)
    reset_peak_rss()


def _gpu_peak_mb(dev) -> Optional[float]:
    import torch

    return round(torch.cuda.max_memory_allocated(dev) / 2 ** 20, 1) if dev.type == "cuda" else None


def _one(folder: str, size: int, precision: str, device: str, batch: int) -> dict:
    from ..core.runtime.torch_thread import call

    return call(_one_here, folder, size, precision, device, batch)


def _one_here(folder: str, size: int, precision: str, device: str, batch: int) -> dict:
    import torch

    from ..core.engine import run
    from ..core.params import ClassifyParams
    from ..core.runtime.precision import Autocast

    paths = write_pair(folder, size)
    model, card, name = _load(None)
    dev = torch.device(device)
    model = model.to(dev).eval()
    net = Autocast(model) if precision == "amp" else model
    out = os.path.join(folder, f"classes_{size}_{precision}.tif")
    _reset_peaks(dev)
    t = time.perf_counter()
    res = run(ClassifyParams(paths["optical"], paths["sar"], out, batch_size=batch, device=device), net, card)
    e2e = time.perf_counter() - t
    st = res.stats
    return {"size": size, "precision": precision, "model": name, "tiles": st["tiles"], "device": res.device,
            "end_to_end_s": round(e2e, 2), "mpix_per_s": round(size * size / e2e / 1e6, 2),
            "engine_forward_s": round(st["forward_seconds"], 2), "gpu_peak_mb": _gpu_peak_mb(dev),
            "host_peak_mb": round(_vmhwm_mb(), 1), "output": out}


def _bare_row(size: int, precision: str, device: str, batch: int) -> dict:
    from ..core.runtime.torch_thread import call

    return call(_bare_here, size, precision, device, batch)


def _bare_here(size: int, precision: str, device: str, batch: int) -> dict:
    """The model alone on the windows and batches the engine runs on a `size` x `size` pair, with the cloud input
    and the familiarity features it asks for (tools.bench_measure), in `precision`."""
    import torch

    from ..core.runtime.precision import Autocast
    from .bench_measure import engine_batches, model_inputs

    model, card, name = _load(None)
    dev = torch.device(device)
    model = model.to(dev).eval()
    net = Autocast(model) if precision == "amp" else model
    shape = model_inputs(card, batch, size)
    batches = engine_batches(size, shape["tile"], shape["context"], shape["batch"])
    tiles = sum(batches)
    _reset_peaks(dev)
    bare, _ = _bare(net, dev, *shape["channels"], shape["window"], shape["batch"], tiles, tiles, cloud=shape["cloud"],
                    features=shape["features"], batches=batches)
    return {"size": size, "precision": precision, "model": name, "tiles": tiles, "window": shape["window"],
            "batch_size": shape["batch"], "bare_forward_s": round(bare, 2),
            "mpix_per_s": round(size * size / bare / 1e6, 2) if bare else None, "gpu_peak_mb": _gpu_peak_mb(dev)}


def _agreement(runs: List[dict], size: int) -> None:
    """Share of valid pixels where the mixed-precision map equals the float32 one (added to the amp row)."""
    rows = {r["precision"]: r for r in runs if r["size"] == size}
    if set(rows) != set(PRECISIONS):
        for r in rows.values():
            r.pop("output", None)
        return
    share = map_agreement(rows["fp32"]["output"], rows["amp"]["output"])
    rows["amp"]["agreement_with_fp32"] = None if share is None else round(share, 5)
    for r in rows.values():
        r.pop("output", None)  # a temporary file, removed with the check's folder


class _SyntheticCrops:
    """Random crops for models.training.train: smooth fields of reflectance and dB with 9 classes."""

    def __init__(self, optical_bands: int, sar_bands: int, num_classes: int) -> None:
        self.co, self.cs, self.k = optical_bands, sar_bands, num_classes

    def sample(self, rng: np.random.Generator, crop: int):
        label = rng.integers(0, self.k, (crop // 16, crop // 16)).repeat(16, 0).repeat(16, 1)
        optical = 500.0 + 300.0 * label[None] + rng.normal(0, 80, (self.co, crop, crop))
        sar = -20.0 + 1.5 * label[None] + rng.normal(0, 1.0, (self.cs, crop, crop))
        return optical.astype(np.float32), sar.astype(np.float32), label.astype(np.int64)

    def class_counts(self, num_classes: int) -> np.ndarray:
        return np.ones(num_classes, np.int64)


def _training(device: str, size: str, steps: int, crop: int, batch: int) -> dict:
    from ..core.runtime.torch_thread import call

    return call(_training_here, device, size, steps, crop, batch)


def _training_here(device: str, size: str, steps: int, crop: int, batch: int) -> dict:
    import torch

    from ...models.training import TrainConfig, train

    _, card, _ = _load(None)
    ospec, sspec = card["inputs"]["optical"], card["inputs"]["sar"]
    k = len(card["classes"])
    source = _SyntheticCrops(len(ospec["bands"]), len(sspec["bands"]), k)
    dev = torch.device(device)
    cfg = dict(arch="claire", size=size, epochs=1, batch_size=batch, crop=crop, device=device, amp=True,
               warmup_steps=1)
    train(source, ospec, sspec, k, TrainConfig(steps_per_epoch=1, **cfg), progress=False)  # warm-up
    _reset_peaks(dev)
    t = time.perf_counter()
    _, history = train(source, ospec, sspec, k, TrainConfig(steps_per_epoch=steps, **cfg), progress=False)
    seconds = time.perf_counter() - t
    from ...models.device import cuda_half_dtype

    half = str(cuda_half_dtype(dev)).replace("torch.", "") if dev.type == "cuda" else None
    return {"size": size, "steps": steps, "crop": crop, "batch_size": batch, "amp": dev.type == "cuda",
            "amp_dtype": half, "grad_scaler": half == "float16",
            "seconds": round(seconds, 2), "seconds_per_step": round(seconds / steps, 3),
            "loss": history["loss"][-1], "gpu_peak_mb": _gpu_peak_mb(dev), "host_peak_mb": round(_vmhwm_mb(), 1)}


def format_markdown(report: dict) -> str:
    """The summary as Markdown."""
    m = report["machine"]
    lines = ["# GPU check", "", f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}, GPU {m['gpu']}, "
             f"torch {m['torch']}; device {report['device']}, batch {report['batch_size']}.", ""]
    if report.get("no_gpu"):
        return "\n".join(lines + [report["no_gpu"], ""])
    f32 = report.get("float32_matmul")
    if f32:
        lines += [f"float32 rows with TF32 allowed in matrix products: {f32['matmul_allow_tf32']}, in convolutions: "
                  f"{f32['cudnn_allow_tf32']} (torch's settings, as the engine runs).", ""]
    if report.get("bare"):
        lines += ["The model alone on the engine's windows and batches:", "",
                  "| size | precision | windows | window px | batch | bare forward s | MPix/s | GPU peak MB |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {b['size']}² | {b['precision']} | {b['tiles']} | {b['window']} | {b['batch_size']} "
                  f"| {b['bare_forward_s']} | {b['mpix_per_s']} | {b['gpu_peak_mb']} |" for b in report["bare"]]
        lines.append("")
    if report.get("runs"):
        lines += ["End to end (`claire classify` of the benchmark pair):", "",
                  "| size | precision | tiles | end-to-end s | bare forward s | ratio | MPix/s | GPU peak MB "
                  "| host peak MB | same class as fp32 |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in report["runs"]:
            agree = r.get("agreement_with_fp32")
            lines.append(f"| {r['size']}² | {r['precision']} | {r['tiles']} | {r['end_to_end_s']} "
                         f"| {r.get('bare_forward_s')} | {r.get('ratio')} | {r['mpix_per_s']} | {r['gpu_peak_mb']} "
                         f"| {r['host_peak_mb']} | {'' if agree is None else f'{100 * agree:.2f} %'} |")
        lines.append("")
    t = report.get("training")
    if t:
        half = f" ({t['amp_dtype']}{', gradient scaler' if t.get('grad_scaler') else ''})" if t.get("amp_dtype") \
            else ""
        lines += [f"Training, `{t['size']}` CLAIRE, AMP {t['amp']}{half}: {t['steps']} steps of {t['batch_size']} "
                  f"crops of {t['crop']} px in {t['seconds']} s ({t['seconds_per_step']} s/step), last loss "
                  f"{t['loss']}, GPU peak {t['gpu_peak_mb']} MB, host peak {t['host_peak_mb']} MB.", ""]
    for s in report.get("skipped", []):
        lines += [f"Skipped: {s}", ""]
    for e in report.get("errors", []):
        lines += [f"Failed: {e['stage']}: {e['error']}", ""]
    if "seconds" in report:
        lines += [f"The whole check took {report['seconds']} s.", ""]
    return "\n".join(lines)


def write_summary(report: dict, out_dir: str) -> Dict[str, str]:
    """Write gpu_check.json and gpu_check.md under `out_dir`; returns their paths."""
    from ..core.io.atomic import write_json, write_text

    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, "gpu_check.json"), "markdown": os.path.join(out_dir, "gpu_check.md")}
    write_json(paths["json"], report)
    write_text(paths["markdown"], format_markdown(report))
    return paths


def main(argv: Optional[List[str]] = None) -> int:
    """Command line of `make gpu-check`."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build", help="folder for gpu_check.json and gpu_check.md (default build)")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="square sizes (default 4096,8192)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--train-steps", type=int, default=6)
    a = ap.parse_args(argv)
    report = run_check(a.out, [int(s) for s in a.sizes.split(",")], batch=a.batch_size, train_steps=a.train_steps)
    print(format_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
