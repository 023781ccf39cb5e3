"""What the values of an input raster mean: SAR units (dB, linear power, amplitude) and optical reflectance.

A raster is read the way its metadata, the user's declaration (`--sar-units`) or its values say; what cannot
be told apart safely is refused with the unit to declare, and whatever the reading, values no backscatter or
reflectance can have are refused instead of being clipped into something that looks like a land-cover map.

SAR, in order: complex values are refused (an SLC needs calibration and detection first); the user's
`--sar-units`; the metadata (band descriptions, units, tags: 'dB', 'amplitude', 'sigma0'...); the values:
unsigned integers are digital numbers (a Sentinel-1 GRD measurement file is uncalibrated amplitude), values
that are mostly negative are dB, non-negative values below about 1 are linear, but power and amplitude cannot
be told apart by their values, so that needs a declaration. The values, read in dB, must then look like
backscatter (median between -50 and +10 dB, almost none beyond -100..+60 dB).
"""
from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ....models.quoting import quoted
from ..errors import ClaireError
from ..io.raster_io import numpy_dtype
from .bands import placed_by_position

#: Values accepted for `ClassifyParams.sar_units` (`--sar-units`), and the kind each one means.
SAR_UNITS = {"auto": "auto", "dB": "db", "linear-power": "power", "amplitude": "amplitude"}
_ALIASES = {"db": "db", "decibel": "db", "decibels": "db", "linear-power": "power", "power": "power",
            "linear": "power", "intensity": "power", "sigma0": "power", "amplitude": "amplitude",
            "linear-amplitude": "amplitude", "auto": "auto", "": "auto"}
_UNIT_OF = {"db": "dB", "power": "linear-power", "amplitude": "amplitude"}
_DECLARE = "--sar-units dB, --sar-units linear-power or --sar-units amplitude"
#: Median backscatter of a scene, in dB, that any real SAR scene has (noise floor to dense cities).
DB_MEDIAN_RANGE = (-50.0, 10.0)
#: dB values outside this range are no backscatter (nodata markers, scaled integers).
DB_RANGE = (-100.0, 60.0)


def parse_sar_units(value: Optional[str]) -> str:
    """'auto', 'db', 'power' or 'amplitude' from a `--sar-units` value; ClaireError for anything else."""
    key = str(value or "auto").strip().lower()
    if key not in _ALIASES:
        raise ClaireError(f"unknown SAR units {quoted(value)}; use one of {', '.join(SAR_UNITS)} (--sar-units)")
    return _ALIASES[key]


def detect_sar_scale(sample: np.ndarray, metadata_text: str = "") -> Tuple[str, str]:
    """Classify SAR values as 'db', 'power', 'amplitude' or 'linear' (power or amplitude: the values cannot
    tell) or 'unknown'; returns (kind, reason). Metadata (descriptions, units, tags) wins."""
    text = metadata_text.lower()
    if re.search(r"(?<![a-z])(db|decibels?)(?![a-z])", text):
        return "db", "metadata says dB"
    if "amplitude" in text:
        return "amplitude", "metadata says amplitude"
    if re.search(r"power|intensity|sigma0(?!.?db)|gamma0(?!.?db)|beta0(?!.?db)", text):
        return "power", "metadata says linear power"
    if "linear" in text:  # linear, but of power or of amplitude? power is what backscatter products hold
        return "power", ("metadata says linear, taken as power (sigma0 / gamma0); for an amplitude give --sar-units "
                         "amplitude")
    vals = sample[np.isfinite(sample)]
    if vals.size == 0:
        return "db", "no finite values to inspect"
    nonneg = float(np.mean(vals >= 0))
    p95 = float(np.percentile(vals, 95))
    share = "100%" if nonneg == 1.0 else f"{min(nonneg, 0.9999):.2%}"  # 99.98 % is not "100%"
    stats = f"{share} non-negative, 95th percentile {p95:.3g}"
    if nonneg >= 0.99 and p95 <= 2.0:
        return "linear", f"values look linear ({stats})"
    if nonneg >= 0.99:
        return "unknown", f"values are all positive and reach far above 1 ({stats})"
    if noise_subtracted_linear(vals):
        return "linear", (f"values look linear, with {1 - nonneg:.1%} small negative values as thermal-noise "
                          f"subtraction leaves them ({stats})")
    return "db", f"values look like dB ({stats})"


#: Linear backscatter after thermal-noise subtraction (ESA's, Earth Engine's, openEO's ARD) keeps small negative
#: values where the signal is below the noise (a few % of a scene, mostly VH over water): their 1st percentile
#: stays above this, where a scene in dB is mostly negative and reaches -10 to -30.
NOISE_NEGATIVE_FLOOR = -0.5


def noise_subtracted_linear(vals: np.ndarray) -> bool:
    """Whether finite SAR values with some negatives are linear backscatter after thermal-noise subtraction:
    mostly non-negative, 95 % below 2, and the negatives small (not a dB scene's -10 to -30)."""
    if vals.size == 0:
        return False
    return (float(np.median(vals)) >= 0 and float(np.percentile(vals, 95)) <= 2.0
            and float(np.percentile(vals, 1)) > NOISE_NEGATIVE_FLOOR)


def sar_kind(sample: np.ndarray, metadata_text: str = "", dtype: str = "float32",
             declared: Optional[str] = "auto") -> Tuple[str, str]:
    """('db' | 'power' | 'amplitude', reason) of the SAR raster, or ClaireError naming the unit to declare."""
    dt = numpy_dtype(dtype)
    if dt.kind == "c":
        raise ClaireError(f"the SAR raster holds complex values ({dtype}): a single-look complex (SLC) product, "
                          f"not backscatter; calibrate and detect it first (SNAP: Calibration to Sigma0, Deburst, "
                          f"Multilook, Terrain Correction) and give the result, with {_DECLARE} if nothing in the "
                          f"file says which")
    kind = parse_sar_units(declared)
    if kind != "auto":
        return kind, f"declared {_UNIT_OF[kind]} (--sar-units)"
    kind, reason = detect_sar_scale(sample, metadata_text)
    if reason.startswith("metadata"):
        return kind, reason
    if dt.kind == "u":
        vals = sample[np.isfinite(sample)]
        median = float(np.median(vals)) if vals.size else float("nan")
        raise ClaireError(f"the SAR raster holds {dt.name} integers (median {median:.4g}): digital numbers, not "
                          f"calibrated backscatter (a Sentinel-1 GRD measurement file is uncalibrated amplitude); "
                          f"calibrate it (SNAP: Calibration to Sigma0, then Terrain Correction), or, if the numbers "
                          f"are calibrated values, declare their unit with {_DECLARE}")
    if kind == "linear":
        raise ClaireError(f"the SAR {reason}, but nothing in the file says whether they are power (sigma0, "
                          f"gamma0) or amplitude (its square root), and "
                          f"reading one as the other halves or doubles every dB value; declare it with "
                          f"--sar-units linear-power or --sar-units amplitude")
    if kind == "unknown":
        raise ClaireError(f"the SAR values are neither dB nor linear backscatter ({reason}); give calibrated "
                          f"backscatter, or declare the unit with {_DECLARE}")
    return kind, reason


#: Share of negative values above which SAR data cannot be linear power or amplitude (those are never negative).
MAX_NEGATIVE_LINEAR = 0.05


def _check_units_fit_values(vals: np.ndarray, kind: str, reason: str) -> None:
    """ClaireError when the unit the SAR is read in (declared or from its metadata) contradicts its values:
    linear power or amplitude with many negative values (they look like dB), or dB whose values all lie in
    0..2 as linear backscatter does (a scene in dB is mostly negative)."""
    if vals.size == 0:
        return
    negative = float(np.mean(vals < 0))
    if kind != "db" and negative > MAX_NEGATIVE_LINEAR and not noise_subtracted_linear(vals):
        fix = ("use --sar-units dB, or leave --sar-units at auto" if reason.startswith("declared")
               else "declare --sar-units dB (the file says linear, its values say dB)")
        raise ClaireError(f"the SAR is read as {_UNIT_OF[kind]} ({reason}), but {negative:.1%} of its values are "
                          f"negative, which linear backscatter never is (median {float(np.median(vals)):.4g}: the "
                          f"values look like dB); {fix}")
    if kind == "db" and (negative < 0.01 and float(np.percentile(vals, 95)) <= 2.0 or noise_subtracted_linear(vals)):
        raise ClaireError(f"the SAR is read as dB ({reason}), but {1 - negative:.1%} of its values are 0 or more "
                          f"and 95 % lie below {float(np.percentile(vals, 95)):.3g}, as linear backscatter does (a "
                          f"scene in dB is mostly negative, e.g. -25 to -5 dB); declare the linear unit with "
                          f"--sar-units linear-power or --sar-units amplitude")


def check_band_units_agree(band_texts: Sequence[str], names: Sequence[str]) -> None:
    """ClaireError when the SAR bands' own metadata give them different units (Sigma0_VV_db beside Sigma0_VH, as
    SNAP writes them): one unit read for all of them makes one band wrong by its whole dB scale."""
    said = []
    for k, text in enumerate(band_texts):
        kind, reason = detect_sar_scale(np.empty(0, np.float32), text)
        if reason.startswith("metadata"):
            name = str(names[k]) if k < len(names) else f"band {k + 1}"
            said.append((name, text.split(" ")[0] or name, _UNIT_OF[kind]))
    if len({unit for _, _, unit in said}) > 1:
        listed = ", ".join(f"the band read as {name} ({label}) is {unit}" for name, label, unit in said)
        raise ClaireError(f"the SAR bands are in different units by their names: {listed}; give bands in one unit "
                          f"(e.g. both Sigma0_*_db files, or both linear Sigma0_* files, stacked with gdalbuildvrt "
                          f"-separate)")


def _looks_linear(band: np.ndarray) -> bool:
    vals = band[np.isfinite(band)]
    return vals.size >= 100 and float(np.mean(vals >= 0)) >= 0.99 and float(np.percentile(vals, 95)) <= 2.0


def _band_median_db(band: np.ndarray, kind: str) -> Optional[float]:
    vals = band[np.isfinite(band)].astype(np.float64)
    if kind != "db":
        vals = (10.0 if kind == "power" else 20.0) * np.log10(vals[vals > 0])
    return float(np.median(vals)) if vals.size >= 100 else None


def _constant_band(sample: np.ndarray) -> Optional[Tuple[int, float]]:
    """(index, value) of the first band of the sample ([C, ...]) that holds one value on every pixel where another
    band has a value, or None; a raster of one band, or fewer than 100 such pixels, is left alone."""
    sample = np.asarray(sample, np.float64)
    if sample.ndim < 2 or sample.shape[0] < 2:
        return None
    sample = sample.reshape(sample.shape[0], -1)
    finite = np.isfinite(sample)
    seen = (np.where(finite, sample, 0) != 0).any(axis=0)
    constant = []
    for k, band in enumerate(sample):
        vals = band[seen & finite[k]]
        if vals.size >= 100 and float(vals.min()) == float(vals.max()):
            constant.append((k, float(vals[0])))
    if len(constant) < sample.shape[0]:
        return constant[0] if constant else None
    # every band constant (a raster saturated everywhere, a synthetic one): only a band of zeros beside bands that
    # hold values is the odd one out
    zeros = [c for c in constant if c[1] == 0]
    return zeros[0] if zeros and len(zeros) < len(constant) else None


def constant_band(sample: np.ndarray, role: str, names: Sequence[str]) -> Optional[str]:
    """Words for a band that holds one value everywhere the other bands have data (an empty band of a failed or
    partial export: a map from it is a map without that band), or None."""
    found = _constant_band(sample)
    if found is None:
        return None
    k, value = found
    name = str(names[k]) if k < len(names) else f"band {k + 1}"
    return (f"the {role} band read as {name} holds {value:g} on every pixel where the other bands have data: an "
            f"empty band (left out of an export, or a failed one)?")


def constant_band_warnings(optical: np.ndarray, optical_names: Sequence[str], sar: np.ndarray,
                           sar_names: Sequence[str]) -> List[str]:
    """The run's warnings of an empty band in either input (constant_band): the map is made, without that band's
    information, and says so."""
    found = [constant_band(optical, "optical", optical_names), constant_band(sar, "SAR", sar_names)]
    return [f"warning: {said} The map is made without that band's information" for said in found if said]


def check_constant_bands(sample: np.ndarray, role: str, names: Sequence[str]) -> None:
    """ClaireError naming a band of zeros (constant_band at 0: empty), raised where a test would otherwise blame the
    band order or the unit for it, with fixes that cannot help. Another constant is left to that test (a scene
    classification band read as B8A holds one class code: a band in the wrong place)."""
    found = _constant_band(sample)
    if found is not None and found[1] == 0:
        raise ClaireError(f"{constant_band(sample, role, names).rstrip('?')}; give the raster with that band's values")


def _check_each_band(sample: np.ndarray, kind: str, read: str, bands: Sequence[str]) -> None:
    """ClaireError when one band's median is backscatter's and another's is not: that band holds something else."""
    if sample.ndim < 2 or sample.shape[0] < 2:
        return
    name = [str(bands[k]) if k < len(bands) else f"band {k + 1}" for k in range(sample.shape[0])]
    if kind == "db":  # one band linear (0..2), another dB (mostly negative): read alike, one is wrong by its scale
        linear = [k for k, b in enumerate(sample) if _looks_linear(b)]
        db = [k for k, b in enumerate(sample) if float(np.mean(b[np.isfinite(b)] < 0)) > 0.5]
        if linear and db:
            check_constant_bands(sample, "SAR", name)  # an empty band is not linear
            raise ClaireError(f"the SAR band read as {name[linear[0]]} looks linear (values 0 to 2) while the one "
                              f"read as {name[db[0]]} looks like dB (mostly negative), and both are {read}; give "
                              f"bands in one unit (convert the linear one: 10 * log10 of power, e.g. with "
                              f"gdal_calc.py)")
    medians = [_band_median_db(b, kind) for b in sample]
    fine = [k for k, m in enumerate(medians) if m is not None and DB_MEDIAN_RANGE[0] <= m <= DB_MEDIAN_RANGE[1]]
    odd = [k for k, m in enumerate(medians) if m is not None and k not in fine]
    if not fine or not odd:
        return
    k, ok = odd[0], fine[0]
    raise ClaireError(f"the SAR band read as {name[k]}, {read}, has a median of {medians[k]:.4g} dB, which no "
                      f"backscatter has, while the one read as {name[ok]} looks like backscatter (median "
                      f"{medians[ok]:.3g} dB): that band most likely holds something else (an incidence angle, a "
                      f"ratio, a mask); give --sar-bands with the numbers of the {' and '.join(map(str, bands))} "
                      f"bands, or name the bands")


def check_db_plausible(sample: np.ndarray, kind: str, reason: str, bands: Sequence[str] = ()) -> None:
    """ClaireError when the sample ([bands, ...]), read as `kind` ('db', 'power', 'amplitude') and put in dB, is no
    SAR backscatter: one band's median in DB_MEDIAN_RANGE and another's not, a median outside it, or more than
    0.5 % of the values outside DB_RANGE. `bands` names the bands for the message."""
    vals = sample[np.isfinite(sample)].astype(np.float64)
    _check_units_fit_values(vals, kind, reason)
    if kind != "db":
        vals = (10.0 if kind == "power" else 20.0) * np.log10(vals[vals > 0])
    if vals.size == 0:
        return
    median = float(np.median(vals))
    read = f"read as {_UNIT_OF[kind]} ({reason})"
    _check_each_band(sample, kind, read, bands)
    if not DB_MEDIAN_RANGE[0] <= median <= DB_MEDIAN_RANGE[1]:
        fits = [10 ** k for k in (1, 2, 3) if DB_MEDIAN_RANGE[0] <= median / 10 ** k <= -3.0]
        if kind == "db" and median < DB_MEDIAN_RANGE[0] and fits:  # dB x 10 or x 100 in integers, no scale tag
            how = " or ".join(f"dB x {k} (gdal_edit.py -scale {1 / k:g} -offset 0 FILE)" for k in fits[:2])
            check = (" (check one value against the product's: a median of "
                     + " or ".join(f"{median / k:.3g}" for k in fits[:2]) + " dB)" if len(fits) > 1 else "")
            raise ClaireError(f"the SAR values, {read}, have a median of {median:.4g} dB: most likely {how}, "
                              f"integers stored without their scale{check}; declare the scale and run again")
        raise ClaireError(f"the SAR values, {read}, have a median of {median:.4g} dB, which no backscatter has "
                          f"(a scene's median lies between {DB_MEDIAN_RANGE[0]:g} and +{DB_MEDIAN_RANGE[1]:g} dB); "
                          f"the values are in another unit or scaled (e.g. dB x 100, or uncalibrated digital "
                          f"numbers): give calibrated backscatter"
                          f"{'' if reason.startswith('declared') else ', or declare the unit with ' + _DECLARE}")
    out = (vals < DB_RANGE[0]) | (vals > DB_RANGE[1])
    if out.mean() > 0.005:
        common = float(np.median(vals[out]))
        raise ClaireError(f"{out.mean():.1%} of the SAR values, {read}, are beyond {DB_RANGE[0]:g}..+{DB_RANGE[1]:g} "
                          f"dB (around {common:.6g}), which no backscatter has: most likely a nodata value the file "
                          f"does not declare; declare it (gdal_edit.py -a_nodata VALUE FILE, or the layer's "
                          f"Transparency > No data value in QGIS)")


def co_cross_db(sample: np.ndarray, kind: str, bands: Sequence[str]) -> Optional[Tuple[int, int, np.ndarray]]:
    """(index of the co-polarised band (VV, HH), of the cross-polarised one (VH, HV), their values in dB [2, N] at
    the pixels where both are backscatter: finite, not 0, and positive when linear), or None without both bands
    or with fewer than 100 such pixels."""
    up = [str(b).upper() for b in bands]
    co = next((i for i, b in enumerate(up) if b in _CO), None)
    cross = next((i for i, b in enumerate(up) if b in _CROSS), None)
    if co is None or cross is None or sample.ndim < 2 or sample.shape[0] <= max(co, cross):
        return None
    vals = np.asarray(sample, np.float64).reshape(sample.shape[0], -1)[[co, cross]]
    vals = vals[:, np.isfinite(vals).all(axis=0) & (vals != 0).all(axis=0)]
    if kind != "db":
        vals = vals[:, (vals > 0).all(axis=0)]
        vals = (10.0 if kind == "power" else 20.0) * np.log10(vals)
    return (co, cross, vals) if vals.shape[1] >= 100 else None


#: Backscatter (dB) below which a co-polarised (VV, HH) and a cross-polarised (VH, HV) value both lie only where
#: there is no signal: Sentinel-1's noise floor is about -22 to -26 dB, and calm water on the bundled and shipped
#: scenes stays above -25 dB (VV) and -35 dB (VH). A GRD's border noise and fill values lie far below.
NOISE_FLOOR_DB = (-30.0, -35.0)
#: Share of the sampled pixels below it in both bands from which the run warns.
NOISE_FLOOR_SHARE = 0.005


def noise_floor_warning(sample: np.ndarray, kind: str, bands: Sequence[str]) -> Optional[str]:
    """A warning when a share of the SAR's pixels lie below the noise floor in both polarisations (border noise
    of a GRD, or an undeclared fill): the model maps them from noise, mostly as water; None otherwise."""
    found = co_cross_db(sample, kind, bands)
    if found is None:
        return None
    co, cross, vals = found
    share = float(np.mean((vals[0] < NOISE_FLOOR_DB[0]) & (vals[1] < NOISE_FLOOR_DB[1])))
    if share < NOISE_FLOOR_SHARE:
        return None
    return (f"warning: {share:.1%} of the SAR's pixels lie below the radar's noise floor in both polarisations "
            f"({bands[co]} below {NOISE_FLOOR_DB[0]:g} dB and {bands[cross]} below {NOISE_FLOOR_DB[1]:g} dB): border "
            f"noise of a GRD or an undeclared fill, which the model maps from noise (mostly as water); remove the "
            f"border noise (SNAP: Radar > Sentinel-1 TOPS > S-1 Remove GRD Border Noise) or declare those pixels "
            f"the SAR's nodata")


#: A scene's median co- minus cross-polarised backscatter (dB): 5.3-7.4 on the shipped Sentinel-1 scenes; linear
#: amplitude read as power halves it. And the cross-polarised median below which no scene lies (-17.8 to -21.9
#: there; power read as amplitude doubles it).
MIN_CO_CROSS_DB = 4.0
MIN_CROSS_MEDIAN_DB = -30.0


def linear_unit_warning(sample: np.ndarray, kind: str, bands: Sequence[str]) -> Optional[str]:
    """A warning when linear SAR read as `kind` ('power' or 'amplitude') looks like the other one: the
    cross-polarised median below MIN_CROSS_MEDIAN_DB (power read as amplitude) or the co- minus cross-polarised
    median below MIN_CO_CROSS_DB (amplitude read as power); None otherwise, and for dB."""
    found = co_cross_db(sample, kind, bands) if kind in ("power", "amplitude") else None
    if found is None:
        return None
    co, cross, db = found
    other = "amplitude" if kind == "power" else "linear-power"
    cross_median, gap = float(np.median(db[1])), float(np.median(db[0] - db[1]))
    if kind == "amplitude" and cross_median < MIN_CROSS_MEDIAN_DB:
        why = f"the {bands[cross]} median is {cross_median:.1f} dB, below the radar's noise floor"
    elif kind == "power" and gap < MIN_CO_CROSS_DB:
        why = (f"{bands[co]} is only {gap:.1f} dB above {bands[cross]} at the median (a scene's is 5-8 dB), as "
               f"amplitude read as power makes it")
    else:
        return None
    return (f"warning: the SAR is read as {_UNIT_OF[kind]}, but {why}: if its values are {other}, declare "
            f"--sar-units {other}; read in the wrong unit every dB value is halved or doubled and the map is wrong")


#: Co- over cross-polarised backscatter: the share of pixels where the band read as VV (HH) is weaker than the one
#: read as VH (HV) above which the two are taken as swapped (real scenes: 0.2-6.3 %), and the median difference.
SWAPPED_SHARE = 0.75
SWAPPED_MEDIAN_DB = -1.0
#: A band read as VH (HV) with a scene median above this (dB) is no cross-polarised backscatter (a ratio, a VV).
MAX_CROSS_MEDIAN_DB = -3.0
_CO, _CROSS = ("VV", "HH"), ("VH", "HV")


def check_polarisation_order(sample: np.ndarray, kind: str, bands: List[str], method: str) -> None:
    """ClaireError when SAR bands placed by position (no band names: `method` is the band choice's) put the weaker
    polarisation where the checkpoint wants the stronger: co-polarised backscatter (VV, HH) exceeds cross-polarised
    (VH, HV) over nearly all land and water, so a band read as VV below the one read as VH on most pixels means the
    two are stacked the other way round (SNAP and GEE list VH before VV). Named or explicit bands are trusted."""
    if not placed_by_position(method):
        return
    found = co_cross_db(np.asarray(sample).reshape(len(bands), -1), kind, bands)
    if found is None:
        return
    co, cross, vals = found
    diff = vals[0] - vals[1]
    weaker, median = float(np.mean(diff < 0)), float(np.median(diff))
    c, x = bands[co], bands[cross]
    strong = float(np.median(vals[1]))
    if strong > MAX_CROSS_MEDIAN_DB:
        raise ClaireError(f"the SAR bands carry no names and were read by position ({method}), but the band read as "
                          f"{x} (band {cross + 1}) has a median of {strong:+.1f} dB, stronger than cross-polarised "
                          f"backscatter is over a scene (typically -25 to -15 dB): it most likely holds something "
                          f"else, such as a {c}/{x} ratio; give a raster with the {c} and {x} bands (--sar-bands with "
                          f"their numbers), or name the bands")
    if weaker > SWAPPED_SHARE and median < SWAPPED_MEDIAN_DB:
        swap = [str(i + 1) for i in range(len(bands))]
        swap[co], swap[cross] = swap[cross], swap[co]
        raise ClaireError(f"the SAR bands carry no names and were read by position ({method}: band {co + 1} as {c}, "
                          f"band {cross + 1} as {x}), but the band read as {c} is weaker than the one read as {x} on "
                          f"{weaker:.0%} of the pixels (median {median:+.1f} dB), while {c} backscatter is stronger "
                          f"than {x} almost everywhere: the two are most likely stacked the other way round (SNAP and "
                          f"Earth Engine list VH before VV); give --sar-bands {','.join(swap)}, or name the bands")


# ------------------------------------------------------------------ optical reflectance
#: Reflectance a surface can have (bright cloud, snow and sun glint stay well below 2).
MAX_REFLECTANCE = 2.0
#: Below this, a value is negative beyond the noise of atmospheric correction.
NEGATIVE_NOISE = -0.03


def check_reflectance(sample: np.ndarray, dtype: str, scale: float, offset: float, how: str,
                      nodata: Optional[float] = None) -> List[str]:
    """Notes about optical values read as reflectance `raw * scale + offset` (`how` says where the scaling
    comes from); ClaireError when the values cannot be reflectance. The type's maximum (Sentinel-2's
    saturation marker), nodata and non-finite values are left out."""
    dt = numpy_dtype(dtype)
    vals = sample[np.isfinite(sample)].astype(np.float64)
    if dt.kind in "ui":
        vals = vals[vals != np.iinfo(dt).max]
    if nodata is not None and np.isfinite(nodata):
        vals = vals[vals != np.float32(nodata)]
    fix = ("give surface reflectance: Sentinel-2 L2A bands as integers (reflectance x 10000) or as floats "
           "between 0 and 1")
    if dt.kind == "u" and dt.itemsize == 1 and scale < 1e-3:
        raise ClaireError(f"the optical raster is 8-bit ({dt.name}, 0-255): a true-colour image (TCI) or a "
                          f"stretched export, not reflectance x 10000 as the checkpoint reads it; {fix}")
    if vals.size == 0:
        return []
    if vals.min() == vals.max():
        raise ClaireError(f"every optical value is {vals[0]:g}: the raster holds no image, or {vals[0]:g} marks "
                          f"nodata and the file does not say so; check the file, or declare its nodata value "
                          f"(gdal_edit.py -a_nodata {vals[0]:g} FILE, or the layer's Transparency > No data value)")
    refl = vals * scale + offset
    p99 = float(np.percentile(refl, 99))
    if p99 > MAX_REFLECTANCE:
        percent = (" (if they are reflectance in percent, 0-100, declare it: gdal_edit.py -scale 0.01 FILE)"
                   if dt.kind == "f" and scale == 1.0 and p99 <= 100 * MAX_REFLECTANCE else "")
        raise ClaireError(f"the optical values, read as reflectance ({how}), reach {p99:.4g} at the 99th percentile, "
                          f"more than any surface reflects ({MAX_REFLECTANCE:g}); the raster is in other units "
                          f"(radiance, a different scale factor) or its scale metadata is wrong{percent}; {fix}")
    negative = float(np.mean(refl < NEGATIVE_NOISE))
    if negative > 0.02:
        below = vals[refl < NEGATIVE_NOISE]
        fill, count = np.unique(below, return_counts=True)
        if count.max() >= 0.9 * below.size:
            value = float(fill[count.argmax()])
            raise ClaireError(f"{negative:.0%} of the optical values are {value:g}, below any reflectance: most likely "
                              f"a fill value the file does not declare as nodata; declare it (gdal_edit.py -a_nodata "
                              f"{value:g} FILE, or the layer's Transparency > No data value)")
        raise ClaireError(f"{negative:.0%} of the optical values, read as reflectance ({how}), are below "
                          f"{NEGATIVE_NOISE:g}: reflectance is not negative beyond noise; the offset is wrong (if the "
                          f"values were already corrected, pass --optical-offset 0) or the raster is not reflectance; "
                          f"{fix}")
    if p99 < 0.012:
        raw99 = float(np.percentile(vals, 99))
        if scale < 1.0 and 0.012 <= raw99 <= MAX_REFLECTANCE:
            raise ClaireError(f"the optical values, read as reflectance ({how}), stay below {p99:.3g} at the 99th "
                              f"percentile, darker than any land scene, but as stored (99th percentile {raw99:.3g}) "
                              f"they are reflectance already: the scale of x {scale:g} is wrong for them; if the "
                              f"file declares it, remove it (gdal_edit.py -scale 1 -offset 0 FILE)")
        percent = (" (if they are reflectance in percent, 0-100, declare it: gdal_edit.py -scale 0.01 FILE)"
                   if 1.2 <= raw99 <= 100 * MAX_REFLECTANCE else "")
        raise ClaireError(f"the optical values, read as reflectance ({how}), stay below {p99:.3g} at the 99th "
                          f"percentile, darker than any land scene: reflectance in percent (0-100) or another "
                          f"scale{percent}; {fix}")
    notes = []
    if dt.kind == "f" and scale < 1.0 and float(np.percentile(vals, 99)) > 100:
        notes.append(f"optical values are floats in the thousands (99th percentile "
                     f"{float(np.percentile(vals, 99)):.4g}): read as reflectance x {1 / scale:g}, the checkpoint's "
                     f"scale")
    return notes


#: What a SAR raster's names say of its radiometric calibration: sigma0 (ellipsoid-normalised, as Earth Engine's
#: S1_GRD and SNAP's Calibration give it), beta0, or terrain-flattened gamma0 (RTC), which the bundled model learnt.
_CALIBRATIONS = (("gamma0", re.compile(r"(?<![a-z])(gamma[\s_-]?0|γ0)(?!\d|[.,]\d)|(?<![a-z])rtc(?![a-z])")),
                 ("sigma0", re.compile(r"(?<![a-z])(sigma[\s_-]?0|σ0)(?!\d|[.,]\d)")),
                 ("beta0", re.compile(r"(?<![a-z])(beta[\s_-]?0|β0)(?!\d|[.,]\d)")))
#: (a word of its own, not followed by more digits: SNAP's Lee Sigma filter writes "LeeSigma_0.9", "beta_02" is no
#: calibration)


def sar_calibration(texts: Sequence[str]) -> Optional[str]:
    """'gamma0', 'sigma0' or 'beta0' when the SAR's band names, units, tags or file name (`texts`) say one
    calibration (gamma0 wins: SNAP's terrain flattening writes Gamma0 from Beta0); None when they say none."""
    text = " ".join(str(t) for t in texts).lower().replace("_", " ")
    found = [name for name, rx in _CALIBRATIONS if rx.search(text)]
    return found[0] if found else None


def card_sar_calibration(card: dict) -> Optional[str]:
    """The SAR calibration a checkpoint learnt: a polygon-trained model's training scene's (None when its names
    said none), else what its SAR input's sensor says (the bundled model's: Sentinel-1 RTC, gamma0)."""
    training = card.get("training") or {}
    if training.get("data") == "polygons":
        return (training.get("band_choice") or {}).get("sar_calibration")
    sar = (card.get("inputs") or {}).get("sar") or {}
    return sar_calibration([str(sar.get("calibration") or ""), str(sar.get("sensor") or "")])


def calibration_warning(sources: Sequence[str], card: dict) -> Optional[str]:
    """A warning when the SAR's names (`sources`: its band names and file name) say sigma0 or beta0 and the
    checkpoint (`card`) learnt another calibration; None when either is unknown or they agree."""
    scene, learnt = sar_calibration(sources), card_sar_calibration(card)
    if scene not in ("sigma0", "beta0") or learnt is None or scene == learnt:
        return None
    said = ", ".join(quoted(s) for s in dict.fromkeys(sources) if sar_calibration([s]) == scene)
    what = {"gamma0": "terrain-flattened gamma0 (RTC)", "sigma0": "sigma0", "beta0": "beta0"}[learnt]
    give = "gamma0 RTC (SNAP: Radar > Radiometric > Radiometric Terrain Flattening)" if learnt == "gamma0" else learnt
    return (f"warning: the SAR's names say {scene} ({said}), but this checkpoint learnt {what} backscatter: "
            f"{scene} moves a large share of the map (README: The SAR the bundled checkpoint knows); give {give}, "
            "or train on your polygons with this SAR")
