"""Inputs built to hang or crash a parser fail within the deadline, and the pool keeps working.

Each case is a response a policy could really emit (RL finds these): exponent towers and huge
factorials that sympy would evaluate forever, deep nesting, megabyte outputs, malformed LaTeX and a
regular expression that backtracks catastrophically.
"""

from __future__ import annotations

import time

import pytest

from rlvr.verify import VerifierPool, VerifySample

DEADLINE_S = 1.5

CASES = [
    ("math", "\\boxed{9^{9^{9^{9^{9}}}}}", "3"),
    ("math", "\\boxed{2^{2^{2^{2^{2^{2}}}}}}", "3"),
    ("math", "\\boxed{(10^{10})!}", "3"),
    ("math", "\\boxed{" + "(" * 300 + "1" + ")" * 300 + "}", "3"),
    ("math", "\\boxed{" + "{" * 300 + "1" + "}" * 300 + "}", "3"),
    ("math", "\\boxed{" + "\\frac{1}{" * 90 + "2" + "}" * 90 + "}", "3"),
    ("math", "\\boxed{" + "\\frac{1}{" * 5000 + "2" + "}" * 5000 + "}", "3"),
    ("math", "The answer is " + "9" * 1_000_000, "3"),
    ("math", "\\boxed{" + "x" * 900 + "}" + "a" * 1_000_000, "3"),
    ("math", "{" * 200_000, "3"),
    ("math", "\\boxed{\\frac{1}{\\sqrt{}}^^_{}\\left(}", "3"),
    ("math", "\\boxed{\\begin{matrix} 1 & 2 \\\\ 3 \\end{pmatrix}}", "3"),
    ("math", "\\boxed{\\x\\y\\z\\undefinedmacro{3}}", "4"),
    ("math", "\x00\udcff\\boxed{\ufffd}", "3"),
    ("math", "\\boxed{" * 25_000, "3"),  # 50 KB of unclosed boxes: was a quadratic scan (~25 s)
    ("math", "<think>" * 100_000 + "\\boxed{3}", "3"),
    ("math", "<answer>" * 20_000 + "3", "3"),
    ("math", "The answer is " * 10_000 + "3 or 4", "3"),
    ("math", "answer is" + " " * 150_000 + "4", "3"),
    ("math", "\\boxed{" + "1" * 900 + "½}", "3"),
    ("math", "\\boxed{" + "½" * 900 + "}", "3"),
    ("math", "\u200b" * 150_000 + "\\boxed{\u200b}", "3"),
    ("math", "\\boxed{" + "3\u0301" * 300 + "}", "3"),
    ("math", "\u202e" * 100_000 + "The answer is ３ or ４", "3"),
    ("math", "答案是" * 50_000, "3"),
    ("math", "\\boxed{10^{10^{10}}}", "3"),
    ("math", "\\boxed{3.1e99999999}", "3"),
    ("math", "\\boxed{(x+1)^{100000}}", "3"),
    ("math", "\\boxed{0.\\overline{" + "9" * 900 + "}}", "2"),
    ("math", "\\boxed{x}" * 9 + "\\boxed{" + "{" * 5000 + "}" * 5000 + "}", "3"),
    ("math", "<|im_start|>" * 20_000 + "\\boxed{3}", "3"),
    # bombs in an earlier box: the hedge check compares boxes, and must not evaluate or parse them whole
    ("math", "\\boxed{10^{10^{10}}} then \\boxed{3}", "3"),
    ("math", "\\boxed{3.1e99999999} then \\boxed{3}", "3"),
    ("math", "\\boxed{" + "(" * 200 + "1" + ")" * 200 + "} then \\boxed{3}", "3"),
    ("gsm8k", "1" * 1_000_000, "3"),
    ("gsm8k", "#### " + "9," * 300_000, "3"),
    ("regex", "a" * 40 + "b", "(a+)+$"),
    ("multiple_choice", "The answer is " + "(" * 500_000, "B"),
]


@pytest.fixture(scope="module")
def pool() -> VerifierPool:
    verifiers = {"math": ("math", {}), "gsm8k": ("gsm8k", {}), "regex": ("regex", {}),
                 "multiple_choice": ("multiple_choice", {})}
    with VerifierPool(verifiers, num_workers=2, timeout_s=DEADLINE_S) as pool:
        yield pool


def test_adversarial_inputs_fail_within_the_deadline(pool: VerifierPool) -> None:
    samples = [VerifySample("Q", response, truth, finish_reason="stop") for _, response, truth in CASES]
    start = time.monotonic()
    results = pool.score_batch(samples, [name for name, _, _ in CASES])
    elapsed = time.monotonic() - start
    for (name, response, _), result in zip(CASES, results):
        assert not result.correct, (name, response[:60], result.details)
        assert result.score == 0.0
        assert result.details["elapsed_ms"] < (DEADLINE_S + 1.0) * 1000, (name, response[:60], result.details)
    reasons = [r.details["reason"] for r, (name, _, _) in zip(results, CASES) if name == "math"]
    # the math verifier refuses towers, deep nesting and floods by their shape, without a worker restart
    assert "timeout" not in reasons and reasons.count("too_complex") >= 11, reasons
    # 2 workers, at most one deadline (plus a worker restart) per case: a bound, not a benchmark
    assert elapsed < len(CASES) * (DEADLINE_S + 1.0) / 2 + 10


def test_pool_recovers_after_adversarial_inputs(pool: VerifierPool) -> None:
    hang = VerifySample("Q", "a" * 40 + "b", "(a+)+$", finish_reason="stop")  # catastrophic backtracking
    assert pool.score_batch([hang], ["regex"])[0].details["reason"] == "timeout"
    good = [VerifySample("Q", f"\\boxed{{{i}}}", str(i), finish_reason="stop") for i in range(20)]
    results = pool.score_batch(good, ["math"] * 20)
    assert all(r.correct for r in results)
    assert max(r.details["elapsed_ms"] for r in results) < DEADLINE_S * 1000
