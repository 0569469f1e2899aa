"""DAPO's reward, as its authors compute it: the last "Answer:" line, compared as a normalised string.

DAPO (Yu et al., arXiv 2503.14476) trains on DAPO-Math-17k, whose prompts ask for a last line "Answer:
$Answer", and scores with verl's ``math_dapo`` reward: the last case-insensitive ``Answer:`` in the last
300 characters of the response, normalised as Minerva normalises final answers (Lewkowycz et al. 2022,
arXiv 2206.14858, appendix D.1), must equal the normalised ground truth: +1, else -1. No mathematical
equivalence: "5.0" is not "5", and a response that only boxes its answer has none. A recipe that
reproduces DAPO must pay exactly this; ``math`` is the better reward for new work.

``strict_box=True`` is the same scorer's other mode, the one NFT's boxed-prompt DAPO data uses: the last
complete ``\\boxed{}`` within the response's last 100 characters (of its last 300), compared with the
ground truth as exact strings, no normalisation on either side ("540." and " 540" are not "540").

Normalisation, on both sides, in order:

1. keep what follows the last ``=``;
2. drop the articles "an " and "a ", ``\\$``, ``\\ `` and all spaces; ".$" -> "$", "mbox" -> "text",
   ``\\text{and}`` -> ","; ``\\text{m}`` -> ``\\text{}``;
3. delete unit and filler words and TeX decoration (:data:`_REMOVED`);
4. keep the inside of the first ``$...$``; unwrap ``\\text{}``, ``\\textbf{}``, ``\\overline{}`` (shortest)
   and ``\\boxed{}`` (longest);
5. ``\\fracab`` -> ``\\frac{a}{b}``, ``\\sqrta`` -> ``\\sqrt{a}``; drop the remaining ``$``;
6. digits with thousands commas lose the commas; strip.
"""

from __future__ import annotations

import re

from rlvr.verify.base import VerifyResult, VerifySample
from rlvr_verifiers.extract import boxed_all

__all__ = ["DapoAnswerVerifier", "last_boxed_raw", "normalize_final_answer"]

_TAIL_CHARS = 300
_BOX_TAIL_CHARS = 100
_ANSWER = re.compile(r"Answer\s*:\s*([^\n]+)", re.IGNORECASE)
_REPLACED = (("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), ("\\ ", ""), (" ", ""), ("mbox", "text"),
             (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"))
_REMOVED = ("square", "ways", "integers", "dollars", "mph", "inches", "hours", "km", "units", "\\ldots", "sue",
            "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters", "meals",
            "edges", "students", "childrentickets", "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}",
            "\\text{}^2", "\\text{}^3", "\\text{\n}", "\\text{}", "\\mathrm{th}", "^\\circ", "^{\\circ}", "\\;",
            ",\\!", "{,}", '"', "\\dots")
_UNWRAP = (
    (re.compile(r"^.*?\$(.*?)\$.*$"), r"$\1$"),
    (re.compile(r"\\text\{(.*?)\}"), r"\1"),
    (re.compile(r"\\textbf\{(.*?)\}"), r"\1"),
    (re.compile(r"\\overline\{(.*?)\}"), r"\1"),
    (re.compile(r"\\boxed\{(.*)\}"), r"\1"),
    (re.compile(r"frac([^{])(.)"), r"frac{\1}{\2}"),
    (re.compile(r"sqrt([^{])"), r"sqrt{\1}"),
)


def normalize_final_answer(answer: str) -> str:
    """Minerva's final-answer normalisation (the module docstring's steps)."""
    answer = answer.split("=")[-1]
    for old, new in _REPLACED:
        answer = answer.replace(old, new)
    for word in _REMOVED:
        answer = answer.replace(word, "")
    for pattern, repl in _UNWRAP:
        answer = pattern.sub(repl, answer)
    answer = answer.replace("$", "")
    if answer.replace(",", "").isdigit():
        answer = answer.replace(",", "")
    return answer.strip()


class DapoAnswerVerifier:
    """``reward_correct`` (+1) when the last "Answer:" line equals the ground truth after
    :func:`normalize_final_answer`, else ``reward_wrong`` (-1).

    Truncated responses are graded like any other (the source has no length check; DAPO's overlong
    punishment is the length signal). details: ``extracted`` (the normalised prediction, "[INVALID]"
    without an "Answer:" line) and ``reason`` ("ok", "mismatch", "no_answer").
    """

    name = "dapo_answer"

    def __init__(self, reward_correct: float = 1.0, reward_wrong: float = -1.0, strict_box: bool = False) -> None:
        self.reward_correct, self.reward_wrong = float(reward_correct), float(reward_wrong)
        self.strict_box = strict_box

    def score(self, sample: VerifySample) -> VerifyResult:
        if self.strict_box:
            return self._strict_box(sample)
        found = _ANSWER.findall(sample.response[-_TAIL_CHARS:])
        if not found:
            return VerifyResult(self.reward_wrong, False, {"extracted": "[INVALID]", "reason": "no_answer"})
        predicted = normalize_final_answer(found[-1])
        correct = predicted == normalize_final_answer(sample.ground_truth)
        return VerifyResult(self.reward_correct if correct else self.reward_wrong, correct,
                            {"extracted": predicted, "reason": "ok" if correct else "mismatch"})

    def _strict_box(self, sample: VerifySample) -> VerifyResult:
        boxed = last_boxed_raw(sample.response[-_TAIL_CHARS:][-_BOX_TAIL_CHARS:])
        if boxed is None:
            return VerifyResult(self.reward_wrong, False, {"extracted": None, "reason": "no_answer"})
        correct = boxed == sample.ground_truth
        return VerifyResult(self.reward_correct if correct else self.reward_wrong, correct,
                            {"extracted": boxed, "reason": "ok" if correct else "mismatch"})


def last_boxed_raw(text: str) -> str | None:
    """The content of the last complete ``\\boxed{...}`` (braces balanced), unstripped; None if none."""
    boxes = boxed_all(text)
    return boxes[-1] if boxes else None
