"""Advantage estimators for outcome rewards (ALGORITHMS.md §§1-2, 4, 6-7, 13).

Conventions:

* ``rewards [N]`` are ordered group by group: with ``N = P * G`` (``G = group_size``), group ``g`` is
  rows ``g*G .. g*G + G - 1``. Group statistics use exactly those rows.
* Per-token tensors are ``[B, T]`` with a ``mask`` (read as ``mask > 0``) marking response tokens.
  Outputs are exactly 0 at masked positions, and garbage there (inf/NaN) never reaches valid ones.
* Everything here runs on the driver under no gradient requirement; the functions are nonetheless
  plain differentiable torch.

Sequence-level estimators return ``[N]``; `broadcast` puts them on the response tokens.

======================  ==================================  ============================================
function                advantage                           reference
======================  ==================================  ============================================
`group_mean_std`        ``(R - μ_q) / (σ_q + eps)``         GRPO: verl ``compute_grpo_outcome_advantage``
`group_mean`            ``R - μ_q``                         Dr. GRPO: verl ``norm_adv_by_std_in_grpo=False``
`group_mean_batch_std`  ``(R - μ_q) / (std_B(R) + eps)``    Lite PPO: ROLL ``reward_norm`` (group, batch)
`leave_one_out`         ``R_i - mean_{j≠i} R_j``            RLOO: verl ``compute_rloo_outcome_advantage``
`reinforce_pp`          whiten(Σ_{s≥t} γ^{s-t} r_s)         REINFORCE++: verl, OpenRLHF ``reinforce``
`reinforce_pp_baseline` whiten(broadcast(R - μ_q))          verl, OpenRLHF ``reinforce_baseline``
`gae`                   ``Σ_l (γλ)^l δ_{t+l}``; ``A + V``   PPO: verl ``compute_gae_advantage_return``
`nft_rates`             ``r̂_q`` (clamped) and ``c_i``       NFT: NVlabs/NFT ``ray_nft_trainer.py``
======================  ==================================  ============================================
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = [
    "broadcast",
    "discounted_returns",
    "gae",
    "group_mean",
    "group_mean_batch_std",
    "group_mean_std",
    "leave_one_out",
    "masked_whiten",
    "nft_rates",
    "reinforce_pp",
    "reinforce_pp_baseline",
]

StdMode = Literal["unbiased", "population"]
Singleton = Literal["verl", "zero"]
RewardKind = Literal["pm1", "binary"]


def _float(x: torch.Tensor) -> torch.Tensor:
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def _groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """``[N]`` -> ``[P, G]`` (validating the layout)."""
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be [N], got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not form groups of {group_size}")
    return _float(rewards).reshape(-1, group_size)


def _check_singleton(singleton: str) -> None:
    if singleton not in ("verl", "zero"):
        raise ValueError(f"unknown singleton rule {singleton!r}; valid: verl, zero")


def _zero_masked(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return torch.where(valid, values, torch.zeros((), dtype=values.dtype, device=values.device))


# ----------------------------------------------------------------------------------------------------
# Group-relative, sequence-level estimators: [N] -> [N]
# ----------------------------------------------------------------------------------------------------


def group_mean_std(
    rewards: torch.Tensor,
    group_size: int,
    std_mode: StdMode = "unbiased",
    eps: float = 1e-6,
    singleton: Singleton = "verl",
) -> torch.Tensor:
    """GRPO advantage ``A_i = (R_i - μ_q) / (σ_q + eps)`` (Shao et al., arXiv 2402.03300 §4.1.2).

    ``rewards [N]`` group-major -> ``[N]``.

    * ``std_mode="unbiased"``: ``σ_q = torch.std`` (N-1), as verl ``compute_grpo_outcome_advantage`` and
      OpenRLHF ``group_norm``. ``"population"`` (N) is the std under which NFT's prompt-weight mode 2 equals
      GRPO on-policy (ALGORITHMS.md §1.3). The paper says only "standard deviation".
    * ``eps`` is added to the std (verl: 1e-6). A group whose rewards are all equal gets 0.
    * Singleton groups (``group_size == 1``): verl sets ``μ = 0, σ = 1``, so ``A = R / (1 + eps)``
      (≈ R: plain REINFORCE without a baseline); ``singleton="zero"`` gives 0 instead (the group mean of
      one sample is the sample itself).
    """
    _check_singleton(singleton)
    if std_mode not in ("unbiased", "population"):
        raise ValueError(f"unknown std_mode {std_mode!r}; valid: unbiased, population")
    r = _groups(rewards, group_size)  # [P, G]
    if group_size == 1:
        return (r / (1.0 + eps)).reshape(-1) if singleton == "verl" else torch.zeros_like(r).reshape(-1)
    mean = r.mean(dim=1, keepdim=True)  # [P, 1]
    std = r.std(dim=1, keepdim=True, correction=1 if std_mode == "unbiased" else 0)  # [P, 1]
    return ((r - mean) / (std + eps)).reshape(-1)  # [N]


def group_mean(rewards: torch.Tensor, group_size: int, singleton: Singleton = "verl") -> torch.Tensor:
    """Dr. GRPO advantage ``A_i = R_i - μ_q`` (Liu et al., arXiv 2503.20783 §3.1). ``[N] -> [N]``.

    Singleton groups follow verl (``norm_adv_by_std_in_grpo=False``: ``μ = 0``, so ``A = R``) unless
    ``singleton="zero"``.
    """
    _check_singleton(singleton)
    r = _groups(rewards, group_size)  # [P, G]
    if group_size == 1:
        return r.reshape(-1).clone() if singleton == "verl" else torch.zeros_like(r).reshape(-1)
    return (r - r.mean(dim=1, keepdim=True)).reshape(-1)  # [N]


def group_mean_batch_std(rewards: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """Lite PPO advantage ``A_i = (R_i - μ_q) / (std_B + eps)`` (Liu et al., "Tricks or Traps? Part I",
    arXiv 2508.08221 §4; ALGORITHMS.md §2.1). ``[N] -> [N]``.

    ``std_B`` is the *unbiased* std of the raw rewards over the whole batch (all ``N`` responses, not
    token-weighted, not centred per group), as ROLL ``reward_norm(norm_mean_type="group",
    norm_std_type="batch")`` computes it: ``response_level_rewards.std()``. Singleton groups get 0 (ROLL's
    group mean of one sample is the sample); a one-sample batch (std undefined) gets 0.
    """
    r = _groups(rewards, group_size)  # [P, G]
    centred = (r - r.mean(dim=1, keepdim=True)).reshape(-1)  # [N]
    if r.numel() < 2:
        return torch.zeros_like(centred)
    return centred / (r.reshape(-1).std() + eps)  # [N]


def leave_one_out(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """RLOO advantage ``A_i = R_i - (1/(G-1)) Σ_{j≠i} R_j = G/(G-1) · (R_i - μ_q)`` (Ahmadian et al.,
    arXiv 2402.14740 §3; Kool et al. 2019). ``[N] -> [N]``.

    Computed in verl's form ``R·G/(G-1) - μ_q·G/(G-1)``. Singleton groups (no other sample to form a
    baseline) get 0; verl leaves them at ``R``.
    """
    r = _groups(rewards, group_size)  # [P, G]
    if group_size == 1:
        return torch.zeros_like(r).reshape(-1)
    g = group_size
    return (r * g / (g - 1) - r.mean(dim=1, keepdim=True) * g / (g - 1)).reshape(-1)  # [N]


def broadcast(seq_values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sequence values ``[N]`` onto every response token: ``[N, T]``, 0 where ``mask`` is 0."""
    if seq_values.dim() != 1 or mask.dim() != 2 or mask.shape[0] != seq_values.shape[0]:
        raise ValueError(f"seq_values {tuple(seq_values.shape)} must be [N] and mask {tuple(mask.shape)} [N, T]")
    values = _float(seq_values)[:, None].expand(mask.shape)  # [N, T]
    return _zero_masked(values, mask > 0)


# ----------------------------------------------------------------------------------------------------
# Token-level estimators: [B, T] -> [B, T]
# ----------------------------------------------------------------------------------------------------


def masked_whiten(
    values: torch.Tensor,
    mask: torch.Tensor,
    eps: float = 1e-8,
    shift_mean: bool = True,
    var_mode: StdMode = "unbiased",
) -> torch.Tensor:
    """Token-weighted batch whitening ``(x - mean) * rsqrt(var + eps)`` over all masked tokens of
    ``values [B, T]`` (every valid token counts once; long responses weigh more). Returns ``[B, T]``,
    0 at masked positions. ``shift_mean=False`` adds the mean back (verl/TRL ``masked_whiten``).

    Variance convention: ``var_mode="unbiased"`` (default) is verl's ``masked_whiten`` (TRL's
    ``masked_var(unbiased=True)``: the masked mean of squared deviations times ``n/(n-1)``), with
    ``eps`` added to the *variance*. verl is the reference for REINFORCE++(-baseline) and GAE whitening
    in rlvr's presets, hence the default. ``"population"`` divides by ``n``, as OpenRLHF's REINFORCE++
    whitening (``var.clamp(min=1e-8).rsqrt()``: identical to ``rsqrt(var + eps)`` up to ``eps`` when
    ``var ≫ 1e-8``). With ``n = 1`` valid token verl raises; rlvr takes ``var = 0`` (the output is 0 when
    the mean is shifted). No valid token: all zeros.
    """
    if var_mode not in ("unbiased", "population"):
        raise ValueError(f"unknown var_mode {var_mode!r}; valid: unbiased, population")
    values = _float(values)
    valid = mask > 0  # [B, T]
    n = int(valid.sum())
    if n == 0:
        return torch.zeros_like(values)
    mean = _zero_masked(values, valid).sum() / n  # []
    var = _zero_masked((values - mean) ** 2, valid).sum() / n  # []
    if var_mode == "unbiased":
        var = var * (n / (n - 1)) if n > 1 else torch.zeros_like(var)
    whitened = (values - mean) * torch.rsqrt(var + eps)  # [B, T]
    if not shift_mean:
        whitened = whitened + mean
    return _zero_masked(whitened, valid)


def discounted_returns(token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """Reverse discounted cumulative sum within the mask: ``G_t = r_t + γ G_{t'}`` with ``t'`` the next
    valid position of the same row (``G = 0`` after the last one). ``[B, T] -> [B, T]``, 0 where masked.

    Masked positions contribute no reward and are skipped (``γ`` applies once per valid token), so
    rewards propagate across masked holes such as tool outputs in a multi-turn response. verl's
    REINFORCE++ loop instead resets the running return at a masked position; for left-aligned
    contiguous response masks (rlvr's layout) the two agree exactly.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    valid = mask > 0  # [B, T]
    rewards = _zero_masked(_float(token_rewards), valid)  # [B, T]
    if gamma == 1.0:  # same additions in the same order as the loop below
        returns = rewards.flip(-1).cumsum(-1).flip(-1)  # [B, T]
        return _zero_masked(returns, valid)
    returns = torch.zeros_like(rewards)  # [B, T]
    running = torch.zeros_like(rewards[:, 0])  # [B]
    for t in reversed(range(rewards.shape[1])):
        running = torch.where(valid[:, t], rewards[:, t] + gamma * running, running)
        returns[:, t] = running
    return _zero_masked(returns, valid)


def _last_token_rewards(outcome: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``outcome [N]`` placed on each row's last valid position: ``[N, T]`` (rows without tokens: 0)."""
    valid = mask > 0  # [N, T]
    positions = torch.arange(mask.shape[1], device=mask.device).expand(mask.shape)  # [N, T]
    last = torch.where(valid, positions, -1).max(dim=1).values  # [N]
    has = last >= 0  # [N]
    out = torch.zeros(mask.shape, dtype=_float(outcome).dtype, device=mask.device)  # [N, T]
    rows = torch.arange(mask.shape[0], device=mask.device)[has]
    out[rows, last[has]] = _float(outcome)[has]
    return out


def reinforce_pp(
    outcome: torch.Tensor,
    kl: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    gamma: float = 1.0,
    eps: float = 1e-8,
    var_mode: StdMode = "unbiased",
) -> torch.Tensor:
    """REINFORCE++ advantage (Hu, arXiv 2501.03262; ALGORITHMS.md §7.1). Returns ``[B, T]``.

    ``r_t = 1[t = last response token]·R - kl_coef·kl_t`` with ``kl [B, T]`` the per-token KL estimate
    (k1 of the pre-update policy against the reference, computed by the caller); ``G_t`` the
    discounted return (`discounted_returns`); then token-weighted batch whitening (`masked_whiten`,
    verl's unbiased variance by default; OpenRLHF: ``var_mode="population"``). No groups needed.
    """
    valid = mask > 0  # [B, T]
    token_rewards = _last_token_rewards(outcome, mask) - kl_coef * _zero_masked(_float(kl), valid)  # [B, T]
    returns = discounted_returns(token_rewards, mask, gamma)  # [B, T]
    return masked_whiten(returns, mask, eps=eps, var_mode=var_mode)


def reinforce_pp_baseline(
    rewards: torch.Tensor,
    group_size: int,
    mask: torch.Tensor,
    eps: float = 1e-8,
    var_mode: StdMode = "unbiased",
    singleton: Singleton = "verl",
) -> torch.Tensor:
    """REINFORCE++-baseline (ALGORITHMS.md §7.2; verl ``compute_reinforce_plus_plus_baseline_outcome_advantage``,
    OpenRLHF ``reinforce_baseline``): ``R - μ_q`` broadcast to the tokens, then token-weighted batch
    whitening (`masked_whiten`). ``[N] -> [N, T]``. Singletons as `group_mean` (verl: ``μ = 0``).
    """
    centred = broadcast(group_mean(rewards, group_size, singleton=singleton), mask)  # [N, T]
    return masked_whiten(centred, mask, eps=eps, var_mode=var_mode)


def gae(
    token_rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al., arXiv 1506.02438), verl
    ``compute_gae_advantage_return`` without its final whitening (apply `masked_whiten` to the
    advantages, as verl and the PPO preset do). Returns ``(advantages [B, T], returns [B, T])``.

    ``δ_t = r_t + γ V_{t'} - V_t`` and ``A_t = δ_t + γλ A_{t'}`` with ``t'`` the next valid position of
    the row (``V = A = 0`` after the last response token); ``returns = A + V`` (the value targets).
    ``values [B, T]`` holds ``V(s_t)``, the critic's value before token ``t``. Masked positions are
    skipped (verl: "skip values and TD-error on observation tokens") and are 0 in both outputs.
    """
    valid = mask > 0  # [B, T]
    rewards = _zero_masked(_float(token_rewards), valid)  # [B, T]
    vals = _zero_masked(_float(values), valid)  # [B, T]
    advantages = torch.zeros_like(rewards)  # [B, T]
    next_value = torch.zeros_like(rewards[:, 0])  # [B]
    last_gae = torch.zeros_like(rewards[:, 0])  # [B]
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - vals[:, t]  # [B]
        gae_t = delta + gamma * lam * last_gae  # [B]
        next_value = torch.where(valid[:, t], vals[:, t], next_value)
        last_gae = torch.where(valid[:, t], gae_t, last_gae)
        advantages[:, t] = last_gae
    advantages = _zero_masked(advantages, valid)
    return advantages, _zero_masked(advantages + vals, valid)


# ----------------------------------------------------------------------------------------------------
# NFT: correct rates instead of advantages
# ----------------------------------------------------------------------------------------------------


def nft_rates(
    rewards: torch.Tensor,
    group_size: int,
    reward_kind: RewardKind = "pm1",
    clamp: tuple[float, float] | None = (0.02, 0.98),
) -> tuple[torch.Tensor, torch.Tensor]:
    """NFT's per-question correct rate and per-sample correctness (Chen et al., arXiv 2505.18116;
    ALGORITHMS.md §1.2). Returns ``(r_hat [N], correct [N])``: ``r_hat`` is each sample's copy of its
    group's (clamped) correct rate, ``correct`` its ``c_i``.

    * ``reward_kind="pm1"`` (NVlabs/NFT, ±1 verifier rewards): ``r_hat = (mean_q R + 1)/2`` as in
      ``ray_nft_trainer.py::compute_dapo_nft_outcome_advantage`` and ``c = (R + 1)/2`` as its
      ``correct_mask``. ``"binary"`` (0/1 rewards): ``r_hat = mean_q R`` and ``c = R``; identical results
      for ``R_binary = (R_pm1 + 1)/2``. Non-±1 (e.g. length-shaped) rewards go through the same affine
      map, as in the reference.
    * ``clamp``: the reference clamps ``r_hat`` to [0.02, 0.98] inside the loss (``dp_actor.py``);
      rlvr clamps here (the clamp is idempotent, so `parts.nft.nft_loss` does not repeat it).
      ``None`` leaves it unclamped.
    * The reference *asserts* ``0 < r_hat < 1`` before clamping: it relies on dynamic sampling to drop
      all-correct and all-wrong groups. rlvr does not assert; such groups get ``r_hat`` = 0.98 / 0.02
      (drop them with `parts.shaping.zero_variance_groups`).
    * Singleton groups: the reference's group statistics give a singleton ``mean = 0``, i.e. ``r_hat = 0.5``
      for ±1 rewards; rlvr gives ``r_hat = 0.5`` for both reward kinds.
    """
    if reward_kind not in ("pm1", "binary"):
        raise ValueError(f"unknown reward_kind {reward_kind!r}; valid: pm1, binary")
    r = _groups(rewards, group_size)  # [P, G]
    if reward_kind == "pm1":
        mean = r.mean(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(r)  # [P, 1]
        r_hat = (mean + 1.0) / 2.0  # [P, 1]
        correct = (r + 1.0) / 2.0  # [P, G]
    else:
        r_hat = r.mean(dim=1, keepdim=True) if group_size > 1 else torch.full_like(r, 0.5)  # [P, 1]
        correct = r.clone()  # [P, G]
    r_hat = r_hat.expand_as(r)  # [P, G]
    if clamp is not None:
        r_hat = r_hat.clamp(min=clamp[0], max=clamp[1])
    return r_hat.reshape(-1).clone(), correct.reshape(-1)
