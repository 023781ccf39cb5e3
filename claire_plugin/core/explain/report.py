"""Run report: facts + explanation + summary + model card subset, as JSON and a readable twin.

`write_report(summary, card, "run.json")` writes run.json and run.md; "run.html" writes run.html and
run.json; "run.md" writes run.md and run.json. Both files are written to temporary names and renamed
together (core.io.atomic.OutputSet), with the rasters of the run when the engine passes its set.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from ....models.quoting import clean_name, markdown_text, quoted
from ..errors import ClaireError
from ..io.atomic import OutputSet
from ..numbers import grouped
from . import Explanation, explain
from .facts import build_facts

REPORT_FORMAT = "claire-report/1"


def report_paths(path: str) -> Tuple[str, str, str]:
    """(json path, twin path, twin kind "md"|"html") for a requested report path."""
    root, ext = os.path.splitext(path)
    ext = ext.lower()
    if ext in (".html", ".htm"):
        return root + ".json", path, "html"
    if ext == ".md":
        return root + ".json", path, "md"
    if ext == ".json":
        return path, root + ".md", "md"
    if not ext:
        return path, path + ".md", "md"
    stem = root if ext[1:].isalpha() else path  # 'scene.tif' -> scene.json; 'run_v1.2' -> run_v1.2.json
    raise ClaireError(f"the report {quoted(path)} does not end in .json, .md or .html, which say what it is written "
                      f"as; name it e.g. {quoted(stem + '.json')} or {quoted(stem + '.html')}")


def report_outputs(path: str) -> List[Tuple[str, str]]:
    """The (role, path) pairs of the files a report requested as `path` writes, for core.io.writer.check_outputs."""
    json_path, twin, kind = report_paths(path)
    role = "report" if json_path == path else f"report's JSON (a report asked as {os.path.basename(path)} writes one)"
    return [(role, json_path), (f"report's {kind.upper()} twin", twin)]


def card_subset(card: dict) -> dict:
    """The parts of a model card a report reader needs (no normalisation statistics)."""
    card = card or {}
    inputs = {}
    for key, spec in (card.get("inputs") or {}).items():
        inputs[key] = {k: spec.get(k) for k in ("sensor", "bands", "units") if k in spec}
    training = card.get("training") or {}
    metrics = card.get("metrics") or {}
    return {
        "format": card.get("format"), "arch": card.get("arch"), "size": card.get("size"),
        "classes": card.get("classes") or [], "nodata": card.get("nodata"), "inputs": inputs,
        "tile_size": card.get("tile_size"), "context": card.get("context"),
        "training": {k: training.get(k) for k in ("data", "epochs", "seed", "labels", "familiarity") if k in training},
        "heldout_metrics": metrics.get("heldout"),
        # what the explanation's facts read of a card, so that a report explained again says the same
        "metrics": {k: metrics[k] for k in ("heldout", "heldout_polygons", "heldout_polygons_sar_only")
                    if k in metrics},
        "familiarity_measured": bool(card.get("familiarity") or card.get("familiarity_measured")),
        "config": {k: v for k, v in (card.get("config") or {}).items() if k == "forest_weight"},
        "created": card.get("created"), "claire_version": card.get("claire_version"),
    }


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, tuples -> lists, numpy scalars/arrays -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _clean(obj.tolist())
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def build_report(summary: dict, card: dict, explainer: Optional[str] = None,
                 inputs: Optional[dict] = None, focus_class: Optional[str] = None,
                 explanation: Optional[Explanation] = None,
                 on_text: Optional[Callable[[str], None]] = None,
                 drop_unmatched: bool = False, run: Optional[dict] = None, device: str = "auto") -> dict:
    """The report dict (nothing written). Pass `explanation` to reuse text already shown; `run` the settings the
    run used (core.engine.runner.run_settings); `device` the language model's."""
    facts = build_facts(summary, card, focus_class=focus_class)
    if explanation is None:
        explanation = explain(facts, explainer=explainer, on_text=on_text,
                              drop_unmatched=drop_unmatched, device=device)
    return _clean({
        "format": REPORT_FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "facts": facts,
        "explanation": explanation.to_dict(),
        "summary": summary,
        "model": card_subset(card),
        "inputs": inputs or {},
        "run": run,
    })


def write_report(summary: dict, card: dict, path: str, explainer: Optional[str] = None,
                 inputs: Optional[dict] = None, focus_class: Optional[str] = None,
                 explanation: Optional[Explanation] = None,
                 on_text: Optional[Callable[[str], None]] = None,
                 drop_unmatched: bool = False, outputs: Optional[OutputSet] = None,
                 run: Optional[dict] = None, device: str = "auto") -> dict:
    """Build the report and write it as JSON plus a Markdown or HTML twin; returns the report dict. With
    `outputs` the two files are only staged there (committed with the rest of the run)."""
    report = build_report(summary, card, explainer=explainer, inputs=inputs, focus_class=focus_class,
                          explanation=explanation, on_text=on_text, drop_unmatched=drop_unmatched, run=run,
                          device=device)
    json_path, twin_path, kind = report_paths(path)
    twin = render_html(report) if kind == "html" else render_markdown(report)
    with OutputSet() as own:
        files = own if outputs is None else outputs
        files.add_text(json_path, json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n", "report")
        files.add_text(twin_path, twin, f"report's {kind.upper()} twin")
        if outputs is None:
            own.commit()
    return report


# --------------------------------------------------------------------------------------- tables

def _v(x: Any, fmt: str = "{:.1f}") -> str:
    if x is None:
        return "—"
    if isinstance(x, int) and fmt == "{:.1f}":
        return grouped(x)
    return fmt.format(x)


def _g(x: Any, decimals: int = 0) -> str:
    """A large number for people (numbers.grouped), or a dash."""
    return "—" if x is None else grouped(x, decimals)


def tables(report: dict) -> List[Tuple[str, List[str], List[List[str]]]]:
    """(title, header, rows) of every table of a report, for the Markdown / HTML twins and the dock."""
    facts = report["facts"]
    out = []
    rows = [[c["name"], _g(c["area_ha"], 1), _v(c["share_pct"]), _v(c["mean_confidence_pct"]),
             _v(c["low_confidence_pct"]), _v(c["sar_reliance_pct"])] for c in facts["classes"]]
    out.append(("Classes", ["Class", "Area (ha)", "Share (%)", "Mean confidence (%)",
                            "Low confidence (%)", "SAR weight in the fusion gate (%)"], rows))
    m = facts.get("metrics")
    if m:
        out.append(("Accuracy against the reference", ["Metric", "Value"],
                    [["Overall accuracy (%)", _v(m["oa_pct"])], ["Mean IoU (%)", _v(m["miou_pct"])],
                     ["Cohen's kappa", _v(m["kappa"], "{:.2f}")]]))
        out.append(("Per-class accuracy", ["Class", "IoU (%)", "Precision (%)", "Recall (%)",
                                           "F1 (%)", "Support (px)"],
                    [[c["name"], _v(c["iou_pct"]), _v(c["precision_pct"]), _v(c["recall_pct"]),
                      _v(c["f1_pct"]), _g(c['support'])] for c in m["per_class"]]))
        if m.get("confused_pairs"):
            out.append(("Most confused class pairs", ["Reference", "Mapped as", "Pixels",
                                                      "Share of reference (%)"],
                        [[p["reference"], p["predicted"], _g(p['pixels']),
                          _v(p["share_of_reference_pct"])] for p in m["confused_pairs"]]))
    s = facts["scene"]
    out.append(("Scene", ["Quantity", "Value"], [
        ["Valid area (ha)", _g(s["total_area_ha"], 1)],
        ["Valid pixels", _g(s["valid_pixels"])], ["Nodata pixels", _g(s["nodata_pixels"])],
        ["Optical nodata / invalid (%)", _v(s["optical_invalid_pct"])],
        ["Map under cloud, haze or shadow (% of its pixels)", _v(s.get("cloud_pct"))],
        ["Classified from SAR alone (%)", _v(s.get("sar_only_pct"))],
        ["Unlike the training data (%)", _v(s.get("unfamiliar_pct"))],
        ["Snow / ice ruled out (%)", _v(s.get("snow_ruled_out_pct"))],
        ["Snow / ice ruled out under cloud, where SAR cannot tell snow (% of the map)",
         _v(s.get("snow_ruled_out_clouded_pct"))],
        ["Mean confidence (%)", _v(s["mean_confidence_pct"])],
        ["Low-confidence pixels (%)", _v(s["low_confidence_pct"])],
        ["SAR weight in the fusion gate (%)", _v(s["sar_reliance_pct"])]]))
    return out


def _inputs_model_lines(report: dict) -> List[Tuple[str, str]]:
    lines = [(k, str(v)) for k, v in (report.get("inputs") or {}).items() if v is not None]
    model = report.get("model") or {}
    desc = " ".join(str(x) for x in (model.get("arch"), model.get("size")) if x)
    if desc:
        lines.append(("model", desc))
    for key in ("optical", "sar"):
        spec = (model.get("inputs") or {}).get(key) or {}
        if spec:
            lines.append((f"{key} input", f"{spec.get('sensor') or ''} "
                          f"({', '.join(spec.get('bands') or [])})".strip()))
    return lines


def _grounding_line(ex: dict) -> str:
    return (f"Grounding: {ex['numbers_grounded']} of {ex['numbers_total']} numbers are found in the "
            f"facts (grounded share {ex['grounded_share'] * 100:.1f} %).")


def render_markdown(report: dict) -> str:
    """Readable Markdown twin of a report; every text from the report is literal (`quoting.markdown_text`), so a
    class named `*x*` or `<img ...>` is shown as written, as in the HTML twin."""
    cell = markdown_text
    ex = report["explanation"]
    md = ["# CLAIRE land-cover report", "",
          f"*Explanation written by: {cell(ex['generator_label'])}*", ""]
    if ex.get("fallback_reason"):
        md += [f"> {cell(ex['fallback_reason'])}", ""]
    md += ["\n\n".join(cell(p) for p in ex["text"].split("\n\n") if p.strip()), "", cell(_grounding_line(ex)), ""]
    if ex["flagged_sentences"]:
        md += ["Sentences with numbers not found in the facts:", ""]
        md += [f"- {cell(s)}" for s in ex["flagged_sentences"]] + [""]
    for title, header, rows in tables(report):
        md += [f"## {cell(title)}", "", "| " + " | ".join(cell(h) for h in header) + " |",
               "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
        md += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows] + [""]
    lines = _inputs_model_lines(report)
    if lines:
        md += ["## Inputs and model", ""] + [f"- **{cell(k)}**: {cell(v)}" for k, v in lines] + [""]
    md += [f"*Created {cell(report.get('created'))}; {cell(report.get('format'))}.*", ""]
    return "\n".join(md)


def render_html(report: dict) -> str:
    """Readable, self-contained HTML twin of a report (all text escaped)."""
    e = html.escape
    ex = report["explanation"]
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             "<title>CLAIRE land-cover report</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.45}"
             "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #bbb;"
             "padding:.2em .6em}td:not(:first-child){text-align:right}.gen{color:#555}"
             ".flag{background:#fff3cd}</style></head><body>",
             "<h1>CLAIRE land-cover report</h1>",
             f"<p class=\"gen\"><em>Explanation written by: {e(ex['generator_label'])}</em></p>"]
    if ex.get("fallback_reason"):
        parts.append(f"<blockquote>{e(ex['fallback_reason'])}</blockquote>")
    parts += [f"<p>{e(p)}</p>" for p in ex["text"].split("\n\n") if p.strip()]
    parts.append(f"<p class=\"gen\">{e(_grounding_line(ex))}</p>")
    if ex["flagged_sentences"]:
        parts.append("<p>Sentences with numbers not found in the facts:</p><ul>")
        parts += [f"<li class=\"flag\">{e(s)}</li>" for s in ex["flagged_sentences"]] + ["</ul>"]
    for title, header, rows in tables(report):
        parts.append(f"<h2>{e(title)}</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header)
                     + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    lines = _inputs_model_lines(report)
    if lines:
        parts.append("<h2>Inputs and model</h2><ul>")
        parts += [f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in lines] + ["</ul>"]
    parts.append(f"<p class=\"gen\"><em>Created {e(str(report.get('created')))}; "
                 f"{e(str(report.get('format')))}.</em></p></body></html>")
    return "\n".join(parts) + "\n"


def load_summary_file(path: str) -> Tuple[dict, Optional[dict]]:
    """Read an engine summary JSON (or a previous report); returns (summary, card or None), their names on one line
    each (a file from someone else: a newline or terminal escape in a class name reaches no output)."""
    from ....models.card_schema import MAX_TEXT, longest_text

    try:
        with open(path, encoding="utf-8") as fh:
            data: Dict[str, Any] = json.load(fh)
    except OSError as exc:
        raise ClaireError(f"Cannot read the summary '{path}': {exc.strerror}; give the JSON written "
                          f"by `claire classify`.") from None
    except (ValueError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ClaireError(f"'{path}' is not valid JSON ({why}); give the summary JSON written by "
                          f"`claire classify`.") from None
    n, where = longest_text(data)
    if n > MAX_TEXT:
        raise ClaireError(f"'{path}' holds text of {n} characters ({where}), more than a summary of CLAIRE has; "
                          f"give the summary JSON written by `claire classify`.")
    card = None
    if isinstance(data, dict) and isinstance(data.get("summary"), dict):
        card = data.get("card") or data.get("model")
        if isinstance(card, dict) and "metrics" not in card and card.get("heldout_metrics"):
            card = dict(card, metrics={"heldout": card["heldout_metrics"]})  # an older report's card subset
        data, card = data["summary"], card if isinstance(card, dict) else None
    elif not isinstance(data, dict) or not isinstance(data.get("classes"), list):
        raise ClaireError(f"'{path}' has no 'classes' list; give the summary JSON written by "
                          f"`claire classify`.")
    classes = data.get("classes")
    bad = next((k for k, c in enumerate(classes) if not isinstance(c, dict)), None) if isinstance(classes, list) \
        else None
    if bad is not None:
        raise ClaireError(f"'{path}': classes[{bad}] is not an object with a class's counts; give the summary JSON "
                          f"written by `claire classify`.")
    for entry in [c for part in (data, card or {}) for c in (part.get("classes") or [])]:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            entry["name"] = clean_name(entry["name"])
    return data, card
