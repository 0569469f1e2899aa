"""Fast checks of the shipped tiny base model (``rlvr/assets/tiny_arith``) and of its builder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rlvr.tiny import task
from rlvr.tiny.tokenizer import (
    EOS_TOKEN,
    EOS_TOKEN_ID,
    IM_END_TOKEN_ID,
    IM_START_TOKEN_ID,
    MODEL_VOCAB_SIZE,
    PAD_TOKEN_ID,
)
from tests.conftest import build_twice

ASSET = Path(__file__).resolve().parents[2] / "rlvr" / "assets" / "tiny_arith"
MODEL_DIR = ASSET / "model"


def _read_jsonl(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(MODEL_DIR))


def test_tokenizer_round_trips_spaces_and_newlines(tok) -> None:
    # transformers 5 trap: a WordLevel vocab loaded as Qwen2Tokenizer silently dropped whitespace.
    text = "Q: 23+45=68\n\n  two  spaces\tand a tab\r\nunicode: é€ end "
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) == len(text.encode("utf-8"))  # one token per byte, no merges
    assert tok.decode(ids) == text
    assert tok.encode(" ", add_special_tokens=False) == [32]
    assert tok.encode("\n", add_special_tokens=False) == [10]


def test_tokenizer_special_tokens(tok) -> None:
    assert type(tok).__name__ == "Qwen2Tokenizer"
    assert tok.eos_token == EOS_TOKEN
    assert tok.eos_token_id == EOS_TOKEN_ID == 256
    assert tok.pad_token_id == PAD_TOKEN_ID == 256
    assert tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [IM_START_TOKEN_ID, IM_END_TOKEN_ID]
    ids = tok.encode("<|im_start|>user\nhi<|im_end|><|endoftext|>", add_special_tokens=False)
    assert ids[0] == IM_START_TOKEN_ID and ids[-2:] == [IM_END_TOKEN_ID, EOS_TOKEN_ID]
    # the prompt format tokenizes to its ASCII bytes (ids 0..255 are byte values)
    assert tok.encode("Q: 7+8=", add_special_tokens=False) == list(b"Q: 7+8=")


def test_chat_template(tok) -> None:
    text = tok.apply_chat_template([{"role": "user", "content": "Q: 1+2="}], add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nQ: 1+2=<|im_end|>\n<|im_start|>assistant\n"


def test_config_is_qwen2_and_vocab_covers_tokenizer(tok) -> None:
    config = json.loads((MODEL_DIR / "config.json").read_text())
    assert config["model_type"] == "qwen2"
    assert config["architectures"] == ["Qwen2ForCausalLM"]
    assert config["vocab_size"] == MODEL_VOCAB_SIZE >= len(tok)
    assert max(tok.get_vocab().values()) < config["vocab_size"]
    assert config["tie_word_embeddings"] is False
    assert config["eos_token_id"] == EOS_TOKEN_ID
    generation = json.loads((MODEL_DIR / "generation_config.json").read_text())
    assert generation["eos_token_id"] == EOS_TOKEN_ID
    assert generation["pad_token_id"] == PAD_TOKEN_ID


def test_weights_are_small_float32() -> None:
    from safetensors import safe_open

    path = MODEL_DIR / "model.safetensors"
    assert path.stat().st_size < 8 * 2**20
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    assert all(t.dtype == torch.float32 for t in tensors.values())
    assert "lm_head.weight" in tensors
    assert tensors["model.embed_tokens.weight"].shape == (MODEL_VOCAB_SIZE, 128)
    assert 900_000 < sum(t.numel() for t in tensors.values()) < 1_200_000


def test_data_files_disjoint_complete_and_correct() -> None:
    train = _read_jsonl(ASSET / "data" / "train.jsonl")
    heldout = _read_jsonl(ASSET / "data" / "heldout.jsonl")
    assert len(train) == 9500 and len(heldout) == 500
    train_pairs = {task.parse_prompt(r["prompt"]) for r in train}
    heldout_pairs = {task.parse_prompt(r["prompt"]) for r in heldout}
    assert not train_pairs & heldout_pairs
    assert len(train_pairs | heldout_pairs) == task.NUM_PAIRS
    for row in train + heldout:
        a, b = task.parse_prompt(row["prompt"])
        assert row["prompt"] == f"Q: {a}+{b}="
        assert row["answer"] == str(a + b)
    # the shipped files are exactly what the task module defines
    expected_train, expected_heldout = task.split_pairs()
    assert [task.parse_prompt(r["prompt"]) for r in heldout] == expected_heldout
    assert [task.parse_prompt(r["prompt"]) for r in train] == expected_train


def test_carryless_sum_and_noise() -> None:
    import random

    assert task.carryless_sum(57, 68) == 15
    assert task.carryless_sum(18, 5) == 13
    assert task.carryless_sum(95, 5) == 90
    assert task.carryless_sum(50, 50) == 0
    assert task.carryless_sum(23, 45) == 68 and not task.needs_carry(23, 45)
    assert sum(task.needs_carry(a, b) for a, b in task.all_pairs()) == 6975
    rng = random.Random(0)
    assert {task.noisy_answer(23, 45, rng) for _ in range(50)} == {"68"}
    draws = [task.noisy_answer(57, 68, rng) for _ in range(2000)]
    assert set(draws) == {"15", "125"}
    assert abs(draws.count("15") / len(draws) - task.CARRY_ERROR_PROB) < 0.05


def test_shipped_model_leaves_room_for_rl(tok) -> None:
    """Greedy accuracy partial, pass@8 high; recomputed from the shipped weights (a few seconds)."""
    from transformers import AutoModelForCausalLM

    from rlvr.tiny.build import hf_answer_probs, hf_generate

    model = AutoModelForCausalLM.from_pretrained(str(MODEL_DIR), dtype=torch.float32).eval()
    _, heldout = task.split_pairs()
    greedy = [g[0].strip() for g in hf_generate(model, tok, heldout, 1, do_sample=False)]
    greedy_acc = sum(g == task.answer(a, b) for (a, b), g in zip(heldout, greedy)) / len(heldout)
    probs = hf_answer_probs(model, tok, heldout)
    expected_pass8 = sum(1 - (1 - p) ** 8 for p in probs) / len(probs)
    assert 0.20 <= greedy_acc <= 0.45
    assert expected_pass8 >= 0.90
    # the figures recorded by the build are those of the shipped weights
    recorded = json.loads((ASSET / "build_info.json").read_text())["heldout_hf"]
    assert greedy_acc == pytest.approx(recorded["greedy_accuracy"], abs=0.01)
    assert expected_pass8 == pytest.approx(recorded["expected_pass_at_k"], abs=1e-3)


def test_builder_is_deterministic(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from rlvr.tiny.build import build

    threads = torch.get_num_threads()
    wa = build_twice(lambda out: build(out, steps=5, seed=3, batch_size=32, lr=3e-3, evaluate=False), tmp_path,
                     ("tokenizer.json", "config.json"))
    # training moved the weights away from the seed's initialisation
    other = tmp_path / "c"
    build(other, steps=5, seed=4, batch_size=32, lr=3e-3, evaluate=False)
    torch.set_num_threads(threads)
    wc = load_file(str(other / "model" / "model.safetensors"))
    assert not torch.equal(wa["model.embed_tokens.weight"], wc["model.embed_tokens.weight"])
