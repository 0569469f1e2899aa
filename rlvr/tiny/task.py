"""The tiny model's task: 2-digit addition, its fixed split, and the noisy pre-training distribution.

Task
----
Prompt ``"Q: {a}+{b}="`` with ``a, b`` in ``0..99`` (no padding, no spaces around ``+``); the
completion is the decimal sum followed by EOS, e.g. ``"Q: 57+68="`` -> ``"125"`` + ``<|endoftext|>``.

Split
-----
The 10,000 ordered pairs are split once, with a fixed seed (:data:`SPLIT_SEED`, independent of the
build seed so every build and every recipe sees the same split): 500 held-out pairs that are never
shown in pre-training nor used as RL training prompts, and 9,500 training pairs.

Why the pre-training corpus is deliberately noisy
-------------------------------------------------
For RL with verifiable rewards to have something to do, the base model must *sometimes* produce the
right answer (so GRPO sees rewarded samples) but must not already prefer it. We get exactly that by
imitating a realistic systematic error, "forgetting the carry":

* :func:`carryless_sum` adds column by column and keeps only ``(a_i + b_i) mod 10`` in each decimal
  column, dropping every carry; the result is written as a normal integer (leading zeros dropped).
  Examples: ``57+68`` -> ``15`` (true ``125``); ``18+5`` -> ``13`` (true ``23``); ``95+5`` -> ``90``
  (true ``100``); ``50+50`` -> ``0`` (true ``100``).
* A problem *needs a carry* iff some column's digit sum is ``>= 10`` -- equivalently iff the carry-less
  sum differs from the true sum. 6,975 of the 10,000 pairs (69.75%) need a carry.
* Every time a pre-training example is drawn, a carry problem is labelled with the carry-less answer
  with probability :data:`CARRY_ERROR_PROB` (fresh coin per draw, so the model learns probabilities
  rather than one fixed label per pair) and with the true sum otherwise. No-carry problems are always
  labelled correctly.

A model that fits this distribution answers no-carry problems correctly, but on carry problems its
most likely answer is the carry-less mistake: the two answers first differ at a single token, where
the mistake has probability ~0.62, so greedy decoding picks it. Greedy accuracy is therefore about
the no-carry fraction (~30%), while a temperature-1.0 sample is right ~38% of the time on carry
problems, so pass@8 is about ``0.30 + 0.70 * (1 - 0.62**8)`` ~ 98%. GRPO rewards the correct samples
and flips the mode, so greedy accuracy can rise by well over 30 points.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

MAX_OPERAND = 99
NUM_PAIRS = (MAX_OPERAND + 1) ** 2  # 10,000
NUM_HELDOUT = 500
#: Fixed seed of the train/held-out split; deliberately not the build seed.
SPLIT_SEED = 20240611
#: Probability that a carry problem is shown with its carry-less answer in the pre-training corpus.
CARRY_ERROR_PROB = 0.62

Pair = tuple[int, int]


def format_prompt(a: int, b: int) -> str:
    """The prompt text for ``a + b`` (exact format, relied on by verifiers and recipes)."""
    return f"Q: {a}+{b}="


def answer(a: int, b: int) -> str:
    """The correct answer text (decimal sum, no EOS)."""
    return str(a + b)


def carryless_sum(a: int, b: int) -> int:
    """Column-wise sum with every carry dropped: each decimal digit is ``(a_i + b_i) mod 10``."""
    result, place = 0, 1
    while a or b:
        result += ((a % 10 + b % 10) % 10) * place
        a, b, place = a // 10, b // 10, place * 10
    return result


def needs_carry(a: int, b: int) -> bool:
    """True iff adding ``a`` and ``b`` produces at least one carry (carry-less sum != true sum)."""
    return carryless_sum(a, b) != a + b


def all_pairs() -> list[Pair]:
    """All 10,000 ordered pairs in a fixed order."""
    return [(a, b) for a in range(MAX_OPERAND + 1) for b in range(MAX_OPERAND + 1)]


def split_pairs() -> tuple[list[Pair], list[Pair]]:
    """The fixed ``(train, heldout)`` split: 9,500 and 500 pairs, each sorted, disjoint."""
    pairs = all_pairs()
    heldout = set(random.Random(SPLIT_SEED).sample(pairs, NUM_HELDOUT))
    train = [p for p in pairs if p not in heldout]
    return train, sorted(heldout)


def noisy_answer(a: int, b: int, rng: random.Random, error_prob: float = CARRY_ERROR_PROB) -> str:
    """One draw of the pre-training label: carry problems get the carry-less answer w.p. ``error_prob``."""
    if needs_carry(a, b) and rng.random() < error_prob:
        return str(carryless_sum(a, b))
    return answer(a, b)


def rows(pairs: Iterable[Pair]) -> list[dict[str, str]]:
    """jsonl rows ``{"prompt": "Q: 23+45=", "answer": "68"}`` (correct answers only)."""
    return [{"prompt": format_prompt(a, b), "answer": answer(a, b)} for a, b in pairs]


def write_rows(path: str | Path, rows: Iterable[dict[str, str]]) -> None:
    """Write jsonl ``rows`` to ``path`` (parent directories are created); both tiny tasks' data files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def write_jsonl(path: str | Path, pairs: Sequence[Pair]) -> None:
    """Write ``pairs`` as jsonl rows to ``path``."""
    write_rows(path, rows(pairs))


def write_data(data_dir: str | Path) -> tuple[list[Pair], list[Pair]]:
    """Write ``train.jsonl`` (9,500 pairs) and ``heldout.jsonl`` (500 pairs) into ``data_dir``."""
    train, heldout = split_pairs()
    write_jsonl(Path(data_dir) / "train.jsonl", train)
    write_jsonl(Path(data_dir) / "heldout.jsonl", heldout)
    return train, heldout


def parse_prompt(prompt: str) -> Pair:
    """Inverse of :func:`format_prompt`."""
    if not (prompt.startswith("Q: ") and prompt.endswith("=")):
        raise ValueError(f"not a task prompt: {prompt!r}")
    a, b = prompt[3:-1].split("+")
    return int(a), int(b)
