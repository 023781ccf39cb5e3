"""Map raster bands to the bands a checkpoint expects.

Order of preference: explicit 1-based indices, then band names (descriptions, or for a VRT stacking one
file per band, the source files' names: core.io.raster_io.band_labels), then known Sentinel-2 / Sentinel-1
layouts by band count, then (same count as needed) the checkpoint's own order. A layout or order is never
assumed against the bands' own names: a VRT of band files stacked in the shell's alphabetical order
(B01 .. B09 B11 B12 B8A) is read by its names, reordered, or refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import ClaireError

S2_L1C = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
S2_L2A = [b for b in S2_L1C if b != "B10"]
S2_10 = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
S2_4 = ["B02", "B03", "B04", "B08"]

#: Known layouts by band count (only counts whose meaning is unambiguous).
OPTICAL_LAYOUTS: Dict[int, tuple] = {
    13: ("Sentinel-2 L1C (B01..B12 with B10)", S2_L1C),
    12: ("Sentinel-2 L2A (B01..B12 without B10)", S2_L2A),
    10: ("Sentinel-2 10/20 m bands (B02..B12 without B01, B09, B10)", S2_10),
    4: ("4-band blue, green, red, NIR (B02, B03, B04, B08)", S2_4),
}
SAR_LAYOUTS: Dict[int, tuple] = {
    2: ("Sentinel-1 dual polarisation (VV, VH)", ["VV", "VH"]),
    1: ("single polarisation (VV)", ["VV"]),
}

_ALIASES = {
    "COASTAL": "B01", "AEROSOL": "B01", "BLUE": "B02", "GREEN": "B03", "RED": "B04",
    "REDEDGE1": "B05", "RE1": "B05", "REDEDGE2": "B06", "RE2": "B06", "REDEDGE3": "B07", "RE3": "B07",
    "NIR": "B08", "NIR08": "B08", "NARROWNIR": "B8A", "NIRNARROW": "B8A", "RE4": "B8A", "NIR09": "B8A",
    "WATERVAPOUR": "B09", "WATERVAPOR": "B09", "CIRRUS": "B10", "SWIR1": "B11", "SWIR16": "B11",
    "SWIR2": "B12", "SWIR22": "B12",
}


#: Landsat Collection 2 band names (surface reflectance, surface temperature, top of atmosphere).
_LANDSAT = re.compile(r"^(SR|ST|TOA)[\s_]?B\d+$")
#: Words in a band's name that say it holds something other than a sensor band (so never the band read there).
_NOT_A_BAND = re.compile(r"ANGLE|INCIDENCE|\bLIA\b|RATIO|MASK|DEM\b|ELEVATION|HEIGHT|\bSCL\b|FMASK|\bQA|CLOUD|"
                         r"SHADOW|QUALITY|NDVI|NDWI|INDEX|DATE|TIME|COUNT|LAYOVER")


def not_a_band(name: Optional[str]) -> bool:
    """Whether a band's name says it holds no sensor band (an angle, a ratio, a mask, a quality band)."""
    return bool(name) and bool(_NOT_A_BAND.search(str(name).upper().replace("_", " ")))


def _sensor_hint(role: str, descriptions: Sequence[Optional[str]], missing: Sequence[str]) -> str:
    """A clause naming the likely cause when the names show another sensor or polarisation than the model's."""
    names = [str(d).strip().upper() for d in descriptions if d]
    if role == "optical" and any(_LANDSAT.match(n) for n in names):
        return ("; these are Landsat's bands (SR_B1 ...), and CLAIRE's models read Sentinel-2's, which Landsat "
                "lacks in part (the red edge B05-B07, B8A): give a Sentinel-2 image")
    if role == "optical" and names and {"B02", "B03", "B04", "B08"} <= set(missing) and not {"B05", "B11"} & set(
            missing):  # Sentinel-2's 20 m bands only (a product's 20m subdataset)
        return ("; these look like Sentinel-2's 20 m bands alone (a product's 20m subdataset); stack the bands the "
                "checkpoint reads at 10 m (gdalbuildvrt -separate -resolution highest with the 10 m band files; "
                "README, 'Any GDAL raster is an input')")
    if role == "optical" and names and {"B05", "B8A", "B12"} <= set(missing):  # Sentinel-2's 10 m bands only
        return ("; these look like Sentinel-2's 10 m bands alone (a product's 10m subdataset, or an RGB + NIR "
                "export); stack the bands the checkpoint reads at 10 m (gdalbuildvrt -separate -resolution highest "
                "with the 20 m band files; README, 'Any GDAL raster is an input')")
    if role == "optical" and names and {"B8A", "B12"} <= set(missing):  # named bands without Sentinel-2's
        return "; an HLS L30 or Landsat stack lacks Sentinel-2's B05-B07, B8A and B12: give a Sentinel-2 image"
    pols = {canonical_band(d) for d in descriptions} & {"HH", "HV", "VV", "VH"}
    if role == "SAR" and pols and pols <= {"HH", "HV"}:
        return ("; HH and HV are another polarisation (Sentinel-1 EW and polar IW, ALOS, RADARSAT), which "
                "backscatters otherwise than the VV and VH the model learned: give a Sentinel-1 VV + VH image")
    return ""


def canonical_band(name: Optional[str]) -> Optional[str]:
    """Canonical band name ('B02', 'B8A', 'VV', ...) from a description or card name, else None."""
    if not name:
        return None
    text = str(name).strip().upper()
    compact = re.sub(r"[\s_\-\.]", "", text)
    if _LANDSAT.match(text):
        return compact  # Landsat's SR_B5 is its near-infrared, not Sentinel-2's B05
    if compact in _ALIASES:
        return _ALIASES[compact]
    m = re.search(r"(?<![A-Z0-9])B0?(\d{1,2})(A?)(?![0-9A-Z])", text.replace("_", " ").replace("-", " "))
    if m is None:
        m = re.fullmatch(r"B0?(\d{1,2})(A?)", compact)
    if m:
        num, suffix = int(m.group(1)), m.group(2)
        return f"B{num}A" if suffix else f"B{num:02d}"
    pols = [pol for pol in ("VV", "VH", "HH", "HV") if re.search(rf"(?<![A-Z]){pol}(?![A-Z])", text.replace("_", " "))]
    if len(pols) == 1:
        return pols[0]
    return compact or None  # two polarisations named: a ratio or difference band (VV/VH, VV_minus_VH), neither


#: The starts of BandChoice.method for bands placed by position, not by a name or the user's list.
_BY_POSITION = ("known layout", "assumed")


def placed_by_position(method: str) -> bool:
    """Whether a band choice (its `method`) placed the bands by their position: no name said which is which."""
    return method.startswith(_BY_POSITION)


@dataclass
class BandChoice:
    """Which 1-based raster bands feed which checkpoint bands, and why."""

    indices: List[int]
    names: List[str]
    method: str
    #: the raster's band names in its own order, when it stacks them in another order than the checkpoint's
    stacked: List[str] = field(default_factory=list)
    #: where `stacked` comes from ("band descriptions", "the VRT's source file names")
    named_by: str = ""

    def reorder_note(self, role: str) -> Optional[str]:
        """One line for the user when the raster's bands are read in another order than stacked, else None."""
        if not self.stacked:
            return None
        what = "this VRT" if "VRT" in self.named_by else "this raster"
        order = "in alphabetical order" if self.stacked == sorted(self.stacked) else "in another order"
        return (f"the {role} bands of {what} are stacked {order} ({' '.join(self.stacked)}, by {self.named_by}); "
                f"they will be read in the checkpoint's order: {' '.join(self.names)}")

    def describe(self, role: str) -> str:
        """One line for the user, e.g. 'optical: bands 2,3,4 -> B02,B03,B04 (band descriptions)'."""
        pairs = ", ".join(f"{i}->{n}" for i, n in zip(self.indices, self.names))
        return f"{role}: bands {pairs} ({self.method})"

    def as_dict(self) -> dict:
        return {"indices": list(self.indices), "names": list(self.names), "method": self.method}


#: Band names that say which band a raster band is (anything else in a description says nothing).
KNOWN_BANDS = frozenset(S2_L1C) | {"VV", "VH", "HH", "HV"}


def _named_order(found: List[int], names: List[Optional[str]], named_by: str) -> str:
    """How the bands were matched, saying when the raster stacks them in another order."""
    method = f"matched by {named_by}"
    if found != sorted(found):
        stacked = [n for n in names if n]
        method += f"; reordered: the raster stacks them as {' '.join(stacked)}"
    return method


def _refuse_against_names(role: str, names: List[Optional[str]], layout: Sequence[str], label: str,
                          named_by: str, wanted: Sequence[str], flag: str, shown: Sequence[Optional[str]]) -> None:
    """ClaireError when reading the bands as `layout` would contradict what their own names (canonical: `names`;
    as written: `shown`) say."""
    clash = [(i, n, layout[i]) for i, n in enumerate(names[:len(layout)])
             if (n in KNOWN_BANDS or not_a_band(n)) and n != layout[i] and layout[i] in wanted_c(wanted)]
    if not clash:
        return
    shown = [n if n in KNOWN_BANDS else raw for n, raw in zip(names, shown)]  # B09 for T31TCJ_..._B09_10m.jp2
    i, _name, read_as = clash[0]
    name = shown[i]
    stacked = " ".join(str(n or "?") for n in shown)
    missing = [w for w in wanted if canonical_band(w) not in names]
    lacks = f"; {', '.join(missing)} is not among them" if missing else ""
    hint = _sensor_hint(role, names, [canonical_band(m) for m in missing])
    if hint:
        raise ClaireError(f"the {role} bands are named {stacked} ({named_by}), but the model needs "
                          f"{', '.join(wanted)}{hint}")
    raise ClaireError(f"the {role} bands are named {stacked} ({named_by}), but {label} would read band {i + 1} "
                      f"({name}) as {read_as}{lacks}; stack the bands in the order {' '.join(layout)} (e.g. "
                      f"gdalbuildvrt -separate with the files listed in that order), or pass {flag} with the "
                      f"1-based positions of {', '.join(wanted)}")


def wanted_c(wanted: Sequence[str]) -> List[Optional[str]]:
    """The canonical names of a checkpoint's bands."""
    return [canonical_band(w) for w in wanted]


def choose_bands(role: str, count: int, descriptions: Sequence[Optional[str]], wanted: Sequence[str],
                 explicit: Optional[Sequence[int]] = None, needed: Optional[int] = None,
                 flag: str = "--bands", named_by: str = "band descriptions") -> BandChoice:
    """Pick the raster bands (1-based) for `role` ('optical' or 'sar').

    `wanted` are the checkpoint's band names (may be empty); `needed` the channel count when names
    are missing; `descriptions` the bands' names and `named_by` where they come from. Raises ClaireError
    naming the problem and the option that fixes it.
    """
    wanted = [str(w) for w in (wanted or [])]
    n_need = len(wanted) if wanted else int(needed or 0)
    names_out = wanted if wanted else [f"channel {i + 1}" for i in range(n_need)]
    if explicit:
        idx = [int(i) for i in explicit]
        bad = [i for i in idx if i < 1 or i > count]
        if bad:
            raise ClaireError(f"{role} band index {bad[0]} is out of range: the {role} raster has {count} "
                              f"band(s), numbered 1..{count}; fix {flag}")
        if n_need and len(idx) != n_need:
            raise ClaireError(f"{flag} lists {len(idx)} band(s) but the checkpoint needs {n_need} {role} bands "
                              f"({', '.join(names_out)}); list exactly {n_need} 1-based indices in that order")
        return BandChoice(idx, names_out if n_need else [f"band {i}" for i in idx], f"explicit {flag}")
    want_c = wanted_c(wanted)
    if count < n_need:
        have = [canonical_band(d) for d in descriptions]
        raise ClaireError(f"the {role} raster has {count} band(s) but the checkpoint needs {n_need} "
                          f"({', '.join(names_out)}); give a raster with those bands (a band stack)"
                          f"{_sensor_hint(role, descriptions, [w for w in want_c if w not in have])}")
    if wanted:
        desc_c = [canonical_band(d) for d in descriptions]
        if any(desc_c):
            found = []
            for w in want_c:
                hits = [i + 1 for i, d in enumerate(desc_c) if d is not None and d == w]
                if len(hits) != 1:
                    break
                found.append(hits[0])
            else:
                stacked = [d for d in desc_c if d] if found != sorted(found) else []
                return BandChoice(found, wanted, _named_order(found, desc_c, named_by), stacked, named_by)
        layouts = OPTICAL_LAYOUTS if role == "optical" else SAR_LAYOUTS
        if count in layouts:
            label, layout = layouts[count]
            if all(w in layout for w in want_c):
                _refuse_against_names(role, desc_c, layout, f"the {label} layout", named_by, wanted, flag,
                                      descriptions)
                return BandChoice([layout.index(w) + 1 for w in want_c], wanted,
                                  f"known layout by band count: {label}")
        if count == n_need:
            _refuse_against_names(role, desc_c, want_c, "the checkpoint's order", named_by, wanted, flag,
                                  descriptions)
    if count == n_need:
        return BandChoice(list(range(1, count + 1)), names_out,
                          f"assumed to be in the checkpoint's order ({count} bands, no descriptions matched)")
    named = [d for d in descriptions if d]
    if named:
        have = {canonical_band(d) for d in named}
        missing = [w for w, c in zip(names_out, want_c or [None] * n_need) if c not in have]
        listed = " ".join(str(d or "?") if " " not in str(d or "") else f'"{d}"' for d in descriptions)
        canon = [canonical_band(d) for d in named]
        twice = sorted({c for c in canon if c and canon.count(c) > 1})
        said = (f"the bands are named {listed} ({named_by}), which do not include {', '.join(missing)}" if missing
                else f"the bands are named {listed} ({named_by}), where {', '.join(twice) or 'a band'} names more "
                     f"than one band (e.g. linear and dB)")
        hint = _sensor_hint(role, descriptions, [canonical_band(m) for m in missing])
        if hint:
            raise ClaireError(f"cannot tell which of the {count} {role} bands are {', '.join(names_out)}: {said}"
                              f"{hint}")
    else:
        said = "the bands carry no names"
    raise ClaireError(f"cannot tell which of the {count} {role} bands are {', '.join(names_out)}: {said}, and "
                      f"{count} bands is not a known layout; pass {flag} with the raster's band numbers of "
                      f"{', '.join(names_out)}, in that order (gdalinfo lists the bands)")


def choose_raster_bands(ds, role: str, wanted: Sequence[str], explicit: Optional[Sequence[int]] = None,
                        needed: Optional[int] = None, flag: str = "--bands") -> BandChoice:
    """`choose_bands` for an open raster, its bands named by `core.io.raster_io.band_labels` (descriptions, or
    a VRT's source file names): the one band resolution of the engine, the dock's fit check and training."""
    from ..io.raster_io import band_labels

    names, named_by = band_labels(ds)
    return choose_bands(role, ds.count, names, wanted, explicit, needed, flag, named_by)


#: Spectral tests of bands placed by position: (name, the share of pixels above which the bands are taken as
#: misplaced, what is wrong in words). On the 16 bundled scenes (L1C and L2A, TerraMesh, SEN12MS-CR, BigEarthNet-MM)
#: in their right order the shares are at most 0.2 % (b05), 0.03 % (red), 0.02 % (b12), 0 (b12dark) and 8.7 % (nir,
#: a snow scene); in the usual wrong stackings (the 10 m bands first, alphabetical, Level-2A plus a scene
#: classification band read as Level-1C, HLS L30 read as Sentinel-2) 5-100 % where the scene has such pixels.
_ORDER_TESTS = (
    ("b05", 0.5, "the band read as B05 (red edge, 705 nm) is brighter than the one read as B06 on {share:.0%} of "
                 "the pixels they call vegetation, as only a near-infrared band is"),
    ("red", 0.1, "the band read as B04 (red) is more than twice the one read as B03 (green) on {share:.0%} of the "
                 "pixels, as near-infrared over vegetation is and red almost never"),
    ("b12", 0.5, "the band read as B12 (2190 nm) is brighter than the one read as B11 (1610 nm) on {share:.0%} of "
                 "the pixels they call vegetation, where water absorption makes it darker"),
    ("b12dark", 0.5, "the band read as B12 (2190 nm) is under a fifth of the one read as B11 (1610 nm) on "
                     "{share:.0%} of the pixels where that one is bright, as no surface is"),
    ("nir", 0.5, "the band read as B8A (865 nm) differs by a third or more from the one read as B08 (842 nm) on "
                 "{share:.0%} of the pixels, where these two near-infrared bands nearly agree"),
)
_TEN_METRE = ["B02", "B03", "B04", "B08"]


def _order_shares(reflectance: np.ndarray, names: List[Optional[str]]) -> Dict[str, float]:
    """Each spectral test's share of failing pixels on bands read as `names`; a test is left out when its bands
    are not there or fewer than 200 pixels qualify (vegetation: B08 > 2 x B04)."""
    band = {n: reflectance[i] for i, n in enumerate(names) if n}
    out: Dict[str, float] = {}
    with np.errstate(invalid="ignore"):
        if {"B03", "B04"} <= set(band):
            b3, b4 = band["B03"], band["B04"]
            seen = np.isfinite(b3 + b4) & (b3 > 0)
            if int(seen.sum()) >= 200:
                out["red"] = float(np.mean((b4[seen] > 2 * b3[seen]) & (b4[seen] > 0.05)))
        if {"B11", "B12"} <= set(band):
            b11, b12 = band["B11"], band["B12"]
            seen = np.isfinite(b11 + b12) & (b11 > 0.05)
            if int(seen.sum()) >= 200:
                out["b12dark"] = float(np.mean(b12[seen] < 0.2 * b11[seen]))
        if {"B08", "B8A"} <= set(band):
            b8, b8a = band["B08"], band["B8A"]
            seen = np.isfinite(b8 + b8a) & (b8 > 0.05)
            if int(seen.sum()) >= 200:
                ratio = b8a[seen] / b8[seen]
                out["nir"] = float(np.mean((ratio < 0.7) | (ratio > 1.4)))
        if not {"B04", "B08"} <= set(band):
            return out
        veg = np.isfinite(band["B04"] + band["B08"]) & (band["B04"] > 0) & (band["B08"] > 2 * band["B04"])
        for key, low, high, margin in (("b05", "B06", "B05", 1.1), ("b12", "B11", "B12", 1.1)):
            if {low, high} <= set(band):
                sel = veg & np.isfinite(band[low] + band[high])
                if int(sel.sum()) >= 200:
                    out[key] = float(np.mean(band[high][sel] > margin * band[low][sel]))
    return out


#: Below this share of vegetation pixels (B08 > 2 x B04) the tests that catch a stacking order (b05, b12) are not
#: trusted: on the bundled snow site (1.5 % so read when stacked with the 10 m bands first, 0.01 % in the right order;
#: 15-42 % on the other bundled sites) they passed a wrong order on pixels that are no vegetation.
VEGETATION_MIN = 0.02


def _vegetation_share(reflectance: np.ndarray, names: List[Optional[str]]) -> float:
    """The share of pixels the order tests call vegetation (B08 > 2 x B04) among those with both bands; 0 without
    them."""
    if not {"B04", "B08"} <= set(names):
        return 0.0
    b4, b8 = reflectance[names.index("B04")], reflectance[names.index("B08")]
    seen = np.isfinite(b4 + b8)
    return float(np.mean((b4[seen] > 0) & (b8[seen] > 2 * b4[seen]))) if seen.any() else 0.0


def _order_faults(shares: Dict[str, float]) -> Dict[str, str]:
    """The spectral tests failed by bands whose `_order_shares` these are: {test: what is wrong, in words}."""
    return {key: says.format(share=shares[key]) for key, limit, says in _ORDER_TESTS
            if key in shares and shares[key] > limit}


def _stacking_orders(layout: List[str]) -> List[tuple]:
    """The stacking mistakes users make with a known layout: (what it is, its band order, the tests that reveal
    it when read in the layout's order)."""
    ten_first = _TEN_METRE + [b for b in layout if b not in _TEN_METRE]
    orders = [("the 10 m bands B02 B03 B04 B08 first, then the others", ten_first, {"b05", "red"}),
              ("alphabetical order, B8A last", sorted(layout), {"b12"})]
    if layout == S2_L1C:  # 13 bands: Level-2A's twelve and its scene classification or cloud probability
        orders.append(("Level-2A's 12 bands (no B10) and one more band last (a scene classification, cloud "
                       "probability or quality band)", S2_L2A + ["another band"], {"b12dark"}))
    return orders


def check_spectral_order(choice: BandChoice, count: int, reflectance: np.ndarray) -> Optional[str]:
    """ClaireError when optical bands placed by position (no names: `choice.method`) fail the spectral tests
    (`_ORDER_TESTS`), as a stack in another order does when read in band-number order: the 10 m bands first
    (Earth Engine's `select`, `gdalbuildvrt -separate -resolution highest` saved as GeoTIFF) or band files in
    alphabetical order (B8A last). `reflectance` is the sample of the chosen bands in reflectance; `count` the
    raster's band count. The message names the `--optical-bands` of the stacking order that passes the tests, or
    of each such order when the chosen bands cannot tell. Named or explicit bands are trusted. Returns a warning
    when the scene has too little vegetation for the tests that reveal those stackings (snow, desert, water,
    winter): the order is then unchecked."""
    if not placed_by_position(choice.method):
        return None
    names = [canonical_band(n) for n in choice.names]
    refl = np.asarray(reflectance, np.float64).reshape(len(names), -1)
    shares = _order_shares(refl, names)
    faults = _order_faults(shares)
    if not faults:
        untested = {"B05", "B06", "B11", "B12"} & set(names) and (not {"b05", "b12"} & set(shares)
                                                                  or _vegetation_share(refl, names) < VEGETATION_MIN)
        return (f"warning: the optical bands carry no names and were read by position ({choice.method}); this scene "
                f"has too little vegetation for the spectral tests that catch bands stacked in another order (the "
                f"10 m bands first, alphabetical), so their order is unchecked: name the bands or check "
                f"--optical-bands" if untested else None)
    from .units import check_constant_bands

    check_constant_bands(refl, "optical", choice.names)  # an empty band is no stacking order's fault
    fixes, maybe = [], []
    layout = OPTICAL_LAYOUTS.get(count)
    for what, order, reveal in _stacking_orders(layout[1]) if layout else []:
        if not set(names) <= set(order):
            continue
        real = [order[i - 1] for i in choice.indices]
        flag = "--optical-bands " + ",".join(str(order.index(n) + 1) for n in names)
        if set(names) <= set(real):  # the same pixels as that order would read them: the fix when they then pass
            again = _order_shares(refl[[real.index(n) for n in names]], names)
            if not _order_faults(again) and len(again) >= len(shares):
                fixes.append(f"{flag} ({what})")
        elif reveal & set(faults):
            maybe.append(f"{flag} if it was stacked in {what}")
    if fixes:
        fix = fixes[0]
    elif maybe:
        fix = "; ".join(maybe)
    else:
        fix = "--optical-bands with the raster's band numbers in the order " + ",".join(str(n) for n in names)
    raise ClaireError(f"the optical bands carry no names and were read by position ({choice.method}), but "
                      f"{'; '.join(faults.values())}: the bands are most likely stacked in another order, or are not "
                      f"Sentinel-2's (Landsat and HLS L30 lack its red-edge bands); give {fix}, or name the bands")
