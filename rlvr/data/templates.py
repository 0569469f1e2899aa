"""Prompt templates: how a data row's question becomes the text the policy continues.

Zero-RL trains a *base* model with a fixed template and no chat tuning, so the template is part of
the recipe. ``raw`` passes the prompt through (the tiny arithmetic task); ``zero`` is an
R1-Zero-style think/answer template; ``simple`` and ``qwen_boxed`` are SimpleRL-Zoo's two templates
(arXiv 2503.18892: "simple" for weak instruction followers, "qwen_boxed" for Qwen models); ``chat``
applies the tokenizer's own chat template (messages or a single user turn). ``data.instruction``, when set,
is appended to the question first, whatever the template.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Prompt = str | list[dict[str, str]]

_ZERO = (
    "A conversation between a User and an Assistant. The User asks a question and the Assistant "
    "solves it. The Assistant first reasons step by step inside <think> </think> tags, then gives "
    "the final answer inside <answer> </answer> tags.\nUser: {question}\nAssistant: <think>"
)
_SIMPLE = "Question:\n{question}\nAnswer:\nLet's think step by step.\n"
_BOXED_SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{{}}."


def _text(prompt: Prompt, template: str) -> str:
    if not isinstance(prompt, str):
        raise ValueError(f"template {template!r} needs a text prompt, got chat messages")
    return prompt


def _chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("the tokenizer has no chat template; use a text template (raw, zero, simple)")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _raw(prompt: Prompt, tokenizer: Any) -> str:
    return _text(prompt, "raw")


def _zero(prompt: Prompt, tokenizer: Any) -> str:
    return _ZERO.format(question=_text(prompt, "zero"))


def _simple(prompt: Prompt, tokenizer: Any) -> str:
    return _SIMPLE.format(question=_text(prompt, "simple"))


def _qwen_boxed(prompt: Prompt, tokenizer: Any) -> str:
    question = _text(prompt, "qwen_boxed")
    return _chat(tokenizer, [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": question + _BOXED_SUFFIX.format()},
    ])


def _chat_template(prompt: Prompt, tokenizer: Any) -> str:
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    return _chat(tokenizer, messages)


TEMPLATES: dict[str, Callable[[Prompt, Any], str]] = {
    "raw": _raw,
    "zero": _zero,
    "simple": _simple,
    "qwen_boxed": _qwen_boxed,
    "chat": _chat_template,
}


def apply_template(name: str, prompt: Prompt, tokenizer: Any, instruction: str | None = None) -> str:
    """The text the policy continues: ``prompt`` with ``instruction`` appended to the question (to the last
    user turn of chat messages), then through template ``name``."""
    try:
        fn = TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown template {name!r}; valid: {', '.join(TEMPLATES)}") from None
    return fn(_with_instruction(prompt, instruction) if instruction else prompt, tokenizer)


def _with_instruction(prompt: Prompt, instruction: str) -> Prompt:
    if isinstance(prompt, str):
        return prompt + instruction
    messages = [dict(m) for m in prompt]
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last_user is None:
        raise ValueError("data.instruction needs a user turn to append to; these messages have none")
    messages[last_user]["content"] = messages[last_user]["content"] + instruction
    return messages
