"""Rollout throughput through rlvr's rollout worker vs. the same vLLM engine called directly.

Both measurements use one engine inside one Ray actor: "direct" times ``llm.generate`` inside the
actor (pure engine time), "rlvr" times `RolloutGroup.generate` from the driver (engine + rlvr's
per-sample packaging + Ray serialisation and transfer). Overhead = 1 - rlvr/direct throughput.

    python bench/rollout_overhead.py [--prompts 128] [--n 8] [--max-tokens 6] [--repeats 5] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import ray

from rlvr.config import load_recipe
from rlvr.data.dataset import build_rows
from rlvr.placement import Placement
from rlvr.remote import init_ray
from rlvr.rollout.group import RolloutGroup
from rlvr.rollout.worker import RolloutWorker

ROOT = Path(__file__).resolve().parents[1]


class BenchWorker(RolloutWorker):
    def direct(self, prompt_ids: list[list[int]], n: int, max_tokens: int, seed: int) -> tuple[float, int]:
        from vllm import SamplingParams

        params = SamplingParams(n=n, temperature=1.0, max_tokens=max_tokens, logprobs=0, seed=seed)
        t = time.perf_counter()
        outs = self.llm.generate([{"prompt_token_ids": p} for p in prompt_ids], params, use_tqdm=False)
        return time.perf_counter() - t, sum(len(c.token_ids) for o in outs for c in o.outputs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "tiny_arith_grpo.yaml"))
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides")
    args = ap.parse_args()

    cfg = load_recipe(args.recipe, args.overrides)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cfg.model.source)
    rows, _ = build_rows(cfg.data.train[0], cfg.data, tok)
    prompts = [r.token_ids for r in rows[: args.prompts]]
    init_ray(None, None, 1)
    group = RolloutGroup(cfg, cfg.data.max_prompt_tokens + args.max_tokens, timeout_s=600,
                         placement=Placement.reserve(cfg, critic=False, timeout_s=60), worker_cls=BenchWorker)
    group.wait_ready()
    worker = group.workers[0]
    ray.get(worker.direct.remote(prompts, args.n, args.max_tokens, 0))  # warm-up
    direct, rlvr = [], []
    for i in range(args.repeats):  # interleaved so drift hits both equally
        secs, toks = ray.get(worker.direct.remote(prompts, args.n, args.max_tokens, i))
        direct.append(toks / secs)
        t = time.perf_counter()
        groups = group.generate(prompts, args.n, 1.0, 1.0, args.max_tokens, seed=i)
        secs = time.perf_counter() - t
        rlvr.append(sum(len(s["token_ids"]) for g in groups for s in g) / secs)
    d, r = statistics.median(direct), statistics.median(rlvr)
    print(f"prompts={args.prompts} n={args.n} max_tokens={args.max_tokens} repeats={args.repeats}")
    print(f"direct vLLM  : {d:10.0f} generated tokens/s (median)")
    print(f"rlvr worker  : {r:10.0f} generated tokens/s (median, through Ray from the driver)")
    print(f"rlvr overhead: {100 * (1 - r / d):.1f} %")
    ray.shutdown()


if __name__ == "__main__":
    main()
