"""Small, pure, typed torch functions from which the loss modules are assembled.

Each function documents its inputs, shapes and conventions and cites the paper and the reference
implementation it reproduces (and where they differ). Per-token tensors are ``[B, T]`` with a
``mask`` (``mask > 0`` marks response tokens; masked positions may hold garbage, inf/NaN included,
which never reaches a valid value or gradient). Per-sequence tensors are ``[N]``, ordered group by
group (``N = P * G``). The math is in ``ALGORITHMS.md``.

Modules: `advantages` (estimators), `ratio` (importance ratios), `clip` (PPO-clip), `aggregation`
(loss reduction with mini-batch-wide normalisers), `kl` (estimators, controllers), `nft` (NFT loss),
`correction` (sampler/learner importance-sampling corrections, mismatch diagnostics), `shaping` (reward
shaping and group filters).
"""

from rlvr.algorithms.parts.advantages import (
    broadcast,
    discounted_returns,
    gae,
    group_mean,
    group_mean_batch_std,
    group_mean_std,
    leave_one_out,
    masked_whiten,
    nft_rates,
    reinforce_pp,
    reinforce_pp_baseline,
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
from rlvr.algorithms.parts.ratio import RATIO_LEVELS, importance_ratio, log_ratio
from rlvr.algorithms.parts.shaping import non_eos_penalty, overlong_penalty, truncated_reward, zero_variance_groups

__all__ = [
    "AGG_MODES",
    "BANDED_CORRECTIONS",
    "IS_CORRECTIONS",
    "KL_ESTIMATORS",
    "RATIO_LEVELS",
    "AdaptiveKLController",
    "AggNorm",
    "ClipResult",
    "FixedKLController",
    "aggregate",
    "broadcast",
    "clamp_preserve_grad",
    "discounted_returns",
    "gae",
    "icepop",
    "group_mean",
    "group_mean_batch_std",
    "group_mean_std",
    "importance_ratio",
    "is_weights",
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
    "overlong_penalty",
    "ppo_clip",
    "reinforce_pp",
    "reinforce_pp_baseline",
    "seq_tis",
    "token_tis",
    "truncated_reward",
    "zero_variance_groups",
]
