"""Sample- and group-level reward shaping and filters, run on the driver before advantages.

Inputs are ``[N]`` per-sample tensors (or sequences of numbers). Group filters take ``groups`` as the
advantage estimators do (`parts.advantages` module docstring): an ``int`` size of contiguous groups, or a
``[N]`` integer tensor of group ids in any order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlvr.algorithms.parts.advantages import Groups, _seg_all_equal, group_index  # the package's segment helpers

__all__ = ["non_eos_penalty", "overlong_penalty", "truncated_reward", "zero_variance_groups"]


def _tensor(x: torch.Tensor | Sequence[float] | Sequence[bool], dtype: torch.dtype | None = None) -> torch.Tensor:
    t = torch.as_tensor(x)
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point() and t.dtype != torch.bool:
        t = t.to(torch.get_default_dtype())
    if t.dim() != 1:
        raise ValueError(f"expected a [N] vector, got shape {tuple(t.shape)}")
    return t


def overlong_penalty(
    lengths: torch.Tensor | Sequence[int], max_len: int, cache_len: int, factor: float = 1.0
) -> torch.Tensor:
    """DAPO soft overlong punishment (Yu et al., arXiv 2503.14476 eq. 13; ALGORITHMS.md §3), added to the
    reward. ``lengths [N]`` response lengths in tokens -> ``[N]`` penalties (≤ 0).

    verl form (``verl/workers/reward_manager/dapo.py``): with ``expected = max_len - cache_len``,
    ``min(-(len - expected) / cache_len · factor, 0)``: 0 up to ``expected``, then linear down to
    ``-factor`` at ``max_len``. The paper's third case (``-1`` beyond ``max_len``) is not applied: verl
    continues the line, and the sampler cannot exceed ``max_len`` anyway.
    """
    if not 0 < cache_len <= max_len:
        raise ValueError(f"need 0 < cache_len <= max_len, got cache_len={cache_len}, max_len={max_len}")
    exceed = _tensor(lengths, torch.float32) - (max_len - cache_len)  # [N]
    return torch.clamp(-exceed / cache_len * factor, max=0.0)


def non_eos_penalty(truncated: torch.Tensor | Sequence[bool], penalty: float) -> torch.Tensor:
    """``penalty`` for samples that hit the length limit without EOS, else 0: an additive ``[N]`` term.

    Tulu 3 (open-instruct ``--non_stop_penalty``, ``penalty_reward_value = -10``) *replaces* the score of
    such samples instead; that is `truncated_reward`.
    """
    hit = _tensor(truncated, torch.bool)  # [N]
    return torch.where(hit, torch.tensor(float(penalty)), torch.tensor(0.0))


def truncated_reward(
    rewards: torch.Tensor, truncated: torch.Tensor | Sequence[bool], value: float
) -> torch.Tensor:
    """Rewards with truncated (no EOS) samples replaced by ``value``: Tulu 3's non-stop penalty (-10),
    Dr. GRPO's "truncated responses score 0" (arXiv 2503.20783 §3.2). ``[N] -> [N]``."""
    hit = _tensor(truncated, torch.bool)  # [N]
    r = _tensor(rewards)  # [N]
    return torch.where(hit, torch.tensor(float(value), dtype=r.dtype), r)


def zero_variance_groups(rewards: torch.Tensor | Sequence[float], groups: Groups) -> torch.Tensor:
    """``[P]`` bool: groups whose rewards are all equal (no learning signal for group-relative
    advantages; NFT's ``r̂`` would be 0 or 1). DAPO dynamic sampling drops them and resamples
    (arXiv 2503.14476 eq. 11; verl / NVlabs/NFT ``filter_groups`` keep groups with ``np.std > 0``).

    ``groups``: an ``int`` size (contiguous groups, ``[P]`` in batch order) or ``[N]`` group ids (``[P]`` in
    the dense-id order of `parts.advantages.group_index`: order of first appearance). A singleton group
    is flagged (one sample has no variance).

    Equality is exact (``max == min``). ``np.std`` of equal non-dyadic floats can round to a tiny
    positive value (e.g. three rewards of 0.1), so the references may keep such a group; for the usual
    0/1 or ±1 rewards both agree.
    """
    r = _tensor(rewards)
    values = r.to(torch.get_default_dtype()) if r.dtype == torch.bool else r  # [N]
    ids, sizes = group_index(groups, values.numel(), device=values.device)  # validates the layout; [N], [P]
    return _seg_all_equal(values, ids, sizes.numel())
