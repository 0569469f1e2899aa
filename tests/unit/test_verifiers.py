"""Built-in verifiers on realistic answer strings, and the registry that finds them."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from rlvr_verifiers.exact_int import ExactIntVerifier
from rlvr_verifiers.math import MathVerifier

from rlvr.verify import VerifyResult, VerifySample, available_verifiers, load_verifier


def _sample(response: str, ground_truth: str, finish_reason: str | None = "stop") -> VerifySample:
    return VerifySample(prompt="Q", response=response, ground_truth=ground_truth, finish_reason=finish_reason)


# -- exact_int --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "truth", "correct", "reason", "extracted"),
    [
        ("68", "68", True, "ok", "68"),
        ("68\n", "68", True, "ok", "68"),
        (" 68", "68", True, "ok", "68"),
        ("-5", "-5", True, "ok", "-5"),
        ("+7", "7", True, "ok", "+7"),
        ("007", "7", True, "ok", "007"),
        ("12", "21", False, "mismatch", "12"),
        ("-5", "5", False, "mismatch", "-5"),
        ("6 8", "68", False, "no_answer", None),
        ("68.", "68", False, "no_answer", None),
        ("1,000", "1000", False, "no_answer", None),
        ("The answer is 68", "68", False, "no_answer", None),
        ("", "68", False, "no_answer", None),
    ],
)
def test_exact_int_strict(
    response: str, truth: str, correct: bool, reason: str, extracted: str | None
) -> None:
    result = ExactIntVerifier().score(_sample(response, truth))
    assert (result.correct, result.score) == (correct, float(correct))
    assert result.details == {"extracted": extracted, "reason": reason}


@pytest.mark.parametrize(
    ("response", "truth", "correct", "extracted"),
    [
        ("12 + 56 = 68", "68", True, "68"),
        ("The answer is 68.", "68", True, "68"),
        ("so the total is 1,234", "1234", True, "1,234"),
        ("x = -5", "-5", True, "-5"),
        ("3-5", "5", True, "5"),  # binary minus, not a sign
        ("6 8", "68", False, "8"),
        ("first 68, then 21", "68", False, "21"),  # only the last number counts
        ("12 or maybe 3.5", "12", False, "3.5"),  # a decimal final answer is not an integer
        ("1,2345", "2345", True, "2345"),  # not a thousands group
    ],
)
def test_exact_int_last(response: str, truth: str, correct: bool, extracted: str) -> None:
    result = ExactIntVerifier(mode="last").score(_sample(response, truth))
    assert result.correct is correct
    assert result.details["extracted"] == extracted


def test_exact_int_last_without_numbers() -> None:
    result = ExactIntVerifier(mode="last").score(_sample("I don't know", "3"))
    assert result.details == {"extracted": None, "reason": "no_answer"}


@pytest.mark.parametrize("mode", ["strict", "last"])
def test_exact_int_truncated_is_never_correct(mode: str) -> None:
    result = ExactIntVerifier(mode=mode).score(_sample("68", "68", finish_reason="length"))
    assert (result.correct, result.score, result.details["reason"]) == (False, 0.0, "truncated")


def test_exact_int_rejects_bad_mode_and_bad_ground_truth() -> None:
    with pytest.raises(ValueError, match="mode"):
        ExactIntVerifier(mode="fuzzy")
    with pytest.raises(ValueError, match="not an integer"):
        ExactIntVerifier().score(_sample("3", "three"))


# -- math -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "truth", "correct", "reason", "extracted"),
    [
        ("So $x = \\boxed{\\frac{1}{2}}$.", "0.5", True, "ok", "\\frac{1}{2}"),
        ("\\boxed{0.5}", "\\frac{1}{2}", True, "ok", "0.5"),
        ("\\boxed{\\dfrac12}", "1/2", True, "ok", "\\dfrac12"),
        ("\\boxed{\\frac{3}{4}}", "3/4", True, "ok", "\\frac{3}{4}"),
        ("The answer is $42$.", "42", True, "ok", "42"),
        ("Thus the final answer is: \\frac{3}{4}.", "3/4", True, "ok", "\\frac{3}{4}"),
        ("The answer is 42. Let me double-check: 6*7=42.", "42", True, "ok", "42"),
        ("\\boxed{x = 3}", "3", True, "ok", "x = 3"),
        ("\\fbox{7}", "7", True, "ok", "7"),
        ("\\boxed{3\\sqrt{2}}", "\\sqrt{18}", True, "ok", "3\\sqrt{2}"),
        ("\\boxed{\\{1, 2\\}}", "\\{1,2\\}", True, "ok", "\\{1, 2\\}"),
        ("\\boxed{x^2+2x+1}", "(x+1)^2", True, "ok", "x^2+2x+1"),
        ("\\boxed{12}", "21", False, "mismatch", "12"),
        ("\\boxed{-5}", "5", False, "mismatch", "-5"),
        ("\\boxed{0.333}", "1/3", False, "mismatch", "0.333"),
        ("I think it is 42", "42", False, "no_answer", None),  # unanchored numbers are not answers
        ("\\boxed{}", "1", False, "no_answer", None),
    ],
)
def test_math_equivalence(
    response: str, truth: str, correct: bool, reason: str, extracted: str | None
) -> None:
    result = MathVerifier().score(_sample(response, truth))
    assert (result.correct, result.score) == (correct, float(correct))
    assert result.details["reason"] == reason
    assert result.details["extracted"] == extracted


@pytest.mark.parametrize(
    ("response", "correct", "reason"),
    [
        ("Try \\boxed{2}. No wait: \\boxed{3}", False, "multiple_answers"),  # two boxed values: a hedge
        ("Try \\boxed{3}. No wait: \\boxed{2}", False, "multiple_answers"),
        ("\\boxed{3}, that is, \\boxed{\\frac{6}{2}}", True, "ok"),  # one value, boxed twice
        ("\\boxed{3}, and with more time \\boxed{4", True, "ok"),  # an unclosed (cut-off) box is skipped
        ("The answer is 2. Hmm, actually the answer is 3.", True, "ok"),
        ("The answer is 2, i.e. \\boxed{3}", True, "ok"),
        ("\\boxed{2}? No: 2 double-counts the corner. The answer is 3.", True, "ok"),  # the final statement
        ("The answer is 3. Checking: yes, the answer is correct.", True, "ok"),  # prose is not an answer
        ("Final Answer: The final answer is $3$. I hope it is correct.", True, "ok"),  # Minerva's format
    ],
)
def test_math_the_final_statement_wins_and_boxed_hedges_lose(response: str, correct: bool, reason: str) -> None:
    result = MathVerifier().score(_sample(response, "3"))
    assert (result.correct, result.details["reason"]) == (correct, reason)


def test_math_several_boxes_can_be_allowed_and_box_spam_is_refused() -> None:
    assert MathVerifier(multiple_boxed="last").score(_sample("\\boxed{2} or \\boxed{3}", "3")).correct
    spam = " ".join("\\boxed{3}" for _ in range(11))
    assert MathVerifier().score(_sample(spam, "3")).details["reason"] == "too_many_boxes"
    huge = "\\boxed{1} " * 30_000 + "\\boxed{3}"  # a megabyte-scale dump of guesses
    assert MathVerifier().score(_sample(huge, "3")).details["reason"] == "response_too_long"


@pytest.mark.parametrize(
    ("response", "correct", "reason"),
    [
        ("<think>Maybe \\boxed{3}?</think> I am not sure.", False, "no_answer"),  # only inside the thinking
        ("<think>2 or 3... it is 3</think> The answer is \\boxed{3}.", True, "ok"),
        ("<think>first \\boxed{2}</think>\\boxed{3}", True, "ok"),  # a box while thinking is no hedge
        ("<think>Let me compute \\boxed{3}", False, "unfinished_thinking"),
        ("2+1 is \\boxed{3}.</think> So \\boxed{3}.", True, "ok"),  # the template opened the think tag
    ],
)
def test_math_reads_only_what_follows_the_thinking(response: str, correct: bool, reason: str) -> None:
    result = MathVerifier().score(_sample(response, "3"))
    assert (result.correct, result.details["reason"]) == (correct, reason)
    assert MathVerifier(strip_thinking=False).score(_sample("<think>\\boxed{3}</think>", "3")).correct


@pytest.mark.parametrize(
    ("response", "truth", "correct"),
    [
        ("#### The answer is 42", "42", True),
        ("Total: 40 + 2.\n#### The answer is 42.", "42", True),
        ("<answer>The answer is 42</answer>", "42", True),
        ("<answer>So it is \\boxed{42}</answer>", "42", True),
        ("The answer is 42.\n\nQuestion: What is 2+2?\nThe answer is 4.", "42", True),
        ("The answer is 42.\nProblem 2: Find 3+4. The answer is 7.", "7", False),
        ("\\boxed{5}<|im_start|>user\nAnother one? \\boxed{6}", "5", True),
        ("Problem: find x. Working... The answer is 9.", "9", True),  # a restated problem before the answer
        ("The correct option is (B) 7. The answer is (B) 7", "7", True),
        ("The answer is \\textbf{(D)}", "D", True),
        ("The answer is (B) 7", "B", True),
        ("The answer is (C) 7", "B", False),
        ("\\boxed{3.1e8}", "310000000", True),
        ("\\boxed{3.1 \\times 10^{8}}", "3.1e8", True),
        ("\\boxed{3.2e8}", "310000000", False),
        ("The answer is 40 percent.", "40", True),
        ("\\boxed{5 \\text{ apples (one per child)}}", "5", True),
        ("\\boxed{\\$4.25}", "\\$4.25", True),  # an escaped dollar in the truth is a price, not an error
        ("\\boxed{4.25}", "\\$4.25", True),
        ("\\boxed{4.52}", "\\$4.25", False),
    ],
)
def test_math_extraction_gaps(response: str, truth: str, correct: bool) -> None:
    result = MathVerifier().score(_sample(response, truth))
    assert result.correct is correct, result.details


@pytest.mark.parametrize(
    ("answer", "truth", "correct"),
    [
        ("１２", "12", True), ("½", "1/2", True), ("1½", "3/2", True), ("2√2", "\\sqrt{8}", True),
        ("√(x+1)", "\\sqrt{x+1}", True), ("30°", "30", True), ("x²+1", "x^2+1", True), ("∞", "\\infty", True),
        ("−5", "-5", True), ("1\\,000\\,000", "1000000", True), ("7.", "7", True), ("3+4\\mathrm{i}", "3+4i", True),
        ("\\varnothing", "\\emptyset", True), ("0.\\overline{3}", "1/3", True), ("0.1\\overline{6}", "1/6", True),
        ("1-0.\\overline{3}", "2/3", True), ("¾", "0.7", False), ("x³", "x^2", False), ("-∞", "\\infty", False),
    ],
)
def test_math_unicode_and_notation(answer: str, truth: str, correct: bool) -> None:
    result = MathVerifier().score(_sample(f"\\boxed{{{answer}}}", truth))
    assert result.correct is correct, result.details


@pytest.mark.parametrize(
    ("response", "truth"),
    [("La respuesta es 12.", "12"), ("La réponse est 12.", "12"), ("Die Antwort ist 12.", "12"),
     ("答案是 12。", "12"), ("Ответ: 12", "12"), ("A resposta é 12.", "12")],
)
def test_math_answer_phrases_in_other_languages(response: str, truth: str) -> None:
    assert MathVerifier().score(_sample(response, truth)).correct


@pytest.mark.parametrize(
    ("answer", "truth", "correct"),
    [
        ("0.00000012", "0.00000015", False),  # equal to 6 decimal places; 25% apart
        ("1.2e-7", "1.2 \\times 10^{-7}", True),
        ("0.333333", "1/3", True),  # |a - b| = 3.3e-7 <= 1e-6 * 1/3
        ("0.3333", "1/3", False),
        ("1000001", "1000000", False),
        ("1000001.0", "1000000", False),  # two integer values compare exactly
        ("2.0", "2", True),
        ("1000000.0000001", "1000000", True),
        ("3.14", "\\pi", False),
        ("3.14159265", "\\pi", True),
        ("0", "0.0000001", False),
    ],
)
def test_math_numbers_compare_with_a_relative_tolerance(answer: str, truth: str, correct: bool) -> None:
    assert MathVerifier().score(_sample(f"\\boxed{{{answer}}}", truth)).correct is correct


@pytest.mark.parametrize(
    ("response", "truth", "correct", "source"),
    [  # SimpleRL-Zoo's reward on these (its Qwen toolkit extraction): last box wins, else the last number
        ("So the answer is \\boxed{5}.", "5", True, "boxed"),
        ("We get 3, then 7, and finally 12", "12", True, "last_number"),
        ("\\boxed{3} ... actually \\boxed{4}", "4", True, "boxed"),
        ("\\boxed{3} ... actually \\boxed{4}", "3", False, "boxed"),
        ("x = 1,000", "1000", True, "last_number"),
        ("The total is 2 - 5 = -3", "-3", True, "last_number"),
        ("No digits here", "1", False, None),
    ],
)
def test_math_simplerl_mode_falls_back_to_the_last_number(
        response: str, truth: str, correct: bool, source: str | None) -> None:
    verifier = MathVerifier(fallback="last_number", multiple_boxed="last", truncated="score")
    result = verifier.score(_sample(response, truth, finish_reason="length"))  # truncated: graded all the same
    assert (result.correct, result.details["source"]) == (correct, source), result.details
    with pytest.raises(ValueError, match="pick one"):
        MathVerifier(fallback="last_number", allow_unanchored=True)


def test_math_extraction_is_linear_in_the_response_length() -> None:
    """Unclosed boxes were scanned from each opening to the end: 50 KB took ~25 s."""
    timings = []
    for n in (5_000, 20_000):
        start = time.perf_counter()
        result = MathVerifier(max_response_chars=10**7).score(_sample("\\boxed{" * n, "3"))
        timings.append(time.perf_counter() - start)
        assert result.details["reason"] == "no_answer"
    assert timings[1] < 0.5 and timings[1] < 8 * timings[0] + 0.05, timings


def test_math_plus_minus_one_scheme() -> None:
    verifier = MathVerifier(reward_correct=1.0, reward_wrong=-1.0)
    assert verifier.score(_sample("\\boxed{3}", "3")).score == 1.0
    assert verifier.score(_sample("\\boxed{4}", "3")).score == -1.0
    assert verifier.score(_sample("no idea", "3")).score == -1.0


def test_math_unanchored_is_opt_in() -> None:
    response = "Adding 3 and 4 gives 7"
    assert MathVerifier().score(_sample(response, "7")).details["reason"] == "no_answer"
    result = MathVerifier(allow_unanchored=True).score(_sample(response, "7"))
    assert result.correct and result.details["source"] == "unanchored"


def test_math_truncated_box_falls_back_to_nothing() -> None:
    result = MathVerifier(truncated="score").score(
        _sample("so the result is \\boxed{\\frac{1}{", "1/2", finish_reason="length")
    )
    assert result.details["reason"] == "no_answer"


def test_math_unparsable_ground_truth_raises() -> None:
    with pytest.raises(ValueError, match="ground truth"):
        MathVerifier().score(_sample("\\boxed{1}", " "))


def test_math_off_main_thread() -> None:
    """math_verify's own timeouts use signal.alarm, which raises off the main thread; the verifier
    must switch them off there (the pool's process deadline covers it) instead of failing."""
    results: list[VerifyResult] = []
    thread = threading.Thread(
        target=lambda: results.append(MathVerifier().score(_sample("\\boxed{1/2}", "0.5")))
    )
    thread.start()
    thread.join()
    assert results and results[0].correct


# -- registry and the plugin contract ---------------------------------------------------------------


def test_builtins_are_installed() -> None:
    assert {"exact_int", "math"} <= set(available_verifiers())


@pytest.mark.parametrize(
    ("name", "import_path"),
    [
        ("exact_int", "rlvr_verifiers.exact_int:ExactIntVerifier"),
        ("math", "rlvr_verifiers.math:MathVerifier"),
    ],
)
def test_builtin_contract(name: str, import_path: str) -> None:
    """Every shipped verifier loads by entry point and by import path and returns a VerifyResult."""
    by_name, by_path = load_verifier(name), load_verifier(import_path)
    assert type(by_name) is type(by_path)
    assert by_name.name == name
    result = by_name.score(_sample("1", "1"))
    assert isinstance(result, VerifyResult)
    assert isinstance(result.score, float) and isinstance(result.correct, bool)
    assert isinstance(result.details, dict) and "reason" in result.details


def test_kwargs_reach_the_constructor() -> None:
    verifier = load_verifier("exact_int", {"mode": "last"})
    assert verifier.score(_sample("it is 5", "5")).correct


def test_unknown_name_lists_installed_verifiers() -> None:
    with pytest.raises(ValueError, match=r"unknown verifier 'exact_intt'.*exact_int.*math"):
        load_verifier("exact_intt")


def test_instance_and_factory_specs(tmp_path: Path) -> None:
    (tmp_path / "plug_reg.py").write_text(
        "from rlvr.verify import VerifyResult\n"
        "class Always:\n"
        "    name = 'always'\n"
        "    def __init__(self, value=1.0):\n"
        "        self.value = value\n"
        "    def score(self, sample):\n"
        "        return VerifyResult(self.value, True, {})\n"
        "INSTANCE = Always()\n"
        "def make(value):\n"
        "    return Always(value)\n"
        "NOT_A_VERIFIER = 3\n"
        "def make_nothing():\n"
        "    return object()\n"
    )
    sample = _sample("", "")
    assert load_verifier("plug_reg.py:INSTANCE", base_dir=tmp_path).score(sample).score == 1.0
    assert load_verifier("plug_reg.py:make", {"value": 0.5}, base_dir=tmp_path).score(sample).score == 0.5
    with pytest.raises(ValueError, match="takes no kwargs"):
        load_verifier("plug_reg.py:INSTANCE", {"value": 2.0}, base_dir=tmp_path)
    with pytest.raises(TypeError, match="neither a class"):
        load_verifier("plug_reg.py:NOT_A_VERIFIER", base_dir=tmp_path)
    with pytest.raises(TypeError, match="no callable score"):
        load_verifier("plug_reg.py:make_nothing", base_dir=tmp_path)
