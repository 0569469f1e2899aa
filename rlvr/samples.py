"""``rlvr samples RUN_DIR``: the generations a run logged (``samples.jsonl``), filtered, in the terminal.

Each record shows its step, reward, verdict, finish reason and the verifier's reason and extracted
answer, then the prompt and the response (long texts are cut in the middle, saying how much).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class SamplesError(ValueError):
    """No samples file, or a filter that cannot apply."""


def read_samples(run_dir: Path) -> Iterator[dict[str, Any]]:
    path = run_dir / "samples.jsonl"
    if not path.is_file():
        raise SamplesError(f"{run_dir}: no samples.jsonl (is it a run directory?)")
    for line in path.read_text().splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue


def select(records: Iterator[dict[str, Any]], step: int | None = None, last: bool = False,
           min_reward: float | None = None, max_reward: float | None = None, correct: bool | None = None,
           contains: str | None = None) -> list[dict[str, Any]]:
    rows = list(records)
    if last and rows:
        step = max(r["step"] for r in rows)
    return [r for r in rows
            if (step is None or r["step"] == step)
            and (min_reward is None or r["reward"] >= min_reward)
            and (max_reward is None or r["reward"] <= max_reward)
            and (correct is None or bool(r.get("correct")) == correct)
            and (contains is None or contains in r.get("prompt", "") or contains in r.get("response", ""))]


def _cut(text: str, width: int) -> str:
    if width <= 0 or len(text) <= width:
        return text
    half = width // 2
    return f"{text[:half]}\n  [... {len(text) - 2 * half} characters ...]\n{text[-half:]}"


def render(record: dict[str, Any], width: int) -> str:
    details = record.get("details") or {}
    head = (f"── step {record['step']} │ reward {record['reward']:.4g} │ "
            f"{'correct' if record.get('correct') else 'wrong'} │ {record.get('finish_reason', '?')}")
    why = " │ ".join(f"{k} {details[k]}" for k in ("verifier", "reason", "extracted") if k in details)
    indent = lambda t: "\n".join("  " + line for line in t.splitlines()) or "  (empty)"  # noqa: E731
    return "\n".join([head + (f" │ {why}" if why else ""), " prompt:", indent(_cut(record.get("prompt", ""), width)),
                      " response:", indent(_cut(record.get("response", ""), width)),
                      f" ground truth: {record.get('ground_truth', '')}"])
