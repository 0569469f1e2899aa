"""Final-answer extraction shared by the rule verifiers.

Models state their final answer in a handful of conventions; a verifier that knows only one of them
scores correct answers as wrong and teaches the policy a format instead of a skill. Every function here
returns the LAST occurrence of its convention: a response's final word is its answer, and taking any
earlier match would reward listing candidates.

Anchors, strongest first (:func:`final_answer` tries them in this order):

1. ``<answer>...</answer>`` (R1-Zero template); a ``\\boxed{}`` inside it wins over the raw content.
2. ``\\boxed{...}`` / ``\\fbox{...}`` with balanced braces; an unclosed box (cut-off text) is skipped.
3. GSM8K's ``#### 42``.
4. "Final Answer: X", "The final answer is X", "The answer is X" (up to the end of the sentence).
"""

from __future__ import annotations

import re

__all__ = [
    "answer_is",
    "answer_tag",
    "balanced",
    "boxed_all",
    "clean_inline",
    "final_answer",
    "gsm8k_hashes",
    "last_boxed",
]

_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_HASHES = re.compile(r"####\s*([^\n]+)")
# "The (final) answer is X" / "Final Answer: X": X runs to the end of its sentence (a period followed by
# a space or the end of the line), so "is 42. Let me check" gives "42" while "is 3.5." gives "3.5".
_ANSWER_IS = re.compile(
    r"(?:answer\s+is|final\s+answer\s*:|^\s*\**answer\**\s*:)\s*:?\**[ \t]*([^\n]*?)(?=\.?[ \t]*$|\.\s)",
    re.IGNORECASE | re.MULTILINE,
)
_MATH_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def balanced(text: str, start: int) -> str | None:
    """Text from ``start`` up to the brace closing the one just before it; None if never closed.

    ``\\{`` and ``\\}`` are literal braces (sets), not grouping.
    """
    depth, i = 1, start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return text[start:i]
        i += 1
    return None


def boxed_all(text: str) -> list[str]:
    """Contents of every complete ``\\boxed{}``/``\\fbox{}``, in order (nested boxes are inside their parent)."""
    out, pos = [], 0
    while match := _BOX_OPEN.search(text, pos):
        content = balanced(text, match.end())
        if content is None:
            pos = match.end()
            continue
        out.append(content)
        pos = match.end() + len(content) + 1
    return out


def last_boxed(text: str) -> str | None:
    """Content of the last complete box; an empty ``\\boxed{}`` counts as no answer."""
    boxes = [b.strip() for b in boxed_all(text)]
    return boxes[-1] if boxes and boxes[-1] else None


def answer_tag(text: str) -> str | None:
    """Content of the last closed ``<answer>`` tag, stripped; None if there is none or it is empty."""
    matches = _ANSWER_TAG.findall(text)
    return matches[-1].strip() or None if matches else None


def gsm8k_hashes(text: str) -> str | None:
    """What follows the last ``####`` on its line (GSM8K's answer marker)."""
    matches = _HASHES.findall(text)
    return clean_inline(matches[-1]) or None if matches else None


def answer_is(text: str) -> str | None:
    """The last "The (final) answer is X" / "Final Answer: X" / "Answer: X", cleaned."""
    for match in reversed(_ANSWER_IS.findall(text)):
        inner = last_boxed(match)
        answer = inner if inner else clean_inline(match)
        if answer:
            return answer
    return None


def clean_inline(text: str) -> str:
    """Strip a trailing period, markdown bold and one pair of math delimiters."""
    text = text.strip().rstrip(".").strip().strip("*").strip()
    for left, right in _MATH_DELIMS:
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            text = text[len(left) : -len(right)].strip()
            break
    return text.rstrip(".").strip()


def final_answer(text: str) -> tuple[str | None, str | None]:
    """``(answer, source)`` by the anchors in the module docstring; ``(None, None)`` if none is found.

    ``source`` is "answer_tag", "boxed", "hashes" or "answer_is".
    """
    tagged = answer_tag(text)
    if tagged is not None:
        return last_boxed(tagged) or clean_inline(tagged) or None, "answer_tag"
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed, "boxed"
    hashes = gsm8k_hashes(text)
    if hashes is not None:
        return hashes, "hashes"
    stated = answer_is(text)
    if stated is not None:
        return stated, "answer_is"
    return None, None
