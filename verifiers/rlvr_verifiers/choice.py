"""Multiple-choice answers (MMLU, GPQA, ARC style): one option letter.

A letter is easy to hit by accident ("A" is also an article), so only anchored statements count:
``\\boxed{B}``, ``<answer>B</answer>``, "The answer is (B)", "Answer: B". Naming several options in
the final statement ("A or C") is wrong, or a policy learns to list every letter.
"""

from __future__ import annotations

import re
import string

from rlvr.verify.base import VerifyResult, VerifySample
from rlvr_verifiers.extract import answer_is, answer_tag, last_boxed

__all__ = ["MultipleChoiceVerifier"]

_OPTION = re.compile(r"^\(?([A-Z])\)?(?:[.:),/&]|\s|$)")
# "A or C", "(A), (C)", "A/C", "A and C" at the start of the final statement: several options named.
_MULTI = re.compile(r"^\(?[A-Z]\)?\s*(?:,|/|&|\bor\b|\band\b)\s*\(?[A-Z]\)?(?![A-Za-z])")
_STANDALONE = re.compile(r"(?:^|\n)\s*\(?([A-Z])\)?[.:)]?\s*$")


class MultipleChoiceVerifier:
    """Score 1.0 when the chosen option letter equals the ground truth's, else 0.0.

    Args:
        choices: the valid letters (default "ABCD"); a row's ``metadata["choices"]`` (a string of
            letters, or a list of options whose count gives A, B, ...) overrides it.
        allow_unanchored: also accept a bare letter on the response's last line ("B" or "(B).").

    The ground truth is a letter ("B", "(B)", "b"); a response must name it in upper case.
    details: ``extracted``, ``reason`` ("ok", "mismatch", "no_answer", "multiple_answers",
    "invalid_choice", "truncated").
    """

    name = "multiple_choice"

    def __init__(self, choices: str = "ABCD", allow_unanchored: bool = False) -> None:
        if not choices or not all(c in string.ascii_uppercase for c in choices):
            raise ValueError(f"choices must be upper-case letters, got {choices!r}")
        self.choices = choices
        self.allow_unanchored = allow_unanchored

    def score(self, sample: VerifySample) -> VerifyResult:
        valid = self._valid(sample)
        truth = _letter(sample.ground_truth.strip().upper())
        if truth is None or truth not in valid:
            raise ValueError(f"ground truth {sample.ground_truth!r} is not one of the options {valid}")
        statement = self._statement(sample.response)
        first = _letter(statement) if statement else None
        if sample.finish_reason == "length":
            reason, extracted = "truncated", first
        elif statement is None:
            reason, extracted = "no_answer", None
        elif first is None:
            reason, extracted = "no_answer", statement[:100]
        elif _MULTI.match(statement):
            reason, extracted = "multiple_answers", statement[:100]
        elif first not in valid:
            reason, extracted = "invalid_choice", first
        else:
            reason, extracted = ("ok" if first == truth else "mismatch"), first
        correct = reason == "ok"
        return VerifyResult(float(correct), correct, {"extracted": extracted, "reason": reason})

    def _valid(self, sample: VerifySample) -> str:
        meta = sample.metadata.get("choices") if sample.metadata else None
        if isinstance(meta, str) and meta:
            return meta.upper()
        if isinstance(meta, list | tuple) and meta:
            return string.ascii_uppercase[: len(meta)]
        return self.choices

    def _statement(self, response: str) -> str | None:
        for finder in (answer_tag, last_boxed, answer_is):
            found = finder(response)
            if found is not None:
                return _strip_text_macro(found)
        if self.allow_unanchored:
            match = _STANDALONE.search(response.rstrip())
            return match.group(1) if match else None
        return None


def _letter(text: str) -> str | None:
    """The option letter a statement starts with: "B", "(B)", "B.", "B) 42" (upper case: "a" is an article)."""
    match = _OPTION.match(text.strip())
    return match.group(1).upper() if match else None


def _strip_text_macro(text: str) -> str:
    """``\\text{B}`` / ``\\textbf{(B)}`` -> the inner text (boxed letters are often wrapped so)."""
    return re.sub(r"\\text(?:bf|rm)?\s*\{([^{}]*)\}", r"\1", text).strip()
