"""Grounding checker: every number in an explanation must be found in the facts record.

Rules (also in docs/explanations.md):
- Names from the facts (class, band, sensor and model names) are masked first, so "Class 12",
  "B08" or "Sentinel-2" never count as numbers. In general a number glued to a letter ("B8A", "L2A",
  "8A", "2nd"), or joined to a preceding word by a hyphen ("Phi-3", "Sentinel-1"), is an identifier
  and ignored; so are list markers at the start of a line ("1." / "2)").
- Thousands separators: a comma followed by exactly three digits, thin / no-break spaces. A comma
  followed by one or two digits is a decimal comma ("12,5 %").
- Units: "%", "percent", "per cent" -> compared with percentages (and with a kappa or macro-F1 x 100 when that
  measure is named, or the number restates the one before it: "kappa 0.78, i.e. 78 %");
  "ha", "hectares" -> areas; "km²"/"km2" -> areas x 100; "m²" -> the pixel area; "pixels"/"px" -> counts.
  A bare number is compared with every fact, and a bare number <= 1 also with percentages / 100 (0.87 == 87 %).
  A unit or multiplier no fact has (dB, m, x, k, M, e-notation, acres, km, mi, ft, thousand, million, billion)
  and a spelled percentage ("forty percent") cannot be backed: flagged.
- A measure named next to a number (kappa, macro-F1, F1, mIoU, IoU, precision, recall, accuracy, mean or low
  confidence; right after it, or before it in its clause: next to it, one word away, or at most six words away
  with a link word such as "is" or "of"; before a colon at most two words after it, "accuracy is high: 94.6 %")
  restricts it to the facts of that measure's own name ("iou" is no "miou_pct"; "low confidence" is a share of
  low-confidence pixels or a mean confidence).
- "Within rounding": a text number with d decimals matches a fact when they differ by at most half a
  unit of the text's last digit plus half a unit of the fact's last digit; with more decimals than the fact
  it must equal it.
- A sentence with at least one unmatched number is flagged (or dropped on request);
  `grounded_share` = matched numbers / all numbers (1.0 for a text without numbers).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, List, Optional, Tuple

from .facts import fact_names

#: Spaces that group thousands (narrow no-break, thin, no-break, figure, punctuation); phi3.clean_text keeps them.
THOUSANDS_SPACES = _SEP = "\u202f\u2009\u00a0\u2007\u2008"
_NUMBER = re.compile(
    r"(?P<sign>[-\u2212+](?=\d))?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?![\d,])(?:\.\d+)?"        # 1,234,567.8
    r"|\d{1,3}(?:[" + _SEP + r"]\d{3})+(?!\d)(?:[.,]\d+)?"  # 1 234 567,8 (thin / nbsp)
    r"|\d+,\d{1,2}(?![\d,])"                                  # decimal comma 12,5
    r"|\d+(?:\.\d+)?|\.\d+)"
)
_UNIT = re.compile(
    r"[ \u00a0\u202f\u2009]?(?P<unit>%|percent\b|per\s?cent\b|hectares?\b|ha\b|km²|km2\b|km\^2|m²|m2\b|m\^2|"
    r"pixels?\b|px\b)",
    re.IGNORECASE,
)
#: A number glued to a unit or a multiplier no fact has (dB, metres, "x", k / M, e-notation, acres, a bare km,
#: thousand / million): it is a number, and the checker cannot back it ("-18dB", "10m", "26k", "6.5e4" passed as
#: identifiers, "262.5 acres" matched an area in ha).
_ODD_UNIT = re.compile(
    r"[ \u00a0\u202f\u2009]?(?:dB\b|m\b(?![²2^])|x\b|×|[kKM]\b|e[-+]?\d|acres?\b|km\b(?![²2^])|mi\b|ft\b|"
    r"(?:thousand|million|billion)s?\b)")
_WORD_PERCENT = re.compile(
    r"\b(?:(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[- ](?:one|two|three|four|five|six|seven|"
    r"eight|nine))?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|[a-z]+teen|a hundred|hundred)"
    r"\s*(?:percent|per\s?cent|%)", re.IGNORECASE)
_LIST_MARKER = re.compile(r"^\s*(?:[-*]\s*)?\(?\d+[.)](?:\s|$)")


@dataclass
class NumberCheck:
    """One number found in the text and whether a fact backs it."""

    text: str
    value: float
    unit: Optional[str]
    matched: bool
    fact: Optional[str] = None
    sentence: str = ""


@dataclass
class GroundingResult:
    """Outcome of `check_grounding`."""

    grounded_share: float
    flagged_sentences: List[str]
    numbers: List[NumberCheck] = field(default_factory=list)
    text: str = ""

    @property
    def numbers_total(self) -> int:
        return len(self.numbers)

    @property
    def numbers_grounded(self) -> int:
        return sum(1 for n in self.numbers if n.matched)


def _decimals_of_fact(key: str, value: float, rounding: dict) -> int:
    if key.endswith("_pct"):
        return int(rounding.get("percent", 1))
    if key.endswith("_ha"):
        return int(rounding.get("area_ha", 1))
    if key.endswith("kappa"):
        return int(rounding.get("kappa", 2))
    if key.endswith("f1"):  # macro-F1 0.80 is stored as 0.8: its decimals are the rounding's, not repr's
        return int(rounding.get("f1", 2))
    if key.endswith("_m2"):
        return int(rounding.get("pixel_area_m2", 2))
    if isinstance(value, int):
        return 0
    text = repr(float(value))
    return min(len(text.split(".")[1]) if "." in text and "e" not in text else 3, 3)


def _kind_of_fact(key: str) -> str:
    if key.endswith("_pct"):
        return "pct"
    if key.endswith("_ha"):
        return "ha"
    if key.endswith("kappa") or key.endswith("f1"):  # a macro-F1 of 0.81 may be said as 81 %
        return "fraction"
    if key.endswith("_m2"):
        return "m2"
    return "count"


_SKIP_KEYS = {"value", "index", "rounding", "format"}


def fact_numbers(facts: dict) -> List[Tuple[str, float, str, float]]:
    """All numeric facts as (path, value, kind, half-unit tolerance)."""
    rounding = facts.get("rounding") or {}
    out: List[Tuple[str, float, str, float]] = []

    def walk(node: Any, path: str, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k not in _SKIP_KEYS:
                    walk(v, f"{path}.{k}" if path else k, k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                label = v.get("name") if isinstance(v, dict) and v.get("name") else \
                    (f"{v.get('reference')}->{v.get('predicted')}" if isinstance(v, dict) and
                     "reference" in v else str(i))
                walk(v, f"{path}[{label}]", key)
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            dec = _decimals_of_fact(key, node, rounding)
            kind = _kind_of_fact(key)
            exact = kind == "count" and isinstance(node, int)  # a count is no rounded figure: 0 grounds no "0.35"
            out.append((path, float(node), kind, 0.0 if exact else 0.5 * 10 ** -dec))

    walk(facts, "", "")
    return out


def _mask_names(text: str, names: List[str], every: bool = False) -> str:
    """Replace digit-bearing names (`every`: all names with a letter, so "Accuracy forest" names no measure) by
    same-length letters so their digits are not numbers."""
    for name in names:
        if not any(ch.isalpha() for ch in name) or not (every or any(ch.isdigit() for ch in name)):
            continue  # names without digits need no mask; purely numeric names would hide numbers
        left = r"(?<!\w)" if (name[0].isalnum() or name[0] == "_") else ""
        right = r"(?!\w)" if (name[-1].isalnum() or name[-1] == "_") else ""
        pattern = re.compile(left + re.escape(name) + right, re.IGNORECASE)
        text = pattern.sub(lambda m: "N" * len(m.group(0)), text)
    return text


def _parse(num: str) -> Tuple[float, int]:
    """Value and number of decimals of a matched number string."""
    s = num
    for ch in _SEP:
        s = s.replace(ch, "")
    if re.fullmatch(r"\d+,\d{1,2}", s):
        s = s.replace(",", ".")
    else:
        s = s.replace(",", "")
    dec = len(s.split(".")[1]) if "." in s else 0
    return float(s), dec


def _is_identifier(masked: str, start: int, end: int) -> bool:
    before = masked[start - 1] if start > 0 else " "
    if before.isalnum() or before == "_":
        return True
    if before in "-\u2010\u2011" and start > 1 and masked[start - 2].isalpha():
        return True
    after = masked[end] if end < len(masked) else " "
    if after.isalpha() or after == "_":  # "10ha" / "12%" / "-18dB" are numbers, "8A" / "2nd" are not
        return _UNIT.match(masked, end) is None and _ODD_UNIT.match(masked, end) is None
    return False


def iter_numbers(text: str, names: List[str]) -> Iterator[Tuple[str, float, int, Optional[str], int]]:
    """Yield (text, value, decimals, unit, position) for every checkable number in `text`."""
    masked = _mask_names(text, names)
    skip_until = -1
    for line_start, line in _lines_with_offsets(masked):
        m = _LIST_MARKER.match(line)
        if m:
            skip_until = line_start + m.end()
        for match in _NUMBER.finditer(line):
            start = line_start + match.start("num")
            end = line_start + match.end("num")
            if start < skip_until or _is_identifier(masked, start, end):
                continue
            value, dec = _parse(match.group("num"))
            if match.group("sign") in ("-", "\u2212"):
                prev = masked[start - 2] if start >= 2 else " "
                if not prev.isalnum():  # "-3.2" is negative, "10-20" is a range
                    value = -value
            unit_m = _UNIT.match(masked, end)
            unit = _norm_unit(unit_m.group("unit")) if unit_m else ("?" if _ODD_UNIT.match(masked, end) else None)
            yield text[start:end], value, dec, unit, start


def _lines_with_offsets(text: str) -> Iterator[Tuple[int, str]]:
    pos = 0
    for line in text.split("\n"):
        yield pos, line
        pos += len(line) + 1


def _norm_unit(unit: str) -> str:
    u = unit.lower().replace(" ", "")
    if u == "%" or u.startswith("per"):
        return "%"
    if u.startswith("hectare") or u == "ha":
        return "ha"
    if u.startswith("km"):
        return "km2"
    if u.startswith("m"):
        return "m2"
    return "px"


#: A measure named next to a number: the number must then be a fact of that measure ("Overall accuracy is 71.7 %"
#: matched the mean confidence, "Kappa is 0.72" a SAR share / 100). Nouns only: "the least accurate class" or "the
#: most confident" name no figure.
_MEASURES = (
    (re.compile(r"\bkappa\b", re.IGNORECASE), ("kappa",)),
    (re.compile(r"\bmacro[- ]?f1\b|\bmacro[- ]f[- ]?(?:score|measure)\b", re.IGNORECASE), ("macro_f1",)),
    (re.compile(r"\bf1\b|\bf-?(?:score|measure)\b", re.IGNORECASE), ("f1",)),
    # "Rangeland's overall IoU" is the class's (class names are masked as N...N first)
    (re.compile(r"\bN{3,}['’]s?\s+(?i:(?:mean|average|overall)\s+(?:iou|intersection over union))\b"), ("iou",)),
    (re.compile(r"\bmiou\b|\b(?:mean|average|overall)\s+(?:iou|intersection over union)\b", re.IGNORECASE),
     ("miou",)),
    (re.compile(r"\biou\b|intersection over union", re.IGNORECASE), ("iou",)),
    (re.compile(r"\bprecision\b|\busers?[’']?s?\s+accuracy\b", re.IGNORECASE), ("precision",)),
    (re.compile(r"\brecall\b|\bproducers?[’']?s?\s+accuracy\b", re.IGNORECASE), ("recall",)),
    # a class's accuracy is a producer's (or user's) accuracy; class names are masked as N...N first
    (re.compile(r"(?i:\b(?:per[- ]class|class)\s+accuracy\b)|(?i:\baccuracy\s+(?:of|for)\s+(?:the\s+)?)N{3,}\b"
                r"|\bN{3,}(?:['’]s?)?\s+accuracy\b"
                r"|\bN{3,}\s+(?i:(?:has|have|had|shows?|showed|reach(?:es|ed)?)\s+(?:an?\s+|the\s+|its\s+|their\s+)?"
                r"accuracy)\b"),
     ("recall", "precision")),
    (re.compile(r"\baccuracy\b|\bOA\b", re.IGNORECASE), ("oa_pct",)),
    (re.compile(r"\blow[- ]confidence\s+(?:pixels?|share|areas?)\b", re.IGNORECASE), ("low_confidence",)),
    # "a low confidence of 54.1 %" is said of a mean confidence as of a share of low-confidence pixels
    (re.compile(r"\blow[- ]confidence\s+(?:of|at)\b", re.IGNORECASE), ("low_confidence", "mean_confidence")),
    (re.compile(r"\blow[- ]confidence\b", re.IGNORECASE), ("low_confidence",)),
    (re.compile(r"\bconfidence\b", re.IGNORECASE), ("mean_confidence",)),
)
#: A clause break: a measure named before it qualifies no number after it. A parenthesis of letters alone ("(OA)",
#: "(chance-corrected)") is no break, and a colon right before the number is none ("kappa: 0.78").
_CLAUSE = re.compile(r"[,;:()\u2013\u2014]|\s-\s|\b(?:but|while|whereas|although|though)\b", re.IGNORECASE)
_ASIDE = re.compile(r"\([^()\d]*\)")
#: Between a measure and the number it names: nothing, or a few words with a link ("kappa of 0.78", "the overall
#: accuracy against the reference is 83.4 %"); "Accuracy suffers for bare ground: 1,149 pixels" names none.
_MEASURE_GAP = 6
_LOW_OR_MEAN = ("low_confidence", "mean_confidence")
#: What may lie between a number and the same figure restated: "0.78, i.e. 78 %", "0.81 (81 %)", "78 %, or 0.78".
_RESTATE = re.compile(r"[\s,;:(%]*(?:(?:i\.\s?e\.?|that is|or|which is|=)[\s,(]*)?", re.IGNORECASE)
#: Words between a measure and a colon before its number: "accuracy is high: 94.6 %" (QA round 23).
_COLON_GAP = 2
_LINK = re.compile(r"\b(?:is|are|was|were|of|at|reach(?:es|ed)?|equals?|stands?|stood|scores?|scored|amounts? to|"
                   r"comes? to|came to|makes? up|made up|covers?|covered|accounts? for|represents?)\b|=", re.IGNORECASE)


def _measures_in(text: str):
    """(start, end, fact-path words) of every measure named in `text`, longest first where two overlap."""
    found = []
    for pattern, words in _MEASURES:
        found += [(m.start(), m.end(), words) for m in pattern.finditer(text)]
    found.sort(key=lambda x: (x[0], -(x[1] - x[0])))
    out, last_end = [], -1
    for start, end, words in found:
        if start >= last_end:  # "user's accuracy" is precision, not also accuracy
            out.append((start, end, words))
            last_end = end
    return out


#: Degree words that do not count towards _COLON_GAP: "accuracy is very high: 96.5 %".
_DEGREE = {"very", "quite", "rather", "fairly", "extremely", "really", "remarkably", "notably", "particularly",
           "especially", "so", "pretty", "exceptionally", "still", "also"}
#: An adverb alone between commas ("The IoU of crops, sadly, 58.6 %"): read as if it were not there.
_ADVERB_ASIDE = re.compile(r",\s*(?:\w+ly|however|though|in\s+fact|indeed|of\s+course|at\s+last)\s*,\s*", re.IGNORECASE)
#: A comma right before a number, or with a word or two that lead into it: "The F1 of water, at 48.2 %, ...".
_APPOSITION = re.compile(r",\s*(?:(?:at|of|which\s+(?:is|was)|that\s+is)\s+)?(?:(?:at\s+last|in\s+fact|indeed|only|"
                         r"just|roughly|about|around|nearly|almost|some)\s+)?$", re.IGNORECASE)
#: A short aside between commas before a link: "The IoU of rangeland, the weakest class, is 62.1 %" (QA round 24).
_INNER_ASIDE = re.compile(r",\s*(?:the|a|an|its|their)\s+[^,\d]{1,40},(?=\s*(?:is|are|was|were)\b)", re.IGNORECASE)
_AFTER = re.compile(r"\s*(?:%|percent\b|per\s?cent\b)?\s*", re.IGNORECASE)
_QUALIFIER = re.compile(r"(?:macro[- ]|mean\s+|overall\s+)?", re.IGNORECASE)


def measure_after(after: str) -> Tuple[Optional[Tuple[str, ...]], int]:
    """(fact-path words, characters it spans) of a measure named right after a number ("0.81 macro-F1", "85.6 % mean
    confidence"), or (None, 0). The measure is read whole: "macro-F1" is no F1, "mean IoU" no IoU."""
    head = _AFTER.match(after)
    rest = after[head.end():head.end() + 40]
    nxt = _measures_in(rest)
    if nxt and _QUALIFIER.fullmatch(rest[:nxt[0][0]]):
        return nxt[0][2], head.end() + nxt[0][1]
    return None, 0


def measure_named(before: str, after: str = "") -> Optional[Tuple[str, ...]]:
    """The fact-path words of the measure a number quotes: one named right after it ("0.81 macro-F1"), else the last
    one in its clause before it, at most _MEASURE_GAP words away ("kappa of 0.78"); None when it names none. `before`
    is the text since the previous number and the measure named right after it, `after` the text that follows (its
    unit included)."""
    words, _ = measure_after(after)
    if words is not None:
        return words
    text = _INNER_ASIDE.sub(" ", _ASIDE.sub(" ", _ADVERB_ASIDE.sub(" ", before)))
    comma = _APPOSITION.search(text)
    if comma and re.match(r"\s*(?:%|percent\b)?\s*(?:,|(?:is|was|are|were)\b)", after, re.IGNORECASE):
        # "The F1 of water, 48.2 %, is poor" (or "... 48.2 % is poor"): an apposition
        clause = _CLAUSE.split(text[:comma.start()])[-1]
        named = _measures_in(clause)
        if named and len(re.findall(r"\w+", clause[named[-1][1]:])) <= _COLON_GAP + 1:
            return named[-1][2]
    colon = re.search(r":\s*$", text)
    if colon:  # "kappa: 0.78" and "accuracy is high: 94.6 %" name it; "Confidence is low for crops: 36.5 %" does not
        head = text[:colon.start()].rstrip()
        last = _measures_in(head)
        if last and len([w for w in re.findall(r"\w+", head[last[-1][1]:]) if w.lower() not in _DEGREE]) <= _COLON_GAP:
            return _LOW_OR_MEAN if last[-1][2] == ("low_confidence",) else last[-1][2]  # "low confidence: 54.1 %"
    clause = _CLAUSE.split(text)[-1]
    named = _measures_in(clause)
    if not named:
        return None
    between = clause[named[-1][1]:]
    gap = len(re.findall(r"\w+", between))
    if gap <= 1 or (gap <= _MEASURE_GAP and _LINK.search(between)):  # "accuracy hits 96.5 %": one verb, no link
        return named[-1][2]
    return None


def fact_of_measure(path: str, measure: Tuple[str, ...]) -> bool:
    """Whether the fact at `path` is one of `measure`'s: its own name (the last part, class names left out) holds
    one of the measure's words as whole words ("iou" is no "miou_pct", "f1" no "heldout_macro_f1")."""
    tokens = re.sub(r"\[[^\]]*\]", "", path.lower()).split(".")[-1].split("_")
    for word in measure:
        parts = word.split("_")
        for i in range(len(tokens) - len(parts) + 1):
            if tokens[i:i + len(parts)] == parts and not (parts == ["f1"] and i > 0 and tokens[i - 1] == "macro"):
                return True
    return False


def _decimals_of_tolerance(tol: float) -> int:
    return 0 if tol <= 0 else max(0, int(round(-math.log10(2 * tol))))


def _match(value: float, dec: int, unit: Optional[str],
           facts_nums: List[Tuple[str, float, str, float]], measure: Optional[Tuple[str, ...]] = None,
           restated: Optional[str] = None) -> Optional[str]:
    """Path of the first fact that backs a number, or None. A fact of another `measure` backs none; a number with
    more decimals than the fact must equal it ("40.02 %" is no quote of 40.0 %)."""
    tol_text = 0.5 * 10 ** -dec
    candidates: List[Tuple[str, float, float]] = []  # (path, value in text units, tolerance)
    for path, fv, kind, tol in facts_nums:
        if measure is not None and not fact_of_measure(path, measure):
            continue
        if unit == "%":
            if kind == "pct":
                candidates.append((path, fv, tol))
            elif kind == "fraction" and (measure is not None or path == restated):
                # a kappa or macro-F1 in %: named so, or the previous number restated ("0.78, i.e. 78 %")
                candidates.append((path, fv * 100.0, tol * 100.0))
        elif unit == "ha":
            if kind == "ha":
                candidates.append((path, fv, tol))
        elif unit == "km2":
            if kind == "ha":
                candidates.append((path, fv / 100.0, tol / 100.0))
        elif unit == "px":
            if kind == "count":
                candidates.append((path, fv, tol))
        elif unit == "m2":
            if kind == "m2":
                candidates.append((path, fv, tol))
        else:
            candidates.append((path, fv, tol))
            if kind == "pct" and abs(value) <= 1.0:
                candidates.append((path, fv / 100.0, tol / 100.0))
    for path, fv, tol in candidates:
        if dec > _decimals_of_tolerance(tol):
            if abs(value - fv) <= 1e-9 * max(1.0, abs(fv)):
                return path
        elif abs(value - fv) < tol_text + tol - 1e-9:  # the two rounding intervals overlap
            return path
    return None


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9\u00c0-\u024f*_-])")


def split_sentences(paragraph: str) -> List[str]:
    """Split one paragraph into sentences (a full stop inside a decimal never splits)."""
    parts, last = [], 0
    for m in _SENTENCE_END.finditer(paragraph):
        parts.append(paragraph[last:m.start()].strip() + paragraph[m.start():m.end()].strip())
        last = m.end()
    parts.append(paragraph[last:].strip())
    return [p for p in parts if p]


def check_grounding(text: str, facts: dict, drop_unmatched: bool = False) -> GroundingResult:
    """Compare every number in `text` with the facts; flag (or drop) sentences with unmatched numbers.

    Returns a GroundingResult whose `text` is the input text, or the text without flagged sentences
    when `drop_unmatched` is true.
    """
    names = fact_names(facts)
    nums = fact_numbers(facts)
    checks: List[NumberCheck] = []
    flagged: List[str] = []
    kept_paragraphs: List[str] = []
    for paragraph in text.split("\n"):
        kept: List[str] = []
        last, gap = None, ""  # the previous number's fact in the paragraph, and the text after it
        for sentence in split_sentences(paragraph):
            bad, since = False, 0
            masked = _mask_names(sentence, names, every=True)  # for the measures: class names name none
            for raw, value, dec, unit, at in iter_numbers(sentence, names):
                end = at + len(raw)
                measure = measure_named(masked[since:at], masked[end:]) if unit in (None, "%") else None
                restated = last if _RESTATE.fullmatch(gap + sentence[since:at]) else None
                path = None if unit == "?" else _match(value, dec, unit, nums, measure, restated)
                last, gap = path, ""
                since = end + measure_after(masked[end:])[1]  # "85.6 % mean confidence" names no next number
                checks.append(NumberCheck(raw, value, unit, path is not None, path, sentence))
                bad = bad or path is None
            gap += " " + sentence[since:]
            for word in _WORD_PERCENT.finditer(sentence):  # "Forty percent": a number the checker cannot back
                checks.append(NumberCheck(word.group(0), math.nan, "%", False, None, sentence))
                bad = True
            if bad:
                flagged.append(sentence)
            if not (bad and drop_unmatched):
                kept.append(sentence)
        if kept or not paragraph.strip():
            kept_paragraphs.append(" ".join(kept))
    share = (sum(1 for c in checks if c.matched) / len(checks)) if checks else 1.0
    out_text = "\n".join(kept_paragraphs).strip() if drop_unmatched else text
    if drop_unmatched:
        out_text = re.sub(r"\n{3,}", "\n\n", out_text)
    return GroundingResult(grounded_share=share, flagged_sentences=flagged, numbers=checks,
                           text=out_text)
