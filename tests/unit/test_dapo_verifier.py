"""DAPO's own reward (verl's math_dapo, Minerva normalisation), on the cases its code decides: each expected
value below is what the authors' scorer returns for that input (run on their code, verl@4f80e465)."""

from __future__ import annotations

import pytest
from rlvr_verifiers.dapo import DapoAnswerVerifier, normalize_final_answer

from rlvr.verify import VerifySample, load_verifier


def _score(response: str, truth: str, **kwargs: object) -> tuple[float, object]:
    result = DapoAnswerVerifier(**kwargs).score(VerifySample("Q", response, truth, finish_reason="stop"))
    assert result.correct is (result.score == 1.0)
    return result.score, result.details["extracted"]


@pytest.mark.parametrize(
    ("response", "truth", "score", "extracted"),
    [
        ("Let me compute.\nAnswer: 540", "540", 1.0, "540"),
        ("Working...\nAnswer: $204$", "204", 1.0, "204"),
        ("answer: 721.", "721", -1.0, "721."),  # a trailing period survives the normalisation
        ("Answer: \\boxed{721}", "721", 1.0, "721"),
        ("The answer is \\boxed{721}", "721", -1.0, "[INVALID]"),  # no "Answer:" line: no answer
        ("Answer: 1,000", "1000", 1.0, "1000"),
        ("Answer: x = 5", "5", 1.0, "5"),
        ("Answer: 5 degrees", "5", 1.0, "5"),
        ("Answer: 5.0", "5", -1.0, "5.0"),  # strings, not numbers
        ("Answer: 3\nOn second thought...\nAnswer: 4", "4", 1.0, "4"),  # the last one
        ("Final Answer: 12", "12", 1.0, "12"),
        ("Answer:\n12", "12", 1.0, "12"),
        ("Answer: \\frac12", "\\frac{1}{2}", 1.0, "\\frac{1}{2}"),
        ("Answer: \\text{(B)}", "B", -1.0, "(B)"),
        ("Answer: 10\\%", "10", -1.0, "10\\%"),
        ("Answer: $540$ dollars", "540", 1.0, "540"),
        ("answer : 1,000", "1000", 1.0, "1000"),
        ("Answer: 540" + "x" * 300, "540", -1.0, "[INVALID]"),  # only the last 300 characters are read
    ],
)
def test_answer_line_mode(response: str, truth: str, score: float, extracted: str) -> None:
    assert _score(response, truth) == (score, extracted)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [("a 5", "5"), ("\\$12", "12"), ("\\fracab", "\\frac{a}{b}"), ("\\frac{abc}{bef}", "\\frac{abc}{bef}"),
     ("\\fracabc", "\\frac{a}{b}c"), ("\\sqrta", "\\sqrt{a}"), ("\\sqrtab", "\\sqrt{a}b"), ("x = 3", "3")],
)
def test_minerva_normalisation(raw: str, normalised: str) -> None:
    assert normalize_final_answer(raw) == normalised


@pytest.mark.parametrize(
    ("response", "truth", "score", "extracted"),
    [
        ("Thus the answer is \\boxed{540}.", "540", 1.0, "540"),
        ("\\boxed{540.}", "540", -1.0, "540."),
        ("\\boxed{ 540}", "540", -1.0, " 540"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}", 1.0, "\\frac{1}{2}"),
        ("\\boxed{\\frac{1}{2}}", "1/2", -1.0, "\\frac{1}{2}"),
        ("\\boxed{0.5}", "\\frac{1}{2}", -1.0, "0.5"),
        ("\\boxed{540}" + "." * 120, "540", -1.0, None),  # the box must be in the last 100 characters
        ("\\boxed{7} first try, final: \\boxed{540}", "540", 1.0, "540"),
        ("\\boxed{540} then \\boxed{7}", "540", -1.0, "7"),
        ("Answer: 540", "540", -1.0, None),
        ("\\boxed{\\sqrt{2}}", "\\sqrt{2}", 1.0, "\\sqrt{2}"),
        ("\\boxed{540", "540", -1.0, None),
    ],
)
def test_strict_box_mode(response: str, truth: str, score: float, extracted: object) -> None:
    assert _score(response, truth, strict_box=True) == (score, extracted)


def test_registered_and_truncated_responses_are_graded() -> None:
    verifier = load_verifier("dapo_answer", {"reward_wrong": 0.0})
    result = verifier.score(VerifySample("Q", "Answer: 7", "7", finish_reason="length"))
    assert result.correct and result.score == 1.0
    assert verifier.score(VerifySample("Q", "Answer: 8", "7")).score == 0.0
