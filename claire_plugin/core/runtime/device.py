"""Choose the torch device for a run: models.device's rule (`auto`: CUDA, then Apple MPS, else CPU),
with the user-facing messages of the command line and the plugin.

Every front door (classify, classify-folder, train of both kinds, evaluate, explain; Processing; the dock)
checks the device here before any work. Messages name the command-line flag `--device`; Processing and the
dock rename it to their own parameter or field (`core.errors.rename_flags`).
"""
from __future__ import annotations

from typing import Optional, Tuple

from ....models.device import DeviceError
from ....models.device import resolve_device as _resolve
from ..errors import ClaireError

#: The fix each kind of models.device.DeviceError gets appended to its message.
_FIXES = {
    "no_cuda": "set --device to auto or cpu, or install a CUDA build of torch",
    "bad_cuda_name": "set --device to cuda or cuda:0",
    "cuda_unusable": "set --device to auto or cpu; to use the GPU, update its driver or install a torch build made "
                     "for it (`claire diagnostics` shows what torch sees)",
    "no_mps": "set --device to auto or cpu",
    "unknown": "set --device to auto, cpu, cuda, cuda:N or mps",
}


def resolve_device(name: Optional[str] = "auto") -> Tuple["torch.device", str]:  # noqa: F821
    """Return (device, reason). `name` is `auto`, `cpu`, `cuda`, `cuda:N` or `mps`.

    Raises ClaireError when an explicit device is not available, naming what to pick instead.
    """
    try:
        return _resolve(name)
    except DeviceError as exc:
        if exc.kind == "no_such_cuda":
            import torch
            fix = f"set --device to one of cuda:0 .. cuda:{torch.cuda.device_count() - 1}"
        else:
            fix = _FIXES[exc.kind]
        raise ClaireError(f"{exc}; {fix}") from None


def check_device(name: Optional[str] = "auto") -> str:
    """The device `name` resolves to, as text ('cpu', 'cuda', 'cuda:1', 'mps'); the ClaireError of
    `resolve_device` when it cannot be used. Call it before any work."""
    return str(resolve_device(name)[0])
