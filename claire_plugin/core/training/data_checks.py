"""Training and evaluation data checked like classification inputs, before any training starts: one grid
per pair, a non-empty region, labels that hold class values, bands with valid values, optical values that can
be reflectance, and a resume file that belongs to the run. Each problem is one ClaireError naming the fix."""
from __future__ import annotations

import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ....models.quoting import quoted
from ..errors import ClaireError

#: Side of the decimated sample read to judge a raster's values.
SAMPLE_PX = 256
#: Pairs whose optical values are checked (the first ones; the rest are read the same way).
CHECKED_PAIRS = 16


def optical_sample(ds, bands: Optional[Sequence[int]]) -> np.ndarray:
    """A decimated read (at most SAMPLE_PX on a side) of the chosen bands as float32; nodata (by the engine's rule,
    `validate.optical_nodata`) and non-finite values NaN."""
    idx = list(bands) if bands else list(range(1, ds.count + 1))
    shape = (len(idx), min(ds.height, SAMPLE_PX), min(ds.width, SAMPLE_PX))
    from ..inputs.validate import optical_nodata

    x = ds.read(idx, out_shape=shape).astype(np.float32)
    declared = ds.nodata is not None and np.isfinite(ds.nodata)
    x[:, optical_nodata(x, np.float32(ds.nodata) if declared else None)] = np.nan  # as the engine: else 0 in every band
    x[~np.isfinite(x)] = np.nan
    return x


def float_optical_scale(ds, bands: Optional[Sequence[int]]) -> Tuple[float, Optional[str]]:
    """(raw -> reflectance factor, note) of a float optical raster, by the engine's rule
    (core.inputs.normalize.FLOAT_REFLECTANCE_P99): reflectance already (1), or reflectance x 10000 (1e-4)."""
    from ..inputs.normalize import FLOAT_REFLECTANCE_P99

    vals = optical_sample(ds, bands)
    vals = vals[np.isfinite(vals)]
    if not vals.size or float(np.percentile(vals, 99)) <= FLOAT_REFLECTANCE_P99:
        return 1.0, None
    return 1e-4, (f"{ds.name}: optical values are floats in the thousands (99th percentile "
                  f"{float(np.percentile(vals, 99)):.4g}): read as reflectance x 10000")


def _grid_difference(a, b) -> Optional[str]:
    """What differs between the grids of datasets a and b (None: the same grid)."""
    if (a.width, a.height) != (b.width, b.height):
        return f"{b.width} x {b.height} pixels, not {a.width} x {a.height}"
    if not (a.crs and b.crs):  # a raster without georeferencing (some datasets' labels): pixels line up by size
        return None
    if a.crs != b.crs:
        return f"CRS {b.crs.to_string()}, not {a.crs.to_string()}"
    tol = 1e-6 * max(abs(a.transform.a), abs(a.transform.e), 1e-12)
    if not np.allclose(list(a.transform)[:6], list(b.transform)[:6], rtol=0, atol=tol):
        return f"origin or pixel size {tuple(b.transform)[:6]}, not {tuple(a.transform)[:6]}"
    return None


def check_grids(pairs) -> None:
    """Every pair's SAR and label raster on its optical raster's grid (size, CRS, transform)."""
    import rasterio

    for p in pairs:
        with rasterio.open(p.optical) as o, rasterio.open(p.sar) as s, rasterio.open(p.label) as lab:
            if _grid_difference(o, s) and _grid_difference(o, lab) and not _grid_difference(s, lab):
                b = s.bounds
                how = (f"gdalwarp -r bilinear -t_srs {s.crs.to_string()} -te {b.left} {b.bottom} {b.right} {b.top} "
                       f"-ts {s.width} {s.height}" if s.crs else f"gdal_translate -r bilinear -outsize {s.width} "
                                                                 f"{s.height}")
                raise ClaireError(
                    f"{p.name}: the optical raster {p.optical} is not on the grid its SAR and label rasters share "
                    f"({_grid_difference(s, o)}); folder training reads the three rasters pixel for pixel, so "
                    f"resample the optical onto their grid first, e.g. {how} {p.optical} optical_on_grid.tif")
            for path, role, how, other in ((p.sar, "SAR", "bilinear", s), (p.label, "label", "near", lab)):
                diff = _grid_difference(o, other)
                if diff:
                    crs = o.crs.to_string() if o.crs else "the optical CRS"
                    b = o.bounds
                    raise ClaireError(
                        f"{p.name}: the {role} raster {path} is not on the optical raster's grid ({diff}); folder "
                        f"training reads the three rasters pixel for pixel, so resample it onto the optical grid "
                        f"first, e.g. gdalwarp -r {how} -t_srs {crs} -te {b.left} {b.bottom} {b.right} {b.top} "
                        f"-ts {o.width} {o.height} {path} {role.lower()}_on_grid.tif")


def check_regions(pairs, split: str) -> None:
    """Every pair's region of the split holds at least one pixel (a 1-pixel-wide image has no hold-out)."""
    for p in pairs:
        if p.region[2] < 1 or p.region[3] < 1:
            with __import__("rasterio").open(p.label) as ds:
                size = f"{ds.width} x {ds.height}"
            raise ClaireError(f"{p.name} is {size} pixels: too small to hold out a block for validation and keep "
                              f"pixels for {split}; give larger images, --holdout 0 (no hold-out), or split lists "
                              f"(train.txt / val.txt)")


def label_counts(src, num_classes: int) -> np.ndarray:
    """Pixels per class index in the regions of `src` (a RasterPairSource), read from the label rasters only."""
    import rasterio
    from rasterio.windows import Window

    from .datasets import class_indices, label_codes

    counts = np.zeros(num_classes, np.int64)
    for p in src.pairs:
        r0, c0, h, w = p.region
        with rasterio.open(p.label) as ds:
            for r in range(r0, r0 + h, 1024):
                lab = ds.read(1, window=Window(c0, r, w, min(1024, r0 + h - r)))
                idx = class_indices(src.lut, *label_codes(lab, ds.nodata, p.label, src.classes))
                counts += np.bincount(idx[idx < num_classes].ravel(), minlength=num_classes)[:num_classes]
    return counts


def left_out_codes(src, num_classes: int, ignored=()) -> Dict[int, int]:
    """Pixels per label value of the regions of `src` that is no class (the class list's lookup leaves it out),
    neither the label rasters' nodata nor one of the `ignored` values: labels the metrics cannot count."""
    import rasterio
    from rasterio.windows import Window

    from .datasets import class_indices, label_codes

    skip = {int(v) for v in ignored}
    found: Dict[int, int] = {}
    for p in src.pairs:
        r0, c0, h, w = p.region
        with rasterio.open(p.label) as ds:
            for r in range(r0, r0 + h, 1024):
                lab, labelled = label_codes(ds.read(1, window=Window(c0, r, w, min(1024, r0 + h - r))), ds.nodata,
                                            p.label, src.classes)
                out = labelled & (class_indices(src.lut, lab, labelled) >= num_classes)
                values, counts = np.unique(lab[out], return_counts=True)
                for v, n in zip(values.tolist(), counts.tolist()):
                    if v not in skip:
                        found[v] = found.get(v, 0) + n
    return dict(sorted(found.items()))


def check_labels(src, classes, where: str, fix: str) -> np.ndarray:
    """Pixel counts per class in the regions of `src`; ClaireError when no label pixel has a class value."""
    from .datasets import scan_label_values

    counts = label_counts(src, len(classes))
    if counts.sum() == 0:
        found = scan_label_values(src.pairs)
        names = ", ".join(f"{c.value} {c.name}" for c in classes)
        raise ClaireError(f"no label pixel {where} has a value of the class list ({names}); the label rasters hold "
                          f"{found[:20] or 'no values'}; {fix}")
    return counts


def check_band_values(stats: List[Tuple[np.ndarray, np.ndarray]], ospec: Dict, sspec: Dict) -> None:
    """Every band has finite values in the statistics sample: a band of NaN or infinities would give the
    card a made-up mean and standard deviation."""
    for k, (role, spec, flag) in enumerate((("optical", ospec, "--optical-bands"), ("SAR", sspec, "--sar-bands"))):
        finite = sum(np.isfinite(arrays[k]).reshape(arrays[k].shape[0], -1).sum(1) for arrays in stats)
        empty = [spec["bands"][i] for i, n in enumerate(np.atleast_1d(finite)) if n == 0]
        if empty:
            raise ClaireError(f"the {role} band(s) {', '.join(empty)} hold no valid value (only NaN, infinity or "
                              f"nodata) in the training images; check the {role} files and their nodata value, or "
                              f"leave the band out with {flag}")


def check_optical_values(src, scale: float) -> List[str]:
    """The first pairs' optical values read as reflectance (core.inputs.units.check_reflectance, as for
    classification); notes, or a ClaireError naming the file."""
    from ..inputs.units import check_reflectance

    notes: List[str] = []
    for p in src.pairs[:CHECKED_PAIRS]:
        ds = src._open(p.optical)
        bands = p.optical_bands or src.optical_bands
        m, c = src._optical_fix(p.optical, ds, bands)
        how = f"scale {scale * m:g}" + (f", offset {c:g}" if c else "")
        try:
            for note in check_reflectance(optical_sample(ds, bands) * m + c, ds.dtypes[0], scale, 0.0, how,
                                          ds.nodata):
                notes.append(f"{p.name}: {note}")
        except ClaireError as exc:
            raise ClaireError(f"{p.optical}: {exc}") from None
    return notes


def check_resume(path: str, model_config: Dict, arch: str) -> None:
    """A resume file that is a safetensors file of this run's network (names and shapes, checked against the
    network built on the meta device) with its epoch record; ClaireError naming it as the resume file."""
    from ....models.checkpoint import CheckpointError, read_header

    fix = "delete it to start the training afresh, or run without --resume"
    what = f"the resume file {path} (left by an interrupted `claire train --resume` run)"
    try:
        header = read_header(path)
        meta = json.loads((header.get("__metadata__") or {}).get("resume", "null"))
        if not isinstance(meta, dict) or not isinstance(meta.get("epoch"), int) or meta["epoch"] < 0:
            raise ValueError("it has no epoch record")
    except (CheckpointError, ValueError, OSError) as exc:
        raise ClaireError(f"{what} is damaged ({exc}); {fix}") from None
    context = model_config.get("context", "global")
    if meta.get("context", context) != context:  # local and global networks have the same weights' shapes
        raise ClaireError(f"{what} was trained with --context {meta['context']}, this run with --context {context} "
                          f"(the default is local since 2026-12-07); pass --context {meta['context']} to resume it, or "
                          f"{fix}")
    import torch

    from ....models.registry import build_model

    with torch.device("meta"):
        net = build_model(arch, model_config)
    want = {f"model.{k}": list(v.shape) for k, v in net.state_dict().items()}
    have = {k: list(v.get("shape", [])) for k, v in header.items() if k.startswith("model.")}
    wrong = sorted(k for k in want if have.get(k) != want[k])
    if wrong or set(have) - set(want):
        name = (wrong or sorted(set(have) - set(want)))[0][6:]
        raise ClaireError(f"{what} belongs to another network (weight {quoted(name)} differs from this run's "
                          f"{arch}/{model_config.get('size')}); {fix}")
