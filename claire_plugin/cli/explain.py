"""`claire explain`: explain an existing engine summary JSON (and optionally write a report)."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from ...models.quoting import quoted
from ..core.errors import ClaireError
from ..paths import DEFAULT_CHECKPOINT


def register(subparsers) -> None:
    """Add the `explain` subcommand."""
    p = subparsers.add_parser(
        "explain", help="explain a classification summary in words, with every number checked",
        description="Build the facts of a run from its summary JSON and model card, write an explanation "
                    "(Phi-3 from a local folder or the Hugging Face cache when --explainer is given, else a "
                    "deterministic template) and check every number in it against the facts. Never uses "
                    "the network.")
    p.add_argument("--summary", required=True,
                   help="summary JSON written by `claire classify --summary` (or a previous report JSON)")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint whose model card names classes and inputs (default: the bundled one)")
    p.add_argument("--explainer", default=None,
                   help="Phi-3 model folder or cached repo id (default: the deterministic template)")
    p.add_argument("--report", default=None,
                   help="also write a report: FILE.json (+ FILE.md), FILE.md (+ FILE.json) or FILE.html (+ FILE.json)")
    p.add_argument("--class", dest="focus_class", default=None, help="explain this class first")
    p.add_argument("--drop-unmatched", action="store_true",
                   help="drop sentences whose numbers are not found in the facts (default: flag them)")
    p.add_argument("--max-new-tokens", type=_positive_int, default=None, help="bound on generated tokens (Phi-3)")
    p.add_argument("--device", default="auto", help="device for the language model: auto, cpu, cuda, mps")
    p.set_defaults(func=run)


def _positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{quoted(text)} is not a whole number of at least 1 (e.g. 300)")
    return value


def _card(checkpoint: Optional[str], from_file: Optional[dict], summary: dict) -> dict:
    """Card from --checkpoint, else the file's card, else the default checkpoint, else the summary."""
    path = checkpoint or (None if from_file else DEFAULT_CHECKPOINT)
    if path and (checkpoint or os.path.exists(path)):
        if not os.path.exists(path):
            raise ClaireError(f"the checkpoint {quoted(path)} does not exist; check the path or leave "
                              f"--checkpoint out")
        from ...models.checkpoint import CheckpointError, read_card
        try:
            return read_card(path)
        except CheckpointError as exc:
            raise ClaireError(str(exc)) from None
    if from_file:
        return from_file
    return {"classes": [{"index": i, "value": c.get("value"), "name": c.get("name")}
                        for i, c in enumerate(summary.get("classes") or [])]}


def _check_report_paths(report: str, summary: str, checkpoint: Optional[str]) -> None:
    """ClaireError when the report's JSON or its twin (the .md / .html written beside it) cannot be written
    or would overwrite the summary or the checkpoint (core.io.writer.check_outputs)."""
    from ..core.explain.report import report_outputs
    from ..core.io.writer import check_outputs

    check_outputs(report_outputs(report), [("summary", summary), ("checkpoint", checkpoint)])


def run(args: argparse.Namespace) -> int:
    """Explain the summary; the text is printed as it is generated."""
    from ..core.explain import explain
    from ..core.explain.facts import build_facts
    from ..core.explain.report import load_summary_file, report_paths, write_report
    from ..core.runtime.device import check_device

    if args.report:  # both files of the report, before any work
        _check_report_paths(args.report, args.summary, args.checkpoint)
    check_device(args.device)
    summary, card_in_file = load_summary_file(args.summary)
    card = _card(args.checkpoint, card_in_file, summary)
    facts = build_facts(summary, card, focus_class=args.focus_class)

    def echo(chunk: str) -> None:
        sys.stdout.write(chunk)
        sys.stdout.flush()

    ex = explain(facts, explainer=args.explainer, on_text=None if args.drop_unmatched else echo,
                 drop_unmatched=args.drop_unmatched, max_new_tokens=args.max_new_tokens,
                 device=args.device)
    if args.drop_unmatched:
        sys.stdout.write(ex.text)
    print("\n")
    print(f"Generator: {ex.label}")
    if ex.fallback_reason and args.explainer:  # the model asked for could not run: a warning, not a footnote
        print(f"claire: warning: {ex.fallback_reason}", file=sys.stderr)
    elif ex.fallback_reason:
        print(ex.fallback_reason)
    print(f"Grounded numbers: {ex.numbers_grounded} of {ex.numbers_total} "
          f"({ex.grounded_share * 100:.1f} %) in {ex.seconds:.2f} s")
    for sentence in ex.flagged_sentences:
        print(f"  not in the facts: {sentence}")
    if args.report:
        inputs = {"summary": os.path.abspath(args.summary)}
        if args.checkpoint:
            inputs["checkpoint"] = os.path.abspath(args.checkpoint)
        write_report(summary, card, args.report, inputs=inputs, focus_class=args.focus_class,
                     explanation=ex)
        json_path, twin, _ = report_paths(args.report)
        print(f"report: {json_path} and {twin}")
    return 0
