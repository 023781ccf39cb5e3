"""Pair optical and SAR rasters of two folders by file name (QGIS-free).

A pairing rule turns a file name into a *key*; an optical and a SAR file pair when their keys are equal, case aside
(the key is shown as the optical file spells it).

Rules (as typed by a user, see :func:`parse_rule`):

- ``""`` or ``"stem"``: identical file stem (``a.tif`` pairs with ``a.tiff``), case-insensitive.
- ``"_S2->_S1"``: replace ``_S2`` in the optical stem by ``_S1`` to get the SAR stem (several
  replacements may be separated by ``;``, e.g. ``"S2L2A->S1RTC;_opt->_sar"``).
- ``"regex:<pattern>"``: the key is the named group ``key`` (or else group 1, or else the whole
  match) of the pattern searched in each stem; files where it does not match stay unmatched.
- ``"nearest:<days>"`` or ``"nearest:<days>:<pattern>"``: a time series; each optical file pairs with the SAR
  file of the nearest date at most <days> apart (dates read from the names, core.inputs.dates), among those of
  the same key when a pattern gives one (e.g. the tile, ``(?P<key>T\\d\\d[A-Z]{3})``); a SAR file may serve
  several optical dates.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from ....models.quoting import quoted
from ..errors import ClaireError

#: File name endings read as rasters (lower case).
RASTER_EXTENSIONS = (".tif", ".tiff", ".vrt", ".img", ".jp2", ".nc")


@dataclass
class Pair:
    """One optical file and the SAR file it pairs with; ``key`` is the shared name key."""

    key: str
    optical: str
    sar: str


@dataclass
class Unmatched:
    """A file left without partner, and why."""

    path: str
    side: str  # "optical" or "sar"
    reason: str


@dataclass
class PairingResult:
    """Pairs found plus every file that could not be paired (with a reason)."""

    pairs: List[Pair] = field(default_factory=list)
    unmatched: List[Unmatched] = field(default_factory=list)

    @property
    def unmatched_optical(self) -> List[Unmatched]:
        """Optical files without a SAR partner."""
        return [u for u in self.unmatched if u.side == "optical"]

    @property
    def unmatched_sar(self) -> List[Unmatched]:
        """SAR files without an optical partner."""
        return [u for u in self.unmatched if u.side == "sar"]


@dataclass
class PairingRule:
    """Functions that map an optical / a SAR file stem to a key (``None``: no key)."""

    description: str
    optical_key: Callable[[str], Optional[str]]
    sar_key: Callable[[str], Optional[str]]
    #: a replacement rule's (optical parts, SAR parts): what tells the two apart in one folder
    sides: Optional[Tuple[Tuple[str, ...], Tuple[str, ...]]] = None
    #: a time series' rule: pair by the nearest date at most this many days apart within a key
    nearest_days: Optional[int] = None


def _stem(path: str) -> str:
    name = os.path.basename(path)
    return os.path.splitext(name)[0]


def parse_rule(text: Optional[str]) -> PairingRule:
    """Parse a user's pairing rule (see the module docstring); raise ClaireError when malformed."""
    text = (text or "").strip()
    if text == "" or text.lower() in ("stem", "same", "identical"):
        return PairingRule("identical file name (stem)", lambda s: s, lambda s: s)
    if text.lower().startswith("regex:"):
        pattern = text[len("regex:"):]
        try:
            rx = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ClaireError(
                f"The pairing pattern {quoted(pattern)} is not a valid regular expression ({exc}). "
                "Fix it, e.g. regex:(?P<key>\\d+D_\\d+[LR]_\\d_\\d)."
            ) from exc

        def key(stem: str) -> Optional[str]:
            m = rx.search(stem)
            if not m:
                return None
            if "key" in rx.groupindex:
                return m.group("key") or None
            return m.group(1) if rx.groups else m.group(0)

        return PairingRule(f"regular expression {quoted(pattern)}", key, key)
    if text.lower().startswith("nearest:"):
        return _nearest_rule(text)
    if "->" in text:
        replacements: List[Tuple[str, str]] = []
        for part in text.split(";"):
            part = part.strip()
            if not part:
                continue
            if part.count("->") != 1:
                raise ClaireError(
                    f"The pairing rule part {quoted(part)} must look like OPTICAL->SAR, e.g. _S2->_S1."
                )
            old, new = (s.strip() for s in part.split("->"))
            if not old:
                raise ClaireError(
                    f"The pairing rule part {quoted(part)} has nothing to replace; write e.g. _S2->_S1."
                )
            replacements.append((old, new))

        def optical_key(stem: str) -> Optional[str]:
            s = stem
            for old, new in replacements:
                s = re.sub(re.escape(old), lambda _m, new=new: new, s, flags=re.IGNORECASE)
            return s

        desc = ", ".join(f"'{o}' -> '{n}'" for o, n in replacements)
        return PairingRule(f"replace {desc} in the optical name", optical_key, lambda s: s,
                           (tuple(o for o, _ in replacements), tuple(n for _, n in replacements)))
    raise ClaireError(
        f"Unknown pairing rule {quoted(text)}. Use an empty rule (identical names), a replacement such as "
        "_S2->_S1, or regex:<pattern with a (?P<key>...) group>."
    )


def _nearest_rule(text: str) -> PairingRule:
    """The rule "nearest:<days>[:<pattern>]" (see the module docstring); ClaireError when malformed."""
    _, days, pattern = (text.split(":", 2) + [""])[:3]
    if not days.strip().isdigit():
        raise ClaireError(f"The pairing rule {quoted(text)} needs the most days between an optical and its SAR, e.g. "
                          "nearest:12 or nearest:12:(?P<key>T\\d\\d[A-Z]{3}) to pair within each tile.")
    keyed = parse_rule(f"regex:{pattern}") if pattern else PairingRule("one key", lambda s: "", lambda s: "")
    where = f" within each key of {quoted(pattern)}" if pattern else ""
    return PairingRule(f"nearest date at most {int(days)} days apart{where}", keyed.optical_key, keyed.sar_key,
                       nearest_days=int(days))


def _key_and_date(path: str, key: Callable[[str], Optional[str]], side: str, result: "PairingResult"):
    """(key, (date, where read)) of a file; (key, None) with the file recorded unmatched when either is missing."""
    from ..inputs.dates import acquisition_date

    k = key(_stem(path))
    when = acquisition_date(path) if k is not None else None
    if when is None:
        result.unmatched.append(Unmatched(path, side, "name does not match the pairing rule" if k is None
                                          else "its name says no date"))
    return k, when


def _pair_nearest(optical: List[str], sar: List[str], rule: PairingRule, result: "PairingResult") -> None:
    """Pair each optical file with the SAR file of its key whose date (from the names) is nearest, at most
    rule.nearest_days apart; the rest unmatched, each with the reason."""
    dated: Dict[str, List[Tuple[str, object]]] = {}
    for path in sar:
        k, when = _key_and_date(path, rule.sar_key, "sar", result)
        if when is not None:
            dated.setdefault(k.casefold(), []).append((path, when[0]))
    used: set = set()
    for path in optical:
        k, when = _key_and_date(path, rule.optical_key, "optical", result)
        if when is None:
            continue
        near = sorted(dated.get(k.casefold(), []), key=lambda c: (abs((c[1] - when[0]).days), c[1], c[0]))
        if not near or abs((near[0][1] - when[0]).days) > rule.nearest_days:
            nearest = (f" (the nearest, {os.path.basename(near[0][0])}, is {abs((near[0][1] - when[0]).days)} days "
                       f"away)" if near else "")
            result.unmatched.append(Unmatched(path, "optical", f"no SAR file within {rule.nearest_days} days of "
                                              f"{when[0].isoformat()}{nearest}"))
            continue
        key = f"{k}{'_' if k else ''}{when[0].strftime('%Y%m%d')}"
        result.pairs.append(Pair(key, path, near[0][0]))
        used.add(near[0][0])
    for group in dated.values():
        for path, _ in group:
            if path not in used:
                result.unmatched.append(Unmatched(path, "sar", "no optical date is nearest to it"))


def list_rasters(folder: str, extensions: Iterable[str] = RASTER_EXTENSIONS) -> List[str]:
    """Raster files directly inside ``folder`` (not recursive), sorted by name."""
    if folder and os.path.isfile(folder):
        raise ClaireError(f"{quoted(folder)} is a file, not a folder; give the folder that holds the rasters "
                          f"(for one pair of rasters, use classify instead of the folder run).")
    if not folder or not os.path.isdir(folder):
        raise ClaireError(f"The folder {quoted(folder)} does not exist; choose an existing folder.")
    exts = tuple(e.lower() for e in extensions)
    out = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and name.lower().endswith(exts) and not name.startswith("."):
            out.append(path)
    return out


def pair_files(optical: List[str], sar: List[str], rule: PairingRule) -> PairingResult:
    """Pair two lists of files with ``rule``; files with no or an ambiguous partner are reported."""
    result = PairingResult()
    if rule.nearest_days is not None:
        _pair_nearest(optical, sar, rule, result)
        return result
    sar_by_key: Dict[str, List[str]] = {}
    for path in sar:
        k = rule.sar_key(_stem(path))
        if k is None:
            result.unmatched.append(Unmatched(path, "sar", "name does not match the pairing rule"))
            continue
        sar_by_key.setdefault(k.casefold(), []).append(path)
    used: set = set()
    opt_by_key: Dict[str, List[str]] = {}
    spelling: Dict[str, str] = {}  # keys match case aside; messages and the summary show the optical's spelling
    for path in optical:
        k = rule.optical_key(_stem(path))
        if k is None:
            result.unmatched.append(Unmatched(path, "optical", "name does not match the pairing rule"))
            continue
        opt_by_key.setdefault(k.casefold(), []).append(path)
        spelling.setdefault(k.casefold(), k)
    seen_opt = set(opt_by_key)
    for folded, paths in opt_by_key.items():
        k = spelling[folded]
        if len(paths) > 1:  # two dates of one tile: which of them the SAR belongs to, the names do not say
            names = ", ".join(os.path.basename(p) for p in paths)
            for path in paths:
                result.unmatched.append(Unmatched(
                    path, "optical", f"several optical files have the key '{k}' ({names}): the rule cannot tell "
                    f"which one the SAR belongs to; give a rule whose key tells them apart, or, for dates of a time "
                    f"series, nearest:DAYS (each optical with the SAR of the nearest date)"))
            continue
        path = paths[0]
        candidates = sar_by_key.get(folded, [])
        if not candidates:
            result.unmatched.append(Unmatched(path, "optical", f"no SAR file with key '{k}'"))
        elif len(candidates) > 1:
            names = ", ".join(os.path.basename(c) for c in candidates)
            result.unmatched.append(Unmatched(path, "optical", f"several SAR files have its key '{k}': {names}"))
        else:
            result.pairs.append(Pair(k, path, candidates[0]))
            used.add(candidates[0])
    for folded, paths in sar_by_key.items():
        for p in paths:
            if p not in used:
                reason = ("no optical file pairs with it" if folded not in seen_opt else
                          "several optical files have its key" if len(opt_by_key[folded]) > 1 else
                          "ambiguous with another SAR file")
                result.unmatched.append(Unmatched(p, "sar", reason))
    return result


def pair_folders(optical_dir: str, sar_dir: str, rule_text: Optional[str] = None) -> PairingResult:
    """List both folders and pair their rasters with the rule given as text."""
    rule = parse_rule(rule_text)
    optical, sar = list_rasters(optical_dir), list_rasters(sar_dir)
    if os.path.samefile(optical_dir, sar_dir):  # x_S2.tif beside x_S1.tif: the rule's parts tell them apart
        if rule.sides is None or not all(rule.sides[1]):
            raise ClaireError(f"The optical and SAR folders are the same folder ({quoted(optical_dir)}); give a "
                              "pairing rule that tells their files apart, e.g. _S2->_S1 when the optical names hold "
                              "_S2 and the SAR names _S1.")
        olds, news = (tuple(t.lower() for t in side) for side in rule.sides)
        optical = [p for p in optical if any(o in _stem(p).lower() for o in olds)]
        sar = [p for p in sar if any(n in _stem(p).lower() for n in news) and p not in optical]
    return pair_files(optical, sar, rule)


#: What a pair's class map adds to the optical file's stem.
OUTPUT_SUFFIX = "_landcover"


def output_name(pair: Pair, suffix: str = OUTPUT_SUFFIX, ext: str = ".tif") -> str:
    """File name of a pair's classified output: the optical stem plus ``suffix``."""
    return f"{_stem(pair.optical)}{suffix}{ext}"
