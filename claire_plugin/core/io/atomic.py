"""Write a text or JSON file atomically: a hidden temporary name in the same folder, renamed when complete.

Readers never see a half-written file, and a failed write leaves the earlier file as it was. The file
gets the usual permissions of a new file (the process's umask), not the 0600 of a temporary file.
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ..errors import ClaireError


def temp_name(path: str) -> str:
    """The hidden temporary name a file is written to before it is renamed to `path`."""
    folder, base = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{base}.{os.getpid()}.partial")


def write_text(path: str, text: str, role: str = "output") -> str:
    """Write `text` to `path` atomically; a ClaireError naming `role` when the folder is not writable."""
    tmp = temp_name(path)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ClaireError(f"cannot write the {role} to {path!r}: {exc.strerror or exc}; choose a writable "
                          f"folder with free space") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def json_default(o: Any) -> Any:
    """JSON for numpy scalars and arrays."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def write_json(path: str, data: Any, role: str = "output") -> str:
    """Write `data` as indented JSON to `path` atomically (numpy values converted)."""
    return write_text(path, json.dumps(data, indent=2, default=json_default), role)
