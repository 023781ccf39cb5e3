"""Atomic, streaming GeoTIFF output: tiled 256x256, compressed, written one block row at a time.

Each output goes to a hidden temporary file in the destination folder and is renamed over the final
name only when every output of the run is complete; a cancelled or failed run removes its temporaries
and leaves any earlier file at the output path untouched.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ....models.quoting import quoted
from ..errors import ClaireError
from .atomic import OutputSet, example_name, folder_error, remove_stale_temporaries, temp_name, write_error
from .gdal_failures import gdal_failures

BLOCK = 256
#: Band descriptions of the engine's output rasters: the class map and its percent rasters (the tools that read
#: a class map tell a percent raster given in its place by these).
DESCRIPTIONS = {"class": "land cover class", "confidence": "confidence (top-class probability, %)",
                "reliance": "SAR share of the fusion (%)", "cloud": "cloud probability (%)",
                "unfamiliar": "unlike the training data (100 = at the familiarity threshold)"}


#: Bytes the temporary name adds to an output's name (core.io.atomic.temp_name: ".NAME.HOST-PID-RANDOM.partial.EXT").
TEMP_EXTRA = 40


def _longest_name(folder: str) -> int:
    """The longest file name the folder's file system takes, in bytes (255 where it cannot be asked)."""
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    try:
        return int(os.pathconf(folder or ".", "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def _device_folder(path: str) -> bool:
    """Whether `path` lies under /proc or /dev (streams and devices), not /dev/shm (a file system of files)."""
    return path.startswith(("/proc/", "/dev/")) and not path.startswith("/dev/shm/")


def _stream_link(path: str) -> str:
    """The target of the first link in `path`'s chain of links that leads into /proc or /dev (/dev/stdout ->
    /proc/self/fd/1), "" when there is none (realpath resolves /proc/self/fd/1 on to the file behind the stream)."""
    seen = 0
    while os.path.islink(path) and seen < 40:
        target = os.path.join(os.path.dirname(path), os.readlink(path))
        if _device_folder(os.path.abspath(target)):
            return target
        path, seen = target, seen + 1
    return ""


def check_output_path(path: str, inputs: Sequence, role: str = "output",
                      sources: Optional[Dict[str, list]] = None) -> None:
    """ClaireError when the output folder is missing, not writable, or the path is a folder, an input or a file an
    input reads; `inputs` are paths or (role, path) pairs (the role names the input in the message); `sources`:
    input_files of each input path, when the caller has them (else listed here)."""
    from .gdal_names import is_gdal_name
    from .raster_io import same_file

    example = example_name(path, role)
    if not path:
        raise ClaireError(f"no {role} path given; give a file path such as {quoted(example)}")
    if is_gdal_name(path):
        raise ClaireError(f"the {role} path {quoted(path)} is a GDAL dataset name; outputs are written as plain "
                          f"files, so give a file path such as {quoted(os.path.join(os.sep, 'data', example))}")
    if path.endswith(("/", os.sep)) or (os.altsep and path.endswith(os.altsep)):
        raise ClaireError(f"the {role} path {quoted(path)} ends in a separator, so it names a folder; give a file "
                          f"name such as {quoted(os.path.join(path, example))}")
    folder = os.path.dirname(os.path.abspath(path))
    longest = _longest_name(folder)
    if len(os.fsencode(os.path.basename(path))) + TEMP_EXTRA > longest:  # the bytes the file system stores
        raise ClaireError(f"the {role} file name is too long ({len(os.path.basename(path))} characters; this folder "
                          f"takes names of up to {longest} bytes, and the file is first written under a temporary "
                          f"name {TEMP_EXTRA} bytes longer): give a shorter name")
    if not os.path.isdir(folder):
        raise ClaireError(f"the {role} folder {quoted(folder)} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK):
        raise ClaireError(f"the {role} folder {quoted(folder)} is not writable; choose a folder you can write to")
    if os.path.isdir(path):
        raise folder_error(path, role)
    target = _stream_link(path)
    if not target and _device_folder(os.path.join(os.path.realpath(folder), "")):  # /dev/fd/1, /proc/self/fd/1
        target = os.path.realpath(folder)
    if target:  # /dev/stdout: the file is renamed into place, over the link
        raise ClaireError(f"the {role} path {quoted(path)} is a link to a stream or device ({target}), not a file; "
                          f"CLAIRE writes a file and renames it into place, which would replace the link: give the "
                          f"path of a file, and read it from there")
    if os.path.exists(path) and not os.path.isfile(path):
        raise ClaireError(f"the {role} path {quoted(path)} is a device, pipe or socket, not a file; give the path of a "
                          f"file to write")
    if os.path.isfile(path) and not os.stat(path).st_mode & 0o222:  # mode bits: root may write anything
        raise ClaireError(f"the {role} file {quoted(path)} exists and is read-only (protected against writing); choose "
                          f"another {role} file name, or make it writable (chmod u+w, or uncheck Read-only in its "
                          f"properties) to replace it")
    for inp in inputs:
        in_role, in_path = inp if isinstance(inp, tuple) else ("input raster", inp)
        if not in_path:
            continue
        if same_file(path, in_path):
            raise ClaireError(f"the {role} path {quoted(path)} is also an input (the {in_role} {quoted(in_path)}); "
                              f"writing there would overwrite the {in_role}, so choose a different {role} file name")
        files = sources[in_path] if sources and in_path in sources else input_files(in_path)
        if any(same_file(path, f) for f in files):
            raise ClaireError(f"the {role} path {quoted(path)} is a file the {in_role} {quoted(in_path)} reads (e.g. a "
                              f"source of a VRT); writing there would change the {in_role}, so choose a different "
                              f"{role} file name")


def input_files(path: str) -> list:
    """The files GDAL reads for the dataset `path` besides itself (a VRT's sources, a .aux.xml or .ovr beside it),
    as GDAL lists them; empty where GDAL cannot open it."""
    from osgeo import gdal

    from .gdal_mode import gdal_exceptions, quiet_gdal

    ds = None
    try:
        with gdal_exceptions(), quiet_gdal():
            ds = gdal.OpenEx(str(path), gdal.OF_RASTER | gdal.OF_VECTOR)
            files = list(ds.GetFileList() or []) if ds is not None else []
    except RuntimeError:
        return []
    finally:
        ds = None
    return [f for f in files if f and os.path.abspath(f) != os.path.abspath(str(path))]


def check_outputs(outputs: Sequence[Tuple[str, Optional[str]]], inputs: Sequence[Tuple[str, Optional[str]]]) -> None:
    """Every output path of a run checked at once, before any work: each one writable and none equal to
    (or a link to) an input or another output. `outputs` and `inputs` are (role, path) pairs; empty paths
    are skipped."""
    from .raster_io import same_file

    named = [(role, p) for role, p in outputs if p]
    sources = {p: input_files(p) for _, p in inputs if p}  # each input opened once, whatever the outputs
    for role, p in named:
        check_output_path(p, inputs, role, sources)
    for i, (r1, p1) in enumerate(named):
        for r2, p2 in named[i + 1:]:
            if same_file(p1, p2):
                raise ClaireError(f"the {r1} and {r2} outputs have the same path {quoted(os.path.abspath(p1))}; give "
                                  f"each its own file")


def overview_factors(width: int, height: int) -> List[int]:
    """Overview factors 2, 4, ... until the smallest is at most 256 px on its longer side (gdaladdo's default
    levels), each at most one block high so that a written block row holds whole overview rows."""
    factors = []
    f = 2
    while -(-max(width, height) // (f // 2)) > BLOCK and f <= BLOCK:
        factors.append(f)
        f *= 2
    return factors


class GridWriter:
    """Writes rows of a single-band raster on a grid in order, flushing complete 256-row block rows."""

    def __init__(self, final_path: str, grid_ds, dtype: str, nodata: float,
                 description: str = "", rows: Optional[Tuple[int, int]] = None,
                 cols: Optional[Tuple[int, int]] = None) -> None:
        """`rows` / `cols` (start, stop): write only those grid rows / columns, as a raster of stop - start rows /
        columns (a part, an extent)."""
        from osgeo import gdal, gdal_array
        from rasterio.transform import Affine

        self.final = final_path
        remove_stale_temporaries(final_path)
        self.tmp = temp_name(final_path, ".tif")
        self.row_offset = 0 if rows is None else int(rows[0])
        self.col_offset = 0 if cols is None else int(cols[0])
        self.width = grid_ds.width if cols is None else int(cols[1]) - self.col_offset
        self.height = grid_ds.height if rows is None else int(rows[1]) - self.row_offset
        transform = grid_ds.transform * Affine.translation(self.col_offset, self.row_offset)
        self.dtype = np.dtype(dtype)
        self.nodata = nodata
        # GDAL's own bindings, not rasterio: they let go of Python's lock while GDAL compresses and writes the
        # blocks it holds, which it does at the flush (rasterio's close held it, freezing QGIS for 1-3 s at the end
        # of a Sentinel-2 tile)
        options = ["TILED=YES", f"BLOCKXSIZE={BLOCK}", f"BLOCKYSIZE={BLOCK}", "COMPRESS=DEFLATE",
                   f"PREDICTOR={2 if self.dtype.kind in 'ui' else 3}", "BIGTIFF=IF_SAFER"]
        with gdal_failures() as failed:
            self.ds = gdal.GetDriverByName("GTiff").Create(
                self.tmp, self.width, self.height, 1, gdal_array.NumericTypeCodeToGDALTypeCode(self.dtype), options)
        if self.ds is None:
            reason = "; ".join(failed) or gdal.GetLastErrorMsg() or "GDAL could not create it"
            raise ClaireError(f"cannot create {quoted(final_path)} ({reason}); check the folder is writable and has "
                              f"free space")
        self.ds.SetGeoTransform(transform.to_gdal())
        if grid_ds.crs is not None:
            self.ds.SetProjection(grid_ds.crs.to_wkt())
        self.band = self.ds.GetRasterBand(1)
        self.band.SetNoDataValue(float(nodata))
        if description:
            self.band.SetDescription(description)
        if "%" in description:  # the percent rasters: gdalinfo's "Unit Type", QGIS's identify
            self.band.SetUnitType("%")
        self.overviews = self._make_overviews(gdal)
        self.buf_row0 = 0  # grid row of buf[0]
        self.buf = np.full((2 * BLOCK, self.width), nodata, dtype=self.dtype)
        self.closed = False

    def _make_overviews(self, gdal) -> List[Tuple[int, object]]:
        """Empty internal overviews (factor, band), filled as block rows are written: QGIS draws a zoomed-out
        map from them instead of reading every pixel."""
        factors = overview_factors(self.width, self.height)
        if not factors:
            return []
        with gdal_failures() as failed:
            err = self.ds.BuildOverviews("NONE", factors)
        if err or failed or self.band.GetOverviewCount() != len(factors):
            return []  # a map without overviews is still the map: QGIS builds them on request
        return [(f, self.band.GetOverview(i)) for i, f in enumerate(factors)]

    def put(self, row0: int, col0: int, block: np.ndarray) -> None:
        """Place a finished block at grid (row0, col0); rows must not precede the flushed part."""
        h, w = block.shape
        r = row0 - self.row_offset - self.buf_row0
        if r < 0:
            raise RuntimeError("block before the flushed rows")
        need = r + h
        if need > self.buf.shape[0]:
            grown = np.full((need + BLOCK, self.width), self.nodata, dtype=self.dtype)
            grown[: self.buf.shape[0]] = self.buf
            self.buf = grown
        c = col0 - self.col_offset
        self.buf[r: r + h, c: c + w] = block

    def complete_until(self, row: int) -> None:
        """All rows < `row` are final: write whole block rows below it."""
        row = min(row - self.row_offset, self.height)
        while self.buf_row0 + BLOCK <= row or (row >= self.height and self.buf_row0 < self.height):
            h = min(BLOCK, self.height - self.buf_row0)
            try:
                with gdal_failures() as failed:
                    err = self.band.WriteArray(self.buf[:h], 0, self.buf_row0)
            except Exception as exc:  # noqa: BLE001 - GDAL in exceptions mode: disk full, quota, vanished folder...
                raise write_error(self.final, exc) from None
            if err or failed:  # the same, signalled
                raise write_error(self.final, OSError("; ".join(failed) or f"GDAL error {err}"))
            self._write_overviews(h)
            self.buf[:-BLOCK] = self.buf[BLOCK:].copy()
            self.buf[-BLOCK:] = self.nodata
            self.buf_row0 += h

    def _write_overviews(self, h: int) -> None:
        """Each overview's rows within the block row just written (buf[:h]): the pixel nearest each overview
        pixel's centre, as QGIS itself draws a zoomed-out raster without overviews (a class stays a class)."""
        for f, band in self.overviews:
            first = self.buf_row0 // f
            last = -(-(self.buf_row0 + h) // f)
            rows = np.minimum(np.arange(first, last) * f + f // 2, self.height - 1) - self.buf_row0
            cols = np.minimum(np.arange(band.XSize) * f + f // 2, self.width - 1)
            try:
                with gdal_failures() as failed:
                    err = band.WriteArray(self.buf[rows][:, cols], 0, first)
            except Exception as exc:  # noqa: BLE001 - as the block rows above
                raise write_error(self.final, exc) from None
            if err or failed:
                raise write_error(self.final, OSError("; ".join(failed) or f"GDAL error {err}"))

    def close(self) -> None:
        """Write the remaining rows and close the temporary file."""
        if not self.closed:
            self.complete_until(self.height)
            with gdal_failures() as failed:  # GDAL writes the blocks it holds here, and only signals a failure
                self.band = None
                self.overviews = []
                self.ds.FlushCache()
                self.ds = None
            self.closed = True
            if failed:  # a full disk: the file is cut short
                raise write_error(self.final, OSError("; ".join(dict.fromkeys(failed))))

    def abort(self) -> None:
        """Close and remove the temporary file (and any sidecar GDAL made)."""
        self.overviews = []
        self.band = self.ds = None  # closes the file, whatever GDAL then says
        self.closed = True
        for p in (self.tmp, self.tmp + ".aux.xml", self.tmp + ".msk"):
            try:
                os.remove(p)
            except OSError:
                pass


def set_classes(path: str, nodata: int, classes: List[dict], colors: Dict[int, tuple], final: str = "") -> None:
    """Write a colour table and GDAL category names into the class raster `path` (names go to .aux.xml);
    ClaireError naming `final` (the output it becomes) when that fails (a full disk, a vanished folder)."""
    try:
        with gdal_failures() as failed:
            _set_classes(path, nodata, classes, colors)
    except ClaireError:
        raise
    except Exception as exc:  # noqa: BLE001 - rasterio raises TypeError for a file removed under it
        raise write_error(final or path, exc) from None
    if failed:
        raise write_error(final or path, OSError("; ".join(dict.fromkeys(failed))))


def _set_classes(path: str, nodata: int, classes: List[dict], colors: Dict[int, tuple]) -> None:
    import rasterio

    with rasterio.open(path, "r+") as ds:
        cmap = {int(v): tuple(int(c) for c in rgb) + ((255,) if len(rgb) == 3 else ()) for v, rgb in colors.items()}
        cmap.setdefault(int(nodata), (0, 0, 0, 0))
        ds.write_colormap(1, cmap)
        ds.update_tags(1, **{f"class_{c['value']}": str(c["name"]) for c in classes})
    top = max([int(nodata)] + [int(c["value"]) for c in classes])
    names = [""] * (top + 1)
    for c in classes:
        names[int(c["value"])] = str(c["name"])
    names[int(nodata)] = "nodata"
    try:
        from osgeo import gdal
    except ImportError:
        _write_pam_categories(path, names)
        return
    from .pam import pam_on

    # GDAL keeps GeoTIFF category names in the PAM sidecar: keep PAM on for this output even when the user
    # (or the demo, to protect inputs from QGIS's layer statistics) switched it off with GDAL_PAM_ENABLED=NO.
    with pam_on():
        ds = gdal.Open(path, gdal.GA_Update)
        ds.GetRasterBand(1).SetCategoryNames(names)
        ds.FlushCache()
        ds = None


def _write_pam_categories(path: str, names: List[str]) -> None:
    """Fallback without GDAL's Python bindings: the PAM sidecar GDAL reads category names from."""
    from xml.sax.saxutils import escape

    cats = "".join(f"      <Category>{escape(n)}</Category>\n" for n in names)
    with open(path + ".aux.xml", "w", encoding="utf-8") as f:
        f.write(f'<PAMDataset>\n  <PAMRasterBand band="1">\n    <CategoryNames>\n{cats}'
                f"    </CategoryNames>\n  </PAMRasterBand>\n</PAMDataset>\n")


def stage(outputs: OutputSet, writers: List[GridWriter]) -> None:
    """Stage every closed writer's temporary (and its GDAL sidecar, or the removal of a stale one) in `outputs`."""
    for w in writers:
        side = w.tmp + ".aux.xml"
        if os.path.exists(side):
            outputs.adopt(side, w.final + ".aux.xml")
        else:
            outputs.drop_at_commit(w.final + ".aux.xml")  # a stale sidecar would describe the old file
        outputs.adopt(w.tmp, w.final)


def commit(writers: List[GridWriter]) -> None:
    """Rename every closed temporary output over its final name, all or none (core.io.atomic.OutputSet)."""
    outputs = OutputSet()
    stage(outputs, writers)
    outputs.commit()
