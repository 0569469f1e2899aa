"""Prompt data: Hugging Face `datasets` from local jsonl/json/parquet files or hub ids, templated
and tokenised once, then served in seeded, shuffled epochs."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from rlvr.config.schema import DataConfig, DataSource
from rlvr.data.templates import apply_template


@dataclass(frozen=True)
class PromptRow:
    text: str  # templated prompt
    token_ids: list[int]
    answer: str
    verifier: str | None  # per-row verifier name, None: the recipe default
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


def load_source(src: DataSource) -> Any:
    """A `datasets.Dataset` for one source."""
    import datasets

    if src.path is not None:
        kind = "parquet" if src.path.endswith(".parquet") else "json"
        return datasets.load_dataset(kind, data_files=src.path, split="train")
    return datasets.load_dataset(src.hub, src.subset, data_files=src.data_files, split=src.split)


def _field(rec: dict[str, Any], key: str) -> Any:
    """``rec[key]``, where a dotted key reaches into nested columns (``reward_model.ground_truth``)."""
    if key in rec:
        return rec[key]
    value: Any = rec
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(key)
        value = value[part]
    return value


def build_rows(src: DataSource, cfg: DataConfig, tokenizer: Any) -> tuple[list[PromptRow], int]:
    """Templated, tokenised rows of one source and the number dropped as too long."""
    ds = load_source(src)
    prompt_key, answer_key = src.prompt_key or cfg.prompt_key, src.answer_key or cfg.answer_key
    wanted = [prompt_key, answer_key]
    missing = [k for k in wanted if k not in ds.column_names and k.split(".")[0] not in ds.column_names]
    if missing:
        raise ValueError(
            f"data source {src.label!r}: column(s) {missing} not found (set data.prompt_key / "
            f"data.answer_key, or the source's own prompt_key / answer_key); columns present: {ds.column_names}"
        )
    rows, dropped = [], 0
    for i, rec in enumerate(ds):
        try:
            prompt, answer = _field(rec, prompt_key), _field(rec, answer_key)
        except KeyError as err:
            raise ValueError(f"data source {src.label!r}, row {i}: no field {err.args[0]!r}") from None
        text = apply_template(cfg.template, prompt, tokenizer)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > cfg.max_prompt_tokens:
            dropped += 1
            continue
        verifier = rec.get(cfg.verifier_key) if cfg.verifier_key else None
        meta = {k: v for k, v in rec.items() if k not in (prompt_key, answer_key)}
        meta.setdefault("question", _raw_question(prompt))  # untemplated, for model judges
        rows.append(PromptRow(text, ids, str(answer), verifier, src.label, {"row": i, **meta}))
    if not rows:
        raise ValueError(
            f"data source {src.label!r}: no usable rows ({dropped} longer than data.max_prompt_tokens="
            f"{cfg.max_prompt_tokens})"
        )
    return rows, dropped


class PromptSampler:
    """Endless, seeded epochs over the training rows (reshuffled each epoch when asked)."""

    def __init__(self, rows: list[PromptRow], shuffle: bool, seed: int) -> None:
        self.rows, self.shuffle = rows, shuffle
        self.rng = random.Random(seed)
        self.epoch, self._order, self._pos = 0, list(range(len(rows))), len(rows)

    def next_batch(self, k: int) -> list[PromptRow]:
        out = []
        while len(out) < k:
            if self._pos >= len(self._order):
                if self.shuffle:
                    self.rng.shuffle(self._order)
                self._pos = 0
                self.epoch += 1
            out.append(self.rows[self._order[self._pos]])
            self._pos += 1
        return out


def _raw_question(prompt: Any) -> str:
    """The prompt before templating: the text itself, or the last user turn of chat messages."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            return users[-1]
    return str(prompt)
