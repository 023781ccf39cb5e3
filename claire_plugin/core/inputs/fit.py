"""Mistakes a user makes when choosing the inputs, told before a run: the same raster as optical and SAR, a
SAR that is not in dB, bands stacked in another order (core.inputs.bands), a pixel size far from the one the
checkpoint was trained at. The engine applies the same rules (core.engine.plan); `check_pair` runs them on
metadata and a small sample for the dock's fit check, without writing anything next to the inputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import ClaireError

#: A pixel size this many times larger or smaller than the training one gets a warning.
RESOLUTION_FACTOR = 1.5
#: Native pixel size of the sensors a card may name, when it does not record `inputs.optical.resolution_m`.
SENSOR_RESOLUTION_M = {"sentinel-2": 10.0}


def same_raster_message(optical: str, sar: str, optical_bands: Optional[Sequence[int]] = None,
                        sar_bands: Optional[Sequence[int]] = None) -> Optional[str]:
    """Why the optical and SAR inputs cannot be the same raster, or None. One file stacking both is fine
    when --optical-bands and --sar-bands name different bands of it."""
    from ..io.gdal_names import is_gdal_name
    from ..io.raster_io import same_file

    if not optical or not sar:
        return None
    if is_gdal_name(optical) or is_gdal_name(sar):  # two members of one archive, two pages of one file
        if optical.strip() != sar.strip():
            return None
    elif not same_file(optical, sar):
        return None
    if optical_bands and sar_bands and not set(optical_bands) & set(sar_bands):
        return None
    return (f"the same raster ({optical}) is given as the optical and as the SAR input; choose the Sentinel-1 "
            f"SAR raster (VV, VH backscatter) as SAR, or, if this file stacks both, name each one's bands with "
            f"--optical-bands and --sar-bands")


def training_resolution(card: Dict[str, Any]) -> Optional[Tuple[float, str]]:
    """(pixel size in metres the checkpoint was trained at, where that comes from), or None when unknown."""
    spec = (card.get("inputs") or {}).get("optical") or {}
    value = spec.get("resolution_m")
    if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
        return float(value), "its model card"
    sensor = str(spec.get("sensor") or "").lower()
    for name, metres in SENSOR_RESOLUTION_M.items():
        if name in sensor:
            return metres, f"{spec.get('sensor')} bands"
    return None


def resolution_warning(ds, card: Dict[str, Any]) -> Optional[str]:
    """A warning when the optical raster's pixels are RESOLUTION_FACTOR times coarser or finer than the
    checkpoint's training pixels (the map's grid is the optical's), naming the fix; None otherwise."""
    from ..io.raster_io import pixel_area_m2

    trained = training_resolution(card)
    if trained is None or ds.crs is None:
        return None
    size = math.sqrt(pixel_area_m2(ds))
    ratio = size / trained[0]
    if 1 / RESOLUTION_FACTOR < ratio < RESOLUTION_FACTOR:
        return None
    t = trained[0]
    how = (f"coarser: objects look {ratio:.3g} x smaller" if ratio > 1 else f"finer: objects look {1 / ratio:.3g} x "
           f"larger")
    return (f"warning: the optical pixels are {size:.3g} m, {how} than in the {t:g} m pixels the checkpoint was "
            f"trained on ({trained[1]}), so the map will be less accurate; resample the optical to {t:g} m "
            f"(gdalwarp -tr {t:g} {t:g} -r average, or Raster > Projections > Warp in QGIS), or use a checkpoint "
            f"trained at {size:.3g} m")


#: SAR pixels this many times coarser than the checkpoint's training pixels get a warning (the SAR is warped onto
#: the optical grid, so only its detail is lost: 40 m SAR moved 12 % of a site's map, 20 m 5.5 %).
SAR_COARSE_FACTOR = 3.0


def sar_resolution_warning(sar_pixel_m: float, optical_pixel_m: float, card: Dict[str, Any]) -> Optional[str]:
    """A warning when the SAR's pixels (`sar_pixel_m`, ground metres) are SAR_COARSE_FACTOR times those the
    checkpoint was trained at and coarser than the optical's (warped onto a finer grid; both coarse: the optical's
    resolution_warning says it), else None."""
    trained = training_resolution(card)
    if (trained is None or sar_pixel_m < SAR_COARSE_FACTOR * trained[0]
            or sar_pixel_m < RESOLUTION_FACTOR * optical_pixel_m):
        return None
    t = trained[0]
    return (f"warning: the SAR pixels are {sar_pixel_m:.3g} m, {sar_pixel_m / t:.2g} x the {t:g} m the checkpoint "
            f"was trained on ({trained[1]}): narrow features (roads, rivers, field edges) are blurred in its SAR, "
            f"and the map moves with it (12 % of a bundled site's pixels at 40 m); give SAR at {t:g} m where you "
            f"have it")


@dataclass
class PairCheck:
    """What `check_pair` found: problems that stop a run, warnings that do not, and notes (how the inputs
    will be read, e.g. bands reordered) that need no action."""

    errors: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def check_pair(optical: str, sar: str, card: Dict[str, Any], optical_bands: Optional[Sequence[int]] = None,
               sar_bands: Optional[Sequence[int]] = None, sar_units: Optional[str] = "auto",
               optical_offset: Optional[float] = None) -> PairCheck:
    """The engine's rules for the inputs, on their metadata and a small sample of each (fast enough for a dock
    reacting to a layer choice): the bands, the SAR's units and polarisation order, the optical's reflectance and
    spectral band order; GDAL's PAM is off meanwhile, so nothing is written next to them."""
    out = PairCheck()
    from ..io.pam import pam_off

    with pam_off():
        try:
            _check_opened(optical, sar, card, optical_bands, sar_bands, sar_units, out, optical_offset)
        except ClaireError as exc:
            out.errors.append(str(exc))
    return out


def _check_opened(optical: str, sar: str, card: Dict[str, Any], optical_bands, sar_bands, sar_units,
                  out: PairCheck, optical_offset: Optional[float] = None) -> None:
    import numpy as np

    from ..io import raster_io as rio
    from .bands import check_spectral_order, choose_raster_bands
    from .dates import date_gap_warning
    from .normalize import InputSpec, optical_preparer, sar_preparer
    from .radiometry import optical_radiometry
    from .units import calibration_warning

    cfg = card.get("config") or {}
    with rio.open_raster(optical, "optical") as opt, rio.open_raster(sar, "SAR") as sds:
        same = same_raster_message(optical, sar, optical_bands, sar_bands)
        if same:
            raise ClaireError(same)
        rio.require_crs(opt, "optical")
        rio.require_crs(sds, "SAR")
        rio.overlap_window(opt, sds)  # a pair of two places is refused before the run, not after it starts
        ospec = InputSpec.from_card(card, "optical", cfg.get("optical_channels"))
        sspec = InputSpec.from_card(card, "sar", cfg.get("sar_channels"))
        oc = choose_raster_bands(opt, "optical", ospec.bands, optical_bands, cfg.get("optical_channels"),
                                 "--optical-bands")
        sc = choose_raster_bands(sds, "SAR", sspec.bands, sar_bands, cfg.get("sar_channels"), "--sar-bands")
        out.notes += [n for n in (oc.reorder_note("optical"), sc.reorder_note("SAR")) if n]
        from rasterio.windows import Window

        sample = rio.sample(sds, sc.indices, Window(0, 0, sds.width, sds.height))
        if sds.nodata is not None and math.isfinite(sds.nodata):
            sample = sample[:, (sample != sds.nodata).all(axis=0)]
        s_prep = sar_preparer(sspec, len(sc.indices), sample, rio.metadata_text(sds, sc.indices), sar_units,
                              sds.dtypes[sc.indices[0] - 1], sc.method)
        out.warnings += [n for n in s_prep.notes if n.startswith("warning:")]  # border noise, the other unit
        for said in (calibration_warning(rio.sar_names(sds, sc.indices, sar), card),
                     date_gap_warning((optical, opt.tags()), (sar, sds.tags()))):
            if said:
                out.warnings.append(said)
        coarse = sar_resolution_warning(math.sqrt(rio.pixel_area_m2(sds)), math.sqrt(rio.pixel_area_m2(opt)), card)
        if coarse:
            out.warnings.append(coarse)
        unchecked = None
        if not rio.slow_to_sample(opt):  # JPEG 2000 (a SAFE's bands) took seconds: the run checks it
            o_sample = rio.sample(opt, oc.indices, Window(0, 0, opt.width, opt.height))
            prep = optical_preparer(ospec, len(oc.indices), opt.dtypes[oc.indices[0] - 1], o_sample,
                                    optical_radiometry(opt, oc.indices, optical_offset), opt.nodata)
            unchecked = check_spectral_order(oc, opt.count, prep.physical(o_sample.astype(np.float32)))  # as the run
        warning = resolution_warning(opt, card)
        if warning:
            out.warnings.append(warning)
        if unchecked:  # the least of them: last
            out.warnings.append(unchecked)
