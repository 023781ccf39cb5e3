"""Checks on input values that end a run early with a message naming the problem and the fix."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import ClaireError


def equal_in_every_band(a: np.ndarray, value) -> np.ndarray:
    """Bool [h, w]: pixels of `a` [C, h, w] equal to `value` in every band (nodata). Band by band, without a
    [C, h, w] temporary, and the remaining bands are not looked at once no pixel is left."""
    out = a[0] == value
    for band in a[1:]:
        if not out.any():
            break
        out &= band == value
    return out


def optical_nodata(o: np.ndarray, nodata) -> np.ndarray:
    """Bool [h, w]: optical pixels that are no data by their values: every band equal to the declared `nodata`, or,
    when none is declared (None), every band 0, Sentinel-2's NO_DATA (swath edges), never a reflectance."""
    return equal_in_every_band(o, 0 if nodata is None else nodata)


def valid_pixels(sample: np.ndarray, nodata: Optional[float] = None) -> np.ndarray:
    """Bool [h, w]: every band finite and (with a nodata value) not every band equal to it."""
    ok = np.isfinite(sample).all(axis=0)
    if nodata is not None and np.isfinite(nodata):
        ok &= ~equal_in_every_band(sample, np.float32(nodata))
    return ok


def require_valid_pixels(sample: np.ndarray, role: str, nodata: Optional[float] = None,
                         bands: Optional[Sequence[int]] = None) -> None:
    """ClaireError when no pixel of `sample` [bands, h, w] (the overlap, read on the optical grid) is usable;
    `bands`: the file's band numbers of the sample's bands, to name the empty ones.

    A pixel is usable when all of its bands are valid, the same rule the engine uses for nodata, so a SAR
    whose VH band is all NaN is refused even when its VV band has values.
    """
    if valid_pixels(sample, nodata).any():
        return
    numbers = list(bands) if bands is not None else list(range(1, sample.shape[0] + 1))
    empty = [b for b, plane in zip(numbers, sample) if not valid_pixels(plane[None], nodata).any()]
    if empty and len(empty) < len(numbers):
        which = f"in band{'s' if len(empty) > 1 else ''} {', '.join(str(b) for b in empty)} of the file"
    else:
        which = "in every band" if empty else "in at least one band at every pixel"
    whole = not (empty and len(empty) < len(numbers))  # no pixel at all, not one broken band
    sar_only = ("; the map fills optical gaps from SAR alone, but needs optical data in part of the scene to check "
                "its values: give the optical scene of the same date, cloud and all" if role == "optical" and whole
                else "")
    raise ClaireError(f"the {role} raster has no valid values (all NaN or nodata {which}) where it overlaps the "
                      f"{'SAR' if role == 'optical' else 'optical'} raster; check the {role} file and its nodata "
                      f"value{sar_only}")
