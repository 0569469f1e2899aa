"""Competition-math answers (MATH, GSM8K, AIME style), compared for mathematical equivalence.

Extraction is done here (:mod:`rlvr_verifiers.extract`), notation is rewritten into LaTeX
(:mod:`rlvr_verifiers.math_text`), and equivalence is decided by HuggingFace's ``math_verify``
(sympy-based: "0.5", "1/2" and "\\frac{1}{2}" agree; "x = 3" agrees with "3"), except for two plain
numbers, which are compared with a stated relative tolerance (:data:`REL_TOL`).
"""

from __future__ import annotations

import functools
import re
import threading
from decimal import Decimal, localcontext
from typing import Any, Literal

import sympy
from math_verify import LatexExtractionConfig, parse, verify

from rlvr.verify.base import VerifyResult, VerifySample
from rlvr_verifiers.extract import cut_continuation, find_answer, strip_thinking
from rlvr_verifiers.math_text import choice_letter, choice_value, normalize

__all__ = ["REL_TOL", "MathVerifier"]

# math_verify bounds each parse / comparison with signal.alarm, which only works on the main thread
# (elsewhere it raises ValueError) and needs whole seconds. In a VerifierPool worker the hard deadline
# is the pool's; this soft one just lets a runaway sympy call fail without costing a worker restart.
_SOFT_TIMEOUT_S = 3
_LATEX_ONLY = [LatexExtractionConfig()]
REL_TOL = 1e-6
"""Two numbers are equal iff ``|a - b| <= REL_TOL * max(|a|, |b|)``. math_verify rounds to 6 decimal
places instead, which calls 1.2e-7 and 1.5e-7 equal; a relative bound holds at every scale (1/3 and
0.333333 agree, 1/3 and 0.3333 do not)."""
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
_MAX_NORMALIZED_CHARS = 4000
_MAX_EXPONENT = 10_000
_MAX_DEPTH = 40
_NUMBER = re.compile(r"-?\d*\.?\d+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_PERCENT = re.compile(r"(.+?)\s*\\%")
_GOLD_LETTER = re.compile(r"^\(?([A-E])\)?$")

class MathVerifier:
    """Reward ``reward_correct`` when the final answer equals the ground truth, else ``reward_wrong``.

    The final answer is found by :func:`rlvr_verifiers.extract.find_answer`: the last
    ``<answer>...</answer>``, else the statement the response ends with among complete
    ``\\boxed{}``/``\\fbox{}``, GSM8K's ``#### X`` and "The (final) answer is X" / "Answer: X" (also in
    a few other languages). With ``allow_unanchored=True`` (off by default: on base models it rewards
    numbers that happen to appear in the working) math_verify's own last-expression heuristics are the
    final fallback; with ``fallback="last_number"`` the last number in the response is (SimpleRL-Zoo's
    reward, via Qwen's math evaluation toolkit).

    Rules, each chosen so that a policy cannot raise its reward without raising its accuracy:

    * **Thinking** (``strip_thinking=True``): only the text after the last ``</think>`` is read, so an
      answer that appears only while thinking does not count; a ``<think>`` never closed has not
      answered ("unfinished_thinking").
    * **Continuation**: a new "Question:" / "Problem:" / chat turn after the answer ends the response;
      the model's answer to a question it invented is not its answer.
    * **Several boxed answers**: boxes holding different values ("\\boxed{8} or \\boxed{9}", or a box
      early and another later) are wrong ("multiple_answers"); ``multiple_boxed="last"`` grades the
      last box instead (MATH/DAPO graders' convention). More than ``max_boxes`` boxes is spam
      ("too_many_boxes"), as is a response over ``max_response_chars`` ("response_too_long").
    * **Hedging inside one answer** ("3 or 4", "\\{3, 4\\}") is wrong against a single-valued truth:
      math_verify compares the whole set, not any member.
    * **Truncated output** (``finish_reason == "length"``) is wrong by default (``truncated="wrong"``):
      a box before the cut may be a candidate the model was still checking. ``"score"`` grades it
      like any other response (length penalties then belong to reward shaping).
    * **Malformed LaTeX** is compared as text, never mined for a number inside it.
    * **Oversized answers** (over ``max_answer_chars``) are wrong ("answer_too_long") without being
      parsed: they are either a dump of candidates or an attempt to stall the parser.
    * **Numbers** compare with the relative tolerance :data:`REL_TOL`; everything else by math_verify.
    * **Multiple choice**: a single-letter truth ("B") is matched by the response's option letter
      ("(B) 7", "\\textbf{(B)}"); against a value truth, "(B) 7" is read as 7.

    Notation is normalised first on both sides (:func:`rlvr_verifiers.math_text.normalize`): Unicode
    digits, fractions and symbols, ``\\$`` and currency words, "40 percent", "3.1e8", thin-space
    thousands, ``0.\\overline{3}``, degrees. No answer scores ``reward_wrong`` with reason "no_answer";
    ``reward_wrong=-1.0`` gives a ±1 scheme. A ground truth that math_verify cannot parse as math is
    compared as text; an empty one raises ValueError, as a data bug.

    details: ``extracted`` (answer text or None), ``source`` ("answer_tag", "boxed", "hashes",
    "answer_is", "unanchored", "last_number") and ``reason`` ("ok", "mismatch", "no_answer", "unparsable",
    "truncated", "multiple_answers", "too_many_boxes", "answer_too_long", "response_too_long",
    "unfinished_thinking", "too_complex": an exponent tower, an exponent over 10,000 or brackets nested
    over 40 deep, which would stall sympy or the LaTeX parser).
    """

    name = "math"

    def __init__(
        self,
        reward_correct: float = 1.0,
        reward_wrong: float = 0.0,
        allow_unanchored: bool = False,
        multiple_boxed: Literal["reject", "last"] = "reject",
        truncated: Literal["wrong", "score"] = "wrong",
        strip_thinking: bool = True,
        max_answer_chars: int = 1000,
        max_boxes: int = 10,
        max_response_chars: int = 200_000,
        fallback: Literal["none", "last_number"] = "none",
    ) -> None:
        if fallback not in ("none", "last_number"):
            raise ValueError(f"fallback must be 'none' or 'last_number', got {fallback!r}")
        if fallback != "none" and allow_unanchored:
            raise ValueError("fallback='last_number' and allow_unanchored=True are two fallbacks; pick one")
        if multiple_boxed not in ("last", "reject"):
            raise ValueError(f"multiple_boxed must be 'reject' or 'last', got {multiple_boxed!r}")
        if truncated not in ("wrong", "score"):
            raise ValueError(f"truncated must be 'wrong' or 'score', got {truncated!r}")
        for key, value in (("max_answer_chars", max_answer_chars), ("max_boxes", max_boxes),
                           ("max_response_chars", max_response_chars)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        self.reward_correct = float(reward_correct)
        self.reward_wrong = float(reward_wrong)
        self.allow_unanchored = allow_unanchored
        self.multiple_boxed = multiple_boxed
        self.truncated = truncated
        self.strip_thinking = strip_thinking
        self.max_answer_chars = max_answer_chars
        self.max_boxes = max_boxes
        self.max_response_chars = max_response_chars
        self.fallback = fallback

    def score(self, sample: VerifySample) -> VerifyResult:
        timeout = _SOFT_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
        gold = _parse_gold(sample.ground_truth, timeout)  # a bad ground truth is an error, whatever the response
        if len(sample.response) > self.max_response_chars:
            return self._result(False, extracted=None, source=None, reason="response_too_long")
        text = strip_thinking(sample.response) if self.strip_thinking else sample.response
        if text is None:
            return self._result(False, extracted=None, source=None, reason="unfinished_thinking")
        text = cut_continuation(text)
        found = find_answer(text)
        answer, source = found.text, found.source
        if sample.finish_reason == "length" and self.truncated == "wrong":
            return self._result(False, extracted=_clip(answer), source=source, reason="truncated")
        if len(found.boxes) > self.max_boxes:
            return self._result(False, extracted=_clip(answer), source=source, reason="too_many_boxes")
        if any(len(a) > self.max_answer_chars for a in (answer or "", *found.boxes)):
            return self._result(False, extracted=_clip(answer), source=source, reason="answer_too_long")
        if any(_depth(a) > _MAX_DEPTH for a in (answer or "", *found.boxes)):
            return self._result(False, extracted=_clip(answer), source=source, reason="too_complex")
        if self.multiple_boxed == "reject" and (hedge := self._hedged(found.boxes, timeout)):
            return self._result(False, extracted=_clip(answer), source=source, reason=hedge)
        if answer is not None:
            if gold.letter is not None:
                letter = choice_letter(answer)
                correct = letter == gold.letter
                return self._result(correct, extracted=answer, source=source, reason="ok" if correct else "mismatch")
            readings = _readings(choice_value(answer) or answer, timeout)
        elif self.fallback == "last_number" and (number := _last_number(text)) is not None:
            answer, source = number, "last_number"
            readings = _readings(answer, timeout)
        elif self.allow_unanchored:
            readings, source = [parse(sample.response, parsing_timeout=timeout)], "unanchored"
            answer = next((p for p in readings[0] if isinstance(p, str)), None)
        else:
            return self._result(False, extracted=None, source=None, reason="no_answer")
        if any(_too_big(r) for r in readings):
            return self._result(False, extracted=_clip(answer), source=source, reason="too_complex")
        if gold.readings is None:  # a text truth: compared as text
            correct = answer is not None and _as_text(normalize(answer)) == gold.text
        elif not readings[0]:
            reason = "no_answer" if source == "unanchored" else "unparsable"
            return self._result(False, extracted=answer, source=source, reason=reason)
        else:
            correct = any(_equal(g, r, timeout) for g in gold.readings for r in readings if r)
        return self._result(correct, extracted=answer, source=source, reason="ok" if correct else "mismatch")

    def _hedged(self, boxes: tuple[str, ...], timeout: int | None) -> str | None:
        """"multiple_answers" when the boxes hold more than one value, "too_complex" when one of them is
        an exponent tower (never evaluated), else None. Equal strings cost nothing; different strings are
        compared as math: "\\frac{1}{2}" and "0.5" are one answer."""
        texts = [b for b in boxes if b.strip()]
        if len(set(_as_text(b) for b in texts)) < 2:
            return None
        last = _parse_answer(texts[-1], timeout)
        for other in texts[:-1]:
            if _as_text(other) == _as_text(texts[-1]):
                continue
            parsed = _parse_answer(other, timeout)
            if _too_big(parsed) or _too_big(last):
                return "too_complex"
            if not (last and parsed and _equal(last, parsed, timeout)):
                return "multiple_answers"
        return None

    def _result(self, correct: bool, **details: Any) -> VerifyResult:
        return VerifyResult(self.reward_correct if correct else self.reward_wrong, correct, details)


class _Gold:
    """A parsed ground truth: math_verify's readings (None: not math), its text, its option letter."""

    def __init__(self, readings: list[list[Any]] | None, text: str, letter: str | None) -> None:
        self.readings, self.text, self.letter = readings, text, letter


@functools.lru_cache(maxsize=4096)
def _parse_gold(ground_truth: str, timeout: int | None) -> _Gold:
    """Parse a ground truth once per distinct string (each prompt is sampled n times).

    Plain ("3/4") and LaTeX ("\\frac{3}{4}") forms are both wrapped in ``$...$`` so math_verify's
    LaTeX extractor sees them; text already delimited or boxed is passed as is. ``\\$4.25`` is a price;
    "40\\%" reads as 40 and as 0.4.
    """
    text = normalize(ground_truth.strip())
    if not text:
        raise ValueError(f"empty ground truth {ground_truth!r}")
    letter = _GOLD_LETTER.match(text)
    if letter:
        return _Gold(None, text, letter.group(1))
    percent = _PERCENT.fullmatch(text)
    forms = [percent.group(1), rf"\frac{{{percent.group(1)}}}{{100}}"] if percent else [text]
    readings = [parse(f if _UNESCAPED_DOLLAR.search(f) or "\\boxed" in f else f"${f}$", parsing_timeout=timeout)
                for f in forms]
    return _Gold(readings if readings[0] else None, _as_text(text), None)


def _parse_answer(answer: str, timeout: int | None) -> list[Any]:
    """math_verify's reading of an extracted answer, LaTeX extraction only: its fallback would pull a
    stray number out of malformed LaTeX ("\\begin{matrix} 1 \\\\ 3 \\end{pmatrix}" would equal 3)."""
    return _parse_normalized(normalize(answer), timeout)


def _parse_normalized(text: str, timeout: int | None) -> list[Any]:
    if len(text) > _MAX_NORMALIZED_CHARS:  # "½" * 1000 is 11,000 characters of \frac: not an answer
        return []
    if not _UNESCAPED_DOLLAR.search(text):
        text = f"${text}$"
    return parse(text, extraction_config=_LATEX_ONLY, parsing_timeout=timeout)


def _readings(answer: str, timeout: int | None) -> list[list[Any]]:
    """The parses an answer may mean: one, or for a percentage "12.5\\%" both 12.5 and 12.5/100 (a
    question asking "what percent" has the truth 12.5, one asking for a fraction has 0.125)."""
    text = normalize(answer)
    percent = _PERCENT.fullmatch(text)
    if percent is None:
        return [_parse_normalized(text, timeout)]
    value = percent.group(1)
    return [_parse_normalized(value, timeout), _parse_normalized(rf"\frac{{{value}}}{{100}}", timeout)]


def _equal(gold: list[Any], predicted: list[Any], timeout: int | None) -> bool:
    """Two plain numbers by :func:`_same_number`; anything else by math_verify."""
    a, b = _number(gold), _number(predicted)
    if a is not None and b is not None:
        return _same_number(a, b)
    return verify(gold, predicted, timeout_seconds=timeout)


def _same_number(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Exact values (integers, fractions) compare exactly, and so do two integer values (1000001 is
    not 1000000.0); otherwise ``|a - b| <= REL_TOL * max(|a|, |b|)``, with a 1e-9 relative slack for
    the binary representation of a written decimal (so 0.333333 meets 1/3 at the bound)."""
    if a.is_Rational and b.is_Rational:
        return bool(a == b)
    with localcontext() as ctx:
        ctx.prec = 40
        x, y = Decimal(str(a.evalf(30))), Decimal(str(b.evalf(30)))
        if x == x.to_integral_value() and y == y.to_integral_value():
            return x == y
        return abs(x - y) <= Decimal(REL_TOL) * max(abs(x), abs(y)) * (1 + Decimal("1e-9"))


def _number(parsed: list[Any]) -> sympy.Expr | None:
    """A parse that is one plain real number (not a percentage, set, equation or symbol); None
    otherwise."""
    if not parsed or not isinstance(parsed[0], sympy.Expr):
        return None
    expr, text = parsed[0], next((p for p in parsed if isinstance(p, str)), "")
    if "%" in text or _too_big(parsed) or not expr.is_number:
        return None
    if expr.has(sympy.oo, sympy.zoo, sympy.nan) or sympy.count_ops(expr) > 30:
        return None
    value = expr.evalf(30)
    return expr if value.is_real and value.is_finite else None


def _too_big(parsed: list[Any]) -> bool:
    """An exponent over :data:`_MAX_EXPONENT` or a tower (``10^{10^{10}}``, ``3.1e99999999``): sympy would
    evaluate it digit by digit, in C, where no soft timeout reaches. Checked on the parse's structure only."""
    for item in parsed:
        if not isinstance(item, sympy.Basic):
            continue
        for power in item.atoms(sympy.Pow):
            exp = power.exp
            if exp.is_Number and abs(exp) > _MAX_EXPONENT:
                return True
            if not exp.is_Number and any(p.exp.is_Integer and p.exp > 1 for p in exp.atoms(sympy.Pow)):
                return True
    return False


def _last_number(text: str) -> str | None:
    """The last number in ``text`` (thousands commas dropped first), as Qwen's math evaluation toolkit
    falls back to it (SimpleRL-Zoo's reward): "we get 3, then 7, and finally 12" gives 12."""
    found = _NUMBER.findall(_THOUSANDS.sub("", text))
    return found[-1] if found else None


def _depth(text: str) -> int:
    """The deepest nesting of brackets and braces: math_verify's LaTeX parser hangs for seconds on a few
    hundred levels, and no answer needs more than :data:`_MAX_DEPTH`."""
    depth = deepest = 0
    for char in text:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth = max(depth - 1, 0)
    return deepest


def _as_text(text: str) -> str:
    return "".join(text.split()).casefold()


def _clip(answer: str | None) -> str | None:
    return answer[:200] if answer is not None else None


def _extract_answer(response: str) -> tuple[str | None, str | None]:
    """Kept for callers that want the math verifier's reading of a response (e.g. the model judge)."""
    found = find_answer(response)
    return found.text, found.source
