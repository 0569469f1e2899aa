"""Importance ratios between the current policy and the policy that produced the rollouts.

``logprobs [B, T]`` (current policy, with grad) and ``old_logprobs [B, T]`` (detached) are the
log-probabilities of the sampled tokens; ``mask`` (read as ``mask > 0``) marks the response tokens.
Outputs are ``[B, T]`` and exactly 0 (log) / 1 (ratio) at masked positions; garbage there, inf or NaN,
reaches neither the value nor the gradient.

Levels (ALGORITHMS.md §§0, 5, 13):

* ``token``: ``log ρ_{i,t} = log π_θ(o_{i,t}) - log π_old(o_{i,t})`` (PPO, GRPO, DAPO).
* ``sequence`` (GSPO, Zheng et al., arXiv 2507.18071 eq. 7): the length-normalised sequence ratio
  ``log s_i = (1/|o_i|) Σ_t log ρ_{i,t}``, the same value on every token of sequence ``i``; its gradient
  reaches every token of the sequence with weight ``1/|o_i|``.
* ``sequence_token`` (GSPO-token, eq. 13): ``log s_{i,t} = sg[log s_i] + log π_θ(o_{i,t}) - sg[log π_θ(o_{i,t})]``.
  Its value equals ``sequence``'s; its gradient is per token (``∇ log s_{i,t} = ∇ log π_θ(o_{i,t})``), which
  allows per-token advantages. With per-sequence advantages and ``seq-mean-token-mean`` aggregation
  it gives GSPO's value and gradient exactly. This is verl's ``compute_policy_loss_gspo``.

Clamps (applied to the final log-ratio, value and gradient both clamped, like ``torch.clamp``): verl's
vanilla PPO loss clamps the token log-ratio to [-20, 20] (``clamp_min=-20, clamp_max=20``); verl's GSPO
clamps the combined GSPO-token log-ratio at 10 (``level="sequence_token", clamp_max=10``). rlvr's
default is no clamp.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["RATIO_LEVELS", "RatioLevel", "importance_ratio", "log_ratio"]

RatioLevel = Literal["token", "sequence", "sequence_token"]
RATIO_LEVELS: tuple[str, ...] = ("token", "sequence", "sequence_token")


def log_ratio(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    mask: torch.Tensor,
    level: RatioLevel = "token",
    clamp_max: float | None = None,
    clamp_min: float | None = None,
) -> torch.Tensor:
    """Log importance ratio ``[B, T]`` at the given level (module docstring); 0 at masked positions."""
    if level not in RATIO_LEVELS:
        raise ValueError(f"unknown ratio level {level!r}; valid: {', '.join(RATIO_LEVELS)}")
    if logprobs.shape != old_logprobs.shape or logprobs.shape != mask.shape:
        raise ValueError(f"logprobs {tuple(logprobs.shape)}, old {tuple(old_logprobs.shape)} and mask "
                         f"{tuple(mask.shape)} must have the same [B, T] shape")
    valid = mask > 0  # [B, T]
    zero = torch.zeros((), dtype=logprobs.dtype, device=logprobs.device)
    delta = torch.where(valid, logprobs - old_logprobs.detach(), zero)  # [B, T]
    if level == "token":
        out = delta
    else:
        lengths = valid.sum(-1).clamp(min=1).to(delta.dtype)  # [B]
        seq = delta.sum(-1) / lengths  # [B] log s_i
        if level == "sequence":
            out = seq[:, None].expand_as(delta)  # [B, T]
        else:
            current = torch.where(valid, logprobs, zero)  # [B, T]
            out = current - current.detach() + seq.detach()[:, None]  # [B, T] value log s_i, grad per token
    if clamp_min is not None or clamp_max is not None:
        out = out.clamp(min=clamp_min, max=clamp_max)
    return torch.where(valid, out, zero)


def importance_ratio(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    mask: torch.Tensor,
    level: RatioLevel = "token",
    clamp_max: float | None = None,
    clamp_min: float | None = None,
) -> torch.Tensor:
    """``exp(log_ratio(...))``: ``[B, T]``, 1 at masked positions."""
    return torch.exp(log_ratio(logprobs, old_logprobs, mask, level, clamp_max=clamp_max, clamp_min=clamp_min))
