"""Reward shaping and group filters (`rlvr.algorithms.parts.shaping`)."""

from __future__ import annotations

import pytest
import torch

from rlvr.algorithms.parts.advantages import group_mean_std
from rlvr.algorithms.parts.shaping import (
    non_eos_penalty,
    overlong_penalty,
    truncated_reward,
    zero_variance_groups,
)


def test_overlong_penalty_verl_form() -> None:
    # max_len 20, cache 4 -> expected 16; exceed = len - 16 = -6, 0, 1, 2, 4
    # -exceed/4 = 1.5, 0, -0.25, -0.5, -1 -> min(., 0)
    lengths = torch.tensor([10, 16, 17, 18, 20])
    torch.testing.assert_close(overlong_penalty(lengths, 20, 4), torch.tensor([0.0, 0.0, -0.25, -0.5, -1.0]))
    torch.testing.assert_close(overlong_penalty([10, 16, 17, 18, 20], 20, 4, factor=0.5),
                               torch.tensor([0.0, 0.0, -0.125, -0.25, -0.5]))


def test_overlong_penalty_dapo_defaults() -> None:
    # L_max 20480, L_cache 4096: expected 16384; |y| = 18432 -> -(2048/4096) = -0.5; at L_max -> -1
    out = overlong_penalty(torch.tensor([16384.0, 18432.0, 20480.0]), 20480, 4096)
    torch.testing.assert_close(out, torch.tensor([0.0, -0.5, -1.0]))
    with pytest.raises(ValueError, match="0 < cache_len <= max_len"):
        overlong_penalty([1], 20, 0)


def test_non_eos_penalty_and_truncated_reward() -> None:
    torch.testing.assert_close(non_eos_penalty([True, False, True], -10.0), torch.tensor([-10.0, 0.0, -10.0]))
    rewards = torch.tensor([1.0, 0.5, 1.0])
    truncated = torch.tensor([True, False, False])
    # Tulu 3: the score of a non-stopping response is replaced by -10; Dr. GRPO: by 0
    torch.testing.assert_close(truncated_reward(rewards, truncated, -10.0), torch.tensor([-10.0, 0.5, 1.0]))
    torch.testing.assert_close(truncated_reward(rewards, truncated, 0.0), torch.tensor([0.0, 0.5, 1.0]))


def test_zero_variance_groups() -> None:
    rewards = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1, -1, -1, -1, -1], dtype=torch.float32)
    flags = zero_variance_groups(rewards, 4)
    assert flags.tolist() == [True, True, False, True]
    # exactly the groups whose GRPO advantages are all zero
    zero_adv = (group_mean_std(rewards, 4).view(-1, 4) == 0).all(dim=1)
    assert torch.equal(flags, zero_adv)
    assert zero_variance_groups([0.1, 0.1, 0.1], 3).tolist() == [True]  # exact equality (np.std may not be 0)
    assert zero_variance_groups([1.0, 0.0], 1).tolist() == [True, True]  # a single sample has no variance
    with pytest.raises(ValueError, match="do not form groups of 4"):
        zero_variance_groups([1.0, 0.0, 1.0], 4)
