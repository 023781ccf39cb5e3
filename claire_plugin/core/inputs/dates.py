"""When the optical and the SAR were taken, as their metadata or names say it (QGIS-free).

The fusion assumes one ground seen twice: an optical of before a flood or a harvest beside a SAR of after it
disagree wherever the ground changed, and where the optical is clear it usually wins. Nothing in the values tells
the dates apart, so a run names them when both rasters say a date and the dates lie far apart.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from typing import Optional, Sequence, Tuple

#: Dates more than this many days apart are named: one Sentinel-1 repeat cycle (12 days).
MAX_DAYS_APART = 12

#: Metadata keys that hold an acquisition date or time (Sentinel-2 and -1 products, GDAL drivers, exports).
_DATE_KEYS = re.compile(r"^(acquisition_?date|acquisition_?start|datatake_1_datatake_sensing_start|sensing_?time|"
                        r"product_start_time|first_line_time|start_?time|date_?acquired|acquired|datetime)$",
                        re.IGNORECASE)
_DATE = re.compile(r"(?<!\d)(20\d\d|19\d\d)-?(0[1-9]|1[0-2])-?(0[1-9]|[12]\d|3[01])(?!\d)")


#: ESA's product names (S2B_MSIL2A_<sensing>_N0510_R008_T32TQM_<processing>, S1A_IW_GRDH_1SDV_<start>_<stop>_...):
#: their first date is when the ground was seen; a later one is when the product was made.
_SENTINEL = re.compile(r"^S[12][A-D]_", re.IGNORECASE)


def _dates_in(text: str) -> set:
    found = []
    for m in _DATE.finditer(text):
        try:
            found.append(dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))))
        except ValueError:
            continue
    return set(found[:1]) if found and _SENTINEL.match(text) else set(found)


def acquisition_date(path: str, tags: Optional[dict] = None) -> Optional[Tuple[dt.date, str]]:
    """(date, where it was read) of a raster: a date tag of its metadata, else the one date in its file name, else
    in its folder's name (a SAFE's band files); None when none or several dates are said."""
    for key, value in (tags or {}).items():
        if _DATE_KEYS.match(str(key)):
            dates = _dates_in(str(value))
            if len(dates) == 1:
                return dates.pop(), f"its {key} tag"
    folder = os.path.basename(os.path.dirname(os.path.abspath(str(path))))
    for name, where in ((os.path.basename(str(path)), "its name"), (folder, "its folder's name")):
        dates = _dates_in(name)
        if len(dates) == 1:
            return dates.pop(), f"{where} {name}"
        if dates:
            return None
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
