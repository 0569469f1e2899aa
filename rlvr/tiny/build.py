"""Deterministic builder of the embedded tiny base model (``rlvr/assets/tiny_arith/``).

Usage::

    python -m rlvr.tiny.build --out rlvr/assets/tiny_arith [--steps N --seed S] [--check-vllm]

Writes ``OUT/model/`` (Hugging Face format: ``config.json``, ``generation_config.json``,
``model.safetensors`` in float32 and the tokenizer files), ``OUT/data/train.jsonl`` (9,500 pairs),
``OUT/data/heldout.jsonl`` (500 pairs) and ``OUT/build_info.json`` (settings and measured figures).

Steps:

1. tokenizer (:mod:`rlvr.tiny.tokenizer`) and a ~1.07M-parameter ``Qwen2ForCausalLM`` config;
2. pre-training with plain ``torch.optim.AdamW`` on the *noisy* addition corpus of
   :mod:`rlvr.tiny.task` (training pairs only; labels drawn fresh on every draw; loss on the
   completion tokens only, since the operands in the prompt are uniform noise the model cannot and
   need not predict);
3. measurement on the held-out pairs with transformers' ``generate`` as the build-time oracle:
   greedy accuracy, per-sample accuracy at temperature 1.0 and pass@8 at temperature 1.0;
4. optionally (``--check-vllm``) the same figures through vLLM, in a subprocess
   (:mod:`rlvr.tiny.check_vllm`), to confirm that the shipped files work in the rollout engine.

Determinism: everything random derives from ``--seed`` (``torch.manual_seed`` for the weights and the
sampled evaluation, a ``random.Random(seed)`` for the data order and the label noise), the thread
count is fixed to 2 and no wall-clock dependent choice is made, so the same command on the same
software produces bit-identical weights.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import GenerationConfig, PreTrainedTokenizerBase, Qwen2Config, Qwen2ForCausalLM

from rlvr.tiny import task
from rlvr.tiny.tokenizer import (
    EOS_TOKEN_ID,
    MODEL_VOCAB_SIZE,
    PAD_TOKEN_ID,
    build_tokenizer,
)

#: Defaults tuned on the 2-core CPU development machine: about 4 minutes of pre-training.
DEFAULT_STEPS = 1500
DEFAULT_SEED = 0
DEFAULT_BATCH = 256
DEFAULT_LR = 3e-3
WARMUP_STEPS = 50
NUM_THREADS = 2
#: Answer tokens are at most 3 digits + EOS; 8 new tokens leave room to notice run-away outputs.
MAX_NEW_TOKENS = 8
PASS_K = 8


def model_config() -> Qwen2Config:
    """The tiny Qwen2 shape (hidden 128, 4 layers, 4 heads / 2 KV heads, untied, float32)."""
    return Qwen2Config(
        architectures=["Qwen2ForCausalLM"],
        vocab_size=MODEL_VOCAB_SIZE,
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        hidden_act="silu",
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        # Untied: vLLM keeps computing logits from a stale output layer after an in-place weight
        # reload of a tied model (see ENVIRONMENT.md), so the shipped model avoids the trap.
        tie_word_embeddings=False,
        use_sliding_window=False,
        bos_token_id=EOS_TOKEN_ID,
        eos_token_id=EOS_TOKEN_ID,
        pad_token_id=PAD_TOKEN_ID,
        dtype="float32",
    )


def generation_config() -> GenerationConfig:
    """Only the ids: EOS must stop generation in transformers and vLLM; no sampling defaults."""
    return GenerationConfig(bos_token_id=EOS_TOKEN_ID, eos_token_id=EOS_TOKEN_ID, pad_token_id=PAD_TOKEN_ID)


class Corpus:
    """Token ids for prompts and answers, cached once; draws noisy training batches.

    The data order is fixed by ``seed``: the training pairs are reshuffled every epoch with the same
    ``random.Random`` that draws the label noise, so the noise is fresh every time a pair is drawn.
    """

    def __init__(self, tok: PreTrainedTokenizerBase, pairs: Sequence[task.Pair], seed: int) -> None:
        self.tok = tok
        self.pairs = list(pairs)
        self.rng = random.Random(seed)
        self._order: list[task.Pair] = []
        self._prompt_ids: dict[task.Pair, list[int]] = {}
        self._answer_ids: dict[str, list[int]] = {}

    def prompt_ids(self, a: int, b: int) -> list[int]:
        key = (a, b)
        if key not in self._prompt_ids:
            self._prompt_ids[key] = self.tok.encode(task.format_prompt(a, b), add_special_tokens=False)
        return self._prompt_ids[key]

    def answer_ids(self, text: str) -> list[int]:
        if text not in self._answer_ids:
            self._answer_ids[text] = self.tok.encode(text, add_special_tokens=False) + [EOS_TOKEN_ID]
        return self._answer_ids[text]

    def _next_pair(self) -> task.Pair:
        if not self._order:
            self._order = self.pairs[:]
            self.rng.shuffle(self._order)
        return self._order.pop()

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input_ids, labels)``, right-padded with EOS; labels are -100 except on answer + EOS."""
        seqs: list[tuple[list[int], list[int]]] = []
        for _ in range(size):
            a, b = self._next_pair()
            seqs.append((self.prompt_ids(a, b), self.answer_ids(task.noisy_answer(a, b, self.rng))))
        width = max(len(p) + len(c) for p, c in seqs)
        input_ids = torch.full((size, width), PAD_TOKEN_ID, dtype=torch.long)
        labels = torch.full((size, width), -100, dtype=torch.long)
        for i, (p, c) in enumerate(seqs):
            input_ids[i, : len(p) + len(c)] = torch.tensor(p + c)
            labels[i, len(p) : len(p) + len(c)] = torch.tensor(c)
        return input_ids, labels


def lr_at(step: int, steps: int, peak: float) -> float:
    """Linear warm-up then cosine decay to 10% of the peak."""
    if step < WARMUP_STEPS:
        return peak * (step + 1) / WARMUP_STEPS
    progress = (step - WARMUP_STEPS) / max(1, steps - WARMUP_STEPS)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def pretrain(
    model: Qwen2ForCausalLM, corpus: Corpus, steps: int, batch_size: int, lr: float, log_every: int = 100
) -> None:
    """Plain AdamW pre-training (this is a build step, not RL)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    model.train()
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        input_ids, labels = corpus.batch(batch_size)
        loss = model(input_ids=input_ids, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.time() - start:6.1f}s", flush=True)
    model.eval()


@dataclass
class Figures:
    """Held-out measurements. ``sampled_*``/``pass_at_k`` are at temperature 1.0, ``k`` samples per prompt.

    ``expected_*`` are the same two quantities computed exactly from the model's probability of the
    correct completion (answer + EOS) instead of from random samples: noise-free, so transformers and
    vLLM can be compared to several digits.
    """

    greedy_accuracy: float
    greedy_accuracy_carry: float
    greedy_accuracy_no_carry: float
    sampled_accuracy: float
    pass_at_k: float
    expected_sampled_accuracy: float
    expected_pass_at_k: float
    k: int
    n_prompts: int


def score(
    pairs: Sequence[task.Pair],
    greedy: Sequence[str],
    samples: Sequence[Sequence[str]],
    answer_probs: Sequence[float],
) -> Figures:
    """Exact-match figures from decoded completions (special tokens stripped, whitespace trimmed).

    ``answer_probs[i]`` is the model's probability of the correct completion of ``pairs[i]``.
    """
    ok = [g.strip() == task.answer(a, b) for (a, b), g in zip(pairs, greedy)]
    carry = [task.needs_carry(a, b) for a, b in pairs]
    hits = [[s.strip() == task.answer(a, b) for s in ss] for (a, b), ss in zip(pairs, samples)]

    def mean(xs: Sequence[bool | float]) -> float:
        return sum(xs) / max(1, len(xs))

    return Figures(
        greedy_accuracy=mean(ok),
        greedy_accuracy_carry=mean([o for o, c in zip(ok, carry) if c]),
        greedy_accuracy_no_carry=mean([o for o, c in zip(ok, carry) if not c]),
        sampled_accuracy=mean([mean(h) for h in hits]),
        pass_at_k=mean([any(h) for h in hits]),
        expected_sampled_accuracy=mean(answer_probs),
        expected_pass_at_k=mean([1.0 - (1.0 - p) ** len(samples[0]) for p in answer_probs]),
        k=len(samples[0]) if samples else 0,
        n_prompts=len(pairs),
    )


@torch.no_grad()
def hf_generate(
    model: Qwen2ForCausalLM, tok: PreTrainedTokenizerBase, pairs: Sequence[task.Pair], n: int, do_sample: bool
) -> list[list[str]]:
    """``n`` completions per pair with transformers' ``generate``.

    Prompts are batched by token length, so no padding (and no padding-dependent numerics) is needed.
    """
    by_len: dict[int, list[int]] = defaultdict(list)
    ids = [tok.encode(task.format_prompt(a, b), add_special_tokens=False) for a, b in pairs]
    for i, x in enumerate(ids):
        by_len[len(x)].append(i)
    out: list[list[str]] = [[] for _ in pairs]
    for _, idx in sorted(by_len.items()):
        prompt = torch.tensor([ids[i] for i in idx])
        gen = model.generate(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=MAX_NEW_TOKENS,
            do_sample=do_sample,
            temperature=1.0 if do_sample else None,
            top_k=0 if do_sample else None,
            top_p=1.0 if do_sample else None,
            num_return_sequences=n,
            eos_token_id=EOS_TOKEN_ID,
            pad_token_id=PAD_TOKEN_ID,
        )
        texts = tok.batch_decode(gen[:, prompt.shape[1] :], skip_special_tokens=True)
        for j, i in enumerate(idx):
            out[i] = texts[j * n : (j + 1) * n]
    return out


def completion_ids(tok: PreTrainedTokenizerBase, a: int, b: int) -> tuple[list[int], list[int]]:
    """``(prompt ids, correct completion ids incl. EOS)`` for ``a + b``."""
    prompt = tok.encode(task.format_prompt(a, b), add_special_tokens=False)
    return prompt, tok.encode(task.answer(a, b), add_special_tokens=False) + [EOS_TOKEN_ID]


@torch.no_grad()
def hf_answer_probs(model: Qwen2ForCausalLM, tok: PreTrainedTokenizerBase, pairs: Sequence[task.Pair]) -> list[float]:
    """Probability of the correct completion (answer + EOS) per pair, teacher-forced, batched by length."""
    seqs = [completion_ids(tok, a, b) for a, b in pairs]
    by_len: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (p, c) in enumerate(seqs):
        by_len[(len(p), len(c))].append(i)
    probs = [0.0] * len(pairs)
    for (np_, nc), idx in sorted(by_len.items()):
        x = torch.tensor([seqs[i][0] + seqs[i][1] for i in idx])
        logp = model(input_ids=x).logits.float().log_softmax(-1)[:, np_ - 1 : np_ + nc - 1]
        target = x[:, np_:].unsqueeze(-1)
        total = logp.gather(-1, target).squeeze(-1).sum(-1)
        for j, i in enumerate(idx):
            probs[i] = math.exp(total[j].item())
    return probs


def evaluate_hf(
    model: Qwen2ForCausalLM, tok: PreTrainedTokenizerBase, pairs: Sequence[task.Pair], seed: int
) -> Figures:
    """Greedy and sampled (temperature 1.0, ``PASS_K`` per prompt) held-out figures via transformers."""
    greedy = [g[0] for g in hf_generate(model, tok, pairs, 1, do_sample=False)]
    torch.manual_seed(seed + 1)
    samples = hf_generate(model, tok, pairs, PASS_K, do_sample=True)
    return score(pairs, greedy, samples, hf_answer_probs(model, tok, pairs))


def check_vllm(out_dir: Path, task_name: str = "arith") -> dict[str, Any]:
    """Run :mod:`rlvr.tiny.check_vllm` on ``out_dir`` (``--task arith`` or ``cot``) in a subprocess (vLLM wants
    its env vars before import)."""
    env = dict(os.environ, VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CPU_KVCACHE_SPACE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "rlvr.tiny.check_vllm", str(out_dir), "--task", task_name, "--json"],
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build(out_dir: Path, steps: int, seed: int, batch_size: int, lr: float, evaluate: bool = True) -> dict:
    """Build everything into ``out_dir``; returns the build info (also written to ``build_info.json``)."""
    torch.set_num_threads(NUM_THREADS)
    t0 = time.time()
    model_dir, data_dir = out_dir / "model", out_dir / "data"
    model_dir.mkdir(parents=True, exist_ok=True)

    tok = build_tokenizer()
    train_pairs, heldout_pairs = task.write_data(data_dir)

    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(model_config()).float()
    model.generation_config = generation_config()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params:,} parameters; pre-training {steps} steps x {batch_size}", flush=True)

    pretrain(model, Corpus(tok, train_pairs, seed), steps, batch_size, lr)
    train_s = time.time() - t0

    model.save_pretrained(str(model_dir))
    tok.save_pretrained(str(model_dir))

    info: dict = {
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "carry_error_prob": task.CARRY_ERROR_PROB,
        "n_params": n_params,
        "eos_token_id": EOS_TOKEN_ID,
        "pad_token_id": PAD_TOKEN_ID,
        "torch": torch.__version__,
        "pretrain_seconds": round(train_s, 1),
    }
    if evaluate:
        figures = evaluate_hf(model, tok, heldout_pairs, seed)
        info["heldout_hf"] = asdict(figures)
    (out_dir / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory (model/ and data/ inside)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--lr", type=float, default=DEFAULT_LR)
    parser.add_argument("--no-eval", action="store_true", help="skip the held-out measurement")
    parser.add_argument("--check-vllm", action="store_true", help="also measure through vLLM (subprocess)")
    args = parser.parse_args(argv)

    t0 = time.time()
    info = build(args.out, args.steps, args.seed, args.batch_size, args.lr, evaluate=not args.no_eval)
    report(args.out, info, "arith" if args.check_vllm else None, t0)


def report(out_dir: Path, info: dict[str, Any], vllm_task: str | None, t0: float) -> None:
    """The builders' last step: with ``vllm_task``, add the vLLM figures to ``build_info.json``; print it all."""
    if vllm_task is not None:
        info["heldout_vllm"] = check_vllm(out_dir, vllm_task)
        (out_dir / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))
    print(f"total wall time {time.time() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()
