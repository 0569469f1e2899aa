"""NFT, Negative-aware Fine-Tuning (Chen et al., arXiv 2505.18116; ALGORITHMS.md §1): the per-token loss
exactly as NVlabs/NFT ``dp_actor.py::update_policy`` computes it (NFT branch, ``neg_weight >= 0``).

Inputs: ``logprobs [B, T]`` (with grad), ``old_logprobs [B, T]``, ``mask [B, T]``, and per sequence
``r_hat [B]`` (the question's correct rate, already clamped to [0.02, 0.98] by
`parts.advantages.nft_rates`) and ``correct [B]`` (``c ∈ {0, 1}``). With ``R`` the ratio:

    ℓ⁺ = -log(max_v(R, clamp_positive))                               positives (c = 1)
    ℓ⁻ = -log(max_v((1 - r̂R) / (1 - r̂), clamp_negative))             negatives (c = 0)
    ℓ  = ω(r̂) · [ λ_neg (1 - c) ℓ⁻ + c ℓ⁺ ]

``max_v`` is `clamp_preserve_grad`: the forward value is clamped, the gradient is that of the unclamped
argument (``∇ℓ⁻ = -∇x / max(x, ε)``). ``ω`` (``prompt_weight``, the reference's ``normalize``): 0 → 1,
1 → ``1 - r̂``, 2 → ``sqrt((1 - r̂)/r̂)``. ``λ_neg`` = ``neg_weight`` (1: NFT, 0: RFT).

Ratio (``ratio_type``):

* ``"token"`` (default): ``R_{i,t} = exp(min(log π_θ - log π_old, 10))``, a hard clamp (no gradient
  above 10).
* ``"sequence"``: the *full*, not length-normalised, sequence ratio ``R_i = exp(min(Σ_t log ρ_{i,t}, 10))``
  and one loss ``ℓ_i`` per sequence. The reference sums ``ℓ_i`` over the micro-batch with *no* /1000;
  here ``ℓ_i / |o_i|`` is put on each token of sequence ``i`` so that a token sum gives back ``ℓ_i`` (to
  reproduce the reference's total, aggregate with ``token-sum-constant`` and constant 1).

Where the code departs from the paper (both offered where it matters): the paper's objective is at the
sequence level with the exact correct rate ``r_q`` and no clamps; the code (reproduced here) uses the
per-token ratio by default, the group estimate ``r̂`` clamped to [0.02, 0.98], the value-only clamps,
the prompt weight ``ω`` (the paper's default ``1 - r̂`` is mode 1), and a token-sum / 1000 aggregation
(`parts.aggregation`, ``token-sum-constant``), where the paper says "token-level" (``token-mean``).
Masked positions are 0 and garbage there does not leak (``torch.where``); the reference multiplies by the
mask instead.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["clamp_preserve_grad", "nft_loss", "nft_prompt_weight"]

NFTRatio = Literal["token", "sequence"]


def clamp_preserve_grad(
    x: torch.Tensor, min_val: float | None = None, max_val: float | None = None
) -> torch.Tensor:
    """Value of ``clamp(x, min_val, max_val)``, gradient of ``x`` (straight-through), as NVlabs/NFT."""
    clipped = torch.clamp(x, min=min_val, max=max_val)
    return x + (clipped - x).detach()


def nft_prompt_weight(r_hat: torch.Tensor, mode: int) -> torch.Tensor:
    """NFT's prompt weight ``ω(r̂)`` (reference ``normalize``): 0 → 1, 1 → ``1 - r̂``, 2 → ``sqrt((1 - r̂)/r̂)``."""
    if mode == 0:
        return torch.ones_like(r_hat)
    if mode == 1:
        return 1.0 - r_hat
    if mode == 2:
        return ((1.0 - r_hat) / r_hat) ** 0.5
    raise ValueError(f"unknown NFT prompt weight mode {mode!r}; valid: 0, 1, 2")


def nft_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    mask: torch.Tensor,
    r_hat: torch.Tensor,
    correct: torch.Tensor,
    *,
    neg_weight: float = 1.0,
    prompt_weight: int = 1,
    clamp_negative: float = 1.0,
    clamp_positive: float | None = 0.0,
    ratio_type: NFTRatio = "token",
    log_ratio_max: float = 10.0,
) -> torch.Tensor:
    """NFT per-token loss ``[B, T]`` (module docstring); 0 at masked positions.

    ``clamp_negative`` is used as ``abs(clamp_negative)`` as in the reference (its 32B script suggests
    0.5). Aggregation is separate: the reference is ``token-sum-constant`` with constant 1000.
    """
    if ratio_type not in ("token", "sequence"):
        raise ValueError(f"unknown NFT ratio type {ratio_type!r}; valid: token, sequence")
    if r_hat.dim() != 1 or correct.dim() != 1 or not r_hat.shape[0] == correct.shape[0] == logprobs.shape[0]:
        raise ValueError("r_hat and correct must be [B], one value per row of logprobs")
    valid = mask > 0  # [B, T]
    zero = torch.zeros((), dtype=logprobs.dtype, device=logprobs.device)
    delta = torch.where(valid, logprobs - old_logprobs.detach(), zero)  # [B, T]
    rate = r_hat.to(logprobs.dtype)  # [B]
    c = correct.to(logprobs.dtype)  # [B]
    if ratio_type == "token":
        ratio = torch.exp(delta.clamp(max=log_ratio_max))  # [B, T]
        rate, c = rate[:, None], c[:, None]  # [B, 1]
    else:
        ratio = torch.exp(delta.sum(-1).clamp(max=log_ratio_max))  # [B]
    proxy = (1.0 - rate * ratio) / (1.0 - rate * 1.0)  # [B, T] or [B]
    negative_loss = -torch.log(clamp_preserve_grad(proxy, min_val=abs(clamp_negative)))
    positive_loss = -torch.log(clamp_preserve_grad(ratio, min_val=clamp_positive))
    loss = negative_loss * (1.0 - c) * neg_weight + c * positive_loss
    loss = loss * nft_prompt_weight(rate, prompt_weight)
    if ratio_type == "sequence":
        lengths = valid.sum(-1).clamp(min=1).to(loss.dtype)  # [B]
        loss = (loss / lengths)[:, None].expand_as(delta)  # [B, T]: the row's token sum is ℓ_i
    return torch.where(valid, loss, zero)
