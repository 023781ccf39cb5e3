"""Area-weighted accuracy and area estimates from a stratified random sample (QGIS-free, numpy only).

Olofsson, P., Foody, G. M., Herold, M., Stehman, S. V., Woodcock, C. E. & Wulder, M. A. (2014). Good
practices for estimating area and assessing accuracy of land change. Remote Sensing of Environment 148,
42-57. The strata are the map classes; W_i is the share of the mapped area of class i, n_ij the number of
sample points of map class i labelled j, and p_ij = W_i n_ij / n_i. the estimated share of the area that is
mapped i and is j on the ground (rows = map, columns = reference, as in the paper).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ...models.quoting import quoted
from .errors import ClaireError

Z95 = 1.96
FEW_POINTS = 30
METHOD = ("stratified random sample, strata = map classes; estimators of Olofsson et al. 2014 (RSE 148:42-57), "
          "eq. 2 (p_ij), 5 (overall), 6 (user's), 7 (producer's), 9-11 (area); 95 % CI = 1.96 SE")


def _clean(v: float) -> Optional[float]:
    """nan/inf → None (JSON has no nan)."""
    return None if v is None or not math.isfinite(float(v)) else float(v)


def _counts(map_values: Sequence[int], ref_values: Sequence[Optional[int]], class_pixels: Mapping[int, int]):
    """(sorted class values, n_ij matrix, number of points without a reference label)."""
    pairs, skipped = [], 0
    for m, r in zip(map_values, ref_values):
        if r is None:
            skipped += 1
            continue
        pairs.append((int(m), int(r)))
    mapped = {int(k) for k, v in class_pixels.items() if v > 0}
    unknown = sorted({m for m, _ in pairs} - mapped)
    if unknown:
        raise ClaireError(f"sample points fall on map value(s) {unknown} that the map's class counts do not "
                          f"hold; evaluate the points against the map they were drawn from")
    classes = sorted(mapped | {r for _, r in pairs})
    index = {c: i for i, c in enumerate(classes)}
    n = np.zeros((len(classes), len(classes)), np.float64)
    for m, r in pairs:
        n[index[m], index[r]] += 1
    return classes, n, skipped


def _variance_terms(n: np.ndarray, w: np.ndarray, census: np.ndarray):
    """Row totals n_i., the per-row shares n_ij/n_i. and the factor W_i^2/(n_i. - 1) (nan where n_i. < 2); 0 for
    a class whose every pixel was sampled and labelled (`census`: it is known, not estimated)."""
    ni = n.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(ni[:, None] > 0, n / ni[:, None], 0.0)
        factor = np.where(ni > 1, w ** 2 / (ni - 1), np.where(w > 0, np.nan, 0.0))
    return ni, share, np.where(census, 0.0, factor)


def _check_strata(classes: Sequence[int], w: np.ndarray, ni: np.ndarray, census: np.ndarray) -> None:
    """ClaireError for a mapped class with no labelled point (no area estimate) or with one only, unless that
    point is the class's only pixel (no variance: every confidence interval would be undefined)."""
    empty = [c for c, wi, k in zip(classes, w, ni) if wi > 0 and k == 0]
    if empty:
        raise ClaireError(f"map class(es) {empty} have no labelled sample point, so their area cannot be "
                          f"estimated; label at least two points of every map class (30 or more advised)")
    single = [c for c, wi, k, full in zip(classes, w, ni, census) if wi > 0 and k == 1 and not full]
    if single:
        raise ClaireError(f"map class(es) {single} have one labelled sample point each: a class's spread needs "
                          f"two, and without it no confidence interval of the map (overall, areas) can be given; "
                          f"label at least two points of every map class (30 or more advised)")


def _producers(p: np.ndarray, share: np.ndarray, factor: np.ndarray, w: np.ndarray, users: np.ndarray):
    """Producer's accuracy per reference class and its standard error (eq. 7, in shares of area)."""
    col = p.sum(axis=0)
    diag = np.diag(p)
    k = len(col)
    pa = np.full(k, np.nan)
    se = np.full(k, np.nan)
    for j in range(k):
        if col[j] <= 0:
            continue
        pa[j] = diag[j] / col[j]
        own = 0.0 if w[j] == 0 else factor[j] * (1 - pa[j]) ** 2 * users[j] * (1 - users[j])
        others = sum(factor[i] * share[i, j] * (1 - share[i, j]) for i in range(k) if i != j and w[i] > 0)
        se[j] = math.sqrt((own + pa[j] ** 2 * others) / col[j] ** 2)
    return pa, se


def area_weighted_accuracy(map_values: Sequence[int], ref_values: Sequence[Optional[int]],
                           class_pixels: Mapping[int, int], pixel_area_m2: float,
                           class_names: Optional[Mapping[int, str]] = None) -> Dict[str, Any]:
    """Area-weighted error matrix, accuracies and class areas with standard errors and 95 % CIs.

    `map_values[k]` is the map class at sample point k and `ref_values[k]` its reference label (None:
    not labelled, skipped and counted); `class_pixels` the number of map pixels of each class (the strata).
    Accuracies are shares (0..1); areas in m2; every `ci95` is the half-width 1.96 SE. Undefined values
    (a class never mapped or never seen in the reference) are None.
    """
    if len(map_values) != len(ref_values):
        raise ClaireError("the map values and reference labels of the sample differ in number")
    classes, n, skipped = _counts(map_values, ref_values, class_pixels)
    if n.sum() == 0:
        raise ClaireError("no sample point has a reference label; fill the reference field of the points "
                          "(the class seen on the ground or on imagery) and evaluate again")
    names = {int(k): str(v) for k, v in (class_names or {}).items()}
    pixels = np.array([float(class_pixels.get(c, 0)) for c in classes])
    total_area = float(pixels.sum()) * float(pixel_area_m2)
    w = pixels / pixels.sum()
    census = (pixels > 0) & (n.sum(axis=1) >= pixels)
    ni, share, factor = _variance_terms(n, w, census)
    _check_strata(classes, w, ni, census)
    p = w[:, None] * share
    users = np.where(ni > 0, np.diag(share), np.nan)
    users_se = np.sqrt(np.where(census, 0.0, np.where(ni > 1, users * (1 - users) / np.maximum(ni - 1, 1), np.nan)))
    overall = float(np.trace(p))
    overall_se = math.sqrt(float(np.sum(factor * np.nan_to_num(users) * (1 - np.nan_to_num(users)))))
    producers, producers_se = _producers(p, share, factor, w, np.nan_to_num(users))
    area_share = p.sum(axis=0)
    area_share_se = np.sqrt(np.sum(factor[:, None] * share * (1 - share), axis=0))
    per_class = []
    for i, c in enumerate(classes):
        per_class.append({
            "value": c, "name": names.get(c, f"class {c}"), "map_pixels": int(pixels[i]),
            "map_area_m2": float(pixels[i] * pixel_area_m2), "weight": float(w[i]), "points": int(ni[i]),
            "reference_points": int(n[:, i].sum()),
            "users_accuracy": _clean(users[i]), "users_se": _clean(users_se[i]),
            "users_ci95": _clean(Z95 * users_se[i]),
            "producers_accuracy": _clean(producers[i]), "producers_se": _clean(producers_se[i]),
            "producers_ci95": _clean(Z95 * producers_se[i]),
            "area_share": float(area_share[i]), "area_m2": float(area_share[i] * total_area),
            "area_se_m2": _clean(area_share_se[i] * total_area),
            "area_ci95_m2": _clean(Z95 * area_share_se[i] * total_area),
        })
    labels = [c["name"] for c in per_class]
    return {
        "method": METHOD, "points_used": int(n.sum()), "points_unlabelled": int(skipped),
        "total_area_m2": total_area, "pixel_area_m2": float(pixel_area_m2),
        "overall_accuracy": overall, "overall_se": _clean(overall_se), "overall_ci95": _clean(Z95 * overall_se),
        "per_class": per_class,
        "error_matrix": {"rows": "map", "columns": "reference", "labels": labels, "values": classes,
                         "proportion_of_area": p.tolist(), "counts": n.astype(int).tolist()},
        "warnings": _warnings(per_class, skipped),
    }


def _warnings(per_class: List[Dict[str, Any]], skipped: int) -> List[str]:
    """Plain-language cautions: few points per class, unlabelled points, reference-only classes."""
    out = _foreign_codes(per_class)
    for c in per_class:
        if 0 < c["map_pixels"] and c["points"] < min(FEW_POINTS, c["map_pixels"]):  # every pixel sampled: a census
            out.append(f"map class {quoted(c['name'])} has {c['points']} labelled point(s), fewer than {FEW_POINTS}: "
                       f"its accuracies and area have wide confidence intervals{_all_alike(c)}")
        out.extend(_all_found(c, per_class))
    if skipped:
        out.append(f"{skipped} point(s) without a reference label were skipped")
    return out


def _all_found(c: Dict[str, Any], per_class: List[Dict[str, Any]]) -> List[str]:
    """+- 0 intervals of accuracies measured on a sample that read as certainty, where the few-points warning does not
    already explain them: a user's accuracy whose points all agree with the map, or none does (with the Wilson
    interval of those points where it is at least a point wide; not for a census of the class), and a producer's
    accuracy of 1 because no point of another map class was labelled this class (omission in those classes went
    unobserved; not where they were sampled whole). A class the map never gives has a producer's accuracy of 0
    whatever the sample (its own warning says so)."""
    out = []
    n, users = int(c.get("points") or 0), c.get("users_accuracy")
    few = c["points"] < min(FEW_POINTS, c["map_pixels"])
    if not few and n < c["map_pixels"] and users in (0.0, 1.0) and not c.get("users_ci95") \
            and _wide(round(users * n), n):
        low, high = wilson95(round(users * n), n)
        agree = "all agree with the map" if users == 1.0 else "none agrees with the map"
        out.append(f"map class {quoted(c['name'])}: its {n} point(s) {agree}, so its user's accuracy's interval by the "
                   f"paper's formula is +- 0, which is not certainty: the 95 % Wilson interval is "
                   f"{100 * low:.0f}-{100 * high:.0f} %")
    others = [o for o in per_class if o is not c and o["map_pixels"] > 0]
    sampled = [o for o in others if 0 < o["points"] < o["map_pixels"]]  # a census of a class leaves no doubt
    if c["map_pixels"] > 0 and c.get("producers_accuracy") == 1.0 and not c.get("producers_ci95") and sampled:
        seen = sum(int(o["points"]) for o in sampled)
        out.append(f"map class {quoted(c['name'])}: none of the {seen} point(s) of the other map classes was "
                   f"labelled it, so its producer's accuracy is 100 % +- 0 by the paper's formula, which is not "
                   f"certainty: where the map gives another class, {quoted(c['name'])} went unobserved, not absent")
    return out


def _wide(hits: int, n: int) -> bool:
    """Whether the Wilson 95 % interval of `hits` in `n` is at least one percentage point wide."""
    low, high = wilson95(hits, n) or (0.0, 0.0)
    return high - low >= 0.01

def wilson95(hits: int, n: int) -> Optional[List[float]]:
    """The Wilson score 95 % interval [low, high] of a share of `hits` in `n` (None for n = 0): unlike the Wald
    interval (share +- 1.96 SE) it is not 0 wide when every point agrees."""
    if n <= 0:
        return None
    p, z2 = hits / n, Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def _all_alike(c: Dict[str, Any]) -> str:
    """For a class whose few points all agree with the map, or none does: the paper's interval is then +- 0,
    which reads as certainty; the Wilson interval of the same points says how far it could be."""
    users, n = c.get("users_accuracy"), int(c.get("points") or 0)
    if users is None or n < 1 or users not in (0.0, 1.0):
        return ""
    low, high = wilson95(round(users * n), n)
    agree = "all agree with the map" if users == 1.0 else "none agrees with the map"
    return (f"; its {n} point(s) {agree}, so the user's accuracy's interval by the paper's formula is +- 0, which "
            f"is not certainty: from {n} point(s) the 95 % Wilson interval is {100 * low:.0f}-{100 * high:.0f} %")


def _foreign_codes(per_class: List[Dict[str, Any]]) -> List[str]:
    """Warnings on reference codes the map never assigns: classes of its legend it left out (omission errors,
    rightly counted), codes of no class of it (another legend: recode), and 0 or negative codes (a "can't
    tell" mark: leave the field empty instead); none when every code is a mapped class."""
    foreign = [c for c in per_class if c["map_pixels"] == 0 and c["reference_points"] > 0]
    labelled = sum(c["reference_points"] for c in per_class)

    def said(group):
        return (", ".join(str(c["value"]) if c["name"] == f"class {c['value']}" else f"{c['value']} ({c['name']})"
                          for c in group), sum(c["reference_points"] for c in group))
    out = []
    blank = [c for c in foreign if c["value"] <= 0]
    legend = [c for c in foreign if c["value"] > 0 and c["name"] != f"class {c['value']}"]
    other = [c for c in foreign if c["value"] > 0 and c["name"] == f"class {c['value']}"]
    if blank:
        codes, hits = said(blank)
        out.append(f"reference code(s) {codes} ({hits} of {labelled} labelled point(s)) are no class: those points "
                   f"count as errors; to skip a point you cannot label, leave its reference field empty")
    if legend:
        codes, hits = said(legend)
        out.append(f"reference class(es) {codes} ({hits} of {labelled} labelled point(s)) are in the map's legend "
                   f"but the map never assigns them: those points are omission errors and count as such (producer's "
                   f"accuracy 0, user's accuracy undefined)")
    if other:
        codes, hits = said(other)
        mapped = ", ".join(f"{c['value']} ({c['name']})" if c["name"] != f"class {c['value']}" else str(c["value"])
                           for c in per_class if c["map_pixels"] > 0)
        out.append(f"reference code(s) {codes} ({hits} of {labelled} labelled point(s)) match no class of the map, "
                   f"whose classes are {mapped}: those points count as errors (producer's accuracy 0, user's "
                   f"accuracy undefined); label the points with the map's class codes (a reference in another "
                   f"legend, e.g. WorldCover 10, 20, 30, must be recoded to them first)")
    return out


def _column(label: str) -> str:
    """A class name as an error-matrix column heads it: whole up to 14 characters ("built are" read as a typo)."""
    return label if len(label) <= 14 else label[:13] + "…"


#: The units a map-accuracy table gives areas in, with their square metres (the first is the default).
AREA_UNITS = {"ha": 1e4, "km2": 1e6, "m2": 1.0}


def accuracy_table(result: Dict[str, Any], area_unit: str = "ha", warnings: bool = True) -> str:
    """The area-weighted result as a plain-text table (accuracies in %, areas in `area_unit`, one of
    AREA_UNITS), with its warnings as last lines unless `warnings` is False (the front door shows them as
    warnings)."""
    scale = AREA_UNITS[area_unit]

    def pct(v, ci):
        return f"{'-':>16}" if v is None else f"{100 * v:7.1f} ± {100 * ci:5.1f}" if ci is not None \
            else f"{100 * v:7.1f} ±   n/a"

    def area(v, ci):
        return f"{v / scale:12.2f} ± {ci / scale:10.2f}" if ci is not None else f"{v / scale:12.2f} ±        n/a"

    oa, oci = result["overall_accuracy"], result["overall_ci95"]
    head = (f"overall accuracy {100 * oa:.1f} %" + (f" ± {100 * oci:.1f}" if oci is not None else "") +
            f" (95 % CI), {result['points_used']} labelled points, area-weighted (Olofsson et al. 2014)")
    w = max([19] + [len(str(c["name"])) for c in result["per_class"]]) + 1  # whole names in the rows
    lines = [head, "", f"{'class':<{w}}{'points':>7}{'user %':>17}{'producer %':>17}"
             f"{'mapped ' + area_unit:>14}{'estimated ' + area_unit + ' (95 % CI)':>27}"]
    for c in result["per_class"]:
        lines.append(f"{c['name']:<{w}}{c['points']:>7}{pct(c['users_accuracy'], c['users_ci95'])}"
                     f"{pct(c['producers_accuracy'], c['producers_ci95'])}{c['map_area_m2'] / scale:14.2f}"
                     f"{area(c['area_m2'], c['area_ci95_m2'])}")
    em = result["error_matrix"]
    lines += ["", "error matrix, proportion of area (rows = map, columns = reference):",
              f"{'':<{w}}" + "".join(f"{_column(lab):>{max(10, len(_column(lab)) + 1)}}" for lab in em["labels"])]
    for lab, row in zip(em["labels"], em["proportion_of_area"]):
        widths = [max(10, len(_column(c)) + 1) for c in em["labels"]]
        lines.append(f"{lab:<{w}}" + "".join(f"{v:{w}.4f}" if v == 0 or v >= 5e-5 else f"{v:{w}.1e}"
                                                 for v, w in zip(row, widths)))
    lines += [f"warning: {w}" for w in result["warnings"]] if warnings else []
    return "\n".join(lines)
