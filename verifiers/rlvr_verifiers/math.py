"""Competition-math answers (MATH, GSM8K, AIME style), compared for mathematical equivalence.

Extraction is done here, equivalence by HuggingFace's ``math_verify`` (sympy-based: "0.5", "1/2" and
"\\frac{1}{2}" agree; "x = 3" agrees with "3").
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Literal

from math_verify import LatexExtractionConfig, parse, verify

from rlvr.verify.base import VerifyResult, VerifySample
from rlvr_verifiers.extract import boxed_all, final_answer

__all__ = ["MathVerifier"]

# math_verify bounds each parse / comparison with signal.alarm, which only works on the main thread
# (elsewhere it raises ValueError) and needs whole seconds. In a VerifierPool worker the hard deadline
# is the pool's; this soft one just lets a runaway sympy call fail without costing a worker restart.
_SOFT_TIMEOUT_S = 3
_LATEX_ONLY = [LatexExtractionConfig()]

class MathVerifier:
    """Reward ``reward_correct`` when the final answer equals the ground truth, else ``reward_wrong``.

    The final answer is found by :func:`rlvr_verifiers.extract.final_answer`: the last
    ``<answer>...</answer>``, else the last complete ``\\boxed{}``/``\\fbox{}``, else GSM8K's
    ``#### X``, else the last "Final Answer: X" / "The (final) answer is X". With
    ``allow_unanchored=True`` (off by default: on base models it rewards numbers that happen to appear
    in the working) math_verify's own last-expression heuristics are the final fallback.

    Rules, each chosen so that a policy cannot raise its reward without raising its accuracy:

    * **Several boxed answers**: the last complete box is the answer (``multiple_boxed="last"``, the
      convention of MATH/DAPO graders); ``"reject"`` scores a response that boxes two or more
      *different* answers as wrong ("multiple_answers"), for tasks where hedging must cost.
    * **Hedging inside one answer** ("3 or 4", "\\{3, 4\\}") is wrong against a single-valued truth:
      math_verify compares the whole set, not any member.
    * **Truncated output** (``finish_reason == "length"``) is wrong by default (``truncated="wrong"``):
      a box before the cut may be a candidate the model was still checking. ``"score"`` grades it
      like any other response (length penalties then belong to reward shaping).
    * **Malformed LaTeX** is compared as text, never mined for a number inside it.
    * **Oversized answers** (over ``max_answer_chars``) are wrong ("answer_too_long") without being
      parsed: they are either a dump of candidates or an attempt to stall the parser.

    No answer scores ``reward_wrong`` with reason "no_answer"; ``reward_wrong=-1.0`` gives a ±1 scheme.
    A ground truth that math_verify cannot parse as math is compared as text; one it finds nothing in
    (e.g. empty) raises ValueError, as a data bug.

    details: ``extracted`` (answer text or None), ``source`` ("answer_tag", "boxed", "hashes",
    "answer_is", "unanchored") and ``reason`` ("ok", "mismatch", "no_answer", "unparsable",
    "truncated", "multiple_answers", "answer_too_long").
    """

    name = "math"

    def __init__(
        self,
        reward_correct: float = 1.0,
        reward_wrong: float = 0.0,
        allow_unanchored: bool = False,
        multiple_boxed: Literal["last", "reject"] = "last",
        truncated: Literal["wrong", "score"] = "wrong",
        max_answer_chars: int = 1000,
    ) -> None:
        if multiple_boxed not in ("last", "reject"):
            raise ValueError(f"multiple_boxed must be 'last' or 'reject', got {multiple_boxed!r}")
        if truncated not in ("wrong", "score"):
            raise ValueError(f"truncated must be 'wrong' or 'score', got {truncated!r}")
        if max_answer_chars < 1:
            raise ValueError(f"max_answer_chars must be >= 1, got {max_answer_chars}")
        self.reward_correct = float(reward_correct)
        self.reward_wrong = float(reward_wrong)
        self.allow_unanchored = allow_unanchored
        self.multiple_boxed = multiple_boxed
        self.truncated = truncated
        self.max_answer_chars = max_answer_chars

    def score(self, sample: VerifySample) -> VerifyResult:
        timeout = _SOFT_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
        answer, source = final_answer(sample.response)
        if sample.finish_reason == "length" and self.truncated == "wrong":
            return self._result(False, extracted=answer, source=source, reason="truncated")
        if source == "boxed" and self.multiple_boxed == "reject":
            distinct = {b.strip() for b in boxed_all(sample.response) if b.strip()}
            if len(distinct) > 1:
                return self._result(False, extracted=answer, source=source, reason="multiple_answers")
        if answer is not None and len(answer) > self.max_answer_chars:
            return self._result(False, extracted=answer[:200], source=source, reason="answer_too_long")
        if answer is not None:
            # LaTeX extraction only: math_verify's fallback would pull a stray number out of malformed
            # LaTeX ("\\begin{matrix} 1 \\\\ 3 \\end{pmatrix}" would equal 3).
            predicted = parse(f"${answer}$", extraction_config=_LATEX_ONLY, parsing_timeout=timeout)
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
    """Kept for callers that want the math verifier's reading of a response (e.g. the model judge)."""
    return final_answer(response)
