"""Planning a run, once, before any tile is read: the tiling resolved from the parameters and the card,
the inputs opened and checked, the bands chosen, the normalisers built from samples, the tile grid, the
memory check, the writers and the reading schedule. Everything the stream and the finish need is a named
field of `RunPlan`."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ....models.card_schema import card_temperature
from ....models.macroclass import Grouping
from ....models.quoting import quoted
from ..errors import ClaireError
from ..inputs.bands import check_spectral_order, choose_raster_bands
from ..inputs.dates import date_gap_warning
from ..inputs.fit import resolution_warning, same_raster_message, sar_resolution_warning
from ..inputs.normalize import InputSpec, optical_preparer, sar_fill_units, sar_preparer
from ..inputs.radiometry import optical_radiometry
from ..inputs.units import calibration_warning, constant_band_warnings
from ..inputs.validate import require_valid_pixels, valid_pixels
from ..io import raster_io as rio
from ..io.atomic import other_writers
from ..io.writer import DESCRIPTIONS, GridWriter
from ..params import ClassifyParams
from . import schedule
from .memory_fit import check_fits
from .post import UINT8_NODATA, Outputs
from .summary import SummaryAccumulator
from .tiling import TileGrid, resolve_tiling, tiles_per_chunk, window


@dataclass
class RunPlan:
    """One run's inputs, tiling, normalisers, outputs and schedule (built by `plan_run`)."""

    params: ClassifyParams
    card: dict
    classes: List[dict]
    model: object
    device: object
    tile: int
    context: int
    batch: int
    opt: object = None
    sar: object = None
    sar_vrt: object = None
    reference: object = None
    reference_nodata: Optional[float] = None
    region: object = None
    optical_spec: object = None
    sar_spec: object = None
    optical_bands: object = None
    sar_bands: object = None
    optical_prep: object = None
    sar_prep: object = None
    grid: Optional[TileGrid] = None
    cloud_bands: Optional[List[str]] = None
    uses_cloud: bool = False
    fill_from_sar: bool = False
    snow_classes: List[int] = field(default_factory=list)  # class indices the snow check applies to (none: off)
    familiar: Optional[object] = None  # the card's familiarity on the device (models.familiarity.Scorer)
    outputs: Optional[Outputs] = None
    readers: int = 0
    lanes: int = 1  # windows run at once on the CPU, one torch thread each (schedule.forward_lanes)
    out_rows: Optional[Tuple[int, int]] = None  # optical-grid rows [start, stop) the outputs cover (None: all)
    out_cols: Optional[Tuple[int, int]] = None  # optical-grid columns [start, stop) the outputs cover (None: all)
    keep_rows: Optional[Tuple[int, int]] = None  # region rows [start, stop) that are written (None: all)
    keep_cols: Optional[Tuple[int, int]] = None  # region columns [start, stop) that are written (None: all)
    runtime: str = "eager"
    opened: list = field(default_factory=list)
    #: a map of the card's macroclasses: how the class probabilities are summed (models.macroclass.Grouping)
    groups: object = None
    model_classes: int = 0  # the model's output channels (the card's classes, also at the macroclass level)

    @property
    def tiles_per_chunk(self) -> int:
        """Tiles read, run and written together."""
        return tiles_per_chunk(self.batch, self.tile + 2 * self.context)

    def more_handles(self) -> tuple:
        """Datasets of its own for each extra reader thread (GDAL handles are not shared): (optical,
        SAR on the optical grid, [to close])."""
        o = rio.open_raster(self.params.optical, "optical")
        s = rio.open_raster(self.params.sar, "SAR")
        warped = rio.warp_to_grid(s, o, "bilinear", scaled=True)
        warped.set_sar_units(self.sar_vrt.sar_linear)
        return o, warped, [s, o]

    def writer(self, path: str, dtype: str, nodata: float, description: str) -> GridWriter:
        """A writer of `path` on the optical grid, covering the run's output window."""
        return GridWriter(path, self.opt, dtype, nodata, description, self.out_rows, self.out_cols)

    def close(self) -> None:
        """Close every dataset the plan opened (the last opened first)."""
        for ds in reversed(self.opened):
            try:
                ds.close()
            except Exception:  # noqa: BLE001
                pass


def card_classes(card: dict) -> List[dict]:
    """The card's classes by index; ClaireError when there are none or a value cannot be written."""
    classes = sorted(card.get("classes") or [], key=lambda c: int(c["index"]))
    if not classes:
        raise ClaireError("the checkpoint card lists no classes; re-export the checkpoint with its classes")
    nodata = int(card.get("nodata", 0))
    for c in classes:
        if int(c["value"]) == nodata or not 0 <= int(c["value"]) <= 254:
            raise ClaireError(f"class {quoted(c.get('name'))} has value {c['value']}, which equals the nodata value "
                              f"or does not fit uint8; fix the checkpoint card")
    return classes


def level_card(card: dict, level: str) -> Tuple[dict, Optional[Grouping]]:
    """(the card the run maps with, how class probabilities are summed into its macroclasses or None: the
    grouping's index is a numpy array) for the map `level` (models.macroclass.LEVELS). ClaireError for an unknown
    level or the macroclass level of a card without macroclasses."""
    from ....models.macroclass import LEVELS, card_macroclasses, macro_view

    if level not in LEVELS:
        raise ClaireError(f"--level {quoted(level)} is not a map level; choose {' or '.join(LEVELS)}")
    if level == "class":
        return card, None
    if not card_macroclasses(card):
        raise ClaireError("--level macroclass: this checkpoint has no macroclasses; train one from polygons with a "
                          "macroclass field (--macro-field), or map its classes with --level class")
    view = macro_view(card)
    return view, Grouping(np.array(view["class_groups"], dtype=np.int64), len(view["classes"]),
                          card_temperature(card), card_temperature(card, sar_only=True))


def class_colors(card: dict) -> Dict[int, tuple]:
    """{value: (r, g, b)} from the card's colours, generated where missing (models.palette)."""
    from ....models.palette import classes_with_colors

    return {int(c["value"]): tuple(int(c["color"][k:k + 2], 16) for k in (1, 3, 5))
            for c in classes_with_colors(card)}


def reference_lut(classes: List[dict], ref_nodata, card: Optional[dict] = None) -> np.ndarray:
    """Lookup from reference value (0..65535) to class index, -1 for ignored values. For a map of macroclasses
    (`card` seen through models.macroclass.macro_view) the reference holds the checkpoint's class values, each
    counted as its macroclass."""
    lut = np.full(65536, -1, dtype=np.int16)
    if card is not None and card.get("class_groups") is not None:
        for value, group in zip(card["class_values"], card["class_groups"]):
            lut[int(value)] = int(group)
    else:
        for k, c in enumerate(classes):
            lut[int(c["value"])] = k
    if ref_nodata is not None and float(ref_nodata).is_integer() and 0 <= ref_nodata < 65536:
        lut[int(ref_nodata)] = -1
    return lut


def plan_run(params: ClassifyParams, model, card: dict, device, messages: List[str], cache) -> RunPlan:
    """Everything a run needs before its first tile, its notes appended to `messages`; `cache` is the
    run's io.block_cache.CacheSize. On failure, what it opened is closed and nothing is left written."""
    model_classes = len(card_classes(card))
    card, groups = level_card(card, params.level)
    classes = card_classes(card)
    plan = RunPlan(params, card, classes, model, device, *resolve_tiling(params, card), model_classes=model_classes)
    if groups is not None:
        import torch

        plan.groups = groups._replace(index=torch.as_tensor(groups.index, dtype=torch.long, device=device))
    try:
        _open_inputs(plan, messages)
        _out_window(plan, messages)
        _prepare(plan, messages)
        plan.model = model.to(device).eval()
        _fit_memory(plan, messages)
        _cloud(plan, messages)
        _familiarity(plan, messages)
        _runtime(plan, messages)
        _outputs(plan)
        busy = other_writers(plan.params.output)
        if busy:
            messages.append(f"warning: another CLAIRE run (process {', '.join(map(str, busy))}) is writing "
                            f"{plan.params.output} at the same time: the run that finishes last replaces the "
                            f"other's map; give each run its own output")
        _schedule(plan, messages, cache)
        return plan
    except BaseException:
        for w in plan.outputs.writers if plan.outputs is not None else []:
            w.abort()
        plan.close()
        raise


def _runtime(plan: RunPlan, messages: List[str]) -> None:
    """The model behind the runtime the run asks for (core.runtime.compiled; eager where that one is not
    available or did not pass its check), built for the cloud probability of a cloud-gated model and the
    features of familiarity statistics. After the memory check, which measures the eager model."""
    from ..runtime.compiled import prepare

    channels = (len(plan.optical_bands.indices), len(plan.sar_bands.indices))
    th, tw = plan.grid.shape
    asked = plan.params.runtime
    if th != tw:  # a raster narrower than one tile window on one side: one odd window, run eager
        plan.runtime = "eager"
        note = (f"runtime: eager (the forward window {th} x {tw} px is not square: the raster is smaller than one "
                f"tile window on one side)")
    else:
        chosen = prepare(plan.model, plan.card, plan.device, asked, th, plan.batch, channels, cloud=plan.uses_cloud,
                         features=plan.familiar is not None)
        plan.model, plan.runtime, note = chosen.model, chosen.name, chosen.note
    if asked not in ("auto", "eager", plan.runtime):  # asked for by name and not given: said, not only noted
        messages.append(f"warning: --runtime {asked} was asked for but is not used here; {note}")
    else:
        messages.append(note)


def _open_inputs(plan: RunPlan, messages: List[str]) -> None:
    """Open the optical and SAR rasters and the reference (both on the optical grid), choose the bands."""
    params, cfg = plan.params, plan.card.get("config") or {}
    opt = rio.open_raster(params.optical, "optical")
    plan.opened.append(opt)
    sar = rio.open_raster(params.sar, "SAR")
    plan.opened.append(sar)
    same = same_raster_message(params.optical, params.sar, params.optical_bands, params.sar_bands)
    if same:
        raise ClaireError(same)
    rio.require_crs(opt, "optical")
    rio.require_crs(sar, "SAR")
    plan.optical_spec = InputSpec.from_card(plan.card, "optical", cfg.get("optical_channels"))
    plan.sar_spec = InputSpec.from_card(plan.card, "sar", cfg.get("sar_channels"))
    plan.optical_bands = choose_raster_bands(opt, "optical", plan.optical_spec.bands, params.optical_bands,
                                             cfg.get("optical_channels"), "--optical-bands")
    plan.sar_bands = choose_raster_bands(sar, "SAR", plan.sar_spec.bands, params.sar_bands, cfg.get("sar_channels"),
                                         "--sar-bands")
    messages += [plan.optical_bands.describe("optical"), plan.sar_bands.describe("SAR")]
    warning = resolution_warning(opt, plan.card)
    if warning:
        messages.append(warning)
    scale = rio.area_scale(opt)
    if scale != 1.0:
        messages.append(f"areas: the optical grid's projection ({opt.crs.to_string()}) stretches or shrinks its "
                        f"metres here; a pixel covers {rio.pixel_area_m2(opt):.4g} m² of ground at the scene's centre "
                        f"(x {scale:.3f} of its grid area), and the areas use that")
    plan.region = rio.overlap_window(opt, sar)
    covered = plan.region.width * plan.region.height / (opt.width * opt.height)
    if covered < 1.0:
        messages.append(f"the SAR covers {100 * covered:.1f} % of the optical raster: only that part is classified, "
                        f"the rest is written as nodata (give a SAR that covers the whole optical raster for a "
                        f"full map)")
    cut = rio.data_window(opt, sar, plan.region)
    if cut is not None:
        plan.region = cut
        messages.append("around the pixels where either raster has data both are nodata: that frame is left out "
                        "(written as nodata) and the model's windows are fitted to the data")
    if params.reference:
        ref_ds = rio.open_raster(params.reference, "reference")
        plan.opened.append(ref_ds)
        rio.require_crs(ref_ds, "reference")
        rio.overlap_window(opt, ref_ds, "reference")
        from ..accuracy import check_reference  # one band of codes, some of them the map's classes

        check_reference(ref_ds, opt, params.reference, reference_lut(plan.classes, ref_ds.nodata, plan.card))
        if plan.card.get("class_groups") is None:  # a macroclass map's reference holds the classes' values
            from ..accuracy import legend_conflict_note

            note = legend_conflict_note(plan.classes, params.reference,
                                        "CLASS_MAPPING of the Processing tool claire:evaluate, in QGIS or "
                                        "through qgis_process, with the map this run writes")
            if note:
                messages.append(note)
        plan.reference, plan.reference_nodata = rio.warp_to_grid(ref_ds, opt, "nearest"), ref_ds.nodata
        plan.opened.append(plan.reference)
    apart = date_gap_warning((params.optical, opt.tags()), (params.sar, sar.tags()))
    if apart:
        messages.append(apart)
    plan.opt, plan.sar, plan.sar_vrt = opt, sar, rio.warp_to_grid(sar, opt, "bilinear", scaled=True)
    plan.opened.append(plan.sar_vrt)
    if sar.crs != opt.crs or sar.transform != opt.transform or sar.shape != opt.shape:
        s_px, o_px = (math.sqrt(rio.pixel_area_m2(ds)) for ds in (sar, opt))
        crs = f"SAR CRS {sar.crs}, optical CRS {opt.crs}" if sar.crs != opt.crs else f"CRS {opt.crs}"
        messages.append(f"SAR is warped onto the optical grid on the fly (bilinear; {crs}; SAR pixels {s_px:.3g} m, "
                        f"optical {o_px:.3g} m)")
        coarse = sar_resolution_warning(s_px, o_px, plan.card)
        if coarse:
            messages.append(coarse)


def masked_everywhere(ds, bands: Sequence[int] = ()) -> bool:
    """Whether `ds` has a dataset mask (io.warp.has_dataset_mask) that marks every pixel as no data (read at most
    64 px a side: a mask created and never written)."""
    from ..io.warp import has_dataset_mask

    if not has_dataset_mask(ds, bands):
        return False
    f = max(1, -(-max(ds.height, ds.width) // 64))
    try:
        return not ds.dataset_mask(out_shape=(-(-ds.height // f), -(-ds.width // f))).any()
    except Exception:  # noqa: BLE001 - unreadable here: the run's own reads say why
        return False


def _prepare(plan: RunPlan, messages: List[str]) -> None:
    """Check both inputs have valid pixels, build their normalisers from samples and the tile grid."""
    opt, sar_vrt, region = plan.opt, plan.sar_vrt, plan.region
    oc, sc = plan.optical_bands, plan.sar_bands
    s_sample = rio.sample(sar_vrt, sc.indices, region)
    o_sample = rio.sample(opt, oc.indices, region)
    for role, smp, src, idx, nd in (("SAR", s_sample, sar_vrt, sc.indices, None),
                                    ("optical", o_sample, opt, oc.indices, opt.nodata)):
        if not valid_pixels(smp, nd).any() and not rio.has_valid_data(src, idx, region, nd):
            require_valid_pixels(smp, role, nd, idx)
    radiometry = optical_radiometry(opt, oc.indices, plan.params.optical_offset)
    plan.optical_prep = optical_preparer(plan.optical_spec, len(oc.indices), opt.dtypes[oc.indices[0] - 1], o_sample,
                                         radiometry, opt.nodata)
    unchecked = check_spectral_order(oc, opt.count, plan.optical_prep.physical(o_sample.astype(np.float32)))
    plan.sar_prep = sar_preparer(plan.sar_spec, len(sc.indices), s_sample, rio.metadata_text(plan.sar, sc.indices),
                                 plan.params.sar_units, plan.sar.dtypes[sc.indices[0] - 1], sc.method,
                                 rio.band_metadata_texts(plan.sar, sc.indices))
    sar_vrt.set_sar_units(sar_fill_units(plan.sar_spec, plan.sar_prep.to_db))  # as in training
    messages += plan.optical_prep.notes + ([unchecked] if unchecked else []) + plan.sar_prep.notes
    messages += constant_band_warnings(o_sample, oc.names, s_sample, sc.names)  # as read: a clip makes constants
    if masked_everywhere(opt, oc.indices):
        messages.append("warning: the optical raster's mask (an internal mask or an alpha band) marks every pixel as "
                        "no data, so the map comes from SAR alone; if the mask is wrong, write the raster without it "
                        "(gdal_translate -mask none)")
    said = calibration_warning(rio.sar_names(plan.sar, sc.indices, plan.params.sar), plan.card)
    if said:
        messages.append(said)


def _grid(plan: RunPlan, tile: int) -> None:
    """The tile grid over the region with cores of at most `tile` px (fitted; a row window's tile rows)."""
    region = plan.region
    grid = plan.grid = TileGrid.fitted(int(region.row_off), int(region.col_off), int(region.height),
                                       int(region.width), tile, plan.context)
    plan.tile = grid.tile
    if plan.out_rows is not None or plan.out_cols is not None:
        plan.grid, plan.keep_rows, plan.keep_cols = window(grid, plan.out_rows, plan.out_cols)


#: Largest cores tried, in order, when the default does not fit in memory (the run's own is never changed).
SMALLER_TILES = (768, 512, 384, 256)


def _fit_memory(plan: RunPlan, messages: List[str]) -> None:
    """The grid, checked against the memory left (memory_fit.check_fits). With the default tile size, a
    smaller core that fits is taken instead of refusing (a note says so); a tile size the run asked for is
    refused with the sizes that fit."""
    channels = (len(plan.optical_bands.indices), len(plan.sar_bands.indices))
    chosen = plan.tile
    lanes = schedule.forward_lanes(plan.device, plan.model)  # the eager model's; _schedule settles it
    tries = [(chosen, n) for n in range(lanes, 0, -1)]
    tries += [(t, 1) for t in SMALLER_TILES if t < chosen] if not plan.params.tile_size else []
    for k, (tile, plan.lanes) in enumerate(tries):
        _grid(plan, tile)
        plan.lanes = min(plan.lanes, max(1, plan.grid.n_chunks(plan.tiles_per_chunk)))  # no more than the run has
        try:
            note = check_fits(plan.model, plan.device, plan.tile, plan.context, plan.batch, channels,
                              len(plan.classes) + 1, lanes=plan.lanes)
            break
        except ClaireError:
            if k == len(tries) - 1:
                raise
    if tile != chosen:
        messages.append(f"tile size lowered from {chosen} to {tile} px so that the run fits in the memory left")
    if note:
        messages.append(note)
    grid, opt = plan.grid, plan.opt
    th, tw = grid.shape
    whole = len(grid.row_axis[0]) == 1 and len(grid.col_axis[0]) == 1
    tiles = (f"one window of {th} x {tw} px (the region is smaller than a tile)" if whole else
             f"{grid.n_tiles} tiles keeping {plan.tile} px cores with {plan.context} px of context (windows of "
             f"{th} x {tw} px)")
    messages.append(f"processing the overlap: rows {grid.row0}..{grid.row0 + grid.height - 1}, cols "
                    f"{grid.col0}..{grid.col0 + grid.width - 1} of {opt.height} x {opt.width}; {tiles}, "
                    f"batch {plan.batch}")


def _cloud(plan: RunPlan, messages: List[str]) -> None:
    """Whether the cloud probability (models.cloud) can be computed from the chosen optical bands, whether
    the model takes it (models.card_schema.takes_cloud) and whether optical gaps are filled from SAR."""
    from ....models.card_schema import takes_cloud
    from ....models.cloud import missing_bands

    names = list(plan.optical_bands.names)
    missing = missing_bands(names)
    plan.cloud_bands = None if missing else names
    gated = bool((plan.card.get("config") or {}).get("cloud_gate"))
    plan.uses_cloud = takes_cloud(plan.card)
    if missing:
        asked = plan.params.cloud  # an output the user named is not written: said even with --quiet
        messages.append(("warning: " if asked else "") + f"no cloud probability: the optical bands lack "
                        f"{', '.join(missing)}" + ("; the cloud raster you asked for is not written" if asked else ""))
    _snow_check(plan, missing, messages)
    plan.fill_from_sar = bool(plan.params.fill_from_sar) and gated
    if plan.params.fill_from_sar and not gated:
        messages.append("this model has no cloud gate, so pixels without optical data cannot be classified from "
                        "SAR alone: they stay nodata")


def _snow_check(plan: RunPlan, cloud_missing: List[str], messages: List[str]) -> None:
    """The classes the snow check (models.cloud.snow_possible) applies to: the card's snow / ice classes, when it
    is asked for and the optical has the bands it needs (those of the cloud probability)."""
    from ....models.cloud import checked_snow_classes, snow_classes

    names = [c["name"] for c in plan.classes]
    found = snow_classes(names)
    plan.snow_classes = checked_snow_classes(names, plan.optical_bands.names) if plan.params.snow_check else []
    if found and plan.params.snow_check and cloud_missing:
        messages.append(f"no snow check: the optical bands lack {', '.join(cloud_missing)}, so "
                        f"{', '.join(plan.classes[k]['name'] for k in found)} is not checked against the optical")


def _familiarity(plan: RunPlan, messages: List[str]) -> None:
    """The card's familiarity statistics on the device (models.familiarity), or a note why there are none."""
    fam = plan.card.get("familiarity")
    if not fam:
        from ..explain.facts import trained_on_labels

        why = (plan.card.get("training") or {}).get("familiarity")
        if trained_on_labels(plan.card):
            messages.append(f"warning: this checkpoint, trained on your labels, cannot tell where a scene is unlike "
                            f"its training data (familiarity {why or 'not measured'}): compare the map with imagery, "
                            f"above all away from the area it was trained on"
                            + ("; the unfamiliar raster you asked for is not written" if plan.params.unfamiliar
                               else ""))
        elif plan.params.unfamiliar:
            messages.append("warning: the checkpoint's card has no familiarity statistics, so this run cannot tell "
                            "where the scene is unlike the training data; the unfamiliar raster you asked for is not "
                            "written")
        return
    from ....models.familiarity import card_tensors

    try:
        plan.familiar = card_tensors(fam, plan.device)
    except (KeyError, TypeError, ValueError) as exc:
        raise ClaireError(f"the checkpoint card's familiarity entry is unreadable ({exc}); re-export the "
                          f"checkpoint") from None


def _out_window(plan: RunPlan, messages: List[str]) -> None:
    """The optical-grid rows and columns the outputs cover: `params.rows` (a part of a split run) and the pixels
    `params.extent` touches within the region. The tiles stay the whole region's (tiling.window), so the
    pixels are those of a run over the whole region."""
    params, region = plan.params, plan.region
    rows = _check_rows(params.rows, plan.opt.height) if params.rows is not None else None
    cols = None
    if params.extent is not None:
        win = rio.extent_window(plan.opt, params.extent)
        r0, c0 = int(region.row_off), int(region.col_off)
        er = (max(int(win.row_off), r0), min(int(win.row_off + win.height), r0 + int(region.height)))
        cols = (max(int(win.col_off), c0), min(int(win.col_off + win.width), c0 + int(region.width)))
        if rows is not None:
            er = (max(er[0], rows[0]), min(er[1], rows[1]))
        if er[1] <= er[0] or cols[1] <= cols[0]:
            raise ClaireError(
                f"the extent (--extent) {_extent_text(params.extent)} holds no pixel where the optical and SAR "
                f"rasters overlap with data (optical rows {r0}..{r0 + int(region.height) - 1}, columns "
                f"{c0}..{c0 + int(region.width) - 1}); give an extent over both rasters' data")
        rows = er
        messages.append(f"classifying the extent only: optical rows {er[0]}..{er[1] - 1}, columns {cols[0]}.."
                        f"{cols[1] - 1} ({er[1] - er[0]} x {cols[1] - cols[0]} px), the same pixels as a run over "
                        f"the whole overlap")
    plan.out_rows, plan.out_cols = rows, cols


def _extent_text(extent) -> str:
    """XMIN,YMIN,XMAX,YMAX as a user would type them: up to 10 significant digits, never exponents (a UTM northing
    read 7.1958e+06 with the default format)."""
    return ",".join(f"{float(v):.10g}" if abs(float(v)) < 1e10 else f"{float(v):.1f}" for v in extent)


def _check_rows(rows, height: int) -> Tuple[int, int]:
    """(start, stop) as ints; ClaireError unless 0 <= start < stop <= height."""
    start, stop = int(rows[0]), int(rows[1])
    if not 0 <= start < stop <= height:
        raise ClaireError(f"the row window {start}..{stop} is not inside the optical raster's {height} rows; give "
                          f"0 <= start < stop <= {height}")
    return start, stop


def _outputs(plan: RunPlan) -> None:
    """`plan.outputs`: the class and confidence writers (temporary files until the commit), the summary and
    the reference lookup; the reliance writer comes once the model shows a SAR share."""
    params, opt, nodata = plan.params, plan.opt, int(plan.card.get("nodata", 0))
    outputs = plan.outputs = Outputs(plan.writer(params.output, "uint8", nodata, DESCRIPTIONS["class"]),
                                     None, None, np.array([int(c["value"]) for c in plan.classes], dtype=np.uint8),
                                     nodata, None, keep_rows=plan.keep_rows, keep_cols=plan.keep_cols,
                                     temperature=card_temperature(plan.card), snow_classes=list(plan.snow_classes),
                                     sar_only_temperature=card_temperature(plan.card, sar_only=True))
    if params.confidence:
        outputs.confidence = plan.writer(params.confidence, "uint8", UINT8_NODATA,
                                         DESCRIPTIONS["confidence"])
    outputs.has_distance = plan.familiar is not None
    outputs.has_group_confidence = plan.groups is not None
    if params.unfamiliar and plan.familiar is not None:
        outputs.unfamiliar = plan.writer(params.unfamiliar, "uint8", UINT8_NODATA,
                                         DESCRIPTIONS["unfamiliar"])
    if params.cloud and plan.cloud_bands is not None:
        outputs.cloud = plan.writer(params.cloud, "uint8", UINT8_NODATA, DESCRIPTIONS["cloud"])
    outputs.summary = SummaryAccumulator(plan.classes, rio.pixel_area_m2(opt),
                                         outputs.classes.width * outputs.classes.height)
    outputs.reference = plan.reference
    outputs.reference_lut = reference_lut(plan.classes, plan.reference_nodata, plan.card)
    outputs.reference_nodata = plan.reference_nodata
    outputs.reference_path = params.reference or ""
    # label values the checkpoint's training ignored (WHU-OPT-SAR's 0, not labelled) are no classes it left out
    outputs.reference_ignored = [int(v) for v in (plan.card.get("training") or {}).get("ignored_label_values") or []]


def _schedule(plan: RunPlan, messages: List[str], cache) -> None:
    """Forward lanes (schedule.forward_lanes: at most those the memory check allowed, none where the chosen
    runtime holds the GIL), reader threads beside the model (one beside lanes, else schedule.worker_threads)
    and the GDAL block cache they need."""
    most = schedule.forward_lanes(plan.device, plan.model)
    windows = max(1, plan.grid.n_chunks(plan.tiles_per_chunk))  # what a lane takes: a chunk of tiles
    plan.lanes = min(plan.lanes, most, windows)
    if plan.lanes > 1:
        plan.readers = 1
    else:
        plan.readers, why = schedule.worker_threads(plan.device)
        messages.append(why)
    if most > 1:
        messages.append(schedule.lanes_note(plan.lanes, most, windows))
    n = max(1, plan.readers)
    inputs = [("optical", plan.opt, plan.optical_bands.indices, n), ("SAR", plan.sar_vrt, plan.sar_bands.indices, n)]
    if plan.reference is not None:
        inputs.append(("reference", plan.reference, [1], 1))  # read by the post-processing thread
    note = cache.fit(inputs, plan.grid)
    if note:
        messages.append(note)
