"""The radiometric offset of an optical raster: given by the user, declared by the file, or suspected.

Sentinel-2 products of processing baseline 04.00 and later (everything processed from 25 January 2022,
and the reprocessed Collection-1) store `DN = 10000 * reflectance + 1000`: ESA's `BOA_ADD_OFFSET` (L2A)
or `RADIO_ADD_OFFSET` (L1C) is -1000 and is *added* to the DN before dividing by 10000. Read as if it
were the older convention, every band is 0.1 too bright. In order of precedence:

1. the user's `--optical-offset` (`OPTICAL_OFFSET` in QGIS): added to the raw values;
2. GDAL band scale/offset on the used bands (QGIS applies them too): `physical = DN * scale + offset`
   replaces the card's scaling; an offset with scale 1 is in raw units and is added before it;
3. `BOA_ADD_OFFSET*` / `RADIO_ADD_OFFSET*` tags of the used bands, else of the dataset;
4. a `PROCESSING_BASELINE` tag of 04.00 or later: ESA's -1000;
5. nothing declared: no offset, but a note when every sampled value of every band is >= 1000, which is
   what offset data looks like (older data only under thick cloud, snow or haze: water, shadows and the
   visible bands of vegetation are darker). The note suggests the flag; it changes nothing by itself.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ....models.quoting import quoted
from ..errors import ClaireError

#: ESA's offset for processing baseline 04.00 and later, in DN, added before dividing by 10000.
S2_ADD_OFFSET = -1000.0
_ADD_OFFSET_KEY = re.compile(r"^(BOA|RADIO)_ADD_OFFSET(_\w+)?$", re.IGNORECASE)


@dataclass
class Radiometry:
    """How raw optical values become physical ones before the card's clip and standardisation.

    `scale`/`offset` set: the file's own `DN * scale + offset` replaces the card's scaling.
    Otherwise `add` is added to the raw values before the card's scale (ESA's convention)."""

    add: float = 0.0
    scale: Optional[float] = None
    offset: Optional[float] = None
    note: str = ""
    given: bool = False  # the user's value, applied as it is


def optical_radiometry(ds, indices: Sequence[int], given: Optional[float] = None) -> Radiometry:
    """The radiometry of bands `indices` (1-based) of the rasterio dataset `ds`; `given` (the user's
    offset, raw units) wins. ClaireError when the file's declarations cannot be applied as one value."""
    if given is not None:
        if not np.isfinite(given):
            raise ClaireError(f"--optical-offset {given} is not a number; give the value added to the optical "
                              f"values before scaling, e.g. --optical-offset -1000")
        return Radiometry(add=float(given), given=True,
                          note=f"optical offset {given:g} added before scaling (--optical-offset)")
    names = [_band_name(ds, i) for i in indices]
    scales = [float(ds.scales[i - 1]) for i in indices]
    offsets = [float(ds.offsets[i - 1]) for i in indices]
    if any(s != 1.0 for s in scales) or any(o != 0.0 for o in offsets):
        if not np.isfinite(scales + offsets).all():
            raise ClaireError("the optical raster declares band scales or offsets that are not numbers (nan or "
                              "infinite); fix the file's scale metadata or pass --optical-offset 0 to ignore it")
        scale = _one_value("scale", dict(zip(names, scales)))
        offset = _one_value("offset", dict(zip(names, offsets)))
        if scale == 0.0:
            raise ClaireError("the optical raster declares a band scale of 0; fix the file's scale metadata or "
                              "pass --optical-offset 0 to ignore it")
        if scale == 1.0:  # an offset in the raw units (e.g. -1000 DN): added before the card's scale
            return Radiometry(add=offset, note=f"optical offset {offset:g} added before scaling (GDAL band offset "
                                               f"of the file)")
        note = (f"optical scaling declared by the file (GDAL band scale/offset): x * {scale:g} + {offset:g}, instead "
                f"of the checkpoint's")
        if offset != 0.0:  # a GDAL offset of its own applies whatever the tags say
            return Radiometry(scale=scale, offset=offset, note=note)
        try:  # beside an offset of 0 the tags only warn (the file's scale wins): read, never refused here
            add = _declared_add_offset(ds, names, indices)[0]
        except ClaireError as exc:
            return Radiometry(scale=scale, offset=offset,
                              note=f"warning: {note}; the file's ADD_OFFSET metadata is not applied ({exc})")
        if add:  # two declarations that disagree: the file's scale wins, and the user is told
            note = (f"warning: {note}; the file also declares an ADD_OFFSET of {add:g}, which that offset of 0 does "
                    f"not apply: if the values carry ESA's offset, run again with --optical-offset {add:g} (it reads "
                    f"the values with the checkpoint's scale instead of the file's x {scale:g}), or set the file's "
                    f"band offset to {add * scale:g} (gdal_edit.py -offset)")
        return Radiometry(scale=scale, offset=offset, note=note)
    add, where = _declared_add_offset(ds, names, indices)
    if where:
        return Radiometry(add=add, note=f"optical offset {add:g} added before scaling (ADD_OFFSET {where} metadata "
                                        f"of the file)")
    baseline = _baseline(ds.tags())
    if baseline is not None and baseline >= 4.0:
        return Radiometry(add=S2_ADD_OFFSET,
                          note=f"optical offset {S2_ADD_OFFSET:g} added before scaling (Sentinel-2 processing "
                               f"baseline {baseline:05.2f} declared by the file; pass --optical-offset 0 if the "
                               f"values were already corrected)")
    return Radiometry()


#: Offset Sentinel-2 data (reflectance x 10000 + 1000) puts the darkest surfaces (water, shadow; near 0) near
#: 1000 DN, a little below it where the reflectance is negative (-0.004 in a coast's SWIR: 961 DN), where data
#: without the offset has them near 0. Suspected when 99.9 % of every band's sampled values are at or above this
#: reflectance read without the offset (900 DN). On the bundled scenes the lowest band's 0.1st percentile is
#: 1012-1187 DN in the four files that carry the offset, and 5-330 DN in Level-2A and 145-818 in Level-1C without it
#: (top-of-atmosphere dry land, 38D: its 1st percentile, 965, would not tell).
OFFSET_FLOOR = 0.09
OFFSET_PERCENTILE = 0.1


def offset_suspicion(sample: np.ndarray, scale: float, units: str) -> Optional[str]:
    """A note when undeclared optical values (raw `sample`, read as `scale` x value) look like offset Sentinel-2
    data: the OFFSET_PERCENTILE of every band at or above OFFSET_FLOOR in reflectance, for a checkpoint that reads
    reflectance (integer DN, floats in reflectance or x 10000 alike). None otherwise."""
    if "reflect" not in units.lower() or sample.size == 0 or not 0 < scale <= 1:
        return None
    per_band = [b[np.isfinite(b) & (b > 0)] for b in sample.reshape(sample.shape[0], -1).astype(np.float64)]
    if any(b.size < 100 for b in per_band):
        return None
    low = min(float(np.percentile(b, OFFSET_PERCENTILE)) for b in per_band)
    if low * scale < OFFSET_FLOOR:
        return None
    as_dn = low * scale * 1e4
    offset = "--optical-offset -1000" if np.isclose(scale, 1e-4) else f"--optical-offset {-0.1 / scale:g}"
    return (f"99.9 % of the sampled optical values are {low:.4g} or more, in every band (reflectance {as_dn / 1e4:.3f}"
            f"): even the darkest pixels (water, shadow: near 0) read bright. Either Sentinel-2 of processing baseline "
            f"04.00 or later (from 25 January 2022, stored as reflectance x 10000 + 1000) that lost its metadata - if "
            f"so, run again with {offset} - or a scene without any dark pixel (thick cloud, snow, haze, bright "
            f"desert)")


def _tagged_add_offset(ds, names: Sequence[str], indices: Sequence[int]) -> Tuple[Dict[str, float], str]:
    """({where and key: value} of the bands' BOA/RADIO_ADD_OFFSET tags, else of the dataset's, "band" or "dataset");
    a band without tags of its own takes the dataset's; ClaireError when some bands carry one and the others none
    (which value they take would be a guess)."""
    per_band = [_add_offset_tags(ds.tags(i)) for i in indices]
    # the dataset's tags are read only where a band has none of its own (bands that all carry theirs win)
    dataset = _add_offset_tags(ds.tags()) if not all(per_band) else {}
    if any(per_band) and dataset:
        per_band = [tags or {f"dataset {k}": v for k, v in dataset.items()} for tags in per_band]
    if any(per_band) and not all(per_band):
        bare = [n for n, tags in zip(names, per_band) if not tags]
        raise ClaireError(f"the optical raster declares an ADD_OFFSET on some bands but not on {', '.join(bare)}; "
                          f"the engine applies one value to all bands: pass --optical-offset VALUE (e.g. -1000, or "
                          f"0 when the values were already corrected)")
    tagged = {f"{n} {k}": v for n, tags in zip(names, per_band) for k, v in tags.items()}
    if tagged:
        return tagged, ("band and dataset" if dataset else "band")
    return dataset, "dataset"


def _declared_add_offset(ds, names: Sequence[str], indices: Sequence[int]) -> Tuple[float, str]:
    """(the one ADD_OFFSET the file's tags declare, where: "band" or "dataset"; (0.0, "") without one);
    ClaireError for values that differ or a positive one (ESA's offset is negative)."""
    tagged, where = _tagged_add_offset(ds, names, indices)
    if not tagged:
        return 0.0, ""
    add = _one_value("ADD_OFFSET", tagged)
    if add > 0:
        raise ClaireError(f"the optical raster declares an ADD_OFFSET of +{add:g}, but ESA's offset is added to "
                          f"the values and is negative (-1000 from processing baseline 04.00); pass "
                          f"--optical-offset -{add:g} or --optical-offset 0 to say which applies")
    return add, where


def _band_name(ds, i: int) -> str:
    desc = (ds.descriptions[i - 1] if ds.descriptions else None) or ""
    return desc or f"band {i}"


def _one_value(what: str, values: Dict[str, float]) -> float:
    distinct = sorted(set(values.values()))
    if len(distinct) > 1:
        listed = ", ".join(f"{k} {v:g}" for k, v in values.items())
        raise ClaireError(f"the optical bands declare different {what} values ({listed}); the engine applies one "
                          f"value to all bands: pass --optical-offset VALUE to choose the offset yourself")
    return distinct[0]


def _add_offset_tags(tags: Dict[str, str]) -> Dict[str, float]:
    """{key: value} of the BOA/RADIO_ADD_OFFSET items among `tags`."""
    found = {}
    for key, val in tags.items():
        if _ADD_OFFSET_KEY.match(key):
            try:
                found[key] = float(val)
            except (TypeError, ValueError):
                found[key] = float("nan")
            if not np.isfinite(found[key]):
                raise ClaireError(f"the optical raster's {key} metadata is {quoted(val)}, not a number; fix it or pass "
                                  f"--optical-offset VALUE") from None
    return found


#: A processing baseline as written: "04.00", "4.0", "V04.00", "PB04.00", or as in product names "N0400" (04.00).
_BASELINE_DOTTED = re.compile(r"^(?:N|V|PB)?\s*(\d{1,2})(?:\.(\d{1,2}))?$")
_BASELINE_PACKED = re.compile(r"^(?:N|PB)?(\d{2})(\d{2})$")


def _baseline(tags: Dict[str, str]) -> Optional[float]:
    """The Sentinel-2 processing baseline the file declares (04.00 -> 4.0, N0213 -> 2.13), None without one; a value
    that is none of the forms ESA writes is a ClaireError (the offset it decides would be a guess)."""
    for key, val in tags.items():
        if key.upper() in ("PROCESSING_BASELINE", "S2:PROCESSING_BASELINE"):
            text = str(val).strip().upper()
            if not text:
                continue  # an empty tag declares nothing
            packed, dotted = _BASELINE_PACKED.match(text), _BASELINE_DOTTED.match(text)
            if packed:
                return int(packed.group(1)) + int(packed.group(2)) / 100.0
            if dotted:
                return float(f"{dotted.group(1)}.{dotted.group(2) or 0}")
            raise ClaireError(f"the optical raster's {key} metadata is {quoted(val)}, not a processing baseline like "
                              f"04.00 or N0400; fix it, or pass --optical-offset -1000 (baseline 04.00 or later, "
                              f"from 25 January 2022) or --optical-offset 0 (earlier)")
    return None
