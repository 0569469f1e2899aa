"""Data loading, templates and the prompt sampler."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr.config.schema import DataConfig, DataSource
from rlvr.data import PromptSampler, apply_template, build_rows


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_templates(tokenizer) -> None:
    assert apply_template("raw", "Q: 1+2=", tokenizer) == "Q: 1+2="
    zero = apply_template("zero", "What is 2+2?", tokenizer)
    assert "What is 2+2?" in zero and zero.endswith("Assistant: <think>")
    assert apply_template("simple", "x?", tokenizer) == "Question:\nx?\nAnswer:\nLet's think step by step.\n"
    boxed = apply_template("qwen_boxed", "x?", tokenizer)
    assert "You are a helpful assistant." in boxed and "\\boxed{}" in boxed and "<|im_start|>assistant" in boxed
    chat = apply_template("chat", [{"role": "user", "content": "hi"}], tokenizer)
    assert "hi" in chat and chat.rstrip().endswith("assistant")
    with pytest.raises(ValueError, match="valid: raw, zero"):
        apply_template("r1", "x", tokenizer)
    with pytest.raises(ValueError, match="needs a text prompt"):
        apply_template("raw", [{"role": "user", "content": "hi"}], tokenizer)


def test_an_instruction_is_appended_to_the_question_before_the_template(tmp_path: Path, tokenizer) -> None:
    suffix = " Put the answer in \\boxed{}."
    chat = apply_template("chat", "What is 2+2?", tokenizer, suffix)
    assert chat == apply_template("chat", [{"role": "user", "content": "What is 2+2?" + suffix}], tokenizer)
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert apply_template("chat", turns, tokenizer, "!") == apply_template("chat", turns[:2] + [
        {"role": "user", "content": "c!"}], tokenizer)  # the last user turn, and the caller's list is untouched
    assert turns[2]["content"] == "c"
    assert apply_template("simple", "x?", tokenizer, " (exact)").startswith("Question:\nx? (exact)\nAnswer:")
    with pytest.raises(ValueError, match="needs a user turn"):
        apply_template("chat", [{"role": "system", "content": "s"}], tokenizer, "!")
    src = DataSource(path=str(_jsonl(tmp_path / "d.jsonl", [{"prompt": "Q: 1+2=", "answer": 3}])))
    built, _ = build_rows(src, DataConfig(train=[src], instruction=" Think."), tokenizer)
    assert built[0].text == "Q: 1+2= Think."


def test_build_rows_jsonl_and_parquet(tmp_path: Path, tokenizer) -> None:
    import datasets

    rows = [{"q": "Q: 1+2=", "a": 3, "verifier": "exact_int"}, {"q": "Q: " + "9" * 50 + "=", "a": 1}]
    src = DataSource(path=str(_jsonl(tmp_path / "d.jsonl", rows)))
    cfg = DataConfig(train=[src], prompt_key="q", answer_key="a", verifier_key="verifier", max_prompt_tokens=20)
    built, report = build_rows(src, cfg, tokenizer)
    assert report.dropped == {"too_long": 1} and report.kept == len(built) == 1
    row = built[0]
    assert row.text == "Q: 1+2=" and row.answer == "3" and row.verifier == "exact_int" and row.source == "d"
    assert tokenizer.decode(row.token_ids) == "Q: 1+2="
    pq = tmp_path / "d.parquet"
    datasets.Dataset.from_list([{"q": "Q: 4+4=", "a": "8"}]).to_parquet(str(pq))
    src = DataSource(path=str(pq))
    built, _ = build_rows(src, cfg.model_copy(update={"train": [src], "verifier_key": None}), tokenizer)
    assert [(r.text, r.answer, r.verifier) for r in built] == [("Q: 4+4=", "8", None)]


def test_missing_column_lists_columns(tmp_path: Path, tokenizer) -> None:
    src = DataSource(path=str(_jsonl(tmp_path / "d.jsonl", [{"question": "x", "answer": "1"}])))
    expected = r"column\(s\) \['prompt'\] not found.*columns present: \['answer', 'question'\]"
    with pytest.raises(ValueError, match=expected):
        build_rows(src, DataConfig(train=[src]), tokenizer)


def test_per_source_keys(tmp_path: Path, tokenizer) -> None:
    src = DataSource(path=str(_jsonl(tmp_path / "e.jsonl", [{"problem": "Q: 1+1=", "sol": "2"}])),
                     prompt_key="problem", answer_key="sol")
    built, _ = build_rows(src, DataConfig(train=[src]), tokenizer)
    assert built[0].answer == "2"


def test_dotted_keys_reach_nested_columns(tmp_path: Path, tokenizer) -> None:
    """DAPO-Math-17k style rows: chat messages as the prompt, the answer inside reward_model."""
    row = {"prompt": [{"role": "user", "content": "Q: 2+2="}], "reward_model": {"ground_truth": "4", "style": "rule"}}
    src = DataSource(path=str(_jsonl(tmp_path / "n.jsonl", [row])))
    cfg = DataConfig(train=[src], answer_key="reward_model.ground_truth", template="chat")
    built, _ = build_rows(src, cfg, tokenizer)
    assert built[0].answer == "4" and "Q: 2+2=" in built[0].text
    bad = DataConfig(train=[src], answer_key="reward_model.answer", template="chat")
    with pytest.raises(ValueError, match="row 0: no field 'reward_model.answer'"):
        build_rows(src, bad, tokenizer)


def test_sampler_epochs_cover_every_row_once(tmp_path: Path, tokenizer) -> None:
    rows = [{"prompt": f"Q: {i}+0=", "answer": i} for i in range(10)]
    src = DataSource(path=str(_jsonl(tmp_path / "d.jsonl", rows)))
    rows, _ = build_rows(src, DataConfig(train=[src]), tokenizer)
    sampler = PromptSampler(rows, shuffle=True, seed=3)
    first = [r.answer for r in sampler.next_batch(10)]
    second = [r.answer for r in sampler.next_batch(10)]
    assert sorted(first) == sorted(second) == sorted(str(i) for i in range(10))
    assert first != second  # reshuffled
    again = PromptSampler(rows, shuffle=True, seed=3)
    assert [r.answer for r in again.next_batch(10)] == first  # seeded
    plain = PromptSampler(rows, shuffle=False, seed=3)
    assert [r.answer for r in plain.next_batch(12)] == [str(i) for i in range(10)] + ["0", "1"]
