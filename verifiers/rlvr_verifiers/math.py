"""Competition-math answers (MATH, GSM8K, AIME style), compared for mathematical equivalence.

Extraction is done here, equivalence by HuggingFace's ``math_verify`` (sympy-based: "0.5", "1/2" and
"\\frac{1}{2}" agree; "x = 3" agrees with "3").
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

from math_verify import parse, verify

from rlvr.verify.base import VerifyResult, VerifySample

__all__ = ["MathVerifier"]

# math_verify bounds each parse / comparison with signal.alarm, which only works on the main thread
# (elsewhere it raises ValueError) and needs whole seconds. In a VerifierPool worker the hard deadline
# is the pool's; this soft one just lets a runaway sympy call fail without costing a worker restart.
_SOFT_TIMEOUT_S = 3

_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
# "The (final) answer is X": X runs to the end of its sentence (a period followed by a space or the
# end of the line), so "is 42. Let me check" gives "42" while "is 3.5." gives "3.5".
_ANSWER_IS = re.compile(r"answer\s+is\s*:?[ \t]*([^\n]*?)(?=\.?[ \t]*$|\.\s)", re.IGNORECASE | re.MULTILINE)
_MATH_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


class MathVerifier:
    """Reward ``reward_correct`` when the final answer equals the ground truth, else ``reward_wrong``.

    The final answer is, in order of preference:

    1. the content of the LAST complete ``\\boxed{...}`` or ``\\fbox{...}`` (braces balanced). When a
       response boxes several answers, the last one wins: it is the model's final word, and taking
       any match would reward listing candidates. An unclosed box (a cut-off response) is skipped.
    2. otherwise what follows the last "The answer is" / "The final answer is" on its line, with
       surrounding ``$...$``, ``**`` and a trailing period removed;
    3. otherwise, only with ``allow_unanchored=True``, whatever ``math_verify`` finds in the whole
       response (its own last-expression heuristics). Off by default: on base models it rewards
       numbers that happen to appear in the working.

    No answer scores ``reward_wrong`` with reason "no_answer". Use ``reward_wrong=-1.0`` for a ±1
    scheme. Truncated responses are scored like any other; length penalties belong to reward
    composition, not to equivalence checking. A ground truth that math_verify cannot parse as math is
    compared as text; one it finds nothing in (e.g. empty) raises ValueError, as a data bug.

    details: ``extracted`` (answer text or None), ``source`` ("boxed", "answer_is", "unanchored") and
    ``reason`` ("ok", "mismatch", "no_answer", "unparsable").
    """

    name = "math"

    def __init__(
        self, reward_correct: float = 1.0, reward_wrong: float = 0.0, allow_unanchored: bool = False
    ):
        self.reward_correct = float(reward_correct)
        self.reward_wrong = float(reward_wrong)
        self.allow_unanchored = allow_unanchored

    def score(self, sample: VerifySample) -> VerifyResult:
        timeout = _SOFT_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
        answer, source = _extract_answer(sample.response)
        if answer is not None:
            predicted = parse(f"${answer}$", parsing_timeout=timeout)
        elif self.allow_unanchored:
            predicted, source = parse(sample.response, parsing_timeout=timeout), "unanchored"
            answer = next((p for p in predicted if isinstance(p, str)), None)
        else:
            return self._result(False, extracted=None, source=None, reason="no_answer")
        if not predicted:
            reason = "no_answer" if source == "unanchored" else "unparsable"
            return self._result(False, extracted=answer, source=source, reason=reason)
        correct = verify(_parse_gold(sample.ground_truth, timeout), predicted, timeout_seconds=timeout)
        return self._result(correct, extracted=answer, source=source, reason="ok" if correct else "mismatch")

    def _result(self, correct: bool, **details: Any) -> VerifyResult:
        return VerifyResult(self.reward_correct if correct else self.reward_wrong, correct, details)


@functools.lru_cache(maxsize=4096)
def _parse_gold(ground_truth: str, timeout: int | None) -> list[Any]:
    """Parse a ground truth once per distinct string (each prompt is sampled n times).

    Plain ("3/4") and LaTeX ("\\frac{3}{4}") forms are both wrapped in ``$...$`` so math_verify's
    LaTeX extractor sees them; text already delimited or boxed is passed as is.
    """
    text = ground_truth.strip()
    if "$" not in text and "\\boxed" not in text:
        text = f"${text}$"
    gold = parse(text, parsing_timeout=timeout)
    if not gold:
        raise ValueError(f"math_verify cannot parse ground truth {ground_truth!r}")
    return gold


def _extract_answer(response: str) -> tuple[str | None, str | None]:
    boxed = (_last_boxed(response) or "").strip()
    if boxed:  # an empty \boxed{} is no answer
        return boxed, "boxed"
    matches = _ANSWER_IS.findall(response)
    if matches:
        answer = _clean_inline(matches[-1])
        if answer:
            return answer, "answer_is"
    return None, None


def _last_boxed(text: str) -> str | None:
    for match in reversed(list(_BOX_OPEN.finditer(text))):
        content = _balanced(text, match.end())
        if content is not None:
            return content
    return None


def _balanced(text: str, start: int) -> str | None:
    """Text from ``start`` up to the brace closing the one just before it; None if never closed."""
    depth, i = 1, start
    while i < len(text):
        char = text[i]
        if char == "\\":  # \{ and \} are literal braces (sets), not grouping
            i += 2
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return text[start:i]
        i += 1
    return None


def _clean_inline(text: str) -> str:
    text = text.strip().rstrip(".").strip().strip("*").strip()
    for left, right in _MATH_DELIMS:
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            text = text[len(left) : -len(right)].strip()
            break
    return text.rstrip(".").strip()
