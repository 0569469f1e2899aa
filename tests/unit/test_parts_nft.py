"""NFT loss (`rlvr.algorithms.parts.nft`): hand values, the reference code, and the on-policy
equivalences with Dr. GRPO and GRPO (ALGORITHMS.md §1.3)."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.algorithms.parts import advantages as adv
from rlvr.algorithms.parts.aggregation import AGG_MODES, AggNorm, aggregate
from rlvr.algorithms.parts.clip import ppo_clip
from rlvr.algorithms.parts.nft import clamp_preserve_grad, nft_loss, nft_prompt_weight
from rlvr.algorithms.parts.ratio import importance_ratio

NAN, INF = float("nan"), float("inf")
F64 = torch.float64
L12, L05 = math.log(1.2), math.log(0.5)
OMEGA = {0: 1.0, 1: 0.75, 2: math.sqrt(3.0)}  # prompt weights at r_hat = 0.25: 1, 1 - r, sqrt((1 - r)/r)


def t(rows: object, grad: bool = False) -> torch.Tensor:
    return torch.tensor(rows, dtype=F64, requires_grad=grad)


def close(a: torch.Tensor, b: object, tol: float = 1e-12) -> None:
    b = b if isinstance(b, torch.Tensor) else torch.tensor(b, dtype=a.dtype)
    torch.testing.assert_close(a.detach(), b.to(a.dtype), rtol=tol, atol=tol)


def loss_and_grad(deltas: list[list[float]], correct: list[float], **kw: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of log-ratios (old = 0, r_hat = 0.25) with one NaN/inf padding column; returns (loss, dloss/dlogp)."""
    logp = t([row + [NAN] for row in deltas], grad=True)
    old = t([[0.0] * len(row) + [INF] for row in deltas])
    mask = t([[1.0] * len(row) + [0.0] for row in deltas])
    r_hat = torch.full((len(deltas),), 0.25, dtype=F64)
    loss = nft_loss(logp, old, mask, r_hat, t(correct), **kw)  # type: ignore[arg-type]
    (g,) = torch.autograd.grad(loss.sum(), logp)
    assert loss[:, -1].tolist() == [0.0] * len(deltas) and g[:, -1].tolist() == [0.0] * len(deltas)
    return loss[:, :-1], g[:, :-1]


def test_clamp_preserve_grad() -> None:
    x = t([0.5, 2.0], grad=True)
    y = clamp_preserve_grad(x, min_val=1.0)
    close(y, [1.0, 2.0])
    (g,) = torch.autograd.grad((y * t([3.0, 5.0])).sum(), x)
    close(g, [3.0, 5.0])  # the gradient of x, although the value was clamped


def test_prompt_weights() -> None:
    r = t([0.25, 0.5])
    close(nft_prompt_weight(r, 0), [1.0, 1.0])
    close(nft_prompt_weight(r, 1), [0.75, 0.5])
    close(nft_prompt_weight(r, 2), [math.sqrt(3.0), 1.0])
    with pytest.raises(ValueError, match="valid: 0, 1, 2"):
        nft_prompt_weight(r, 3)


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_token_loss_hand_values(mode: int) -> None:
    w = OMEGA[mode]
    loss, g = loss_and_grad([[L12, L05], [L12, L05]], [1.0, 0.0], prompt_weight=mode)
    # positive (c = 1): ℓ = -log R; dℓ/dlogp = -1 for any R (plain likelihood)
    # negative (c = 0), r_hat = 0.25, proxy x = (1 - 0.25 R)/0.75, ℓ = -log max_v(x, 1):
    #   R = 1.2: x = 0.7/0.75 = 14/15 < 1 -> value -log 1 = 0; grad -x'/1 with x' = -0.25·1.2/0.75 = -0.4 -> +0.4
    #   R = 0.5: x = 0.875/0.75 = 7/6 -> value -log(7/6); grad (0.125/0.75)/(7/6) = 1/7
    close(loss, [[-L12 * w, -L05 * w], [0.0, -math.log(7 / 6) * w]])
    close(g, [[-w, -w], [0.4 * w, w / 7]])


def test_token_loss_neg_weight_and_clamps() -> None:
    w = OMEGA[1]
    loss, g = loss_and_grad([[L12, L05]], [0.0], neg_weight=0.5)
    close(loss, [[0.0, -0.5 * math.log(7 / 6) * w]])
    close(g, [[0.2 * w, 0.5 * w / 7]])
    loss, g = loss_and_grad([[L12, L05]], [0.0], neg_weight=0.0)  # RFT: negatives contribute nothing
    close(loss, [[0.0, 0.0]])
    close(g, [[0.0, 0.0]])
    # clamp_negative 0.5: R = 1.2 -> x = 14/15 > 0.5 -> ℓ = -log(14/15), grad 0.4/(14/15) = 3/7
    loss, g = loss_and_grad([[L12]], [0.0], clamp_negative=0.5)
    close(loss, [[-math.log(14 / 15) * w]])
    close(g, [[3 / 7 * w]])
    # clamp_positive 0.8: R = 0.5 -> value -log 0.8, grad -R/0.8 = -0.625; R = 1.2 untouched
    loss, g = loss_and_grad([[L05, L12]], [1.0], clamp_positive=0.8)
    close(loss, [[-math.log(0.8) * w, -L12 * w]])
    close(g, [[-0.625 * w, -w]])
    # hard clamp of the log-ratio at 10: value -10·ω, no gradient
    loss, g = loss_and_grad([[12.0]], [1.0])
    close(loss, [[-10.0 * w]])
    close(g, [[0.0]])


def test_sequence_ratio_hand_values() -> None:
    w = OMEGA[1]
    loss, g = loss_and_grad([[0.1, 0.2], [-0.1, -0.2]], [1.0, 0.0], ratio_type="sequence")
    # positive: R = exp(0.3) (full sum, not length-normalised), ℓ = -0.3·ω, spread as ℓ/2 per token;
    #   d ℓ / d logp_t = -ω on every token
    # negative: R = exp(-0.3), x = (1 - 0.25 R)/0.75, ℓ = -log(x)·ω; d ℓ / d logp_t = (0.25 R/0.75)/x · ω
    r = math.exp(-0.3)
    x = (1 - 0.25 * r) / 0.75
    close(loss, [[-0.15 * w, -0.15 * w], [-math.log(x) * w / 2, -math.log(x) * w / 2]])
    close(g, [[-w, -w], [r / 3 / x * w, r / 3 / x * w]])


def _reference_nft(log_prob, old_log_prob, response_mask, correct_rate, correct_mask, *, ratio_type, normalize,
                   neg_weight, clamp_negative, clamp_positive):
    """NVlabs/NFT dp_actor.py (NFT branch of update_policy), transcribed; correct_rate is [B, T] as there."""
    negative_approx_kl = log_prob - old_log_prob
    if ratio_type == "token":
        ratio = torch.exp((negative_approx_kl).clamp(max=10.0))
    else:
        ratio = torch.exp(((negative_approx_kl) * response_mask).sum(dim=-1).clamp(max=10.0))[:, None]
    correct_rate = torch.clamp(correct_rate, min=0.02, max=0.98)
    negative_rate = 1.0 - correct_rate
    if ratio_type == "token":
        proxy = 1.0 - correct_rate * ratio
        norm = 1.0 - correct_rate * 1.0
        proxy = proxy / norm
        negative_loss = -torch.log(clamp_preserve_grad(proxy, min_val=abs(clamp_negative)))
        positive_loss = -torch.log(clamp_preserve_grad(ratio, min_val=clamp_positive))
        pg_losses = negative_loss * (1.0 - correct_mask[:, None]) * neg_weight + correct_mask[:, None] * positive_loss
        if normalize == 1:
            pg_losses = pg_losses * negative_rate
        elif normalize == 2:
            pg_losses = pg_losses * (negative_rate / correct_rate) ** 0.5
        pg_loss = torch.sum(pg_losses * response_mask, dim=1) / 1000.0
        return torch.sum(pg_loss)
    ratio = ratio.squeeze(-1)
    correct_rate = correct_rate[:, 0]
    negative_rate = negative_rate[:, 0]
    proxy = 1.0 - correct_rate * ratio
    norm = 1.0 - correct_rate * 1.0
    proxy = proxy / norm
    negative_loss = -torch.log(clamp_preserve_grad(proxy, min_val=abs(clamp_negative)))
    positive_loss = -torch.log(clamp_preserve_grad(ratio, min_val=clamp_positive))
    pg_losses = negative_loss * (1.0 - correct_mask) * neg_weight + correct_mask * positive_loss
    if normalize == 1:
        pg_losses = pg_losses * negative_rate
    elif normalize == 2:
        pg_losses = pg_losses * (negative_rate / correct_rate) ** 0.5
    return torch.sum(pg_losses)


def group_batch(seed: int, groups: int = 6, g: int = 4, width: int = 10):
    """Binary-reward groups with correct rates in (0, 1), ragged masks, clean padding (the reference
    multiplies by the mask, so it needs finite padding)."""
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.zeros(groups, g, dtype=F64)
    for p in range(groups):
        k = 1 + p % (g - 1)  # 1 .. G-1 correct answers
        rewards[p, torch.randperm(g, generator=gen)[:k]] = 1.0
    rewards = rewards.reshape(-1)
    n = groups * g
    lengths = torch.randint(1, width + 1, (n,), generator=gen)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).to(F64)
    logp = (-3 * torch.rand(n, width, generator=gen, dtype=F64)).requires_grad_(True)
    old = logp.detach() + 0.4 * torch.randn(n, width, generator=gen, dtype=F64)
    return rewards, mask, logp, old


@pytest.mark.parametrize("ratio_type", ["token", "sequence"])
@pytest.mark.parametrize(("mode", "neg_weight", "clamp_negative", "clamp_positive"),
                         [(1, 1.0, 1.0, 0.0), (0, 0.5, 0.5, 0.0), (2, 1.0, 1.0, 0.3)])
def test_matches_reference_code(ratio_type: str, mode: int, neg_weight: float, clamp_negative: float,
                                clamp_positive: float) -> None:
    rewards, mask, logp, old = group_batch(seed=mode)
    r_hat, correct = adv.nft_rates(rewards * 2 - 1, 4)  # ±1 rewards, as the reference's verifier
    kw = dict(neg_weight=neg_weight, clamp_negative=clamp_negative, clamp_positive=clamp_positive)
    ours = aggregate(nft_loss(logp, old, mask, r_hat, correct, prompt_weight=mode, ratio_type=ratio_type, **kw),
                     mask, "token-sum-constant", AggNorm.of(mask, constant=1000.0 if ratio_type == "token" else 1.0))
    ref = _reference_nft(logp, old, mask, r_hat[:, None].expand_as(logp), correct, ratio_type=ratio_type,
                         normalize=mode, **kw)
    (g_ours,) = torch.autograd.grad(ours, logp)
    (g_ref,) = torch.autograd.grad(ref, logp)
    close(ours, ref, tol=1e-12)
    close(g_ours, g_ref, tol=1e-12)


# ------------------------------------------------------------------ on-policy equivalences (ALGORITHMS.md §1.3)


def _on_policy(seed: int):
    rewards, mask, logp, _ = group_batch(seed)
    old = logp.detach()  # strictly on-policy: R = 1 everywhere
    r_hat, correct = adv.nft_rates(rewards, 4, reward_kind="binary")
    assert ((r_hat > 0.02) & (r_hat < 0.98)).all()  # no clamp active: r_hat = mu_q exactly
    return rewards, mask, logp, old, r_hat, correct


def _ppo_grad(logp, old, mask, advantages, mode: str, norm: AggNorm) -> torch.Tensor:
    loss = ppo_clip(importance_ratio(logp, old, mask), adv.broadcast(advantages, mask), 0.2, 0.2).loss
    (g,) = torch.autograd.grad(aggregate(loss, mask, mode, norm), logp)
    return g


def _nft_grad(logp, old, mask, r_hat, correct, prompt_weight: int, mode: str, norm: AggNorm) -> torch.Tensor:
    loss = nft_loss(logp, old, mask, r_hat, correct, prompt_weight=prompt_weight)
    (g,) = torch.autograd.grad(aggregate(loss, mask, mode, norm), logp)
    return g


@pytest.mark.parametrize("mode", AGG_MODES)
def test_on_policy_nft_mode1_is_dr_grpo(mode: str) -> None:
    # per token, as multiples of ∇log π: NFT gives ω = 1 - r on positives and -ω·r/(1 - r) = -r on
    # negatives, i.e. c - r_hat = R - mu_q: Dr. GRPO's advantage. Same aggregation -> constant 1.
    rewards, mask, logp, old, r_hat, correct = _on_policy(seed=11)
    norm = AggNorm.of(mask, constant=16.0)
    g_nft = _nft_grad(logp, old, mask, r_hat, correct, 1, mode, norm)
    g_drgrpo = _ppo_grad(logp, old, mask, adv.group_mean(rewards, 4), mode, norm)
    close(g_nft, g_drgrpo)
    assert g_nft.abs().sum() > 0


@pytest.mark.parametrize("mode", AGG_MODES)
def test_on_policy_nft_mode2_is_grpo_with_population_std(mode: str) -> None:
    # ω = sqrt((1 - r)/r): positives sqrt((1 - r)/r), negatives -sqrt(r/(1 - r)) = (c - r)/sqrt(r(1 - r)):
    # GRPO's advantage with the population std (eps = 0). Constant 1.
    rewards, mask, logp, old, r_hat, correct = _on_policy(seed=12)
    norm = AggNorm.of(mask, constant=16.0)
    g_nft = _nft_grad(logp, old, mask, r_hat, correct, 2, mode, norm)
    grpo = adv.group_mean_std(rewards, 4, std_mode="population", eps=0.0)
    close(g_nft, _ppo_grad(logp, old, mask, grpo, mode, norm))
    # with torch.std's unbiased std the GRPO gradient is smaller by sqrt((G-1)/G) = sqrt(3/4)
    grpo_unbiased = adv.group_mean_std(rewards, 4, std_mode="unbiased", eps=0.0)
    close(g_nft * math.sqrt(3 / 4), _ppo_grad(logp, old, mask, grpo_unbiased, mode, norm))


def test_on_policy_constant_between_reference_aggregations() -> None:
    # NFT's reference reduction is Σ/1000 (token-sum-constant); Dr. GRPO's is (1/N) Σ_i Σ_t / L
    # (seq-mean-token-sum-norm). So grad_NFT = grad_DrGRPO · N·L/1000 (N sequences in the mini-batch).
    rewards, mask, logp, old, r_hat, correct = _on_policy(seed=13)
    n, big_l = mask.shape[0], 16.0
    g_nft = _nft_grad(logp, old, mask, r_hat, correct, 1, "token-sum-constant", AggNorm.of(mask, constant=1000.0))
    g_drgrpo = _ppo_grad(logp, old, mask, adv.group_mean(rewards, 4), "seq-mean-token-sum-norm",
                         AggNorm.of(mask, constant=big_l))
    close(g_nft, g_drgrpo * (n * big_l / 1000.0))


def test_on_policy_pm1_rewards_give_the_same_loss() -> None:
    rewards, mask, logp, old, r_hat, correct = _on_policy(seed=14)
    r_hat_pm1, correct_pm1 = adv.nft_rates(rewards * 2 - 1, 4, reward_kind="pm1")
    close(r_hat_pm1, r_hat)
    close(nft_loss(logp, old, mask, r_hat_pm1, correct_pm1), nft_loss(logp, old, mask, r_hat, correct))
