"""Build ``tests/data/math_labelled.jsonl``: labelled completions for the ``math`` verifier.

Run ``python tests/data/make_math_labelled.py``; the output is deterministic. Each case is one JSON
line: ``id`` (``<category>-<nn>``), ``category``, ``completion``, ``ground_truth``, ``expected`` (what a
careful human grader says), ``reason`` (one line: why) and, for truncated samples only,
``finish_reason: "length"``.

The labels follow these rules (the verifier is built to them):

1. The final answer is the content of ``<answer>...</answer>`` (strongest; inside it a box or "The
   answer is X" is the answer), else the statement that appears last among complete ``\\boxed{}`` /
   ``\\fbox{}``, GSM8K ``#### X`` and "The answer is X" / "The final answer is X" / "Final Answer: X" /
   "Answer: X" (line start) and their translations. No anchor: no answer, wrong.
2. ``#### The answer is N`` and ``<answer>The answer is N</answer>`` give N.
3. A rejected value followed by a new statement: the last statement counts.
4. Text from a continuation marker on ("Question:", "Problem:", "Q:", "Human:", "User:",
   "### Instruction", ``<|im_start|>``, ``<|endoftext|>``, ``<|user|>``) is not part of the answer.
5. Only the text after the last ``</think>`` counts; an unclosed ``<think>`` has no answer.
6. Boxes holding different values are a hedge (wrong); equal values are judged on that value; more
   than 10 boxes, or a response over 200,000 characters, is spam (wrong).
7. A hedge inside one answer ("3 or 4", "3, 4" against "3") is wrong; a truncated response
   (finish_reason "length") is wrong.
8. Equivalence is mathematical (fractions, radicals, sets, intervals, tuples, currency, percent sign,
   \\text{} units, degrees, thousands separators, trailing period, \\mathrm{i}, \\varnothing,
   repeating decimals, scientific notation, multiple-choice letters).
9. Unicode forms (full-width digits, vulgar fractions, the root, superscript two, infinity, minus, pi)
   mean what they say.
10. Two numbers are equal iff ``|a - b| <= 1e-6 * max(|a|, |b|)`` (two integer values: exactly); the
    tolerance cases below are checked against that formula with a margin of 2x either way, so no label
    sits on the boundary.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

OUT = Path(__file__).with_name("math_labelled.jsonl")
REL_TOL = 1e-6
MAX_CHARS = 200_000

CASES: list[dict[str, object]] = []


def L(*lines: str) -> str:  # noqa: N802 - short on purpose: it is used on almost every case
    """Join lines with newlines (raw strings cannot hold a newline escape)."""
    return "\n".join(lines)


def add(category: str, completion: str, ground_truth: str, expected: bool, reason: str, *,
        truncated: bool = False) -> None:
    record: dict[str, object] = {"category": category, "completion": completion, "ground_truth": ground_truth,
                                 "expected": expected, "reason": reason}
    if truncated:
        record["finish_reason"] = "length"
    CASES.append(record)


# --------------------------------------------------------------------------------------------------
C = "latex_variants"
add(C, r"We have $x^2 = 4$, so $x = 2$ since $x>0$. Therefore the answer is $\boxed{2}$.", "2", True,
    "plain boxed integer")
add(C, r"Simplifying, $\frac{6}{8} = \frac{3}{4}$. The answer is $\boxed{\frac{3}{4}}$.", r"\frac{3}{4}", True,
    "same fraction")
add(C, r"There are 3 favourable outcomes out of 4 equally likely ones, so the probability is $\boxed{0.75}$.",
    r"\frac{3}{4}", True, "0.75 = 3/4")
add(C, L(r"The diagonal of the square is $\sqrt{3^2 + 3^2} = \sqrt{18}$.",
         r"Since $18 = 9 \cdot 2$, the diagonal is $\boxed{3\sqrt{2}}$."), r"\sqrt{18}", True,
    r"3\sqrt{2} = \sqrt{18}")
add(C, r"Factoring, $x^2 - 3x + 2 = (x-1)(x-2)$, so the roots are $\boxed{1, 2}$.", "2, 1", True,
    "the same two roots; the order of a list of roots does not matter")
add(C, r"Solving $2x - 1 \le 5$ gives $x \le 3$. The solution set is $\boxed{(-\infty, 3]}$.", r"(-\infty,3]",
    True, "same interval, spacing differs")
add(C, r"Subtracting 2 from both sides of $x + 2 = 7$ gives $\boxed{x = 5}$.", "5", True, "x = 5 matches 5")
add(C, r"Expanding $(x+1)^2$ term by term gives $\boxed{x^2+2x+1}$.", "(x+1)^2", True,
    "the expanded form of the same polynomial")
add(C, r"The period of $\sin(2x)$ is $\frac{2\pi}{2}$, so the answer is $\boxed{\pi}$.", r"\pi", True, "pi")
add(C, r"The ratio of boys to students is $\dfrac{12}{16}$, which reduces to $\boxed{\dfrac{3}{4}}$.",
    r"\frac{3}{4}", True, r"\dfrac is \frac")
add(C, r"The average of 2 and 3 is $\frac{2+3}{2}$, so the answer is $\boxed{\tfrac{5}{2}}$.", "2.5", True,
    r"\tfrac{5}{2} = 2.5")
add(C, r"Each of the two outcomes is equally likely, so the expected value is $\boxed{\dfrac12}$.", "0.5", True,
    r"\dfrac12 (unbraced) = 0.5")
add(C, r"Three of the four slices remain, so the fraction left is $\boxed{\frac34}$.", "3/4", True,
    r"\frac34 = 3/4")
add(C, L(r"Multiplying both sides by 2 gives $2x = 7$, so", r"$$\boxed{ \frac { 7 } { 2 } }$$"),
    r"\frac{7}{2}", True, "spaces inside the fraction do not matter")
add(C, r"Rationalising, $\frac{1}{\sqrt{2}} = \frac{\sqrt{2}}{2}$, so $\sin 45^\circ = \boxed{\frac{\sqrt{2}}{2}}$.",
    r"\frac{1}{\sqrt{2}}", True, r"\frac{\sqrt{2}}{2} = \frac{1}{\sqrt{2}}")
add(C, r"The side length is $\sqrt{4 + 4} = \sqrt{8}$, which simplifies to $\boxed{2\sqrt{2}}$.", r"\sqrt{8}", True,
    r"2\sqrt{2} = \sqrt{8}")
add(C, r"Each of the 10 switches has 2 states, so there are $\boxed{2^{10}}$ configurations.", "1024", True,
    "2^{10} = 1024")
add(C, r"The elements satisfying the condition are 1, 2 and 3, so the set is $\boxed{\{1, 2, 3\}}$.",
    r"\{3, 2, 1\}", True, "same set, order irrelevant")
add(C, r"We need $x + 2 > 0$ and $x \le 5$, so the domain is $\boxed{\left(-2, 5\right]}$.", "(-2,5]", True,
    r"\left( \right] is the same interval")
add(C, L(r"Substituting $y = -1$ into $x + 2y = 1$ gives $x = 3$.",
         r"The intersection point is $\boxed{\left( 3, -1 \right)}$."), "(3,-1)", True, "same ordered pair")
add(C, r"The direction vector is $\boxed{\begin{pmatrix} 1 \\ -2 \end{pmatrix}}$.",
    r"\begin{pmatrix}1\\-2\end{pmatrix}", True, "same column vector, spacing differs")
add(C, r"The angle is three quarters of $\pi$, so it measures $\boxed{\frac{3\pi}{4}}$ radians.",
    r"\frac{3}{4}\pi", True, r"\frac{3\pi}{4} = \frac{3}{4}\pi")
add(C, r"From $3y + 12 = 0$ we get $\boxed{y = -4}$.", "-4", True, "y = -4 matches -4")
add(C, r"The quadratic is positive outside its roots $-1$ and $2$, so $x \in \boxed{(-\infty, -1) \cup (2, \infty)}$.",
    r"(-\infty,-1)\cup(2,\infty)", True, "same union of intervals")
add(C, r"The numerator vanishes at 1 and the denominator at 2, so the solution is $\boxed{(1, 2)}$.", "[1,2)", False,
    "(1,2) excludes 1; the gold interval includes it")
add(C, r"Inverting, the ratio is $\boxed{\frac{4}{3}}$.", r"\frac{3}{4}", False, "reciprocal of the answer")
add(C, r"The side length is $\sqrt{4 + 4}$, so the answer is $\boxed{2\sqrt{3}}$.", r"\sqrt{8}", False,
    r"2\sqrt{3} = \sqrt{12}, not \sqrt{8}")
add(C, r"The intersection point is $\boxed{(-1, 3)}$.", "(3,-1)", False, "ordered pair with the coordinates swapped")
add(C, r"The direction vector is $\boxed{\begin{pmatrix} -1 \\ 2 \end{pmatrix}}$.",
    r"\begin{pmatrix}1\\-2\end{pmatrix}", False, "opposite vector")
add(C, r"Only 1 and 2 satisfy the condition, so the set is $\boxed{\{1, 2\}}$.", r"\{1,2,3\}", False,
    "missing element 3")
add(C, r"The angle is a quarter turn of a semicircle: $\boxed{\frac{\pi}{4}}$.", r"\frac{\pi}{2}", False,
    r"\pi/4 is not \pi/2")
add(C, r"Expanding gives $\boxed{x^2+2x}$.", "(x+1)^2", False, "missing the constant term")
add(C, r"Both endpoints are allowed, so the solution is $\boxed{\left[ 1, 2 \right]}$.", "[1,2)", False,
    "closed at 2; the gold interval is open at 2")
add(C, r"The average is $\boxed{\dfrac{5}{2}}$.", "2.25", False, "5/2 = 2.5, not 2.25")
add(C, r"There are $\boxed{2^{9}}$ configurations.", "1024", False, "2^9 = 512")
add(C, r"From $3y - 12 = 0$ we get $\boxed{y = 4}$.", "-4", False, "sign error")

# --------------------------------------------------------------------------------------------------
C = "gsm8k"
add(C, L("Natalia sold 48/2 = <<48/2=24>>24 clips in May.",
         "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.", "#### 72"), "72", True,
    "GSM8K #### tail")
add(C, L("Natalia sold 48/2 = <<48/2=24>>24 clips in May.",
         "Natalia sold 48+24 = <<48+24=71>>71 clips altogether in April and May.", "#### 71"), "72", False,
    "#### tail one off")
add(C, L("Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.",
         "Working 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.", "#### 10"), "10", True, "#### tail")
add(C, L("Each crate holds 400 apples and there are 3 crates.", "3 x 400 = <<3*400=1200>>1,200 apples.",
         "#### 1,200"), "1200", True, "thousands comma in the #### tail")
add(C, L("Betty has half of the $100 she needs: 100 / 2 = $<<100/2=50>>50.",
         "Her parents give $15 and her grandparents twice that, $30, so she still needs 100 - 50 - 15 - 30 = "
         "$<<100-50-15-30=5>>5.", "#### $5"), "5", True, "dollar sign in the #### tail")
add(C, L("James writes 3 pages to 2 friends twice a week: 3 * 2 * 2 = <<3*2*2=12>>12 pages a week.",
         "In a year he writes 12 * 52 = <<12*52=624>>624 pages.", "#### The answer is 624"), "624", True,
    "'The answer is N' inside the #### tail gives N")
add(C, L("James writes 3 pages to 2 friends twice a week: 3 * 2 = <<3*2=6>>6 pages a week.",
         "In a year he writes 6 * 52 = <<6*52=312>>312 pages.", "#### The answer is 312"), "624", False,
    "'The answer is N' inside the tail gives a wrong N")
add(C, L("Mark has 10 yellow flowers and 80% more purple ones: 10 * 1.8 = <<10*1.8=18>>18.",
         "Green flowers are 25% of 28: 0.25 * 28 = <<0.25*28=7>>7.", "He has 10 + 18 + 7 = <<10+18+7=35>>35 flowers.",
         "The answer is 35."), "35", True, "'The answer is' phrase without ####")
add(C, L("Each crate holds 400 apples and there are 3 crates and a bag of 50.",
         "3 x 400 + 50 = <<3*400+50=1250>>1,250 apples.", "#### 1,250"), "1200", False, "1250 is not 1200")
add(C, L("The shirt costs $24 and is 25% off, so she pays 24 * 0.75 = $<<24*0.75=18>>18.", "#### 18.00"), "18",
    True, "18.00 = 18")
add(C, L("Each crate holds 400 apples and there are 3 crates.", "3 x 400 = <<3*400=1200>>1200 apples.",
         "Each apple sells for $1, so he earns $1,200.", "#### $1,200"), "1200", True, "dollar and comma in the tail")
add(C, L("The temperature fell from 3 degrees to -2 degrees, a change of -2 - 3 = <<-2-3=-5>>-5 degrees.",
         "#### 5"), "-5", False, "sign dropped")
add(C, L("Half of the 25 pies is 25 / 2 = <<25/2=12.5>>12.5 pies.", "#### 12.5"), "12.5", True, "decimal tail")
add(C, L("Natalia sold 48/2 = <<48/2=24>>24 clips in May.", "Altogether she sold 48+24 = <<48+24=72>>72 clips.",
         "The answer is 72.", "#### 72"), "72", True, "phrase and tail agree")
add(C, L("Natalia sold 48/2 = <<48/2=24>>24 clips in May.", "Altogether she sold 48+24 = <<48+24=72>>72 clips.",
         "#### 72", "", "The answer is 72."), "72", True, "tail and phrase agree")
add(C, L("Natalia sold 48/2 = <<48/2=24>>24 clips in May.",
         "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May."), "72", False,
    "working only, no #### tail or other anchor")
add(C, L("Tina works 8 hours a day for 5 days: 8 * 5 = <<8*5=40>>40 hours.", "####40"), "40", True,
    "#### with no space")
add(C, L("There are 8 rows of 9 chairs: 8 * 9 = <<8*9=72>>72 chairs.", "Ten times as many would be 720.",
         "#### 720"), "72", False, "ten times the answer")
add(C, L("The 4 friends share 240 stickers: 240 / 4 = <<240/4=60>>60.", "Each gets 4 more: 60 + 4 = 64.",
         "#### 64"), "60", False, "added a step that is not in the question")
add(C, L("Each crate holds 400 apples and there are 3 crates.", "3 x 400 = <<3*400=1200>>1200 apples, "
         "sold at $1 each.", "#### The answer is $1,200."), "1200", True, "'The answer is $1,200.' inside the tail")
add(C, L("The book costs $37 and she pays with a $50 bill, so change is 50 - 37 = $<<50-37=13>>13.",
         "She then buys a $5.50 pen: 13 - 5.50 = $<<13-5.5=7.5>>7.50 left.", "#### $7.50"), "7.5", True,
    "$7.50 = 7.5")
add(C, L("Tom reads 12 pages a day for 6 days: 12 * 6 = <<12*6=72>>72 pages.", "#### 72",
         "I hope this helps!"), "72", True, "the tail line is 72; a closing pleasantry follows on its own line")
add(C, L("Tom reads 12 pages a day for 6 days: 12 * 6 = <<12*6=72>>72 pages.", "So the answer is 72."), "72", True,
    "lower-case 'so the answer is' phrase")
add(C, L("Tom reads 12 pages a day for 7 days: 12 * 7 = <<12*7=84>>84 pages.", "So the answer is 84."), "72", False,
    "'the answer is' phrase with a wrong value")

# --------------------------------------------------------------------------------------------------
C = "answer_tag"
add(C, L("<think>Let me compute 12*12 = 144.</think>", "<answer>144</answer>"), "144", True, "answer tag")
add(C, "<think>12*12 = 144</think><answer>143</answer>", "144", False, "answer tag holds a wrong value")
add(C, L("<think>12 rows of 12 seats: 12 * 12 = 144.</think>", "<answer>The answer is 144</answer>"), "144", True,
    "'The answer is N' inside the tag gives N")
add(C, L("<think>12 rows of 12 seats: 12 * 12 = 144.</think>", r"<answer>\boxed{144}</answer>"), "144", True,
    "box inside the tag")
add(C, L("<think>One of the two coins shows heads.</think>", r"<answer>\frac{1}{2}</answer>"), "0.5", True,
    "1/2 = 0.5 in the tag")
add(C, L("<think>3x = 9 so x = 3.</think>", "<answer>x = 3</answer>"), "3", True, "x = 3 matches 3")
add(C, L("<think>12 * 12 = 144.</think>", "<answer> 144 </answer>"), "144", True, "spaces around the tag content")
add(C, L("<think>12 * 12 = 144.</think>", "<answer>", "144", "</answer>"), "144", True,
    "newlines around the tag content")
add(C, L("<think>It is either 3 or 4, I cannot tell.</think>", "<answer>3 or 4</answer>"), "3", False,
    "hedge inside the tag")
add(C, L("<think>I am not sure.</think>", "<answer></answer>"), "3", False, "empty answer tag")
add(C, L("Three boxes of 2 plus one loose: 3 * 2 + 1 = 7.", "<answer>7</answer>", "",
         r"(If the loose one is not counted the answer is $\boxed{6}$.)"), "7", True,
    "the answer tag is the strongest anchor; a later box does not override it")
add(C, L("Three boxes of 2 plus one loose: 3 * 2 + 1 = 7.", "<answer>7</answer>", "",
         r"(If the loose one is not counted the answer is $\boxed{6}$.)"), "6", False,
    "the tag says 7; the later box does not count")
add(C, L("<think>12 * 12 = 143?</think>", "<answer>The answer is 143.</answer>"), "144", False,
    "'The answer is' in the tag, wrong value")
add(C, L("<think>12 * 12 = 143?</think>", r"<answer>\boxed{143}</answer>"), "144", False, "boxed wrong value in tag")
add(C, L("<think>3 of the 4 parts.</think>", r"<answer>$\frac{3}{4}$</answer>"), "0.75", True,
    "math-mode dollars around the tag content")
add(C, L("<think>12 tickets at $12 each: 144 dollars.</think>", r"<answer>\$144</answer>"), "144", True,
    "escaped dollar in the tag")
add(C, L(r"<think>2x - 1 \le 5 gives x \le 3.</think>", r"<answer>(-\infty, 3]</answer>"), r"(-\infty,3]", True,
    "interval in the tag")
add(C, L(r"<think>2x - 1 < 5 gives x < 3.</think>", r"<answer>(-\infty, 3)</answer>"), r"(-\infty,3]", False,
    "open endpoint, gold is closed")
add(C, L("<think>The debt is 12.</think>", "<answer>-12</answer>"), "12", False, "sign error")
add(C, L("<think>1440 minutes in a day.</think>", "<answer>1,440</answer>"), "1440", True, "thousands comma")
add(C, L("<think>Either 3 or 4.</think>", r"<answer>\boxed{3} or \boxed{4}</answer>"), "3", False,
    "two different boxes inside the tag")
add(C, L("<think>Option C gives 7.</think>", "<answer>C</answer>"), "C", True, "choice letter in the tag")
add(C, L(r"<think>\sqrt{8} = 2\sqrt{2}</think>", r"<answer>2\sqrt{2}</answer>"), r"\sqrt{8}", True,
    r"2\sqrt{2} = \sqrt{8}")
add(C, L("<think>1/3 is about 0.333.</think>", "<answer>0.333</answer>"), r"\frac{1}{3}", False,
    "0.333 is not 1/3 (relative error 1e-3)")

# --------------------------------------------------------------------------------------------------
C = "final_statement"
add(C, L("There are 2 + 3 = 5 red balls. The answer is 5.",
         "Wait, that is wrong: I forgot the 2 blue balls. 2 + 3 + 2 = 7.", "The answer is 7."), "7", True,
    "rejected 5, final statement 7")
add(C, L("There are 2 + 3 = 5 red balls. The answer is 5.",
         "Wait, that is wrong: I forgot the 2 blue balls. 2 + 3 + 2 = 7.", "The answer is 7."), "5", False,
    "5 was rejected; the final statement is 7")
add(C, L("Answer: 12", "", "Hmm, let me recheck. I forgot the 3 added on Friday, so 12 + 3 = 15.", "Answer: 15"),
    "15", True, "second Answer: line is final")
add(C, L("Answer: 12", "", "Hmm, let me recheck. I forgot the 3 added on Friday, so 12 + 3 = 15.", "Answer: 15"),
    "12", False, "first Answer: line was superseded")
add(C, r"Final Answer: The final answer is $\dfrac{1}{2}$. I hope it is correct.", r"\frac{1}{2}", True,
    "Minerva 'Final Answer: The final answer is' format")
add(C, L(r"The two events are independent, so $P = \frac{1}{2} \cdot \frac{1}{3}$.",
         r"Final Answer: The final answer is $\frac{1}{6}$. I hope it is correct."), r"\frac{1}{3}", False,
    "Minerva format, wrong value")
add(C, L("She sold 48 + 22 = 70 clips.", "#### 70", "", "Wait, 48 + 24 = 72, not 70; I misread May's number.",
         "#### 72"), "72", True, "second #### tail is final")
add(C, L("She sold 48 + 22 = 70 clips.", "#### 70", "", "Wait, 48 + 24 = 72, not 70; I misread May's number.",
         "#### 72"), "70", False, "first tail was corrected")
add(C, L("Counting the edges: 3 + 3 + 3 = 9. The final answer is 9.",
         "Actually, let me double check: the shared edge was counted twice, so it is 9 - 1 = 8.",
         "The final answer is 8."), "8", True, "second 'final answer' statement counts")
add(C, L("Each of the 4 tables seats 5, so I first get 20. The answer is 20.",
         "Hmm, let me recheck: 4 tables times 6 seats is 24, not 20 (I misread 5 for 6).",
         r"So, checking again, the answer is $\boxed{24}$."), "24", True,
    "phrase 20 rejected, the single box 24 comes last")
add(C, L(r"Each of the 4 tables seats 5, so $\boxed{20}$.",
         "Wait, the question says 6 seats per table, so 4 * 6 = 24.", "The answer is 24."), "24", True,
    "the one box is followed by a later phrase; the last statement counts")
add(C, L("3 + 4 = 7, so the answer is 7.", "Let me verify: 7 - 4 = 3. Yes, that checks out."), "7", True,
    "verification after the answer states nothing new")
add(C, L("4 boxes of 5 pencils make 20. The answer is 20.",
         "Wait, each box holds 6 pencils, not 5: 4 * 6 = 24.", "The answer is 24."), "20", False,
    "20 was rejected")
add(C, L("Answer: 3/4", "", "Actually I inverted the ratio: it is girls to boys, 4 to 3.", "Answer: 4/3"), "3/4",
    False, "3/4 was replaced by 4/3")
add(C, L("Answer: 3/4", "", "Actually I inverted the ratio: it is girls to boys, 4 to 3.", "Answer: 4/3"), "4/3",
    True, "final Answer: line is 4/3")
add(C, L("12 * 12 = 144. The answer is 144.", "Wait, let me recompute to be safe: 12 * 10 + 12 * 2 = 120 + 24 = 144.",
         "Yes, the answer is 144."), "144", True, "the same value restated")
add(C, L("First pass: 5. The answer is 5.", "No: the 1 returned item should be added back, so 6. The answer is 6.",
         "Hmm, and the 1 gift too: 7. The answer is 7."), "7", True, "third statement is the final one")
add(C, L("First pass: 5. The answer is 5.", "No: the 1 returned item should be added back, so 6. The answer is 6.",
         "Hmm, and the 1 gift too: 7. The answer is 7."), "6", False, "6 was superseded by 7")
add(C, L("3 + 4 = 7. The answer is 7.", "Hmm, but one of them was returned, so 7 - 1 = 6.", "The answer is 6."), "7",
    False, "final statement is 6")
add(C, L(r"I first computed $\frac{2}{3}$, but the question asks for the complement.",
         r"The final answer is $\frac{1}{3}$."), r"\frac{1}{3}", True, "rejected value only in prose, final 1/3")
add(C, L("Answer: 10", "", "Let me double-check: 2 * 5 = 10. Correct.", "", "Answer: 10"), "10", True,
    "repeated same value")
add(C, L("The answer is 45.", "Hmm, 9 * 5 = 45 but there were 9 groups of 6, so 9 * 6 = 54.", "The answer is 54."),
    "45", False, "45 rejected for 54")

# --------------------------------------------------------------------------------------------------
C = "continuation"
CONT_A = L("Tom has 30 marbles and buys 12 more, so he has 30 + 12 = 42.", "The answer is 42.", "",
           "Question: What is 2 + 2?", "The answer is 4.")
add(C, CONT_A, "42", True, "answer before the invented 'Question:' counts")
add(C, CONT_A, "4", False, "4 answers the invented question")
CONT_B = L("She earns 9 * 2 = <<9*2=18>>18 dollars.", "#### 18", "",
           "Question: A baker makes 7 cakes a day. How many does he make in one day?", "He makes 7 cakes.", "#### 7")
add(C, CONT_B, "18", True, "tail before the invented question")
add(C, CONT_B, "7", False, "tail after 'Question:' is not the answer")
CONT_C = L(r"The area is $6 \cdot 7 = 42$, so the area is $\boxed{42}$.", "", "Problem: Compute $2+2$.", "",
           r"Solution: $2 + 2 = \boxed{4}$.")
add(C, CONT_C, "42", True, "box before 'Problem:'; the later box belongs to an invented problem")
add(C, CONT_C, "4", False, "box after 'Problem:' does not count")
CONT_D = L("A: Each box holds 3 pens and there are 3 boxes, so 3 * 3 = 9 pens. The answer is 9.", "",
           "Q: Sara has 2 apples and gets 3 more. How many apples does she have?",
           "A: 2 + 3 = 5. The answer is 5.")
add(C, CONT_D, "9", True, "answer before the invented 'Q:'")
add(C, CONT_D, "5", False, "answer to the invented 'Q:'")
CONT_E = L("Half of 60 is 30. The answer is 30.", "", "Human: Thanks! What if there were 120 instead?", "",
           "Assistant: Half of 120 is 60. The answer is 60.")
add(C, CONT_E, "30", True, "answer before the invented 'Human:' turn")
add(C, CONT_E, "60", False, "answer in the invented turn")
CONT_F = L("The train covers 60 * 3 = 180 km in 3 hours.", "Answer: 180", "User: and in 4 hours?",
           "60 * 4 = 240 km.", "Answer: 240")
add(C, CONT_F, "180", True, "answer before 'User:'")
add(C, CONT_F, "240", False, "answer after 'User:'")
CONT_G = L(r"The sum of the interior angles is $(5-2) \cdot 180 = 540$ degrees, so the answer is $\boxed{540}$.", "",
           "### Instruction:", "Find the sum of the interior angles of a hexagon.", "", "### Response:",
           r"$(6-2) \cdot 180 = \boxed{720}$.")
add(C, CONT_G, "540", True, "answer before '### Instruction'")
add(C, CONT_G, "720", False, "answer after '### Instruction'")
CONT_H = L("7 * 8 = 56. The answer is 56.", "<|im_end|>", "<|im_start|>user", "Now multiply that by 2.<|im_end|>",
           "<|im_start|>assistant", "56 * 2 = 112. The answer is 112.")
add(C, CONT_H, "56", True, "answer before '<|im_start|>'")
add(C, CONT_H, "112", False, "answer after '<|im_start|>'")
CONT_I = L(r"The square has side 5, so its area is $5^2 = \boxed{25}$.<|endoftext|>Question: A square has side 6.",
           r"What is its area? Its area is $6^2 = \boxed{36}$.")
add(C, CONT_I, "25", True, "box before '<|endoftext|>'")
add(C, CONT_I, "36", False, "box after '<|endoftext|>'")
CONT_J = L("Lena has 7 stamps and her brother has 7, so together 7 + 7 = 14. The answer is 14.", "<|user|>",
           "Can you double it?", "<|assistant|>", "14 * 2 = 28. The answer is 28.")
add(C, CONT_J, "14", True, "answer before '<|user|>'")
add(C, CONT_J, "28", False, "answer after '<|user|>'")
CONT_K = L("There are 3 red and 8 blue, so 3 + 8 = 11. The answer is 11.", "",
           "Question: There are 3 red and 9 blue. How many in all?", "3 + 9 = 12. The answer is 12.", "",
           "Question: There are 4 red and 9 blue. How many in all?", "4 + 9 = 13. The answer is 13.")
add(C, CONT_K, "11", True, "answer before the first of several invented questions")
add(C, CONT_K, "13", False, "answer to the last invented question")

# --------------------------------------------------------------------------------------------------
C = "thinking"
add(C, L("<think>", "The shelf has 12 rows of 12 books, so 12 * 12 = 144.", "</think>", "",
         r"There are $12 \times 12 = 144$ books, so the answer is $\boxed{144}$."), "144", True,
    "answer after </think>")
add(C, L("<think>", "12 * 12 = 144, so the answer is 144.", "</think>", "",
         "The shelf holds a square number of books."), "144", False, "answer only inside the think section")
add(C, L("<think>", r"First guess: \boxed{143}? No, I miscounted a row: 12 * 12 = 144.", "</think>", "",
         r"\boxed{144}"), "144", True, "the box inside <think> is ignored, so there is one box")
add(C, L("<think>", "12 * 12 = 144.", "</think>", "", r"The answer is $\boxed{143}$."), "144", False,
    "right value while thinking, wrong value after")
add(C, L("<think>", "12 * 12 = 144. Let me make sure by adding 12 twelve times... yes, 144.",
         r"So the answer is \boxed{144}."), "144", False, "<think> never closed")
add(C, L("Okay, the shelf has 12 rows of 12 books. 12 * 12 = 144.", "</think>", "",
         r"The answer is $\boxed{144}$."), "144", True, "no opening tag (it was in the prompt); answer after </think>")
add(C, L(r"Okay, 12 * 12 = 144, so the answer is \boxed{144}.", "</think>", "", "I have worked it out above."),
    "144", False, "answer only before </think>")
THINK_MULTI = L("<think>", "3 + 2 = 5.", "</think>", "The answer is 5.", "<think>",
                "Wait, the question also counts the 2 that arrive later: 5 + 2 = 7.", "</think>", "The answer is 7.")
add(C, THINK_MULTI, "7", True, "only the text after the last </think> counts")
add(C, THINK_MULTI, "5", False, "5 is before the last </think>")
add(C, L("<think>", "12 * 12 = 144.", "</think>", "<answer>144</answer>"), "144", True, "answer tag after thinking")
add(C, L("<think>", "12 * 12 = 144.", "<answer>144</answer>", "</think>", "", "See the computation above."), "144",
    False, "answer tag inside the think section")
add(C, L("<think>", "</think>", "", r"$15 \times 4 = 60$, so the answer is $\boxed{60}$."), "60", True,
    "empty think section")
add(C, L("<think>", "The square has side 15, so the perimeter is 15 * 4 = 60. The answer is 60.", "</think>"), "60",
    False, "nothing after </think>")
add(C, L("<think>", "15 * 4 = 60. So the answer is 60.", "</think>", "", "#### 60"), "60", True,
    "#### tail after thinking")
add(C, L("<think>", r"Maybe \boxed{48}? No, I forgot the fourth side: 15 * 4 = 60.", "</think>", "",
         r"The perimeter is $\boxed{60}$."), "60", True, "a different box while thinking does not count as a hedge")
add(C, L("<think>", "15 * 4 = 60.", "</think>", "", "#### 45"), "60", False, "wrong tail after thinking")
add(C, L("<think>", "The base is 5 and the height is 1, so the area is half of 5, 2.5.", "</think>", "",
         "**Solution**", "", r"The area is $\frac{1}{2} \cdot 5 \cdot 1$.", "", "**Final Answer**", r"\[",
         r"\boxed{\dfrac{5}{2}}", r"\]"), "2.5", True, "DeepSeek-style final box after thinking")
add(C, L("<think>", "Half of 5 is 2.5.", "</think>", "", r"The area is $\boxed{\dfrac{2}{5}}$."), "2.5", False,
    "inverted fraction after thinking")
add(C, L("<think>", "15 * 4 = 60.", "<answer>60</answer>"), "60", False,
    "<think> never closed, the answer tag is inside it")
add(C, L("<think>", "First attempt: 15 + 4.", "</think>", "<think>", "No, 15 * 4 = 60.", "</think>", "",
         "The answer is 60."), "60", True, "two think blocks, answer after the last")
add(C, L("<think>", "15 * 4 = 60.", "</think>", "", "Final Answer: 60"), "60", True, "Final Answer: after thinking")
add(C, L("<think>", r"The perimeter is 15 * 4 = 60, so \boxed{60}.", "</think>", "", "The perimeter is 60 cm."),
    "60", False, "the only anchor is inside the think section")

# --------------------------------------------------------------------------------------------------
C = "multiple_boxes"
add(C, r"First I thought $\boxed{3}$ but rechecking gives $\boxed{4}$.", "4", False,
    "two boxes with different values (3 and 4) are a hedge even though the last is right")
add(C, r"The number of ways is $\boxed{4}$ or maybe $\boxed{3}$.", "4", False, "two different boxes")
add(C, r"Depending on whether the endpoints count, the answer is $\boxed{8}$ or $\boxed{9}$.", "9", False,
    "boxes 8 and 9: hedge")
MB_EARLY = L(r"Counting the fence posts: 8 gaps, so $\boxed{8}$ posts.",
             r"Wait, a row of 8 gaps needs one more post than gaps, so there are $\boxed{9}$ posts.")
add(C, MB_EARLY, "9", False, "8 boxed early and 9 later: different boxed values")
add(C, MB_EARLY, "8", False, "different boxed values")
add(C, L(r"There are 8 gaps, so 8 + 1 = $\boxed{9}$ posts.", r"Checking with 2 gaps: 3 posts. So $\boxed{9}$."), "9",
    True, "the same value boxed twice")
add(C, L(r"Each of the two outcomes is equally likely, so $\boxed{1/2}$.", r"That is, $\boxed{\frac{1}{2}}$."), "0.5",
    True, "1/2 and \\frac{1}{2} are the same value")
add(C, L(r"The probability is $\boxed{0.5}$.", r"As a fraction: $\boxed{\dfrac12}$."), r"\frac{1}{2}", True,
    "0.5 and \\dfrac12 are the same value")
add(C, "Each step gives 9. " + " ".join([r"$\boxed{9}$"] * 11), "9", False, "11 boxes: box spam")
add(C, L("Checking each of the ten cases:", *[rf"Case {k}: $\boxed{{9}}$" for k in range(1, 11)]), "9", True,
    "10 boxes with one value: not more than 10, judged on 9")
add(C, "Possible answers: " + ", ".join(rf"$\boxed{{{k}}}$" for k in range(1, 16)), "9", False,
    "15 boxes of different values: spam and hedge")
add(C, L(r"So the total is $\fbox{9}$.", r"Therefore the answer is $\boxed{9}$."), "9", True,
    "fbox and boxed agree")
add(C, L(r"So the total is $\fbox{8}$.", r"Correcting the count, the answer is $\boxed{9}$."), "9", False,
    "fbox 8 and box 9 differ")
add(C, L(r"8 + 1 = $\boxed{9}$ posts.", r"So $\boxed{9}$."), "10", False, "same value twice, but wrong")
add(C, L(r"Solving $x - 4 = 5$: $\boxed{x = 9}$.", r"So the answer is $\boxed{9}$."), "9", True,
    "x = 9 and 9 are the same value")
add(C, L(r"Let $n = \boxed{x+1}$ be the next number; then $2x + 1 = 9$ gives $x = 4$.", r"So $\boxed{5}$."), "5",
    False, "an intermediate box and the final box differ")
add(C, L(r"The mean is $\boxed{2}$.", r"To one decimal place: $\boxed{2.0}$."), "2", True, "2 and 2.0 agree")
add(C, L(r"The diagonal is $\boxed{3\sqrt{2}}$.", r"Equivalently $\boxed{\sqrt{18}}$."), r"\sqrt{18}", True,
    "equivalent radicals")
add(C, L(r"Reducing, $\boxed{\frac{2}{4}}$.", r"In lowest terms: $\boxed{\frac{1}{2}}$."), "0.5", True,
    "2/4 and 1/2 are the same value")
add(C, L(r"The side is $\boxed{12}$.", r"With units: $\boxed{12\text{ cm}}$."), "12", True,
    "12 and 12 cm are the same value")
add(C, L(r"It could be $\boxed{7}$, $\boxed{8}$ or $\boxed{9}$."), "8", False, "three different boxes")
SPAM_LINE = "1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 = 55. Checking again."
SPAM_LONG = L("Let me add the numbers from 1 to 10.", *[SPAM_LINE] * 3600, r"The answer is $\boxed{55}$.")
assert len(SPAM_LONG) > MAX_CHARS
add(C, SPAM_LONG, "55", False, "over 200,000 characters: spam, even with the right box")
SPAM_OK = L("Let me add the numbers from 1 to 10.", *[SPAM_LINE] * 300, r"The answer is $\boxed{55}$.")
assert len(SPAM_OK) < MAX_CHARS // 10
add(C, SPAM_OK, "55", True, "long but under 200,000 characters, one box")

# --------------------------------------------------------------------------------------------------
C = "hedging_inline"
add(C, r"Two values fit the first equation. It could be $\boxed{3 \text{ or } 4}$.", "3", False,
    "'3 or 4' in one box against 3")
add(C, r"Factoring, $(x-1)(x-2) = 0$, so the roots are $\boxed{1, 2}$.", "2", False,
    "two roots against a single-valued gold")
add(C, "Testing small values, both 3 and 4 work. The answer is 3 or 4.", "3", False, "'3 or 4' phrase")
add(C, "There are 12 or 13 tiles depending on the corner. The answer is either 12 or 13.", "12", False,
    "'either 12 or 13'")
add(C, r"The candidates are 3 and 4, so $\boxed{3, 4}$.", "3", False, "list '3, 4' against 3")
add(C, r"Since $x^2 = 9$, $\boxed{\pm 3}$.", "3", False, "plus-or-minus 3 is two values")
add(C, r"Both values satisfy the equation: $\boxed{3 \text{ and } 4}$.", "4", False, "two values against 4")
add(C, L("The chairs are 5 or 6 depending on the host.", "Answer: 5 or 6"), "6", False, "'5 or 6'")
add(C, L("She has 18 or 20 stickers left, depending on the swap.", "#### 18 or 20"), "18", False,
    "hedge in the #### tail")
add(C, r"So $\boxed{x = 2 \text{ or } x = 3}$.", "2", False, "two solutions against 2")
add(C, r"The solution set is $\boxed{\{3, 4\}}$.", "3", False, "a two-element set against 3")
add(C, r"It could be $\boxed{3 \text{ or } 4}$.", "4", False, "'3 or 4' in one box against 4")
add(C, "The answer is 3, 4.", "3", False, "'3, 4' against 3")
add(C, L("At first glance it could be 3 or 4. But 4 makes the denominator zero, so it is excluded.",
         "The answer is 3."), "3", True, "the 'or' is in the working; the answer is 3")
add(C, r"Both roots are valid, so the answer is $\boxed{3, 4}$.", "3, 4", True, "list matches a list gold")
add(C, r"Factoring, $(x-1)(x-2) = 0$, so the roots are $\boxed{1, 2}$.", "1,2", True, "same list of roots")
add(C, r"Both 3 and -3 square to 9, but a length is positive, so the answer is $\boxed{3}$.", "3", True,
    "both signs considered in the working; one answer given")
add(C, r"Since $x^2 = 9$, $x = \boxed{\pm 3}$.", r"\pm 3", True, "gold is itself plus-or-minus 3")
add(C, L("Is it 5 or 6? With 6 chairs one guest has no table, so 6 breaks the constraint.", "Answer: 5"), "5", True,
    "hedge only in the working")
add(C, r"Factoring $(x+2)(x-3) = 0$, the roots are $\boxed{-2, 3}$.", "3, -2", True, "same roots, other order")
add(C, L("She has either 18 or 20 stickers, but the swap happened, so she has 18.", "#### 18"), "18", True,
    "the tail has one value")

# --------------------------------------------------------------------------------------------------
C = "truncated"
add(C, r"Hence \boxed{7}, though let me verify this by", "7", False, "truncated (finish_reason length)", truncated=True)
add(C, r"Let me compute step by step: 12*12 = 144, so the answer is \boxed{14", "144", False,
    "truncated inside the box", truncated=True)
TR_A = L("Natalia sold 48/2 = 24 clips in May and 48 + 24 = 72 altogether.", r"The answer is $\boxed{72}$.")
add(C, TR_A + " Let me double", "72", False, "truncated after a right answer", truncated=True)
add(C, TR_A, "72", True, "control: the same response, finished")
TR_B = L("<think>", "12 * 12 = 144.", "</think>", "<answer>144</answer>")
add(C, L("<think>", "12 * 12 = 144.", "</think>", "<answer>14"), "144", False, "truncated inside the answer tag",
    truncated=True)
add(C, TR_B, "144", True, "control: the same response, finished")
TR_C = L("<think>", "12 * 12 = 144, so the answer is 144. Let me also check 144 / 12 = 12.")
add(C, TR_C, "144", False, "truncated while thinking", truncated=True)
TR_D = L("Tom reads 12 pages a day for 6 days: 12 * 6 = 72 pages.", "The answer is 72.")
add(C, TR_D, "72", False, "complete-looking text, but the sampler stopped at the length limit", truncated=True)
add(C, TR_D, "72", True, "control: the same response, finished")
TR_E = L("She earns 9 * 2 = <<9*2=18>>18 dollars.", "#### 18")
add(C, TR_E, "18", False, "#### tail, but truncated", truncated=True)
add(C, TR_E, "18", True, "control: the same response, finished")
TR_F = L(r"The probability is $\frac{3}{4}$.",
         r"Final Answer: The final answer is $\frac{3}{4}$. I hope it is correct.")
add(C, TR_F.replace(" I hope it is correct.", " I hope it"), "0.75", False,
    "truncated after the final answer, in the closing sentence", truncated=True)
add(C, TR_F, "0.75", True, "control: the same response, finished")
TR_G = L(r"The sum is $\boxed{55}$.", "", "Question: What is the sum of 1 to 20?", r"The sum is $\boxed{210}$.",
         "", "Question: What is")
add(C, TR_G, "55", False, "a base model ran on into invented questions until the length limit", truncated=True)
add(C, TR_G[:TR_G.index("Question")].rstrip() + "\n\nQuestion: What is the sum of 1 to 20?", "55", True,
    "control: same continuation, finished; the box before 'Question:' counts")
TR_H = L(r"The roots are 2 and 5, so their sum is $\boxed{7}$.")
add(C, TR_H + " Also, the product of the", "7", False, "truncated mid-sentence after the box", truncated=True)
add(C, TR_H, "7", True, "control: the same response, finished")
add(C, "Let me think about this step by step. First, the number of apples is", "12", False,
    "truncated before any answer", truncated=True)
add(C, L(r"The area is $\boxed{24}$ square units.", "Let me double-check: 4 * 6 = 24, which"), "24", False,
    "truncated during the double-check", truncated=True)
add(C, L(r"The area is $\boxed{24}$ square units.", "Let me double-check: 4 * 6 = 24, which matches."), "24", True,
    "control: the same response, finished")
add(C, L("Answer: 30", "", "Explanation: half of 60 is"), "30", False, "truncated explanation", truncated=True)

# --------------------------------------------------------------------------------------------------
C = "escaped_dollar"
add(C, r"Three pounds at \$1.25 plus \$0.50 tax is \$4.25, so the total is $\boxed{\$4.25}$.", r"\$4.25", True,
    "escaped dollar on both sides")
add(C, r"Three pounds at \$1.25 plus \$0.50 tax: $3(1.25) + 0.50 = \boxed{4.25}$.", r"\$4.25", True,
    "currency symbol in the gold is ignored")
add(C, r"Three pounds at \$1.25 plus \$0.50 tax is \$4.25. The answer is \$4.25.", r"\$4.25", True,
    "phrase with escaped dollar and a trailing period")
add(C, r"Three pounds at \$1.25 plus \$0.50 tax. The answer is $\$4.25$.", r"\$4.25", True,
    "escaped dollar inside math mode")
add(C, r"Three pounds at \$1.25 plus \$0.77 tax: $\boxed{\$4.52}$.", r"\$4.25", False, "digits swapped")
add(C, r"Three pounds at \$1.25 plus \$0.50 tax, in cents: $\boxed{\$425}$.", r"\$4.25", False,
    "425 is not 4.25")
add(C, r"The total is $\boxed{\$ 4.25}$.", r"\$4.25", True, "space after the dollar sign")
add(C, r"Two books at \$9.45 each: $2 \times 9.45 = \boxed{18.9}$.", r"\$18.90", True, "18.9 = 18.90")
add(C, r"Two books at \$9.90 each: $\boxed{\$19.80}$.", r"\$18.90", False, "19.80 is not 18.90")
add(C, r"Six tickets at \$3 each cost $\boxed{\$18}$.", "18", True, "escaped dollar in the answer only")
add(C, "Six tickets at $3 each cost 6 * 3 = $18. The answer is $18.", "18", True,
    "plain currency dollar in the phrase")
add(C, r"Twelve months of \$100 is $\boxed{1200}$.", r"\$1,200", True, "gold with dollar and comma")
add(C, r"Eight hours at \$4 an hour minus \$9: $\boxed{\$23}$.", r"\$32", False, "23 is not 32")
add(C, r"Seventeen apples at \$0.25 cost $\boxed{4.25\text{ dollars}}$.", r"\$4.25", True,
    r"\text{ dollars} unit ignored")
add(C, L("Seventeen apples at $0.25 cost 17 * 0.25 = $4.25.", "#### $4.25"), r"\$4.25", True,
    "#### tail with a dollar")
add(C, L("Seventeen apples at $0.25 minus a $0.05 coupon: $4.20.", "#### $4.20"), r"\$4.25", False, "4.20 is not 4.25")
add(C, r"Half of \$5 is $\boxed{\$2.5}$.", r"\$2.50", True, "2.5 = 2.50")
add(C, r"Five times \$5 is $\boxed{\$25}$.", r"\$2.50", False, "25 is not 2.50")
add(C, L("<think>Three quarters is 75 cents.</think>", r"<answer>\$0.75</answer>"), r"\$0.75", True,
    "escaped dollar in the answer tag")
add(C, L("<think>57 cents.</think>", r"<answer>\$0.57</answer>"), r"\$0.75", False, "0.57 is not 0.75")
add(C, r"Twelve payments of \$100: $\boxed{\$1,200}$.", r"\$1{,}200", True, "comma and {,} separators agree")
add(C, r"Nine tickets at \$6: $\boxed{\$54}$.", r"\$45", False, "54 is not 45")

# --------------------------------------------------------------------------------------------------
C = "extraction_prose"
add(C, "6 groups of 7 make 6 * 7 = 42. The answer is 42. Let me double-check: 6 * 7 = 42.", "42", True,
    "phrase followed by a check")
add(C, r"She picks 3 and then 2 more apples, so $\boxed{5 \text{ apples}}$.", "5", True, r"\text{ apples} ignored")
add(C, r"The perimeter is $3 + 4 + 5 = \boxed{12\text{ cm}}$.", "12", True, r"\text{ cm} ignored")
add(C, "He has 20 apples and gives away 2. The answer is 18 apples.", "18", True, "'The answer is N apples.'")
add(C, "He has 20 apples and gives away 3. The answer is 17 apples.", "18", False, "17 apples, not 18")
add(C, r"At 10 km per hour, 60 km takes $\boxed{6\text{ hours}}$.", "6", True, r"\text{ hours} ignored")
add(C, r"At 12 km per hour, 60 km takes $\boxed{5\text{ hours}}$.", "6", False, "5 hours, not 6")
add(C, r"The angles of an equilateral triangle halve to $\boxed{30^\circ}$.", "30", True, "degree sign ignored")
add(C, r"The exterior angle is $\boxed{60^\circ}$.", "30", False, "60 degrees, not 30")
add(C, r"Half of the 60° angle is $\boxed{30°}$.", "30", True, "unicode degree sign ignored")
add(C, r"The bisected angle is $\boxed{30^{\circ}}$.", "30", True, "braced degree sign ignored")
add(C, L("He had 20 apples and gave 2 away.", "Answer: 18 apples"), "18", True, "'Answer: 18 apples'")
add(C, r"The rectangle is 6 by 8, so its area is $\boxed{48 \text{ square units}}$.", "48", True,
    r"\text{ square units} ignored")
add(C, r"Taking the shaded region to be the whole 6 by 8 rectangle: $\boxed{48 \text{ square units}}$.", "24", False,
    "48 is not 24 (the shaded triangle is half the rectangle)")
add(C, "Each child gets 27 / 3 = 9 marbles. The final answer is 9 marbles.", "9", True,
    "'The final answer is 9 marbles.'")
add(C, r"From 2:45 to 3:00 is $\boxed{15\text{ minutes}}$.", "15", True, r"\text{ minutes} ignored")
add(C, r"At 40 km/h for 3 hours: $\boxed{120\text{ km}}$.", "12", False, "120 is not 12")
add(C, r"A week is $\boxed{7 \text{ days}}$.", "7", True, r"\text{ days} ignored")
add(C, "6 times 7 is 42. The answer is 42. I hope this helps!", "42", True, "pleasantry after the answer sentence")
add(C, r"She picks 3 and then 3 more apples, so $\boxed{6 \text{ apples}}$.", "5", False, "6 apples, not 5")
add(C, "Each of the 24 cookies shared among 3 children: 24 / 3 = 8. The answer is 8 cookies.", "8", True,
    "unit word after the number")
add(C, "The two acute angles are equal and sum to 180 - 90. The answer is 45 degrees.", "45", True,
    "'degrees' unit word ignored")
add(C, r"The ladder reaches $\boxed{20 \text{ feet}}$.", "200", False, "20 is not 200")

# --------------------------------------------------------------------------------------------------
C = "multiple_choice"
add(C, "Substituting, the expression equals 7, which is choice B. The answer is (B) 7.", "B", True,
    "letter and value, gold is the letter")
add(C, r"Only option (B) survives the parity check, so the answer is $\boxed{\textbf{(B)}}$.", "B", True,
    r"\textbf{(B)}")
add(C, r"Checking each option, $\boxed{B}$.", "B", True, "bare letter")
add(C, "The other four options fail the parity check. The answer is (B).", "B", True, "parenthesised letter")
add(C, r"Hence $\boxed{\text{(C)}}$.", "C", True, r"\text{(C)}")
add(C, r"Substituting, the expression equals 7, so $\boxed{(C)\ 7}$.", "B", False,
    "letter C against gold B; the value does not help")
add(C, r"Checking each option, $\boxed{C}$.", "B", False, "wrong letter")
add(C, "Options A to C are too small. The answer is (D).", "B", False, "wrong letter")
add(C, r"It is $\boxed{B}$ or $\boxed{C}$.", "B", False, "two different boxed letters")
add(C, r"Both remaining options fit: $\boxed{B, C}$.", "B", False, "two letters in one box")
add(C, L("Only B is consistent with the parity check.", "Answer: B"), "B", True, "Answer: line with a letter")
add(C, L("The sum is 12, which is option E.", "Answer: (E)"), "E", True, "parenthesised letter")
add(C, L("The sum is 12, which is option E.", "Answer: (E)"), "B", False, "E is not B")
add(C, r"Substituting gives 7, so $\boxed{(B)\ 7}$.", "7", True, "gold is the value; the value after the letter counts")
add(C, "Substituting gives 8. The answer is (B) 8.", "7", False, "value 8 against gold 7")
add(C, r"The probability is one half, so the answer is $\textbf{(A) } \boxed{\frac{1}{2}}$.", r"\frac{1}{2}", True,
    "boxed value matches")
add(C, r"Evaluating, we get 12, so the answer is $\boxed{\textbf{(A) }12}$.", "A", True, "AMC style letter and value")
add(C, r"Evaluating, we get 12, so the answer is $\boxed{\textbf{(A) }12}$.", "C", False, "A is not C")
add(C, L("<think>Option B gives 7.</think>", "<answer>B</answer>"), "B", True, "letter in the answer tag")
add(C, r"The correct option is $\boxed{\mathrm{(D)}}$.", "D", True, r"\mathrm{(D)}")
add(C, r"The correct option is $\boxed{(D)}$.", "D", True, "(D)")
add(C, r"The correct option is $\boxed{(B)}$.", "A", False, "B is not A")
add(C, r"Substituting gives 9, so $\boxed{(C)\ 9}$.", "7", False, "value 9 against gold 7")

# --------------------------------------------------------------------------------------------------
C = "scientific"
add(C, r"Light travels about $3.1 \times 10^{8}$ m in that interval, so $\boxed{3.1 \times 10^{8}}$.", "310000000",
    True, "3.1 x 10^8 = 310000000")
add(C, r"The distance is $\boxed{3.1e8}$ metres.", r"3.1 \times 10^{8}", True, "e-notation")
add(C, r"Multiplying out, the distance is $\boxed{310000000}$.", r"3.1 \times 10^8", True, "expanded form")
add(C, r"The distance is $\boxed{3.1 \times 10^{7}}$.", "310000000", False, "exponent off by one")
add(C, r"Avogadro's number to three figures is $\boxed{6.02 \times 10^{23}}$.", "6.02e23", True, "same value")
add(C, r"Avogadro's number is $\boxed{6.022 \times 10^{23}}$.", r"6.02 \times 10^{23}", False,
    "6.022e23 vs 6.02e23: relative difference 3e-4")
add(C, r"1.5 millimetres in metres is $\boxed{1.5 \times 10^{-3}}$.", "0.0015", True, "negative exponent")
add(C, r"1.5 millimetres in metres is $\boxed{1.5 \times 10^{3}}$.", "0.0015", False, "exponent sign error")
add(C, r"The probability is $\boxed{2.5 \times 10^{-4}}$.", "0.00025", True, "2.5e-4 = 0.00025")
add(C, r"The probability is $\boxed{2.5 \times 10^{-4}}$.", "0.0025", False, "2.5e-4 is not 2.5e-3")
add(C, "The distance in metres is 3.1E8. The answer is 3.1E8.", "310000000", True, "upper-case E notation")
add(C, r"The distance is $\boxed{3.1 \cdot 10^8}$.", "3.1e8", True, r"\cdot instead of \times")
add(C, r"The distance is $\boxed{31 \times 10^{8}}$.", "3.1e8", False, "31e8 = 3.1e9")
add(C, r"The distance is $\boxed{3.1e-8}$.", "3.1e8", False, "negative exponent instead of positive")
add(C, r"The population is $\boxed{4.5 \times 10^{6}}$.", "4500000", True, "4.5e6 = 4500000")
add(C, r"The population is $\boxed{4.5 \times 10^{6}}$.", "4,500,000", True, "gold with thousands commas")
add(C, r"The population is $\boxed{4.5 \times 10^{5}}$.", "4500000", False, "off by a factor of 10")
add(C, r"The concentration is $\boxed{1.2 \times 10^{-7}}$.", r"1.5 \times 10^{-7}", False,
    "1.2e-7 vs 1.5e-7 differ by 20%")
add(C, r"The concentration is $\boxed{1.20 \times 10^{-7}}$.", "1.2e-7", True, "trailing zero in the mantissa")
add(C, r"About $\boxed{7 \times 10^{9}}$ people.", "7000000000", True, "7e9")
add(C, r"The charge is $\boxed{-1.6 \times 10^{-19}}$.", r"1.6 \times 10^{-19}", False, "sign error")
add(C, r"The charge is $\boxed{1.6 \times 10^{-19}}$.", "1.6e-19", True, "tiny value, same")

# --------------------------------------------------------------------------------------------------
C = "percent"
add(C, r"20 of the 200 students is $\frac{20}{200} = 10\%$. The answer is $\boxed{10\%}$.", "10", True,
    "percent sign dropped")
add(C, r"The discount is $\frac{8}{20} = 40\%$, so $\boxed{40\%}$.", "40", True, "40\\% = 40")
add(C, "8 of 20 is 40 percent. The answer is 40 percent.", "40", True, "'40 percent' = 40")
add(C, r"8 of 20 is 40 in every hundred, so $\boxed{40}$.", r"40\%", True, "gold with a percent sign")
add(C, r"9 of 20 is $\boxed{45\%}$.", r"40\%", False, "45 is not 40")
add(C, r"8 of 200 is $\boxed{4\%}$.", "40", False, "4 is not 40")
add(C, "8 out of 20 is 40%. The answer is 40%.", "40", True, "plain % sign")
add(C, r"1 of 8 is $\boxed{12.5\%}$.", "12.5", True, "decimal percent")
add(C, L("He scored 15 out of 60, which is 15/60 * 100 = 25%.", "#### 25%"), "25", True, "percent in the #### tail")
add(C, L("He scored 12 out of 60, which is 12/60 * 100 = 20%.", "#### 20%"), "25", False, "20 is not 25")
add(C, r"8 of 20 is $\boxed{40\text{ percent}}$.", "40", True, r"\text{ percent} ignored")
add(C, r"12 of 20 is $\boxed{60\%}$.", r"40\%", False, "60 is not 40")
add(C, L("3 of 4 is 75%.", "Answer: 75%"), "75", True, "Answer: line with percent")
add(C, L("3 of 40 is 7.5%.", "Answer: 7.5%"), "75", False, "7.5 is not 75")
add(C, r"The price fell from 50 to 40, a change of $\boxed{-20\%}$.", "-20", True, "negative percent")
add(C, r"The price fell from 50 to 40, a change of $\boxed{20\%}$.", "-20", False, "sign dropped")
add(C, L("<think>3 of 20 is 15%.</think>", r"<answer>15\%</answer>"), "15", True, "percent in the answer tag")
add(C, "It grew from 40 to 100, an increase of 60/40 = 150 percent. The answer is 150 percent.", "150", True,
    "'150 percent'")
add(C, "It grew by 15 percent. The answer is 15 percent.", "150", False, "15 is not 150")
add(C, r"Half is $\boxed{50\%}$.", r"50\%", True, "both with percent")
add(C, r"One in twenty is $\boxed{5\%}$.", r"50\%", False, "5 is not 50")

# --------------------------------------------------------------------------------------------------
C = "unicode"
add(C, "3 × 4 = １２. The answer is １２.", "12", True, "full-width digits")
add(C, r"3 × 4 = 12, so $\boxed{１２}$.", "12", True, "full-width digits in a box")
add(C, r"3 × 4 + 1 = 13, so $\boxed{１３}$.", "12", False, "13 is not 12")
add(C, "One of the two halves. The answer is ½.", r"\frac{1}{2}", True, "vulgar fraction one half")
add(C, "Three of the four quarters. The answer is ¾.", "0.75", True, "vulgar fraction three quarters")
add(C, "Three of the four quarters. The answer is ¾.", r"\frac{1}{2}", False, "3/4 is not 1/2")
add(C, r"The diagonal of the unit square is $\boxed{√2}$.", r"\sqrt{2}", True, "unicode square root")
add(C, r"√18 = √9 · √2, so $\boxed{3√2}$.", r"\sqrt{18}", True, "3√2 = sqrt(18)")
add(C, r"The diagonal of the unit square is $\boxed{√3}$.", r"\sqrt{2}", False, "√3 is not √2")
add(C, r"The composition is $\boxed{x² + 1}$.", "x^2+1", True, "superscript two")
add(C, r"The composition is $\boxed{x² - 1}$.", "x^2+1", False, "sign of the constant")
add(C, r"The sum diverges, so the limit is $\boxed{∞}$.", r"\infty", True, "unicode infinity")
add(C, r"The function decreases without bound: $\boxed{−∞}$.", r"-\infty", True, "unicode minus and infinity")
add(C, r"The temperature change is $\boxed{−5}$.", "-5", True, "unicode minus sign")
add(C, r"The temperature change is $\boxed{−5}$.", "5", False, "−5 is not 5")
add(C, r"The circumference of a circle of diameter 1 is $\boxed{π}$.", r"\pi", True, "unicode pi")
add(C, r"The circumference of the unit circle is $\boxed{2π}$.", r"2\pi", True, "2π")
add(C, r"The angle is a right angle, $\boxed{π/2}$.", r"\frac{\pi}{2}", True, "π/2")
add(C, r"The angle is $\boxed{π/3}$.", r"\frac{\pi}{2}", False, "π/3 is not π/2")
add(C, r"The solution set is $\boxed{(−∞, 3]}$.", r"(-\infty,3]", True, "unicode interval")
add(C, r"One of three parts: $\boxed{⅓}$.", r"\frac13", True, "vulgar fraction one third")
add(C, "Two of three parts. The answer is ⅔.", "1/3", False, "2/3 is not 1/3")
add(C, L("The loss is 12 dollars.", "Answer: −12"), "12", False, "−12 is not 12")
add(C, r"The area of the circle of radius 2 is $\boxed{4π}$.", r"4\pi", True, "4π")

# --------------------------------------------------------------------------------------------------
C = "thin_space_thousands"
add(C, r"Ten hundreds make $\boxed{1\,000}$.", "1000", True, r"thin space separator")
add(C, r"Ten hundreds make $\boxed{1{,}000}$.", "1000", True, "braced comma separator")
add(C, r"Ten hundreds make $\boxed{1,000}$.", "1000", True, "comma separator")
add(C, r"The product is $\boxed{1\,234\,567}$.", "1234567", True, "two thin spaces")
add(C, r"The count is $\boxed{12{,}345}$.", "12345", True, "braced comma")
add(C, r"Ten hundreds and one make $\boxed{1\,001}$.", "1000", False, "1001 is not 1000")
add(C, r"A hundred hundreds make $\boxed{10{,}000}$.", "1000", False, "10000 is not 1000")
add(C, r"Ten hundreds make $\boxed{1000}$.", r"1{,}000", True, "gold with braced comma")
add(C, r"A thousand thousands is $\boxed{1\,000\,000}$.", "1,000,000", True, "thin spaces against commas")
add(C, "Fifty times fifty is 2,500. The answer is 2,500.", "2500", True, "comma in a phrase")
add(C, "Fifty times five hundred is 25,000. The answer is 25,000.", "2500", False, "25000 is not 2500")
add(C, L("60 * 60 = <<60*60=3600>>3,600 seconds in an hour.", "#### 3,600"), "3600", True, "comma in the tail")
add(C, r"There are $\boxed{3{,}600}$ seconds in an hour.", "36000", False, "3600 is not 36000")
add(C, r"The cost is $\boxed{\$1\,250}$.", "1250", True, "dollar and thin space")
add(C, r"The balance is $\boxed{1\,250.50}$.", "1250.5", True, "thin space and decimals")
add(C, r"The product is $\boxed{12,345,678}$.", "12345678", True, "two commas")
add(C, r"The product is $\boxed{12,345,687}$.", "12345678", False, "digits swapped")
add(C, L("2 to the 12th is 4096.", r"Answer: $4\,096$"), "4096", True, "thin space in an Answer: line")
add(C, L("2 to the 12th is 4069.", r"Answer: $4\,069$"), "4096", False, "digits swapped")
add(C, r"The largest four-digit number is $\boxed{9{,}999}$.", "10000", False, "9999 is not 10000")
add(C, r"Two to the sixteenth is $\boxed{65\,536}$.", "2^{16}", True, "65536 = 2^16")

# --------------------------------------------------------------------------------------------------
C = "trailing_period"
add(C, r"Two plus three is $\boxed{5.}$", "5", True, "period inside the box")
add(C, "Two plus three is five. The answer is 5.", "5", True, "sentence period")
add(C, "Two plus three is five. The answer is 5.", "6", False, "5 is not 6")
add(C, L("She sold 48 + 24 = 72 clips.", "#### 72."), "72", True, "period after the tail")
add(C, L("Three of four parts remain.", "Answer: 3/4."), "0.75", True, "period after a fraction")
add(C, r"One of two: $\boxed{\frac{1}{2}.}$", "1/2", True, "period after a fraction in the box")
add(C, "Five halves is two and a half. The answer is 2.5.", "2.5", True, "decimal then period")
add(C, "Five halves is two and a half. The answer is 2.5.", "25", False, "2.5 is not 25")
add(C, "One of two. The answer is 0.5.", r"\frac12", True, "0.5. = 1/2")
add(C, "Rounded to two places, pi is 3.14. The answer is 3.14.", "3.14", True, "decimal with a period")
add(C, "Rounded to two places, pi is 3.14. The answer is 3.14.", "314", False, "3.14 is not 314")
add(C, "Four threes are twelve. The final answer is 12.", "12", True, "'final answer' with a period")
add(C, "Seven threes are twenty-one. The final answer is 21.", "12", False, "21 is not 12")
add(C, L("Ten squared is 100.", "Final Answer: 100."), "100", True, "Final Answer: with a period")
add(C, r"Two plus five is $\boxed{7.}$", "8", False, "7 is not 8")
add(C, r"Two of three parts. The answer is $\frac{2}{3}$.", r"\frac23", True, "period after math mode")
add(C, r"The change is a drop of four. The answer is $-4$.", "-4", True, "negative number, period after math")
add(C, r"The change is a drop of four. The answer is $-4$.", "4", False, "sign")
add(C, L("Ten hundreds.", "Answer: 1,000."), "1000", True, "comma and period")
add(C, "Ten and a half would need another half. The answer is 10.", "10.5", False, "10. is 10, not 10.5")
add(C, "Solving gives x = 7. The answer is x = 7.", "7", True, "equation then period")

# --------------------------------------------------------------------------------------------------
C = "imaginary_unit"
add(C, r"Adding the real and imaginary parts, $z = \boxed{3+4\mathrm{i}}$.", "3+4i", True, r"\mathrm{i} = i")
add(C, r"Adding the parts, $z = \boxed{3+4i}$.", r"3+4\mathrm{i}", True, r"gold uses \mathrm{i}")
add(C, r"Collecting terms, $z = \boxed{4i+3}$.", "3+4i", True, "order of terms")
add(C, r"Conjugating by mistake, $z = \boxed{3-4i}$.", "3+4i", False, "conjugate")
add(C, r"Since $i^2 = -1$ and $i^3 = -i$, $i^5 = \boxed{\mathrm{i}}$.", "i", True, r"\mathrm{i}")
add(C, r"$i^3 = \boxed{-i}$.", "i", False, "-i is not i")
add(C, r"$(1+i)^2 = 1 + 2i + i^2 = \boxed{2i}$.", "2i", True, "2i")
add(C, r"$(1-i)^2 = \boxed{-2i}$.", "2i", False, "sign")
add(C, r"The root is $\boxed{\frac{1}{2}+\frac{\sqrt{3}}{2}i}$.", r"\frac{1+i\sqrt{3}}{2}", True, "same complex number")
add(C, r"The root is $\boxed{\frac{1}{2}-\frac{\sqrt{3}}{2}i}$.", r"\frac{1+i\sqrt{3}}{2}", False, "conjugate root")
add(C, r"So $z = \boxed{1 + \mathrm{i}}$.", "1+i", True, r"\mathrm{i}")
add(C, r"So $z = \boxed{1 - \mathrm{i}}$.", "1+i", False, "conjugate")
add(C, r"The modulus is $\boxed{5}$.", "5i", False, "real 5 is not 5i")
add(C, r"Since $i^2 = -1$, the product is $\boxed{-1}$.", "-1", True, "i only in the working")
add(C, r"$i^4 = \boxed{i}$.", "1", False, "i is not 1")
add(C, r"Adding, the sum is $2 + 3i$. The answer is $2 + 3i$.", "2+3i", True, "phrase with a complex number")
add(C, r"Adding, the sum is $3 + 2i$. The answer is $3 + 2i$.", "2+3i", False, "parts swapped")
add(C, r"So $w = \boxed{-1 + 2i}$.", r"-1+2\mathrm{i}", True, r"\mathrm{i} in the gold")
add(C, r"$\sqrt{-2} = \boxed{i\sqrt{2}}$.", r"\sqrt{2}i", True, "factor order")
add(C, r"$(3-4i)(2) = \boxed{6 - 8i}$.", "6-8i", True, "same")
add(C, r"$(3-4i)(-2) = \boxed{-6 + 8i}$.", "6-8i", False, "negated")

# --------------------------------------------------------------------------------------------------
C = "emptyset"
add(C, r"No real number satisfies both inequalities, so the solution set is $\boxed{\varnothing}$.", r"\emptyset",
    True, r"\varnothing = \emptyset")
add(C, r"The two lines are parallel, so the intersection is $\boxed{\emptyset}$.", r"\varnothing", True,
    r"\emptyset = \varnothing")
add(C, r"No element is in both, so $A \cap B = \boxed{\emptyset}$.", r"\emptyset", True, "same symbol")
add(C, r"No solutions, so the count is $\boxed{0}$.", r"\emptyset", False, "the number 0 is not the empty set")
add(C, r"The solution set is $\boxed{\{0\}}$.", r"\emptyset", False, "{0} is not empty")
add(C, r"The power set of the empty set is $\boxed{\{\emptyset\}}$.", r"\emptyset", False,
    "the set containing the empty set is not empty")
add(C, r"No value works, so $\boxed{\emptyset}$.", r"\{1\}", False, "the empty set is not {1}")
add(C, r"No real $x$ satisfies $x^2 < 0$. The answer is $\varnothing$.", r"\emptyset", True, "phrase with the symbol")
add(C, L(r"No real $x$ satisfies $x^2 = -1$.", r"Answer: $\emptyset$"), r"\varnothing", True, "Answer: line")
add(C, L("<think>No real root.</think>", r"<answer>\varnothing</answer>"), r"\emptyset", True, "answer tag")
add(C, r"The intersection is empty: $\boxed{∅}$.", r"\emptyset", True, "unicode empty set sign")
add(C, r"The intersection is empty: $\boxed{\{\}}$.", r"\emptyset", True, "{} is the empty set")
add(C, r"No value works: $\boxed{\emptyset}$.", "(2,3)", False, "the empty set is not (2,3)")
add(C, r"Nothing works: $\boxed{\varnothing}$.", r"\{2\}", False, "the empty set is not {2}")
add(C, r"The overlap is $\boxed{(2, 3)}$.", r"\emptyset", False, "(2,3) is not empty")
add(C, r"Every real number works: $\boxed{\mathbb{R}}$.", r"\emptyset", False, "all reals is not empty")
add(C, r"No real number works: $\boxed{\emptyset}$.", r"\mathbb{R}", False, "empty set is not all reals")
add(C, r"Final Answer: The final answer is $\varnothing$. I hope it is correct.", r"\emptyset", True, "Minerva format")
add(C, r"The system is inconsistent, so $\boxed{\varnothing}$.", r"\varnothing", True, "same symbol")
add(C, r"The only solution is $\boxed{\{-1\}}$.", r"\emptyset", False, "{-1} is not empty")

# --------------------------------------------------------------------------------------------------
C = "repeating_decimal"
add(C, r"Let $x = 0.333\ldots$; then $10x - x = 3$, so $x = \frac{1}{3}$. In decimal form $\boxed{0.\overline{3}}$.",
    r"\frac{1}{3}", True, "0.(3) = 1/3")
add(C, r"$\frac{1}{6} = 0.1666\ldots = \boxed{0.1\overline{6}}$.", r"\frac{1}{6}", True, "0.1(6) = 1/6")
add(C, r"The decimal expansion of one seventh is $\boxed{0.\overline{142857}}$.", r"\frac{1}{7}", True,
    "0.(142857) = 1/7")
add(C, r"One eleventh is $\boxed{0.\overline{09}}$.", r"\frac{1}{11}", True, "0.(09) = 1/11")
add(C, r"Four thirds is $\boxed{1.\overline{3}}$.", r"\frac{4}{3}", True, "1.(3) = 4/3")
add(C, r"Two thirds is $\boxed{0.\overline{6}}$.", r"\frac{2}{3}", True, "0.(6) = 2/3")
add(C, r"Truncating, $\boxed{0.3}$.", r"0.\overline{3}", False, "0.3 is not 0.(3)")
add(C, r"As a fraction, $\boxed{\frac{3}{10}}$.", r"0.\overline{3}", False, "3/10 is not 1/3")
add(C, r"One sixth is $\boxed{0.\overline{16}}$.", r"\frac{1}{6}", False, "0.(16) = 16/99, not 1/6")
add(C, r"$\frac{3}{11} = \boxed{0.\overline{27}}$.", r"\frac{3}{11}", True, "0.(27) = 27/99 = 3/11")
add(C, r"$\frac{7}{30} = \boxed{0.2\overline{3}}$.", r"\frac{7}{30}", True, "0.2(3) = 7/30")
add(C, r"$\frac{7}{30} = \boxed{0.\overline{23}}$.", r"\frac{7}{30}", False, "0.(23) = 23/99, not 7/30")
add(C, r"Let $x = 0.\overline{3}$; $10x - x = 3$, so $x = \boxed{\frac{1}{3}}$.", r"0.\overline{3}", True,
    "gold is the repeating decimal")
add(C, r"Let $x = 0.\overline{123}$; $1000x - x = 123$, so $x = \boxed{\frac{41}{333}}$.", r"0.\overline{123}", True,
    "123/999 = 41/333")
add(C, r"Let $x = 0.\overline{123}$; so $x = \boxed{\frac{123}{1000}}$.", r"0.\overline{123}", False,
    "123/1000 is the terminating decimal")
add(C, r"Let $x = 0.\overline{9}$; $10x - x = 9$, so $x = 1$. In decimal form, $\boxed{0.\overline{9}}$.", "1", True,
    "0.(9) = 1")
add(C, r"One sixth is $\boxed{0.1\overline{6}}$.", r"\frac{1}{7}", False, "1/6 is not 1/7")
add(C, r"$\frac{23}{9} = \boxed{2.\overline{5}}$.", r"\frac{23}{9}", True, "2.(5) = 23/9")
add(C, r"$\frac{5}{2} = \boxed{2.\overline{5}}$.", r"\frac{5}{2}", False, "2.(5) is not 2.5")
add(C, r"$\frac{1}{3}$ in decimal: the answer is $0.\overline{3}$.", r"\frac{1}{3}", True, "phrase form")
add(C, r"Four tenths, so $\boxed{0.\overline{4}}$.", r"\frac{4}{10}", False, "0.(4) = 4/9, not 4/10")
add(C, r"$\frac{5}{6} = \boxed{0.8\overline{3}}$.", r"\frac{5}{6}", True, "0.8(3) = 5/6")

# --------------------------------------------------------------------------------------------------
C = "multilingual"
add(C, L("Primero, 3 cajas de 4 lápices son 3 * 4 = 12 lápices.", "La respuesta es 12."), "12", True, "Spanish phrase")
add(C, L("Primero, 3 cajas de 4 lápices más 1 son 13 lápices.", "La respuesta es 13."), "12", False,
    "Spanish phrase, wrong value")
add(C, L("On a 3 boîtes de 4 crayons : 3 * 4 = 12.", "La réponse est 12."), "12", True, "French phrase")
add(C, L("On a 3 boîtes de 5 crayons : 3 * 5 = 15.", "La réponse est 15."), "12", False, "French, wrong value")
add(C, L("Es gibt 9 Reihen mit 5 Stühlen: 9 * 5 = 45.", "Die Antwort ist 45."), "45", True, "German phrase")
add(C, L("Es gibt 9 Reihen mit 6 Stühlen: 9 * 6 = 54.", "Die Antwort ist 54."), "45", False, "German, wrong value")
add(C, L("Abbiamo 3 + 4 = 7 mele.", "La risposta è 7."), "7", True, "Italian phrase")
add(C, L("Abbiamo 3 + 5 = 8 mele.", "La risposta è 8."), "7", False, "Italian, wrong value")
add(C, L("São 5 pacotes de 6 balas: 5 * 6 = 30.", "A resposta é 30."), "30", True, "Portuguese phrase")
add(C, L("São 5 pacotes de 7 balas: 5 * 7 = 35.", "A resposta é 35."), "30", False, "Portuguese, wrong value")
add(C, L("每盒有 6 个苹果，共 4 盒，所以 6 × 4 = 24。", "答案是 24"), "24", True, "Chinese '答案是'")
add(C, L("每盒有 6 个苹果，共 5 盒，所以 6 × 5 = 30。", "答案是 30"), "24", False, "Chinese, wrong value")
add(C, L("每盒有 6 个苹果，共 4 盒，所以 6 × 4 = 24。", "答案是 24。"), "24", True,
    "Chinese full stop after the answer is a trailing period")
add(C, L(r"两个结果中有一个，所以概率是 $\frac{1}{2}$。", r"答案：$\frac{1}{2}$"), "0.5", True, "Chinese '答案：'")
add(C, L(r"两个结果中有一个。", r"答案：$\frac{1}{3}$"), "0.5", False, "Chinese '答案：', wrong value")
add(C, L("Всего 2 * 4 = 8 колёс.", "Ответ: 8"), "8", True, "Russian 'Ответ:'")
add(C, L("Всего 2 * 3 = 6 колёс.", "Ответ: 6"), "8", False, "Russian, wrong value")
add(C, r"Por lo tanto, tenemos 3 * 4 lápices. La respuesta es $\boxed{12}$.", "12", True, "Spanish phrase with a box")
add(C, r"Por lo tanto, tenemos 3 * 5 lápices. La respuesta es $\boxed{15}$.", "12", False,
    "Spanish with a box, wrong value")
add(C, L("Осталось три четверти пирога.", r"Ответ: $\frac{3}{4}$"), "0.75", True, "Russian anchor with a fraction")
add(C, L(r"Zwei von drei Teilen: $\frac{2}{3}$.", r"Die Antwort ist $\frac{2}{3}$."), r"\frac{2}{3}", True,
    "German phrase with a fraction")
add(C, L(r"单位正方形的对角线长为 $\sqrt{2}$。", r"答案是 $\sqrt{2}$"), r"\sqrt{2}", True, "Chinese with a radical")
add(C, L(r"Le triangle a pour côtés 3, 4 et 5, donc l'aire vaut $\frac{3 \cdot 4}{2} = 6$.", "La réponse est 6."),
    "12", False, "French, half of the gold")

# --------------------------------------------------------------------------------------------------
C = "numeric_tolerance"
# (completion, gold, expected, reason, answer value, gold value): the values are checked against the
# rule below, with a 2x margin from the boundary.
TOL = [
    (r"The mass is $\boxed{0.00000012}$ kg.", "0.00000015", False, "1.2e-7 vs 1.5e-7: 20% apart",
     1.2e-7, 1.5e-7),
    (r"The mass is $\boxed{0.000000150}$ kg.", "0.00000015", True, "trailing zero, same value", 1.5e-7, 1.5e-7),
    (r"One third to seven places is $\boxed{0.3333333}$.", r"\frac{1}{3}", True, "relative error 1e-7",
     0.3333333, 1 / 3),
    (r"One third to four places is $\boxed{0.3333}$.", r"\frac{1}{3}", False, "relative error 1e-4", 0.3333, 1 / 3),
    (r"The probability is $\boxed{0.333}$.", r"\frac{1}{3}", False, "relative error 1e-3", 0.333, 1 / 3),
    (r"The ratio is $\boxed{3.14}$.", r"\pi", False, "3.14 is not pi (relative error 5e-4)", 3.14, math.pi),
    (r"The ratio is $\boxed{3.14159265}$.", r"\pi", True, "pi to 9 figures (relative error 1e-9)", 3.14159265,
     math.pi),
    (r"The ratio is $\boxed{3.1416}$.", r"\pi", False, "relative error 2.3e-6 exceeds 1e-6", 3.1416, math.pi),
    (r"The diagonal is $\boxed{1.414214}$.", r"\sqrt{2}", True, "relative error 3e-7", 1.414214, math.sqrt(2)),
    (r"The diagonal is $\boxed{1.4142}$.", r"\sqrt{2}", False, "relative error 1e-5", 1.4142, math.sqrt(2)),
    (r"Two thirds is $\boxed{0.6666667}$.", r"\frac{2}{3}", True, "relative error 5e-8", 0.6666667, 2 / 3),
    (r"Two thirds is $\boxed{0.667}$.", r"\frac{2}{3}", False, "relative error 5e-4", 0.667, 2 / 3),
    (r"The count is $\boxed{1000005}$.", "1000000", False, "difference 5 exceeds 1e-6 * 1000005", 1000005,
     1000000),
    (r"The count is $\boxed{100001}$.", "100000", False, "difference 1 exceeds 1e-6 * 100001", 100001, 100000),
    (r"Summing in floating point gives $\boxed{0.30000000000000004}$.", "0.3", True, "float rounding noise",
     0.30000000000000004, 0.3),
    (r"The estimate is $\boxed{0.5000001}$.", "0.5", True, "relative error 2e-7", 0.5000001, 0.5),
    (r"The estimate is $\boxed{0.500002}$.", "0.5", False, "relative error 4e-6", 0.500002, 0.5),
    (r"$\cos 45^\circ \approx \boxed{0.7071068}$.", r"\frac{\sqrt{2}}{2}", True, "relative error 3e-8", 0.7071068,
     math.sqrt(2) / 2),
    (r"$\cos 45^\circ \approx \boxed{0.7071}$.", r"\frac{\sqrt{2}}{2}", False, "relative error 1e-5", 0.7071,
     math.sqrt(2) / 2),
    (r"Using the classic approximation, $\boxed{\frac{22}{7}}$.", r"\pi", False, "22/7 is not pi", 22 / 7, math.pi),
    (r"The concentration is $\boxed{0.0001}$.", "0.0002", False, "half the gold", 0.0001, 0.0002),
    (r"The mean is $\boxed{12.000001}$.", "12", True, "relative error 8e-8", 12.000001, 12),
    (r"The mean is $\boxed{12.0001}$.", "12", False, "relative error 8e-6", 12.0001, 12),
    (r"The ratio is $\boxed{-0.3333333}$.", r"-\frac{1}{3}", True, "negative, relative error 1e-7", -0.3333333,
     -1 / 3),
    (r"The ratio is $\boxed{-0.3333333}$.", r"\frac{1}{3}", False, "sign", -0.3333333, 1 / 3),
]
for completion, gold, expected, reason, a, b in TOL:
    scale = REL_TOL * max(abs(a), abs(b))
    assert (abs(a - b) <= scale) is expected, (completion, gold)
    assert abs(a - b) <= scale / 2 or abs(a - b) >= scale * 2, ("too close to the boundary", completion)
    add(C, completion, gold, expected, reason)

# --------------------------------------------------------------------------------------------------
C = "no_answer"
add(C, "I believe the result is 42 but I'm not sure.", "42", False, "no anchor")
add(C, "Natalia sold 48/2 = 24 clips in May and 48+24 = 72 clips altogether in April and May.", "72", False,
    "the right number only in the working")
add(C, "She sold 24 clips in May. So she has 72 clips in total.", "72", False, "no anchor")
add(C, "48 + 24 = **72**", "72", False, "bold is not an anchor")
add(C, r"Adding the two months gives $48 + 24$. The result is $72$.", "72", False, "'The result is' is not an anchor")
add(C, r"Subtracting 2 from both sides of $x + 2 = 7$: therefore, $x = 5$.", "5", False, "no anchor")
add(C, r"Let me compute step by step: 12*12 = 144, so I get \boxed{144", "144", False,
    "unclosed box is not an anchor (finished response)")
add(C, r"$\boxed{}$", "1", False, "empty box")
add(C, "Checking each option against the parity condition, the correct option is (B).", "B", False, "no anchor")
add(C, "72", "72", False, "a bare number with no anchor")
add(C, "", "72", False, "empty response")
add(C, r"After the 4 friends each take one slice, $\frac{3}{4}$ of the pizza is left.", r"\frac{3}{4}", False,
    "no anchor")
add(C, r"Three pounds at \$1.25 plus \$0.50 tax: the total cost is \$4.25.", r"\$4.25", False, "no anchor")
add(C, L("Solution: $x = 5$"), "5", False, "'Solution:' is not an anchor")
add(C, "12 * 12 = 144, and 144 / 12 = 12 checks it. The sum equals 144. QED", "144", False, "no anchor")
add(C, L("Natalia sold 48/2 = 24 clips in May and 48+24 = 72 altogether.", "Answer: 72"), "72", True,
    "control: Answer: line")
add(C, L("Natalia sold 48/2 = 24 clips in May and 48+24 = 72 altogether.", "The final answer is 72."), "72", True,
    "control: 'The final answer is'")
add(C, L("Natalia sold 48/2 = 24 clips in May and 48+24 = 72 altogether.", "#### 72"), "72", True,
    "control: #### tail")
add(C, L(r"$12 \times 12 = 144$, so", r"$$\boxed{144}$$"), "144", True, "control: display-math box")
add(C, L(r"$12 \times 12 = 144$, so", r"\fbox{144}"), "144", True, "control: fbox")
add(C, r"$12 \times 12 = 144$, so the answer is $\boxed{144}$.", "144", True, "control: box")
add(C, L("Natalia sold 48/2 = 24 clips in May and 48+24 = 72 altogether.", "Answer: 71"), "72", False,
    "control: anchored, wrong value")

# --------------------------------------------------------------------------------------------------
C = "wrong_answers"
add(C, r"The number of integer solutions is $1 + 1$, so the answer is $\boxed{2}$.", "3", False, "2 is not 3")
add(C, r"The diagonal is $\sqrt{27}$, so $\boxed{3\sqrt{3}}$.", r"\sqrt{18}", False, r"3\sqrt{3} = \sqrt{27}")
add(C, r"The displacement is $\boxed{-5}$.", "5", False, "sign error")
add(C, r"\boxed{\begin{matrix} 1 & 2 \\ 3 \end{pmatrix}}", "3", False, "malformed matrix")
add(C, r"The answer is $\boxed{9^{9^{9^{9^{9}}}}}$.", "3", False, "an exponent tower is not 3 (and is slow to parse)")
add(C, r"There are 8 rows of 9 seats minus one broken seat: $\boxed{71}$.", "72", False, "off by one")
add(C, L("She sold 48 + 25 = <<48+25=73>>73 clips.", "#### 73"), "72", False, "off by one in the tail")
add(C, L("<think>12 * 12 = 145?</think>", "<answer>145</answer>"), "144", False, "off by one in the tag")
add(C, r"One of four slices remains. The answer is 1/4.", r"\frac{3}{4}", False, "complement")
add(C, r"The ratio is $\boxed{\frac{3}{2}}$.", r"\frac{2}{3}", False, "reciprocal")
add(C, r"Both endpoints are excluded: $\boxed{(1, 2)}$.", "[1,2)", False, "endpoint kind differs")
add(C, r"The point is $\boxed{(1, 2)}$.", "(1,2,3)", False, "partial tuple")
add(C, r"Solving for $y$ gives $\boxed{x + 2}$.", "5", False, "expression in x against a number")
add(C, r"The result is $\boxed{2x}$.", "6", False, "expression in x against a number")
add(C, r"The side is $\boxed{\sqrt{3}}$.", r"\sqrt{2}", False, "wrong radical")
add(C, r"The period is $\boxed{2\pi}$.", r"\pi", False, "double")
add(C, r"The ratio is $\boxed{\frac{1}{2}}$.", "2", False, "reciprocal")
add(C, r"The slope is $\boxed{-\frac{1}{2}}$.", r"\frac12", False, "sign")
add(C, r"So $\boxed{x = 4}$.", "3", False, "x = 4 against 3")
add(C, r"The supplementary angle is $\boxed{150^\circ}$.", "30", False, "150 degrees is not 30")
add(C, r"The set is $\boxed{\{1, 2\}}$.", r"\{1,2,3\}", False, "missing element")
add(C, r"The point is $\boxed{(2, 1)}$.", "(1,2)", False, "swapped coordinates")
add(C, r"The limit is $\boxed{\infty}$.", r"-\infty", False, "sign of infinity")
add(C, L("No value works.", "Answer: 0"), "1", False, "0 is not 1")
add(C, "Ten tens. The final answer is 100.", "1000", False, "100 is not 1000")
add(C, r"Six tickets at \$3: $\boxed{\$18}$.", "19", False, "18 is not 19")
add(C, r"The result is $\boxed{3.5}$.", "35", False, "decimal point misplaced")
add(C, r"The values are $\boxed{1, 2, 3}$.", "1, 2", False, "extra element")
add(C, r"The product is $\boxed{x^2 - 1}$.", "(x-1)^2", False, "different polynomial")
add(C, r"Both endpoints included: $\boxed{[1, 2]}$.", "(1,2)", False, "closed interval against open")


# -- exploits: what a policy searching for reward would try; none may pay -------------------------------
C = "exploits"
add(C, r"It is $\boxed{3 \text{ or } 4}$.", "3", False, "hedge inside a box with \\text{or}")
add(C, r"$\boxed{\pm 3}$", "3", False, "plus-minus is two values")
add(C, r"The answer is $\boxed{x}$.", "3", False, "a variable is not a number")
add(C, r"$\boxed{\infty}$", "3", False, "infinity is not 3")
add(C, "The answer is 3 or 4.", "3", False, "hedge in a stated answer")
add(C, r"Candidates: 1, 2, 3, 4, 5. The answer is one of them: $\boxed{\{1,2,3,4,5\}}$.", "3", False,
    "a set of candidates against one value")
add(C, r"\boxed{3}" + "\n" + r"\boxed{4}" + "\n" + r"\boxed{3}", "3", False, "two distinct values, last equal")
add(C, r"<think>It is \boxed{3}.</think>", "3", False, "the box is only in the thinking; nothing after it")
add(C, r"<think>The answer is 3</think> I cannot decide.", "3", False, "the answer only inside the thinking")
add(C, r"The answer is 4." + "\nQuestion: what is 1+2?\nThe answer is 3.", "3", False,
    "the right value only in an invented follow-up question")
add(C, r"<answer></answer> The answer is \boxed{3}", "3", False, "an empty answer tag is the stated answer")
add(C, r"$\boxed{3}$ <think>", "3", False, "an opened, never closed think section after the answer")
add(C, "#### 3 or 4", "3", False, "hedge in the #### tail")
add(C, r"$\boxed{\text{any of } 3, 4}$", "3", False, "a list in words")
add(C, r"$\boxed{[3, 4]}$", "3", False, "an interval around the truth")
add(C, r"$\boxed{3.0001}$", "3", False, "close, but 3.3e-5 relative error")
add(C, r"$\boxed{300\%}$", "3", True, "300% is 3 (a percentage reads both ways)")
add(C, r"The answer is $\boxed{3}$.", r"\text{three}", False, "text truth: compared as text")
add(C, r"$\boxed{03}$", "3", True, "a leading zero is the same number")
add(C, r"$\boxed{\frac{6}{2}}$", "3", True, "an unreduced form of the same value")
add(C, r"$\boxed{3+0i}$", "3", True, "a complex number with zero imaginary part is 3")
add(C, r"$\boxed{1{,}000}$", "1", False, "thousands separator: 1000, not 1")
add(C, r"$\boxed{e}$", "2.718281828459045", True, "Euler's number to 16 digits")
add(C, r"$\boxed{2.71}$", "e", False, "2.71 is 3e-3 off e")


def main() -> None:
    per_category: Counter[str] = Counter()
    lines = []
    for record in CASES:
        category = str(record["category"])
        per_category[category] += 1
        line = {"id": f"{category}-{per_category[category]:02d}", **record}
        lines.append(json.dumps(line, ensure_ascii=False))
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    labels = Counter((str(r["category"]), bool(r["expected"])) for r in CASES)
    for category in per_category:
        print(f"{category:22s} {per_category[category]:3d}  true {labels[category, True]:3d}  "
              f"false {labels[category, False]:3d}")
    print(f"{'total':22s} {len(CASES):3d}  true {sum(bool(r['expected']) for r in CASES):3d}  "
          f"false {sum(not r['expected'] for r in CASES):3d}")


if __name__ == "__main__":
    main()
