"""The optical + SAR pair of a training scene, read window by window exactly as the engine prepares it.

Band mapping (`inputs.bands.choose_raster_bands`: band names, or a VRT's source file names), the optical
radiometry (`inputs.radiometry`) and the normalisation (`inputs.normalize` preparers built from the checkpoint
card) are the engine's; SAR is resampled onto the optical grid on the fly (`io.raster_io.warp_to_grid`).
Windows come back in physical units (reflectance, dB) so that augmentation and synthetic clouds act on them,
then `standardise` gives the network's input. Nothing is read beyond the windows asked for.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ClaireError
from ..inputs.validate import optical_nodata
from ..io.warp import has_dataset_mask, masked_out


class Scene:
    """Optical raster (the grid) and SAR raster of one place, prepared for the checkpoint `card` with the
    same calls, in the same order, as the engine's plan (core.engine.plan._open_inputs / _prepare)."""

    def __init__(self, optical: str, sar: str, card: dict, optical_bands: Optional[Sequence[int]] = None,
                 sar_bands: Optional[Sequence[int]] = None, optical_offset: Optional[float] = None,
                 sar_units: str = "auto") -> None:
        from ..inputs.bands import check_spectral_order, choose_raster_bands
        from ..inputs.normalize import InputSpec, optical_preparer, sar_fill_units, sar_preparer
        from ..inputs.radiometry import optical_radiometry
        from ..inputs.units import sar_calibration
        from ..inputs.validate import require_valid_pixels, valid_pixels
        from ..io import raster_io as rio

        cfg = card.get("config") or {}
        self.opt_spec = InputSpec.from_card(card, "optical", cfg.get("optical_channels"))
        self.sar_spec = InputSpec.from_card(card, "sar", cfg.get("sar_channels"))
        self._opened: List = []
        try:
            self.opt = self._open(rio.open_raster(optical, "optical"))
            self.sar = self._open(rio.open_raster(sar, "SAR"))
            rio.require_crs(self.opt, "optical")
            rio.require_crs(self.sar, "SAR")
            self.oc = choose_raster_bands(self.opt, "optical", self.opt_spec.bands, optical_bands,
                                          cfg.get("optical_channels"), "--optical-bands")
            self.sc = choose_raster_bands(self.sar, "SAR", self.sar_spec.bands, sar_bands, cfg.get("sar_channels"),
                                          "--sar-bands")
            self.region = rio.overlap_window(self.opt, self.sar)
            self.region = rio.data_window(self.opt, self.sar, self.region) or self.region  # as the engine cuts it
            self.sar_grid = self._open(rio.warp_to_grid(self.sar, self.opt, "bilinear", scaled=True))
            s_sample = rio.sample(self.sar_grid, self.sc.indices, self.region)
            o_sample = rio.sample(self.opt, self.oc.indices, self.region)
            for role, smp, nd, idx in (("SAR", s_sample, None, self.sc.indices),
                                       ("optical", o_sample, self.opt.nodata, self.oc.indices)):
                if not valid_pixels(smp, nd).any():
                    require_valid_pixels(smp, role, nd, idx)
            radiometry = optical_radiometry(self.opt, self.oc.indices, optical_offset)
            self.opt_prep = optical_preparer(self.opt_spec, len(self.oc.indices),
                                             self.opt.dtypes[self.oc.indices[0] - 1], o_sample, radiometry,
                                             self.opt.nodata)
            unchecked = check_spectral_order(self.oc, self.opt.count,
                                             self.opt_prep.physical(o_sample.astype(np.float32)))
            self.sar_prep = sar_preparer(self.sar_spec, len(self.sc.indices), s_sample,
                                         rio.metadata_text(self.sar, self.sc.indices), sar_units,
                                         self.sar.dtypes[self.sc.indices[0] - 1], self.sc.method,
                                         rio.band_metadata_texts(self.sar, self.sc.indices))
            self.sar_grid.set_sar_units(sar_fill_units(self.sar_spec, self.sar_prep.to_db))  # as the engine
            self.sar_calibration = sar_calibration(rio.sar_names(self.sar, self.sc.indices, sar))
        except BaseException:
            self.close()
            raise
        self.notes = [self.oc.describe("optical"), self.sc.describe("SAR")] + self.opt_prep.notes + \
            ([unchecked] if unchecked else []) + self.sar_prep.notes
        self.height, self.width = self.opt.height, self.opt.width
        self.opt_masked = has_dataset_mask(self.opt, self.oc.indices)  # a mask or alpha band not read as data

    def _open(self, ds):
        self._opened.append(ds)
        return ds

    def close(self) -> None:
        """Close every dataset this scene opened."""
        for ds in reversed(self._opened):
            try:
                ds.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._opened = []

    def __enter__(self) -> "Scene":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read(self, r0: int, c0: int, h: int, w: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Physical optical [Co,h,w] and SAR [Cs,h,w] (float32, NaN where invalid) and the invalid mask of
        the window (r0, c0, h, w); the parts outside the raster are filled by reflection and flagged invalid
        only where the raster has no pixel at all. Pixels missing in one raster or both carry what the engine's reader
        gives the model there (`reader.outside_filled`: optical gaps NaN, the SAR mirrored beyond a SAR strip, a
        frame missing in both as the scene's edge), and stay flagged invalid."""
        from ..io.raster_io import read_window

        rr0, cc0 = max(0, r0), max(0, c0)
        rr1, cc1 = min(self.height, r0 + h), min(self.width, c0 + w)
        if rr1 <= rr0 or cc1 <= cc0:
            raise ClaireError(f"window rows {r0}..{r0 + h}, cols {c0}..{c0 + w} lies outside the optical raster")
        o = read_window(self.opt, self.oc.indices, rr0, cc0, rr1 - rr0, cc1 - cc0)
        s = read_window(self.sar_grid, self.sc.indices, rr0, cc0, rr1 - rr0, cc1 - cc0)
        o_bad, s_bad = ~np.isfinite(o).all(axis=0), ~np.isfinite(s).all(axis=0)
        nd = self.opt.nodata
        declared = nd is not None and np.isfinite(nd)
        o_bad |= optical_nodata(o, np.float32(nd) if declared else None)
        if self.opt_masked:
            from rasterio.windows import Window

            o_bad |= masked_out(self.opt, self.oc.indices[0], Window(cc0, rr0, cc1 - cc0, rr1 - rr0))
        reg = self.region
        inside = np.zeros(o_bad.shape, bool)
        inside[max(0, int(reg.row_off) - rr0):int(reg.row_off + reg.height) - rr0,
               max(0, int(reg.col_off) - cc0):int(reg.col_off + reg.width) - cc0] = True
        bad = o_bad | s_bad | ~inside
        o, s = self.opt_prep.physical(o), self.sar_prep.physical(s)
        o_bad, s_bad = o_bad | ~inside, s_bad | ~inside
        o[:, o_bad] = np.nan
        s[:, s_bad] = np.nan
        if o_bad.any() or s_bad.any():  # as the engine's reader hands them to the model; still invalid (`bad`)
            from ..engine.reader import outside_filled

            o, _, s, _, _ = outside_filled(o, o_bad, s, s_bad, None)
        pad = ((rr0 - r0, r0 + h - rr1), (cc0 - c0, c0 + w - cc1))
        if any(p for pp in pad for p in pp):
            mode = "reflect" if min(o.shape[1:]) > 1 else "edge"
            o, s = np.pad(o, ((0, 0),) + pad, mode=mode), np.pad(s, ((0, 0),) + pad, mode=mode)
            bad = np.pad(bad, pad, mode=mode)
        return o, s, bad

    def standardise(self, opt_phys: np.ndarray, sar_phys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Physical values -> the network's input (the card's mean/std); invalid (NaN) pixels become 0."""
        o = self.opt_prep.standardise(np.array(opt_phys, dtype=np.float32, copy=True))
        s = self.sar_prep.standardise(np.array(sar_phys, dtype=np.float32, copy=True))
        return np.nan_to_num(o, nan=0.0, posinf=0.0, neginf=0.0), np.nan_to_num(s, nan=0.0, posinf=0.0, neginf=0.0)

    def band_info(self) -> dict:
        """Which raster bands feed which model bands, and the SAR's calibration as its names say it (None: they
        say none), for the card and the report."""
        return {"optical": self.oc.as_dict(), "sar": self.sc.as_dict(), "sar_calibration": self.sar_calibration}
