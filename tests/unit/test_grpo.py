"""GRPO advantages and loss parts against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.algorithms import get_algorithm
from rlvr.algorithms.base import LossInput, LossNorm, aggregate, kl_estimate
from rlvr.algorithms.grpo import group_advantages, ppo_clip_loss
from rlvr.config.schema import AlgorithmConfig


def test_group_advantages_hand_computed() -> None:
    # group 1: rewards 1,0,0,1 -> mean 0.5, unbiased std sqrt(1/3) = 0.57735
    # group 2: 1,1,1,0 -> mean 0.75, unbiased std 0.5
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    adv = group_advantages(r, 4, std_normalize=True, eps=0.0)
    s1 = math.sqrt(1 / 3)
    expected = [0.5 / s1, -0.5 / s1, -0.5 / s1, 0.5 / s1, 0.5, 0.5, 0.5, -1.5]
    assert adv.tolist() == pytest.approx(expected, rel=1e-6)


def test_group_advantages_without_std_is_drgrpo() -> None:
    r = torch.tensor([2.0, 0.0, 1.0, 3.0, 3.0, 3.0])
    adv = group_advantages(r, 3, std_normalize=False, eps=1e-6)
    assert adv.tolist() == pytest.approx([1.0, -1.0, 0.0, 0.0, 0.0, 0.0])


def test_uniform_groups_get_zero_advantage() -> None:
    for rewards in ([1.0] * 4, [0.0] * 4):
        adv = group_advantages(torch.tensor(rewards), 4, std_normalize=True, eps=1e-6)
        assert torch.all(adv == 0)


def test_groups_must_be_whole() -> None:
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(torch.zeros(6), 4, True, 1e-6)


def test_ppo_clip_hand_computed() -> None:
    # ratios e^0.5=1.6487 (A=+1 -> clipped at 1.2), e^-0.5=0.6065 (A=-1 -> clipped at 0.8), 1 (A=2)
    lp = torch.tensor([[0.5, -0.5, 0.0]])
    old = torch.zeros(1, 3)
    adv = torch.tensor([[1.0, -1.0, 2.0]])
    loss, low, high = ppo_clip_loss(lp, old, adv, 0.2, 0.2)
    assert loss.tolist()[0] == pytest.approx([-1.2, 0.8, -2.0], rel=1e-6)
    # positive A, ratio above 1+eps: the upper bound binds; negative A, ratio below 1-eps: the lower one
    assert high.tolist() == [[True, False, False]]
    assert low.tolist() == [[False, True, False]]


def test_ppo_clip_keeps_pessimistic_side() -> None:
    # A>0 with a small ratio is not clipped (min picks the unclipped, smaller objective)
    loss, low, high = ppo_clip_loss(torch.tensor([[-1.0]]), torch.zeros(1, 1), torch.tensor([[1.0]]), 0.2, 0.28)
    assert loss.item() == pytest.approx(-math.exp(-1.0))
    assert not low.any() and not high.any()


def test_aggregation_modes_hand_computed() -> None:
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 99.0, 99.0]])  # padding holds garbage
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    norm = LossNorm(num_tokens=4, num_sequences=2)
    assert aggregate(per_token, mask, "token-mean", norm).item() == pytest.approx(10 / 4)
    assert aggregate(per_token, mask, "seq-mean-token-mean", norm).item() == pytest.approx((2 + 4) / 2)
    assert aggregate(per_token, mask, "seq-mean-token-sum", norm).item() == pytest.approx((6 + 4) / 2)


def test_aggregation_is_split_invariant() -> None:
    torch.manual_seed(0)
    per_token, mask = torch.randn(8, 5), (torch.rand(8, 5) > 0.3).float()
    norm = LossNorm(num_tokens=float(mask.sum()), num_sequences=8)
    for mode in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum"):
        whole = aggregate(per_token, mask, mode, norm)
        parts = sum(aggregate(per_token[i : i + 1], mask[i : i + 1], mode, norm) for i in range(8))
        assert parts.item() == pytest.approx(whole.item(), rel=1e-6)


def test_kl_estimators_hand_computed() -> None:
    lp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    d = math.log(2.0)
    assert kl_estimate(lp, ref, "k1").item() == pytest.approx(d)
    assert kl_estimate(lp, ref, "k2").item() == pytest.approx(d * d / 2)
    assert kl_estimate(lp, ref, "k3").item() == pytest.approx(0.5 - 1 + d)
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl_estimate(lp, ref, "k4")


def test_grpo_loss_on_policy_gradient_is_advantage_weighted() -> None:
    """On-policy (ratio 1) the PPO-clip gradient w.r.t. each log-prob is -A / num_tokens."""
    algo = get_algorithm(AlgorithmConfig(name="grpo"))
    assert not algo.needs_reference
    lp = torch.tensor([[-1.0, -2.0], [-0.5, -0.1]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([[0.7, 0.7], [-0.3, -0.3]]) * mask
    loss, sums = algo.loss(LossInput(lp, lp.detach(), adv, mask), LossNorm(num_tokens=3, num_sequences=2))
    loss.backward()
    assert lp.grad.flatten().tolist() == pytest.approx([-0.7 / 3, -0.7 / 3, 0.3 / 3, 0.0])
    assert sums["actor/pg_clipfrac_lower"].item() == 0


def test_grpo_kl_term_needs_reference() -> None:
    algo = get_algorithm(AlgorithmConfig(name="grpo", kl_coef=0.5, kl_estimator="k1"))
    assert algo.needs_reference
    lp = torch.tensor([[-1.0]], requires_grad=True)
    ref = torch.tensor([[-1.5]])
    loss, sums = algo.loss(LossInput(lp, lp.detach(), torch.zeros(1, 1), torch.ones(1, 1), ref_logprobs=ref),
                           LossNorm(1, 1))
    assert loss.item() == pytest.approx(0.5 * 0.5)
    assert sums["actor/kl"].item() == pytest.approx(0.5)


def test_unknown_algorithm_lists_valid() -> None:
    cfg = AlgorithmConfig.model_construct(name="nope")
    with pytest.raises(ValueError, match="valid: grpo"):
        get_algorithm(cfg)
