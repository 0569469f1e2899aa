"""Deterministic builder of the second embedded tiny model (``rlvr/assets/tiny_cot/``): it writes a working.

Usage::

    python -m rlvr.tiny.build_cot --out rlvr/assets/tiny_cot [--steps N --seed S] [--check-vllm]

The first tiny model (:mod:`rlvr.tiny.build`) answers in ~4 tokens, too short to exercise long-tailed
generation or asynchronous RL. This one is pre-trained on :mod:`rlvr.tiny.cot_task` -- multiplication
as repeated addition with a count-down, ``"Q: 47+6*5="`` -> ``"5:53,4:59,3:65,2:71,1:77 A=77"`` -- so its
responses
run from 15 to ~300 tokens with a long tail. Same tokenizer, same ``Qwen2ForCausalLM`` shape as
``tiny_arith`` (hidden 128, 4 layers, untied, float32) except 512 positions.

Writes ``OUT/model/`` (Hugging Face format), ``OUT/data/train.jsonl`` (RL prompts),
``OUT/data/heldout.jsonl`` (500 prompts) and ``OUT/build_info.json`` (settings and measured figures).

Steps, reusing :mod:`rlvr.tiny.build`'s helpers (model config, generation config, learning-rate schedule):

1. pre-training on the noisy corpus of :mod:`rlvr.tiny.cot_task` (training problems only, sloppiness
   drawn fresh on every draw, loss on the completion tokens only), in batches of about
   ``--batch-tokens`` tokens: examples are drawn in pools, sorted by length and cut into batches, so
   the ~20x spread of lengths costs little padding. The one token where a problem's correct and
   sloppy workings part (its *fork*) is trained on the coin's probabilities rather than the drawn
   label (:func:`fork_loss`), so the base model's coin is calibrated everywhere;
2. measurement on the held-out prompts with transformers' ``generate``: greedy accuracy, per-sample
   accuracy and pass@8 at temperature 1.0, the exact probability of the correct completion, and
   response-length statistics. A response counts as correct the way the recipe's reward does
   (``exact_int``, ``mode: last``): it ends with EOS within :data:`RECIPE_MAX_NEW_TOKENS` tokens and
   its last number is the answer. Generation runs to :data:`EVAL_MAX_NEW_TOKENS` so the lengths
   beyond the recipe's budget are measured, not cut;
3. optionally (``--check-vllm``) the same figures through vLLM in a subprocess
   (``python -m rlvr.tiny.check_vllm DIR --task cot``).

Determinism: as for ``tiny_arith`` -- everything random derives from ``--seed``, 2 threads, so the
same command on the same software produces bit-identical weights.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from transformers import PreTrainedTokenizerBase, Qwen2Config, Qwen2ForCausalLM

from rlvr.tiny import build, cot_task
from rlvr.tiny.tokenizer import EOS_TOKEN_ID, PAD_TOKEN_ID, build_tokenizer

#: Defaults tuned on the 2-core CPU development machine (see ``build_info.json`` for the time taken).
DEFAULT_STEPS = 2000
DEFAULT_SEED = 0
DEFAULT_BATCH_TOKENS = 4096
DEFAULT_LR = 3e-3
#: Prompt (<= 12 tokens) + the longest correct completion (~305 tokens) fit with room to spare.
MAX_POSITIONS = 512
#: ``rollout.max_new_tokens`` of ``recipes/tiny_cot_grpo.yaml``: longer responses score 0 there.
RECIPE_MAX_NEW_TOKENS = 224
#: Measurement budget: past the longest correct completion, so over-long responses are seen whole.
EVAL_MAX_NEW_TOKENS = 384
#: Examples are drawn this many batches at a time, sorted by length and cut into batches.
POOL_BATCHES = 16
#: Sequences per ``generate`` call in the measurement (bounds the KV cache).
GENERATE_CHUNK = 512
PASS_K = build.PASS_K


def model_config() -> Qwen2Config:
    """``tiny_arith``'s shape (:func:`rlvr.tiny.build.model_config`) with 512 positions."""
    config = build.model_config()
    config.max_position_embeddings = MAX_POSITIONS
    return config


class Example(NamedTuple):
    """One training example: prompt ids, completion ids (incl. EOS) and its fork, if any.

    ``fork`` is ``(index in the completion, correct token, sloppy token)``: the one token where the
    correct and the sloppy working of the problem first differ (None when they never do).
    """

    prompt: list[int]
    completion: list[int]
    fork: tuple[int, int, int] | None


class Batch(NamedTuple):
    input_ids: torch.Tensor  # [B, T] right-padded with EOS
    labels: torch.Tensor  # [B, T] -100 but on the completion + EOS (unshifted, as transformers takes them)
    forks: torch.Tensor  # [F, 4] (row, position in input_ids, correct token, sloppy token)


class Corpus:
    """Noisy training examples in length-sorted batches of about ``tokens`` tokens (rows x longest).

    Each refill draws ``POOL_BATCHES * tokens`` tokens' worth of examples (problems by
    :func:`cot_task.draw_train`, sloppiness by :func:`cot_task.noisy_completion`, one
    ``random.Random(seed)`` for both), sorts them by length, cuts them into batches and shuffles the
    batches, so a step's rows have similar lengths and little padding.
    """

    def __init__(self, tok: PreTrainedTokenizerBase, heldout: Sequence[cot_task.Problem], seed: int) -> None:
        self.tok = tok
        self.rng = random.Random(seed)
        self.heldout = set(heldout)
        self._ids: dict[str, list[int]] = {}
        self._forks: dict[cot_task.Problem, tuple[int, int, int] | None] = {}
        self._queue: list[list[Example]] = []

    def ids(self, text: str) -> list[int]:
        if text not in self._ids:
            self._ids[text] = self.tok.encode(text, add_special_tokens=False)
        return self._ids[text]

    def fork(self, problem: cot_task.Problem) -> tuple[int, int, int] | None:
        if problem not in self._forks:
            right = self.ids(cot_task.completion(*problem))
            sloppy = self.ids(cot_task.format_completion(cot_task.sloppy_totals(*problem)))
            at = next((i for i, (r, s) in enumerate(zip(right, sloppy)) if r != s), None)
            self._forks[problem] = None if at is None else (at, right[at], sloppy[at])
        return self._forks[problem]

    def example(self) -> Example:
        """One fresh draw."""
        problem = cot_task.draw_train(self.rng, self.heldout)
        prompt = self.ids(cot_task.format_prompt(*problem))
        completion = self.ids(cot_task.noisy_completion(*problem, self.rng)) + [EOS_TOKEN_ID]
        return Example(prompt, completion, self.fork(problem))

    def _refill(self, tokens: int) -> None:
        pool, total = [], 0
        while total < POOL_BATCHES * tokens:
            pool.append(self.example())
            total += len(pool[-1].prompt) + len(pool[-1].completion)
        pool.sort(key=lambda e: len(e.prompt) + len(e.completion))
        batches: list[list[Example]] = [[]]
        for e in pool:  # ascending lengths: this row is the batch's longest
            if batches[-1] and (len(batches[-1]) + 1) * (len(e.prompt) + len(e.completion)) > tokens:
                batches.append([])
            batches[-1].append(e)
        self.rng.shuffle(batches)
        self._queue = batches

    def batch(self, tokens: int) -> Batch:
        """About ``tokens`` tokens of examples (see :class:`Batch`)."""
        if not self._queue:
            self._refill(tokens)
        rows = self._queue.pop()
        width = max(len(e.prompt) + len(e.completion) for e in rows)
        input_ids = torch.full((len(rows), width), PAD_TOKEN_ID, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        forks = []
        for i, e in enumerate(rows):
            n = len(e.prompt)
            input_ids[i, : n + len(e.completion)] = torch.tensor(e.prompt + e.completion)
            labels[i, n : n + len(e.completion)] = torch.tensor(e.completion)
            if e.fork is not None:
                forks.append((i, n + e.fork[0], e.fork[1], e.fork[2]))
        return Batch(input_ids, labels, torch.tensor(forks, dtype=torch.long).reshape(-1, 4))


def fork_loss(logits: torch.Tensor, labels: torch.Tensor, forks: torch.Tensor, sloppy_prob: float) -> torch.Tensor:
    """Next-token cross-entropy, mean over labelled tokens, with each fork token's target the coin itself.

    At a fork the drawn example shows one branch, but the target there is the coin's distribution:
    ``1 - sloppy_prob`` on the correct token, ``sloppy_prob`` on the sloppy one (the rest of the
    example follows the branch drawn). This is the expected loss over the coin at that token, so the
    model learns the coin without the label noise of single draws. Why: trained on drawn labels, the
    learnt coin spread from 0.1 to 0.8 across contexts (it tracks the last few hundred draws), and
    greedy decoding got 28% of the crossing problems right where a calibrated model gets none.
    """
    logp = logits[:, :-1].float().log_softmax(-1)  # [B, T-1, V]
    target = labels[:, 1:]  # [B, T-1]
    mask = target != -100
    nll = -logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask  # [B, T-1]
    if len(forks):
        row, pos, right, sloppy = forks.unbind(-1)  # each [F]; pos indexes labels, so pos - 1 the logits
        soft = -((1.0 - sloppy_prob) * logp[row, pos - 1, right] + sloppy_prob * logp[row, pos - 1, sloppy])
        nll = nll.index_put((row, pos - 1), soft)
    return nll.sum() / mask.sum()


def pretrain(
    model: Qwen2ForCausalLM,
    corpus: Corpus,
    steps: int,
    batch_tokens: int,
    lr: float,
    sloppy_prob: float = cot_task.SLOPPY_PROB,
    log_every: int = 100,
) -> None:
    """:func:`rlvr.tiny.build.pretrain`'s loop (AdamW, :func:`rlvr.tiny.build.lr_at`, clipping at 1.0)
    with :func:`fork_loss`."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    model.train()
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = build.lr_at(step, steps, lr)
        batch = corpus.batch(batch_tokens)
        loss = fork_loss(model(input_ids=batch.input_ids).logits, batch.labels, batch.forks, sloppy_prob)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.time() - start:6.1f}s", flush=True)
    model.eval()


class Sample(NamedTuple):
    """One generated response: text (special tokens stripped), tokens incl. EOS, whether it ended at EOS."""

    text: str
    tokens: int
    stopped: bool


def correct(problem: cot_task.Problem, r: Sample, budget: int = RECIPE_MAX_NEW_TOKENS) -> bool:
    """The recipe's reward: ended at EOS within ``budget`` tokens, last number = the answer."""
    return r.stopped and r.tokens <= budget and str(cot_task.last_int(r.text)) == cot_task.answer(*problem)


@dataclass
class Lengths:
    """Response lengths in tokens (EOS included), measured to ``EVAL_MAX_NEW_TOKENS``."""

    mean: float
    p50: int
    p90: int
    max: int
    frac_over_max_new_tokens: float  # longer than RECIPE_MAX_NEW_TOKENS: the recipe truncates them
    frac_no_eos: float  # still running at EVAL_MAX_NEW_TOKENS


def lengths(samples: Sequence[Sample]) -> Lengths:
    xs = sorted(s.tokens for s in samples)
    n = max(1, len(xs))
    return Lengths(
        mean=round(sum(xs) / n, 2),
        p50=xs[len(xs) // 2],
        p90=xs[min(len(xs) - 1, int(0.9 * len(xs)))],
        max=xs[-1],
        frac_over_max_new_tokens=sum(x > RECIPE_MAX_NEW_TOKENS for x in xs) / n,
        frac_no_eos=sum(not s.stopped for s in samples) / n,
    )


@dataclass
class Figures:
    """Held-out measurements. ``sampled_*``/``pass_at_k`` are at temperature 1.0, ``k`` samples per prompt.

    ``greedy_accuracy_crossing`` is over the problems whose working reaches 100 (``s + a*b >= 100``,
    where the sloppy branch exists), ``greedy_sloppy_crossing`` the share of those whose greedy answer
    is the sloppy one. ``expected_*`` come from the model's exact probability of the correct
    completion (0 where it does not fit the recipe's budget): noise-free, so transformers and vLLM can
    be compared to several digits. ``*_lengths`` are response-length statistics.
    """

    greedy_accuracy: float
    greedy_accuracy_crossing: float
    greedy_accuracy_no_crossing: float
    greedy_sloppy_crossing: float
    sampled_accuracy: float
    pass_at_k: float
    expected_sampled_accuracy: float
    expected_pass_at_k: float
    greedy_lengths: Lengths
    sampled_lengths: Lengths
    k: int
    n_prompts: int
    max_new_tokens: int


def score(
    problems: Sequence[cot_task.Problem],
    greedy: Sequence[Sample],
    samples: Sequence[Sequence[Sample]],
    answer_probs: Sequence[float],
) -> Figures:
    """Figures from generated responses and the probabilities of the correct completions."""
    ok = [correct(p, g) for p, g in zip(problems, greedy)]
    crossing = [cot_task.needs_hundreds_carry(*p) for p in problems]
    sloppy = [
        g.stopped and cot_task.last_int(g.text) == cot_task.sloppy_totals(*p)[-1]
        for p, g, c in zip(problems, greedy, crossing)
        if c
    ]
    hits = [[correct(p, r) for r in rs] for p, rs in zip(problems, samples)]

    def mean(xs: Sequence[bool | float]) -> float:
        return sum(xs) / max(1, len(xs))

    k = len(samples[0]) if samples else 0
    return Figures(
        greedy_accuracy=mean(ok),
        greedy_accuracy_crossing=mean([o for o, c in zip(ok, crossing) if c]),
        greedy_accuracy_no_crossing=mean([o for o, c in zip(ok, crossing) if not c]),
        greedy_sloppy_crossing=mean(sloppy),
        sampled_accuracy=mean([mean(h) for h in hits]),
        pass_at_k=mean([any(h) for h in hits]),
        expected_sampled_accuracy=mean(answer_probs),
        expected_pass_at_k=mean([1.0 - (1.0 - p) ** k for p in answer_probs]),
        greedy_lengths=lengths(greedy),
        sampled_lengths=lengths([s for ss in samples for s in ss]),
        k=k,
        n_prompts=len(problems),
        max_new_tokens=RECIPE_MAX_NEW_TOKENS,
    )


def completion_ids(tok: PreTrainedTokenizerBase, problem: cot_task.Problem) -> tuple[list[int], list[int]]:
    """``(prompt ids, correct completion ids incl. EOS)`` of one problem."""
    prompt = tok.encode(cot_task.format_prompt(*problem), add_special_tokens=False)
    return prompt, tok.encode(cot_task.completion(*problem), add_special_tokens=False) + [EOS_TOKEN_ID]


def fits(completion: Sequence[int]) -> bool:
    """Whether a completion (EOS included) fits the recipe's response budget."""
    return len(completion) <= RECIPE_MAX_NEW_TOKENS


@torch.no_grad()
def hf_generate(
    model: Qwen2ForCausalLM,
    tok: PreTrainedTokenizerBase,
    problems: Sequence[cot_task.Problem],
    n: int,
    do_sample: bool,
    max_new_tokens: int = EVAL_MAX_NEW_TOKENS,
) -> list[list[Sample]]:
    """``n`` responses per problem with transformers' ``generate``, prompts batched by token length (no padding)."""
    ids = [tok.encode(cot_task.format_prompt(*p), add_special_tokens=False) for p in problems]
    by_len: dict[int, list[int]] = {}
    for i, x in enumerate(ids):
        by_len.setdefault(len(x), []).append(i)
    out: list[list[Sample]] = [[] for _ in problems]
    per_call = max(1, GENERATE_CHUNK // n)
    for _, group in sorted(by_len.items()):
        for start in range(0, len(group), per_call):
            idx = group[start : start + per_call]
            prompt = torch.tensor([ids[i] for i in idx])
            gen = model.generate(
                input_ids=prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                temperature=1.0 if do_sample else None,
                top_k=0 if do_sample else None,
                top_p=1.0 if do_sample else None,
                num_return_sequences=n,
                eos_token_id=EOS_TOKEN_ID,
                pad_token_id=PAD_TOKEN_ID,
            )[:, prompt.shape[1] :].tolist()
            for j, i in enumerate(idx):
                for row in gen[j * n : (j + 1) * n]:
                    end = row.index(EOS_TOKEN_ID) + 1 if EOS_TOKEN_ID in row else len(row)
                    text = tok.decode(row[:end], skip_special_tokens=True)
                    out[i].append(Sample(text, end, EOS_TOKEN_ID in row))
    return out


@torch.no_grad()
def hf_answer_probs(
    model: Qwen2ForCausalLM, tok: PreTrainedTokenizerBase, problems: Sequence[cot_task.Problem], chunk: int = 32
) -> list[float]:
    """Probability of the correct completion (incl. EOS) per problem, teacher-forced; 0 where it does not
    fit the recipe's budget. Right-padded batches of similar length: causal attention never looks at
    the padding that follows a sequence."""
    seqs = [completion_ids(tok, p) for p in problems]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]) + len(seqs[i][1]))
    probs = [0.0] * len(problems)
    for start in range(0, len(order), chunk):
        idx = order[start : start + chunk]
        width = max(len(seqs[i][0]) + len(seqs[i][1]) for i in idx)
        x = torch.full((len(idx), width), PAD_TOKEN_ID, dtype=torch.long)
        for r, i in enumerate(idx):
            x[r, : len(seqs[i][0]) + len(seqs[i][1])] = torch.tensor(seqs[i][0] + seqs[i][1])
        logp = model(input_ids=x).logits.float().log_softmax(-1)
        for r, i in enumerate(idx):
            p, c = seqs[i]
            target = torch.tensor(c).unsqueeze(-1)
            total = logp[r, len(p) - 1 : len(p) + len(c) - 1].gather(-1, target).sum().item()
            probs[i] = math.exp(total) if fits(c) else 0.0
    return probs


def evaluate_hf(
    model: Qwen2ForCausalLM, tok: PreTrainedTokenizerBase, problems: Sequence[cot_task.Problem], seed: int
) -> Figures:
    """Greedy and sampled (temperature 1.0, ``PASS_K`` per prompt) held-out figures via transformers."""
    greedy = [g[0] for g in hf_generate(model, tok, problems, 1, do_sample=False)]
    torch.manual_seed(seed + 1)
    samples = hf_generate(model, tok, problems, PASS_K, do_sample=True)
    return score(problems, greedy, samples, hf_answer_probs(model, tok, problems))


def corpus_lengths(seed: int, n: int = 20_000) -> dict[str, float]:
    """Completion lengths (tokens incl. EOS, one per character) of ``n`` draws of the noisy corpus."""
    rng, heldout = random.Random(seed), set(cot_task.heldout_problems())
    xs = sorted(len(cot_task.noisy_completion(*cot_task.draw_train(rng, heldout), rng)) + 1 for _ in range(n))
    return {
        "mean": round(sum(xs) / n, 2),
        "p50": xs[n // 2],
        "p90": xs[int(0.9 * n)],
        "max": xs[-1],
        "frac_over_max_new_tokens": sum(x > RECIPE_MAX_NEW_TOKENS for x in xs) / n,
    }


def build_cot(out_dir: Path, steps: int, seed: int, batch_tokens: int, lr: float, evaluate: bool = True) -> dict:
    """Build everything into ``out_dir``; returns the build info (also written to ``build_info.json``)."""
    torch.set_num_threads(build.NUM_THREADS)
    t0 = time.time()
    model_dir, data_dir = out_dir / "model", out_dir / "data"
    model_dir.mkdir(parents=True, exist_ok=True)

    tok = build_tokenizer()
    tok.model_max_length = MAX_POSITIONS
    heldout = cot_task.write_data(data_dir)

    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(model_config()).float()
    model.generation_config = build.generation_config()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params:,} parameters; pre-training {steps} steps x ~{batch_tokens} tokens", flush=True)

    pretrain(model, Corpus(tok, heldout, seed), steps, batch_tokens, lr)
    train_s = time.time() - t0

    model.save_pretrained(str(model_dir))
    tok.save_pretrained(str(model_dir))

    info: dict = {
        "task": "cot",
        "seed": seed,
        "steps": steps,
        "batch_tokens": batch_tokens,
        "lr": lr,
        "sloppy_prob": cot_task.SLOPPY_PROB,
        "n_params": n_params,
        "max_position_embeddings": MAX_POSITIONS,
        "eos_token_id": EOS_TOKEN_ID,
        "pad_token_id": PAD_TOKEN_ID,
        "torch": torch.__version__,
        "pretrain_seconds": round(train_s, 1),
        "corpus_lengths": corpus_lengths(seed),
    }
    if evaluate:
        t1 = time.time()
        info["heldout_hf"] = asdict(evaluate_hf(model, tok, heldout, seed))
        info["eval_seconds"] = round(time.time() - t1, 1)
    (out_dir / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory (model/ and data/ inside)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--batch-tokens", type=int, default=DEFAULT_BATCH_TOKENS)
    parser.add_argument("--lr", type=float, default=DEFAULT_LR)
    parser.add_argument("--no-eval", action="store_true", help="skip the held-out measurement")
    parser.add_argument("--check-vllm", action="store_true", help="also measure through vLLM (subprocess)")
    args = parser.parse_args(argv)

    t0 = time.time()
    info = build_cot(args.out, args.steps, args.seed, args.batch_tokens, args.lr, evaluate=not args.no_eval)
    build.report(args.out, info, "cot" if args.check_vllm else None, t0)


if __name__ == "__main__":
    main()
