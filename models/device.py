"""The one device rule: `auto` prefers CUDA, then Apple MPS, else the CPU.

torch is imported inside the functions, so this module loads (and `auto_choice` works) without it.
"""
from __future__ import annotations

from typing import Optional, Tuple

from .quoting import quoted


class DeviceError(ValueError):
    """A requested device is not available or not a device name; `kind` says which case.

    kind: "no_cuda", "bad_cuda_name", "no_such_cuda", "no_mps" or "unknown".
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


def resolve_device(name: Optional[str] = "auto") -> Tuple["torch.device", str]:  # noqa: F821
    """(device, why) for `auto`, `cpu`, `cuda`, `cuda:N` or `mps`; DeviceError when it cannot be used."""
    import torch

    want = (name or "auto").strip().lower()
    has_cuda = torch.cuda.is_available()
    has_mps = _has_mps(torch)
    if want == "auto":
        choice = auto_choice(has_cuda, has_mps)
        if choice == "cuda":
            return torch.device("cuda"), f"auto: CUDA available ({torch.cuda.get_device_name(0)})"
        if choice == "mps":
            return torch.device("mps"), "auto: Apple MPS available"
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
        return dev, f"{want} requested"
    if want == "mps":
        if not has_mps:
            raise DeviceError("no_mps", "device 'mps' was requested but Apple MPS is not available")
        return torch.device("mps"), "mps requested"
    raise DeviceError("unknown", f"unknown device {quoted(name)}")
