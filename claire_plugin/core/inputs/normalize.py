"""Turn raw raster values into model inputs from the checkpoint card's input spec.

`x = clip(raw * scale + offset, clip); x = (x - mean) / std`, with SAR in linear power or amplitude
converted to dB first when the card asks for dB.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ClaireError
from ..io.raster_io import numpy_dtype
from .radiometry import Radiometry, offset_suspicion
from .units import (  # noqa: F401
    check_band_units_agree,
    check_db_plausible,
    check_polarisation_order,
    check_reflectance,
    detect_sar_scale,
    linear_unit_warning,
    noise_floor_warning,
    sar_kind,
)


@dataclass
class InputSpec:
    """The card's description of one input (optical or SAR)."""

    bands: List[str]
    units: str = ""
    scale: float = 1.0
    offset: float = 0.0
    clip: Optional[Tuple[float, float]] = None
    mean: Optional[List[float]] = None
    std: Optional[List[float]] = None

    @classmethod
    def from_card(cls, card: dict, role: str, channels: Optional[int] = None) -> "InputSpec":
        """Read `card["inputs"][role]`; missing keys give an identity transform."""
        spec = dict((card.get("inputs") or {}).get(role) or {})
        bands = [str(b) for b in spec.get("bands") or []]
        clip = spec.get("clip")
        mean = spec.get("mean")
        std = spec.get("std")
        n = len(bands) or channels or 0
        for key, val in (("mean", mean), ("std", std)):
            if val is not None and n and len(val) not in (1, n):
                raise ClaireError(f"the checkpoint card's {role} {key} has {len(val)} values for {n} bands; "
                                  f"the checkpoint is inconsistent: re-export it with matching mean/std")
        if std is not None and any(float(s) == 0 for s in std):
            raise ClaireError(f"the checkpoint card's {role} std contains 0; re-export the checkpoint")
        return cls(bands=bands, units=str(spec.get("units") or ""), scale=float(spec.get("scale", 1.0)),
                   offset=float(spec.get("offset", 0.0)),
                   clip=(float(clip[0]), float(clip[1])) if clip else None,
                   mean=[float(m) for m in mean] if mean is not None else None,
                   std=[float(s) for s in std] if std is not None else None)

    @property
    def wants_db(self) -> bool:
        return self.units.strip().lower() in ("db", "decibel", "decibels")



def digital_numbers(units: str) -> bool:
    """Units of a dataset's digital numbers (WHU-OPT-SAR's, PIE-RGB-SAR's 8-bit SAR): no physical unit, so a SAR of
    0 is a value (the darkest return), not a fill; only the file's nodata value and mask mark holes."""
    return str(units or "").strip().lower() == "dn"


def sar_fill_units(spec: InputSpec, to_db: Optional[str]) -> Optional[bool]:
    """What GridWarp.set_sar_units takes for a SAR read with `spec` and converted by `to_db`: True linear, False dB,
    None (no fill rule) for digital numbers."""
    return None if digital_numbers(spec.units) else bool(to_db)


def linear_to_db(x: np.ndarray, kind: str = "power") -> np.ndarray:
    """Linear SAR `x` -> dB in place (10 log10 of power, 20 log10 of amplitude): NaN stays NaN, a value at or below 0
    (backscatter below the noise, not a fill) is the lowest, from 1e-10, before the card's clip."""
    np.maximum(x, 1e-10, out=x, where=np.isfinite(x))
    np.log10(x, out=x)
    x *= 10.0 if kind == "power" else 20.0
    return x

@dataclass
class Preparer:
    """Fixed per-run transform: raw float32 [C,H,W] -> normalised float32 [C,H,W] (in place)."""

    scale: float
    offset: float
    clip: Optional[Tuple[float, float]]
    mean: Optional[np.ndarray]
    std: Optional[np.ndarray]
    to_db: Optional[str] = None  # None, "power" (10 log10) or "amplitude" (20 log10)
    notes: List[str] = field(default_factory=list)
    #: the optical values look like Sentinel-2 with an undeclared +1000 DN offset (radiometry.offset_suspicion)
    offset_suspected: bool = False

    def physical(self, raw: np.ndarray) -> np.ndarray:
        """raw -> physical units of the card (dB conversion, scale, offset, clip); modifies `raw`."""
        x = raw
        if self.to_db:
            linear_to_db(x, self.to_db)
        if self.scale != 1.0:
            x *= self.scale
        if self.offset != 0.0:
            x += self.offset
        if self.clip is not None:  # minimum/maximum: the same as np.clip (NaN stays NaN), 4x faster
            np.minimum(x, np.float32(self.clip[1]), out=x)
            np.maximum(x, np.float32(self.clip[0]), out=x)
        return x

    def standardise(self, x: np.ndarray) -> np.ndarray:
        """Physical values -> (x - mean) / std per band; modifies `x`."""
        if self.mean is not None:
            x -= self.mean.reshape(-1, 1, 1)
        if self.std is not None:
            x /= self.std.reshape(-1, 1, 1)
        return x

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """raw float32 -> normalised, in place (see `into`)."""
        return self.into(raw, raw)

    def into(self, raw: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Normalise `raw` [C,H,W] (float32, or the raster's integer type) into float32 `out` of the same
        shape (may be `raw` itself). Without dB conversion this is one clip (in raw units, which also
        converts the type) and one per-band multiply-add: the same values as physical() then
        standardise() in fewer passes."""
        if self.to_db or self.scale <= 0:
            if out is not raw:
                out[...] = raw
            return self.standardise(self.physical(out))
        n = raw.shape[0]
        a = np.full(n, self.scale, np.float32)
        b = np.full(n, self.offset, np.float32)
        if self.mean is not None:
            b -= self.mean
        if self.std is not None:
            a /= self.std
            b /= self.std
        if self.clip is not None:
            lo = np.float32((self.clip[0] - self.offset) / self.scale)
            hi = np.float32((self.clip[1] - self.offset) / self.scale)
            np.minimum(raw, hi, out=out)
            if not (raw.dtype.kind in "ui" and lo <= np.iinfo(raw.dtype).min):  # e.g. 0 for uint16
                np.maximum(out, lo, out=out)
        elif out is not raw:
            out[...] = raw
        out *= a.reshape(-1, 1, 1)
        out += b.reshape(-1, 1, 1)
        return out


#: Float optical whose 99th percentile is at most this is reflectance already; above it, reflectance x 10000
#: stored as floats (the engine here, training in core.training.data_checks.float_optical_scale).
FLOAT_REFLECTANCE_P99 = 3.0


def _arr(v: Optional[List[float]], n: int) -> Optional[np.ndarray]:
    if v is None:
        return None
    a = np.asarray(v, dtype=np.float32)
    return np.repeat(a, n) if a.size == 1 and n > 1 else a


def optical_preparer(spec: InputSpec, n: int, dtype: str, sample: np.ndarray,
                     radiometry: Optional[Radiometry] = None, nodata: Optional[float] = None) -> Preparer:
    """Preparer for the optical input: the card's scaling, the file's or the user's radiometry
    (core.inputs.radiometry) where there is one; float rasters already in reflectance keep scale 1. Values that
    cannot be reflectance so read are refused (core.inputs.units.check_reflectance)."""
    if numpy_dtype(dtype).kind == "c":
        raise ClaireError(f"the optical raster holds complex values ({dtype}), not reflectance; give the optical "
                          f"product's reflectance bands (e.g. Sentinel-2 Level-1C or Level-2A), or check that the "
                          f"optical and SAR rasters were not given the other way round")
    r = radiometry or Radiometry()
    scale, offset, notes, suspected = spec.scale, spec.offset, [], False
    vals = sample[np.isfinite(sample)]
    how = f"the checkpoint's scale {spec.scale:g}"
    if r.scale is not None:
        scale, offset = r.scale, r.offset or 0.0
        how = "the file's GDAL scale/offset"
    elif (numpy_dtype(dtype).kind == "f" and scale < 1.0 and "reflect" in spec.units.lower()
            and vals.size and float(np.percentile(vals, 99)) <= FLOAT_REFLECTANCE_P99):
        notes.append(f"optical values are floats already in reflectance (99th percentile "
                     f"{float(np.percentile(vals, 99)):.3g}); not applying the card's scale {spec.scale:g}")
        scale, offset, how = 1.0, 0.0, "floats already in reflectance"
        if r.add and not r.given:  # e.g. `gdal_translate -unscale` keeps the product's ADD_OFFSET tags
            r = Radiometry(note=f"the file's offset metadata ({r.add:g} DN) is not applied: the values are already "
                                f"reflectance")
    if r.scale is None and not r.add and not r.given:  # nothing declared the radiometry: look at the values
        suspicion = offset_suspicion(sample, scale, spec.units)
        if suspicion:
            notes.append(suspicion)
            suspected = True
    if r.note:
        notes.append(r.note)
    offset += r.add * scale
    if r.add:
        how += f", after the offset {r.add:g}"
    if "reflect" in spec.units.lower():
        notes += check_reflectance(sample, dtype, scale, offset, how, nodata)
    notes.append(f"optical scaling: x * {scale:g} + {offset:g}"
                 + (f", clipped to {list(spec.clip)}" if spec.clip else ""))
    return Preparer(scale, offset, spec.clip, _arr(spec.mean, n), _arr(spec.std, n), None, notes, suspected)


def sar_preparer(spec: InputSpec, n: int, sample: np.ndarray, metadata_text: str = "", units: Optional[str] = "auto",
                 dtype: str = "float32", band_method: str = "", band_texts: Sequence[str] = ()) -> Preparer:
    """Preparer for the SAR input, converting linear power/amplitude to dB when the card wants dB. `units`
    is the user's declaration (`--sar-units`), `dtype` the raster's own type; the raster's unit is read from
    them, its metadata or its values (core.inputs.units.sar_kind), and refused when unclear or implausible;
    bands placed by position (`band_method`, the band choice's) are refused when their polarisations look swapped,
    and bands whose own metadata (`band_texts`) give different units refused."""
    notes: List[str] = []
    to_db = None
    check_band_units_agree(band_texts, spec.bands)
    if spec.wants_db:
        kind, reason = sar_kind(sample, metadata_text, dtype, units)
        check_db_plausible(sample, kind, reason, spec.bands)
        check_polarisation_order(sample, kind, spec.bands, band_method)
        if kind != "db":
            to_db = kind
            notes.append(f"SAR is linear {kind} ({reason}); converting to dB as the checkpoint expects")
        else:
            notes.append(f"SAR is already in dB ({reason})")
        for said in (noise_floor_warning(sample, kind, spec.bands), linear_unit_warning(sample, kind, spec.bands)):
            if said:
                notes.append(said)
    elif numpy_dtype(dtype).kind == "c":
        sar_kind(sample, metadata_text, dtype, units)  # refuses complex values
    return Preparer(spec.scale, spec.offset, spec.clip, _arr(spec.mean, n), _arr(spec.std, n), to_db, notes)
