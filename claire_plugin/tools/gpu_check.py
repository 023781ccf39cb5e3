"""`make gpu-check`: the engine on a CUDA GPU in one short run (under 8 minutes on a recent GPU).

For each size (4096² and 8192² by default) the synthetic pair of the benchmark (tools.bench) is
classified end to end with the default checkpoint in float32 and in mixed precision (torch.autocast,
core.runtime.precision), and the model's bare forward is timed on as many tiles in both precisions:
seconds, the end-to-end / bare ratio, MPix/s, peak GPU memory (torch.cuda.max_memory_allocated) and peak
host memory (VmHWM, reset before each step where Linux allows), and how many pixels the mixed-precision
map shares with the float32 one. Then a few training steps of the `base` CLAIRE with AMP
(models.training.train on synthetic crops): seconds per step and peak GPU memory. Writes
build/gpu_check.json and build/gpu_check.md. Without a CUDA GPU it writes that, says so and exits 0.
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
    """Run the check (see the module docstring) and write its JSON and Markdown under `out_dir`."""
    import torch

    report: dict = {"machine": machine(), "device": device, "batch_size": batch, "runs": [], "training": None,
                    "skipped": []}
    if device.startswith("cuda") and not torch.cuda.is_available():
        report["no_gpu"] = (f"no CUDA GPU visible to torch {torch.__version__}: nothing was measured; run "
                            f"`make gpu-check` on a machine with an NVIDIA GPU and a CUDA build of torch")
        log(report["no_gpu"])
        write_summary(report, out_dir)
        return report
    t0 = time.perf_counter()
    own = folder is None
    folder = folder or tempfile.mkdtemp(prefix="claire-gpu-check-")
    try:
        for size in sizes:
            for precision in PRECISIONS:
                if time.perf_counter() - t0 > budget_s:
                    report["skipped"].append(f"{size}² {precision}: time budget of {budget_s:.0f} s spent")
                    continue
                log(f"{size}² {precision}: classifying end to end, then the bare forward...")
                row = _one(folder, size, precision, device, batch)
                report["runs"].append(row)
                log(f"  {row['end_to_end_s']} s end to end, {row['bare_forward_s']} s bare, ratio {row['ratio']}, "
                    f"GPU peak {row['gpu_peak_mb']} MB, host peak {row['host_peak_mb']} MB")
            _agreement(report["runs"], size)
        if time.perf_counter() - t0 > budget_s:
            report["skipped"].append(f"training: time budget of {budget_s:.0f} s spent")
        else:
            log(f"training: {train_steps} steps of the {quoted(train_size)} CLAIRE with AMP...")
            report["training"] = _training(device, train_size, train_steps, train_crop, train_batch)
    finally:
        if own:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    write_summary(report, out_dir)
    return report


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
    gpu_e2e, host_e2e = _gpu_peak_mb(dev), _vmhwm_mb()
    st = res.stats
    co, cs = len(res.band_choice["optical"]["indices"]), len(res.band_choice["sar"]["indices"])
    _reset_peaks(dev)
    bare, _ = _bare(net, dev, co, cs, st["window"][0], st["batch_size"], st["tiles"], st["tiles"])
    return {"size": size, "precision": precision, "model": name, "tiles": st["tiles"], "device": res.device,
            "end_to_end_s": round(e2e, 2), "bare_forward_s": round(bare, 2),
            "ratio": round(e2e / bare, 3) if bare else None, "mpix_per_s": round(size * size / e2e / 1e6, 2),
            "engine_forward_s": round(st["forward_seconds"], 2), "gpu_peak_mb": gpu_e2e,
            "gpu_peak_bare_mb": _gpu_peak_mb(dev), "host_peak_mb": round(host_e2e, 1), "output": out}


def _agreement(runs: List[dict], size: int) -> None:
    """Share of valid pixels where the mixed-precision map equals the float32 one (added to the amp row)."""
    rows = {r["precision"]: r for r in runs if r["size"] == size}
    if set(rows) != set(PRECISIONS):
        return
    share = map_agreement(rows["fp32"]["output"], rows["amp"]["output"])
    rows["amp"]["agreement_with_fp32"] = None if share is None else round(share, 5)


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
    return {"size": size, "steps": steps, "crop": crop, "batch_size": batch, "amp": dev.type == "cuda",
            "seconds": round(seconds, 2), "seconds_per_step": round(seconds / steps, 3),
            "loss": history["loss"][-1], "gpu_peak_mb": _gpu_peak_mb(dev), "host_peak_mb": round(_vmhwm_mb(), 1)}


def format_markdown(report: dict) -> str:
    """The summary as Markdown."""
    m = report["machine"]
    lines = ["# GPU check", "", f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}, GPU {m['gpu']}, "
             f"torch {m['torch']}; device {report['device']}, batch {report['batch_size']}.", ""]
    if report.get("no_gpu"):
        return "\n".join(lines + [report["no_gpu"], ""])
    lines += ["| size | precision | tiles | end-to-end s | bare forward s | ratio | MPix/s | GPU peak MB "
              "| host peak MB | same class as fp32 |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["runs"]:
        agree = r.get("agreement_with_fp32")
        lines.append(f"| {r['size']}² | {r['precision']} | {r['tiles']} | {r['end_to_end_s']} | {r['bare_forward_s']} "
                     f"| {r['ratio']} | {r['mpix_per_s']} | {r['gpu_peak_mb']} | {r['host_peak_mb']} "
                     f"| {'' if agree is None else f'{100 * agree:.2f} %'} |")
    t = report.get("training")
    if t:
        lines += ["", f"Training, `{t['size']}` CLAIRE, AMP {t['amp']}: {t['steps']} steps of {t['batch_size']} "
                  f"crops of {t['crop']} px in {t['seconds']} s ({t['seconds_per_step']} s/step), last loss "
                  f"{t['loss']}, GPU peak {t['gpu_peak_mb']} MB, host peak {t['host_peak_mb']} MB."]
    for s in report.get("skipped", []):
        lines.append(f"\nSkipped: {s}")
    if "seconds" in report:
        lines += ["", f"The whole check took {report['seconds']} s."]
    return "\n".join(lines) + "\n"


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
