"""Rule verifiers on realistic answer strings: math anchors and anti-hacking rules, GSM8K numbers,
multiple choice, exact/regex match, format templates, length penalty and weighted composition."""

from __future__ import annotations

from pathlib import Path

import pytest
from rlvr_verifiers.choice import MultipleChoiceVerifier
from rlvr_verifiers.compose import WeightedSum
from rlvr_verifiers.format import FormatVerifier
from rlvr_verifiers.gsm8k import GSM8KVerifier
from rlvr_verifiers.length import LengthPenalty
from rlvr_verifiers.match import ExactMatchVerifier, RegexMatchVerifier
from rlvr_verifiers.math import MathVerifier

from rlvr.verify import VerifySample


def _s(response: str, truth: str, finish: str | None = "stop", tokens: int | None = None, **meta) -> VerifySample:
    return VerifySample("Q", response, truth, metadata=meta, finish_reason=finish, response_tokens=tokens)


# -- math: anchors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "truth", "correct", "source"),
    [
        ("<think>2+2 is 4</think> <answer>4</answer>", "4", True, "answer_tag"),
        ("<think>so \\boxed{3}?</think><answer>The result is \\boxed{4}</answer>", "4", True, "answer_tag"),
        ("<think>...</think><answer>$\\frac{1}{2}$</answer>", "0.5", True, "answer_tag"),
        ("Natalia sold 48/2 = 24 clips in May.\n48+24 = 72\n#### 72", "72", True, "hashes"),
        ("**Final Answer:** $\\frac{3}{4}$", "3/4", True, "answer_is"),
        ("Final Answer: The final answer is $12$. I hope it is correct.", "12", True, "answer_is"),
        ("Therefore, the answer is: $\\boxed{5}$.", "5", True, "boxed"),
        ("The answer is 2, i.e. \\boxed{3}", "3", True, "boxed"),  # the statement made last wins (here the box)
        ("Answer: 7", "7", True, "answer_is"),
        ("\\boxed{\\text{(B)}}", "B", True, "boxed"),
    ],
)
def test_math_answer_anchors(response: str, truth: str, correct: bool, source: str) -> None:
    result = MathVerifier().score(_s(response, truth))
    assert result.correct is correct, result.details
    assert result.details["source"] == source


@pytest.mark.parametrize(
    ("response", "truth"),
    [
        ("\\boxed{3 \\text{ or } 4}", "3"),  # hedging inside one box
        ("\\boxed{3, 4}", "3"),
        ("\\boxed{x = 3 \\text{ or } x = -3}", "3"),
        ("\\boxed{\\{3, 4\\}}", "3"),
    ],
)
def test_math_hedged_answers_are_wrong(response: str, truth: str) -> None:
    assert not MathVerifier().score(_s(response, truth)).correct


def test_math_several_boxes_reject_or_last_wins() -> None:
    hedge = "It could be \\boxed{4}. Or maybe \\boxed{3}."
    result = MathVerifier().score(_s(hedge, "3"))  # distinct boxed values: a hedge, wrong by default
    assert (result.correct, result.details["reason"]) == (False, "multiple_answers")
    assert MathVerifier(multiple_boxed="last").score(_s(hedge, "3")).correct  # the last box is the final word
    # the same answer boxed twice (restated) is not a hedge
    assert MathVerifier().score(_s("\\boxed{3} ... so again \\boxed{ 3 }", "3")).correct


def test_math_truncated_is_wrong_by_default() -> None:
    cut = _s("The answer is \\boxed{3}, but let me verify by expanding the", "3", finish="length")
    result = MathVerifier().score(cut)
    assert (result.correct, result.details["reason"], result.details["extracted"]) == (False, "truncated", "3")
    assert MathVerifier(truncated="score").score(cut).correct


def test_math_oversized_answer_is_not_parsed() -> None:
    huge = "\\boxed{" + "1+" * 5000 + "1}"
    result = MathVerifier().score(_s(huge, "5001"))
    assert (result.correct, result.details["reason"]) == (False, "answer_too_long")
    assert len(result.details["extracted"]) <= 200


def test_math_answer_in_the_prompt_echo_does_not_count() -> None:
    """Only the response is read: a prompt that contains the answer cannot leak into the score."""
    sample = VerifySample("What is 2+3? (hint: \\boxed{5})", "I am not sure.", "5", finish_reason="stop")
    assert MathVerifier().score(sample).details["reason"] == "no_answer"


def test_math_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="multiple_boxed"):
        MathVerifier(multiple_boxed="first")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="truncated"):
        MathVerifier(truncated="maybe")  # type: ignore[arg-type]


# -- gsm8k ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "truth", "correct", "reason", "source"),
    [
        ("She has 5 + 7 = 12 apples.\n#### 12", "12", True, "ok", "hashes"),
        ("The total cost is $1,234.00.", "1234", True, "ok", "answer_is") if False else
        ("So she pays $1,234.00 in total.", "1234", True, "ok", "last_number"),
        ("The answer is 18 dollars.", "#### 18", True, "ok", "answer_is"),
        ("He runs 3 * 60 = 180 meters. \\boxed{180}", "Janet... 180 meters\n#### 180", True, "ok", "boxed"),
        ("x = -5", "-5", True, "ok", "last_number"),
        ("It is 12.5", "12.5", True, "ok", "last_number"),
        ("It is 12.5", "125", False, "mismatch", "last_number"),
        ("72 / 2 = 36, then 36 + 72 = 108", "108", True, "ok", "last_number"),
        ("The answer is 12 or 13.", "12", False, "ambiguous", "answer_is"),
        ("I cannot solve this.", "12", False, "no_answer", None),
        ("50%", "50", True, "ok", "last_number"),
    ],
)
def test_gsm8k(response: str, truth: str, correct: bool, reason: str, source: str | None) -> None:
    result = GSM8KVerifier().score(_s(response, truth))
    assert (result.correct, result.details["reason"], result.details["source"]) == (correct, reason, source)


def test_gsm8k_strict_and_truncated() -> None:
    assert GSM8KVerifier(mode="strict").score(_s("so 12", "12")).details["reason"] == "no_answer"
    assert GSM8KVerifier(mode="strict").score(_s("#### 12", "12")).correct
    assert GSM8KVerifier().score(_s("#### 12", "12", finish="length")).details["reason"] == "truncated"
    assert GSM8KVerifier(reward_wrong=-1.0).score(_s("#### 11", "12")).score == -1.0
    with pytest.raises(ValueError, match="not a single number"):
        GSM8KVerifier().score(_s("1", "twelve"))


# -- multiple choice --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "correct", "reason"),
    [
        ("The answer is (B).", True, "ok"),
        ("Answer: B", True, "ok"),
        ("After eliminating A and D, the answer is B because A is wrong.", True, "ok"),
        ("\\boxed{B}", True, "ok"),
        ("\\boxed{\\text{B}}", True, "ok"),
        ("<answer>(B) 42 m/s</answer>", True, "ok"),
        ("The answer is C.", False, "mismatch"),
        ("The answer is B or C.", False, "multiple_answers"),
        ("Answer: A, B", False, "multiple_answers"),
        ("The answer is (E).", False, "invalid_choice"),
        ("I think B.", False, "no_answer"),  # unanchored letters are not answers by default
        ("The answer is a triangle.", False, "no_answer"),  # lower-case "a" is an article
    ],
)
def test_multiple_choice(response: str, correct: bool, reason: str) -> None:
    result = MultipleChoiceVerifier().score(_s(response, "B"))
    assert (result.correct, result.details["reason"]) == (correct, reason)


def test_multiple_choice_options_from_metadata_and_unanchored() -> None:
    verifier = MultipleChoiceVerifier(allow_unanchored=True)
    assert verifier.score(_s("Reasoning...\n(E)", "e", choices=["1", "2", "3", "4", "5"])).correct
    assert verifier.score(_s("Reasoning...\nB.", "(B)")).correct
    with pytest.raises(ValueError, match="not one of the options"):
        verifier.score(_s("Answer: A", "F"))


# -- exact / regex ----------------------------------------------------------------------------------


def test_exact_match_normalisation_extraction_and_aliases() -> None:
    assert ExactMatchVerifier().score(_s("  Paris \n", "paris")).correct
    assert not ExactMatchVerifier(case_sensitive=True).score(_s("paris", "Paris")).correct
    assert not ExactMatchVerifier().score(_s("Paris.", "Paris")).correct
    assert ExactMatchVerifier(strip_punctuation=True).score(_s("Paris.", "Paris")).correct
    final = ExactMatchVerifier(extract="final_answer")
    assert final.score(_s("Let me think. The answer is Paris.", "Paris")).correct
    assert final.score(_s("I don't know", "Paris")).details["reason"] == "no_answer"
    tagged = ExactMatchVerifier(extract=r"ANSWER:\s*(\w+)")
    assert tagged.score(_s("ANSWER: Rome ... ANSWER: Paris", "paris")).correct  # the last match counts
    aliases = ExactMatchVerifier(aliases_key="aliases")
    assert aliases.score(_s("NYC", "New York City", aliases=["NYC", "New York"])).correct
    assert ExactMatchVerifier().score(_s("Paris", "Paris", finish="length")).details["reason"] == "truncated"
    with pytest.raises(ValueError, match="at most one group"):
        ExactMatchVerifier(extract=r"(a)(b)")


def test_regex_match() -> None:
    assert RegexMatchVerifier().score(_s("  The Eiffel tower ", r"the eiffel tower")).correct
    assert not RegexMatchVerifier().score(_s("The Eiffel tower is tall", r"the eiffel tower")).correct
    assert RegexMatchVerifier(how="search").score(_s("The Eiffel tower is tall", r"eiffel\s+tower")).correct
    assert not RegexMatchVerifier(case_sensitive=True).score(_s("eiffel", r"Eiffel")).correct
    assert RegexMatchVerifier(extract="final_answer").score(_s("so \\boxed{3.0}", r"3(\.0+)?")).correct
    with pytest.raises(ValueError, match="not a valid regular expression"):
        RegexMatchVerifier().score(_s("x", "("))


# -- format -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "template", "reason"),
    [
        ("<think>2+2=4</think>\n<answer>4</answer>", "think_answer", "ok"),
        ("  <think>a</think><answer>4</answer>\n", "think_answer", "ok"),
        ("<think>a</think><answer>4</answer> P.S. hi", "think_answer", "no_match"),
        ("<answer>4</answer><think>a</think>", "think_answer", "no_match"),
        ("<think>a</think><answer> </answer>", "think_answer", "empty_answer"),
        ("<think>a<think>b</think></think><answer>4</answer>", "think_answer", "repeated_tags"),
        ("<think>a</think><answer>4</answer><answer>5</answer>", "think_answer", "repeated_tags"),
        ("2+2=4</think> <answer>4</answer>", "think_answer_prefilled", "ok"),
        ("<think>2+2=4</think> <answer>4</answer>", "think_answer_prefilled", "no_match"),
        ("so \\boxed{4}.", "boxed", "ok"),
        ("so 4.", "boxed", "no_match"),
    ],
)
def test_format_templates(response: str, template: str, reason: str) -> None:
    result = FormatVerifier(template=template).score(_s(response, ""))
    assert result.details["reason"] == reason
    assert result.correct is (reason == "ok") and result.score == float(reason == "ok")


def test_format_custom_pattern_truncation_and_errors() -> None:
    verifier = FormatVerifier(pattern=r"Step \d+:.*\nFinal: (?P<answer>.+)", require_nonempty=["answer"])
    assert verifier.score(_s("Step 1: add\nFinal: 4", "")).correct
    assert not verifier.score(_s("Final: 4", "")).correct
    assert FormatVerifier().score(_s("<think>a</think><answer>4</answer>", "", finish="length")).details[
        "reason"] == "truncated"
    with pytest.raises(ValueError, match="unknown format template"):
        FormatVerifier(template="xml")
    with pytest.raises(ValueError, match="groups the pattern lacks"):
        FormatVerifier(pattern="x", require_nonempty=["answer"])


# -- length penalty ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "finish", "penalty", "reason"),
    [(100, "stop", 0.0, "ok"), (768, "stop", 0.0, "ok"), (896, "stop", -0.5, "soft_overlong"),
     (1024, "stop", -1.0, "soft_overlong"), (1100, "stop", -1.0, "overlong"), (300, "length", -1.0, "truncated")],
)
def test_length_penalty_dapo(tokens: int, finish: str, penalty: float, reason: str) -> None:
    result = LengthPenalty(max_length=1024, buffer=256).score(_s("x", "", finish=finish, tokens=tokens))
    assert (result.score, result.details["reason"], result.correct) == (pytest.approx(penalty), reason, penalty == 0)


def test_length_penalty_units_and_errors() -> None:
    assert LengthPenalty(max_length=10, buffer=5, unit="chars").score(_s("x" * 8, "")).score == pytest.approx(-0.6)
    with pytest.raises(ValueError, match="response_tokens"):
        LengthPenalty(max_length=10, buffer=5).score(_s("x", ""))
    with pytest.raises(ValueError, match="buffer"):
        LengthPenalty(max_length=10, buffer=20)


# -- composition ------------------------------------------------------------------------------------

TERMS = [
    {"name": "correct", "verifier": "math"},
    {"name": "format", "verifier": "format", "weight": 0.5},
    {"name": "length", "verifier": "length_penalty", "kwargs": {"max_length": 100, "buffer": 50}},
]


def test_weighted_sum_adds_terms_and_reports_parts() -> None:
    verifier = WeightedSum(TERMS)
    good = verifier.score(_s("<think>2+2</think><answer>\\boxed{4}</answer>", "4", tokens=75))
    assert good.score == pytest.approx(1.0 + 0.5 - 0.5)
    assert good.correct and good.details["terms"] == {"correct": 1.0, "format": 1.0, "length": -0.5}
    assert good.details["reason"] == "ok" and good.details["extracted"] == "4"
    assert good.details["term_reasons"] == {"correct": "ok", "format": "ok", "length": "soft_overlong"}
    wrong_format = verifier.score(_s("\\boxed{4}", "4", tokens=10))
    assert wrong_format.score == pytest.approx(1.0) and wrong_format.correct


def test_weighted_sum_gate() -> None:
    verifier = WeightedSum(TERMS[:2], requires=["format"], fail_score=-1.0)
    gated = verifier.score(_s("\\boxed{4}", "4", tokens=10))
    assert (gated.score, gated.correct, gated.details["gated"], gated.details["reason"]) == (
        -1.0, False, True, "failed_format")
    assert verifier.score(_s("<think>x</think><answer>4</answer>", "4")).score == pytest.approx(1.5)


def test_weighted_sum_loads_plugins_by_path(tmp_path: Path) -> None:
    (tmp_path / "bonus.py").write_text(
        "from rlvr.verify import VerifyResult\n"
        "class Polite:\n"
        "    def score(self, sample):\n"
        "        ok = 'please' in sample.response\n"
        "        return VerifyResult(float(ok), ok, {'reason': 'ok' if ok else 'rude'})\n"
    )
    verifier = WeightedSum([{"verifier": "exact_match"}, {"verifier": f"{tmp_path}/bonus.py:Polite", "weight": 0.1}])
    assert verifier.score(_s("please", "please")).score == pytest.approx(1.1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"terms": []}, "at least one term"),
        ({"terms": [{"name": "x"}]}, "'verifier' key"),
        ({"terms": [{"verifier": "math", "wieght": 2}]}, r"unknown keys \['wieght'\]"),
        ({"terms": [{"verifier": "math"}, {"verifier": "math"}]}, "distinct"),
        ({"terms": [{"verifier": "math"}], "correct_from": "nope"}, "not terms"),
        ({"terms": [{"verifier": "math"}], "requires": ["math"]}, "fail_score"),
        ({"terms": [{"verifier": "maths"}]}, "unknown verifier 'maths'"),
    ],
)
def test_weighted_sum_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WeightedSum(**kwargs)
