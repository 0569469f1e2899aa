"""Rollout/learner mismatch: vLLM samples with its own kernels (and often lower precision), so its
log-probabilities ``π_sampler`` differ from the learner's ``π_old`` for the same weights and tokens.

* `tis_weights`: truncated importance sampling (Yao et al., "Your efficient RL framework secretly
  brings you off-policy RL training", 2025; verl ``imp_ratio_cap`` / rollout IS with token-level
  truncation; oat ``tis_c = 2.0``): ``w_t = min(π_old(o_t) / π_sampler(o_t), cap)``, detached, multiplied
  into the per-token policy loss so the gradient estimates the expectation under ``π_old``.
* `mismatch_stats`: plain-float diagnostics to log every step.
"""

from __future__ import annotations

import torch

__all__ = ["mismatch_stats", "tis_weights"]


def tis_weights(
    old_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor, cap: float
) -> torch.Tensor:
    """``min(exp(old - sampler), cap)`` per token, detached: ``[B, T]``, 0 at masked positions."""
    if cap <= 0:
        raise ValueError(f"the TIS cap must be positive, got {cap}")
    valid = mask > 0  # [B, T]
    zero = torch.zeros((), dtype=old_logprobs.dtype, device=old_logprobs.device)
    delta = torch.where(valid, old_logprobs.detach() - sampler_logprobs.detach(), zero)  # [B, T]
    weights = torch.exp(delta).clamp(max=cap)  # [B, T]
    return torch.where(valid, weights, zero)


def mismatch_stats(old_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Learner-vs-sampler diagnostics over the masked tokens, as plain floats (in float64).

    With ``δ = log π_old - log π_sampler`` per token (tokens were sampled from ``π_sampler``):

    * ``abs_logprob_diff``: mean ``|δ|``.
    * ``kl_k3``: mean ``exp(δ) - 1 - δ``, the k3 estimate of KL(π_sampler ‖ π_old) (≥ 0, unbiased).
    * ``ratio_max`` / ``ratio_min``: extremes of ``exp(δ) = π_old / π_sampler`` (the TIS weight before
      truncation).
    * ``num_tokens``: the number of tokens measured. With none, every statistic is neutral (0 or 1).
    """
    valid = mask > 0
    delta = (old_logprobs.detach().double() - sampler_logprobs.detach().double())[valid]  # [n]
    if delta.numel() == 0:
        return {"abs_logprob_diff": 0.0, "kl_k3": 0.0, "ratio_max": 1.0, "ratio_min": 1.0, "num_tokens": 0.0}
    ratio = torch.exp(delta)  # [n]
    return {
        "abs_logprob_diff": delta.abs().mean().item(),
        "kl_k3": (ratio - 1.0 - delta).mean().item(),
        "ratio_max": ratio.max().item(),
        "ratio_min": ratio.min().item(),
        "num_tokens": float(delta.numel()),
    }
