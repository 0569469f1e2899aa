"""GRPO (Shao et al., DeepSeekMath, arXiv 2402.03300).

Advantage: ``A_i = (R_i - mean_q) / (std_q + eps)`` over the G responses of a prompt, broadcast to
every token. The std is ``torch.std``'s unbiased (N-1) estimate, as in verl and OpenRLHF; with
``std_normalize=False`` the advantage is Dr. GRPO's ``R_i - mean_q`` (arXiv 2503.20783).
Loss: PPO-clip on the token ratio with bounds ``1 - clip_low`` / ``1 + clip_high`` plus an optional
KL-in-loss term (k3 by default, as the paper) and entropy bonus, reduced by ``loss_agg``. The paper
averages per sequence (``seq-mean-token-mean``); rlvr's default is ``token-mean``, which most
zero-RL recipes (SimpleRL-Zoo, DAPO) use.
"""

from __future__ import annotations

import torch

from rlvr.algorithms.base import LossInput, LossNorm, aggregate, kl_estimate
from rlvr.config.schema import AlgorithmConfig


def group_advantages(rewards: torch.Tensor, group_size: int, std_normalize: bool, eps: float) -> torch.Tensor:
    """Group-relative advantages. ``rewards [N]`` ordered group by group -> ``[N]``.

    A group whose rewards are all equal gets zero advantages (no signal), with or without std.
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not form groups of {group_size}")
    r = rewards.float().view(-1, group_size)  # [P, G]
    centred = r - r.mean(dim=1, keepdim=True)  # [P, G]
    if std_normalize and group_size > 1:
        centred = centred / (r.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)  # [N]


def ppo_clip_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, clip_low: float, clip_high: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token ``-min(rho A, clip(rho, 1-clip_low, 1+clip_high) A)`` and where each bound was active."""
    ratio = torch.exp(logprobs - old_logprobs)  # [B, T]
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)  # [B, T]
    hit = clipped > unclipped
    return loss, hit & (ratio < 1.0), hit & (ratio > 1.0)


class GRPO:
    """Group-relative policy optimisation with PPO clipping and optional KL / entropy terms."""

    def __init__(self, cfg: AlgorithmConfig) -> None:
        self.cfg = cfg
        self.needs_reference = cfg.kl_coef > 0

    def advantages(self, rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        return group_advantages(rewards, group_size, self.cfg.std_normalize, self.cfg.eps)

    def loss(self, batch: LossInput, norm: LossNorm) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c, mask = self.cfg, batch.mask
        pg, low, high = ppo_clip_loss(batch.logprobs, batch.old_logprobs, batch.advantages, c.clip_low, c.clip_high)
        per_token = pg
        sums = {
            "actor/pg_loss": (pg * mask).sum().detach(),
            "actor/pg_clipfrac_lower": (low * mask).sum().float(),
            "actor/pg_clipfrac_upper": (high * mask).sum().float(),
        }
        if batch.ref_logprobs is not None:
            kl = kl_estimate(batch.logprobs, batch.ref_logprobs, c.kl_estimator)
            if c.kl_coef > 0:
                per_token = per_token + c.kl_coef * kl
            sums["actor/kl"] = (kl * mask).sum().detach()
        if batch.entropy is not None and c.entropy_coef > 0:
            per_token = per_token - c.entropy_coef * batch.entropy
        return aggregate(per_token, mask, c.loss_agg, norm), sums
