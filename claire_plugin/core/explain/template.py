"""Deterministic explanation writer: prose built only from the rounded values of the facts record.

Every number in the text is formatted from a fact with the same precision the facts use, so the
grounding checker finds all of them. No thresholds or other constants are quoted as numbers.
"""
from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Callable, List, Optional

from ....models.card_schema import ENSEMBLE, FOREST
from ....models.cloud import is_snow_name
from ..numbers import grouped

GENERATOR = "template"
#: A class is called reliable from this F1 (percent) on; never quoted as a number.
RELIABLE_F1_PCT = 70.0
#: Warn that the model should not be trusted from this unfamiliar share (percent) on: the familiarity
#: threshold flags about 1 % of familiar pixels by construction. Never quoted as a number.
UNFAMILIAR_WARN_PCT = 5.0
#: From this cloud share (percent) the explanation gives a model's SAR-alone scores for the clouded part too.
CLOUD_TRUST_PCT = 5.0
#: A class is doubtful when at least this share (percent) of its own pixels is unlike the training data, and decided
#: by the gap when as much lay under cloud or in the optical gaps. Never quoted as a number.
MOSTLY_PCT = 50.0
#: A held-out macro-F1 below this is called poor (half the pixels of a typical class wrong).
POOR_MACRO_F1 = 0.5
#: One modality "led" only from this fusion weight (percent) on; within the margin around a half both weighed alike.
LED_PCT = 55.0
#: Classes below this share of the scene (percent) get no physical reading of their fusion weights.
NOTABLE_SHARE_PCT = 1.0
#: The snow check is reported from this share of the map (percent) on.
SNOW_SAY_PCT = 1.0

#: The radar's physical handle on a class, as an expert would name it, matched on the words of the lower-case class
#: name: a key ending in "*" on a word's beginning ("cropland"), the others on whole words (and their plural), so
#: that "rice" is not snow ("ice"), "street" not trees, "seasonal crops" not water.
_SAR_CUES = [
    (("water*", "sea", "lake*", "river*"), "calm open water reflects the radar pulse away from the "
     "sensor, so its dark backscatter is unmistakable even under cloud"),
    (("flood*", "wetland*", "marsh*", "mangrove*"), "flooded vegetation produces strong double-bounce "
     "returns that the optical bands cannot see"),
    (("built*", "urban*", "settlement*", "building*", "artificial*"), "walls and streets form "
     "double-bounce corner reflectors that make built-up areas bright in the radar image"),
    (("tree*", "forest*", "wood*"), "volume scattering in the canopy raises the cross-polarised "
     "backscatter"),
    (("crop*", "agri*", "arable", "field"), "the radar responds to field structure and soil moisture"),
    ((), "wet and dry snow change the radar backscatter strongly"),  # snow by models.cloud.is_snow_name
    (("bare", "soil*", "rock*", "sand*"), "the radar response of bare ground is governed by surface "
     "roughness and moisture"),
]


def _sar_cue(name: str) -> Optional[str]:
    """The radar's physical handle on the class called `name` an expert would name (_SAR_CUES), or None."""
    words = re.findall(r"[^\W\d_]+", name.lower())

    def said(key: str) -> bool:
        if key.endswith("*"):
            return any(w.startswith(key[:-1]) for w in words)
        return any(w in (key, key + "s") for w in words)

    for keys, cue in _SAR_CUES:
        if any(said(k) for k in keys) if keys else is_snow_name(name):
            return cue
    return None


class Formatter:
    """Formats fact values with the precision recorded in the facts."""

    def __init__(self, facts: dict) -> None:
        r = facts.get("rounding") or {}
        self.p = int(r.get("percent", 1))
        self.a = int(r.get("area_ha", 1))
        self.k = int(r.get("kappa", 2))

    def pct(self, v: float) -> str:
        return f"{v:.{self.p}f} %"

    def ha(self, v: float) -> str:
        return f"{grouped(v, self.a)} ha"

    def kappa(self, v: float) -> str:
        return f"{v:.{self.k}f}"

    @staticmethod
    def count(n: int) -> str:
        return grouped(n)


def _join(items: List[str]) -> str:
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


#: Class names whose first letter must stay as written: upper-cased they are another class ("crops" / "Crops").
_KEEP_CASE: ContextVar[frozenset] = ContextVar("keep_case", default=frozenset())


def _cap(text: str) -> str:
    """Upper-case the first letter (class names may start a sentence), unless the text starts with a class name
    that upper-cased would read as another class of the map."""
    if any(text.startswith(name) for name in _KEEP_CASE.get()):
        return text
    return text[:1].upper() + text[1:]


def _case_twins(facts: dict) -> frozenset:
    """The class names of `facts` whose sentence-start capital is another class's name."""
    names = {str(c.get("name")) for c in facts.get("classes") or []}
    return frozenset(n for n in names if n[:1].upper() + n[1:] != n and n[:1].upper() + n[1:] in names)


def _present(facts: dict) -> List[dict]:
    return [c for c in facts.get("classes") or [] if c.get("pixels", 0) > 0 and c.get("share_pct")]


def _why_unsure(weak: List[dict]) -> str:
    """Why the least certain classes are unsure: most of their pixels under cloud or in the optical gaps (SAR alone
    decided), else boundaries and mixed cover; nothing to check where none of their pixels is low-confidence."""
    if all(c.get("low_confidence_pct") == 0 for c in weak):
        return "none of their pixels is low-confidence, so nothing there calls for a check"
    gapped = [c["name"] for c in weak if _by_gap(c)]
    if len(gapped) == len(weak):
        return ("most of their pixels lay under cloud or in the optical gaps, where the model sees little but the "
                "radar and is less sure: check them against imagery of a clear date")
    boundaries = "such pixels typically sit on class boundaries or in spectrally mixed cover"
    if gapped:
        return (f"{boundaries}, and most of {gapped[0]}'s lay under cloud or in the optical gaps; they deserve a "
                "visual check")
    return f"{boundaries} and deserve a visual check"


def _plural(name: str) -> bool:
    """Whether a class name reads as a plural ("trees", "crops"; not "grass")."""
    low = name.strip().lower()
    return low.endswith("s") and not low.endswith("ss")


def _verb(name: str, singular: str, plural: str) -> str:
    return plural if _plural(name) else singular


def _doubtful(c: dict) -> bool:
    """Most of the class's pixels lie where the scene is unlike the training data."""
    return (c.get("unfamiliar_pct") or 0.0) >= MOSTLY_PCT


def _by_gap(c: dict) -> bool:
    """Most of the class's pixels lay under cloud or in the optical gaps, where the gate leans on SAR by design."""
    return (c.get("cloud_pct") or 0.0) + (c.get("sar_only_pct") or 0.0) >= MOSTLY_PCT


def _composition(facts: dict, f: Formatter) -> str:
    scene, classes = facts["scene"], _present(facts)
    out = []
    if scene.get("total_area_ha") is not None:
        out.append(f"The map classifies {f.ha(scene['total_area_ha'])} of valid area "
                   f"({f.count(scene['valid_pixels'])} pixels) into {scene['classes_present']} "
                   f"land-cover {'class' if scene['classes_present'] == 1 else 'classes'}.")
    if not classes:
        out.append("No valid pixel was classified, so there is nothing to interpret.")
        return " ".join(out)
    top = classes[0]
    lead = (f"{_cap(top['name'])} {_verb(top['name'], 'dominates', 'dominate')} the scene with "
            f"{f.pct(top['share_pct'])} of the valid area"
            if top["share_pct"] >= 50.0 else
            f"No class dominates outright; the largest is {top['name']} with "
            f"{f.pct(top['share_pct'])} of the valid area")
    if top.get("area_ha") is not None:
        lead += f" ({f.ha(top['area_ha'])})"
    rest = [f"{c['name']} ({f.pct(c['share_pct'])})" for c in classes[1:3]]
    out.append(lead + (f", followed by {_join(rest)}." if rest else "."))
    small = [c["name"] for c in classes[3:]]
    if small:
        out.append(f"{_cap(_join(small))} make up the remainder.")
    absent = [c["name"] for c in facts.get("classes") or [] if c.get("pixels", 0) == 0]
    if absent:
        out.append(f"{_cap(_join(absent))} {'was' if len(absent) == 1 else 'were'} not predicted "
                   f"anywhere in the valid area.")
    return " ".join(out)


def _confidence(facts: dict, f: Formatter) -> str:
    scene, classes = facts["scene"], _present(facts)
    out = []
    if scene.get("mean_confidence_pct") is not None:
        s = f"The mean confidence of the winning class is {f.pct(scene['mean_confidence_pct'])}"
        if scene.get("low_confidence_pct") is not None:
            s += (f", and {f.pct(scene['low_confidence_pct'])} of the valid pixels are "
                  f"low-confidence")
        out.append(s + ".")
    rated = [c for c in classes if c.get("mean_confidence_pct") is not None]
    if len(rated) >= 2:  # the two weakest of three or more, the weaker of two; the most certain if not among them
        weak = sorted(rated, key=lambda c: (c["mean_confidence_pct"], c["name"]))[:2 if len(rated) > 2 else 1]
        parts = []
        for c in weak:
            p = f"{c['name']} (mean {f.pct(c['mean_confidence_pct'])}"
            if c.get("low_confidence_pct") is not None:
                p += f", {f.pct(c['low_confidence_pct'])} of its pixels low-confidence"
            parts.append(p + ")")
        out.append(f"Confidence is lowest for {_join(parts)}; {_why_unsure(weak)}.")
        best = max(rated, key=lambda c: (c["mean_confidence_pct"], c["name"]))
        s = (f"{_cap(best['name'])} {_verb(best['name'], 'is', 'are')} the most certain class, at "
             f"{f.pct(best['mean_confidence_pct'])} mean confidence")
        if (scene.get("unfamiliar_pct") or 0.0) >= UNFAMILIAR_WARN_PCT:
            s += ", but inside the part of the scene unlike the training data a high confidence proves nothing"
        if best not in weak and (best.get("low_confidence_pct") or 0.0) < MOSTLY_PCT:  # not "certain" when most
            out.append(s + ".")                                                      # of its pixels are not
    return " ".join(out)


#: What a decision from SAR alone is worth, for a model without its own SAR-alone scores (no numbers).
_SAR_ALONE_CAVEAT = ("a decision from SAR alone is less sure than one with the optical, for the land classes most "
                     "of all (calm open water is dark to the radar, but wind-roughened water, wet soil and wet snow "
                     "can look alike, and crops, rangeland and built area are told apart far less well), so read "
                     "the classes there with care")
#: The caveat where the sentence on the optical gaps has just given it in full.
_CAVEAT_AGAIN = "as in the gaps, read the classes there with care"


#: Percentage points of SAR weight by which clouded pixels must exceed clear ones to be called decided "more"
#: from SAR (0.7 points were).
LEAN_MIN_PCT = 5.0


def sar_lean(on_cloud_pct: float, on_clear_pct: float) -> str:
    """How the fusion gate leaned on SAR on clouded pixels against clear ones (percent SAR weight): "mostly",
    "more", or "" where it did not lean more on SAR by LEAN_MIN_PCT points."""
    if on_cloud_pct - on_clear_pct < LEAN_MIN_PCT:
        return ""
    return "mostly" if on_cloud_pct >= LED_PCT else "more"


def no_lean(on_cloud_pct: float, on_clear_pct: float) -> str:
    """How not leaning on SAR reads: "leaned hardly more" when the clouded pixels' SAR weight is above the clear
    ones' by less than LEAN_MIN_PCT points, else "did not lean more"."""
    return "leaned hardly more" if on_cloud_pct > on_clear_pct else "did not lean more"


def _input_quality(scene: dict, f: Formatter, scored: bool = False) -> List[str]:
    """Sentences on the optical input: nodata, cloud, the gaps classified from SAR alone, and how much the
    fusion gate leaned on SAR there; without the model's own SAR-alone scores (`scored`, said by _sar_only_trust)
    what a decision from SAR alone is worth."""
    inv, cloud, gaps = scene.get("optical_invalid_pct"), scene.get("cloud_pct"), scene.get("sar_only_pct")
    if inv is None and cloud is None:
        return []
    if (cloud or 0.0) + (inv or 0.0) == 0.0:
        return ["The optical input has no nodata, cloud, haze or cloud shadow, so both modalities were "
                "available everywhere."]
    out = []
    if inv:
        out.append(f"{f.pct(inv)} of the optical input is nodata or invalid"
                   + ((f"; where the SAR has data there, the map was classified from SAR alone ({f.pct(gaps)} of "
                       f"the map)" + ("." if scored else f": {_SAR_ALONE_CAVEAT}.")) if gaps else
                      "; those pixels are left without a class."))
    unclassified = scene.get("unclassified_pct")
    said = 0.0 if gaps else (inv or 0.0)  # optical gaps left without a class (--no-sar-fill), said above
    if unclassified and unclassified >= 1.0 + said:
        out.append(f"{f.pct(unclassified)} of the output grid has no class: the SAR, or both rasters, have no data "
                   f"there (beyond the SAR's coverage, or outside the scene).")
    if cloud:
        caveat = _CAVEAT_AGAIN if inv and gaps else _SAR_ALONE_CAVEAT  # the gaps' sentence gave it in full
        s = f"{f.pct(cloud)} of the map was under cloud, haze or cloud shadow"
        on_cloud, on_clear = scene.get("sar_reliance_clouded_pct"), scene.get("sar_reliance_clear_pct")
        if on_cloud is not None and on_clear is not None:
            word = sar_lean(on_cloud, on_clear)
            s += (f"; there the fusion gate leaned {word} on SAR ({f.pct(on_cloud)} SAR weight in the fusion "
                  f"gate, against {f.pct(on_clear)} on clear pixels)" if word else
                  f"; the fusion gate {no_lean(on_cloud, on_clear)} on SAR there ({f.pct(on_cloud)} SAR "
                  f"weight, against "
                  f"{f.pct(on_clear)} on clear pixels), so read the map there with care")
            if word and not scored:
                s += f": {caveat}"
        elif not scored:
            s += f"; there the classes rest on SAR more than elsewhere: {caveat}"
        out.append(s + ".")
    return out


def _sar_only_trust(scene: dict, model: dict, f: Formatter) -> List[str]:
    """Where part of the map came from SAR alone, or lay under cloud (where a cloud-gated network decides as from SAR
    alone): how this model scored from SAR alone on the user's held-out polygons, against its score with the optical
    (a model trained from polygons records both), and the classes it took for others from SAR alone; on a clear scene
    its held-out score alone, called poor below POOR_MACRO_F1."""
    alone, full = model.get("sar_only_heldout_macro_f1"), model.get("heldout_macro_f1")
    gaps, clouded = bool(scene.get("sar_only_pct")), (scene.get("cloud_pct") or 0.0) >= CLOUD_TRUST_PCT
    if full is not None and (not (gaps or clouded) or alone is None):  # its honest score, said on a clear scene too
        poor = (": a poor score, so read the whole map as a draft and add labels where it errs"
                if full < POOR_MACRO_F1 else "")
        return [f"On your held-out {model.get('labels_kind') or 'polygons'} this model scored macro-F1 {full:.2f}"
                f"{poor}."]
    if not (gaps or clouded) or alone is None or full is None:
        return []
    which = ("the clouded pixels and the optical gaps" if gaps else "the clouded pixels") if clouded else "those pixels"
    caution = (f"read {which} with more care than the rest" if alone < full else
               f"{which} are about as reliable as the rest")
    as_alone = ", and under thick cloud it decides as from SAR alone" if clouded else ""
    out = [f"On your held-out {model.get('labels_kind') or 'polygons'} this model scored macro-F1 {alone:.2f} from "
           f"SAR alone against {full:.2f} "
           f"with the optical{as_alone}, so {caution}."]
    part = "the part of the map decided from SAR alone" + (" or under cloud" if clouded else "")
    pairs = [p for p in model.get("sar_only_lookalikes") or [] if p.get("share_of_reference_pct") is not None]
    if pairs:
        said = [f"{f.pct(p['share_of_reference_pct'])} of the held-out {p['reference']} pixels for {p['predicted']}"
                + ("" if p.get("with_optical_pct") is None else f" ({f.pct(p['with_optical_pct'])} with the optical)")
                for p in pairs]
        out.append(f"From SAR alone it took {_join(said)}, so {_join(_pair_names(pairs))} in {part} are doubtful.")
    return out


def _pair_names(pairs: List[dict]) -> List[str]:
    """The class names of look-alike pairs, each once, in order."""
    names: List[str] = []
    for p in pairs:
        for n in (p["reference"], p["predicted"]):
            if n not in names:
                names.append(n)
    return names


def _snow_ruled_out(scene: dict, f: Formatter) -> List[str]:
    """A sentence on the pixels the snow check gave another class (models.cloud.snow_possible)."""
    snow = scene.get("snow_ruled_out_pct")
    if not snow or snow < SNOW_SAY_PCT:
        return []
    clouded = scene.get("snow_ruled_out_clouded_pct") or 0.0
    clear = scene.get("snow_ruled_out_clear_pct", snow) or 0.0
    out = []
    if clear >= SNOW_SAY_PCT:
        out.append(f"On {f.pct(clear)} of the map the network said snow or ice where the clear optical shows no snow "
                   f"cover (its snow index), so the next most likely class was mapped there; a network that mistakes "
                   f"this scene for snow deserves little trust on it.")
    if clouded >= SNOW_SAY_PCT:
        out.append(f"On {f.pct(clouded)} of the map, under cloud, the network said snow or ice; there the optical "
                   f"sees little or no ground and the radar cannot tell snow, and the clear ground around shows "
                   f"none, so the next most likely class was mapped.")
    return out


def _unfamiliar(facts: dict, f: Formatter) -> str:
    """A warning when the model found much of the scene unlike its training data, or, for a model trained on labels
    too few to measure it, that it cannot tell."""
    scene = facts["scene"]
    u = scene.get("unfamiliar_pct")
    model = facts.get("model") or {}
    if u is None and model.get("familiarity_unmeasured"):
        kind = model.get("labels_kind") or "polygons"
        return (f"This model cannot tell where a scene is unlike its training data: its {kind} covered too little "
                f"of their scene to measure that, so nothing here says where the map should not be trusted. "
                f"Compare the map with imagery, above all away from the area it was trained on, or train it with "
                f"{kind} spread wider over the scene.")
    if u is None or u < UNFAMILIAR_WARN_PCT:
        return ""
    out = [f"The model should not be trusted on {f.pct(u)} of this map: there its features are unlike "
           f"anything in its training data, so the classes it gives there are guesses, not findings, "
           f"whatever their confidence."]
    cloud = scene.get("cloud_pct") or 0.0
    bright = scene.get("optical_offset_suspected") and cloud >= MOSTLY_PCT  # thick cloud is bright everywhere too
    if bright:
        out.append(f"First, though, the optical values are bright everywhere, as under thick cloud ({f.pct(cloud)} "
                   "of the map lay under cloud) or in Sentinel-2 of a newer processing baseline whose reflectance "
                   "offset was not removed: if the scene is not this cloudy, classify again with the offset removed "
                   "(the run's notes say how).")
    elif scene.get("optical_offset_suspected"):
        out.append("First, though, the optical values look like Sentinel-2 of a newer processing baseline whose "
                   "reflectance offset was not removed (the run's notes say how to remove it): classify again with "
                   "the offset removed, and much of this may go.")
    if scene.get("smaller_than_calibration"):
        out.append("This scene is also smaller than the scenes the score was calibrated on, so the model sees its "
                   "edges almost everywhere, which the score reads as unlike the training data: the share "
                   "overstates; classify a larger extent around your area to check, and if the share stays high "
                   "train the model on your area.")
    gaps = scene.get("sar_only_pct") or 0.0  # the gaps in the map; where neither raster has data there is no map
    if gaps >= UNFAMILIAR_WARN_PCT:
        out.append(f"Part of this may come from the optical gaps ({f.pct(gaps)} of the map was classified from SAR "
                   f"alone): "
                   f"where the optical is missing the model's features differ from those of its training scenes, "
                   f"around the gaps too, and the score reads that as unlike the training data; a scene without "
                   f"gaps may show far less.")
    if cloud >= UNFAMILIAR_WARN_PCT and not bright:
        out.append(f"Part of this may come from the cloud ({f.pct(cloud)} of the map lay under cloud, haze or "
                   f"shadow): the optical the model sees there is unlike the ground of its training scenes, and the "
                   f"score reads that as unlike the training data even where the class rests on the radar; a clear "
                   f"scene of the same place may show far less.")
    if scene.get("optical_offset_suspected") or scene.get("smaller_than_calibration"):
        pass
    elif (facts.get("model") or {}).get("from_labels"):
        kind = (facts.get("model") or {}).get("labels_kind") or "polygons"
        out.append(f"This model was trained on your own {kind}, so these are parts of the scene unlike the "
                   f"ground around them: add {kind} of the cover you see there (the unfamiliar raster shows where; "
                   f"Where to label next in the Train tab, or claire suggest, picks places the model is unsure of) "
                   f"and train again before "
                   f"using those parts of the map.")
    elif cloud + gaps >= MOSTLY_PCT:
        out.append("If a clear scene of the same place shows as much, train the model on your area with a few "
                   "polygons per class before using those parts of the map.")
    else:
        out.append("Train it on your area with a few polygons per class (the Train tab in QGIS, or claire train "
                   "with your polygons) before using those parts of the map.")
    return " ".join(out)


def _doubt(facts: dict, f: Formatter) -> str:
    """The classes most of whose pixels lie where the scene is unlike the training data, or under cloud or in the
    optical gaps (decided from SAR there): said by name, so that none of them reads as a finding."""
    classes = _present(facts)
    unlike = [c for c in classes if _doubtful(c)]
    gapped = [c for c in classes if _by_gap(c) and not _doubtful(c)]
    out = []
    if unlike and len(unlike) == len(classes) and len(classes) > 1:
        out.append("Every class of this map lies mostly where the scene is unlike the training data: none of them "
                   "is a finding.")
    elif unlike:
        listed = [f"{c['name']} ({f.pct(c['unfamiliar_pct'])} of {_verb(c['name'], 'its', 'their')} pixels)"
                  for c in unlike[:4]]
        one = len(unlike) == 1
        out.append(f"{_cap(_join(listed))}{' and more' if len(unlike) > 4 else ''} "
                   f"{_verb(unlike[0]['name'], 'lies', 'lie') if one else 'lie'} mostly where the scene is unlike "
                   f"the training data: read {'that class' if one else 'those classes'} as doubtful, not as "
                   f"{'a finding' if one else 'findings'}.")
    if gapped:
        def where(c: dict) -> str:
            its = _verb(c["name"], "its", "their")
            parts = ([f"{f.pct(c['cloud_pct'])} of {its} pixels under cloud"] if c.get("cloud_pct") else []) + \
                    ([f"{f.pct(c['sar_only_pct'])} in the optical gaps"] if c.get("sar_only_pct") else [])
            return f"{c['name']} ({_join(parts)})"
        one = len(gapped) == 1
        verb = _verb(gapped[0]["name"], "was", "were") if one else "were"
        out.append(f"{_cap(_join([where(c) for c in gapped[:4]]))} {verb} mapped mostly "
                   f"where the optical could not see, so from the radar with little or no optical help.")
    return " ".join(out)


def _modality(facts: dict, f: Formatter) -> str:
    scene, classes = facts["scene"], _present(facts)
    model = facts.get("model") or {}
    out = []
    scored = model.get("sar_only_heldout_macro_f1") is not None and model.get("heldout_macro_f1") is not None
    out += _input_quality(scene, f, scored) + _sar_only_trust(scene, model, f) + _snow_ruled_out(scene, f)
    if scene.get("sar_reliance_pct") is None:
        if model.get("arch") == FOREST:
            out.append("The map comes from a random forest that decides each pixel from its own optical and SAR "
                       "values, without the surrounding pixels and without a fusion gate, so modality reliance "
                       "is not available.")
        else:
            out.append("The model reports no fusion gate, so modality reliance is not available.")
        return " ".join(out)
    if model.get("arch") == ENSEMBLE:
        w = model.get("forest_weight_pct")
        if w == 0:
            out.append("The map comes from a network and a random forest averaged with the forest's weight at "
                       f"{f.pct(w)}, as chosen on the held-out {model.get('labels_kind') or 'polygons'} of its "
                       "training: in effect the network's "
                       "map, which the fusion figures below describe.")
        else:
            share = "" if w is None else f", which has {f.pct(w)} of the weight where the optical image is clear"
            out.append("The map averages a network with a random forest that decides each pixel from its own optical "
                       f"and SAR values{share}; the forest counts less where the optical image is clouded, and the "
                       "fusion figures below describe the network's part.")
    # "the SAR", not the card's sensor name: that names what the model was trained on, not the user's raster
    out.append(f"Across the scene the fusion gate gave the SAR {f.pct(scene['sar_reliance_pct'])}"
               f" of the weight and the optical bands {f.pct(scene['optical_reliance_pct'])}; this weight says how "
               f"the network mixed the two sensors' features, not which of them decided a class.")
    out += _class_modality(classes, f)
    return " ".join(out)


def _class_modality(classes: List[dict], f: Formatter) -> List[str]:
    """Where the fusion gate weighted the radar or the optical most, with the radar's physical handle on the class
    only where it can hold: a class of some size, mostly familiar ground with the optical seen, and a weight clear
    of a half (LED_PCT). The weight is how the network mixed features, not which sensor decided (QA round 13:
    turning the SAR input changed 86 % of a scene's classes at a mean SAR weight of 50 %): said as such."""
    rated = [c for c in classes if c.get("sar_reliance_pct") is not None]
    out = []
    led = sorted([c for c in rated if c["sar_reliance_pct"] >= LED_PCT],
                 key=lambda c: (-c["sar_reliance_pct"], c["name"]))
    if led:
        c = led[0]
        s = f"The gate gave the SAR most of its weight for {c['name']} ({f.pct(c['sar_reliance_pct'])})"
        cue = _sar_cue(c["name"])
        if _by_gap(c):
            s += (f", because most of {_verb(c['name'], 'it', 'them')} lay where the optical could not see, not for "
                  f"what {_verb(c['name'], 'it is', 'they are')}.")
        elif _doubtful(c) or c["share_pct"] < NOTABLE_SHARE_PCT or not cue:
            s += "."
        else:
            s += f"; the radar has a physical handle on it: {cue}."
        out.append(s)
        if len(led) > 1:
            others = [f"{c['name']} ({f.pct(c['sar_reliance_pct'])})" for c in led[1:3]]
            out.append(f"It also gave the SAR most of its weight for {_join(others)}.")
    elif rated:
        c = max(rated, key=lambda c: (c["sar_reliance_pct"], c["name"]))
        if c["sar_reliance_pct"] > 50.0:  # a little over half is "most", but no lead: say it is near even
            out.append(f"For no class did the gate clearly favour the SAR; it came closest for {c['name']} "
                       f"({f.pct(c['sar_reliance_pct'])}), near an even split.")
        else:
            out.append(f"For no class did the gate put most weight on the SAR; its SAR weight was highest for "
                       f"{c['name']} ({f.pct(c['sar_reliance_pct'])}).")
    opt = [c for c in rated if c["sar_reliance_pct"] <= 100.0 - LED_PCT and c not in led[:1]
           and c["share_pct"] >= NOTABLE_SHARE_PCT and not _doubtful(c)]
    if opt:
        c = min(opt, key=lambda c: (c["sar_reliance_pct"], c["name"]))
        out.append(f"It gave the optical bands most of its weight for {c['name']} "
                   f"({f.pct(c['optical_reliance_pct'])} optical).")
    return out


def _kappa_word(k: float) -> str:
    if k >= 0.8:
        return "almost perfect"
    if k >= 0.6:
        return "substantial"
    if k >= 0.4:
        return "moderate"
    if k >= 0.2:
        return "fair"
    return "poor"


def _reference(facts: dict, f: Formatter) -> str:
    m = facts.get("metrics")
    if not m:
        return ""
    out = []
    head = []
    if m.get("oa_pct") is not None:
        head.append(f"overall accuracy is {f.pct(m['oa_pct'])}")
    if m.get("miou_pct") is not None:
        head.append(f"mean IoU {f.pct(m['miou_pct'])}")
    if m.get("kappa") is not None:
        head.append(f"Cohen's kappa {f.kappa(m['kappa'])}, which is {_kappa_word(m['kappa'])} "
                    f"agreement")
    if head:
        out.append("Against the reference raster, " + _join(head) + ".")
    if m.get("reference_left_out_pct"):
        codes = ", ".join(str(c) for c in m.get("reference_left_out_codes") or [])
        out.append(f"{f.pct(m['reference_left_out_pct'])} of the reference's pixels hold codes that are no class of "
                   f"this map ({codes}) and were left out of these figures.")
    if m.get("kappa") is not None and m["kappa"] < 0.4:
        out.append("Agreement this low means the map should not be used before the model, the "
                   "band order and the reference are checked.")
    rated = [c for c in m.get("per_class") or [] if c.get("f1_pct") is not None and c.get("support")]
    if rated:
        ranked = sorted(rated, key=lambda c: (-c["f1_pct"], c["name"]))
        good = [c for c in ranked[:2] if c["f1_pct"] >= RELIABLE_F1_PCT]
        if good:
            out.append("The most reliable " + ("classes are " if len(good) > 1 else "class is ")
                       + _join([f"{c['name']} (F1 {f.pct(c['f1_pct'])}, IoU {f.pct(c['iou_pct'])})"
                                for c in good]) + ".")
        else:
            best = ranked[0]
            out.append(f"No class is mapped reliably; the best is {best['name']} with F1 "
                       f"{f.pct(best['f1_pct'])}.")
            good = [best]
        for c in ranked[len(good):][-2:][::-1]:
            if c is not ranked[-1] and c["f1_pct"] >= RELIABLE_F1_PCT:
                continue  # not weak: only the weakest is named then
            s = (f"{_cap(c['name'])} {_verb(c['name'], 'is', 'are')} the weakest" if c is ranked[-1] else
                 f"{_cap(c['name'])} {_verb(c['name'], 'is', 'are')} also weak")
            s += f", with F1 {f.pct(c['f1_pct'])}"
            p, r = c.get("precision_pct"), c.get("recall_pct")
            if p is not None and r is not None:
                s += f" (precision {f.pct(p)}, recall {f.pct(r)})"
                if r < p:
                    s += "; it is under-mapped, so real areas of it are missed"
                elif p < r:
                    s += "; it is over-mapped, so other cover is labelled as it"
            out.append(s + ".")
    pairs = m.get("confused_pairs") or []
    if pairs:
        p = pairs[0]
        s = (f"The most frequent confusion is {p['reference']} mapped as {p['predicted']} "
             f"({f.count(p['pixels'])} pixels")
        if p.get("share_of_reference_pct") is not None:
            s += f", {f.pct(p['share_of_reference_pct'])} of the reference {p['reference']}"
        out.append(s + ").")
        if len(pairs) > 1:
            rest = [f"{q['reference']} as {q['predicted']} ({f.count(q['pixels'])} pixels)"
                    for q in pairs[1:]]
            out.append(f"Further confusions are {_join(rest)}.")
    return " ".join(out)


def _focus(facts: dict, f: Formatter) -> str:
    c = facts.get("focus")
    if not c:
        return ""
    out = [f"Selected class {c['name']}: it covers {f.pct(c['share_pct'] or 0.0)} of the valid area"
           + (f" ({f.ha(c['area_ha'])})" if c.get("area_ha") is not None else "") + "."]
    if c.get("mean_confidence_pct") is not None:
        s = f"Its mean confidence is {f.pct(c['mean_confidence_pct'])}"
        if c.get("low_confidence_pct") is not None:
            s += f" and {f.pct(c['low_confidence_pct'])} of its pixels are low-confidence"
        out.append(s + ".")
    if _doubtful(c):
        out.append(f"{f.pct(c['unfamiliar_pct'])} of its pixels lie where the scene is unlike the training data: "
                   f"read it as doubtful, not as a finding.")
    if c.get("sar_reliance_pct") is not None:
        w = c["sar_reliance_pct"]
        s = f"The fusion gate gave SAR {f.pct(w)} of the weight for it"
        if _by_gap(c):
            out.append(s + ", mostly because it lay where the optical could not see (cloud or gaps).")
        elif LED_PCT > w > 100.0 - LED_PCT:
            out.append(s + ", so both modalities weighed about alike.")
        else:
            led = w >= LED_PCT
            s += ", more than to the " + ("optical bands" if led else "radar") + " (a weight in how the features " \
                 "were mixed, not which sensor decided)"
            cue = _sar_cue(c["name"]) if led and not _doubtful(c) else None
            out.append(s + (f"; the radar has a physical handle on it: {cue}." if cue else "."))
    m = c.get("metrics")
    said = [f"{label} {f.pct(m[key])}" for key, label in (("f1_pct", "F1"), ("iou_pct", "IoU"),
            ("precision_pct", "precision"), ("recall_pct", "recall")) if m and m.get(key) is not None]
    if m and m.get("support") == 0 and m.get("recall_pct") is None:  # no recall: not a class of the reference
        out.append(f"The reference has no {c['name']}: every pixel mapped as it is another class there"
                   + (f" (precision {f.pct(m['precision_pct'])})." if m.get("precision_pct") is not None else "."))
    elif said:  # a class the reference lacks has a precision but no recall (QA round 22: a TypeError)
        out.append(f"Against the reference: {_join(said)}.")
    for p in (c.get("confused_pairs") or [])[:1]:
        out.append(f"Its main confusion is {p['reference']} mapped as {p['predicted']} "
                   f"({f.count(p['pixels'])} pixels).")
    return " ".join(out)


def caveats(facts: dict) -> str:
    """The paragraphs no explanation may leave out (the scene unlike the training data, and the classes that lie
    mostly there or where the optical could not see), as the template writes them; "" when none apply."""
    f = Formatter(facts)
    return "\n\n".join(t for t in (_unfamiliar(facts, f).strip(), _doubt(facts, f).strip()) if t)


def write(facts: dict, on_text: Optional[Callable[[str], None]] = None) -> str:
    """Write the explanation of a facts record; paragraphs are passed to `on_text` as they are made."""
    f = Formatter(facts)
    paragraphs = []
    token = _KEEP_CASE.set(_case_twins(facts))
    try:
        for part in (_unfamiliar, _focus, _composition, _doubt, _confidence, _modality, _reference):
            text = part(facts, f).strip()
            if not text:
                continue
            chunk = ("\n\n" if paragraphs else "") + text
            paragraphs.append(text)
            if on_text is not None:
                on_text(chunk)
    finally:
        _KEEP_CASE.reset(token)
    return "\n\n".join(paragraphs)
