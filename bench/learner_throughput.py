"""Learner throughput: rlvr's LearnerWorker with packed vs padded micro-batches, and a plain PyTorch loop
on the same rows, on a named model shape. No Ray and no vLLM on this path (the learner runs in this
process, one DeepSpeed rank), so it also runs on a GPU machine that has neither.

    python bench/learner_throughput.py                                   # tiny shape, CPU
    python bench/learner_throughput.py --shape qwen2.5-0.5b --dtype bfloat16 --rows 128 \\
        --prompt 256 --min-response 128 --max-response 1024 --micro-batch-tokens 16384   # GPU

Variants: ``before`` (padded rows in their order, whole-vocabulary logits: the learner before packing),
``padded`` (rows grouped by length, chunked log-probs), ``packed`` (packed rows, chunked log-probs), ``plain``.

Rows: ``--rows`` sequences of ``--prompt`` prompt tokens plus a long-tailed response length (log-uniform
between ``--min-response`` and ``--max-response``), random token ids, alternating advantages. Prints per
variant: tokens/s of one update (forward + backward + optimizer step over all rows), seconds of a log-prob
pass, the fraction of computed positions that were padding, peak memory and, on CUDA, MFU (6 x params x
tokens / time / peak FLOP/s).
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES: dict[str, dict[str, Any]] = {  # Qwen2.5 shapes (random init; the tiny one is rlvr's own model)
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def model_dir(shape: str, dtype: str, out: Path) -> tuple[Path, int]:
    """A model directory of ``shape`` and its vocabulary size (the tiny default as shipped; Qwen shapes
    random-initialised, with the tiny tokenizer: the learner only needs its padding id)."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from rlvr.config import load_recipe

    tiny = Path(load_recipe(ROOT / "recipes" / "tiny_arith_grpo.yaml").model.path)
    if shape == "tiny":
        return tiny, AutoTokenizer.from_pretrained(tiny).vocab_size
    cfg = Qwen2Config(max_position_embeddings=32768, rope_theta=1e6, **SHAPES[shape])
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).to(getattr(torch, dtype))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(out)
    return out, cfg.vocab_size


def make_rows(args: argparse.Namespace, vocab: int) -> Any:
    from rlvr.learner.batch import TrainRows

    rng = random.Random(args.seed)
    ids, plens, adv = [], [], []
    for k in range(args.rows):
        n = int(math.exp(rng.uniform(math.log(args.min_response), math.log(args.max_response))))
        ids.append([rng.randrange(1, vocab) for _ in range(args.prompt + n)])
        plens.append(args.prompt)
        adv.append([1.0 if k % 2 == 0 else -1.0] * n)
    return TrainRows(input_ids=ids, prompt_lens=plens, advantages=adv)


def _peak_reset() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float:
    """Peak GPU memory of the timed updates; on CPU the process's peak RSS so far (it only grows: compare
    CPU variants by running one per process, ``--variants``)."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def in_order_bins(lengths: list[int], budget: int) -> list[list[int]]:
    """The micro-batching before packing (rlvr 0.1 up to issue 14): rows in their order, a new micro-batch
    whenever ``rows x longest`` would pass the budget. For the "before" figure."""
    bins: list[list[int]] = [[]]
    for i, n in enumerate(lengths):
        if bins[-1] and (len(bins[-1]) + 1) * max([lengths[j] for j in bins[-1]] + [n]) > budget:
            bins.append([])
        bins[-1].append(i)
    return bins


def run_rlvr(args: argparse.Namespace, path: Path, rows: Any, variant: str) -> dict[str, float]:
    """``before``: padded rows in order, whole-vocabulary logits (the learner before issue 14); ``padded``:
    padded rows grouped by length, chunked log-probs; ``packed``: packed rows, chunked log-probs."""
    import rlvr.learner.worker as learner_worker
    from rlvr.config import load_recipe
    from rlvr.learner.packing import pack, padded_bins
    from rlvr.learner.worker import LearnerWorker

    cfg = load_recipe(ROOT / "recipes" / "tiny_arith_grpo.yaml", [
        f"model.path={path}", f"model.dtype={args.dtype}", f"learner.zero_stage={args.zero_stage}",
        f"learner.micro_batch_tokens={args.micro_batch_tokens}", f"learner.packing={variant == 'packed'}",
        f"learner.logprob_chunk_tokens={0 if variant == 'before' else args.chunk_tokens}",
        "algorithm.kl_coef=0", "algorithm.kl_placement=none", f"run.output_dir={tempfile.mkdtemp()}",
    ])
    learner_worker.padded_bins = in_order_bins if variant == "before" else padded_bins
    worker = LearnerWorker(cfg, 0, 1, "127.0.0.1", _port())
    info = worker.setup()
    chunks = worker._chunks(rows)
    real = rows.num_tokens()
    if worker.packing:  # the positions the model computes, padding tails of packed rows included
        cpu = torch.device("cpu")
        computed = sum(pack([rows.input_ids[i] for i in c], 0, cpu, worker._row_tokens).input_ids.numel()
                       for c in chunks if c)
    else:
        computed = sum(len(c) * max(len(rows.input_ids[i]) for i in c) for c in chunks if c)
    tokens, seqs = float(rows.response_tokens()), float(rows.active_sequences())
    worker.train_step(rows, tokens, seqs)  # warm-up (allocator, kernels)
    _peak_reset()
    start = time.perf_counter()
    for _ in range(args.steps):
        worker.train_step(rows, tokens, seqs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    train_s = (time.perf_counter() - start) / args.steps
    start = time.perf_counter()
    worker.compute_logprobs(rows)
    logprob_s = time.perf_counter() - start
    out = {"tokens_per_s": real / train_s, "train_s": train_s, "logprob_s": logprob_s,
           "pad_fraction": 1 - real / computed, "micro_batches": float(len(chunks)), "peak_gib": _peak_gib(),
           "params": float(info["params"]), "batching": worker.batching}
    del worker
    return out


def run_plain(args: argparse.Namespace, path: Path, rows: Any) -> dict[str, float]:
    """A plain PyTorch + transformers update on the same rows: padded micro-batches of the same token budget
    (sorted by length), AdamW, one step."""
    from transformers import AutoModelForCausalLM

    from rlvr.learner.batch import collate
    from rlvr.learner.packing import padded_bins

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, args.dtype)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    chunks = padded_bins([len(x) for x in rows.input_ids], args.micro_batch_tokens)
    n_tok = float(rows.response_tokens())

    def step() -> None:
        for idx in chunks:
            mb = collate(rows.select(idx), 0, device)
            logits = model(input_ids=mb.input_ids, attention_mask=mb.attention_mask).logits[:, :-1].float()
            lp = torch.log_softmax(logits, -1).gather(-1, mb.targets.unsqueeze(-1)).squeeze(-1)
            (-(lp * mb.advantages * mb.mask).sum() / n_tok).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    _peak_reset()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    train_s = (time.perf_counter() - start) / args.steps
    return {"tokens_per_s": rows.num_tokens() / train_s, "train_s": train_s, "peak_gib": _peak_gib()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=["tiny", *SHAPES], default="tiny")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--zero-stage", type=int, default=2)
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--prompt", type=int, default=8)
    p.add_argument("--min-response", type=int, default=4)
    p.add_argument("--max-response", type=int, default=96)
    p.add_argument("--micro-batch-tokens", type=int, default=2048)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-tokens", type=int, default=1024, help="learner.logprob_chunk_tokens (not for 'before')")
    p.add_argument("--variants", default="before,padded,packed,plain")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="device bf16 dense peak for MFU (H100/H200: 989)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, vocab = model_dir(args.shape, args.dtype, Path(tmp))
        rows = make_rows(args, vocab)
        lengths = [len(x) for x in rows.input_ids]
        print(f"{args.shape} ({args.dtype}, ZeRO-{args.zero_stage}): {len(lengths)} rows, {sum(lengths)} tokens, "
              f"lengths {min(lengths)}-{max(lengths)} (median {sorted(lengths)[len(lengths) // 2]}), "
              f"micro-batches of {args.micro_batch_tokens} tokens, {args.steps} timed updates, "
              f"device {'cuda' if torch.cuda.is_available() else 'cpu'} ({torch.get_num_threads()} threads)")
        results: dict[str, dict[str, Any]] = {}
        for variant in args.variants.split(","):
            if variant == "plain":
                results[variant] = run_plain(args, path, rows)
            else:
                results[variant] = run_rlvr(args, path, rows, variant)
            r = results[variant]
            line = f"{variant:7s} {r['tokens_per_s']:10.0f} tokens/s  update {r['train_s']:.3f} s"
            if "logprob_s" in r:
                line += f"  log-prob pass {r['logprob_s']:.3f} s  pad {100 * r['pad_fraction']:.1f}%"
                line += f"  {int(r['micro_batches'])} micro-batches"
                if torch.cuda.is_available():
                    mfu = 6 * r["params"] * r["tokens_per_s"] / (args.peak_tflops * 1e12)
                    line += f"  MFU {100 * mfu:.1f}%"
            line += f"  peak {r['peak_gib']:.2f} GiB" + (f"  [{r['batching']}]" if "batching" in r else "")
            print(line, flush=True)
        for base in ("before", "padded", "plain"):
            if "packed" in results and base in results:
                print(f"packed / {base}: {results['packed']['tokens_per_s'] / results[base]['tokens_per_s']:.2f}x")


if __name__ == "__main__":
    main()
