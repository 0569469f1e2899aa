"""Off-policy corrections between the sampler and the learner (ALGORITHMS.md §15.11).

vLLM samples with its own kernels (often in lower precision) and, in asynchronous training, with weights
up to ``rollout.max_staleness`` policy versions old, so the behaviour policy ``π_sampler`` that drew the
tokens is not the learner's proximal policy ``π_old``. The policy-gradient loss is multiplied per token
by a detached weight built from the behaviour ratio

    ``ρ_t = π_old(o_t) / π_sampler(o_t) = exp(δ_t)``,  ``δ_t = log π_old(o_t) - log π_sampler(o_t)``,

so that the gradient estimates the expectation under ``π_old`` (decoupled PPO, Hilton et al. arXiv
2110.00641). ``C`` is the cap (``algorithm.tis_cap``), ``low`` the lower bound of a band
(``algorithm.is_low``; None: no lower bound), ``ρ_i = exp(Σ_t δ_{i,t})`` the sequence ratio over the
response's unmasked tokens (one row of the micro-batch is one response):

=================  =============================================  ===========================================
``is_correction``  weight                                         reference
=================  =============================================  ===========================================
``token_tis``      ``w_t = min(ρ_t, C)``                          Yao et al. 2025, "Your efficient RL
                                                                  framework secretly brings you off-policy
                                                                  RL training"; oat ``tis_c``; verl token TIS
``seq_tis``        ``w_i = min(ρ_i, C)`` on every token of ``i``  verl rollout IS, sequence level, truncate
``mis``            ``w_i = ρ_i·1[low ≤ ρ_i ≤ C]`` on every token  Liu, Li et al. 2025, "When Speed Kills
                                                                  Stability: Demystifying RL Collapse from
                                                                  the Training-Inference Mismatch" (seq MIS)
``icepop``         ``w_t = ρ_t·1[low ≤ ρ_t ≤ C]``                 IcePop (inclusionAI, Ring-1T, arXiv
                                                                  2510.18855); band (0.5, 5) in verl's docs
                                                                  and TRL's tests (paper values unverified)
======================  ===============================================  ==========================================

Conventions, and where they depart from the references:

* Every weight is detached (stop-gradient) and exactly 0 at masked positions; garbage there (inf, NaN)
  reaches neither the weights nor the sequence sums.
* Sequence sums are taken in log space in float32 or wider, the band is tested on the unclamped log,
  and the log is clamped at ``log C`` before ``exp``: the weight is exactly ``min(ρ_i, C)`` (or ``ρ_i``
  inside the band) and never overflows, however long the response. Very negative sums give weight 0,
  not NaN. verl instead clamps ``δ_t`` and ``Σ_t δ_t`` to ±20 (``SAFETY_BOUND``) before exp, which
  differs only outside ``[e^-20, e^20]``.
* Masking (``mis``, ``icepop``) zeroes the weight; the aggregation's token and sequence counts keep the
  rejected tokens (as AReaL does). verl's decoupled mode removes them from the mask before the update, so
  its denominators shrink.
* The band is tested on ``ρ = π_old / π_sampler`` as IcePop defines it. verl's k1 rejection tests
  ``log(π_sampler / π_old)``, the inverse: the same for symmetric bands (``low = 1/C``), not otherwise.

`mismatch_stats` gives plain-float diagnostics to log every step.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

__all__ = [
    "BANDED_CORRECTIONS",
    "IS_CORRECTIONS",
    "ISCorrection",
    "icepop",
    "is_weights",
    "mis",
    "mismatch_stats",
    "seq_tis",
    "token_tis",
]

ISCorrection = Literal["token_tis", "seq_tis", "mis", "icepop"]
IS_CORRECTIONS: tuple[str, ...] = ("token_tis", "seq_tis", "mis", "icepop")
BANDED_CORRECTIONS: tuple[str, ...] = ("mis", "icepop")  # mask outside [low, C]; the others truncate at C


def _log_ratio(
    old_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(``δ = log π_old - log π_sampler`` detached, float32 or wider, 0 at masked positions; ``mask > 0``)."""
    if old_logprobs.shape != sampler_logprobs.shape or old_logprobs.shape != mask.shape:
        raise ValueError(f"old {tuple(old_logprobs.shape)}, sampler {tuple(sampler_logprobs.shape)} and mask "
                         f"{tuple(mask.shape)} must have the same [B, T] shape")
    dtype = torch.promote_types(old_logprobs.dtype, torch.float32)
    valid = mask > 0  # [B, T]
    zero = torch.zeros((), dtype=dtype, device=old_logprobs.device)
    delta = torch.where(valid, old_logprobs.detach().to(dtype) - sampler_logprobs.detach().to(dtype), zero)  # [B, T]
    return delta, valid


def _check(cap: float, low: float | None = None) -> None:
    if cap <= 0:
        raise ValueError(f"the importance-sampling cap must be positive, got {cap}")
    if low is not None and not 0 < low < cap:
        raise ValueError(f"the band's lower bound must lie in (0, cap={cap}), got {low}")


def _in_band(log_rho: torch.Tensor, cap: float, low: float | None) -> torch.Tensor:
    """``low ≤ ρ ≤ C`` tested on ``log ρ`` (no overflow, and ±inf compare correctly)."""
    inside = log_rho <= math.log(cap)
    if low is not None:
        inside = inside & (log_rho >= math.log(low))
    return inside


def _seq_log_ratio(delta: torch.Tensor) -> torch.Tensor:
    """``Σ_t δ_{i,t}`` over each row's unmasked tokens (``delta`` is 0 elsewhere), as ``[B, 1]``."""
    return delta.sum(-1, keepdim=True)  # [B, 1]


def token_tis(
    old_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor, cap: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-level truncated IS: ``w_t = min(ρ_t, C)``. Returns (weights ``[B, T]``, truncated ``[B, T]``:
    ``ρ_t > C`` on a valid token)."""
    _check(cap)
    delta, valid = _log_ratio(old_logprobs, sampler_logprobs, mask)  # [B, T]
    truncated = valid & (delta > math.log(cap))  # [B, T]
    weights = torch.exp(delta.clamp(max=math.log(cap)))  # [B, T]
    return torch.where(valid, weights, 0.0), truncated


def seq_tis(
    old_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor, cap: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequence-level truncated IS: ``w_i = min(exp(Σ_t δ_{i,t}), C)`` on every token of sequence ``i``.
    Returns (weights ``[B, T]``, truncated ``[B, T]``: every valid token of a sequence with ``ρ_i > C``)."""
    _check(cap)
    delta, valid = _log_ratio(old_logprobs, sampler_logprobs, mask)  # [B, T]
    log_seq = _seq_log_ratio(delta)  # [B, 1]
    truncated = valid & (log_seq > math.log(cap))  # [B, T]
    weights = torch.exp(log_seq.clamp(max=math.log(cap))).expand_as(delta)  # [B, T]
    return torch.where(valid, weights, 0.0), truncated


def mis(
    old_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor, cap: float,
    low: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequence-level masked IS: ``w_i = ρ_i`` if ``low ≤ ρ_i ≤ C`` else 0, on every token of sequence ``i``
    (``ρ_i = exp(Σ_t δ_{i,t})``). Returns (weights ``[B, T]``, masked ``[B, T]``: every valid token of a
    rejected sequence)."""
    _check(cap, low)
    delta, valid = _log_ratio(old_logprobs, sampler_logprobs, mask)  # [B, T]
    log_seq = _seq_log_ratio(delta)  # [B, 1]
    keep = _in_band(log_seq, cap, low)  # [B, 1]
    weights = torch.exp(log_seq.clamp(max=math.log(cap))).expand_as(delta)  # [B, T]
    return torch.where(valid & keep, weights, 0.0), valid & ~keep


def icepop(
    old_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor, cap: float,
    low: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """IcePop, token-level masked IS: ``w_t = ρ_t`` if ``low ≤ ρ_t ≤ C`` else 0. Returns (weights ``[B, T]``,
    masked ``[B, T]``: valid tokens outside the band)."""
    _check(cap, low)
    delta, valid = _log_ratio(old_logprobs, sampler_logprobs, mask)  # [B, T]
    keep = _in_band(delta, cap, low)  # [B, T]
    weights = torch.exp(delta.clamp(max=math.log(cap)))  # [B, T]
    return torch.where(valid & keep, weights, 0.0), valid & ~keep


def is_weights(
    kind: ISCorrection,
    old_logprobs: torch.Tensor,
    sampler_logprobs: torch.Tensor,
    mask: torch.Tensor,
    cap: float,
    low: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``kind`` correction (module docstring): (detached weights ``[B, T]``, 0 at masked positions;
    bool ``[B, T]``: the valid tokens truncated at ``cap`` for ``token_tis``/``seq_tis``, zeroed for
    ``mis``/``icepop``). ``low`` bounds the band of ``mis``/``icepop`` and is refused for the others."""
    if kind not in IS_CORRECTIONS:
        raise ValueError(f"unknown importance-sampling correction {kind!r}; valid: {', '.join(IS_CORRECTIONS)}")
    if kind == "mis":
        return mis(old_logprobs, sampler_logprobs, mask, cap, low)
    if kind == "icepop":
        return icepop(old_logprobs, sampler_logprobs, mask, cap, low)
    if low is not None:
        raise ValueError(f"a lower bound is for {' and '.join(BANDED_CORRECTIONS)}, not {kind}")
    return (token_tis if kind == "token_tis" else seq_tis)(old_logprobs, sampler_logprobs, mask, cap)


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
