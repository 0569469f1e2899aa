"""Math-verification throughput: math-verify called directly in-process vs. rlvr's isolated pool.

Completions are MATH-style solutions (a few sentences of reasoning with inline LaTeX, then a boxed
answer) over answer forms that exercise sympy: integers, fractions, decimals, radicals, intervals,
sets, polynomials, percentages, text options. Half are correct in a different but equivalent form,
half wrong; a group of ``n`` completions shares each problem, as in RL.

Measured, each as verifications per second on the same completions:

* ``math-verify direct``: ``math_verify.parse`` on the whole completion and ``verify`` against the
  parsed gold, in this process (what a script without isolation does).
* ``rlvr in-process``: rlvr's ``MathVerifier.score`` in this process (answer extraction + math-verify).
* ``pool, W workers``: the same verifier through ``VerifierPool`` (spawned processes, a hard deadline,
  pipes): the isolation layer's overhead is 1 - pool(1 worker) / in-process throughput.

    python bench/verify_throughput.py [--problems 250] [--n 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from math_verify import parse, verify
from rlvr_verifiers.math import MathVerifier

from rlvr.verify import VerifierPool, VerifySample

# (gold, equivalent forms, wrong forms)
ANSWERS = [
    ("\\frac{3}{4}", ["0.75", "\\dfrac{3}{4}", "3/4"], ["\\frac{4}{3}", "0.7"]),
    ("\\sqrt{18}", ["3\\sqrt{2}", "\\sqrt{2}\\cdot 3"], ["2\\sqrt{3}", "9"]),
    ("(-\\infty, 3]", ["(-\\infty,3]", "(-\\infty , 3]"], ["(-\\infty, 3)", "[3, \\infty)"]),
    ("\\{1, 2\\}", ["\\{2,1\\}", "1, 2"], ["\\{1, 3\\}", "2"]),
    ("(x+1)^2", ["x^2+2x+1", "(1+x)^2"], ["x^2+1", "(x-1)^2"]),
    ("12", ["12.0", "x = 12"], ["21", "-12"]),
    ("\\frac{\\pi}{6}", ["\\pi/6", "\\frac{1}{6}\\pi"], ["\\frac{\\pi}{3}", "30"]),
    ("\\frac{1}{10}", ["10\\%", "0.1"], ["1\\%", "\\frac{1}{100}"]),
    ("2\\sqrt{5}", ["\\sqrt{20}", "2 \\sqrt 5"], ["\\sqrt{10}", "4.47"]),
    ("\\text{(C)}", ["C", "\\textbf{(C)}"], ["B", "\\text{(D)}"]),
]
REASONING = [
    "First we note that $a^2 + b^2 = c^2$ for the right triangle, so $c = \\sqrt{a^2+b^2}$.",
    "Multiplying both sides by $2x$ gives $2x^2 - 3x + 1 = 0$, whose discriminant is $9 - 8 = 1$.",
    "By Vieta's formulas the sum of the roots is $-\\frac{b}{a}$ and the product is $\\frac{c}{a}$.",
    "Substituting $t = x - 1$ we get $f(t) = t^2 + 4t + 4 = (t + 2)^2$.",
    "Since the sequence is arithmetic with common difference $d = 3$, we have $a_n = a_1 + (n-1)d$.",
    "The probability of two heads is $\\binom{4}{2}\\left(\\frac12\\right)^4 = \\frac{6}{16}$.",
    "Taking logarithms, $\\log_2 (8^x) = 3x$, so the equation becomes $3x = x + 4$.",
    "Let me double-check the arithmetic: $17 \\cdot 23 = 391$, which matches.",
]


def completions(problems: int, n: int, seed: int = 0) -> list[VerifySample]:
    rng = random.Random(seed)
    out = []
    for p in range(problems):
        gold, good, bad = ANSWERS[p % len(ANSWERS)]
        for _ in range(n):
            answer = rng.choice(good) if rng.random() < 0.5 else rng.choice(bad)
            text = " ".join(rng.sample(REASONING, k=rng.randint(3, 6)))
            out.append(VerifySample(f"Problem {p}", f"{text}\nTherefore, the answer is $\\boxed{{{answer}}}$.",
                                    gold, finish_reason="stop"))
    return out


def direct(samples: list[VerifySample]) -> int:
    return sum(bool(verify(parse(f"${s.ground_truth}$"), parse(s.response))) for s in samples)


def in_process(samples: list[VerifySample]) -> int:
    verifier = MathVerifier()
    return sum(verifier.score(s).correct for s in samples)


def timed(fn, samples: list[VerifySample], repeats: int) -> tuple[float, int]:
    rates, correct = [], 0
    for _ in range(repeats):
        t = time.perf_counter()
        correct = fn(samples)
        rates.append(len(samples) / (time.perf_counter() - t))
    return statistics.median(rates), correct


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=250)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    samples = completions(args.problems, args.n)
    print(f"{len(samples)} completions ({args.problems} problems x {args.n}), median of {args.repeats} runs")
    rows = [("math-verify direct (in-process)", *timed(direct, samples, args.repeats)),
            ("rlvr MathVerifier (in-process)", *timed(in_process, samples, args.repeats))]
    for workers in (1, 2):
        with VerifierPool({"math": ("math", {})}, num_workers=workers, timeout_s=10.0) as pool:
            pool.score_batch(samples[:8], ["math"] * 8)  # warm-up: imports in the workers

            def through_pool(batch: list[VerifySample], pool: VerifierPool = pool) -> int:
                return sum(r.correct for r in pool.score_batch(batch, ["math"] * len(batch)))

            rows.append((f"rlvr VerifierPool, {workers} worker(s)", *timed(through_pool, samples, args.repeats)))
    for name, rate, correct in rows:
        print(f"  {name:<34} {rate:8.1f} verifications/s   ({correct} judged correct)")
    overhead = 1 - rows[2][1] / rows[1][1]
    print(f"isolation overhead (1 worker vs in-process MathVerifier): {overhead:.1%}")
    print(f"2-worker speed-up over 1 worker: {rows[3][1] / rows[2][1]:.2f}x")


if __name__ == "__main__":
    main()
