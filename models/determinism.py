"""Bit-for-bit reproducible training and evaluation on any x86-64 CPU of one system image (`claire train
--reproducible`, used by `make checkpoint`): the same torch build and C library. Across system images the weights
differ in their last digits (Debian 12 against 13: up to 7.6e-6, the held-out scores equal; QA round 22): the C
library's `erff`, `log1pf`, `expm1f` and `tanhf` (glibc 2.36 against 2.41) and the torch build enter GELU and a few
other element-wise kernels; `record()` names both.

What makes the bits of a CPU run differ from one machine to another, and what pins it here:
- the SIMD width of ATen's own kernels (AVX-512, AVX2 or none: other reduction orders) ->
  ATEN_CPU_CAPABILITY=default, the plain C++ kernels every x86-64 CPU runs;
- oneDNN's convolutions, JIT-compiled per CPU (ISA, cache sizes) -> oneDNN off: convolutions run as ATen's
  im2col + MKL GEMM;
- MKL's GEMM code path, chosen per CPU -> MKL_CBWR=COMPATIBLE (MKL's conditional numerical reproducibility);
- NNPACK -> off;
- the thread count (it partitions the reductions) -> THREADS, whatever OMP_NUM_THREADS says;
- kernels without a deterministic implementation -> torch.use_deterministic_algorithms(True, warn_only=True)
  (on the CPU every kernel the networks use has one; on CUDA some have not, hence warn_only: CUDA runs are
  not claimed to be reproducible, and `--reproducible` refuses them);
- random numbers -> seeded generators (models.training), and NumPy 1 vs 2 -> quantiles taken in float64
  (models.augment, models.familiarity), since NumPy 2 keeps a float32 quantile in float32.
ATen reads ATEN_CPU_CAPABILITY when it runs its first kernel and MKL reads MKL_CBWR on its first call, so
`pin_environment()` must run before either (the command line calls it first thing; the Makefile exports
the same variables); `enable()` checks that it did.
"""
from __future__ import annotations

import os
from typing import Any, Dict

#: Environment that pins the CPU code paths (module docstring); `make checkpoint` exports the same.
PINNED_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
#: torch threads of a reproducible run.
THREADS = 1


class NotReproducibleError(RuntimeError):
    """The process cannot be made reproducible any more (a kernel already ran with another code path)."""


def pin_environment() -> None:
    """Set PINNED_ENV in this process's environment; call before torch runs any kernel."""
    os.environ.update(PINNED_ENV)


def enable() -> Dict[str, Any]:
    """Switch this process to the reproducible mode; returns what the card records (`record()`).

    Raises NotReproducibleError when ATen already chose another CPU capability (pin_environment too late)."""
    import torch

    pin_environment()
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "DEFAULT":
        raise NotReproducibleError(
            f"torch already runs its {capability} kernels in this process, so the run cannot be reproduced on "
            f"another CPU; start it with ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE in the environment")
    torch.set_num_threads(THREADS)
    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    return record()


def record() -> Dict[str, Any]:
    """What a reproducible run depends on, for the model card's `training.reproducibility`."""
    import platform

    import numpy as np
    import torch

    return {"deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
            "torch": torch.__version__, "numpy": np.__version__, "torch_threads": torch.get_num_threads(),
            "libc": " ".join(platform.libc_ver()).strip() or None,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "onednn": bool(torch.backends.mkldnn.enabled), "nnpack": bool(torch._C._get_nnpack_enabled()),
            "environment": {k: os.environ.get(k) for k in PINNED_ENV}}
