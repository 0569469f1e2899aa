"""Second-wave policy losses: the per-token policy term of CISPO, SAPO, GMPO, GPG, DPPO, REINFORCE,
Clip-Cov and KL-Cov, and the covariance token selection of the last two (ALGORITHMS.md §§15.1-15.5).

Every function returns the per-token loss to *minimise* only (`PolicyLoss`); the caller
(`rlvr.algorithms.losses`) multiplies it by detached sampler/learner IS weights, adds the KL and entropy
terms and aggregates it (`parts.aggregation`). Notation: ``δ_t = log π_θ(o_t) - log π_old(o_t)``, the
``log_ratio`` argument, already clamped by the caller to ``±log_ratio_clamp`` (§15.12; verl clamps at ±20
inside ``cispo``, ``sapo`` and ``dppo_*`` and not at all in ``clip_cov``, ``kl_cov`` and ``geo_mean``: the
same value within the clamp); ``ρ_t = exp(δ_t)``; ``A_t`` the advantage (data); ``sg`` stop-gradient;
``log π_θ`` the ``logprobs`` argument (with grad).

=============  ======================================================================  ==============================
function       per-token loss ``ℓ_t``                                                  reference (paper; verl CA fn)
=============  ======================================================================  ==============================
`cispo`        ``-sg[clip(ρ_t, 1-εl, 1+εh)]·A_t·log π_θ``                              2506.13585; ``..._cispo``
`sapo`         ``-(4/τ)·sigmoid(τ(ρ_t-1))·A_t``, ``τ = τ_pos if A_t > 0 else τ_neg``    2511.20347; ``..._sapo``
`gmpo`         ``ℓ_i = -A_i·exp(mean_t δ̃_t)`` on every token of row ``i`` (below)     2507.20673; ``..._geo_mean``
`gpg`          ``-A_t·log π_θ``                                                        2504.02546; ``..._gpg``
`dppo`         ``-A_t·sg[min(ρ_t, C)]·M_t·log π_θ``, ``M_t`` a TV / binary-KL mask     2602.04879; ``..._dppo_tv/kl``
`reinforce`    ``-A_t·sg[min(ρ_t, C)]·log π_θ``                                        Williams 1992; ``..._reinforce``
`clip_cov`     PPO-clip (`parts.clip.ppo_clip`), 0 on the selected tokens              2505.22617; ``..._clip_cov``
`kl_cov`       ``-ρ_t·A_t + β·|δ_t|·1[t selected]``                                    2505.22617; ``..._kl_cov``
=============  ======================================================================  ==============================

(verl CA fn: ``compute_policy_loss_<name>`` in ``verl/trainer/ppo/core_algos.py``.) Gradients with respect to
``log π_θ(o_t)``: CISPO ``-clip(ρ_t)·A_t`` on *every* token (an out-of-band token keeps its gradient, the
weight frozen at the bound); SAPO ``-A_t·ρ_t·4s(1-s)``, ``s = sigmoid(τ(ρ_t-1))`` (1 at ``ρ = 1``, a soft
gate instead of a hard clip); GMPO ``-A_i·s̃_i/|o_i|`` on the row's unclipped tokens, 0 on clipped ones;
GPG ``-A_t``; DPPO ``-A_t·min(ρ_t, C)·M_t``; REINFORCE ``-A_t·min(ρ_t, C)``. On-policy (``δ = 0``) CISPO,
SAPO, DPPO and REINFORCE all reduce to REINFORCE's ``-A_t``.

Conventions: ``[B, T]`` tensors and a ``mask`` (``mask > 0`` marks response tokens). Inputs are neutralised
at masked positions with ``torch.where`` before any arithmetic (``δ = 0``, ``log π = 0``, ``A = 0``), so
inf/NaN garbage there reaches neither a value nor a gradient (the gradient there is exactly 0), the loss is
exactly 0 there and every flag False. Flags are ``[B, T]`` bools; the caller logs their token fractions as
``actor/<name>``.

Covariance selection (Clip-Cov / KL-Cov) departs from verl on purpose: see `covariance_selection`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from rlvr.algorithms.parts.clip import ppo_clip

__all__ = [
    "COV_MODES",
    "DPPO_KINDS",
    "PolicyLoss",
    "cispo",
    "clip_cov",
    "covariance_selection",
    "dppo",
    "gmpo",
    "gpg",
    "kl_cov",
    "reinforce",
    "sapo",
]

DPPO_KINDS: tuple[str, ...] = ("tv", "kl")
COV_MODES: tuple[str, ...] = ("clip", "kl")
SAPO_GATE_SMALL = 0.5  # `sapo`'s "gate_small" flag: gradient weight below this (1 on-policy)


@dataclass
class PolicyLoss:
    loss: torch.Tensor  # [B, T] per-token loss to minimise, exactly 0 at masked positions
    flags: dict[str, torch.Tensor]  # name -> [B, T] bool, False at masked positions (logged as actor/<name>)


# ------------------------------------------------------------------ helpers


def _valid(mask: torch.Tensor, **tensors: torch.Tensor) -> torch.Tensor:
    """``mask > 0`` after checking every tensor is ``[B, T]`` like ``mask``."""
    if mask.dim() != 2:
        raise ValueError(f"mask must be [B, T], got {tuple(mask.shape)}")
    for name, x in tensors.items():
        if x.shape != mask.shape:
            raise ValueError(f"{name} {tuple(x.shape)} must have the mask's [B, T] shape {tuple(mask.shape)}")
    return mask > 0


def _keep(x: torch.Tensor, valid: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """``x`` on valid positions, ``fill`` elsewhere (garbage there gets neither value nor gradient)."""
    return torch.where(valid, x, torch.full((), fill, dtype=x.dtype, device=x.device))


def _bound(name: str, value: float) -> None:
    if not value >= 0.0:  # also rejects NaN
        raise ValueError(f"{name} must be >= 0, got {value}")


def _positive(name: str, value: float | None) -> None:
    if value is not None and not value > 0.0:  # None: no cap (ratio_cap only)
        raise ValueError(f"{name} must be > 0, got {value}")


def _capped_weight(
    delta: torch.Tensor, valid: torch.Tensor, ratio_cap: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(``sg[min(exp δ, C)]`` ``[B, T]``, capped ``[B, T]``: valid tokens with ``ρ > C``); ``δ`` already neutralised.
    The cap is applied in log space, so the weight is exactly ``min(ρ, C)`` and never overflows."""
    delta = delta.detach()
    if ratio_cap is None:
        return torch.exp(delta), torch.zeros_like(valid)
    log_cap = math.log(ratio_cap)
    return torch.exp(delta.clamp(max=log_cap)), valid & (delta > log_cap)


# ------------------------------------------------------------------ losses


def cispo(
    log_ratio: torch.Tensor,
    logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> PolicyLoss:
    """CISPO (MiniMax-M1, arXiv 2506.13585): ``ℓ_t = -sg[clip(ρ_t, 1-clip_low, 1+clip_high)]·A_t·log π_θ``.

    Flags: ``clipfrac_low`` (``ρ_t < 1 - clip_low``) and ``clipfrac_high`` (``ρ_t > 1 + clip_high``), the tokens
    whose weight sits at a bound, whatever the sign of ``A`` (CISPO clips the weight, not the objective). verl
    (``compute_policy_loss_cispo``) logs their union as ``pg_clipfrac`` and a constant 0 as
    ``pg_clipfrac_lower``. ``clip_low >= 1`` leaves no lower bound (the paper's setting; verl's example: 10).
    """
    _bound("clip_low", clip_low)
    _bound("clip_high", clip_high)
    valid = _valid(mask, log_ratio=log_ratio, logprobs=logprobs, advantages=advantages)  # [B, T]
    delta = _keep(log_ratio, valid).detach()  # [B, T]
    logp = _keep(logprobs, valid)  # [B, T]
    adv = _keep(advantages, valid)  # [B, T]
    ratio = torch.exp(delta)  # [B, T] detached
    weight = ratio.clamp(1.0 - clip_low, 1.0 + clip_high)  # [B, T] detached
    loss = _keep(-weight * adv * logp, valid)  # [B, T]
    flags = {
        "clipfrac_low": valid & (ratio < 1.0 - clip_low),
        "clipfrac_high": valid & (ratio > 1.0 + clip_high),
    }
    return PolicyLoss(loss=loss, flags=flags)


def sapo(
    log_ratio: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    tau_pos: float,
    tau_neg: float,
) -> PolicyLoss:
    """SAPO (Gao et al., arXiv 2511.20347): ``ℓ_t = -(4/τ)·sigmoid(τ(ρ_t - 1))·A_t``, ``τ = tau_pos`` if
    ``A_t > 0`` else ``tau_neg`` (paper: 1.0 and 1.05). Nothing is stop-gradient; the gradient with respect to
    ``δ_t`` is ``-A_t·ρ_t·4s(1-s)``, ``s = sigmoid(τ(ρ_t - 1))``: weight 1 at ``ρ = 1``, decaying smoothly away.

    Flag ``gate_small``: the gate weight ``ρ_t·4s(1-s)`` is below 0.5, i.e. the soft gate has removed more than
    half of the token's on-policy gradient: the soft counterpart of a clip fraction, on either side of 1 and
    for either sign of ``A`` (the gate acts on both). verl logs constant-0 clip fractions instead.

    verl (``compute_policy_loss_sapo``) forces ``seq-mean-token-mean`` whatever ``loss_agg_mode`` says; here
    the aggregation is the caller's (the preset should pick ``seq-mean-token-mean`` to match).
    """
    _positive("tau_pos", tau_pos)
    _positive("tau_neg", tau_neg)
    valid = _valid(mask, log_ratio=log_ratio, advantages=advantages)  # [B, T]
    delta = _keep(log_ratio, valid)  # [B, T]
    adv = _keep(advantages, valid)  # [B, T]
    ratio = torch.exp(delta)  # [B, T]
    tau = torch.where(adv > 0, torch.full_like(ratio, tau_pos), torch.full_like(ratio, tau_neg))  # [B, T]
    s = torch.sigmoid(tau * (ratio - 1.0))  # [B, T]
    loss = _keep(-(4.0 / tau) * s * adv, valid)  # [B, T]
    s_, ratio_ = s.detach(), ratio.detach()
    gate = 4.0 * s_ * (1.0 - s_) * ratio_  # [B, T] d(loss)/d(δ) = -A·gate
    return PolicyLoss(loss=loss, flags={"gate_small": valid & (gate < SAPO_GATE_SMALL)})


def gmpo(
    log_ratio: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> PolicyLoss:
    """GMPO (Zhao et al., arXiv 2507.20673): the sequence objective ``ℓ_i = -A_i·exp((1/|o_i|) Σ_t δ̃_t)``, with
    ``A_i`` the token mean of ``A`` over row ``i`` and the log-ratio clipped in *log space* by the sign of
    ``A_i``: ``δ̃_t = min(δ_t, clip_high)`` if ``A_i > 0``, ``max(δ_t, -clip_low)`` if ``A_i < 0``, 0 if ``A_i = 0``
    (band ``(e^-clip_low, e^clip_high)``; paper 0.4 each side). A clipped token gets no gradient; the others
    get ``-A_i·s̃_i/|o_i|``.

    ``ℓ_i`` is returned on every valid token of row ``i``, so ``seq-mean-token-mean`` aggregation gives the mean
    of ``ℓ_i`` over sequences with its exact gradient (what the paper and verl optimise); ``token-mean`` would
    instead weight each sequence by its length. Flag ``clipfrac``: the tokens whose ``δ̃_t ≠ δ_t``.

    Departures from verl (``compute_policy_loss_geo_mean``): verl ignores ``loss_agg_mode`` (a plain mean
    over the micro-batch's rows; empty rows count, as in ``seq-mean-token-mean`` here); it clips by the sign
    of the *token's* advantage (the same for sequence-level advantages); its ``pg_clipfrac`` also counts
    ``A > 0`` tokens with ``δ < -clip_low``, which GMPO does not clip (our ``clipfrac`` does not); it reduces
    rollout IS weights to a per-sequence geometric mean, whereas the caller's per-token weights multiply
    ``ℓ_i`` by their arithmetic mean over the row. ``δ̃ = 0`` at ``A_i = 0`` (verl: the same) keeps a huge
    unclamped ``δ`` from turning ``0·exp(δ)`` into NaN.
    """
    _bound("clip_low", clip_low)
    _bound("clip_high", clip_high)
    valid = _valid(mask, log_ratio=log_ratio, advantages=advantages)  # [B, T]
    delta = _keep(log_ratio, valid)  # [B, T]
    lengths = valid.sum(-1).clamp(min=1).to(delta.dtype)  # [B]; empty rows: A_i = 0, ℓ_i = 0
    seq_adv = _keep(advantages, valid).sum(-1) / lengths  # [B] A_i
    pos, neg = (seq_adv > 0)[:, None], (seq_adv < 0)[:, None]  # [B, 1]
    zero = torch.zeros((), dtype=delta.dtype, device=delta.device)
    clipped_delta = torch.where(pos, delta.clamp(max=clip_high),
                                torch.where(neg, delta.clamp(min=-clip_low), zero))  # [B, T] δ̃
    clipped_delta = _keep(clipped_delta, valid)
    seq_ratio = torch.exp(clipped_delta.sum(-1) / lengths)  # [B] s̃_i
    seq_loss = -seq_adv * seq_ratio  # [B] ℓ_i
    loss = _keep(seq_loss[:, None].expand_as(delta), valid)  # [B, T]
    d = delta.detach()
    clipped = valid & ((pos & (d > clip_high)) | (neg & (d < -clip_low)))  # [B, T]
    return PolicyLoss(loss=loss, flags={"clipfrac": clipped})


def gpg(logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> PolicyLoss:
    """GPG (Chu et al., arXiv 2504.02546): ``ℓ_t = -A_t·log π_θ``, plain REINFORCE with no ratio, clip or
    reference: on-policy only. GPG's advantage scaling (``α``, ``F_norm``) belongs to the estimator. Same as verl
    ``compute_policy_loss_gpg``. No flags (nothing is clipped)."""
    valid = _valid(mask, logprobs=logprobs, advantages=advantages)  # [B, T]
    loss = _keep(-_keep(advantages, valid) * _keep(logprobs, valid), valid)  # [B, T]
    return PolicyLoss(loss=loss, flags={})


def _binary_kl(logp: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``D = p₀ log(p₀/p) + (1-p₀) log((1-p₀)/(1-p))`` from log-probs (``p = e^logp``, ``p₀ = e^old``), with
    ``log(1-p) = log(-expm1(logp))`` (precise near ``p = 1``) and ``0·log 0 = 0``; ``+inf`` if ``p = 1 > p₀``."""
    q, q0 = -torch.expm1(logp), -torch.expm1(old)  # 1 - p, 1 - p0
    first = torch.exp(old) * (old - logp)
    second = torch.where(q0 > 0, q0 * (torch.log(q0) - torch.log(q)), torch.zeros((), dtype=q.dtype, device=q.device))
    return first + second


def dppo(
    kind: Literal["tv", "kl"],
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    log_ratio: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    delta_low: float,
    delta_high: float,
    ratio_cap: float | None,
) -> PolicyLoss:
    """DPPO (Qi et al., arXiv 2602.04879; ALGORITHMS.md §15.5): ``ℓ_t = -A_t·sg[min(ρ_t, C)]·M_t·log π_θ``, PPO's
    ratio band replaced by a stop-gradient trust-region mask on the token's probability ``p = π_θ(o_t)`` against
    ``p₀ = π_old(o_t)``:

    * ``tv``: ``M_t = 1[p - p₀ ≤ δh]`` if ``A_t > 0`` else ``1[p - p₀ ≥ -δl]``;
    * ``kl``: ``D_t = p₀ log(p₀/p) + (1-p₀) log((1-p₀)/(1-p))`` (binary KL),
      ``M_t = 1[D_t ≤ δh ∨ p ≤ p₀]`` if ``A_t > 0`` else ``1[D_t ≤ δl ∨ p ≥ p₀]``.

    A token is removed only when the update would push it further out (up for ``A > 0``, down for ``A < 0``).
    ``δl = delta_low``, ``δh = delta_high`` (verl's ``clip_ratio_low/high``; example 0.15 TV, 0.05 KL).
    ``p`` and ``p₀`` come from the *unclamped* log-probs (in float32 or wider); the IS weight from the caller's
    clamped ``log_ratio``. ``C = ratio_cap`` (verl ``clip_ratio_c``), None for no cap; it has no default here
    because verl's is ambiguous (the loss's fallback 20 is shadowed by the actor default 3.0; the DPPO
    example sets 10000). Flags: ``masked_low`` / ``masked_high`` (tokens ``M`` removed with ``A < 0`` / ``A > 0``)
    and ``ratio_capped`` (``ρ_t > C``).
    """
    if kind not in DPPO_KINDS:
        raise ValueError(f"unknown DPPO kind {kind!r}; valid: {', '.join(DPPO_KINDS)}")
    _bound("delta_low", delta_low)
    _bound("delta_high", delta_high)
    _positive("ratio_cap", ratio_cap)
    valid = _valid(mask, logprobs=logprobs, old_logprobs=old_logprobs, log_ratio=log_ratio,
                   advantages=advantages)  # [B, T]
    logp = _keep(logprobs, valid)  # [B, T] with grad
    adv = _keep(advantages, valid)  # [B, T]
    weight, capped = _capped_weight(_keep(log_ratio, valid), valid, ratio_cap)  # [B, T] detached
    with torch.no_grad():
        dtype = torch.promote_types(logprobs.dtype, torch.float32)
        lp, old = logp.to(dtype), _keep(old_logprobs.detach(), valid).to(dtype)  # [B, T]; p = p0 = 1 at padding
        if kind == "tv":
            diff = torch.exp(lp) - torch.exp(old)  # [B, T] p - p0
            keep_pos, keep_neg = diff <= delta_high, diff >= -delta_low
        else:
            div = _binary_kl(lp, old)  # [B, T]
            keep_pos, keep_neg = (div <= delta_high) | (lp <= old), (div <= delta_low) | (lp >= old)
        positive = adv > 0  # [B, T]
        keep = torch.where(positive, keep_pos, keep_neg)  # [B, T] M
    loss = _keep(-adv * weight * keep.to(logp.dtype) * logp, valid)  # [B, T]
    flags = {
        "masked_low": valid & (adv < 0) & ~keep,
        "masked_high": valid & positive & ~keep,
        "ratio_capped": capped,
    }
    return PolicyLoss(loss=loss, flags=flags)


def reinforce(
    log_ratio: torch.Tensor,
    logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ratio_cap: float | None,
) -> PolicyLoss:
    """REINFORCE with a truncated IS weight: ``ℓ_t = -A_t·sg[min(ρ_t, C)]·log π_θ``, ``C = ratio_cap`` (None: no
    cap). On-policy (``ρ = 1``) plain REINFORCE. With ``π_old`` the sampler's log-probs this is verl's bypass mode
    with ``loss_type="reinforce"`` (``compute_policy_loss_bypass_mode`` → ``compute_policy_loss_reinforce``), and
    ``ρ`` *is* the sampler/learner IS weight: the caller must not multiply by a second one. Flag
    ``ratio_capped``: ``ρ_t > C``.

    verl computes the weight in ``rollout_corr_helper`` (token or sequence level, threshold default 2.0,
    optional batch normalisation and rejection) and defaults to ``seq-mean-token-sum``; here the weight is
    the token ratio truncated at ``C`` and the aggregation is the caller's.
    """
    _positive("ratio_cap", ratio_cap)
    valid = _valid(mask, log_ratio=log_ratio, logprobs=logprobs, advantages=advantages)  # [B, T]
    weight, capped = _capped_weight(_keep(log_ratio, valid), valid, ratio_cap)  # [B, T] detached
    loss = _keep(-_keep(advantages, valid) * weight * _keep(logprobs, valid), valid)  # [B, T]
    return PolicyLoss(loss=loss, flags={"ratio_capped": capped})


def _selected(selected: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    if selected.shape != valid.shape or selected.dtype != torch.bool:
        raise ValueError(f"selected must be a bool tensor of the mask's shape {tuple(valid.shape)}, "
                         f"got {selected.dtype} {tuple(selected.shape)}")
    return selected & valid


def clip_cov(
    log_ratio: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    selected: torch.Tensor,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None,
) -> PolicyLoss:
    """Clip-Cov (Cui et al., arXiv 2505.22617): PPO-clip (`parts.clip.ppo_clip`, decoupled bounds and
    dual-clip) with the ``selected`` tokens' loss set to 0, so they get no gradient. ``selected`` is
    `covariance_selection` ``("clip", ...)``, made once per rollout batch (see there for the departure from
    verl, which selects per micro-batch and only among tokens PPO does not clip at that moment; here a selected
    token that has since been clipped had no gradient anyway).

    Flags: ``clipfrac_low``, ``clipfrac_high``, ``clipfrac_dual`` (`ppo_clip`'s three masks, on every token,
    selected or not) and ``cov_selected`` (the valid selected tokens). verl's ``pg_clipfrac`` for Clip-Cov is
    our ``cov_selected``, not a clip fraction.
    """
    valid = _valid(mask, log_ratio=log_ratio, advantages=advantages)  # [B, T]
    chosen = _selected(selected, valid)  # [B, T]
    ratio = torch.exp(_keep(log_ratio, valid))  # [B, T]
    clip = ppo_clip(ratio, advantages, clip_low, clip_high, dual_clip=dual_clip, mask=mask)
    loss = _keep(clip.loss, valid & ~chosen)  # [B, T]
    flags = {
        "clipfrac_low": clip.clipped_low,
        "clipfrac_high": clip.clipped_high,
        "clipfrac_dual": clip.dual_clipped,
        "cov_selected": chosen,
    }
    return PolicyLoss(loss=loss, flags=flags)


def kl_cov(
    log_ratio: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    selected: torch.Tensor,
    coef: float,
) -> PolicyLoss:
    """KL-Cov (Cui et al., arXiv 2505.22617): the unclipped ``-ρ_t·A_t`` plus ``coef·|δ_t|`` on the
    ``selected`` tokens (`covariance_selection` ``("kl", ...)``, the top-k by covariance). ``coef`` is verl's
    ``ppo_kl_coef`` (``actor.yaml`` 0.1; the loss's own fallback 1.0). ``|δ|`` has zero gradient at ``δ = 0``, so
    the penalty starts acting only once the policy has moved (the same in verl). Flag ``cov_selected``."""
    _bound("coef", coef)
    valid = _valid(mask, log_ratio=log_ratio, advantages=advantages)  # [B, T]
    chosen = _selected(selected, valid)  # [B, T]
    delta = _keep(log_ratio, valid)  # [B, T]
    adv = _keep(advantages, valid)  # [B, T]
    penalty = _keep(coef * delta.abs(), chosen)  # [B, T]
    loss = _keep(-torch.exp(delta) * adv + penalty, valid)  # [B, T]
    return PolicyLoss(loss=loss, flags={"cov_selected": chosen})


def covariance_selection(
    mode: Literal["clip", "kl"],
    advantages: torch.Tensor,
    logprobs: torch.Tensor,
    mask: torch.Tensor,
    fraction: float,
    bounds: tuple[float, float] = (1.0, 5.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The tokens Clip-Cov / KL-Cov act on: ``[N, T]`` bool over a whole rollout batch (``N`` rows).

    ``Cov_t = (A_t - mean A)·(log π(o_t) - mean log π)``, means over the batch's ``n`` valid tokens, computed in
    float64 on detached inputs; ``k = max(1, ⌊fraction·n⌋)`` (paper/verl ``r``, ``k``: 2e-4).

    * ``"kl"``: the ``k`` tokens with the largest ``Cov_t`` (verl ``compute_policy_loss_kl_cov``).
    * ``"clip"``: ``k`` tokens drawn uniformly without replacement, with ``generator``, among those with
      ``bounds[0] < Cov_t < bounds[1]`` (fewer if fewer qualify; verl ``clip_cov_lb/ub`` 1 and 5).

    ``logprobs`` are the detached log-probs of the pre-update (sampling) policy. Masked tokens are never
    selected, and garbage at masked positions does not enter the means. No valid token: nothing selected.

    Departure from verl (and why): verl recomputes the covariance and the selection inside every micro-batch
    loss, on the current policy's log-probs, with ``k`` counted per micro-batch and the global RNG. The selected
    set then depends on how the batch is split into micro-batches and data-parallel ranks (with ``r = 2e-4``
    every micro-batch under 5000 tokens gets its one token, so the selected fraction grows as micro-batches
    shrink), and runs are not reproducible. Selecting once on the driver over the whole rollout batch makes the
    loss independent of the split, matches the paper's batch-level ``r``, and is seeded.
    """
    if mode not in COV_MODES:
        raise ValueError(f"unknown covariance selection mode {mode!r}; valid: {', '.join(COV_MODES)}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    low, high = bounds
    if mode == "clip" and not low < high:
        raise ValueError(f"bounds must satisfy bounds[0] < bounds[1], got {bounds}")
    valid = _valid(mask, advantages=advantages, logprobs=logprobs)  # [N, T]
    out = torch.zeros(mask.shape, dtype=torch.bool, device=mask.device)  # [N, T]
    flat_idx = valid.reshape(-1).nonzero().squeeze(-1)  # [n] positions of the valid tokens
    n = flat_idx.numel()
    if n == 0:
        return out
    adv = advantages.detach().reshape(-1)[flat_idx].double()  # [n]
    logp = logprobs.detach().reshape(-1)[flat_idx].double()  # [n]
    cov = (adv - adv.mean()) * (logp - logp.mean())  # [n]
    k = max(1, int(math.floor(fraction * n)))
    if mode == "kl":
        chosen = torch.topk(cov, min(k, n), largest=True).indices  # [k]
    else:
        candidates = ((cov > low) & (cov < high)).nonzero().squeeze(-1)  # [m]
        device = generator.device if generator is not None else torch.device("cpu")
        perm = torch.randperm(candidates.numel(), generator=generator, device=device).to(candidates.device)
        chosen = candidates[perm[:k]]  # [min(k, m)]
    out.view(-1)[flat_idx[chosen]] = True
    return out
