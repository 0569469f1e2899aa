"""Greedy evaluation on held-out sets through the rollout engines (vLLM), scored by the verifiers."""

from __future__ import annotations

import time

from rlvr.data.dataset import PromptRow
from rlvr.rollout.batch import collect
from rlvr.rollout.group import RolloutGroup
from rlvr.verify import VerifierPool


def evaluate(
    rollouts: RolloutGroup, verify: VerifierPool, sets: dict[str, list[PromptRow]], max_tokens: int
) -> dict[str, float]:
    """``eval/<set>/accuracy``, ``eval/<set>/reward/mean``, ... for each held-out set (greedy, n=1)."""
    start = time.perf_counter()
    metrics: dict[str, float] = {}
    for name, rows in sets.items():
        batch = collect(rollouts, verify, rows, n=1, temperature=0.0, top_p=1.0, max_tokens=max_tokens, seed=None)
        m = batch.metrics()
        for key in ("accuracy", "reward/mean", "response_length/mean", "response_length/clip_ratio"):
            metrics[f"eval/{name}/{key}"] = m[key]
        metrics[f"eval/{name}/n"] = float(len(rows))
    metrics["time/eval_s"] = time.perf_counter() - start
    return metrics
