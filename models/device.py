"""The one device rule: `auto` prefers CUDA, then Apple MPS, else the CPU.

torch is imported inside the functions, so this module loads (and `auto_choice` works) without it.
"""
from __future__ import annotations

from typing import Optional, Tuple

from .quoting import quoted


class DeviceError(ValueError):
    """A requested device is not available or not a device name; `kind` says which case.

    kind: "no_cuda", "bad_cuda_name", "no_such_cuda", "cuda_unusable", "no_mps" or "unknown".
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def auto_choice(has_cuda: bool, has_mps: bool) -> str:
    """What `auto` picks given what is available: "cuda", "mps" or "cpu"."""
    if has_cuda:
        return "cuda"
    if has_mps:
        return "mps"
    return "cpu"


def _has_mps(torch) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


_CUDA_PROBED: dict = {}


def cuda_problem(index: int = 0) -> str:
    """Why CUDA device `index` cannot run a kernel ("" when it can): a GPU torch sees whose driver is too old, whose
    architecture this torch build has no kernels for, or that another program holds in exclusive mode fails only
    at the first kernel. Tried once per device and process."""
    if index not in _CUDA_PROBED:
        import torch

        try:
            with torch.cuda.device(index):
                torch.ones(1, device=f"cuda:{index}").add_(1)
                torch.cuda.synchronize(index)
            _CUDA_PROBED[index] = ""
        except Exception as exc:  # noqa: BLE001 - any failure means the GPU cannot be used
            _CUDA_PROBED[index] = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return _CUDA_PROBED[index]


def resolve_device(name: Optional[str] = "auto") -> Tuple["torch.device", str]:  # noqa: F821
    """(device, why) for `auto`, `cpu`, `cuda`, `cuda:N` or `mps`; DeviceError when it cannot be used. `auto`
    passes over a CUDA GPU that cannot run a kernel (cuda_problem), saying so."""
    import torch

    want = (name or "auto").strip().lower()
    has_cuda = torch.cuda.is_available()
    has_mps = _has_mps(torch)
    if want == "auto":
        unusable = cuda_problem(0) if has_cuda else ""
        choice = auto_choice(has_cuda and not unusable, has_mps)
        if choice == "cuda":
            return torch.device("cuda"), f"auto: CUDA available ({torch.cuda.get_device_name(0)})"
        passed = f"CUDA GPU not usable ({unusable}); " if unusable else ""
        if choice == "mps":
            return torch.device("mps"), f"auto: {passed}Apple MPS available"
        if unusable:
            return torch.device("cpu"), f"auto: {passed}using the CPU"
        return torch.device("cpu"), "auto: no CUDA or MPS device found, using the CPU"
    if want == "cpu":
        return torch.device("cpu"), "cpu requested"
    if want.startswith("cuda"):
        if not has_cuda:
            raise DeviceError("no_cuda", f"device {quoted(name)} was requested but this torch build sees no CUDA GPU "
                                         f"(torch {torch.__version__})")
        try:
            dev = torch.device(want)
        except RuntimeError as exc:
            raise DeviceError("bad_cuda_name", f"device {quoted(name)} is not a valid device name ({exc})") from None
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceError("no_such_cuda", f"device {quoted(name)} does not exist: {count} CUDA device(s) visible")
        unusable = cuda_problem(dev.index or 0)
        if unusable:
            raise DeviceError("cuda_unusable", f"device {quoted(name)} was requested but its GPU cannot run CUDA "
                                               f"kernels with torch {torch.__version__} ({unusable})")
        return dev, f"{want} requested"
    if want == "mps":
        if not has_mps:
            raise DeviceError("no_mps", "device 'mps' was requested but Apple MPS is not available")
        return torch.device("mps"), "mps requested"
    raise DeviceError("unknown", f"unknown device {quoted(name)}")


def cuda_half_dtype(device=None) -> "torch.dtype":  # noqa: F821
    """bfloat16 on a CUDA GPU that computes it natively (compute capability 8 and later: Ampere, Hopper...), else
    float16: torch's own test also says yes for older GPUs that only emulate bfloat16, slowly, and reads the
    current GPU, not `device` (on a machine with a T4 and an A100, cuda:1 got cuda:0's answer)."""
    import torch

    if device is not None and getattr(torch.device(device), "type", None) == "cuda":
        try:
            return torch.bfloat16 if torch.cuda.get_device_properties(torch.device(device)).major >= 8 \
                else torch.float16
        except (RuntimeError, AssertionError, ValueError):  # a device torch cannot describe: its own test below
            pass
    try:
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # a torch without the keyword
        native = torch.cuda.is_bf16_supported()
    return torch.bfloat16 if native else torch.float16
