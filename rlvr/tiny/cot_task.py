"""The second tiny model's task: ``s + a*b`` by repeated addition, with a working before the answer.

Task
----
Prompt ``"Q: {s}+{a}*{b}="`` with a start ``s`` in ``20..99``, a one-digit step ``a`` in ``3..9`` and a
count ``b`` in ``2..44``, such that the result stays below 200 (:data:`LIMIT`). The completion is a
*working* -- the running total after each addition of ``a``, each entry numbered by how many
additions are left (counting down to 1) -- then the answer, then EOS::

    "Q: 47+6*5="  ->  "5:53,4:59,3:65,2:71,1:77 A=77" + <|endoftext|>

The answer is the last number of the response, so the existing ``exact_int`` verifier scores it with
``verifier_kwargs: {mode: last}`` (a response cut off by ``rollout.max_new_tokens`` scores 0).

Why this shape (measured on the 2-core builder, ~2,000 steps of pre-training): with a two-digit
multiplicand (``"Q: 13*7="`` -> ``"1:13,2:26,..."``) the tiny model still got a third of the tens
digits wrong after 600 steps; a one-digit step is learnt within ~1,000. With the counter counting *up*
the model never learnt where to stop (it must match the counter against ``b`` in the prompt; the
stop is one token in ~80); counting *down*, the stop is the local fact "the counter was 1". Why the
limit of 200: see the noise, below.

Lengths
-------
``b`` sets the length: ``b = 2`` is 15 tokens, ``b = 44`` about 300. ``b`` is drawn with probability
proportional to ``1 / b`` (log-uniform-ish), then ``s`` and ``a`` uniformly among the problems with
that ``b``, so most responses are short and a long tail runs to ~300 tokens: for correct workings p50
~50, p90 ~200 tokens, and ~7% are longer than 224 tokens (the recipe's ``rollout.max_new_tokens``);
of the base model's samples, mostly sloppy (shorter totals, below), ~5%.

Split
-----
The 13,683 problems are split once with a fixed seed (:data:`SPLIT_SEED`, independent of the build
seed): :data:`NUM_HELDOUT` distinct problems are drawn from the task distribution, in draw order (so
any prefix of ``heldout.jsonl`` is itself a sample); every other problem is a training problem, drawn
from the same distribution with held-out problems redrawn. The RL prompt file ``train.jsonl`` is
:data:`NUM_TRAIN_ROWS` such draws (short problems repeat now and then).

What the split holds out is the *prompt*: the running totals of a held-out ``(s, a, b)`` also occur
in training workings of the same ``s`` and ``a`` with another count. So held-out accuracy measures the
policy -- the carry decision below, counting down, copying the answer -- rather than never-seen sums.

Why the pre-training corpus is deliberately noisy
-------------------------------------------------
As in :mod:`rlvr.tiny.task`, the base model must sometimes, but not mostly, get the right answer.
Each pre-training example is *sloppy* with probability :data:`SLOPPY_PROB`, drawn fresh every time an
example is drawn. A sloppy working drops the carry out of the tens column at every addition -- it
keeps only the last two digits of the running total, like a two-digit register -- consistently
through the example (:func:`sloppy_totals`): ``47+6*10`` is ``"10:53,...,3:95,2:1,1:7 A=7"``
(true ``107``).

The sloppy and the correct working agree until the total first reaches 100 and differ from there on.
Because every result is below 200, a working reaches 100 at most once, and so does the sloppy one
(it runs 100 below the correct one). So a problem with ``s + a*b >= 100`` has exactly one decision
point -- at the crossing, write the hundreds digit or not -- and the rest follows; every such
context in the corpus is a coin with probability :data:`SLOPPY_PROB`. (Without the limit a sloppy
working wraps again and again, its later wraps look like a first crossing unless the model looks back
for the earlier one, and the measured coin varied from 0.1 to 0.8 with the running total: greedy
decoding then got a quarter of the crossing problems right.) A model that fits the corpus takes the
sloppy branch greedily. The builder trains the fork token on the coin's probabilities
(:func:`rlvr.tiny.build_cot.fork_loss`); even so the learnt coin varies by about 0.1 around 0.4 from
one context to another. Measured on the held-out set: the 39% of problems that never reach 100 are
all right greedily, and 13% of the others, so greedy accuracy is 0.468; a temperature-1.0 sample is
right 0.61 of the time and pass@8 is 0.92 (the ceiling is 0.93: 7% of the correct workings are longer
than 224 tokens). GRPO rewards the correct samples and flips that one decision, which all problems
share: ``recipes/tiny_cot_grpo.yaml`` reaches 0.922 in 10 steps.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from rlvr.tiny import task

MIN_S, MAX_S = 20, 99
MIN_A, MAX_A = 3, 9
MIN_B, MAX_B = 2, 44
#: Every answer ``s + a*b`` is below this, so a working crosses 100 at most once.
LIMIT = 200
NUM_PROBLEMS = 13_683
NUM_HELDOUT = 500
NUM_TRAIN_ROWS = 10_000
#: Fixed seed of the split and of the RL prompt file; deliberately not the build seed.
SPLIT_SEED = 20240917
#: Probability that a pre-training example is written sloppily (carry out of the tens column dropped).
SLOPPY_PROB = 0.6

#: ``(s, a, b)``: start, step, count.
Problem = tuple[int, int, int]

_PROMPT = re.compile(r"Q: (\d+)\+(\d+)\*(\d+)=")
_COMPLETION = re.compile(r"((?:\d+:\d+,)*\d+:\d+) A=(\d+)")
_NUMBER = re.compile(r"\d+")


def format_prompt(s: int, a: int, b: int) -> str:
    """The prompt text for ``s + a*b`` (exact format, relied on by recipes and tests)."""
    return f"Q: {s}+{a}*{b}="


def parse_prompt(prompt: str) -> Problem:
    """Inverse of :func:`format_prompt`."""
    m = _PROMPT.fullmatch(prompt)
    if m is None:
        raise ValueError(f"not a task prompt: {prompt!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def answer(s: int, a: int, b: int) -> str:
    """The correct answer text (no EOS): the ground truth of the data rows."""
    return str(s + a * b)


def correct_totals(s: int, a: int, b: int) -> list[int]:
    """Running totals of the correct working: ``s+a, s+2a, ..., s+b*a``."""
    return [s + k * a for k in range(1, b + 1)]


def sloppy_totals(s: int, a: int, b: int) -> list[int]:
    """Running totals of the sloppy working: every addition drops the carry out of the tens column.

    ``s`` has two digits and the sloppy total stays below 100, so each addition's result is kept
    modulo 100 (the carry into the hundreds is lost; leading zeros are not written, as in
    :func:`rlvr.tiny.task.carryless_sum`). Below :data:`LIMIT` that happens at most once.
    """
    totals, total = [], s
    for _ in range(b):
        total = (total + a) % 100
        totals.append(total)
    return totals


def format_completion(totals: Sequence[int]) -> str:
    """``"3:53,2:59,1:65 A=65"``: the running totals numbered by additions left, then the last total."""
    n = len(totals)
    working = ",".join(f"{n - i}:{t}" for i, t in enumerate(totals))
    return f"{working} A={totals[-1]}"


def completion(s: int, a: int, b: int) -> str:
    """The correct completion text (without EOS)."""
    return format_completion(correct_totals(s, a, b))


def parse_completion(text: str) -> tuple[list[int], int] | None:
    """``(running totals, answer)`` of a well-formed completion (surrounding whitespace allowed), else None.

    Well-formed means the documented shape with the counter running ``n, n-1, ..., 1``; whether the
    numbers are right is not checked here.
    """
    m = _COMPLETION.fullmatch(text.strip())
    if m is None:
        return None
    entries = [e.split(":") for e in m.group(1).split(",")]
    if [int(k) for k, _ in entries] != list(range(len(entries), 0, -1)):
        return None
    return [int(t) for _, t in entries], int(m.group(2))


def last_int(text: str) -> int | None:
    """The last number in a response (what ``exact_int`` with ``mode: last`` reads), None if there is none.

    The task's responses hold only digits, ``:``, ``,``, spaces and ``A=``, where this agrees with the
    verifier (its thousands-comma reading needs three digits after a comma; counters have at most two).
    """
    numbers = _NUMBER.findall(text)
    return int(numbers[-1]) if numbers else None


def needs_hundreds_carry(s: int, a: int, b: int) -> bool:
    """True iff the working reaches 100 (``s + a*b >= 100``): the sloppy answer is wrong exactly then."""
    return s + a * b >= 100


def valid(s: int, a: int, b: int) -> bool:
    """Whether ``(s, a, b)`` is a task problem: in range, answer below :data:`LIMIT`."""
    in_range = MIN_S <= s <= MAX_S and MIN_A <= a <= MAX_A and MIN_B <= b <= MAX_B
    return in_range and s + a * b < LIMIT


def all_problems() -> list[Problem]:
    """All 13,683 problems in a fixed order."""
    return [
        (s, a, b)
        for s in range(MIN_S, MAX_S + 1)
        for a in range(MIN_A, MAX_A + 1)
        for b in range(MIN_B, MAX_B + 1)
        if valid(s, a, b)
    ]


_COUNTS = range(MIN_B, MAX_B + 1)
_COUNT_WEIGHTS = [1.0 / b for b in _COUNTS]


def draw_problem(rng: random.Random) -> Problem:
    """One draw from the task distribution: ``b`` with probability ``~ 1/b``, then ``s`` and ``a`` uniform
    among the problems with that ``b`` (redrawn until the answer is below :data:`LIMIT`)."""
    b = rng.choices(_COUNTS, weights=_COUNT_WEIGHTS)[0]
    while True:
        s, a = rng.randint(MIN_S, MAX_S), rng.randint(MIN_A, MAX_A)
        if s + a * b < LIMIT:
            return s, a, b


def heldout_problems() -> list[Problem]:
    """The fixed held-out set: the first :data:`NUM_HELDOUT` distinct draws with :data:`SPLIT_SEED`."""
    rng = random.Random(SPLIT_SEED)
    heldout: dict[Problem, None] = {}
    while len(heldout) < NUM_HELDOUT:
        heldout.setdefault(draw_problem(rng))
    return list(heldout)


def draw_train(rng: random.Random, heldout: set[Problem]) -> Problem:
    """One draw from the task distribution restricted to training problems (held-out draws are redrawn)."""
    while True:
        problem = draw_problem(rng)
        if problem not in heldout:
            return problem


def noisy_completion(s: int, a: int, b: int, rng: random.Random, sloppy_prob: float = SLOPPY_PROB) -> str:
    """One draw of the pre-training completion: sloppy with probability ``sloppy_prob``, else correct."""
    totals = sloppy_totals(s, a, b) if rng.random() < sloppy_prob else correct_totals(s, a, b)
    return format_completion(totals)


def train_rows_problems(heldout: Iterable[Problem]) -> list[Problem]:
    """The RL prompt file's problems: :data:`NUM_TRAIN_ROWS` training draws (seed ``SPLIT_SEED + 1``)."""
    rng, excluded = random.Random(SPLIT_SEED + 1), set(heldout)
    return [draw_train(rng, excluded) for _ in range(NUM_TRAIN_ROWS)]


def rows(problems: Iterable[Problem]) -> list[dict[str, str]]:
    """jsonl rows ``{"prompt": "Q: 47+6*5=", "answer": "77"}`` (correct answers only)."""
    return [{"prompt": format_prompt(*p), "answer": answer(*p)} for p in problems]


def write_jsonl(path: str | Path, problems: Sequence[Problem]) -> None:
    """Write ``problems`` as jsonl rows to ``path``."""
    task.write_rows(path, rows(problems))


def write_data(data_dir: str | Path) -> list[Problem]:
    """Write ``train.jsonl`` (RL prompts) and ``heldout.jsonl`` (500 prompts) into ``data_dir``; returns
    the held-out problems."""
    heldout = heldout_problems()
    write_jsonl(Path(data_dir) / "train.jsonl", train_rows_problems(heldout))
    write_jsonl(Path(data_dir) / "heldout.jsonl", heldout)
    return heldout
