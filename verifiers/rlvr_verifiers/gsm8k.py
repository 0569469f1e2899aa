"""GSM8K-style numeric answers: the ``#### X`` marker, else the stated answer, else the last number.

Grade-school word problems have a single number as answer, often written with thousands separators,
a currency sign, a unit or a trailing ".00". Comparing numbers (as exact decimals) instead of strings
keeps "$1,234.00" equal to "1234" without letting "12" equal "1.2".
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Literal

from rlvr.verify.base import VerifyResult, VerifySample
from rlvr_verifiers.extract import answer_is, gsm8k_hashes, last_boxed

__all__ = ["GSM8KVerifier", "parse_number"]

# A signed number with optional thousands commas and decimals; a leading sign only where it cannot be a
# binary minus ("3-5" gives 5, "x = -5" gives -5).
_NUMBER = re.compile(r"(?:(?<![\w.])[-+])?(?<![\d.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d,]\d)")


def parse_number(text: str) -> Decimal | None:
    """The single number in ``text`` ("$1,234.50", "-3", "72 dollars", "50%"), None if there is not
    exactly one."""
    numbers = _NUMBER.findall(text)
    if len(numbers) != 1:
        return None
    try:
        return Decimal(numbers[0].replace(",", ""))
    except InvalidOperation:
        return None


class GSM8KVerifier:
    """Score ``reward_correct`` when the final number equals the ground truth's, else ``reward_wrong``.

    Modes:
        strict: only ``#### X`` counts (the format GSM8K's own solutions use).
        flexible (default): ``#### X``, else ``\\boxed{X}``, else "The answer is X" / "Final Answer: X",
            else the last number in the response.

    The ground truth may be a bare number or a full GSM8K solution ending in ``#### X``. A truncated
    response (``finish_reason == "length"``) is never correct: its last number is wherever generation
    stopped. An extracted answer holding several numbers ("12 or 13") is wrong ("ambiguous").

    details: ``extracted``, ``source`` ("hashes", "boxed", "answer_is", "last_number") and ``reason``
    ("ok", "mismatch", "no_answer", "ambiguous", "truncated").
    """

    name = "gsm8k"

    def __init__(
        self, mode: Literal["flexible", "strict"] = "flexible", reward_correct: float = 1.0, reward_wrong: float = 0.0
    ) -> None:
        if mode not in ("flexible", "strict"):
            raise ValueError(f"GSM8KVerifier mode must be 'flexible' or 'strict', got {mode!r}")
        self.mode = mode
        self.reward_correct = float(reward_correct)
        self.reward_wrong = float(reward_wrong)

    def score(self, sample: VerifySample) -> VerifyResult:
        truth_text = gsm8k_hashes(sample.ground_truth) or sample.ground_truth
        expected = parse_number(truth_text)
        if expected is None:
            raise ValueError(f"ground truth {sample.ground_truth!r} is not a single number")
        extracted, source = self._extract(sample.response)
        if sample.finish_reason == "length":
            reason = "truncated"
        elif extracted is None:
            reason = "no_answer"
        elif (value := parse_number(extracted)) is None:
            reason = "ambiguous"
        else:
            reason = "ok" if value == expected else "mismatch"
        correct = reason == "ok"
        score = self.reward_correct if correct else self.reward_wrong
        return VerifyResult(score, correct, {"extracted": extracted, "source": source, "reason": reason})

    def _extract(self, response: str) -> tuple[str | None, str | None]:
        found = gsm8k_hashes(response)
        if found is not None or self.mode == "strict":
            return found, "hashes" if found is not None else None
        for source, finder in (("boxed", last_boxed), ("answer_is", answer_is)):
            found = finder(response)
            if found is not None:
                return found, source
        numbers = _NUMBER.findall(response)
        return (numbers[-1], "last_number") if numbers else (None, None)
