"""Prompt data: local JSON-lines / JSON / parquet files or Hugging Face hub datasets, checked row by row
(bad rows dropped and counted, or rejected), templated and tokenised once, then served in seeded,
shuffled epochs."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rlvr.config.schema import DataConfig, DataSource, RecipeConfig
from rlvr.data.templates import apply_template


@dataclass(frozen=True)
class PromptRow:
    text: str  # templated prompt
    token_ids: list[int]
    answer: str
    verifier: str | None  # per-row verifier name, None: the recipe default
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


class DataError(ValueError):
    """Data that cannot be used: unreadable, a column missing everywhere, no usable row, or a bad row under
    ``data.bad_rows: error``. The message names the source, the row and the reason."""


BAD_ROW_REASONS = {
    "invalid_json": "not a JSON object",
    "missing_prompt": "no prompt field",
    "missing_answer": "no answer field",
    "empty_prompt": "empty prompt",
    "empty_answer": "empty answer",
    "bad_prompt": "prompt neither text nor chat messages",
    "bad_template": "prompt the template cannot render",
    "unknown_verifier": "unknown verifier",
    "too_long": "prompt longer than data.max_prompt_tokens",
}
"""Why a row is dropped (or, with ``data.bad_rows: error``, rejected); keys are the counters' names."""


@dataclass
class RowReport:
    """What `build_rows` kept and dropped, by reason, with the first offending row of each reason."""

    source: str
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)  # reason -> "row 12: ..."

    def drop(self, reason: str, where: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        self.first.setdefault(reason, where)

    def describe(self) -> str:
        """``"950 prompts (dropped: prompt longer than ...: 30 (first: row 7: 600 tokens); ...)"``."""
        if not self.dropped:
            return f"{self.kept} prompts"
        parts = [f"{BAD_ROW_REASONS[r]}: {n} (first: {self.first[r]})" for r, n in sorted(self.dropped.items())]
        return f"{self.kept} prompts (dropped: {'; '.join(parts)})"


def read_records(src: DataSource) -> Iterator[tuple[int, Any]]:
    """``(row number, record)`` of one source. Local JSON lines are read line by line, so one bad line is
    one bad row (and mixed column types are fine); parquet files and hub datasets go through `datasets`."""
    if src.path is not None and not src.path.endswith(".parquet"):
        yield from _read_json(src.path)
        return
    import datasets

    try:
        if src.path is not None:
            ds = datasets.load_dataset("parquet", data_files=src.path, split="train")
        else:
            ds = datasets.load_dataset(src.hub, src.subset, data_files=src.data_files, split=src.split)
    except Exception as err:  # datasets' own errors name the file deep inside a traceback
        raise DataError(f"data source {src.label!r}: cannot load it: {type(err).__name__}: {err}") from None
    yield from enumerate(ds)


def _read_json(path: str) -> Iterator[tuple[int, Any]]:
    """A JSON-lines file, or one JSON array of objects; a line that is not JSON yields ``_INVALID``."""
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as f:  # "\r" alone is no line end
            text = f.read()
    except OSError as err:
        raise DataError(f"data file {path}: cannot read it: {err}") from None
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"data file {path}: not valid JSON ({err})") from None
        yield from enumerate(records if isinstance(records, list) else [records])
        return
    for i, line in enumerate(text.split("\n")):  # JSON lines end at "\n" only (not at U+2028 and kin)
        if not line.strip():
            continue
        try:
            yield i, json.loads(line)
        except json.JSONDecodeError:
            yield i, _INVALID


_INVALID = object()  # a line that is not JSON
_MISSING = object()


def _field(rec: dict[str, Any], key: str) -> Any:
    """``rec[key]``, where a dotted key reaches into nested columns (``reward_model.ground_truth``);
    `_MISSING` when absent."""
    if key in rec:
        return rec[key]
    value: Any = rec
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _empty(value: Any) -> bool:
    """None, blank text, or an empty list/dict."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, list | dict) and not value)


def _is_messages(prompt: Any) -> bool:
    return isinstance(prompt, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in prompt)


def build_rows(
    src: DataSource, cfg: DataConfig, tokenizer: Any, check_verifier: Callable[[str], str | None] | None = None,
) -> tuple[list[PromptRow], RowReport]:
    """Templated, tokenised rows of one source, and what was dropped and why.

    Bad rows (see `BAD_ROW_REASONS`) are dropped and counted, or with ``data.bad_rows: error`` stop the run
    at the first one. ``check_verifier(name)`` says what is wrong with a row's verifier name (None: fine).
    A prompt or answer column absent from every row, or a source left with no row, is a `DataError` either
    way: that is a recipe/data mismatch, not a few bad rows.
    """
    prompt_key, answer_key = src.prompt_key or cfg.prompt_key, src.answer_key or cfg.answer_key
    records = list(read_records(src))
    columns = {k for _, rec in records if isinstance(rec, dict) for k in rec}
    absent = [k for k in (prompt_key, answer_key) if k not in columns and k.split(".")[0] not in columns]
    if absent:
        raise DataError(
            f"data source {src.label!r}: column(s) {absent} not found (set data.prompt_key / data.answer_key, "
            f"or the source's own prompt_key / answer_key); columns present: {sorted(columns)}")
    report, rows = RowReport(src.label), []
    strict = cfg.bad_rows == "error"

    def bad(reason: str, i: int, detail: str = "") -> None:
        where = f"row {i}{': ' + detail if detail else ''}"
        if strict:
            raise DataError(f"data source {src.label!r}, {where} ({BAD_ROW_REASONS[reason]}); "
                            "data.bad_rows is error: fix the row, or set data.bad_rows=drop to skip such rows")
        report.drop(reason, where)

    verdicts: dict[str, str | None] = {}
    for i, rec in records:
        if not isinstance(rec, dict):
            bad("invalid_json", i)
            continue
        prompt, answer = _field(rec, prompt_key), _field(rec, answer_key)
        if prompt is _MISSING or answer is _MISSING:
            bad("missing_prompt" if prompt is _MISSING else "missing_answer", i,
                f"no field {prompt_key if prompt is _MISSING else answer_key!r}")
            continue
        if _empty(prompt):
            bad("empty_prompt", i)
            continue
        if not isinstance(prompt, str) and not _is_messages(prompt):
            bad("bad_prompt", i, f"{type(prompt).__name__}")
            continue
        if _empty(answer):
            bad("empty_answer", i)
            continue
        verifier = rec.get(cfg.verifier_key) if cfg.verifier_key else None
        if verifier is not None:
            if not isinstance(verifier, str):
                bad("unknown_verifier", i, f"{verifier!r} is not a name")
                continue
            if check_verifier is not None:
                if verifier not in verdicts:
                    verdicts[verifier] = check_verifier(verifier)
                if verdicts[verifier]:
                    bad("unknown_verifier", i, str(verdicts[verifier]))
                    continue
        try:
            text = apply_template(cfg.template, prompt, tokenizer, cfg.instruction)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        except Exception as err:  # a chat template rejecting these messages, say
            bad("bad_template", i, f"{type(err).__name__}: {str(err)[:200]}")
            continue
        if len(ids) > cfg.max_prompt_tokens:
            bad("too_long", i, f"{len(ids)} tokens")
            continue
        meta = {k: v for k, v in rec.items() if k not in (prompt_key, answer_key)}
        meta.setdefault("question", _raw_question(prompt))  # untemplated, for model judges
        rows.append(PromptRow(text, ids, str(answer), verifier, src.label, {"row": i, **meta}))
    report.kept = len(rows)
    if not rows:
        raise DataError(f"data source {src.label!r}: no usable rows: {report.describe()}")
    return rows, report


def read_recipe_data(
    cfg: RecipeConfig, log: Callable[[str], None],
) -> tuple[list[PromptRow], dict[str, list[PromptRow]]]:
    """A recipe's training rows and eval sets (by label), read and checked row by row with the recipe's tokenizer
    and verifiers, each source's counts and drops logged: what a run and ``rlvr train --dry-run`` both read."""
    from transformers import AutoTokenizer

    from rlvr.verify.specs import verifier_checker

    tokenizer = AutoTokenizer.from_pretrained(cfg.model.source, revision=cfg.model.revision)
    check = verifier_checker(cfg.reward)
    train: list[PromptRow] = []
    evals: dict[str, list[PromptRow]] = {}
    for split, sources in (("train", cfg.data.train), ("eval", cfg.eval.data)):
        for src in sources:
            rows, report = build_rows(src, cfg.data, tokenizer, check)
            log(f"{split} data {src.label}: {report.describe()}")
            if split == "train":
                train += rows
            else:
                evals[src.label] = rows
    return train, evals


class PromptSampler:
    """Endless, seeded epochs over the training rows (reshuffled each epoch when asked). Its position
    and random state are part of a checkpoint, so a resumed run draws exactly the prompts the
    uninterrupted run would have (`state_dict` / `load_state_dict`)."""

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

    def fingerprint(self) -> str:
        """A hash of the rows (prompt tokens, answer, verifier): a resumed run must see the same data."""
        h = hashlib.sha256()
        for row in self.rows:
            h.update(json.dumps([row.token_ids, row.answer, row.verifier]).encode())
        return h.hexdigest()[:16]

    def state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"epoch": self.epoch, "order": list(self._order), "pos": self._pos, "fingerprint": self.fingerprint(),
                "rng": [version, list(internal), gauss]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["fingerprint"] != self.fingerprint() or len(state["order"]) != len(self.rows):
            raise DataError("the training data differ from the checkpoint's (rows, prompts or answers changed); "
                            "resume with the data it was trained on, or start a new run")
        self.epoch, self._order, self._pos = int(state["epoch"]), [int(i) for i in state["order"]], int(state["pos"])
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))


def _raw_question(prompt: Any) -> str:
    """The prompt before templating: the text itself, or the last user turn of chat messages."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            return users[-1]
    return str(prompt)
