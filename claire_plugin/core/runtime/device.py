"""Choose the torch device for a run: models.device's rule (`auto`: CUDA, then Apple MPS, else CPU),
with the user-facing messages of the command line and the plugin."""
from __future__ import annotations

from typing import Optional, Tuple

from ....models.device import DeviceError
from ....models.device import resolve_device as _resolve
from ..errors import ClaireError

#: The fix each kind of models.device.DeviceError gets appended to its message.
_FIXES = {
    "no_cuda": "use --device auto or cpu, or install a CUDA build of torch",
    "bad_cuda_name": "use cuda or cuda:0",
    "no_mps": "use --device auto or cpu",
    "unknown": "use auto, cpu, cuda, cuda:N or mps",
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
            fix = f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}"
        else:
            fix = _FIXES[exc.kind]
        raise ClaireError(f"{exc}; {fix}") from None
