"""When the optical and the SAR were taken, as their metadata or names say it (QGIS-free).

The fusion assumes one ground seen twice: an optical of before a flood or a harvest beside a SAR of after it
disagree wherever the ground changed, and where the optical is clear it usually wins. Nothing in the values tells
the dates apart, so a run names them when both rasters say a date and the dates lie far apart.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from typing import List, Optional, Sequence, Tuple

#: Dates more than this many days apart are named: one Sentinel-1 repeat cycle (12 days).
MAX_DAYS_APART = 12

#: Metadata keys that hold an acquisition date or time (Sentinel-2 and -1 products, GDAL drivers, exports).
_DATE_KEYS = re.compile(r"^(acquisition_?date|acquisition_?start|datatake_1_datatake_sensing_start|sensing_?time|"
                        r"product_start_time|first_line_time|start_?time|date_?acquired|acquired|datetime)$",
                        re.IGNORECASE)
_DATE = re.compile(r"(?<!\d)(20\d\d|19\d\d)[-_]?(0[1-9]|1[0-2])[-_]?(0[1-9]|[12]\d|3[01])(?!\d)")


#: ESA's product names (S2B_MSIL2A_<sensing>_N0510_R008_T32TQM_<processing>, S1A_IW_GRDH_1SDV_<start>_<stop>_...):
#: their first date is when the ground was seen; a later one is when the product was made.
#: Also behind SNAP's subset_0_of_ and the like, and a granule's T33UUP_<sensing>_... names.
_SENTINEL = re.compile(r"(?<![A-Za-z0-9])(S[12][A-D]_|T\d\d[A-Z]{3}_)", re.IGNORECASE)


def _dates(text: str) -> List[Tuple[int, dt.date]]:
    """(position, date) of every calendar date written in `text`, in order."""
    found = []
    for m in _DATE.finditer(text):
        try:
            found.append((m.start(), dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))))
        except ValueError:
            continue
    return found


def _one_date(text: str) -> Optional[dt.date]:
    """The date `text` says: the first one after an ESA product name's start (its sensing date), else the only
    date written in it; None when it says none, or several without a product name to tell which."""
    found = _dates(text)
    esa = _SENTINEL.search(text)
    after = [d for at, d in found if esa is not None and at >= esa.end()]
    if after:
        return after[0]
    distinct = {d for _, d in found}
    return distinct.pop() if len(distinct) == 1 else None


#: Folders whose name says when their files were taken: a SAFE, a SNAP product's .data, an ESA product's name.
_PRODUCT_FOLDER = re.compile(r"(\.safe|\.data)$", re.IGNORECASE)


def acquisition_date(path: str, tags: Optional[dict] = None) -> Optional[Tuple[dt.date, str]]:
    """(date, where it was read) of a raster: a date tag of its metadata, else the date its file name says, else
    its product folder's (a SAFE's or an ESA-named folder's band files; not any folder: an export folder's date is
    not the scene's); None when none is said or several without telling which."""
    for key, value in (tags or {}).items():
        if _DATE_KEYS.match(str(key)):
            day = _one_date(str(value))
            if day is not None:
                return day, f"its {key} tag"
    name = os.path.basename(str(path))
    if _dates(name):
        day = _one_date(name)
        return (day, f"its name {name}") if day is not None else None
    folder = os.path.basename(os.path.dirname(os.path.abspath(str(path))))
    if _PRODUCT_FOLDER.search(folder) or _SENTINEL.search(folder):
        day = _one_date(folder)
        if day is not None:
            return day, f"its folder's name {folder}"
    return None


def date_gap_warning(optical: Sequence, sar: Sequence) -> Optional[str]:
    """A warning when the optical and the SAR (each `(path, tags)`) say dates more than MAX_DAYS_APART apart;
    None when either says none."""
    o, s = acquisition_date(*optical), acquisition_date(*sar)
    if o is None or s is None:
        return None
    days = abs((o[0] - s[0]).days)
    if days <= MAX_DAYS_APART:
        return None
    return (f"warning: the optical is of {o[0].isoformat()} ({o[1]}) and the SAR of {s[0].isoformat()} ({s[1]}), "
            f"{days} days apart: where the ground changed between them (a flood, a harvest, a clearing) the two "
            f"disagree, and where the optical is clear it usually decides; give rasters of dates close together")
