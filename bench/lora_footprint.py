"""What LoRA saves: the weight sync's bytes per step and the learner's optimizer state, full fine-tuning vs a
LoRA adapter, measured on rlvr's own LearnerWorker (one DeepSpeed rank in this process; no Ray, no vLLM).

    python bench/lora_footprint.py                                     # the tiny default, r=4 (its recipe)
    python bench/lora_footprint.py --shape qwen2.5-0.5b --r 32 --dtype bfloat16   # a real shape (GPU or big CPU)

Per variant it prints the parameters the optimizer trains, the bytes one sync sends to each engine (the
``weight_manifest`` at ``model.dtype``: every weight, or the adapter's tensors), the optimizer state held
after one update (Adam moments and ZeRO's fp32 master copy, counted tensor by tensor) and the update's time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.learner_throughput import _port, model_dir  # noqa: E402


def measure(model: Path, vocab: int, dtype: str, lora: dict | None, rows: int) -> dict[str, float]:
    from rlvr.config import load_recipe
    from rlvr.learner.batch import TrainRows
    from rlvr.learner.worker import LearnerWorker

    overrides = [f"model.path={model}", f"model.dtype={dtype}", "algorithm.kl_coef=0", "algorithm.kl_placement=none",
                 "learner.zero_stage=2"]
    if lora:
        overrides.append("model.lora={" + ", ".join(f"{k}: {v}" for k, v in lora.items()) + "}")
    cfg = load_recipe(ROOT / "recipes" / "tiny_arith_grpo.yaml", overrides)
    worker = LearnerWorker(cfg, 0, 1, "127.0.0.1", _port())
    info = worker.setup()
    gen = torch.Generator().manual_seed(0)
    ids = [torch.randint(0, vocab, (48,), generator=gen).tolist() for _ in range(rows)]
    batch = TrainRows(input_ids=ids, prompt_lens=[16] * rows, advantages=[[(-1.0) ** i] * 32 for i in range(rows)])
    start = time.perf_counter()
    worker.train_step(batch, num_tokens=32.0 * rows, num_sequences=float(rows))
    seconds = time.perf_counter() - start
    itemsize = torch.empty((), dtype=getattr(torch, dtype)).element_size()  # what the engines receive
    held = torch.empty((), dtype=getattr(torch, cfg.learner.master_dtype)).element_size() if dtype == "float32" \
        else itemsize  # the learner's module: master dtype for float32 models, else DeepSpeed's 16-bit copy
    sync = sum(b for _, b in worker.weight_manifest()) / held * itemsize
    return {"params": info["params"], "trained": info["trainable_params"], "sync_bytes": sync,
            "optimizer_bytes": worker.optimizer_state_bytes(), "update_s": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="tiny")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--r", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=8.0)
    ap.add_argument("--rows", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model, vocab = model_dir(args.shape, args.dtype, Path(tmp))
        full = measure(model, vocab, args.dtype, None, args.rows)
        adapter = measure(model, vocab, args.dtype, {"r": args.r, "alpha": args.alpha}, args.rows)
    print(f"shape {args.shape}, {args.dtype}, LoRA r={args.r} on all linear layers, {args.rows} rows of 48 tokens")
    print(f"{'':8s} {'trained params':>15s} {'sync bytes/step':>16s} {'optimizer state':>16s} {'update s':>9s}")
    for name, m in (("full", full), ("lora", adapter)):
        print(f"{name:8s} {m['trained']:>15,d} {m['sync_bytes']:>16,.0f} {m['optimizer_bytes']:>16,d} "
              f"{m['update_s']:>9.3f}")
    print(f"lora/full: sync {adapter['sync_bytes'] / full['sync_bytes']:.2%}, optimizer state "
          f"{adapter['optimizer_bytes'] / full['optimizer_bytes']:.2%}")


if __name__ == "__main__":
    main()
