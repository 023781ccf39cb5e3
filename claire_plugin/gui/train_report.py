"""The Train tab's held-out report: every arm's macro-F1 / OA / kappa, clear and clouded, and the leakage check,
as narrow HTML (one number per column; it fits a ~300 px dock)."""
from __future__ import annotations

import html
import os
from typing import Any, Dict, List

from ..core.numbers import counted
from .tones import tones
from .widgets import breakable, file_url

SHORT = {"finetuned": "Your&nbsp;CLAIRE", "untuned": "Untuned", "rf_optical_sar": "RF&nbsp;opt&#8288;+&#8288;SAR",
         "rf_optical": "RF&nbsp;optical", "rf_sar": "RF&nbsp;SAR",
         "ensemble": "CLAIRE&#8288;+&#8288;RF"}  # no line breaks inside a name: the numbers keep their columns


#: The scheme of the report's links that select features of the training layer (train_panel handles them).
SELECT_SCHEME = "claire-select"
#: The fragment of a SELECT_SCHEME link to the held-out polygons (the others are polygons to check).
HELD_OUT = "held-out"
#: The scheme of the link that makes the run's held-out polygons the next training's validation layer.
VALIDATE_SCHEME = "claire-validate"


def _n(value: Any) -> str:
    # two decimals fit a 300 px dock (the HTML report has three); a word joiner after the point, or Qt's
    # table layout breaks 0.82 into "0." and "82"
    return "–" if value is None else f"{float(value):.2f}".replace(".", ".&#8288;")


def short_name(report: Dict[str, Any], arm: str) -> str:
    """An arm's name in the dock's narrow table: the base checkpoint is "Start" when it is the user's own (an
    earlier training), "Untuned" when it is the bundled one."""
    from ..core.training.scorecard import started_from

    if arm == "untuned" and started_from(report):
        return "Start"
    return SHORT.get(arm, html.escape(arm))


def _base_legend(report: Dict[str, Any]) -> str:
    """What the table's base row is: the run's own start (an earlier checkpoint) or the bundled checkpoint."""
    from ..core.training.scorecard import started_from

    own = started_from(report)
    if own:
        name = html.escape(breakable(os.path.basename(str(own))))
        return f"Start = the checkpoint this run started from ({name}) as it was"
    return "Untuned = the bundled checkpoint as it is"


def _rows(report: Dict[str, Any], cond: str) -> List[str]:
    from ..core.training.scorecard import ordered_arms

    rows = []
    for arm in ordered_arms(report):
        m = report["arms"][arm].get(cond) or {}
        style = " style='font-weight:bold'" if arm == "finetuned" else ""
        rows.append(f"<tr{style}><td width='43%'>{short_name(report, arm)}</td>"
                    + "".join(f"<td width='19%' align='right'>{_n(m.get(k))}</td>" for k in ("macro_f1", "oa", "kappa"))
                    + "</tr>")
    return rows


def _split_html(report: Dict[str, Any]) -> List[str]:
    """Which polygons validated: the held-out ones (select them; validate the next training on them) or the
    separate validation layer; started from one's own checkpoint, how many of them validated it, and how many
    trained it (the scores then optimistic)."""
    from ..core.training.labels import units_of

    e = html.escape
    split = report.get("split") or {}
    many = units_of(report.get("labels")).many
    warn = (f"<p style='color:#a05a00'><b>Optimistic</b>: {e(str(split['optimistic']))}, so the held-out scores of "
            f"both are too high on them.</p>" if split.get("optimistic") else "")
    if split.get("kind") == "separate layer":
        name = os.path.basename(str((split.get("val_source") or {}).get("path") or ""))
        return [f"<p class='muted'>Validated on a separate layer, {e(breakable(name))}.</p>" + warn]
    ids = report.get("validation_feature_ids") or []
    path = report.get("held_out_layer")
    if not ids:
        return [warn] if warn else []
    text = (f"<p>Held out: {len(ids)} {many} (<a href='{SELECT_SCHEME}:{','.join(map(str, ids))}#{HELD_OUT}'>select "
            f"them</a>)")
    if path:
        text += f", drawn {'as black rings' if many == 'points' else 'dashed'} on the map"
    if split.get("base_held_out_kept"):
        text += (f". {split['base_held_out_kept']} of them validated "
                 f"{e(breakable(str(split.get('continued_from'))))}, the checkpoint this run started from: they score "
                 f"both models alike")
    if path:
        text += (f". <a href='{VALIDATE_SCHEME}:held-out'>Validate the next training on them</a>: it is then scored "
                 f"on the same {many} as this run")
    return [text + ".</p>" + warn]


def _sar_only_html(report: Dict[str, Any]) -> List[str]:
    """The held-out scores with the optical missing (SAR alone), or why there are none; [] without."""
    alone = report.get("sar_only")
    if not alone:
        return []
    if not alone["arms"]:
        return [f"<p class='muted'>Optical missing: {html.escape(alone['note'])}.</p>"]
    rows = "".join(_rows({**report, "arms": {a: {"clear": m} for a, m in alone["arms"].items()}}, "clear"))
    from ..core.training.scorecard import lookalike_sentence

    said = lookalike_sentence(report, "your network")
    return ["<p><b>Optical missing</b> (SAR alone, as the map's optical gaps)</p><table cellspacing='0' "
            f"width='100%'><tr><th>model</th><th>F1</th><th>OA</th><th>kappa</th></tr>{rows}</table>"
            + (f"<p>{html.escape(said)}</p>" if said else "")
            + (f"<p class='muted'>{html.escape(alone['calibration_note'])}.</p>" if alone.get("calibration_note")
               else "")]


def _macroclass_html(report: Dict[str, Any]) -> List[str]:
    """The macroclass level (clear held-out polygons) and what each macroclass groups; [] without one."""
    macro = report.get("macroclasses")
    if not macro:
        return []
    e = html.escape
    groups = "; ".join(f"{e(m['name'])} = {e(', '.join(m['classes']))}" for m in macro["classes"])
    rows = "".join(_rows({**report, "arms": macro["arms"]}, "clear"))
    alone = macro.get("sar_only") or {}
    sar = ("; optical missing (SAR alone): " + ", ".join(f"{short_name(report, a)} F1 {_n(m.get('macro_f1'))}"
                                                        for a, m in alone.items())) if alone else ""
    from ..core.training.labels import units_of

    many = units_of(report.get("labels")).many
    return [f"<p><b>Macroclasses</b> (field {e(macro['field'])}), held-out {many}</p><table cellspacing='0' "
            f"width='100%'><tr><th>model</th><th>F1</th><th>OA</th><th>kappa</th></tr>{rows}</table>"
            f"<p class='muted'>{groups}{sar}. Options &gt; Map level 'macroclass' maps them.</p>"]


def report_html(report: Dict[str, Any], checkpoint: str, html_path: str = "", widget=None) -> str:
    """HTML of a training report for the Train tab (in the tones of `widget`'s palette)."""
    e = html.escape
    from ..core.training.labels import units_of
    from ..core.training.scorecard import leak_reason

    conds = list(next(iter(report["arms"].values())).keys())
    units = units_of(report.get("labels"))
    t = tones(widget)
    parts = [f"<style>td,th{{padding:1px 3px;}} th{{text-align:left;background:{t['header_bg']};color:{t['text']};}}"
             f" .muted{{color:{t['muted']};}} .warn{{color:{t['warning']};}}</style>",
             f"<p><b>Checkpoint</b> {e(breakable(os.path.basename(checkpoint)))}<br><span class='muted'>"
             f"{e(breakable(os.path.dirname(checkpoint)))}</span></p>"]
    for cond in conds:
        title = f"Held-out {units.many}" if cond == "clear" else f"Held-out, {cond.replace('clouds_', 'clouds ')}"
        title = title.replace("pct", " %")
        parts.append(f"<p><b>{e(title)}</b></p><table cellspacing='0' width='100%'><tr><th>model</th><th>F1</th>"
                     f"<th>OA</th><th>kappa</th></tr>{''.join(_rows(report, cond))}</table>")
    parts += _sar_only_html(report) + _macroclass_html(report)
    from ..core.training.scorecard import verdicts, weight_phrase

    for verdict in verdicts(report):
        shown = e(verdict)
        base = (report.get("training") or {}).get("base_checkpoint")
        for path in (report.get("forest_checkpoint"), report.get("ensemble_checkpoint"), base):
            name = os.path.basename(path or "")  # file names may break anywhere in the dock
            shown = shown.replace(e(name), e(breakable(name))) if name else shown
        parts.append(f"<p class='warn'>{shown}</p>")
    from ..core.training.suspects import suspect_note

    suspects = report.get("suspect_polygons") or []
    if suspects:
        ids = ",".join(str(f) for s in suspects for f in s["feature_ids"])
        parts.append(f"<p class='warn'>{e(suspect_note(suspects, units=units))}. "
                     f"<a href='{SELECT_SCHEME}:{ids}'>"
                     f"Select them in the training layer</a></p>")
    parts += _split_html(report)
    leak = report.get("leakage")
    if leak:
        pix, pol = leak["pixel_split"].get("macro_f1"), leak["polygon_split"].get("macro_f1")
        parts.append(f"<p><b>Leakage check</b> (random forest): random-pixel split F1 {_n(pix)} vs held-out "
                     f"{units.many} {_n(pol)}. <span class='muted'>{e(leak_reason(units).capitalize())}.</span></p>")
    note = report.get("untuned_note")
    if note and "untuned" not in report["arms"]:
        parts.append(f"<p class='muted'>Untuned checkpoint {e(note)}.</p>")
    familiarity = str(report.get("familiarity") or "")
    if familiarity.startswith("not measured"):  # the map of this model will carry no "unlike" warning: say why
        parts.append(f"<p class='muted'>Unlike-the-training-data check {e(familiarity)}.</p>")
    both = ""
    if "ensemble" in report["arms"]:
        both = f"; CLAIRE+RF = the two averaged, {e(weight_phrase(report))}"
        if (report.get("ensemble_weight") or {}).get("halves"):
            both += (f"; its scores are cross-fitted (each half of the held-out {units.many} scored with the weight "
                     "chosen on the other)")
    rate = f", {e(report['training']['lr_note'])}" if report["training"].get("lr_note") else ""
    for note in ("calibration_note", "spread_note"):
        if report.get(note):
            rate += f"; {e(report[note])}"
    parts.append(f"<p class='muted'>F1 = macro-F1; {_base_legend(report)}; RF = random "
                 f"forest on the same pixels{both}. {counted(report['training']['epochs'], 'epoch')} in "
                 f"{report['training']['seconds']} s on {e(str(report['training']['device']))}{rate}. Scores validate "
                 f"the model on your {units.many}; they are not a map accuracy estimate.</p>")
    if html_path:
        parts.append(f"<p><a href=\"{file_url(html_path)}\">Open the full report</a> (per class, confusion "
                     f"matrices)</p>")
    return "".join(parts)
