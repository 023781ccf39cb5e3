"""Numbers as people type them, whatever the locale of their QGIS: a decimal comma or point, group separators
(spaces, points or commas), a Unicode minus. One reader for the dock's text fields and Processing's text values,
and one writer of large numbers for what people read (`grouped`)."""
from __future__ import annotations

import math
from typing import Optional

_SPACES = (" ", "\u00a0", "\u202f", "\u2009")  # space, no-break, narrow no-break (QGIS's fr_FR group), thin


#: Group separator of numbers written for people: a narrow no-break space, as the SI writes 2 007.5 ha. A comma
#: ("2,007.5") reads as about 2 to readers whose decimal separator is the comma.
GROUP = "\u202f"


def grouped(value: float, decimals: int = 0) -> str:
    """`value` with `decimals` places and its thousands grouped by narrow spaces: '2\u202f007.5'."""
    text = f"{value:,}" if isinstance(value, int) and not decimals else f"{value:,.{decimals}f}"
    return text.replace(",", GROUP)


class AmbiguousNumberError(ValueError):
    """'-1.000' or '-1,000': minus one with a decimal separator, minus one thousand with a group separator."""


def counted(n: int, noun: str) -> str:
    """'1 epoch', '12 epochs' (a regular plural)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def parse_decimal(text: str) -> float:
    """`text` as a finite number: '-1000', '-1000,5', '-1000.5', '-1 000', '−1000', '-1.000,5', '-1,000.5'.
    AmbiguousNumberError for one '.' or ',' between 1-3 digits and exactly 3 ('-1.000': -1 or -1000?); ValueError
    for anything else that is not a finite number."""
    t = text.strip().replace("\u2212", "-")
    for space in _SPACES:
        t = t.replace(space, "")
    if "e" in t.lower() and "," not in t:  # '1.5e3': no group separator has an exponent
        value = float(t)
        if not math.isfinite(value):
            raise ValueError(text)
        return value
    points, commas = t.count("."), t.count(",")
    if points and commas:  # both: the last one is the decimal separator, the other groups
        decimal = "," if t.rfind(",") > t.rfind(".") else "."
        t = t.replace("." if decimal == "," else ",", "").replace(decimal, ".")
    elif points + commas == 1:
        whole, frac = t.replace(",", ".").split(".")
        digits = whole.lstrip("+-")
        if len(frac) == 3 and digits.isdigit() and 1 <= len(digits) <= 3 and digits != "0":  # '0.125' groups none
            raise AmbiguousNumberError(text)
        t = f"{whole}.{frac}"
    elif points + commas > 1:  # one separator repeated: groups of three only ('1.000.000')
        parts = t.replace(",", ".").split(".")
        if not (parts[0].lstrip("+-").isdigit() and all(len(p) == 3 and p.isdigit() for p in parts[1:])):
            raise ValueError(text)
        t = "".join(parts)
    value = float(t)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def offset_value(text: str, name: str) -> Optional[float]:
    """The optical offset typed as `text` (None when empty: the file's metadata decides); ValueError naming `name`
    and the fix. '-1.000' is refused as ambiguous: read as -1 it was a silently wrong map for a German user."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return parse_decimal(text)
    except AmbiguousNumberError:
        raise ValueError(f"{name} '{text}' could be minus one or minus one thousand (a decimal or a group "
                         f"separator); write it without a separator, e.g. -1000") from None
    except ValueError:
        raise ValueError(f"{name} '{text}' is not a number; leave it empty or write e.g. -1000") from None
