"""Exact-string and regular-expression matching, for tasks whose answers are short strings.

Both normalise the same way (optional case folding and whitespace collapsing) and can first pull the
answer out of the response with a pattern, so "Final answer: Paris" and "paris" can agree when the
recipe says they should, and only then.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Literal

from rlvr.verify.base import VerifyResult, VerifySample
from rlvr_verifiers.extract import final_answer

__all__ = ["ExactMatchVerifier", "RegexMatchVerifier"]


class _Matcher:
    """Extraction and normalisation shared by the two verifiers."""

    def __init__(
        self, extract: str | None, case_sensitive: bool, normalize_whitespace: bool, strip_punctuation: bool
    ) -> None:
        if extract not in (None, "final_answer"):
            pattern = re.compile(extract, re.DOTALL)
            if pattern.groups > 1:
                raise ValueError(f"extract pattern {extract!r} must have at most one group")
        self.extract = extract
        self.case_sensitive = case_sensitive
        self.normalize_whitespace = normalize_whitespace
        self.strip_punctuation = strip_punctuation

    def answer(self, response: str) -> str | None:
        """The response's answer: all of it, its final answer, or the pattern's last match."""
        if self.extract is None:
            return response
        if self.extract == "final_answer":
            return final_answer(response)[0]
        matches = list(re.finditer(self.extract, response, re.DOTALL))
        if not matches:
            return None
        last = matches[-1]
        return last.group(1) if last.re.groups else last.group(0)

    def grade(self, sample: VerifySample, matches: Callable[[str], bool]) -> VerifyResult:
        """Extract the answer and score it with ``matches``; truncated and answerless responses fail."""
        answer = self.answer(sample.response)
        if sample.finish_reason == "length":
            reason = "truncated"
        elif answer is None:
            reason = "no_answer"
        else:
            reason = "ok" if matches(answer) else "mismatch"
        correct = reason == "ok"
        extracted = answer[:200] if answer is not None else None
        return VerifyResult(float(correct), correct, {"extracted": extracted, "reason": reason})

    def normalize(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text)
        if not self.case_sensitive:
            text = text.casefold()
        if self.strip_punctuation:
            text = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
        if self.normalize_whitespace:
            text = " ".join(text.split())
        return text


class ExactMatchVerifier(_Matcher):
    """1.0 when the (extracted, normalised) response equals the (normalised) ground truth.

    Args:
        extract: None (the whole response), "final_answer" (rlvr's anchors: ``<answer>``, ``\\boxed``,
            ``####``, "The answer is"), or a regex whose last match (group 1 if it has a group) is
            the answer.
        case_sensitive, normalize_whitespace, strip_punctuation: normalisation applied to both sides.
        aliases_key: metadata key holding a list of further acceptable answers (e.g. TriviaQA aliases).

    details: ``extracted`` (first 200 characters), ``reason`` ("ok", "mismatch", "no_answer",
    "truncated"). A truncated response is never correct.
    """

    name = "exact_match"

    def __init__(
        self,
        extract: str | None = None,
        case_sensitive: bool = False,
        normalize_whitespace: bool = True,
        strip_punctuation: bool = False,
        aliases_key: str | None = None,
    ) -> None:
        super().__init__(extract, case_sensitive, normalize_whitespace, strip_punctuation)
        self.aliases_key = aliases_key

    def score(self, sample: VerifySample) -> VerifyResult:
        truths = [sample.ground_truth]
        if self.aliases_key and sample.metadata:
            extra = sample.metadata.get(self.aliases_key) or []
            truths += [str(a) for a in (extra if isinstance(extra, list | tuple) else [extra])]
        accepted = {self.normalize(t) for t in truths}
        return self.grade(sample, lambda answer: self.normalize(answer) in accepted)


class RegexMatchVerifier(_Matcher):
    """1.0 when the (extracted, normalised) response matches the regular expression in the ground truth.

    ``how="fullmatch"`` (default) anchors the pattern at both ends; ``"search"`` accepts a match
    anywhere. The pattern is compiled with ``re.IGNORECASE`` unless ``case_sensitive``. A pattern
    built to backtrack forever is stopped by the pool's deadline, like any other hanging verifier. An
    invalid pattern in the data raises ValueError naming it.

    details: ``extracted``, ``reason`` ("ok", "mismatch", "no_answer", "truncated").
    """

    name = "regex"

    def __init__(
        self,
        how: Literal["fullmatch", "search"] = "fullmatch",
        extract: str | None = None,
        case_sensitive: bool = False,
        normalize_whitespace: bool = True,
    ) -> None:
        if how not in ("fullmatch", "search"):
            raise ValueError(f"how must be 'fullmatch' or 'search', got {how!r}")
        super().__init__(extract, True, normalize_whitespace, False)  # case handled by the regex flag
        self.how = how
        self.flags = re.DOTALL | (0 if case_sensitive else re.IGNORECASE)

    def score(self, sample: VerifySample) -> VerifyResult:
        try:
            pattern = re.compile(sample.ground_truth, self.flags)
        except re.error as err:
            raise ValueError(f"ground truth {sample.ground_truth!r} is not a valid regular expression: {err}") from None
        find = pattern.fullmatch if self.how == "fullmatch" else pattern.search
        return self.grade(sample, lambda answer: find(self.normalize(answer).strip()) is not None)
