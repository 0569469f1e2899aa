"""Integer answers for the embedded arithmetic task.

The tiny base model is trained to answer with a bare integer, so ``strict`` (the whole response is
the integer) is the default: it rewards the format as well as the value. ``last`` is the lenient
reading for models that show their working before the result.
"""

from __future__ import annotations

import re

from rlvr.verify.base import VerifyResult, VerifySample

__all__ = ["ExactIntVerifier"]

_STRICT = re.compile(r"[-+]?\d+")
# A number token: optional sign (only where it cannot be a binary minus, so "3-5" yields 5), then
# digits with optional thousands commas ("1,234"), then an optional decimal part. Decimals are
# matched so that "... 3.5" counts as a non-integer final answer instead of falling back to an
# earlier integer.
_NUMBER = re.compile(r"(?:(?<![\w.])[-+])?(?<![\d.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)")


class ExactIntVerifier:
    """Score 1.0 when the response's integer equals the ground truth, else 0.0.

    Modes:
        strict: the stripped response must be an integer with an optional sign ("68", " 68\\n", "-5";
            not "6 8", "68.", "1,000").
        last: the last number in the response is the answer; commas are thousands separators.

    A response cut off by the token limit (``finish_reason == "length"``) is never correct, in either
    mode: its last number is wherever generation stopped, not an answer the model gave.

    details: ``extracted`` (the answer text or None) and ``reason`` ("ok", "mismatch", "no_answer",
    "truncated"). A ground truth that is not an integer raises ValueError: that is a data bug, not
    a wrong answer.
    """

    name = "exact_int"

    def __init__(self, mode: str = "strict") -> None:
        if mode not in ("strict", "last"):
            raise ValueError(f"ExactIntVerifier mode must be 'strict' or 'last', got {mode!r}")
        self.mode = mode

    def score(self, sample: VerifySample) -> VerifyResult:
        expected = _parse_int(sample.ground_truth.strip())
        if expected is None:
            raise ValueError(f"ground truth {sample.ground_truth!r} is not an integer")
        extracted = self._extract(sample.response)
        if sample.finish_reason == "length":
            reason = "truncated"
        elif extracted is None:
            reason = "no_answer"
        else:
            reason = "ok" if _parse_int(extracted) == expected else "mismatch"
        correct = reason == "ok"
        return VerifyResult(float(correct), correct, {"extracted": extracted, "reason": reason})

    def _extract(self, response: str) -> str | None:
        if self.mode == "strict":
            stripped = response.strip()
            return stripped if _STRICT.fullmatch(stripped) else None
        numbers = _NUMBER.findall(response)
        return numbers[-1] if numbers else None


def _parse_int(text: str) -> int | None:
    """``text`` as an integer (sign and thousands commas allowed), None if it is not one."""
    if not _NUMBER.fullmatch(text) or "." in text:
        return None
    return int(text.replace(",", ""))
