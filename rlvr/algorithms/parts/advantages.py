"""Advantage estimators for outcome rewards (ALGORITHMS.md §§1-2, 4, 6-7, 13, 15.4, 15.6-15.9).

Conventions:

* ``groups`` says which samples share a prompt. An ``int`` ``G`` means contiguous groups of ``G``: with
  ``N = P * G``, group ``g`` is rows ``g*G .. g*G + G - 1`` (computed by reshaping ``[N] -> [P, G]``, the
  arithmetic the fixed-size layout always had). A ``[N]`` integer tensor gives each sample's group id
  instead: any order, any group sizes, ids neither dense nor sorted (a run that samples a different number
  of responses per prompt). `group_index` turns either form into dense ids ``0..P-1`` (numbered in order of
  first appearance) and sizes ``[P]``; group statistics are segment sums over those ids. Every per-group
  rule (singletons, all-equal groups, the std convention, RLOO's ``G/(G-1)``) applies to each group with
  its own size: a singleton among larger groups follows the singleton rule.
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
`opo`                   ``R - Σ|o|R / Σ|o|``                OPO: verl ``compute_opo_outcome_advantage``
`gpg`                   ``B/(B - M) · (R - μ_q)``           GPG: paper (verl ``compute_gpg_outcome_advantage``)
`pass_at_k`             pass@k group advantage (§15.7)      RUCAIBox/Passk_Training ``passk_adv.py``
`reinforce_pp`          whiten(Σ_{s≥t} γ^{s-t} r_s)         REINFORCE++: verl, OpenRLHF ``reinforce``
`reinforce_pp_baseline` whiten(broadcast(R - μ_q))          verl, OpenRLHF ``reinforce_baseline``
`remax`                 ``Σ_{s≥t} r_s - R(greedy)``         ReMax: verl ``compute_remax_outcome_advantage``
`gdpo`                  whiten(Σ_k w_k GRPO(R_k))           GDPO: verl ``compute_gdpo_outcome_advantage``
`gae`                   ``Σ_l (γλ)^l δ_{t+l}``; ``A + V``   PPO: verl ``compute_gae_advantage_return``
`nft_rates`             ``r̂_q`` (clamped) and ``c_i``       NFT: NVlabs/NFT ``ray_nft_trainer.py``
======================  ==================================  ============================================
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Literal

import torch

__all__ = [
    "broadcast",
    "discounted_returns",
    "gae",
    "gdpo",
    "gpg",
    "group_index",
    "group_mean",
    "group_mean_batch_std",
    "group_mean_std",
    "leave_one_out",
    "masked_whiten",
    "nft_rates",
    "opo",
    "pass_at_k",
    "reinforce_pp",
    "reinforce_pp_baseline",
    "remax",
]

StdMode = Literal["unbiased", "population"]
Singleton = Literal["verl", "zero"]
RewardKind = Literal["pm1", "binary"]
Groups = int | torch.Tensor
"""Contiguous groups of an ``int`` size, or a ``[N]`` integer tensor of group ids (module docstring)."""


def _float(x: torch.Tensor) -> torch.Tensor:
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def _group_size(groups: int, n: int) -> int:
    """Validate an ``int`` group size against ``n`` samples."""
    if isinstance(groups, bool):
        raise TypeError("groups must be an int group size or a [N] integer tensor of group ids, got a bool")
    size = operator.index(groups)
    if size < 1 or n % size:
        raise ValueError(f"{n} rewards do not form groups of {size}")
    return size


def group_index(
    groups: Groups, n: int, *, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense group ids and sizes for ``n`` samples: ``(ids [N], sizes [P])``, both ``int64``.

    ``groups`` is an ``int`` size ``G`` (contiguous groups: ``ids = i // G``) or a ``[N]`` integer tensor of
    group ids (any values, any order). Dense ids run ``0..P-1`` in order of first appearance, so
    ``sizes[g]`` is the size of the ``g``-th distinct group met scanning the batch. ``device``: where the
    result lives (default: the id tensor's device, or the CPU for an ``int``).
    """
    if not isinstance(groups, torch.Tensor):
        size = _group_size(groups, n)
        ids = torch.arange(n, device=device) // size  # [N]
        return ids, torch.full((n // size,), size, dtype=torch.long, device=device)
    if groups.dim() != 1 or groups.numel() != n:
        raise ValueError(f"group ids must be [N] with N = {n}, got shape {tuple(groups.shape)}")
    if groups.dtype == torch.bool or groups.is_floating_point() or groups.is_complex():
        raise TypeError(f"group ids must be an integer tensor, got {groups.dtype}")
    if device is not None:
        groups = groups.to(device)
    unique, inverse = torch.unique(groups, return_inverse=True)  # [U], [N]
    positions = torch.arange(n, device=groups.device)  # [N]
    first = torch.full_like(unique, n, dtype=torch.long).scatter_reduce_(0, inverse, positions, "amin")  # [P]
    rank = torch.empty_like(first)
    rank[first.argsort()] = torch.arange(first.numel(), device=groups.device)
    ids = rank[inverse]  # [N]
    return ids, torch.bincount(ids, minlength=first.numel())


def _groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """``[N]`` -> ``[P, G]`` (validating the layout): the contiguous path of an ``int`` group size."""
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be [N], got shape {tuple(rewards.shape)}")
    return _float(rewards).reshape(-1, _group_size(group_size, rewards.numel()))


def _segments(rewards: torch.Tensor, groups: Groups) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(rewards [N] as float, dense ids [N], sizes [P])``: the path of group ids."""
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be [N], got shape {tuple(rewards.shape)}")
    r = _float(rewards)
    ids, sizes = group_index(groups, r.numel(), device=r.device)
    return r, ids, sizes


def _seg_sum(x: torch.Tensor, ids: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Per-group sums of ``x [N]``: ``[P]``."""
    return torch.zeros(num_groups, dtype=x.dtype, device=x.device).index_add_(0, ids, x)


def _seg_mean(r: torch.Tensor, ids: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Per-group means ``[P]``."""
    return _seg_sum(r, ids, sizes.numel()) / sizes.to(r.dtype)


def _seg_std(
    r: torch.Tensor, ids: torch.Tensor, sizes: torch.Tensor, mean: torch.Tensor, correction: int
) -> torch.Tensor:
    """Per-group std ``[P]`` about ``mean [P]`` (two-pass); a group no larger than ``correction`` gets 0."""
    dev = r - mean[ids]  # [N]
    denom = (sizes - correction).clamp(min=1).to(r.dtype)  # [P]
    return (_seg_sum(dev * dev, ids, sizes.numel()) / denom).sqrt()


def _seg_all_equal(r: torch.Tensor, ids: torch.Tensor, num_groups: int) -> torch.Tensor:
    """``[P]`` bool: groups whose values are all exactly equal (``max == min``; singletons included)."""
    empty = torch.zeros(num_groups, dtype=r.dtype, device=r.device)
    high = empty.scatter_reduce(0, ids, r, "amax", include_self=False)
    low = empty.scatter_reduce(0, ids, r, "amin", include_self=False)
    return high == low


def _check_singleton(singleton: str) -> None:
    if singleton not in ("verl", "zero"):
        raise ValueError(f"unknown singleton rule {singleton!r}; valid: verl, zero")


def _zero_masked(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return torch.where(valid, values, torch.zeros((), dtype=values.dtype, device=values.device))


def _zero_where(values: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    return torch.where(cond, torch.zeros((), dtype=values.dtype, device=values.device), values)


# ----------------------------------------------------------------------------------------------------
# Group-relative, sequence-level estimators: [N] -> [N]
# ----------------------------------------------------------------------------------------------------


def group_mean_std(
    rewards: torch.Tensor,
    groups: Groups,
    std_mode: StdMode = "unbiased",
    eps: float = 1e-6,
    singleton: Singleton = "verl",
) -> torch.Tensor:
    """GRPO advantage ``A_i = (R_i - μ_q) / (σ_q + eps)`` (Shao et al., arXiv 2402.03300 §4.1.2).

    ``rewards [N]``, ``groups`` (module docstring) -> ``[N]``.

    * ``std_mode="unbiased"``: ``σ_q = torch.std`` (N-1), as verl ``compute_grpo_outcome_advantage`` and
      OpenRLHF ``group_norm``. ``"population"`` (N) is the std under which NFT's prompt-weight mode 2 equals
      GRPO on-policy (ALGORITHMS.md §1.3). The paper says only "standard deviation".
    * ``eps`` is added to the std (verl: 1e-6). A group whose rewards are all equal gets 0.
    * Singleton groups: verl sets ``μ = 0, σ = 1``, so ``A = R / (1 + eps)`` (≈ R: plain REINFORCE without a
      baseline); ``singleton="zero"`` gives 0 instead (the group mean of one sample is the sample itself).
    """
    _check_singleton(singleton)
    if std_mode not in ("unbiased", "population"):
        raise ValueError(f"unknown std_mode {std_mode!r}; valid: unbiased, population")
    correction = 1 if std_mode == "unbiased" else 0
    if isinstance(groups, torch.Tensor):
        r, ids, sizes = _segments(rewards, groups)  # [N], [N], [P]
        single = sizes == 1  # [P]
        mean = _seg_mean(r, ids, sizes)  # [P]
        std = _seg_std(r, ids, sizes, mean, correction)  # [P]
        if singleton == "verl":
            mean = _zero_where(mean, single)
            std = torch.where(single, torch.ones_like(std), std)
        out = (r - mean[ids]) / (std[ids] + eps)  # [N]
        return _zero_where(out, single[ids]) if singleton == "zero" else out
    r = _groups(rewards, groups)  # [P, G]
    if r.shape[1] == 1:
        return (r / (1.0 + eps)).reshape(-1) if singleton == "verl" else torch.zeros_like(r).reshape(-1)
    mean = r.mean(dim=1, keepdim=True)  # [P, 1]
    std = r.std(dim=1, keepdim=True, correction=correction)  # [P, 1]
    return ((r - mean) / (std + eps)).reshape(-1)  # [N]


def group_mean(rewards: torch.Tensor, groups: Groups, singleton: Singleton = "verl") -> torch.Tensor:
    """Dr. GRPO advantage ``A_i = R_i - μ_q`` (Liu et al., arXiv 2503.20783 §3.1). ``[N] -> [N]``.

    Singleton groups follow verl (``norm_adv_by_std_in_grpo=False``: ``μ = 0``, so ``A = R``) unless
    ``singleton="zero"``.
    """
    _check_singleton(singleton)
    if isinstance(groups, torch.Tensor):
        r, ids, sizes = _segments(rewards, groups)  # [N], [N], [P]
        single = sizes == 1  # [P]
        mean = _seg_mean(r, ids, sizes)  # [P]
        if singleton == "verl":
            return r - _zero_where(mean, single)[ids]
        return _zero_where(r - mean[ids], single[ids])
    r = _groups(rewards, groups)  # [P, G]
    if r.shape[1] == 1:
        return r.reshape(-1).clone() if singleton == "verl" else torch.zeros_like(r).reshape(-1)
    return (r - r.mean(dim=1, keepdim=True)).reshape(-1)  # [N]


def group_mean_batch_std(rewards: torch.Tensor, groups: Groups, eps: float = 1e-6) -> torch.Tensor:
    """Lite PPO advantage ``A_i = (R_i - μ_q) / (std_B + eps)`` (Liu et al., "Tricks or Traps? Part I",
    arXiv 2508.08221 §4; ALGORITHMS.md §2.1). ``[N] -> [N]``.

    ``std_B`` is the *unbiased* std of the raw rewards over the whole batch (all ``N`` responses, not
    token-weighted, not centred per group), as ROLL ``reward_norm(norm_mean_type="group",
    norm_std_type="batch")`` computes it: ``response_level_rewards.std()``. Singleton groups get 0 (ROLL's
    group mean of one sample is the sample); a one-sample batch (std undefined) gets 0.
    """
    if isinstance(groups, torch.Tensor):
        r, ids, sizes = _segments(rewards, groups)  # [N], [N], [P]
        centred = r - _seg_mean(r, ids, sizes)[ids]  # [N]
    else:
        grouped = _groups(rewards, groups)  # [P, G]
        r = grouped.reshape(-1)  # [N]
        centred = (grouped - grouped.mean(dim=1, keepdim=True)).reshape(-1)  # [N]
    if r.numel() < 2:
        return torch.zeros_like(centred)
    return centred / (r.std() + eps)  # [N]


def leave_one_out(rewards: torch.Tensor, groups: Groups) -> torch.Tensor:
    """RLOO advantage ``A_i = R_i - (1/(G-1)) Σ_{j≠i} R_j = G/(G-1) · (R_i - μ_q)`` (Ahmadian et al.,
    arXiv 2402.14740 §3; Kool et al. 2019). ``[N] -> [N]``; ``G`` is each group's own size.

    Computed in verl's form ``R·G/(G-1) - μ_q·G/(G-1)``. Singleton groups (no other sample to form a
    baseline) get 0; verl leaves them at ``R``.
    """
    if isinstance(groups, torch.Tensor):
        r, ids, sizes = _segments(rewards, groups)  # [N], [N], [P]
        g = sizes[ids].to(r.dtype)  # [N]
        g_less = (g - 1).clamp(min=1)  # [N] (a singleton's value is replaced below)
        out = r * g / g_less - _seg_mean(r, ids, sizes)[ids] * g / g_less  # [N]
        return _zero_where(out, sizes[ids] == 1)
    r = _groups(rewards, groups)  # [P, G]
    g = r.shape[1]
    if g == 1:
        return torch.zeros_like(r).reshape(-1)
    return (r * g / (g - 1) - r.mean(dim=1, keepdim=True) * g / (g - 1)).reshape(-1)  # [N]


def opo(rewards: torch.Tensor, groups: Groups, lengths: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """OPO advantage ``A_i = R_i - b_q`` with the length-weighted baseline ``b_q = Σ_i |o_i| R_i / Σ_i |o_i|``
    (Hao et al., "On-Policy RL with Optimal Reward Baseline", arXiv 2505.23585; ALGORITHMS.md §15.6; verl
    ``compute_opo_outcome_advantage``). ``rewards [N]``, ``lengths [N]`` response lengths in tokens -> ``[N]``.

    ``b_q`` is the variance-minimising baseline when ``‖∇log π(o)‖²`` grows like ``|o|``; no std division. It
    presumes exact on-policy training (one mini-batch, one epoch, no KL/entropy term); that is the preset's
    business, not this function's.

    * Singleton groups: ``b = 0``, so ``A = R`` (as verl).
    * A group (of two or more) whose rewards are all equal gets exactly 0; verl computes ``R - b`` there,
      which is 0 up to rounding.
    * Departure: a group whose responses are all empty (``Σ|o| = 0``) gets 0; verl divides 0 by 0 (NaN).
      Such responses have no tokens, so the value never reaches a loss.
    """
    r, ids, sizes = _segments(rewards, groups)  # [N], [N], [P]
    w = torch.as_tensor(lengths, device=r.device).to(r.dtype)  # [N]
    if w.shape != r.shape:
        raise ValueError(f"lengths must be [N] like rewards {tuple(r.shape)}, got shape {tuple(w.shape)}")
    if bool((w < 0).any()):
        raise ValueError("lengths must be >= 0")
    p = sizes.numel()
    total = _seg_sum(w, ids, p)  # [P]
    has_tokens = total > 0  # [P]
    baseline = _seg_sum(w * r, ids, p) / torch.where(has_tokens, total, torch.ones_like(total))  # [P]
    single = sizes == 1  # [P]
    out = r - _zero_where(baseline, single)[ids]  # [N]
    flat = ~single & (_seg_all_equal(r, ids, p) | ~has_tokens)  # [P]
    return _zero_where(out, flat[ids])


def gpg(rewards: torch.Tensor, groups: Groups) -> torch.Tensor:
    """GPG advantage ``A_i = α · (R_i - μ_q) / F_norm`` with ``F_norm = 1`` and ``α = B / (B - M)`` (Chu et al.,
    "GPG: A Simple and Strong Reinforcement Learning Baseline", arXiv 2504.02546; ALGORITHMS.md §15.4).
    ``[N] -> [N]``.

    ``B`` is the number of samples in the batch, ``M`` the number of those in groups whose rewards are all
    equal (``max == min``, as `parts.shaping.zero_variance_groups`; such groups have no learning signal, and
    ``α`` rescales the gradient so the valid samples carry the weight of the whole batch). If every group is
    flat, ``α = 1`` (the advantages are all 0 anyway). Flat groups get exactly 0. A singleton group is flat
    (``μ_q`` of one sample is the sample): it gets 0 and counts in ``M``.

    The paper's alternative ``F_norm = σ_q`` is `group_mean_std` times ``α``; its regeneration of batches
    until ``1/α`` is high enough (reference ``min_inverse_alpha`` 0.5) is a sampler concern, not done here.

    verl's ``compute_gpg_outcome_advantage`` departs from the paper: ``α = B / #(samples with a nonzero raw
    reward)`` (clamped to at least one), which equals ``B / (B - M)`` only by coincidence, and a singleton
    group gets ``μ_q = 0`` (``A = α · R``).
    """
    r, ids, sizes = _segments(rewards, groups)  # [N], [N], [P]
    flat = _seg_all_equal(r, ids, sizes.numel())  # [P]
    batch, flat_samples = r.numel(), int(sizes[flat].sum())
    alpha = batch / (batch - flat_samples) if batch > flat_samples else 1.0
    out = alpha * (r - _seg_mean(r, ids, sizes)[ids])  # [N]
    return _zero_where(out, flat[ids])


def _comb(n: int, k: int) -> int:
    """``C(n, k)``, 0 outside ``0 <= k <= n`` (as ``scipy.special.comb``)."""
    return math.comb(n, k) if 0 <= k <= n else 0


def _pass_at_k_group(size: int, num_correct: int, k: int, eps: float) -> tuple[float, float]:
    """``(A_pos, A_neg)`` of one group (ALGORITHMS.md §15.7), with exact rational combinatorics."""
    if size < k:
        return 0.0, 0.0
    num_wrong = size - num_correct
    fail = Fraction(_comb(num_wrong, k), _comb(size, k))  # 1 - R̄: every one of k draws wrong
    if fail in (0, 1):  # R̄ = 1 or 0: the formula's 0 / (0 + eps), also for eps = 0
        return 0.0, 0.0
    sigma = math.sqrt(float(fail * (1 - fail)))  # sqrt(R̄ (1 - R̄))
    pos = float(fail) / (sigma + eps)
    neg = float(fail - Fraction(_comb(num_wrong - 1, k - 1), _comb(size - 1, k - 1))) / (sigma + eps)
    return pos, neg


def pass_at_k(correct: torch.Tensor, groups: Groups, k: int, eps: float = 1e-6) -> torch.Tensor:
    """Pass@k advantage (Chen et al., "Pass@k Training for Adaptively Balancing Exploration and
    Exploitation", arXiv 2508.10751; ALGORITHMS.md §15.7; reference ``RUCAIBox/Passk_Training``
    ``code/passk_adv.py::calc_adv``). ``correct [N]`` in {0, 1} (bool or numbers) -> ``[N]``.

    For a group of ``n`` responses, ``n_neg`` of them wrong, the expected pass@k of ``k`` draws without
    replacement is ``R̄ = 1 - C(n_neg, k)/C(n, k)``, with ``σ = sqrt(R̄(1 - R̄))``:

    * a correct response gets ``A_pos = (1 - R̄) / (σ + eps)``;
    * a wrong one ``A_neg = (1 - R̄ - C(n_neg - 1, k - 1)/C(n - 1, k - 1)) / (σ + eps)``.

    ``k = 1`` gives GRPO with the population std (`group_mean_std` with ``std_mode="population"``).
    Combinatorics are exact (Python integers and fractions), so large groups neither overflow nor cancel.

    Degenerate groups, by the formula itself (the reference's ``σ + 1e-6`` keeps it finite): all-wrong
    (``R̄ = 0``: ``A_neg = (1 - 0 - 1)/eps = 0``), all-correct and ``n_neg < k`` (every ``k``-subset holds a
    correct response: ``R̄ = 1``, ``A_pos = 0``, and ``C(n_neg - 1, k - 1) = 0`` makes ``A_neg = 0``) all
    get exactly 0, as in the reference. A singleton group is all-correct or all-wrong: 0.

    Departures: a group smaller than ``k`` gets 0 (pass@k is undefined; the reference divides
    ``C(n_neg, k) = 0`` by ``C(n, k) = 0`` and returns NaN). Values other than 0/1 raise; the reference leaves
    them unchanged (e.g. a -1 reward stays -1 as the "advantage").
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"pass@k needs an integer k >= 1, got {k!r}")
    c = torch.as_tensor(correct)
    if c.dim() != 1:
        raise ValueError(f"correct must be [N], got shape {tuple(c.shape)}")
    out_dtype = c.dtype if c.is_floating_point() else torch.get_default_dtype()
    c = c.to(torch.float64)
    if not bool(((c == 0) | (c == 1)).all()):
        raise ValueError("pass@k needs correctness in {0, 1}")
    ids, sizes = group_index(groups, c.numel(), device=c.device)  # [N], [P]
    num_correct = _seg_sum(c, ids, sizes.numel()).round().long()  # [P]
    # The advantages depend on (size, num_correct) only: one exact evaluation per distinct pair.
    pairs, pair_of_group = torch.unique(torch.stack([sizes, num_correct], dim=1), dim=0, return_inverse=True)
    values = [_pass_at_k_group(n, m, k, eps) for n, m in pairs.tolist()]
    table = torch.tensor(values, dtype=torch.float64, device=c.device).reshape(-1, 2)  # [U, 2]: pos, neg
    pos, neg = table[pair_of_group, 0], table[pair_of_group, 1]  # [P]
    return torch.where(c > 0, pos[ids], neg[ids]).to(out_dtype)  # [N]


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
    rewards propagate across masked holes such as tool outputs in a multi-turn response.

    verl's REINFORCE++ loop (``compute_reinforce_plus_plus_outcome_advantage``) walks every position
    backwards with ``run = r_t + γ·run; G_t = run; run = run·mask_t``: the running return is zeroed
    *after* each masked position, so a masked position's own ``G_t`` still holds everything after it (then
    masked out), while a valid position before a masked hole restarts from nothing: it sees neither the
    hole's rewards nor any reward after the hole (the outcome at the last token included), only the rewards
    of its own run of valid tokens, discounted once per position. No discount step crosses a hole because
    nothing does. Trailing padding is zeroed position by position, so the return is 0 on reaching the last
    valid token; for a mask that is one contiguous run of valid tokens (rlvr's left-aligned responses)
    the two agree exactly. verl also multiplies rather than selects, so an inf/NaN reward at a masked
    position becomes NaN and reaches every earlier position; here masked rewards are zeroed first.
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
    groups: Groups,
    mask: torch.Tensor,
    eps: float = 1e-8,
    var_mode: StdMode = "unbiased",
    singleton: Singleton = "verl",
) -> torch.Tensor:
    """REINFORCE++-baseline (ALGORITHMS.md §7.2; verl ``compute_reinforce_plus_plus_baseline_outcome_advantage``,
    OpenRLHF ``reinforce_baseline``): ``R - μ_q`` broadcast to the tokens, then token-weighted batch
    whitening (`masked_whiten`). ``[N] -> [N, T]``. Singletons as `group_mean` (verl: ``μ = 0``).
    """
    centred = broadcast(group_mean(rewards, groups, singleton=singleton), mask)  # [N, T]
    return masked_whiten(centred, mask, eps=eps, var_mode=var_mode)



def remax(
    outcome: torch.Tensor, baseline: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """ReMax advantage ``A_{i,t} = Σ_{s≥t} r_{i,s} - R(q, ō_q)`` (Li et al., arXiv 2310.10505; ALGORITHMS.md
    §15.8; verl ``compute_remax_outcome_advantage``). Returns ``[N, T]``, 0 at masked positions.

    ``r_t = 1[t = last response token]·R - kl_coef·kl_t`` as in `reinforce_pp` (verl puts the KL penalty in
    the token rewards when ``use_kl_in_reward``; ``kl_coef = 0`` leaves the outcome alone), the undiscounted
    return-to-go (γ = 1, `discounted_returns`), minus ``baseline [N]``: the reward of the greedy
    (``do_sample=False``) response to each sample's prompt, repeated for every sample of that prompt (verl
    ``reward_baselines``: the greedy response's summed score, without KL). Producing that greedy rollout is
    the caller's job. No group statistics, no whitening; a sample equal to its greedy response gets 0
    without KL.
    """
    valid = mask > 0  # [N, T]
    base = _float(baseline)
    if outcome.dim() != 1 or base.shape != outcome.shape or mask.dim() != 2 or mask.shape[0] != outcome.shape[0]:
        raise ValueError(f"outcome {tuple(outcome.shape)} and baseline {tuple(base.shape)} must be [N] and mask "
                         f"{tuple(mask.shape)} [N, T]")
    token_rewards = _last_token_rewards(outcome, mask) - kl_coef * _zero_masked(_float(kl), valid)  # [N, T]
    returns = discounted_returns(token_rewards, mask, 1.0)  # [N, T]
    return _zero_masked(returns - base[:, None], valid)


def gdpo(
    terms: Mapping[str, torch.Tensor],
    weights: Mapping[str, float],
    groups: Groups,
    mask: torch.Tensor,
    eps: float = 1e-6,
    whiten_eps: float = 1e-8,
) -> torch.Tensor:
    """GDPO advantage: GRPO-normalise each reward term on its own, sum, then whiten (Liu et al., arXiv
    2601.05242; ALGORITHMS.md §15.9; verl ``compute_gdpo_outcome_advantage``). Returns ``[N, T]``.

    ``A_{k,i} = (R_{k,i} - μ_q(R_k)) / (σ_q(R_k) + eps)`` for each term ``R_k = terms[k] [N]``
    (`group_mean_std`: unbiased std, verl's singleton rule ``A = R/(1 + eps)``), ``A_i = Σ_k w_k A_{k,i}``
    with ``w_k = weights.get(k, 1)``, broadcast to the response tokens, then token-weighted batch whitening
    (`masked_whiten`, unbiased variance, ``whiten_eps`` inside the rsqrt). Normalising per term keeps
    distinct reward combinations apart, which a single GRPO on the summed reward collapses. A group equal on
    every term does not end at 0: whitening moves it to ``-mean_B / std_B``.

    Raises if ``terms`` is empty, a term is not ``[N]`` with ``N = mask.shape[0]``, or ``weights`` names a
    term that ``terms`` lacks (a misspelt weight would otherwise silently be 1).
    """
    if not terms:
        raise ValueError("gdpo needs at least one reward term, got none")
    unknown = sorted(set(weights) - set(terms))
    if unknown:
        raise ValueError(f"gdpo weights name {unknown}, which are not among the terms {sorted(terms)}")
    if mask.dim() != 2:
        raise ValueError(f"mask must be [N, T], got shape {tuple(mask.shape)}")
    total: torch.Tensor | None = None
    for name, term in terms.items():
        if tuple(term.shape) != (mask.shape[0],):
            raise ValueError(f"gdpo term {name!r} has shape {tuple(term.shape)}; every term must be [N] with "
                             f"N = {mask.shape[0]} (the mask's rows)")
        weighted = float(weights.get(name, 1.0)) * group_mean_std(term, groups, "unbiased", eps, "verl")  # [N]
        total = weighted if total is None else total + weighted
    assert total is not None
    return masked_whiten(broadcast(total, mask), mask, eps=whiten_eps, var_mode="unbiased")


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
    groups: Groups,
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
      for ±1 rewards; rlvr gives ``r_hat = 0.5`` for both reward kinds (per group: a singleton among larger
      groups too).
    """
    if reward_kind not in ("pm1", "binary"):
        raise ValueError(f"unknown reward_kind {reward_kind!r}; valid: pm1, binary")
    if isinstance(groups, torch.Tensor):
        r, ids, sizes = _segments(rewards, groups)  # [N], [N], [P]
        single = sizes == 1  # [P]
        mean = _seg_mean(r, ids, sizes)  # [P]
        if reward_kind == "pm1":
            rate = (_zero_where(mean, single) + 1.0) / 2.0  # [P]
            correct = (r + 1.0) / 2.0  # [N]
        else:
            rate = torch.where(single, torch.full_like(mean, 0.5), mean)  # [P]
            correct = r.clone()  # [N]
        r_hat = rate[ids]  # [N]
        if clamp is not None:
            r_hat = r_hat.clamp(min=clamp[0], max=clamp[1])
        return r_hat, correct
    r = _groups(rewards, groups)  # [P, G]
    group_size = r.shape[1]
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
