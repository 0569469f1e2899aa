"""From a scored rollout batch to the rows a learner trains on.

Order matters and follows the algorithms' definitions: shape the rewards (DAPO overlong punishment,
non-EOS penalty), score the rollouts with the frozen reference and the pre-update policy where the
algorithm needs them, compute advantages on the whole batch (group statistics, batch whitening,
KL-in-reward), then mask what overlong filtering removes.
"""

from __future__ import annotations

import statistics

import torch

from rlvr.algorithms.base import AdvantageInput, Algorithm
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


def shaped_rewards(cfg: RecipeConfig, batch: RolloutBatch) -> torch.Tensor:
    """Verifier scores plus the algorithm's reward shaping, ``[N]``."""
    a, rewards = cfg.algorithm, torch.tensor(batch.rewards, dtype=torch.float32)
    truncated = torch.tensor(batch.truncated)
    if a.overlong_buffer_ratio is not None:
        max_len = cfg.rollout.max_new_tokens
        cache = max(1, int(a.overlong_buffer_ratio * max_len))
        lengths = torch.tensor(batch.response_lengths, dtype=torch.float32)
        rewards = rewards + overlong_penalty(lengths, max_len, cache, a.overlong_penalty_factor)
    if a.non_eos_penalty is not None:
        rewards = truncated_reward(rewards, truncated, a.non_eos_penalty)
    return rewards


def response_space(values: list[list[float]], lengths: list[int]) -> torch.Tensor:
    """Per-response lists -> left-aligned ``[N, T]`` (zeros past each response)."""
    out = torch.zeros(len(lengths), max(lengths, default=0))
    for i, vals in enumerate(values):
        if vals:
            out[i, : len(vals)] = torch.tensor(vals)
    return out


def prepare_rows(
    cfg: RecipeConfig, algorithm: Algorithm, batch: RolloutBatch, learners: LearnerGroup, kl_coef: float,
    timer: PhaseTimer, critic: LearnerGroup | None = None,
) -> tuple[TrainRows, dict[str, float]]:
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
        out = algorithm.advantages(AdvantageInput(
            rewards, cfg.rollout.n, mask, kl=kl, kl_coef=kl_coef, values=values,
            correct=torch.tensor([res.correct for res in batch.results]),
        ))
        if out.returns is not None:
            rows.returns = [out.returns[i, :n].tolist() for i, n in enumerate(lengths)]
        rows.advantages = [out.advantages[i, :n].tolist() for i, n in enumerate(lengths)]
        rows.row_values = {k: v.tolist() for k, v in out.row_values.items()}
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
