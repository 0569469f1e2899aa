"""From a scored rollout batch to the rows a learner trains on.

Order matters and follows the algorithms' definitions: shape the rewards (DAPO overlong punishment,
non-EOS penalty), score the rollouts with the frozen reference and the pre-update policy where the
algorithm needs them, compute advantages on the whole batch (group statistics, batch whitening,
KL-in-reward), then mask what overlong filtering removes.
"""

from __future__ import annotations

import statistics

import torch

from rlvr.algorithms.base import AdvantageInput, Algorithm, wants_greedy
from rlvr.algorithms.parts.kl import AdaptiveKLController, FixedKLController, kl_penalty
from rlvr.algorithms.parts.shaping import overlong_penalty, truncated_reward
from rlvr.config.schema import RecipeConfig
from rlvr.learner.batch import TrainRows
from rlvr.learner.group import LearnerGroup
from rlvr.rollout.batch import RolloutBatch
from rlvr.tracking import PhaseTimer


def kl_controller(cfg: RecipeConfig) -> FixedKLController | AdaptiveKLController:
    a = cfg.algorithm
    if a.kl_target is not None:
        return AdaptiveKLController(a.kl_coef, a.kl_target, a.kl_horizon)
    return FixedKLController(a.kl_coef)


def _shape(cfg: RecipeConfig, scores: list[float], lengths: list[int], truncated: list[bool]) -> torch.Tensor:
    a, rewards = cfg.algorithm, torch.tensor(scores, dtype=torch.float32)
    if a.overlong_buffer_ratio is not None:
        max_len = cfg.rollout.max_new_tokens
        cache = max(1, int(a.overlong_buffer_ratio * max_len))
        rewards = rewards + overlong_penalty(torch.tensor(lengths, dtype=torch.float32), max_len, cache,
                                             a.overlong_penalty_factor)
    if a.non_eos_penalty is not None:
        rewards = truncated_reward(rewards, torch.tensor(truncated), a.non_eos_penalty)
    return rewards


def shaped_rewards(cfg: RecipeConfig, batch: RolloutBatch) -> torch.Tensor:
    """Verifier scores plus the algorithm's reward shaping, ``[N]``."""
    return _shape(cfg, batch.rewards, batch.response_lengths, batch.truncated)


def shaped_greedy_rewards(cfg: RecipeConfig, batch: RolloutBatch) -> torch.Tensor:
    """ReMax's baseline, ``[N]``: each sample's prompt's greedy response, scored and shaped exactly as the
    samples are (an overlong or truncated greedy response pays the same penalty), so the two are comparable."""
    samples, results = batch.greedy_samples or [], batch.greedy_results or []
    per_prompt = _shape(cfg, [r.score for r in results], [len(s["token_ids"]) for s in samples],
                        [s["finish_reason"] == "length" for s in samples])  # [P]
    return per_prompt[torch.tensor(batch.group_ids, dtype=torch.long)]


def reward_terms(batch: RolloutBatch) -> dict[str, torch.Tensor]:
    """Each term of a composed reward, ``[N]`` per term name (GDPO normalises them one by one); empty when the
    verifiers report no terms. A sample whose verification failed (a timeout, a crash) reports no terms and
    scores its verifier's failure score; its terms count 0, the same no-credit verdict."""
    terms = [r.details.get("terms") or {} for r in batch.results]
    names = sorted({name for t in terms for name in t})
    return {name: torch.tensor([float(t.get(name, 0.0)) for t in terms]) for name in names}


def response_space(values: list[list[float]], lengths: list[int]) -> torch.Tensor:
    """Per-response lists -> left-aligned ``[N, T]`` (zeros past each response)."""
    out = torch.zeros(len(lengths), max(lengths, default=0))
    for i, vals in enumerate(values):
        if vals:
            out[i, : len(vals)] = torch.tensor(vals)
    return out


def prepare_rows(
    cfg: RecipeConfig, algorithm: Algorithm, batch: RolloutBatch, learners: LearnerGroup, kl_coef: float,
    timer: PhaseTimer, critic: LearnerGroup | None = None, step: int = 0,
) -> tuple[TrainRows, dict[str, float]]:
    """The rows the learners train on, and the step's advantage metrics. ``step`` seeds the advantage stage's
    random choices (Clip-Cov's token draw), so a resumed run repeats them."""
    a, rows = cfg.algorithm, batch.train_rows()
    lengths = batch.response_lengths
    if algorithm.needs_reference:
        with timer("reference"):
            rows.ref_logprobs = learners.compute_logprobs(rows, "reference")
    if algorithm.needs_old_logprobs:
        with timer("old_logprobs"):
            rows.old_logprobs = learners.compute_logprobs(rows, "policy")
    values = None
    if critic is not None:
        with timer("values"):
            rows.values = critic.compute_values(rows)
        values = response_space(rows.values, lengths)
    with timer("advantage"):
        rewards = shaped_rewards(cfg, batch)
        mask = response_space([[1.0] * n for n in lengths], lengths)  # [N, T]
        kl = None
        if a.kl_placement == "reward":
            # k1 of the pre-update policy against the reference, per token (REINFORCE++, PPO-RLHF)
            old = response_space(rows.old_logprobs or [], lengths)
            ref = response_space(rows.ref_logprobs or [], lengths)
            kl = kl_penalty(old, ref, "k1") * mask
        sizes = batch.group_sizes or [cfg.rollout.n]  # equal unless extra samples went to some groups only
        out = algorithm.advantages(AdvantageInput(
            rewards, sizes[0], mask, kl=kl, kl_coef=kl_coef, values=values,
            correct=torch.tensor([res.correct for res in batch.results]),
            # equal groups go by size: the estimators' reshape path, bit-identical to the references
            group_ids=torch.tensor(batch.group_ids) if len(set(sizes)) > 1 else None,
            reward_terms=reward_terms(batch),
            baseline=shaped_greedy_rewards(cfg, batch) if wants_greedy(algorithm) else None,
            logprobs=response_space(rows.old_logprobs, lengths) if rows.old_logprobs is not None else None,
            seed=cfg.run.seed * 1_000_003 + step,
        ))
        if out.returns is not None:
            rows.returns = [out.returns[i, :n].tolist() for i, n in enumerate(lengths)]
        rows.advantages = [out.advantages[i, :n].tolist() for i, n in enumerate(lengths)]
        rows.row_values = {k: v.tolist() for k, v in out.row_values.items()}
        rows.token_values = {k: [v[i, :n].tolist() for i, n in enumerate(lengths)] for k, v in out.token_values.items()}
        if a.overlong_filter:
            rows.active = [not t for t in batch.truncated]
    adv_tokens = out.advantages[mask > 0]
    metrics = {
        "reward/shaped_mean": rewards.mean().item(),
        "advantage/mean": adv_tokens.mean().item() if adv_tokens.numel() else 0.0,
        "advantage/abs_mean": adv_tokens.abs().mean().item() if adv_tokens.numel() else 0.0,
        "advantage/max": adv_tokens.max().item() if adv_tokens.numel() else 0.0,
        "advantage/min": adv_tokens.min().item() if adv_tokens.numel() else 0.0,
        "actor/kl_coef": kl_coef,
        **out.metrics,
    }
    if kl is not None:
        metrics["actor/kl_in_reward"] = (kl.sum() / mask.sum()).item()
    if rows.active is not None:
        metrics["overlong_filter/masked_fraction"] = 1.0 - statistics.fmean(rows.active)
    return rows, metrics
