"""Advantage estimators (`rlvr.algorithms.parts.advantages`): hand-computed values and edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.algorithms.parts import advantages as adv

NAN, INF, BIG = float("nan"), float("inf"), 1e30


def t(*rows: object) -> torch.Tensor:
    return torch.tensor(rows if len(rows) > 1 else rows[0], dtype=torch.float64)


def close(a: torch.Tensor, b: object, tol: float = 1e-9) -> None:
    b = b if isinstance(b, torch.Tensor) else torch.tensor(b, dtype=a.dtype)
    torch.testing.assert_close(a, b.to(a.dtype), rtol=tol, atol=tol)


# two groups of G = 4 (0/1 correctness): one correct of four, two correct of four
REWARDS = t([1, 0, 0, 0, 1, 1, 0, 0])


# ------------------------------------------------------------------ GRPO


def test_group_mean_std_unbiased() -> None:
    # group 1: mean 0.25; unbiased var = (0.75² + 3·0.25²)/3 = 0.75/3 = 0.25 -> std 0.5
    #   A = 0.75/0.5 = 1.5, -0.25/0.5 = -0.5
    # group 2: mean 0.5; unbiased var = 4·0.25/3 = 1/3 -> std = 1/sqrt(3); A = ±0.5·sqrt(3)
    h = 0.5 * math.sqrt(3)
    close(adv.group_mean_std(REWARDS, 4, eps=0.0), [1.5, -0.5, -0.5, -0.5, h, h, -h, -h])
    # eps = 1e-6 goes into the denominator, as verl: 0.75 / (0.5 + 1e-6)
    close(adv.group_mean_std(REWARDS, 4)[0], 0.75 / (0.5 + 1e-6), tol=1e-12)


def test_group_mean_std_population() -> None:
    # group 1: population var = 0.75/4 = 0.1875, std = sqrt(3)/4: A = 0.75/(sqrt(3)/4) = sqrt(3), -1/sqrt(3)
    # group 2: population std = 0.5: A = ±1
    s3 = math.sqrt(3)
    expected = [s3, -1 / s3, -1 / s3, -1 / s3, 1.0, 1.0, -1.0, -1.0]
    close(adv.group_mean_std(REWARDS, 4, std_mode="population", eps=0.0), expected)


def test_group_mean_std_pm1_rewards_and_degenerate_groups() -> None:
    # ±1: [1,-1,-1,-1]: mean -0.5, unbiased var (1.5² + 3·0.5²)/3 = 1 -> A = 1.5, -0.5 (scale invariant)
    # all-correct and all-wrong groups: 0/(0 + eps) = 0
    r = t([1, -1, -1, -1, 1, 1, 1, 1, -1, -1, -1, -1])
    close(adv.group_mean_std(r, 4, eps=0.0)[:4], [1.5, -0.5, -0.5, -0.5])
    close(adv.group_mean_std(r, 4)[4:], [0.0] * 8)


def test_group_mean_std_singletons() -> None:
    r = t([2.0, -1.0])
    # verl: mean 0, std 1 -> A = R / (1 + eps)
    close(adv.group_mean_std(r, 1), [2.0 / (1 + 1e-6), -1.0 / (1 + 1e-6)])
    close(adv.group_mean_std(r, 1, std_mode="population"), [2.0 / (1 + 1e-6), -1.0 / (1 + 1e-6)])
    close(adv.group_mean_std(r, 1, singleton="zero"), [0.0, 0.0])


def test_bad_layouts_fail_loudly() -> None:
    with pytest.raises(ValueError, match="do not form groups of 2"):
        adv.group_mean_std(t([1, 0, 1]), 2)
    with pytest.raises(ValueError, match="valid: unbiased, population"):
        adv.group_mean_std(REWARDS, 4, std_mode="sample")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="valid: verl, zero"):
        adv.group_mean(REWARDS, 4, singleton="one")  # type: ignore[arg-type]


def test_integer_rewards_are_accepted() -> None:
    close(adv.group_mean(torch.tensor([1, 0]), 2), [0.5, -0.5])


# ------------------------------------------------------------------ Dr. GRPO, Lite PPO, RLOO


def test_group_mean() -> None:
    # R - mu_q: group 1 mean 0.25, group 2 mean 0.5
    close(adv.group_mean(REWARDS, 4), [0.75, -0.25, -0.25, -0.25, 0.5, 0.5, -0.5, -0.5])
    close(adv.group_mean(t([1, 1, 1, 1]), 4), [0.0] * 4)
    close(adv.group_mean(t([3.0, -1.0]), 1), [3.0, -1.0])  # verl singleton: mean 0
    close(adv.group_mean(t([3.0, -1.0]), 1, singleton="zero"), [0.0, 0.0])


def test_group_mean_batch_std() -> None:
    # batch of 8 raw rewards (three 1s): mean 0.375;
    # Σ(r - 0.375)² = 3·0.625² + 5·0.375² = 1.171875 + 0.703125 = 1.875; unbiased std = sqrt(1.875/7)
    std_b = math.sqrt(1.875 / 7)
    centred = [0.75, -0.25, -0.25, -0.25, 0.5, 0.5, -0.5, -0.5]  # group means 0.25 and 0.5
    close(adv.group_mean_batch_std(REWARDS, 4, eps=0.0), [c / std_b for c in centred])
    close(adv.group_mean_batch_std(REWARDS, 4)[0], 0.75 / (std_b + 1e-6), tol=1e-12)
    # singletons: the group mean is the sample itself (ROLL) -> 0; a one-sample batch -> 0
    close(adv.group_mean_batch_std(t([1.0, 0.0]), 1), [0.0, 0.0])
    close(adv.group_mean_batch_std(t([1.0]), 1), [0.0])


def test_leave_one_out() -> None:
    # group [1,0,0,0]: A_1 = 1 - (0+0+0)/3 = 1; A_j = 0 - (1+0+0)/3 = -1/3
    # group [1,1,0,0]: A = 1 - 1/3 = 2/3 (correct), 0 - 2/3 = -2/3 (wrong)
    close(adv.leave_one_out(REWARDS, 4), [1.0, -1 / 3, -1 / 3, -1 / 3, 2 / 3, 2 / 3, -2 / 3, -2 / 3], tol=1e-12)
    close(adv.leave_one_out(t([1.0, 0.0]), 2), [1.0, -1.0])
    close(adv.leave_one_out(t([1.0, 0.0]), 1), [0.0, 0.0])  # no other sample: 0


@pytest.mark.parametrize("g", [2, 3, 4, 8])
def test_rloo_is_scaled_dr_grpo(g: int) -> None:
    # ALGORITHMS.md §7.3: R_i - mean_{j≠i} R_j = G/(G-1) · (R_i - mu_q)
    r = torch.randn(5 * g, generator=torch.Generator().manual_seed(g), dtype=torch.float64)
    close(adv.leave_one_out(r, g), g / (g - 1) * adv.group_mean(r, g), tol=1e-12)


def test_broadcast() -> None:
    mask = t([[1, 1, 0], [1, 0, 0]])
    close(adv.broadcast(t([2.0, -1.0]), mask), [[2.0, 2.0, 0.0], [-1.0, 0.0, 0.0]])
    with pytest.raises(ValueError):
        adv.broadcast(t([2.0]), mask)


# ------------------------------------------------------------------ token-level: whitening, returns, GAE

WHITEN_VALUES = t([[1.0, 2.0, 3.0, BIG], [4.0, NAN, INF, -INF]])
WHITEN_MASK = t([[1, 1, 1, 0], [1, 0, 0, 0]])


def test_masked_whiten_unbiased_and_population() -> None:
    # valid values 1,2,3,4: mean 2.5; Σ dev² = 2.25+0.25+0.25+2.25 = 5
    # unbiased var = 5/3 -> scale sqrt(3/5); population var = 5/4 -> scale 1/sqrt(1.25)
    out = adv.masked_whiten(WHITEN_VALUES, WHITEN_MASK, eps=0.0)
    k = math.sqrt(3 / 5)
    close(out, [[-1.5 * k, -0.5 * k, 0.5 * k, 0.0], [1.5 * k, 0.0, 0.0, 0.0]])
    out = adv.masked_whiten(WHITEN_VALUES, WHITEN_MASK, eps=0.0, var_mode="population")
    k = 1 / math.sqrt(1.25)
    close(out, [[-1.5 * k, -0.5 * k, 0.5 * k, 0.0], [1.5 * k, 0.0, 0.0, 0.0]])
    # default eps = 1e-8 goes inside the rsqrt (verl): (1 - 2.5) / sqrt(5/3 + 1e-8)
    close(adv.masked_whiten(WHITEN_VALUES, WHITEN_MASK)[0, 0], -1.5 / math.sqrt(5 / 3 + 1e-8), tol=1e-12)


def test_masked_whiten_shift_mean_false_and_degenerate() -> None:
    k = math.sqrt(3 / 5)
    out = adv.masked_whiten(WHITEN_VALUES, WHITEN_MASK, eps=0.0, shift_mean=False)
    close(out, [[2.5 - 1.5 * k, 2.5 - 0.5 * k, 2.5 + 0.5 * k, 0.0], [2.5 + 1.5 * k, 0.0, 0.0, 0.0]])
    one = t([[0, 1, 0]])  # a single valid token: var taken as 0 (verl raises) -> (x - x)·rsqrt(eps) = 0
    close(adv.masked_whiten(t([[NAN, 5.0, INF]]), one), [[0.0, 0.0, 0.0]])
    close(adv.masked_whiten(t([[NAN, 5.0]]), t([[0, 0]])), [[0.0, 0.0]])


def test_discounted_returns() -> None:
    rewards = t([[1.0, 2.0, 3.0, NAN], [0.0, 0.0, 5.0, INF]])
    mask = t([[1, 1, 1, 0], [1, 1, 1, 0]])
    # gamma 0.5, row 1: G2 = 3, G1 = 2 + 0.5·3 = 3.5, G0 = 1 + 0.5·3.5 = 2.75; row 2: 5, 2.5, 1.25
    close(adv.discounted_returns(rewards, mask, 0.5), [[2.75, 3.5, 3.0, 0.0], [1.25, 2.5, 5.0, 0.0]])
    # gamma 1: reverse cumulative sums
    close(adv.discounted_returns(rewards, mask, 1.0), [[6.0, 5.0, 3.0, 0.0], [5.0, 5.0, 5.0, 0.0]])


def test_discounted_returns_skip_masked_holes() -> None:
    rewards, mask = t([[1.0, 100.0, 2.0]]), t([[1, 0, 1]])
    # the masked position contributes nothing and costs no discount step: G2 = 2, G0 = 1 + 0.5·2 = 2
    close(adv.discounted_returns(rewards, mask, 0.5), [[2.0, 0.0, 2.0]])
    close(adv.discounted_returns(rewards, mask, 1.0), [[3.0, 0.0, 2.0]])


def test_reinforce_pp() -> None:
    outcome = t([1.0, 0.0])
    mask = t([[1, 1, 1, 0], [1, 1, 0, 0]])
    kl = t([[0.1, 0.2, 0.3, NAN], [0.5, 0.4, INF, NAN]])
    # token rewards (kl_coef 0.5): row 1 [-0.05, -0.1, 1 - 0.15] ; row 2 [-0.25, -0.2] (outcome 0 at t=1)
    # returns (gamma 1): row 1 [0.70, 0.75, 0.85] ; row 2 [-0.45, -0.20]
    returns = [0.70, 0.75, 0.85, -0.45, -0.20]
    mean = sum(returns) / 5  # 0.33
    var = sum((g - mean) ** 2 for g in returns) / 4  # unbiased: 1.473 / 4 = 0.36825
    w = [(g - mean) / math.sqrt(var + 1e-8) for g in returns]
    out = adv.reinforce_pp(outcome, kl, mask, kl_coef=0.5)
    close(out, [[w[0], w[1], w[2], 0.0], [w[3], w[4], 0.0, 0.0]], tol=1e-12)
    assert abs(mean - 0.33) < 1e-12 and abs(var - 0.36825) < 1e-12


def test_reinforce_pp_baseline_is_token_weighted() -> None:
    # R - mu_q = [0.75, -0.25, -0.25, -0.25]; lengths 3, 1, 2, 2 -> 8 tokens:
    # token mean = (3·0.75 - 5·0.25)/8 = 0.125; Σ dev² = 3·0.625² + 5·0.375² = 1.875; unbiased var 1.875/7
    mask = t([[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 0]])
    out = adv.reinforce_pp_baseline(t([1.0, 0.0, 0.0, 0.0]), 4, mask)
    s = math.sqrt(1.875 / 7 + 1e-8)
    hi, lo = (0.75 - 0.125) / s, (-0.25 - 0.125) / s
    close(out, [[hi, hi, hi], [lo, 0.0, 0.0], [lo, lo, 0.0], [lo, lo, 0.0]], tol=1e-12)


def test_gae() -> None:
    rewards = t([[0.0, 0.0, 1.0, INF]])
    values = t([[0.5, 0.6, 0.7, NAN]])
    mask = t([[1, 1, 1, 0]])
    # gamma 0.9, lambda 0.8 (γλ = 0.72); V after the last token = 0
    # t=2: δ = 1 + 0 - 0.7 = 0.3;          A2 = 0.3
    # t=1: δ = 0 + 0.9·0.7 - 0.6 = 0.03;   A1 = 0.03 + 0.72·0.3 = 0.246
    # t=0: δ = 0 + 0.9·0.6 - 0.5 = 0.04;   A0 = 0.04 + 0.72·0.246 = 0.21712
    a, ret = adv.gae(rewards, values, mask, gamma=0.9, lam=0.8)
    close(a, [[0.21712, 0.246, 0.3, 0.0]], tol=1e-12)
    close(ret, [[0.71712, 0.846, 1.0, 0.0]], tol=1e-12)
    # gamma = lambda = 1 with an outcome-only reward: A_t = R - V_t
    a, _ = adv.gae(rewards, values, mask, gamma=1.0, lam=1.0)
    close(a, [[0.5, 0.4, 0.3, 0.0]], tol=1e-12)


def test_gae_skips_masked_holes() -> None:
    # the masked middle position is skipped: t=2: A = 1 - 0.7 = 0.3; t=0: δ = 0.9·0.7 - 0.5 = 0.13,
    # A0 = 0.13 + 0.72·0.3 = 0.346
    a, ret = adv.gae(t([[0.0, 99.0, 1.0]]), t([[0.5, NAN, 0.7]]), t([[1, 0, 1]]), gamma=0.9, lam=0.8)
    close(a, [[0.346, 0.0, 0.3]], tol=1e-12)
    close(ret, [[0.846, 0.0, 1.0]], tol=1e-12)


# ------------------------------------------------------------------ NFT rates


def test_nft_rates_pm1_and_binary_agree() -> None:
    pm1 = t([1, -1, -1, -1, 1, 1, 1, -1])
    # group means -0.5 and 0.5 -> r_hat = (mean + 1)/2 = 0.25, 0.75; c = (R + 1)/2
    r_hat, correct = adv.nft_rates(pm1, 4)
    close(r_hat, [0.25] * 4 + [0.75] * 4)
    close(correct, [1, 0, 0, 0, 1, 1, 1, 0])
    r_hat_b, correct_b = adv.nft_rates((pm1 + 1) / 2, 4, reward_kind="binary")
    close(r_hat_b, r_hat)
    close(correct_b, correct)


def test_nft_rates_clamp_and_singletons() -> None:
    pm1 = t([1, 1, 1, 1, -1, -1, -1, -1])  # all correct / all wrong: r_hat 1 and 0, clamped
    r_hat, _ = adv.nft_rates(pm1, 4)
    close(r_hat, [0.98] * 4 + [0.02] * 4)
    r_hat, _ = adv.nft_rates(pm1, 4, clamp=None)
    close(r_hat, [1.0] * 4 + [0.0] * 4)
    # singletons: the reference's mean of a one-sample group is 0 -> r_hat = 0.5
    r_hat, correct = adv.nft_rates(t([1, -1]), 1)
    close(r_hat, [0.5, 0.5])
    close(correct, [1.0, 0.0])
    r_hat, _ = adv.nft_rates(t([1, 0]), 1, reward_kind="binary")
    close(r_hat, [0.5, 0.5])
    with pytest.raises(ValueError, match="valid: pm1, binary"):
        adv.nft_rates(pm1, 4, reward_kind="scalar")  # type: ignore[arg-type]
