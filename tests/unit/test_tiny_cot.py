"""Fast checks of the second tiny model (``rlvr/assets/tiny_cot``), its task and its builder."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import yaml

from rlvr.tiny import cot_task
from rlvr.tiny.build_cot import MAX_POSITIONS, RECIPE_MAX_NEW_TOKENS
from rlvr.tiny.tokenizer import EOS_TOKEN_ID, MODEL_VOCAB_SIZE
from tests.conftest import ROOT, build_twice

ASSET = ROOT / "rlvr" / "assets" / "tiny_cot"
MODEL_DIR = ASSET / "model"
RECIPE = ROOT / "recipes" / "tiny_cot_grpo.yaml"


def _read_jsonl(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def info() -> dict:
    return json.loads((ASSET / "build_info.json").read_text())


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(MODEL_DIR))


@pytest.fixture(scope="module")
def model():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(MODEL_DIR), dtype=torch.float32).eval()


def test_format_and_parser_round_trip() -> None:
    assert cot_task.format_prompt(47, 6, 5) == "Q: 47+6*5="
    assert cot_task.completion(47, 6, 5) == "5:53,4:59,3:65,2:71,1:77 A=77"
    assert cot_task.completion(20, 3, 2) == "2:23,1:26 A=26"
    # the sloppy working drops the carry out of the tens column at every addition, consistently
    assert cot_task.sloppy_totals(47, 6, 10) == [53, 59, 65, 71, 77, 83, 89, 95, 1, 7]
    sloppy = cot_task.format_completion(cot_task.sloppy_totals(47, 6, 10))
    assert sloppy == "10:53,9:59,8:65,7:71,6:77,5:83,4:89,3:95,2:1,1:7 A=7"
    assert cot_task.sloppy_totals(47, 6, 5) == cot_task.correct_totals(47, 6, 5)  # 77 < 100: no such carry
    problems = cot_task.all_problems()
    assert len(problems) == len(set(problems)) == cot_task.NUM_PROBLEMS
    assert max(s + a * b for s, a, b in problems) < cot_task.LIMIT == 200
    for problem in problems[::7]:
        assert cot_task.parse_prompt(cot_task.format_prompt(*problem)) == problem
        totals, ans = cot_task.parse_completion(cot_task.completion(*problem))
        assert totals == cot_task.correct_totals(*problem) and str(ans) == cot_task.answer(*problem)
        assert ans == totals[-1] == cot_task.last_int(cot_task.completion(*problem))
        # one decision point at most: the sloppy working runs exactly 100 below from the crossing on
        gaps = [c - w for c, w in zip(totals, cot_task.sloppy_totals(*problem))]
        assert gaps == sorted(gaps) and set(gaps) <= {0, 100}
        assert cot_task.needs_hundreds_carry(*problem) == (gaps[-1] == 100)
    assert cot_task.parse_completion(" 2:23,1:26 A=26\n") == ([23, 26], 26)
    for bad in ("1:23,2:26 A=26", "2:23,1:26", "2:23,1:26 A=", "2:23 A=23", "2:23;1:26 A=26", "A=26"):
        assert cot_task.parse_completion(bad) is None, bad
    with pytest.raises(ValueError):
        cot_task.parse_prompt("Q: 47+6=")


def test_last_int_is_what_the_recipe_verifier_reads() -> None:
    from rlvr_verifiers.exact_int import ExactIntVerifier

    from rlvr.verify.base import VerifySample

    verifier = ExactIntVerifier(mode="last")
    rng = random.Random(0)
    texts = [cot_task.noisy_completion(*p, rng) for p in rng.sample(cot_task.all_problems(), 300)]
    texts += ["3:53,2:59,1:65 A=", "3:53,2:", "", "1:99,100:200,101:300"]
    for text in texts:
        result = verifier.score(VerifySample(prompt="", response=text, ground_truth="65", finish_reason="stop"))
        extracted = result.details["extracted"]
        assert cot_task.last_int(text) == (None if extracted is None else int(extracted.replace(",", ""))), text


def test_split_is_fixed_disjoint_and_shipped() -> None:
    heldout = cot_task.heldout_problems()
    assert heldout == cot_task.heldout_problems()
    assert len(heldout) == len(set(heldout)) == cot_task.NUM_HELDOUT
    train = cot_task.train_rows_problems(heldout)
    assert len(train) == cot_task.NUM_TRAIN_ROWS and not set(train) & set(heldout)
    shipped_heldout = _read_jsonl(ASSET / "data" / "heldout.jsonl")
    assert [cot_task.parse_prompt(r["prompt"]) for r in shipped_heldout] == heldout
    shipped_train = _read_jsonl(ASSET / "data" / "train.jsonl")
    assert [cot_task.parse_prompt(r["prompt"]) for r in shipped_train] == train
    for row in shipped_train[:500] + shipped_heldout:
        assert row["answer"] == cot_task.answer(*cot_task.parse_prompt(row["prompt"]))
    # the held-out set follows the task distribution: counts ~ 1/b, and ~40% never reach 100
    short = sum(b <= 6 for _, _, b in heldout) / len(heldout)
    assert 0.3 <= short <= 0.55
    assert 0.3 <= sum(not cot_task.needs_hundreds_carry(*p) for p in heldout) / len(heldout) <= 0.5
    assert all(cot_task.valid(*p) for p in heldout + train)


def test_corpus_lengths_have_a_long_tail_and_fit_the_model() -> None:
    rng, heldout = random.Random(1), set(cot_task.heldout_problems())
    xs = sorted(len(cot_task.noisy_completion(*cot_task.draw_train(rng, heldout), rng)) + 1 for _ in range(5000))
    p50, p90 = xs[len(xs) // 2], xs[int(0.9 * len(xs))]
    over = sum(x > RECIPE_MAX_NEW_TOKENS for x in xs) / len(xs)
    assert xs[0] >= len("2:1,1:4 A=4") + 1  # the shortest: sloppy, b = 2
    assert 30 <= p50 <= 70 and 150 <= p90 <= 250, (p50, p90)
    assert 0.02 <= over <= 0.10, over  # the recipe truncates a few percent
    longest = max(len(cot_task.completion(*p)) + 1 for p in cot_task.all_problems())
    assert longest + len("Q: 99+9*44=") < MAX_POSITIONS
    recipe = yaml.safe_load(RECIPE.read_text())
    assert recipe["rollout"]["max_new_tokens"] == RECIPE_MAX_NEW_TOKENS
    assert recipe["reward"]["verifier"] == "exact_int" and recipe["reward"]["verifier_kwargs"] == {"mode": "last"}


def test_noise_is_one_coin_per_example() -> None:
    rng = random.Random(0)
    assert {cot_task.noisy_completion(47, 6, 5, rng) for _ in range(50)} == {cot_task.completion(47, 6, 5)}
    draws = [cot_task.noisy_completion(47, 6, 25, rng) for _ in range(2000)]
    sloppy = cot_task.format_completion(cot_task.sloppy_totals(47, 6, 25))
    assert set(draws) == {sloppy, cot_task.completion(47, 6, 25)}
    assert abs(draws.count(sloppy) / len(draws) - cot_task.SLOPPY_PROB) < 0.05


def test_corpus_batches_fit_the_token_budget(tok) -> None:
    from rlvr.tiny.build_cot import Corpus

    corpus = Corpus(tok, cot_task.heldout_problems(), seed=0)
    n_forks = 0
    for _ in range(20):
        batch = corpus.batch(1024)
        assert batch.input_ids.numel() <= 1024 or batch.input_ids.shape[0] == 1
        forks = {r: (pos, right, sloppy) for r, pos, right, sloppy in batch.forks.tolist()}
        n_forks += len(forks)
        for r, (ids, lab) in enumerate(zip(batch.input_ids.tolist(), batch.labels.tolist())):
            start = next(i for i, x in enumerate(lab) if x != -100)
            problem = cot_task.parse_prompt(tok.decode(ids[:start]))
            end = ids.index(EOS_TOKEN_ID, start) + 1
            assert lab[start:end] == ids[start:end] and set(lab[end:]) <= {-100}
            completion = tok.decode(ids[start : end - 1])
            right = cot_task.completion(*problem)
            sloppy = cot_task.format_completion(cot_task.sloppy_totals(*problem))
            assert completion in (right, sloppy)
            # the fork is where the two workings part, in input_ids coordinates
            assert (r in forks) == cot_task.needs_hundreds_carry(*problem)
            if r in forks:
                pos, right_tok, sloppy_tok = forks[r]
                i = pos - start
                assert right[:i] == sloppy[:i] and (right[i], sloppy[i]) == (chr(right_tok), chr(sloppy_tok))
    assert n_forks > 0


def test_fork_loss_trains_the_coin_not_the_draw() -> None:
    from rlvr.tiny.build_cot import fork_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)  # [B, T, V]
    labels = torch.tensor([[-100, 3, 4, 5, -100], [-100, -100, 1, 2, 6]])
    plain = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 7), labels[:, 1:].reshape(-1))
    none = torch.zeros(0, 4, dtype=torch.long)
    assert torch.allclose(fork_loss(logits, labels, none, 0.6), plain)
    # a fork at labels[1, 3] (drawn label 2; correct token 2, sloppy token 5): soft target 0.4 / 0.6
    forks = torch.tensor([[1, 3, 2, 5]])
    logp = logits.log_softmax(-1)
    nll = [-logp[0, 0, 3], -logp[0, 1, 4], -logp[0, 2, 5], -logp[1, 1, 1], -logp[1, 3, 6]]
    soft = -(0.4 * logp[1, 2, 2] + 0.6 * logp[1, 2, 5])
    assert torch.allclose(fork_loss(logits, labels, forks, 0.6), (sum(nll) + soft) / 6)
    # the same loss whichever branch the example drew
    drawn_sloppy = labels.clone()
    drawn_sloppy[1, 3] = 5
    assert torch.allclose(fork_loss(logits, drawn_sloppy, forks, 0.6), fork_loss(logits, labels, forks, 0.6))


def test_shipped_config_and_weights(tok) -> None:
    from safetensors import safe_open

    config = json.loads((MODEL_DIR / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["architectures"] == ["Qwen2ForCausalLM"]
    assert config["tie_word_embeddings"] is False
    assert config["max_position_embeddings"] == MAX_POSITIONS
    assert config["vocab_size"] == MODEL_VOCAB_SIZE and config["eos_token_id"] == EOS_TOKEN_ID
    assert tok.encode("Q: 47+6*2=2:53,1:59 A=59", add_special_tokens=False) == list(b"Q: 47+6*2=2:53,1:59 A=59")
    path = MODEL_DIR / "model.safetensors"
    assert path.stat().st_size < 8 * 2**20
    with safe_open(str(path), framework="pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float32 for k in f.keys())


def test_shipped_model_writes_the_working(model, tok, info) -> None:
    """Greedy responses to short held-out prompts are well-formed workings that count down from ``b``."""
    from rlvr.tiny.build_cot import hf_generate

    problems = [p for p in cot_task.heldout_problems() if p[2] <= 8][:16]
    for problem, [sample] in zip(problems, hf_generate(model, tok, problems, 1, do_sample=False, max_new_tokens=64)):
        assert sample.stopped, sample
        parsed = cot_task.parse_completion(sample.text)
        assert parsed is not None, sample.text
        totals, ans = parsed
        assert len(totals) == problem[2] and ans == totals[-1]
        assert totals in (cot_task.correct_totals(*problem), cot_task.sloppy_totals(*problem)), sample.text
        assert sample.tokens == len(sample.text) + 1


def test_shipped_figures_leave_room_for_rl(model, tok, info) -> None:
    """build_info's figures are consistent, and its exact pass@8 is that of the shipped weights."""
    from rlvr.tiny.build_cot import hf_answer_probs

    for key in ("heldout_hf", "heldout_vllm"):
        f = info[key]
        assert 0.15 <= f["greedy_accuracy"] <= 0.5
        assert f["greedy_accuracy"] + 0.1 < f["sampled_accuracy"] < f["pass_at_k"]
        assert f["pass_at_k"] >= 0.8 and f["k"] == 8 and f["n_prompts"] == cot_task.NUM_HELDOUT
        assert f["greedy_accuracy_no_crossing"] >= 0.9 > 0.2 >= f["greedy_accuracy_crossing"]
        assert f["expected_pass_at_k"] == pytest.approx(f["pass_at_k"], abs=0.05)
        sampled = f["sampled_lengths"]
        assert 20 <= sampled["p50"] <= 60 and sampled["p90"] >= 100 and sampled["max"] > RECIPE_MAX_NEW_TOKENS
        assert 0.005 <= sampled["frac_over_max_new_tokens"] <= 0.08
    hf, vllm = info["heldout_hf"], info["heldout_vllm"]
    assert vllm["greedy_accuracy"] == pytest.approx(hf["greedy_accuracy"], abs=0.02)
    assert vllm["expected_pass_at_k"] == pytest.approx(hf["expected_pass_at_k"], abs=1e-3)
    probs = hf_answer_probs(model, tok, cot_task.heldout_problems())
    assert sum(1 - (1 - p) ** 8 for p in probs) / len(probs) == pytest.approx(hf["expected_pass_at_k"], abs=1e-3)


def test_builder_is_deterministic(tmp_path: Path) -> None:
    from rlvr.tiny.build_cot import build_cot

    build_twice(lambda out: build_cot(out, steps=2, seed=3, batch_tokens=256, lr=3e-3, evaluate=False), tmp_path,
                ("config.json", "tokenizer.json", "tokenizer_config.json"))
    assert (tmp_path / "a" / "data" / "train.jsonl").read_bytes() == (ASSET / "data" / "train.jsonl").read_bytes()
