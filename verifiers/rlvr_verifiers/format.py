"""Output-format checks: does the response follow the template the prompt asked for?

A format term is how R1-Zero-style recipes teach ``<think>...</think><answer>...</answer>``. It must be
strict about structure (each tag once, in order, nothing after the answer) or the policy learns to
sprinkle tags; it says nothing about correctness, which is another term's job.
"""

from __future__ import annotations

import re

from rlvr.verify.base import VerifyResult, VerifySample

__all__ = ["FormatVerifier"]

_TEMPLATES = {
    # DeepSeek-R1-Zero: reasoning in <think>, final answer in <answer>, nothing around them.
    "think_answer": r"\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*",
    # Same, for prompts that already end with "<think>" (rlvr's ``zero`` template): the response starts
    # inside the reasoning, so a second opening tag is a repeat.
    "think_answer_prefilled": r"(?P<think>(?:(?!<think>).)*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*",
    # A final \boxed{...} somewhere in the response.
    "boxed": r".*\\boxed\{(?P<answer>.+)\}.*",
}
_TAG = re.compile(r"</?(?:think|answer)>")


class FormatVerifier:
    """``reward_ok`` when the whole response matches the template, else ``reward_bad``.

    Args:
        template: "think_answer" (default), "think_answer_prefilled", "boxed", or ignored when
            ``pattern`` is given.
        pattern: a custom regular expression the whole response must match (DOTALL).
        require_nonempty: named groups (``think``, ``answer``) that must hold non-blank text.
        reward_ok, reward_bad: the two scores.

    For the think/answer templates each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` may
    appear at most once (so nested or repeated tags fail). A truncated response fails.

    details: ``reason`` ("ok", "no_match", "repeated_tags", "empty_<group>", "truncated").
    """

    name = "format"

    def __init__(
        self,
        template: str = "think_answer",
        pattern: str | None = None,
        require_nonempty: tuple[str, ...] | list[str] = ("answer",),
        reward_ok: float = 1.0,
        reward_bad: float = 0.0,
    ) -> None:
        if pattern is None and template not in _TEMPLATES:
            valid = sorted(_TEMPLATES)
            raise ValueError(f"unknown format template {template!r}; choose one of {valid} or give pattern")
        self.template = "custom" if pattern is not None else template
        self.regex = re.compile(pattern if pattern is not None else _TEMPLATES[template], re.DOTALL)
        unknown = set(require_nonempty) - set(self.regex.groupindex)
        if unknown:
            raise ValueError(f"require_nonempty names groups the pattern lacks: {sorted(unknown)}")
        self.require_nonempty = tuple(require_nonempty)
        self.reward_ok = float(reward_ok)
        self.reward_bad = float(reward_bad)

    def score(self, sample: VerifySample) -> VerifyResult:
        reason = self._check(sample)
        ok = reason == "ok"
        score = self.reward_ok if ok else self.reward_bad
        return VerifyResult(score, ok, {"reason": reason, "template": self.template})

    def _check(self, sample: VerifySample) -> str:
        if sample.finish_reason == "length":
            return "truncated"
        text = sample.response
        if self.template.startswith("think_answer"):
            tags = _TAG.findall(text)
            if len(tags) != len(set(tags)):
                return "repeated_tags"
        match = self.regex.fullmatch(text)
        if match is None:
            return "no_match"
        for group in self.require_nonempty:
            if not (match.group(group) or "").strip():
                return f"empty_{group}"
        return "ok"
