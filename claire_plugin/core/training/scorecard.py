"""The validation report of a polygon training run: scores on held-out polygons, as JSON and HTML.

Every score is `models.metrics.metrics_from_confusion` of a confusion matrix whose rows are the reference
(the held-out labels) and whose columns are the prediction, plus macro-F1. The polygon-split numbers are
model validation on the user's own polygons, not a map accuracy estimate (that needs a probability sample).
"""
from __future__ import annotations

import html
import json
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ....models.metrics import added_confusions, confusion_matrix, macro_f1, metrics_from_confusion, metrics_with_other
from ....models.quoting import quoted
from ..io.atomic import OutputSet
from ..numbers import counted
from .labels import POINTS, POLYGONS, ClassInfo, LabelPixels, Units, units_of

ARM_TITLES = {
    "finetuned": "CLAIRE fine-tuned (optical + SAR)",
    "untuned": "CLAIRE base checkpoint, not tuned",
    "rf_optical_sar": "Random forest, optical + SAR",
    "rf_optical": "Random forest, optical only",
    "ensemble": "CLAIRE + random forest, averaged",
    "rf_sar": "Random forest, SAR only",
}
def metric_title(key: str, many: str = "polygons") -> str:
    """What a checkpoint card's metrics entry is, in words (claire info, the picker)."""
    titles = {
        "heldout_polygons": f"held-out {many}",
        "heldout_polygons_synthetic_clouds": f"held-out {many}, synthetic clouds",
        "heldout_polygons_sar_only": f"held-out {many}, from SAR alone",
        "heldout_polygons_crossfitted": f"held-out {many}, cross-fitted (each half with the weight chosen on the "
                                        f"other: what choosing the weight gives, of no single model)",
        "random_pixel_split_rf": "leakage check, not this model: a random forest scored on a random pixel split "
                                 "(neighbouring pixels of one polygon on both sides flatter it)",
    }
    if key in titles:
        return titles[key]
    return _dataset_metric_title(str(key))


#: Words for the parts of a folder training's metrics keys ("heldout_S2L1C_synthetic_clouds").
_KEY_PARTS = (("heldout", "held-out"), ("training_data", "the training images (not an accuracy estimate)"),
              ("S2L1C", "Level-1C"), ("S2L2A", "Level-2A"), ("synthetic_clouds", "synthetic clouds"))


def _dataset_metric_title(key: str) -> str:
    """"held-out, Level-1C, synthetic clouds" for "heldout_S2L1C_synthetic_clouds"; unknown parts as
    written, underscores as spaces."""
    words, rest = [], key
    while rest:
        for part, word in _KEY_PARTS:
            if rest == part or rest.startswith(part + "_"):
                words.append(word)
                rest = rest[len(part) + 1:]
                break
        else:
            words.append(rest.replace("_", " "))
            break
    return ", ".join(words)


def arm_title(report: Dict[str, Any], arm: str) -> str:
    """An arm's title in this report: the network is "trained from scratch" when it was, not "fine-tuned"; the
    averaged arm's scores are cross-fitted (each half of the held-out polygons scored at the weight chosen on the
    other), an estimate of no single model, which its title says (its file's own scores are on its card)."""
    if arm == "finetuned" and scratch(report):
        return "CLAIRE trained from scratch (optical + SAR)"
    if arm == "ensemble":
        return ARM_TITLES[arm] + ", cross-fitted"
    start = started_from(report) if arm == "untuned" else None
    if start:
        return f"the checkpoint this run started from ({os.path.basename(start)}), as it was"
    return ARM_TITLES.get(arm, arm)


def row_title(report: Dict[str, Any], arm: str) -> str:
    """An arm's title in the tables beside the main one (SAR alone, macroclasses, a card's other models): the base
    named as arm_title names it, the others as ARM_TITLES does."""
    return arm_title(report, arm) if arm == "untuned" else ARM_TITLES.get(arm, arm)


def scratch(report: Dict[str, Any]) -> bool:
    """Whether the report's network was trained from random weights (--from-scratch)."""
    return bool((((report.get("training") or {}).get("config")) or {}).get("from_scratch"))


#: The report's key of the checkpoint each arm was written as (the fine-tuned network's is the run's output).
ARM_CHECKPOINT = {"rf_optical_sar": "forest_checkpoint", "ensemble": "ensemble_checkpoint"}
#: The order the arms are shown in (CLI, Processing log, the dock, the HTML report).
ARM_ORDER = ["finetuned", "ensemble", "untuned", "rf_optical_sar", "rf_optical"]


def ordered_arms(report: Dict[str, Any]) -> List[str]:
    """The report's arms in ARM_ORDER (arms it does not know last)."""
    arms = list(report.get("arms") or {})
    return [a for a in ARM_ORDER if a in arms] + [a for a in arms if a not in ARM_ORDER]


def weight_phrase(report: Dict[str, Any]) -> str:
    """"the forest's weight W (chosen on your held-out polygons) falling under cloud" for the run's averaged model."""
    weight = report.get("ensemble_weight") or {}
    chosen = weight.get("chosen")
    if chosen is None:
        return "the forest's weight falling under cloud"
    u = _u(report)
    how = (f"chosen on your held-out {u.many}" if weight.get("halves") else
           f"the default: too few held-out {u.many} to choose")
    if chosen == 0:  # nothing of the forest left: say what the averaged model then is
        return f"the forest's weight 0 ({how}), so your CLAIRE model alone"
    return f"the forest's weight {chosen:g} ({how}) falling under cloud"


def ensemble_sentence(report: Dict[str, Any]) -> str:
    """What the report's averaged model is: how the two are averaged, the forest's weight and how it was chosen."""
    weight = report.get("ensemble_weight") or {}
    chosen, written = weight.get("chosen"), report.get("ensemble_checkpoint")
    text = (f"{ARM_TITLES['ensemble']}: the class probabilities of your CLAIRE model and of the random forest "
            f"(optical + SAR) averaged per pixel, the forest's weight "
            + (f"{chosen:g}" if chosen is not None else "w") + " where the optical is clear and falling to 0 with "
            "the cloud probability, so that clouded pixels are the network's")
    if chosen == 0:
        text += f" (weight 0: on your held-out {_u(report).many} the forest did not help, so this is your CLAIRE model)"
    if weight.get("how"):
        text += f". The weight was {weight['how']}"
    return text + (f". Written as {os.path.basename(written)}." if written else ".")


#: The forest's macro-F1 lead on the clear held-out polygons from which the report says so.
FOREST_LEAD = 0.02


def base_lacks(report: Dict[str, Any]) -> List[str]:
    """The user's classes the base checkpoint has no class for (by name; report["untuned_class_map"])."""
    cmap = report.get("untuned_class_map")
    if cmap is None:
        return []
    mapped = {int(v) for v in cmap if int(v) >= 0}
    return [str(c["name"]) for i, c in enumerate(report.get("classes") or []) if int(c.get("index", i)) not in mapped]


def untuned_verdict(report: Dict[str, Any]) -> Optional[str]:
    """A sentence for the user when the base checkpoint, not tuned, scored higher than the fine-tuned network on
    the clear held-out polygons (by FOREST_LEAD macro-F1 or more): fine-tuning did not help, and what to do; where
    the base has no class for some of the user's, it is no map to take instead, and the sentence says so."""
    arms = report.get("arms") or {}
    a = ((arms.get("finetuned") or {}).get("clear") or {}).get("macro_f1")
    b = ((arms.get("untuned") or {}).get("clear") or {}).get("macro_f1")
    if a is None or b is None or b - a < FOREST_LEAD:
        return None
    base = os.path.basename(str((report.get("training") or {}).get("base_checkpoint") or "")) or "the base checkpoint"
    u = _u(report)
    from .spread import difference_of

    _diff, ci = difference_of(report, "untuned")
    lacks = base_lacks(report)
    if lacks:
        shown = ", ".join(quoted(n) for n in lacks[:4]) + (f" and {len(lacks) - 4} more" if len(lacks) > 4 else "")
        return (f"The base checkpoint as it was ({base}) scored higher on the held-out {u.many} (macro-F1 {b:.2f} "
                f"against {a:.2f}), but it has no class for {shown}: it is no map of your legend. Fine-tuning has not "
                f"shown a gain yet: draw more {u.many} for each class, spread over the scene, and train again "
                f"(or for longer).")
    if not ci or ci[1] >= 0:  # within what the held-out polygons can tell apart (or no interval): no advice to switch
        trained = "training from scratch" if scratch(report) else "fine-tuning"
        return (f"The base checkpoint as it was ({base}) scored a little higher on the held-out {u.many} (macro-F1 "
                f"{b:.2f} against {a:.2f}), by less than these {u.many} can tell apart: {trained} has not shown a "
                f"gain yet. Draw more {u.many} for each class, spread over the scene, and train again.")
    if scratch(report):
        return (f"The base checkpoint as it was ({base}) scored higher on the held-out {u.many} than the network "
                f"trained from scratch (macro-F1 {b:.2f} against {a:.2f}). Map with the base checkpoint, or "
                f"fine-tune it instead of training from scratch.")
    return (f"The base checkpoint as it was ({base}) scored higher on the held-out {u.many} than after fine-tuning "
            f"(macro-F1 {b:.2f} against {a:.2f}): on these {u.many} fine-tuning did not help. Map with the base "
            f"checkpoint, or draw more {u.many} for each class, spread over the scene, and train again.")


def verdicts(report: Dict[str, Any]) -> List[str]:
    """The report's sentences on which model to map with (untuned_verdict, forest_verdict), how sure the
    held-out polygons let one be of it (spread_sentence) and, started from an earlier training, how the new
    model compares with it (start_sentence), those that apply."""
    return [v for v in (untuned_verdict(report), forest_verdict(report), spread_sentence(report),
                        start_sentence(report)) if v]


def started_from(report: Dict[str, Any]) -> Optional[str]:
    """The checkpoint the run started from when it is not the bundled one (an earlier training's), else None."""
    from ...paths import DEFAULT_CHECKPOINT

    base = str((report.get("training") or {}).get("base_checkpoint") or "")
    if not base or os.path.abspath(base) == os.path.abspath(DEFAULT_CHECKPOINT) or \
            base == os.path.basename(DEFAULT_CHECKPOINT):  # a card keeps the file name only
        return None
    return base


def start_sentence(report: Dict[str, Any]) -> Optional[str]:
    """Round against round: the fine-tuned network against the checkpoint the run started from when that is the
    user's own (an earlier training), on the same held-out pixels, with the paired 95 % interval of the
    difference (core.training.spread); None otherwise. Validated on the earlier run's held-out layer, this is
    the earlier model and the new one scored on the same polygons."""
    from .spread import difference_of

    base = started_from(report)
    diff, ci = difference_of(report, "untuned")
    if base is None or diff is None:
        return None
    arms = report["arms"]
    a, b = arms["finetuned"]["clear"]["macro_f1"], arms["untuned"]["clear"]["macro_f1"]
    u = _u(report)
    separate = (report.get("split") or {}).get("kind") == "separate layer"
    where = f"the same held-out {u.many}" if separate else f"these held-out {u.many}"
    text = (f"Against the checkpoint you started from ({os.path.basename(base)}), on {where}: macro-F1 {a:.2f} "
            f"against {b:.2f} ({diff:+.2f}")
    shown = interval_text(ci, signed=True)
    split = report.get("split") or {}
    if split.get("optimistic"):  # counted (core.training.continued)
        leak = f" Optimistic: {split['optimistic']}."
    elif split.get("continued_from") or separate:
        leak = ""
    else:  # a base that recorded no polygons: not counted
        leak = _own_leak(u)
    if not shown:
        return text + f"; no interval: {_no_interval(report)})." + leak
    if ci[0] > 0 or ci[1] < 0:
        verdict = f"{'better' if ci[0] > 0 else 'worse'} by more than the held-out {u.many}' spread"
    else:
        verdict = f"the held-out {u.many} cannot tell the two apart; compare the maps"
    return f"{text}, 95 % interval {shown} when {_resampled(u)}): {verdict}.{leak}"


def _own_leak(u: Units) -> str:
    """Why a comparison with one's own earlier checkpoint on a fresh split is unfair to the new model."""
    return (f" These held-out {u.many} were drawn afresh, so some may be {u.many} the checkpoint you started from "
            f"trained on, which flatters it and the new model, which starts from its weights: to score both fairly, "
            f"validate on its held-out layer (--validation NAME.heldout.gpkg; \"Validate on\" in the Train tab).")


def _u(report: Dict[str, Any]) -> Units:
    """What the report's labels are called: polygons, or points for a point layer."""
    return units_of(report.get("labels"))


def _split_kind(report: Dict[str, Any], u: Units) -> str:
    """The split's kind as the report shows it ("polygons" is "points" for a point layer)."""
    kind = str((report.get("split") or {}).get("kind"))
    return u.many if kind == "polygons" else kind


def _no_interval(report: Dict[str, Any], cond: str = "clear") -> str:
    """Why the report's scores have no interval (core.training.spread.no_interval_reason)."""
    from .spread import no_interval_reason

    return no_interval_reason(((report.get("spread") or {}).get(cond)) or {}, _u(report))


def _resampled(u: Units) -> str:
    return f"whole held-out {u.many} are resampled" if u is POLYGONS else f"held-out {u.many} are resampled"


def leak_reason(u: Units) -> str:
    """Why a random-pixel split scores higher than held-out labels (for points: why it need not)."""
    if u is POINTS:
        return ("each point is one pixel, so a random-pixel split also holds out whole points; with polygons, "
                "neighbouring pixels of one polygon on both sides of a random split flatter the score")
    return "neighbouring pixels of one polygon on both sides of a random split flatter the score"


def interval_text(ci: Optional[Sequence[float]], signed: bool = False) -> str:
    """"0.41-0.80" (or "-0.08 to +0.17" when `signed`) of a 95 % interval; "" without one."""
    if not ci or any(v is None or not np.isfinite(v) for v in ci):
        return ""
    return f"{ci[0]:+.2f} to {ci[1]:+.2f}" if signed else f"{ci[0]:.2f}-{ci[1]:.2f}"


def spread_sentence(report: Dict[str, Any]) -> Optional[str]:
    """Whether the fine-tuned network and the random forest with SAR (the base checkpoint when there is no forest)
    differ by more than the held-out polygons can tell: their clear macro-F1 difference with its 95 % interval
    from resampling whole held-out polygons (core.training.spread); None without an interval."""
    from .spread import difference_of, single_polygon_names

    candidates = ("rf_optical_sar",) if started_from(report) else ("rf_optical_sar", "untuned")  # else start_sentence
    other = next((a for a in candidates if a in (report.get("arms") or {})), None)
    if other is None:
        return None
    diff, ci = difference_of(report, other)
    shown = interval_text(ci, signed=True)
    if diff is None:
        return None
    title = {"rf_optical_sar": "the random forest (optical + SAR)", "untuned": "the base checkpoint, not tuned"}[other]
    u = _u(report)
    if not shown and (report.get("spread") or {}).get("clear") is None:
        return None  # a report from before the intervals
    if not shown:
        return (f"Whether your CLAIRE model or {title} maps better is not decided by these held-out {u.many} "
                f"(macro-F1 {diff:+.2f}, no interval: {_no_interval(report)}); hold out at least two {u.many} per "
                f"class (draw more per class) to decide it.")
    how = f"macro-F1 {diff:+.2f}, 95 % interval {shown} when {_resampled(u)}"
    if ci[0] > 0 or ci[1] < 0:
        text = (f"Your CLAIRE model scored {'above' if ci[0] > 0 else 'below'} {title} by more than the held-out "
                f"{u.many}' spread ({how}).")
    else:
        text = (f"On these held-out {u.many} your CLAIRE model and {title} cannot be told apart ({how}); more "
                f"{u.many} per class would decide it.")
    single = single_polygon_names(report, [c["name"] for c in report.get("classes") or []])
    if single:
        listed = single[0] if len(single) == 1 else f"{', '.join(single[:-1])} and {single[-1]}"
        text += (f" The class{'' if len(single) == 1 else 'es'} {listed} {'has' if len(single) == 1 else 'have'} "
                 f"one held-out {u.one}{'' if len(single) == 1 else ' each'}, which adds no spread: the interval is "
                 f"too narrow.")
    return text


def forest_verdict(report: Dict[str, Any]) -> Optional[str]:
    """A sentence for the user when the random forest with SAR scored higher than the fine-tuned network on the
    clear held-out polygons (by FOREST_LEAD macro-F1 or more), with what to do, the two averaged's scores and
    how the two compare under synthetic clouds; None otherwise (or without a forest)."""
    arms = report.get("arms") or {}
    net, rf = arms.get("finetuned") or {}, arms.get("rf_optical_sar") or {}
    a, b = (net.get("clear") or {}).get("macro_f1"), (rf.get("clear") or {}).get("macro_f1")
    if a is None or b is None or b - a < FOREST_LEAD:
        return None
    u = _u(report)
    text = (f"The random forest (optical + SAR) scored higher than your CLAIRE model on the held-out {u.many} "
            f"(macro-F1 {b:.2f} against {a:.2f}). With few or small {u.many} a pixel classifier often does.")
    forest = report.get("forest_checkpoint")
    if forest:
        text += (f" Its checkpoint was written beside your model ({os.path.basename(forest)}): classify with both "
                 f"and compare the maps where you know the ground, since a few held-out {u.many} say little about "
                 f"the rest of the scene. More {u.many} for each class, spread over the scene, help both.")
        both, both_path = arms.get("ensemble") or {}, report.get("ensemble_checkpoint")
        scores = [(both.get(c) or {}).get("macro_f1") for c in ("clear", "clouds_60pct")]
        if both_path and None not in scores:
            text += (f" The two averaged ({os.path.basename(both_path)}, {weight_phrase(report)}) "
                     f"scored {scores[0]:.2f} clear and {scores[1]:.2f} under synthetic clouds.")
    else:
        text += (f" Draw more {u.many} for each class, spread over the scene, give the training more time, and "
                 "train again.")
    cloudy = [c for c in net if c != "clear" and c in rf]
    if cloudy:
        ac, bc = net[cloudy[0]].get("macro_f1"), rf[cloudy[0]].get("macro_f1")
        if ac is not None and bc is not None and ac > bc:
            text += (f" Under synthetic clouds your CLAIRE model holds better ({ac:.2f} against {bc:.2f}): the "
                     f"forest has no way to see through them, so keep the network for cloudy scenes.")
    return text


def sar_only_lines(report: Dict[str, Any]) -> List[str]:
    """The held-out scores from SAR alone (core.training.sar_alone) in plain text: a line per model, or why there
    are none; [] for a report without them."""
    alone = report.get("sar_only")
    if not alone:
        return []
    if not alone["arms"]:
        return [f"optical missing (SAR alone): {alone['note']}"]
    lines = [f"held-out {_u(report).many} with the optical missing (SAR alone, as the map's optical gaps):"]
    for arm in ordered_arms({"arms": alone["arms"]}):
        m = alone["arms"][arm]
        lines.append(f"  {row_title(report, arm)}: macro-F1 {m['macro_f1'] or 0:.3f}, OA {m['oa'] or 0:.3f}")
    return lines + [f"  {t}" for t in _sar_only_notes(report)]


def _sar_arm(report: Dict[str, Any]) -> Optional[str]:
    """The first model scored from SAR alone (ARM_ORDER), None without SAR-alone scores."""
    arms = (report.get("sar_only") or {}).get("arms") or {}
    return ordered_arms({"arms": arms})[0] if arms else None


def sar_lookalikes(report: Dict[str, Any]) -> List[Dict[str, Any]]:
    """models.metrics.added_confusions of the report's first SAR-alone model against the same model with the optical
    (clear held-out polygons): the classes that SAR alone takes for others; [] without SAR-alone scores."""
    arm = _sar_arm(report)
    if arm is None:
        return []
    clear = ((report.get("arms") or {}).get(arm) or {}).get("clear")
    return added_confusions(report["sar_only"]["arms"][arm], clear)


def lookalike_sentence(report: Dict[str, Any], title: Optional[str] = None) -> str:
    """"From SAR alone, <title> took water for bare ground on 88.9 % of its held-out pixels (0.0 % with the optical)
    ..." for `sar_lookalikes` (`title`: the model's, ARM_TITLES by default); "" when there are none."""
    pairs = sar_lookalikes(report)
    if not pairs:
        return ""
    parts = []
    for n, p in enumerate(pairs):  # the first pair says what the figures are, the others only give them
        text = f"{p['reference']} for {p['predicted']} on {100 * p['share']:.1f} %" + (" of its held-out pixels"
                                                                                      if n == 0 else "")
        if p["baseline_share"] is not None:
            text += f" ({100 * p['baseline_share']:.1f} %{' with the optical' if n == 0 else ''})"
        parts.append(text)
    arm = _sar_arm(report)
    return (f"From SAR alone, {title or row_title(report, arm)} took {' and '.join(parts)}: where the map comes "
            f"from SAR alone, read these classes with care.")


def _sar_only_notes(report: Dict[str, Any]) -> List[str]:
    """What the report says under its SAR-alone scores: the look-alikes and the calibration from SAR alone."""
    return [t for t in (lookalike_sentence(report), (report.get("sar_only") or {}).get("calibration_note")) if t]


def macroclass_lines(report: Dict[str, Any]) -> List[str]:
    """The macroclass level of a report in plain text: one line per arm (macro-F1 / OA on the clear held-out
    polygons); [] for a run without macroclasses."""
    macro = report.get("macroclasses")
    if not macro:
        return []
    level = {**report, "arms": macro["arms"]}
    lines = [f"macroclasses (field {macro['field']}: "
             + "; ".join(f"{m['name']} = {', '.join(m['classes'])}" for m in macro["classes"])
             + f"), held-out {_u(report).many}, clear:"]
    for arm in ordered_arms(level):
        m = macro["arms"][arm]["clear"]
        lines.append(f"  {row_title(report, arm)}: macro-F1 {m['macro_f1'] or 0:.3f}, OA {m['oa'] or 0:.3f}")
    for arm, m in (macro.get("sar_only") or {}).items():
        lines.append(f"  {row_title(report, arm)}, optical missing (SAR alone): macro-F1 {m['macro_f1'] or 0:.3f}, "
                     f"OA {m['oa'] or 0:.3f}")
    return lines


def score(pred: np.ndarray, ref: LabelPixels, classes: Sequence[ClassInfo]) -> Dict[str, Any]:
    """Confusion matrix (rows = reference), OA, kappa, mIoU, macro-F1 and per-class scores of `pred`
    (class indices; -1 = no prediction, left out and counted; windows.ANOTHER_CLASS = mapped as a class the
    user's labels do not have, an error: counted per reference class in "another_class_pixels")."""
    from .windows import ANOTHER_CLASS

    k = len(classes)
    p = np.asarray(pred).reshape(-1)
    full = confusion_matrix(np.where(p == ANOTHER_CLASS, k, p), ref.cls.astype(np.int64), k + 1)
    return score_confusion(full[:k, :k], [c.name for c in classes], int((p == -1).sum()), full[:k, k])


#: The name of the column of pixels mapped as none of the user's classes (the base checkpoint's other classes).
ANOTHER_CLASS_NAME = "another class of the base checkpoint"


def score_confusion(cm: np.ndarray, names: Sequence[str], unscored: int = 0,
                    another: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """`score`'s result from a confusion matrix (rows = reference) and its class names; `another`: per
    reference class, the pixels mapped as none of `names` (errors, in every score; the matrix stays K x K)."""
    cm = np.asarray(cm)
    if another is not None and np.asarray(another).any():
        m = metrics_with_other(cm, names, another, ANOTHER_CLASS_NAME)
        m["another_class_pixels"] = [int(v) for v in another]
    else:
        m = metrics_from_confusion(cm, names)
    m["macro_f1"] = macro_f1(m)
    m["confusion"] = cm.tolist()
    m["pixels"] = int(cm.sum()) + int(np.sum(another) if another is not None else 0)
    m["unscored_pixels"] = int(unscored)
    return _round(m)


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return None if not np.isfinite(v) else round(v, 4)
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_round(x) for x in v]
    return v


def counts_table(classes: Sequence[ClassInfo], train: LabelPixels, val: LabelPixels) -> List[Dict[str, Any]]:
    """Per class: training and validation pixels and polygons (groups)."""
    rows = []
    for c in classes:
        t, v = train.cls == c.index, val.cls == c.index
        rows.append({"class": c.name, "code": c.code, "train_pixels": int(t.sum()), "val_pixels": int(v.sum()),
                     "train_polygons": int(np.unique(train.group[t]).size),
                     "val_polygons": int(np.unique(val.group[v]).size)})
    return rows


def html_path_for(json_path: str) -> str:
    """The HTML copy written beside a report (same name, .html)."""
    return os.path.splitext(json_path)[0] + ".html"


def write_report(report: Dict[str, Any], json_path: str, outputs: Optional[OutputSet] = None) -> str:
    """Write the report as JSON at `json_path` and as HTML beside it, both or neither; returns the HTML path.
    With `outputs` the two files are only staged there (committed with the checkpoint)."""
    html_path = html_path_for(json_path)
    with OutputSet() as own:
        files = own if outputs is None else outputs
        files.add_text(json_path, json.dumps(report, indent=2), "training report")
        files.add_text(html_path, render_html(report), "training report's HTML copy")
        if outputs is None:
            own.commit()
    return html_path


def _e(v: Any) -> str:
    return html.escape(str(v))


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def _summary_rows(report: Dict[str, Any]) -> List[str]:
    rows = []
    for arm in ordered_arms(report):
        for cond, m in report["arms"][arm].items():
            rows.append(f"<tr><td>{_e(arm_title(report, arm))}</td><td>{_e(cond)}</td><td>{_f(m['macro_f1'])}</td>"
                        f"<td>{_e(interval_text(m.get('macro_f1_ci95')) or '-')}</td><td>{_f(m['oa'])}</td>"
                        f"<td>{_f(m['kappa'])}</td><td>{_f(m['miou'])}</td><td>{m['pixels']}</td></tr>")
    return rows


def _confusion_html(m: Dict[str, Any], names: Sequence[str]) -> str:
    another = m.get("another_class_pixels")
    head = "".join(f"<th>{_e(n)}</th>" for n in names) + (f"<th>{_e(ANOTHER_CLASS_NAME)}</th>" if another else "")
    rows = [list(row) + ([another[i]] if another else []) for i, row in enumerate(m["confusion"])]
    body = "".join(f"<tr><th>{_e(n)}</th>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
                   for n, row in zip(names, rows))
    per = "".join(f"<tr><td>{_e(c['name'])}</td><td>{_f(c['precision'])}</td><td>{_f(c['recall'])}</td>"
                  f"<td>{_f(c['f1'])}</td><td>{_f(c['iou'])}</td><td>{c['support']}</td></tr>" for c in m["per_class"])
    return (f"<table><tr><th>reference \u2193 / predicted \u2192</th>{head}</tr>{body}</table>"
            "<table><tr><th>class</th><th>precision (user's)</th><th>recall (producer's)</th><th>F1</th>"
            f"<th>IoU</th><th>reference pixels</th></tr>{per}</table>")


#: Rows of the suspect table in the HTML report, the most suspect first (QA: 928 rows came before the scores).
SUSPECT_ROWS = 50


def _suspects_html(report: Dict[str, Any]) -> List[str]:
    """The polygons that look like another class (core.training.suspects), as a table; [] when none."""
    from .suspects import suspect_note

    suspects = report.get("suspect_polygons") or []
    if not suspects:
        return []
    rows = "".join(f"<tr><td>{_e(', '.join(str(f) for f in s['feature_ids']))}</td><td>{_e(s['class'])}</td>"
                   f"<td>{_e(s['looks_like'])}</td><td>{s['ratio']:.2f}</td></tr>" for s in suspects[:SUSPECT_ROWS])
    u = _u(report)
    more = (f"<p>... and {len(suspects) - SUSPECT_ROWS} more, all in the report's JSON (suspect_polygons), and "
            f"selectable in the Train tab.</p>" if len(suspects) > SUSPECT_ROWS else "")
    return [f"<h2>{u.many.capitalize()} to check</h2><p>{_e(suspect_note(suspects, units=u))}.</p>"
            "<table><tr><th>feature id</th>"
            "<th>class</th><th>looks like</th><th>distance ratio (other class / own class)</th></tr>"
            f"{rows}</table>{more}"]


def held_out_sentence(report: Dict[str, Any]) -> Optional[str]:
    """Where the run's held-out polygons were written and what they are for (None when it wrote none)."""
    path = report.get("held_out_layer")
    if not path:
        return None
    n, u = len(report.get("validation_feature_ids") or []), _u(report)
    return (f"The {n} held-out {u.many} are in {os.path.basename(path)}: give that layer as the validation layer "
            f"of the next training of these {u.many}, and it is scored on the same {u.many}")


def _held_out_sentence(report: Dict[str, Any]) -> str:
    said = held_out_sentence(report)
    return f" {_e(said)}." if said else ""


def render_html(report: Dict[str, Any]) -> str:
    """A self-contained HTML page of the report."""
    names = [c["name"] for c in report["classes"]]
    counts = "".join(f"<tr><td>{_e(r['class'])}</td><td>{r['code']}</td><td>{r['train_polygons']}</td>"
                     f"<td>{r['train_pixels']}</td><td>{r['val_polygons']}</td><td>{r['val_pixels']}</td></tr>"
                     for r in report["counts"])
    leak, u = report.get("leakage") or {}, _u(report)
    parts = [
        "<!doctype html><meta charset='utf-8'><title>CLAIRE training report</title>",
        "<style>body{font-family:sans-serif;max-width:70em}table{border-collapse:collapse;margin:.6em 0}"
        "td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}</style>",
        f"<h1>Training from your labels: validation on held-out {u.many}</h1>",
        f"<p>Labels: {_e(report['labels'].get('path'))} (field {_e(report['labels'].get('field'))}, SHA-256 "
        f"{_e(str(report['labels'].get('sha256'))[:16])}…). Split: {_e(_split_kind(report, u))}, buffer "
        f"{_e(report['split'].get('buffer_px'))} px.{_held_out_sentence(report)} These scores are model validation "
        f"on your own {u.many}, not a map accuracy estimate; kappa is shown but not recommended.</p>",
        f"<h2>Classes, {u.many} and pixels</h2><table><tr><th>class</th><th>code</th><th>training {u.many}</th>"
        f"<th>training pixels</th><th>validation {u.many}</th><th>validation pixels</th></tr>{counts}</table>",
        "<h2>Scores side by side</h2><table><tr><th>model</th><th>optical input</th><th>macro-F1</th>"
        f"<th>macro-F1, 95 % interval (held-out {u.many} resampled)</th><th>OA</th>"
        f"<th>kappa</th><th>mIoU</th><th>pixels</th></tr>{''.join(_summary_rows(report))}</table>",
    ]
    if "ensemble" in report["arms"]:
        parts.append(f"<p>{_e(ensemble_sentence(report))}</p>")
    training = report.get("training") or {}
    if training.get("lr_note"):
        epochs = training.get("epochs")
        length = counted(epochs, "epoch") if isinstance(epochs, int) else f"{epochs} epochs"
        parts.append(f"<p>Training: {_e(length)}, {_e(training['lr_note'])}.</p>")
    for note in (report.get("calibration_note"), (report.get("ensemble_weight") or {}).get("calibration_note")):
        if note:
            parts.append(f"<p>Confidence: {_e(note)}.</p>")
    if report.get("spread_note"):
        parts.append(f"<p>Intervals: {_e(report['spread_note'])}.</p>")
    for verdict in verdicts(report):
        parts.append(f"<p><b>{_e(verdict)}</b></p>")
    if leak:
        parts.append(f"<p><b>Leakage check</b>: the same random forest (optical + SAR) scored on a random-pixel "
                     f"split reaches macro-F1 {_f(leak.get('pixel_split', {}).get('macro_f1'))} against "
                     f"{_f(leak.get('polygon_split', {}).get('macro_f1'))} on held-out {u.many}: "
                     f"{_e(leak_reason(u))}.</p>")
    for arm in ordered_arms(report):
        for cond, m in report["arms"][arm].items():
            parts.append(f"<h3>{_e(arm_title(report, arm))}, {_e(cond)}</h3>{_confusion_html(m, names)}")
    parts += _sar_only_html(report) + _macroclass_html(report) + _suspects_html(report)
    return "\n".join(parts)


def _sar_only_html(report: Dict[str, Any]) -> List[str]:
    """The held-out scores from SAR alone with the first model's confusion matrix; [] for a report without."""
    alone = report.get("sar_only")
    if not alone:
        return []
    out = ["<h2>Where the optical is missing: SAR alone</h2>", f"<p>{_e(alone['note'])}.</p>"]
    if alone["arms"]:
        order = ordered_arms({"arms": alone["arms"]})
        rows = "".join(f"<tr><td>{_e(row_title(report, a))}</td><td>{_f(m['macro_f1'])}</td><td>{_f(m['oa'])}</td>"
                       f"<td>{_f(m['kappa'])}</td><td>{_f(m['miou'])}</td><td>{m['pixels']}</td></tr>"
                       for a, m in ((a, alone["arms"][a]) for a in order))
        out.append("<table><tr><th>model</th><th>macro-F1</th><th>OA</th><th>kappa</th><th>mIoU</th><th>pixels</th>"
                   f"</tr>{rows}</table>")
        first = order[0]
        out.append(f"<h3>{_e(row_title(report, first))}, SAR alone</h3>"
                   f"{_confusion_html(alone['arms'][first], [c['name'] for c in report['classes']])}")
        out += [f"<p>{_e(t)}{'' if t.endswith('.') else '.'}</p>" for t in _sar_only_notes(report)]
    return out


def _macroclass_html(report: Dict[str, Any]) -> List[str]:
    """The macroclass level of the report (core.training.hierarchy): which classes each groups, the scores side
    by side and the fine-tuned network's confusion matrix; [] for a run without macroclasses."""
    macro = report.get("macroclasses")
    if not macro:
        return []
    groups = "".join(f"<tr><td>{_e(m['name'])}</td><td>{m['code']}</td><td>{_e(', '.join(m['classes']))}</td></tr>"
                     for m in macro["classes"])
    level = {**report, "arms": macro["arms"]}
    alone = [(arm, "optical missing (SAR alone)", m) for arm, m in (macro.get("sar_only") or {}).items()]
    rows = "".join(f"<tr><td>{_e(row_title(report, arm))}</td><td>{_e(cond)}</td><td>{_f(m['macro_f1'])}</td>"
                   f"<td>{_f(m['oa'])}</td><td>{_f(m['kappa'])}</td><td>{_f(m['miou'])}</td><td>{m['pixels']}</td></tr>"
                   for arm, cond, m in [(a, c, m) for a in ordered_arms(level) for c, m in macro["arms"][a].items()]
                   + alone)
    names = [m["name"] for m in macro["classes"]]
    out = [f"<h2>Macroclasses (field {_e(macro['field'])})</h2><p>Each class belongs to one macroclass; the network "
           "learns the classes, and these scores count a pixel right when its class is in the right macroclass (the "
           "confusion matrices above summed). Classify with the level 'macroclass' to map them.</p>"
           f"<table><tr><th>macroclass</th><th>code</th><th>classes</th></tr>{groups}</table>"
           "<table><tr><th>model</th><th>optical input</th><th>macro-F1</th><th>OA</th><th>kappa</th><th>mIoU</th>"
           f"<th>pixels</th></tr>{rows}</table>"]
    for arm in [a for a in ("finetuned",) if a in macro["arms"]]:
        for cond, m in macro["arms"][arm].items():
            out.append(f"<h3>Macroclasses: {_e(ARM_TITLES[arm])}, {_e(cond)}</h3>{_confusion_html(m, names)}")
    return out
