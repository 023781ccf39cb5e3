"""Choose the torch device for a run: `auto` prefers CUDA, then Apple MPS, else CPU."""
from __future__ import annotations

from typing import Optional, Tuple

from ..errors import ClaireError


def resolve_device(name: Optional[str] = "auto") -> Tuple["torch.device", str]:  # noqa: F821
    """Return (device, reason). `name` is `auto`, `cpu`, `cuda`, `cuda:N` or `mps`.

    Raises ClaireError when an explicit device is not available, naming what to pick instead.
    """
    import torch

    want = (name or "auto").strip().lower()
    has_cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if want == "auto":
        if has_cuda:
            return torch.device("cuda"), f"auto: CUDA available ({torch.cuda.get_device_name(0)})"
        if has_mps:
            return torch.device("mps"), "auto: Apple MPS available"
        return torch.device("cpu"), "auto: no CUDA or MPS device found, using the CPU"
    if want == "cpu":
        return torch.device("cpu"), "cpu requested"
    if want.startswith("cuda"):
        if not has_cuda:
            raise ClaireError(
                f"device {name!r} was requested but this torch build sees no CUDA GPU "
                f"(torch {torch.__version__}); use --device auto or cpu, or install a CUDA build of torch")
        try:
            dev = torch.device(want)
        except RuntimeError as exc:
            raise ClaireError(f"device {name!r} is not a valid device name ({exc}); use cuda or cuda:0") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ClaireError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) "
                              f"visible; use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
        return dev, f"{want} requested"
    if want == "mps":
        if not has_mps:
            raise ClaireError("device 'mps' was requested but Apple MPS is not available; use --device auto or cpu")
        return torch.device("mps"), "mps requested"
    raise ClaireError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
