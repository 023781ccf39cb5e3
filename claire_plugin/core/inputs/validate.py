"""Checks on input values that end a run early with a message naming the problem and the fix."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import ClaireError


def valid_pixels(sample: np.ndarray, nodata: Optional[float] = None) -> np.ndarray:
    """Bool [h, w]: every band finite and (with a nodata value) not every band equal to it."""
    ok = np.isfinite(sample).all(axis=0)
    if nodata is not None and np.isfinite(nodata):
        ok &= ~(sample == np.float32(nodata)).all(axis=0)
    return ok


def require_valid_pixels(sample: np.ndarray, role: str, nodata: Optional[float] = None) -> None:
    """ClaireError when no pixel of `sample` [bands, h, w] (the overlap, read on the optical grid) is usable.

    A pixel is usable when all of its bands are valid, the same rule the engine uses for nodata, so a SAR
    whose VH band is all NaN is refused even when its VV band has values.
    """
    if not valid_pixels(sample, nodata).any():
        raise ClaireError(f"the {role} raster has no valid values (all NaN or nodata in at least one band) where "
                          f"it overlaps the {'SAR' if role == 'optical' else 'optical'} raster; check the {role} "
                          f"file and its nodata value")
