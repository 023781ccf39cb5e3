"""Explanations of a classification run: facts -> text (Phi-3 or template) -> grounding check.

`explain(facts, explainer=None)` uses the Phi-3 model named by `explainer` (folder or cached repo
id) when it is usable, and the deterministic template otherwise; `Explanation.generator` always
says which one wrote the text and `fallback_reason` why the model was not used.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional

from . import template
from .checker import GroundingResult, check_grounding

__all__ = ["Explanation", "explain", "check_grounding", "GroundingResult", "generator_label"]


@dataclass
class Explanation:
    """An explanation text with its provenance and grounding."""

    text: str
    generator: str
    grounded_share: float
    flagged_sentences: List[str] = field(default_factory=list)
    seconds: float = 0.0
    fallback_reason: Optional[str] = None
    numbers_total: int = 0
    numbers_grounded: int = 0

    @property
    def label(self) -> str:
        """Human-readable name of the generator, for the dock and the report."""
        return generator_label(self.generator)

    def to_dict(self) -> dict:
        """JSON-ready dict (the report's "explanation" entry)."""
        out = asdict(self)
        out["generator_label"] = self.label
        out["seconds"] = round(self.seconds, 3)
        out["grounded_share"] = round(self.grounded_share, 4)
        return out


def generator_label(generator: str) -> str:
    """'template' -> 'deterministic template'; 'phi3:NAME' -> 'Phi-3 language model (NAME)'."""
    if generator.startswith("phi3:"):
        return f"Phi-3 language model ({generator[5:]})"
    return "deterministic template (no language model)"


#: A language model's text is no prose (damaged or random weights, a model that is no instruction-tuned Phi-3)
#: when it holds chat or tokenizer tokens, or, with combining marks counted as letters, has: fewer than
#: PROSE_MIN_WORDS words of three letters or more (an ideograph or a Hangul syllable counts as one), or as many
#: distinct ones; fewer than PROSE_MIN_LETTERS letters among its characters that are neither digits, spaces nor
#: punctuation; fewer than PROSE_MIN_IN_WORDS of its letters in such words; a run of PROSE_LOOP_SPAN words and
#: numbers said PROSE_LOOP_REPEATS times or more (a model looping; a listing of classes in one pattern differs by
#: its names and figures and passes, where a share of distinct words refused it: QA round 23's second review).
#: QA round 22: a random model's "E;$42IoV t95B`ra[ra[" was shown as 100 % grounded; round 23: at 400 tokens its
#: "...SjϯXrea t95B`ra[ra[SjϯXrea" made four words and passed. Tables, lists and figures pass (digits and
#: punctuation are neutral), and so does a short honest sentence of three words.
PROSE_MIN_LETTERS = 0.5
PROSE_MIN_WORDS = 3
PROSE_MIN_IN_WORDS = 0.6
PROSE_LOOP_SPAN = 16
PROSE_LOOP_REPEATS = 3
_NEUTRAL = set("0123456789.,;:%()[]{}|-\u2013\u2014/+*'\"!?#&=<>_~\u00b0\u00b2\u2019\u201c\u201d\u00b7")
_SINGLE_WORD_SCRIPTS = ("CJK UNIFIED", "HANGUL SYLLABLE")


def _words_of(run: str) -> List[str]:
    """The words of a run of letters: each ideograph or Hangul syllable, and the runs of three letters or more
    between them (lower case)."""
    import unicodedata

    out, buf = [], ""
    for c in run + " ":
        if c != " " and not unicodedata.name(c, "").startswith(_SINGLE_WORD_SCRIPTS):
            buf += c
            continue
        if len(buf) >= 3:
            out.append(buf.lower())
        buf = ""
        if c != " ":
            out.append(c)
    return out


def prose_problem(text: str) -> Optional[str]:
    """Why `text` does not read as prose, or None."""
    import re
    import unicodedata

    if re.search(r"<\|[a-z_]+\|>|</?s>|<unk>|<pad>|<0x[0-9A-Fa-f]{2}>", text):
        return ("the language model's text holds chat or tokenizer tokens (<|...|>, <s>, <unk>): a model that is no "
                "instruction-tuned Phi-3")
    # a combining mark is part of its letter's word (Devanagari's vowel signs and virama, Vietnamese tones)
    plain = "".join("a" if unicodedata.category(c) in ("Mn", "Mc", "Me") else c for c in text)
    letters = sum(c.isalpha() for c in plain)
    symbols = sum(1 for c in plain if not c.isalpha() and not c.isspace() and c not in _NEUTRAL)
    words, tokens = [], []  # words: runs of three letters or more, each ideograph or Hangul syllable one;
    for run in re.findall(r"[^\W\d_]+|\d+(?:[.,]\d+)?", plain):  # tokens: words and numbers, in order
        if run[0].isdigit():
            tokens.append(run)
        else:
            mine = _words_of(run)
            words += mine
            tokens += mine
    share = letters / max(1, letters + symbols)
    in_words = sum(len(w) for w in words) / max(1, letters)
    spans: dict = {}
    for i in range(len(tokens) - PROSE_LOOP_SPAN + 1):  # numbers in: a listing's figures differ, a loop's do not
        key = tuple(tokens[i:i + PROSE_LOOP_SPAN])
        spans[key] = spans.get(key, 0) + 1
    loop = max(spans.values(), default=0)
    said = (f"{len(words)} words, {len(set(words))} distinct, {share:.0%} of its non-punctuation characters letters, "
            f"{in_words:.0%} of its letters in words" + (f", a run of {PROSE_LOOP_SPAN} words said {loop} times"
                                                         if loop >= PROSE_LOOP_REPEATS else ""))
    if (share < PROSE_MIN_LETTERS or len(words) < PROSE_MIN_WORDS or in_words < PROSE_MIN_IN_WORDS
            or len(set(words)) < PROSE_MIN_WORDS or loop >= PROSE_LOOP_REPEATS):
        return (f"the language model's text does not read as prose ({said}): damaged weights, or a model that is "
                f"no instruction-tuned Phi-3")
    return None


def explain(facts: dict, explainer: Optional[str] = None,
            on_text: Optional[Callable[[str], None]] = None, drop_unmatched: bool = False,
            max_new_tokens: Optional[int] = None, device: str = "auto",
            is_cancelled: Optional[Callable[[], bool]] = None) -> Explanation:
    """Explain a facts record (from `core.explain.facts.build_facts`).

    With `explainer` (a Phi-3 folder or cached repo id) the language model writes the text, streamed
    to `on_text`; if it is unusable the template writes it and `fallback_reason` says why. Every
    number is checked against the facts; with `drop_unmatched` sentences with an unmatched number are
    removed from the returned text (the streamed text still had them: show `Explanation.text` at the
    end). Runs synchronously; the GUI calls it from a background task.
    """
    start = time.perf_counter()
    text, generator, reason = "", template.GENERATOR, None
    if explainer:
        from . import phi3
        kwargs = {"device": device, "is_cancelled": is_cancelled}
        if max_new_tokens:
            kwargs["max_new_tokens"] = max_new_tokens
        try:
            out = phi3.generate(facts, explainer, on_text=on_text, **kwargs)
            text, generator = out.text, out.generator
            if not text.strip():
                reason = "Explainer not used: the language model returned no text."
                generator = template.GENERATOR
            elif (problem := prose_problem(text)) is not None:
                reason = f"Explainer not used: {problem}."
                generator = template.GENERATOR
                if on_text is not None:  # what was streamed is not the explanation: said before the template's text
                    on_text("\n\n[The language model's text above is not used; the template's follows.]\n\n")
        except phi3.ExplainerUnavailable as exc:
            reason = f"Explainer not used: {exc}."
        except ImportError as exc:
            reason = f"Explainer not used: transformers/torch are not installed ({exc})."
    if generator == template.GENERATOR:
        text = template.write(facts, on_text=on_text)
    else:  # the cautions no explanation may leave out come first, as the template words them
        must = template.caveats(facts)
        if must and must not in text:
            text = f"{must}\n\n{text}"
    grounding = check_grounding(text, facts, drop_unmatched=drop_unmatched)
    return Explanation(
        text=grounding.text, generator=generator, grounded_share=grounding.grounded_share,
        flagged_sentences=grounding.flagged_sentences, seconds=time.perf_counter() - start,
        fallback_reason=reason, numbers_total=grounding.numbers_total,
        numbers_grounded=grounding.numbers_grounded)
