"""Small, pure, typed torch functions from which the loss modules are assembled.

Each function documents its inputs, shapes and conventions and cites the paper and the reference
implementation it reproduces (and where they differ). Per-token tensors are ``[B, T]`` with a
``mask`` (``mask > 0`` marks response tokens; masked positions may hold garbage, inf/NaN included,
which never reaches a valid value or gradient). Per-sequence tensors are ``[N]``; group estimators take
``groups``: an ``int`` size of contiguous groups (``N = P * G``) or a ``[N]`` integer tensor of group ids
(any order and sizes; `group_index`). The math is in ``ALGORITHMS.md``.

Modules: `advantages` (estimators), `ratio` (importance ratios), `clip` (PPO-clip), `aggregation`
(loss reduction with mini-batch-wide normalisers), `kl` (estimators, controllers), `nft` (NFT loss),
`correction` (sampler/learner importance-sampling corrections, mismatch diagnostics), `policy` (the
second-wave policy losses: CISPO, SAPO, GMPO, GPG, DPPO, REINFORCE, Clip-Cov, KL-Cov), `shaping` (reward
shaping and group filters).
"""

from rlvr.algorithms.parts.advantages import (
    broadcast,
    discounted_returns,
    gae,
    gdpo,
    gpg,
    group_index,
    group_mean,
    group_mean_batch_std,
    group_mean_std,
    leave_one_out,
    masked_whiten,
    nft_rates,
    opo,
    pass_at_k,
    reinforce_pp,
    reinforce_pp_baseline,
    remax,
)
from rlvr.algorithms.parts.aggregation import AGG_MODES, AggNorm, aggregate, masked_sum
from rlvr.algorithms.parts.clip import ClipResult, ppo_clip
from rlvr.algorithms.parts.correction import (
    BANDED_CORRECTIONS,
    IS_CORRECTIONS,
    icepop,
    is_weights,
    mis,
    mismatch_stats,
    seq_tis,
    token_tis,
)
from rlvr.algorithms.parts.kl import KL_ESTIMATORS, AdaptiveKLController, FixedKLController, kl_penalty
from rlvr.algorithms.parts.nft import clamp_preserve_grad, nft_loss, nft_prompt_weight
from rlvr.algorithms.parts.policy import (
    COV_MODES,
    DPPO_KINDS,
    PolicyLoss,
    cispo,
    clip_cov,
    covariance_selection,
    dppo,
    gmpo,
    kl_cov,
    reinforce,
    sapo,
)  # policy.gpg (the GPG loss) is not re-exported: `gpg` here is the GPG advantage estimator
from rlvr.algorithms.parts.ratio import RATIO_LEVELS, importance_ratio, log_ratio
from rlvr.algorithms.parts.shaping import non_eos_penalty, overlong_penalty, truncated_reward, zero_variance_groups

__all__ = [
    "AGG_MODES",
    "BANDED_CORRECTIONS",
    "COV_MODES",
    "DPPO_KINDS",
    "IS_CORRECTIONS",
    "KL_ESTIMATORS",
    "RATIO_LEVELS",
    "AdaptiveKLController",
    "AggNorm",
    "ClipResult",
    "FixedKLController",
    "PolicyLoss",
    "aggregate",
    "broadcast",
    "cispo",
    "clamp_preserve_grad",
    "clip_cov",
    "covariance_selection",
    "discounted_returns",
    "dppo",
    "gae",
    "icepop",
    "gdpo",
    "gmpo",
    "gpg",
    "group_index",
    "group_mean",
    "group_mean_batch_std",
    "group_mean_std",
    "importance_ratio",
    "is_weights",
    "kl_cov",
    "kl_penalty",
    "leave_one_out",
    "log_ratio",
    "masked_sum",
    "masked_whiten",
    "mis",
    "mismatch_stats",
    "nft_loss",
    "nft_prompt_weight",
    "nft_rates",
    "non_eos_penalty",
    "opo",
    "overlong_penalty",
    "pass_at_k",
    "ppo_clip",
    "reinforce",
    "reinforce_pp",
    "reinforce_pp_baseline",
    "remax",
    "sapo",
    "seq_tis",
    "token_tis",
    "truncated_reward",
    "zero_variance_groups",
]
