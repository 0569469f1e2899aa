"""Evaluation on held-out sets through vLLM, scored by the verifiers: greedy accuracy, or with several
samples per prompt pass@k (the unbiased estimator) and avg@n. Used during training (`evaluate`) and by
``rlvr eval`` (`rlvr.eval_model`)."""

from __future__ import annotations

import time

from rlvr.config.schema import RecipeConfig
from rlvr.data.dataset import PromptRow
from rlvr.rollout.batch import collect
from rlvr.rollout.group import RolloutGroup
from rlvr.verify import VerifierPool, VerifyResult


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of ``k`` samples, drawn without replacement from ``n`` of which ``c``
    are correct, is correct: 1 - C(n-c, k) / C(n, k) (Chen et al. 2021, "Evaluating Large Language
    Models Trained on Code", arXiv 2107.03374, eq. 1), computed as a stable product."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def verdicts(results: list[VerifyResult], n: int) -> list[list[bool]]:
    """Group-major results (each prompt's ``n`` samples in a row) -> per-prompt lists of verdicts."""
    return [[bool(r.correct) for r in results[i : i + n]] for i in range(0, len(results), n)]


def summarize(correct: list[list[bool]], ks: list[int]) -> dict[str, float]:
    """``pass@k`` for each k (mean over prompts of the unbiased estimate) and ``avg@n`` (mean
    correctness of all samples) from per-prompt lists of verdicts of equal length n."""
    n = len(correct[0])
    out = {f"pass@{k}": sum(pass_at_k(n, sum(c), k) for c in correct) / len(correct) for k in ks if k <= n}
    out[f"avg@{n}"] = sum(sum(c) for c in correct) / (n * len(correct))
    return out


def evaluate(
    rollouts: RolloutGroup, verify: VerifierPool, sets: dict[str, list[PromptRow]], cfg: RecipeConfig
) -> dict[str, float]:
    """``eval/<set>/accuracy``, ``eval/<set>/reward/mean``, ... for each held-out set: greedy, or sampled
    (``eval.do_sample``, by default when ``eval.n`` > 1) at ``eval.temperature`` and ``eval.top_p``, with
    ``eval/<set>/pass@k`` and ``avg@n`` when ``n`` > 1 (the same seeds at every evaluation, so the curve shows
    the policy, not the sampling noise)."""
    e, start = cfg.eval, time.perf_counter()
    max_tokens = e.max_new_tokens or cfg.rollout.max_new_tokens
    metrics: dict[str, float] = {}
    for name, rows in sets.items():
        sampled = e.n > 1 if e.do_sample is None else e.do_sample
        batch = collect(rollouts, verify, rows, n=e.n, temperature=e.temperature if sampled else 0.0,
                        top_p=e.top_p if sampled else 1.0, max_tokens=max_tokens,
                        seed=cfg.run.seed if sampled else None)
        m = batch.metrics()
        for key in ("accuracy", "reward/mean", "response_length/mean", "response_length/clip_ratio"):
            metrics[f"eval/{name}/{key}"] = m[key]
        metrics[f"eval/{name}/n"] = float(len(rows))
        if e.n > 1:
            metrics.update({f"eval/{name}/{k}": v
                            for k, v in summarize(verdicts(batch.results, e.n), default_ks(e.n)).items()})
    metrics["time/eval_s"] = time.perf_counter() - start
    return metrics
