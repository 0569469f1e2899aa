"""Final-answer extraction shared by the rule verifiers.

Models state their final answer in a handful of conventions; a verifier that knows only one of them
scores correct answers as wrong and teaches the policy a format instead of a skill. A response's final
word is its answer: taking any earlier statement would reward listing candidates.

Anchors (:func:`find_answer`):

1. ``<answer>...</answer>`` (R1-Zero template), the last closed one; inside it a ``\\boxed{}`` or a
   stated answer wins over the raw content.
2. Otherwise the statement that comes **last in the text** among: a complete ``\\boxed{...}`` /
   ``\\fbox{...}`` (outermost; an unclosed box, cut-off text, is skipped), GSM8K's ``#### X`` (a "The
   answer is X" inside the tail gives X) and "The (final) answer is X" / "Final Answer: X" /
   "Answer: X" and their forms in a few other languages ("La respuesta es X", "答案是 X", ...). So a
   response that rejects a value and then states another is graded on the one it ends with. A stated
   "answer" that is only words ("the answer is correct") yields to any other anchor.

Every scan here is linear in the response length: a policy can write megabytes of unclosed boxes, and
one sample must never cost more than its share of the verifier's deadline.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

__all__ = [
    "Answer",
    "answer_is",
    "answer_tag",
    "boxed_all",
    "clean_inline",
    "cut_continuation",
    "final_answer",
    "find_answer",
    "gsm8k_hashes",
    "last_boxed",
    "strip_thinking",
]

# One token per match: a box opening, an escaped character (``\{``, ``\}``, ``\\`` are not grouping) or
# a brace. Scanned once, left to right, with a stack: linear however the braces nest or fail to close.
_BRACE_TOKENS = re.compile(r"\\(?:boxed|fbox)\s*\{|\\.|[{}]", re.DOTALL)
_TAG = re.compile(r"<(/?)answer>", re.IGNORECASE)
_HASHES = re.compile(r"####[ \t]*([^\n]+)")
# "The (final) answer is X" / "Final Answer: X" / "Answer: X" at a line start, and the same statement
# in other languages. X runs to the end of its sentence (a period followed by white space, a line
# break, "。") or to the next such phrase, so "is 42. Let me check" gives "42" and "is 3.5." gives "3.5".
_PHRASES = (
    r"answer\s+is",
    r"final\s+answer\s*(?:is|:)",
    r"^[ \t]*[*#]*[ \t]*answer[ \t]*[*]*[ \t]*:",
    r"respuesta\s+(?:final\s+)?es",
    r"r[ée]ponse\s+(?:finale\s+)?est",
    r"antwort\s+(?:lautet|ist)",
    r"risposta\s+(?:finale\s+)?[èe]",
    r"resposta\s+(?:final\s+)?[ée]",
    r"答案(?:是|为|為|[:：])",
    r"ответ\s*(?:[:：—-]|равен)",
)
_PHRASE = re.compile(r"(?:" + "|".join(_PHRASES) + r")[ \t]*[:：]?[ \t]*", re.IGNORECASE | re.MULTILINE)
_SENTENCE_END = re.compile(r"\n|\.(?=\s)|。")
# A new turn or a new exercise after the answer: the model kept writing past its own answer.
_CONTINUATION = re.compile(
    r"^[ \t]*(?:#+[ \t]*)?(?:Question|Problem|Exercise|Q|Human|User|Instruction)[ \t]*\d*[ \t]*[:：]"
    r"|<\|(?:im_start|endoftext|user|eot_id|start_header_id)\|>",
    re.IGNORECASE | re.MULTILINE,
)
_WORDS_ONLY = re.compile(r"[A-Za-z][A-Za-z ,'’-]*")
_MATH_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class Answer:
    """What :func:`find_answer` read: the answer text (None: no anchor), its anchor (``source``:
    "answer_tag", "boxed", "hashes", "answer_is") and every outermost complete box of the text it came
    from (for hedging checks)."""

    text: str | None
    source: str | None
    boxes: tuple[str, ...] = ()


def _boxes(text: str) -> list[tuple[int, str]]:
    """``(start, content)`` of every complete, outermost ``\\boxed{}``/``\\fbox{}``, in order; one pass."""
    out: list[tuple[int, str]] = []
    stack: list[tuple[int, int]] = []  # (content start, box start) for a box, (-1, -1) for a plain brace
    open_boxes = 0
    for match in _BRACE_TOKENS.finditer(text):
        token = match.group()
        if token == "{":
            stack.append((-1, -1))
        elif token == "}":
            if not stack:
                continue
            content_start, box_start = stack.pop()
            if content_start >= 0:
                open_boxes -= 1
                if open_boxes == 0:
                    out.append((box_start, text[content_start : match.start()]))
        elif token[1] in "bf" and token.endswith("{"):
            stack.append((match.end(), match.start()))
            open_boxes += 1
    return out


def boxed_all(text: str) -> list[str]:
    """Contents of every complete, outermost ``\\boxed{}``/``\\fbox{}``, in order (nested boxes are
    inside their parent's content)."""
    return [content for _, content in _boxes(text)]


def last_boxed(text: str) -> str | None:
    """Content of the last complete box; an empty ``\\boxed{}`` counts as no answer."""
    boxes = _boxes(text)
    return (boxes[-1][1].strip() or None) if boxes else None


def _tags(text: str) -> list[tuple[int, str]]:
    """``(start, content)`` of every closed ``<answer>`` tag (a close pairs with the latest open)."""
    out, opened = [], None
    for match in _TAG.finditer(text):
        if not match.group(1):
            opened = match
        elif opened is not None:
            out.append((opened.start(), text[opened.end() : match.start()]))
            opened = None
    return out


def answer_tag(text: str) -> str | None:
    """Content of the last closed ``<answer>`` tag, stripped; None if there is none or it is empty."""
    tags = _tags(text)
    return (tags[-1][1].strip() or None) if tags else None


def gsm8k_hashes(text: str) -> str | None:
    """What follows the last ``####`` on its line (GSM8K's answer marker); "#### The answer is 42" gives 42."""
    matches = _HASHES.findall(text)
    if not matches:
        return None
    tail = matches[-1]
    return answer_is(tail) or clean_inline(tail) or None


def _stated(text: str) -> list[tuple[int, str, bool]]:
    """``(start, answer, wordy)`` of every stated answer; a box inside the statement is its answer.

    Linear: the sentence ends and the phrases are found in one pass each, and each statement's text
    runs only to the next end or phrase, so the statements never overlap."""
    phrases = list(_PHRASE.finditer(text))
    if not phrases:
        return []
    ends = [m.start() for m in _SENTENCE_END.finditer(text)]
    out = []
    for i, match in enumerate(phrases):
        stop = min(ends[k] if (k := bisect.bisect_left(ends, match.end())) < len(ends) else len(text),
                   phrases[i + 1].start() if i + 1 < len(phrases) else len(text))
        said = text[match.end() : stop]
        inner = last_boxed(said)
        answer = inner if inner else clean_inline(said)
        if answer:
            out.append((match.start(), answer, inner is None and _is_wordy(answer)))
    return out


def _is_wordy(answer: str) -> bool:
    """"correct", "as follows", "shown below": prose, not an answer (one letter, e.g. "B", is an answer)."""
    return len(answer) > 1 and _WORDS_ONLY.fullmatch(answer) is not None


def answer_is(text: str) -> str | None:
    """The last "The (final) answer is X" / "Final Answer: X" / "Answer: X" (any supported language),
    cleaned; prose ("the answer is correct") only when nothing else is stated."""
    stated = _stated(text)
    for _, answer, wordy in reversed(stated):
        if not wordy:
            return answer
    return stated[-1][1] if stated else None


def clean_inline(text: str) -> str:
    """Strip a trailing period, markdown bold and one pair of math delimiters."""
    text = text.strip().rstrip(".").strip().strip("*").strip()
    for left, right in _MATH_DELIMS:
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            text = text[len(left) : -len(right)].strip()
            break
    return text.rstrip(".").strip()


def strip_thinking(text: str) -> str | None:
    """The text after the last ``</think>``; the text itself without a think section; None when a
    ``<think>`` is never closed (the response is all thinking, it has not answered)."""
    close = text.rfind(_THINK_CLOSE)
    if close >= 0:
        return text[close + len(_THINK_CLOSE) :]
    return None if _THINK_OPEN in text else text


def cut_continuation(text: str) -> str:
    """``text`` up to the first new question or chat turn that follows an answer: a model that answers
    and then goes on to invent "Question: ..." and answer it must be graded on its own answer."""
    first = _first_anchor(text)
    if first is None:
        return text
    match = _CONTINUATION.search(text, first)
    return text[: match.start()] if match else text


def _first_anchor(text: str) -> int | None:
    starts = [m.start() for m in (_TAG.search(text), _HASHES.search(text), _PHRASE.search(text)) if m]
    box = re.search(r"\\(?:boxed|fbox)\s*\{", text)
    if box:
        starts.append(box.start())
    return min(starts) if starts else None


def find_answer(text: str) -> Answer:
    """The final answer by the anchors in the module docstring."""
    tags = _tags(text)
    if tags:
        inner = tags[-1][1]
        boxes = tuple(boxed_all(inner))
        answer = (boxes[-1].strip() if boxes else None) or answer_is(inner) or clean_inline(inner) or None
        return Answer(answer, "answer_tag", boxes)
    boxes = _boxes(text)
    candidates: list[tuple[int, str, str]] = [(start, content.strip(), "boxed") for start, content in boxes]
    hashes = list(_HASHES.finditer(text))
    if hashes:
        tail = gsm8k_hashes(hashes[-1].group())
        if tail:
            candidates.append((hashes[-1].start(), tail, "hashes"))
    stated = _stated(text)
    candidates += [(start, answer, "answer_is") for start, answer, wordy in stated if not wordy]
    candidates = [c for c in candidates if c[1]]
    if not candidates and stated:
        start, answer, _ = stated[-1]
        candidates = [(start, answer, "answer_is")]
    if not candidates:
        return Answer(None, None, tuple(content for _, content in boxes))
    _, answer, source = max(candidates, key=lambda c: c[0])
    return Answer(answer, source, tuple(content for _, content in boxes))


def final_answer(text: str) -> tuple[str | None, str | None]:
    """``(answer, source)`` of :func:`find_answer`; ``(None, None)`` if no anchor is found."""
    found = find_answer(text)
    return found.text, found.source
