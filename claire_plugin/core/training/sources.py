"""Training and evaluation data, QGIS-free: a data folder's pairs, classes and input specs (`claire train`,
`claire evaluate` and `claire fusion-table` read their data through here)."""
from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

from ....models.quoting import clean_name, quoted
from ..errors import ClaireError


def plain_images_allowed(func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` run without rasterio's NotGeoreferencedWarning (twice per file): a dataset's tiles are often plain
    images (ASANet's crops, written by OpenCV), paired by name and size, which needs no georeferencing."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from rasterio.errors import NotGeoreferencedWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return func(*args, **kwargs)
    return wrapper


def parse_label_values(text: Optional[str]) -> Optional[List[int]]:
    """'0,8', '0;8' or '0 8' -> [0, 8] (label values, so 0 is allowed); empty -> None."""
    from ..accuracy import parse_values

    return parse_values(str(text), "--ignore") or None if text else None


def parse_classes(text: str):
    """'1:water:#419bdf,2:trees' -> [ClassDef]; ClaireError for a bad entry. An entry ends at the comma before the
    next value (a name may hold commas: "243:Land principally occupied by agriculture, with significant
    areas of natural vegetation")."""
    import re

    from .datasets import ClassDef

    out = []
    for item in re.split(r",\s*(?=-?\d+\s*:)", text.strip()):
        value, sep, rest = item.strip().partition(":")
        if not sep or not value.strip().lstrip("-").isdigit():
            raise ClaireError(f"--classes: bad class entry {quoted(item)}: use value:name[:#rrggbb], e.g. "
                              f"1:water:#419bdf")
        name, sep, color = rest.rstrip().rstrip(",").partition(":")  # the colour is checked with the names
        if not clean_name(name):  # a card of an unnamed class was refused by the next `claire info`
            raise ClaireError(f"--classes gives code {int(value)} an empty name; write value:name, e.g. "
                              f"1:water:#419bdf")
        out.append(ClassDef(int(value), clean_name(name), color.strip() if sep else None))
    return out


def classdefs_from_card(card: dict) -> list:
    """The classes of a model card as ClassDef records."""
    from .datasets import ClassDef

    return [ClassDef(int(c["value"]), c["name"], c.get("color")) for c in card["classes"]]


def resolve_data(data: str, layout_name: str, split: str, holdout: float, optical_bands=None, sar_bands=None,
                 classes_text=None, ignore_text=None, sar_linear=False, classes_override=None):
    """Pairs + SampleSource + layout for a data folder."""
    from .data_checks import check_grids, check_regions
    from .datasets import (
        LAYOUTS,
        ClassDef,
        RasterPairSource,
        check_eight_bit,
        detect_layout,
        list_pairs,
        scan_label_values,
    )

    name = detect_layout(data) if layout_name == "auto" else layout_name
    if name not in LAYOUTS:
        raise ClaireError(f"unknown layout {quoted(name)}; choose one of auto, {', '.join(LAYOUTS)}")
    layout = LAYOUTS[name]
    pairs = list_pairs(data, name, split=split, holdout=holdout)
    ignore = (parse_label_values(ignore_text) or []) if ignore_text is not None else list(layout.ignore)
    if classes_override is not None:
        classes = classes_override
    elif classes_text:
        classes = parse_classes(classes_text)
    elif layout.classes:
        classes = list(layout.classes)
    else:
        classes = [ClassDef(v, f"class_{v}") for v in scan_label_values(pairs, ignore) if v != 255]
        if not classes:
            raise ClaireError(f"the label rasters in {data} hold no class values; check the labels/ folder")
    check_grids(pairs)
    check_regions(pairs, "training" if split == "train" else "evaluation")
    check_eight_bit(pairs, layout, name)
    ob = optical_bands if optical_bands is not None else layout.optical_bands
    src = RasterPairSource(pairs, classes, ignore, ob, sar_bands, sar_linear_to_db=sar_linear)
    src.sar_units = layout.sar_units
    return name, layout, pairs, src, classes, ignore


def input_specs(layout, pairs, optical_bands, sar_bands, optical_scale, sar_linear):
    """(optical spec, SAR spec) of a data folder: band names, sensor, units and scale (statistics not yet measured)."""
    from ....models import spec
    from .datasets import band_names

    ob = optical_bands if optical_bands is not None else layout.optical_bands
    same = layout.optical_names and ob == layout.optical_bands
    onames = layout.optical_names if same else band_names(pairs[0].optical, ob)
    snames = layout.sar_names or band_names(pairs[0].sar, sar_bands)
    scale = optical_scale if optical_scale is not None else (
        layout.optical_scale if layout.optical_scale is not None else inferred_optical_scale(pairs[0], ob))
    ospec = spec.optical_spec(onames, sensor=layout.optical_sensor, scale=scale, units=layout.optical_units)
    sunits = "dB" if sar_linear else layout.sar_units
    sspec = spec.sar_spec(snames, sensor=layout.sar_sensor, units=sunits, scale=layout.sar_scale,
                          clip=layout.sar_clip)
    return ospec, sspec


#: Fewest independent 32 px cells with data in the training windows for familiarity statistics: 4 x the rank of
#: their low-rank fit (models.familiarity.RANK, 64), a rule of thumb. On fewer the fit spans the cells themselves
#: and the distance flags anything else: on the 120 px farmland patch (16 cells) a change of padding alone moved
#: the median ratio from 0.36 to 1.56, and the engine flagged 100 % of the scene the model was trained on.
MIN_FAMILIAR_CELLS = 256


def counting_cells(items: Iterable[tuple], count: List[int]) -> Iterator[tuple]:
    """`items` unchanged; `count[0]` grows by the 32 px cells whose centre has data (the item's mask)."""
    for item in items:
        count[0] += int(np.asarray(item[3], bool)[16::32, 16::32].sum())
        yield item


def too_few_cells(cells: int, where: str, area: str = "") -> Optional[str]:
    """Why familiarity statistics are not measured on `cells` cells of 32 px with data (`where`: what holds them,
    with its verb, "the training images hold"; `area`: what the size hint counts), or None."""
    if cells >= MIN_FAMILIAR_CELLS:
        return None
    side = int((MIN_FAMILIAR_CELLS * 32 * 32) ** 0.5)
    return (f"not measured: {where} {cells} cells of 32 px, fewer than the {MIN_FAMILIAR_CELLS} (about {side} x "
            f"{side} px{area}) the statistics need")


def card_familiarity(model, src, vsrc, ospec: dict, sspec: dict, device: str = "cpu") -> Tuple[Optional[dict], str]:
    """(the card's `familiarity` (models.familiarity), a note): bottleneck feature statistics over the training
    pixels of `src`, threshold calibrated on the held-out pixels of `vsrc` (the training pixels when there is no
    hold-out, noted in the dict); both classified inside their image (EVAL_CONTEXT), as the engine does. None when
    the training images hold fewer than MIN_FAMILIAR_CELLS cells (a 32 px image's fit flagged the image it was
    trained on as 100 % unlike its training data)."""
    from ....models.familiarity import familiarity, prepared

    uses_cloud = bool(getattr(model, "uses_cloud", False))
    heldout = vsrc if vsrc is not None else src
    from .datasets import EVAL_CONTEXT

    cells = [0]
    fam = familiarity(model.to(device), counting_cells(prepared(src.eval_items(context=EVAL_CONTEXT), ospec, sspec,
                                                                uses_cloud), cells),
                      prepared(heldout.eval_items(context=EVAL_CONTEXT), ospec, sspec, uses_cloud), device=device)
    where, area = (("the training images (their training part) hold", " of labelled training area, after the hold-out")
                   if vsrc is not None else ("the training images hold", " of labelled area"))
    why = too_few_cells(cells[0], where, area)
    if why:
        return None, why
    fam["calibrated_on"] = "heldout" if vsrc is not None else "training_data"
    return fam, (f"{fam['pixels']} training pixels, threshold {fam['threshold']:.3f} (0.99 quantile of "
                 f"{fam['heldout_pixels']} {'held-out' if vsrc is not None else 'training'} pixels)")


def inferred_optical_scale(pair, bands) -> float:
    """Raw optical -> reflectance when nothing declares it: 1e-4 for integer rasters; for floats the engine's
    rule (reflectance already, or reflectance x 10000 stored as floats)."""
    import rasterio

    from .data_checks import float_optical_scale
    from .datasets import default_optical_scale

    if default_optical_scale(pair.optical) != 1.0:
        return default_optical_scale(pair.optical)
    with rasterio.open(pair.optical) as ds:
        return float_optical_scale(ds, pair.optical_bands or bands)[0]


def round_metrics(m: Dict[str, Any], reason: str = "no labelled pixel was evaluated") -> Dict[str, Any]:
    """Metrics with floats rounded to 4 digits (for cards and JSON output). A value that is not a finite
    number (NaN: no pixel to measure) becomes None, and `undefined` lists those keys with `reason`, so the
    JSON stays valid and says why."""
    undefined: List[str] = []

    def r(v, key):
        if isinstance(v, float) and not math.isfinite(v):
            undefined.append(key)
            return None
        return round(v, 4) if isinstance(v, float) else v
    out = {k: r(v, k) for k, v in m.items() if k != "per_class"}
    out["per_class"] = [{k: r(v, f"per_class.{c.get('name')}.{k}") for k, v in c.items()}
                        for c in m.get("per_class", [])]
    if undefined:
        out["undefined"] = {"metrics": undefined, "reason": reason}
    return out


def heldout_metrics(model, vsrc, key: str, ospec: Dict, sspec: Dict, names, device: str) -> Dict[str, Any]:
    """Clear and synthetic-cloud metrics of the hold-out; with several optical folders (terramesh-levels)
    `key` covers the first one (the comparable figure) and `key`_<folder> each further one."""
    from ....models.training import evaluate
    from .datasets import EVAL_CONTEXT

    folders = list(dict.fromkeys(p.optical_folder for p in vsrc.pairs))
    out: Dict[str, Any] = {}
    for i, folder in enumerate(folders):
        group = [p for p in vsrc.pairs if p.optical_folder == folder]
        suffix = "" if i == 0 else f"_{folder}"
        for corruption, tail in (("clear", ""), ("clouds", "_synthetic_clouds")):
            items = vsrc.eval_items(group, context=EVAL_CONTEXT)
            m = evaluate(model, items, ospec, sspec, names, corruption, device=device)
            out[f"{key}{suffix}{tail}"] = round_metrics(m, "no labelled pixel of the classes in the held-out part")
    return out
