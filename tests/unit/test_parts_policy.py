"""Second-wave policy losses (`rlvr.algorithms.parts.policy`): hand-computed values, gradients and flags on tiny
tensors with garbage padding, on-policy sanity, split invariance, and the covariance token selection."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from rlvr.algorithms.parts.aggregation import AggNorm, aggregate
from rlvr.algorithms.parts.policy import (
    PolicyLoss,
    cispo,
    clip_cov,
    covariance_selection,
    dppo,
    gmpo,
    gpg,
    kl_cov,
    reinforce,
    sapo,
)
from rlvr.algorithms.parts.ratio import log_ratio as ratio_log

NAN, INF, BIG = float("nan"), float("inf"), 1e30
F64 = torch.float64
e = math.exp
log = math.log


def t(rows: object, grad: bool = False) -> torch.Tensor:
    return torch.tensor(rows, dtype=F64, requires_grad=grad)


def close(a: torch.Tensor, b: object, tol: float = 1e-9) -> None:
    b = b if isinstance(b, torch.Tensor) else torch.tensor(b, dtype=a.dtype)
    torch.testing.assert_close(a.detach(), b.to(a.dtype), rtol=tol, atol=tol)


def grads(out: torch.Tensor, *leaves: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(out, leaves, retain_graph=True, allow_unused=True, materialize_grads=True)


def flag(result: PolicyLoss, name: str) -> list[list[bool]]:
    return result.flags[name].tolist()


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + e(-x))


def assert_clean(result: PolicyLoss, mask: torch.Tensor, *gradients: torch.Tensor) -> None:
    """Loss exactly 0 and every flag False at masked positions; gradients finite and exactly 0 there."""
    pad = mask <= 0
    assert torch.isfinite(result.loss).all()
    assert (result.loss[pad] == 0).all()
    for name, f in result.flags.items():
        assert f.dtype == torch.bool and f.shape == mask.shape, name
        assert not f[pad].any(), name
    for g in gradients:
        assert torch.isfinite(g).all()
        assert (g[pad] == 0).all()


# Shared tiny batch: row 0 has three valid tokens, row 1 a single one; padding holds NaN / inf / 1e30.
MASK = [[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]]
LOGP = [[-1.0, -2.0, -0.5, NAN], [-0.7, INF, -INF, BIG]]


# ------------------------------------------------------------------ CISPO


def test_cispo_hand_values() -> None:
    # band [0.8, 1.2]; row 0: δ = 0.1, -0.3, 0 -> ρ = e^0.1 = 1.105171 (inside), e^-0.3 = 0.740818 (below: weight
    # 0.8), 1; A = 1, -1, 0. Row 1: δ = 0.5 -> ρ = 1.648721 (above: weight 1.2), A = -1.
    lr, lp = t([[0.1, -0.3, 0.0, NAN], [0.5, INF, NAN, -INF]], grad=True), t(LOGP, grad=True)
    adv, mask = t([[1.0, -1.0, 0.0, NAN], [-1.0, INF, NAN, 1.0]]), t(MASK)
    out = cispo(lr, lp, adv, mask, clip_low=0.2, clip_high=0.2)
    # ℓ = -w·A·log π: -1.105171·1·(-1) = 1.105171; -0.8·(-1)·(-2) = -1.6; 0 (A = 0); -1.2·(-1)·(-0.7) = -0.84
    close(out.loss, [[e(0.1), -1.6, 0.0, 0.0], [-0.84, 0.0, 0.0, 0.0]])
    g_lp, g_lr = grads(out.loss.sum(), lp, lr)
    # ∇ log π = -clip(ρ)·A on every token, the out-of-band ones included (unlike PPO-clip)
    close(g_lp, [[-e(0.1), 0.8, 0.0, 0.0], [1.2, 0.0, 0.0, 0.0]])
    close(g_lr, torch.zeros(2, 4))  # the weight is stop-gradient
    assert flag(out, "clipfrac_low") == [[False, True, False, False], [False] * 4]
    assert flag(out, "clipfrac_high") == [[False] * 4, [True, False, False, False]]
    assert_clean(out, mask, g_lp, g_lr)


def test_cispo_no_lower_bound() -> None:
    # clip_low = 10 (verl's example): 1 - 10 < 0, so ρ = e^-3 keeps its own weight and is never flagged
    out = cispo(t([[-3.0]]), t([[-1.0]], grad=True), t([[1.0]]), t([[1.0]]), clip_low=10.0, clip_high=0.2)
    close(out.loss, [[e(-3.0)]])
    assert not out.flags["clipfrac_low"].any()
    # with a lower bound 0.8, the weight sits at it and the token is flagged whatever the sign of A (here A > 0,
    # where PPO-clip would not clip); the gradient is still -0.8·A
    lp = t([[-1.0, -1.0]], grad=True)
    out = cispo(t([[-3.0, 3.0]]), lp, t([[1.0, -1.0]]), t([[1.0, 1.0]]), clip_low=0.2, clip_high=0.2)
    assert flag(out, "clipfrac_low") == [[True, False]] and flag(out, "clipfrac_high") == [[False, True]]
    close(grads(out.loss.sum(), lp)[0], [[-0.8, 1.2]])


# ------------------------------------------------------------------ SAPO


def test_sapo_hand_values_and_gradient() -> None:
    tau_pos, tau_neg = 1.0, 1.05
    lr = t([[0.1, -0.3, 0.0, NAN], [2.0, INF, NAN, -INF]], grad=True)
    adv, mask = t([[1.0, -1.0, 0.0, INF], [1.0, NAN, 1.0, 1.0]]), t(MASK)
    out = sapo(lr, adv, mask, tau_pos=tau_pos, tau_neg=tau_neg)
    cases = [  # (δ, A, τ): ρ = e^δ, s = sigmoid(τ(ρ-1)), ℓ = -(4/τ)·s·A, ∂ℓ/∂δ = -A·ρ·4s(1-s)
        (0.1, 1.0, tau_pos),  # ρ 1.105171, s 0.526269: ℓ -2.105074, ∂ -1.102120
        (-0.3, -1.0, tau_neg),  # ρ 0.740818, s 0.432382: ℓ 1.647168, ∂ 0.727269
        (0.0, 0.0, tau_neg),  # A = 0: ℓ 0, ∂ 0
        (2.0, 1.0, tau_pos),  # ρ 7.389056, s 0.998323: ℓ -3.993292, ∂ -0.049483 (gate 0.049 < 0.5)
    ]
    want_loss, want_grad = [], []
    for delta, a, tau in cases:
        rho = e(delta)
        s = sigmoid(tau * (rho - 1.0))
        want_loss.append(-(4.0 / tau) * s * a)
        want_grad.append(-a * rho * 4.0 * s * (1.0 - s))
    close(out.loss, [[*want_loss[:3], 0.0], [want_loss[3], 0.0, 0.0, 0.0]])
    close(out.loss[0, :2], [-2.105074084570819, 1.6471679644745172])
    (g,) = grads(out.loss.sum(), lr)
    close(g, [[*want_grad[:3], 0.0], [want_grad[3], 0.0, 0.0, 0.0]])
    close(g[1, 0], -0.04948337119924882)
    assert flag(out, "gate_small") == [[False] * 4, [True, False, False, False]]
    assert_clean(out, mask, g)


def test_sapo_gate_is_one_on_policy() -> None:
    # ρ = 1: s = 1/2, ∂ℓ/∂δ = -A·1·4·(1/4) = -A for either τ; ℓ = -(4/τ)·(1/2)·A = -2A/τ
    lr = t([[0.0, 0.0]], grad=True)
    out = sapo(lr, t([[2.0, -3.0]]), t([[1.0, 1.0]]), tau_pos=1.0, tau_neg=2.0)
    close(out.loss, [[-4.0, 3.0]])
    close(grads(out.loss.sum(), lr)[0], [[-2.0, 3.0]])


# ------------------------------------------------------------------ GMPO


def gmpo_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # band in log space: (-0.2, 0.2)
    lr = t([
        [0.1, 0.5, -0.6, NAN],  # A_i = 1 > 0: δ̃ = 0.1, min(0.5, 0.2) = 0.2 (clipped), -0.6 -> mean -0.1
        [-0.5, 0.3, INF, INF],  # A_i = (-1 - 3)/2 = -2 < 0: δ̃ = max(-0.5, -0.2) = -0.2 (clipped), 0.3 -> mean 0.05
        [0.3, NAN, NAN, NAN],  # single token, A_i = 0.5: δ̃ = 0.2 (clipped) -> mean 0.2
        [5.0, 5.0, -INF, 0.0],  # A_i = 0: δ̃ = 0, ℓ = 0 whatever δ
    ], grad=True)
    adv = t([[1.0, 1.0, 1.0, NAN], [-1.0, -3.0, INF, 1.0], [0.5, 7.0, 7.0, 7.0], [0.0, 0.0, NAN, 1.0]])
    mask = t([[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0]])
    return lr, adv, mask


def test_gmpo_hand_values() -> None:
    lr, adv, mask = gmpo_batch()
    out = gmpo(lr, adv, mask, clip_low=0.2, clip_high=0.2)
    # ℓ_i = -A_i·exp(mean δ̃): -e^-0.1 = -0.904837; 2·e^0.05 = 2.102542; -0.5·e^0.2 = -0.610701; 0
    seq = [-e(-0.1), 2.0 * e(0.05), -0.5 * e(0.2), 0.0]
    close(out.loss, torch.tensor(seq, dtype=F64)[:, None] * mask)  # ℓ_i on every valid token of row i
    assert flag(out, "clipfrac") == [[False, True, False, False], [True, False, False, False],
                                     [True, False, False, False], [False] * 4]
    # ∂ℓ_i/∂δ_t = -A_i·s̃_i/|o_i| on unclipped tokens, 0 on clipped ones
    (g0,) = grads(out.loss[0, 0], lr)
    close(g0[0], [-e(-0.1) / 3, 0.0, -e(-0.1) / 3, 0.0])
    (g1,) = grads(out.loss[1, 0], lr)
    close(g1[1], [0.0, 2.0 * e(0.05) / 2, 0.0, 0.0])
    close(grads(out.loss[2, 0], lr)[0], torch.zeros(4, 4))  # the single token is clipped
    close(grads(out.loss[3, 0], lr)[0], torch.zeros(4, 4))  # A_i = 0


def test_gmpo_seq_mean_token_mean_gives_the_sequence_objective() -> None:
    lr, adv, mask = gmpo_batch()
    out = gmpo(lr, adv, mask, clip_low=0.2, clip_high=0.2)
    value = aggregate(out.loss, mask, "seq-mean-token-mean", AggNorm.of(mask))
    close(value, (-e(-0.1) + 2.0 * e(0.05) - 0.5 * e(0.2)) / 4)  # mean of ℓ_i over the 4 sequences
    (g,) = grads(value, lr)
    s0, s1 = e(-0.1), e(0.05)
    close(g, [[-s0 / 3 / 4, 0.0, -s0 / 3 / 4, 0.0], [0.0, 2 * s1 / 2 / 4, 0.0, 0.0], [0.0] * 4, [0.0] * 4])
    assert_clean(out, mask, g)


# ------------------------------------------------------------------ GPG


def test_gpg_hand_values() -> None:
    lp, adv, mask = t(LOGP, grad=True), t([[1.0, -2.0, 0.0, NAN], [0.5, INF, NAN, 1.0]]), t(MASK)
    out = gpg(lp, adv, mask)
    close(out.loss, [[1.0, -4.0, 0.0, 0.0], [0.35, 0.0, 0.0, 0.0]])  # -A·log π
    (g,) = grads(out.loss.sum(), lp)
    close(g, [[-1.0, 2.0, 0.0, 0.0], [-0.5, 0.0, 0.0, 0.0]])  # -A
    assert out.flags == {}
    assert_clean(out, mask, g)


# ------------------------------------------------------------------ DPPO

# p₀ = π_old(o_t), p = π_θ(o_t). Row 0: p₀ = 0.5 everywhere, p = 0.7, 0.2, 0.3, 0.8 with A = 1, 1, -1, -1.
# Row 1: a single token with A = 0 (p₀ 0.5 -> p 0.9). Row 2: a single token with A = 2 (p₀ 0.5 -> p 0.55).
# ρ = p/p₀: 1.4, 0.4, 0.6, 1.6 | 1.8 | 1.1; cap C = 1.3 -> weights 1.3, 0.4, 0.6, 1.3 | 1.3 | 1.1.
DPPO_P = [[0.7, 0.2, 0.3, 0.8], [0.9, 0.5, 0.5, 0.5], [0.55, 0.5, 0.5, 0.5]]
DPPO_A = [[1.0, 1.0, -1.0, -1.0], [0.0, NAN, INF, 1.0], [2.0, NAN, 1.0, -INF]]
DPPO_MASK = [[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]
DPPO_WEIGHT = [[1.3, 0.4, 0.6, 1.3], [1.3, 0, 0, 0], [1.1, 0, 0, 0]]


def dppo_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    mask = t(DPPO_MASK)
    pad = mask <= 0
    lp = t([[log(p) for p in row] for row in DPPO_P])
    lp = lp.masked_fill(pad, NAN).requires_grad_(True)
    old = torch.full((3, 4), log(0.5), dtype=F64).masked_fill(pad, INF)
    lr = ratio_log(lp, old, mask, "token", clamp_min=-20.0, clamp_max=20.0)  # what the caller passes
    return lp, old, lr, t(DPPO_A), mask


@pytest.mark.parametrize(("kind", "delta"), [("tv", 0.1), ("kl", 0.05)])
def test_dppo_hand_values(kind: str, delta: float) -> None:
    # Both masks remove t0 (A > 0 pushed up too far) and t2 (A < 0 pushed down too far) of row 0 and keep the
    # rest. TV: |p - p₀| = 0.2 > 0.1 at t0, t2. KL: binary KL(0.5‖0.7) = KL(0.5‖0.3) = 0.087177 > 0.05 while t1, t3
    # moved the safe way (p ≤ p₀ for A > 0, p ≥ p₀ for A < 0; their KL 0.223144 does not matter). Rows 1, 2 move by
    # 0.4 (A = 0, never flagged) and 0.05 (TV 0.05 ≤ 0.1; KL(0.5‖0.55) = 0.005025 ≤ 0.05: kept).
    lp, old, lr, adv, mask = dppo_inputs()
    out = dppo(kind, lp, old, lr, adv, mask, delta_low=delta, delta_high=delta, ratio_cap=1.3)  # type: ignore[arg-type]
    m = [[0.0, 1.0, 0.0, 1.0], [1.0, 0, 0, 0], [1.0, 0, 0, 0]]
    # ℓ = -A·w·M·log p: t1 -1·0.4·log 0.2 = 0.643775; t3 1·1.3·log 0.8 = -0.290087; row 2 -2·1.1·log 0.55 = 1.315241
    close(out.loss, [[0.0, 0.4 * 1.6094379124341003, 0.0, 1.3 * log(0.8)], [0.0] * 4, [-2.2 * log(0.55), 0, 0, 0]])
    (g,) = grads(out.loss.sum(), lp)  # through log π and the caller's log-ratio: -A·min(ρ, C)·M, the weight sg
    a = [[1.0, 1.0, -1.0, -1.0], [0.0] * 4, [2.0, 0, 0, 0]]
    close(g, [[-a[i][j] * DPPO_WEIGHT[i][j] * m[i][j] for j in range(4)] for i in range(3)])
    assert flag(out, "masked_high") == [[True, False, False, False], [False] * 4, [False] * 4]
    assert flag(out, "masked_low") == [[False, False, True, False], [False] * 4, [False] * 4]
    assert flag(out, "ratio_capped") == [[True, False, False, True], [True, False, False, False], [False] * 4]
    assert_clean(out, mask, g)


@pytest.mark.parametrize(("p0", "p", "tv_keeps"), [(0.01, 0.1, True), (0.9, 0.99, True), (0.5, 0.7, False)])
def test_dppo_kl_is_stricter_on_confident_and_rare_tokens(p0: float, p: float, tv_keeps: bool) -> None:
    # A > 0, p - p₀ ≤ 0.1 for the first two, but binary KL: KL(0.01‖0.1) = 0.071331, KL(0.9‖0.99) = 0.144479 > 0.05
    lp, old = t([[log(p)]], grad=True), t([[log(p0)]])
    lr = lp - old
    args = (lp, old, lr, t([[1.0]]), t([[1.0]]))
    tv = dppo("tv", *args, delta_low=0.1, delta_high=0.1, ratio_cap=None)
    kl = dppo("kl", *args, delta_low=0.05, delta_high=0.05, ratio_cap=None)
    assert tv.flags["masked_high"].item() is (not tv_keeps)
    assert kl.flags["masked_high"].item() is True
    assert kl.loss.item() == 0.0


def test_dppo_kl_extreme_probabilities_are_finite() -> None:
    # p = 1 with p₀ = 0.5 and A > 0: KL = inf -> removed; p₀ = 1, p = 0.5, A < 0: KL = log 2 > 0.05 and p < p₀
    # -> removed; p₀ = 1 -> p = 1 (no move): KL 0 -> kept, ℓ = -A·1·log 1 = 0 with gradient -A = -1.
    lp, old = t([[0.0, log(0.5), 0.0]], grad=True), t([[log(0.5), 0.0, 0.0]])
    out = dppo("kl", lp, old, lp - old, t([[1.0, -1.0, 1.0]]), t([[1.0, 1.0, 1.0]]), 0.05, 0.05, None)
    assert flag(out, "masked_high") == [[True, False, False]]
    assert flag(out, "masked_low") == [[False, True, False]]
    (g,) = grads(out.loss.sum(), lp)
    close(g, [[0.0, 0.0, -1.0]])
    assert torch.isfinite(out.loss).all()


# ------------------------------------------------------------------ REINFORCE


def test_reinforce_hand_values() -> None:
    # δ = 0.1, 1.0, -0.5 | 0.3; C = 2: weights e^0.1 = 1.105171, min(e, 2) = 2, e^-0.5 = 0.606531 | e^0.3 (A = 0)
    lr = t([[0.1, 1.0, -0.5, NAN], [0.3, INF, -INF, NAN]], grad=True)
    lp, mask = t(LOGP, grad=True), t(MASK)
    adv = t([[1.0, -1.0, 2.0, NAN], [0.0, 1.0, INF, NAN]])
    out = reinforce(lr, lp, adv, mask, ratio_cap=2.0)
    # ℓ = -A·w·log π: -1·1.105171·(-1) = 1.105171; 1·2·(-2) = -4; -2·0.606531·(-0.5) = 0.606531; 0
    close(out.loss, [[e(0.1), -4.0, e(-0.5), 0.0], [0.0] * 4])
    g_lp, g_lr = grads(out.loss.sum(), lp, lr)
    close(g_lp, [[-e(0.1), 2.0, -2.0 * e(-0.5), 0.0], [0.0] * 4])  # -A·min(ρ, C)
    close(g_lr, torch.zeros(2, 4))
    assert flag(out, "ratio_capped") == [[False, True, False, False], [False] * 4]
    assert_clean(out, mask, g_lp, g_lr)
    uncapped = reinforce(lr, lp, adv, mask, ratio_cap=None)
    close(uncapped.loss[0, 1], -2.0 * math.e)
    assert not uncapped.flags["ratio_capped"].any()


# ------------------------------------------------------------------ on-policy: every loss is REINFORCE


@pytest.mark.parametrize("name", ["cispo", "sapo", "gpg", "reinforce", "dppo_tv", "dppo_kl"])
def test_on_policy_gradient_is_reinforce(name: str) -> None:
    lp, old, mask = ragged(seed=3)
    adv = torch.where(mask > 0, torch.randn(mask.shape, dtype=F64, generator=torch.Generator().manual_seed(1)), NAN)
    on_policy = torch.where(mask > 0, lp.detach(), old)  # π_old = π_θ on the valid tokens
    per_token = LOSSES[name](lp, on_policy, adv, mask, torch.zeros_like(mask, dtype=torch.bool)).loss
    (g,) = grads(per_token.sum(), lp)
    close(g, torch.where(mask > 0, -adv, 0.0), tol=1e-12)


# ------------------------------------------------------------------ Clip-Cov and KL-Cov


def test_clip_cov_hand_values() -> None:
    # ε = 0.2 both sides, dual clip 3. Row 0: δ = 0.3 (ρ 1.349859, A = 1: clipped high, ℓ = -1.2), -0.4 (ρ 0.670320,
    # A = -1: clipped low, ℓ = 0.8), 0.05 (selected: ℓ 0 instead of -1.051271), 0.1 (ρ 1.105171, A = -1, ℓ = 1.105171).
    # Row 1: δ = 1.5 (ρ 4.481689 > 3, A = -1): dual-clipped, ℓ = 3; its padding is "selected" (ignored).
    # Row 2: A = 0, selected: ℓ = 0.
    lr = t([[0.3, -0.4, 0.05, 0.1], [1.5, NAN, INF, -INF], [0.2, NAN, NAN, NAN]], grad=True)
    adv = t([[1.0, -1.0, 1.0, -1.0], [-1.0, INF, NAN, 1.0], [0.0, 1.0, 1.0, 1.0]])
    mask = t([[1, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]])
    selected = torch.tensor([[False, False, True, False], [False, True, True, False], [True, False, False, False]])
    out = clip_cov(lr, adv, mask, selected, clip_low=0.2, clip_high=0.2, dual_clip=3.0)
    close(out.loss, [[-1.2, 0.8, 0.0, e(0.1)], [3.0, 0, 0, 0], [0.0] * 4])
    (g,) = grads(out.loss.sum(), lr)
    # only the unclipped, unselected token has a gradient: ∂(-ρA)/∂δ = -A·ρ = 1.105171; the selected one would have
    # had -1.051271
    close(g, [[0.0, 0.0, 0.0, e(0.1)], [0.0] * 4, [0.0] * 4])
    assert flag(out, "clipfrac_high") == [[True, False, False, False], [False] * 4, [False] * 4]
    assert flag(out, "clipfrac_low") == [[False, True, False, False], [False] * 4, [False] * 4]
    assert flag(out, "clipfrac_dual") == [[False] * 4, [True, False, False, False], [False] * 4]
    assert flag(out, "cov_selected") == [[False, False, True, False], [False] * 4, [True, False, False, False]]
    assert_clean(out, mask, g)
    unselected = clip_cov(lr, adv, mask, torch.zeros_like(selected), 0.2, 0.2, 3.0)
    close(grads(unselected.loss.sum(), lr)[0][0, 2], -e(0.05))


def test_kl_cov_hand_values() -> None:
    # β = 0.5. Row 0: δ = 0.2, -0.3 selected, A = 1, -1: ℓ = -e^0.2 + 0.1 = -1.121403, e^-0.3 + 0.15 = 0.890818;
    # ∂/∂δ = -A·ρ + β·sgn δ: -1.221403 + 0.5 = -0.721403, 0.740818 - 0.5 = 0.240818; third token A = 0: 0.
    # Row 1: single token δ = 0.4, A = 2, unselected: ℓ = -2e^0.4 = -2.983649 = ∂/∂δ.
    # Row 2: δ = 0 selected, A = 1: ℓ = -1, ∂ = -1 (|δ| has zero gradient at 0).
    lr = t([[0.2, -0.3, 0.1, NAN], [0.4, INF, NAN, -INF], [0.0, BIG, NAN, NAN]], grad=True)
    adv = t([[1.0, -1.0, 0.0, NAN], [2.0, NAN, 1.0, 1.0], [1.0, 1.0, INF, NAN]])
    mask = t([[1, 1, 1, 0], [1, 0, 0, 0], [1, 0, 0, 0]])
    selected = torch.tensor([[True, True, False, True], [False] * 4, [True, True, False, False]])
    out = kl_cov(lr, adv, mask, selected, coef=0.5)
    close(out.loss, [[-e(0.2) + 0.1, e(-0.3) + 0.15, 0.0, 0.0], [-2 * e(0.4), 0, 0, 0], [-1.0, 0, 0, 0]])
    (g,) = grads(out.loss.sum(), lr)
    close(g, [[-e(0.2) + 0.5, e(-0.3) - 0.5, 0.0, 0.0], [-2 * e(0.4), 0, 0, 0], [-1.0, 0, 0, 0]])
    assert flag(out, "cov_selected") == [[True, True, False, False], [False] * 4, [True, False, False, False]]
    assert_clean(out, mask, g)


# ------------------------------------------------------------------ covariance selection

# n = 5 valid tokens: mean A = (1 + 1 + 1 - 1 - 1)/5 = 0.2, mean log π = (-0.5 - 2 - 1 - 0.5 - 3)/5 = -1.4.
# Cov = (A - 0.2)(log π + 1.4): row 0: 0.8·0.9 = 0.72, 0.8·(-0.6) = -0.48, 0.8·0.4 = 0.32;
#                               row 1: -1.2·0.9 = -1.08, -1.2·(-1.6) = 1.92, (padding)
COV_A = [[1.0, 1.0, 1.0], [-1.0, -1.0, NAN]]
COV_LOGP = [[-0.5, -2.0, -1.0], [-0.5, -3.0, INF]]
COV_MASK = [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]


def select(mode: str, fraction: float, bounds: tuple[float, float] = (1.0, 5.0), seed: int = 0,
           logp: object = COV_LOGP) -> list[list[bool]]:
    out = covariance_selection(mode, t(COV_A), t(logp), t(COV_MASK), fraction,  # type: ignore[arg-type]
                               bounds=bounds, generator=torch.Generator().manual_seed(seed))
    assert out.dtype == torch.bool and out.shape == (2, 3)
    return out.tolist()


def test_covariance_selection_top_k() -> None:
    assert select("kl", 1e-4) == [[False] * 3, [False, True, False]]  # k = max(1, 0) = 1: Cov 1.92
    assert select("kl", 0.4) == [[True, False, False], [False, True, False]]  # k = ⌊0.4·5⌋ = 2: 1.92, 0.72
    assert select("kl", 1.0) == [[True] * 3, [True, True, False]]  # every valid token, never the padding
    # other garbage at the masked position changes nothing
    assert select("kl", 0.4, logp=[[-0.5, -2.0, -1.0], [-0.5, -3.0, -BIG]]) == select("kl", 0.4)
    assert select("kl", 0.4, logp=[[-0.5, -2.0, -1.0], [-0.5, -3.0, NAN]]) == select("kl", 0.4)


def test_covariance_selection_clip_bounds_and_seed() -> None:
    assert select("clip", 1e-4) == [[False] * 3, [False, True, False]]  # only 1.92 lies in (1, 5)
    assert select("clip", 1.0) == [[False] * 3, [False, True, False]]  # k = 5 but one qualifies
    assert select("clip", 1.0, bounds=(0.3, 1.0)) == [[True, False, True], [False] * 3]  # 0.72 and 0.32
    assert select("clip", 1.0, bounds=(2.0, 5.0)) == [[False] * 3, [False] * 3]  # none qualifies
    picks = [select("clip", 1e-4, bounds=(0.3, 1.0), seed=s) for s in range(16)]
    assert all(sum(map(sum, p)) == 1 for p in picks)  # k = 1
    assert all(p[0][0] or p[0][2] for p in picks)  # inside the bounds only
    assert {(p[0][0], p[0][2]) for p in picks} == {(True, False), (False, True)}  # both get drawn
    assert all(select("clip", 1e-4, bounds=(0.3, 1.0), seed=s) == picks[s] for s in range(16))  # same seed
    assert select("clip", 1.0, logp=[[-0.5, -2.0, -1.0], [-0.5, -3.0, NAN]]) == select("clip", 1.0)


def test_covariance_selection_random_batch_never_picks_padding() -> None:
    lp, _, mask = ragged(rows=8, width=6, seed=2)
    adv = torch.where(mask > 0, torch.randn(mask.shape, dtype=F64, generator=torch.Generator().manual_seed(4)), INF)
    n = int((mask > 0).sum())
    for mode in ("kl", "clip"):
        out = covariance_selection(mode, adv, lp, mask, 0.3, bounds=(-1e9, 1e9),  # type: ignore[arg-type]
                                   generator=torch.Generator().manual_seed(0))
        assert int(out.sum()) == math.floor(0.3 * n)
        assert not out[mask <= 0].any()
    empty = covariance_selection("kl", adv, lp, torch.zeros_like(mask), 0.5)
    assert not empty.any()


# ------------------------------------------------------------------ invariances over the whole family


def ragged(rows: int = 6, width: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """logprobs (leaf, with grad), old logprobs and a ragged mask (one single-token row); padding is garbage."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (rows,), generator=g)
    lengths[0], lengths[1] = 1, width
    mask = (torch.arange(width)[None, :] < lengths[:, None]).to(F64)  # [B, T]
    logp = -torch.rand(rows, width, generator=g, dtype=F64) * 3 - 0.05
    old = logp + 0.3 * torch.randn(rows, width, generator=g, dtype=F64)
    garbage = torch.tensor([NAN, INF, -INF, BIG], dtype=F64)
    pad = garbage[torch.arange(rows * width) % 4].view(rows, width)
    return torch.where(mask > 0, logp, pad).requires_grad_(True), torch.where(mask > 0, old, pad.flip(0)), mask


LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], PolicyLoss]


def _call(fn: Callable[..., PolicyLoss], *extra: object, with_logp: bool = True) -> LossFn:
    def run(lp: torch.Tensor, old: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
            sel: torch.Tensor) -> PolicyLoss:
        lr = ratio_log(lp, old, mask, "token", clamp_min=-20.0, clamp_max=20.0)  # as the caller computes it
        return fn(lr, lp, adv, mask, *extra) if with_logp else fn(lr, adv, mask, *extra)
    return run


LOSSES: dict[str, LossFn] = {
    "cispo": _call(cispo, 0.2, 0.28),
    "sapo": _call(sapo, 1.0, 1.05, with_logp=False),
    "gmpo": _call(gmpo, 0.2, 0.2, with_logp=False),
    "gpg": lambda lp, old, adv, mask, sel: gpg(lp, adv, mask),
    "reinforce": _call(reinforce, 1.5),
    "dppo_tv": lambda lp, old, adv, mask, sel: dppo(
        "tv", lp, old, ratio_log(lp, old, mask, "token", clamp_min=-20.0, clamp_max=20.0), adv, mask, 0.15, 0.15, 3.0),
    "dppo_kl": lambda lp, old, adv, mask, sel: dppo(
        "kl", lp, old, ratio_log(lp, old, mask, "token", clamp_min=-20.0, clamp_max=20.0), adv, mask, 0.05, 0.05, 3.0),
    "clip_cov": lambda lp, old, adv, mask, sel: _call(clip_cov, sel, 0.2, 0.2, 3.0, with_logp=False)(
        lp, old, adv, mask, sel),
    "kl_cov": lambda lp, old, adv, mask, sel: _call(kl_cov, sel, 0.7, with_logp=False)(lp, old, adv, mask, sel),
}


def family_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    lp, old, mask = ragged(seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    adv = torch.randn(mask.shape[0], 1, dtype=F64, generator=g) + 0.3 * torch.randn(mask.shape, dtype=F64, generator=g)
    adv = torch.where(mask > 0, adv, NAN)
    sel = torch.rand(mask.shape, generator=g) < 0.3  # padding included: must be ignored
    return lp, old, adv, mask, sel


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean"])
def test_split_invariance(name: str, mode: str) -> None:
    """The whole batch aggregated with its own norm == the sum over row splits aggregated with that norm."""
    lp, old, adv, mask, sel = family_batch(seed=11)
    norm = AggNorm.of(mask)
    fn = LOSSES[name]
    whole = aggregate(fn(lp, old, adv, mask, sel).loss, mask, mode, norm)
    (g_whole,) = grads(whole, lp)
    parts = sum(aggregate(fn(lp[s], old[s], adv[s], mask[s], sel[s]).loss, mask[s], mode, norm)
                for s in (slice(0, 2), slice(2, 3), slice(3, 6)))
    (g_parts,) = grads(parts, lp)
    assert torch.isfinite(whole) and torch.isfinite(g_whole).all() and g_whole.abs().sum() > 0
    close(parts, whole, tol=1e-12)
    close(g_parts, g_whole, tol=1e-12)


@pytest.mark.parametrize("name", list(LOSSES))
def test_garbage_padding_changes_nothing(name: str) -> None:
    lp, old, adv, mask, sel = family_batch(seed=5)
    clean_lp = torch.where(mask > 0, lp.detach(), -1.0).requires_grad_(True)
    clean_old, clean_adv = torch.where(mask > 0, old, -1.0), torch.where(mask > 0, adv, 0.0)
    results = []
    for args in ((lp, old, adv), (clean_lp, clean_old, clean_adv)):
        out = LOSSES[name](*args, mask, sel)
        value = aggregate(out.loss, mask, "seq-mean-token-mean", AggNorm.of(mask))
        (g,) = grads(value, args[0])
        assert_clean(out, mask, g)
        results.append((value, g, out.loss, out.flags))
    (v1, g1, l1, f1), (v2, g2, l2, f2) = results
    close(v1, v2, tol=0)
    close(g1, g2, tol=0)
    close(l1, l2, tol=0)
    assert f1.keys() == f2.keys() and all(torch.equal(f1[k], f2[k]) for k in f1)


# ------------------------------------------------------------------ parameter validation


def test_parameters_are_validated() -> None:
    x, m = t([[0.0]]), t([[1.0]])
    sel = torch.zeros(1, 1, dtype=torch.bool)
    with pytest.raises(ValueError, match="clip_low"):
        cispo(x, x, x, m, -0.1, 0.2)
    with pytest.raises(ValueError, match="clip_high"):
        gmpo(x, x, m, 0.2, -0.2)
    with pytest.raises(ValueError, match="tau_pos"):
        sapo(x, x, m, 0.0, 1.0)
    with pytest.raises(ValueError, match="tau_neg"):
        sapo(x, x, m, 1.0, -1.0)
    with pytest.raises(ValueError, match="unknown DPPO kind 'js'"):
        dppo("js", x, x, x, x, m, 0.1, 0.1, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delta_high"):
        dppo("tv", x, x, x, x, m, 0.1, -0.1, None)
    with pytest.raises(ValueError, match="ratio_cap"):
        reinforce(x, x, x, m, 0.0)
    with pytest.raises(ValueError, match="coef"):
        kl_cov(x, x, m, sel, -1.0)
    with pytest.raises(ValueError, match="selected"):
        clip_cov(x, x, m, m, 0.2, 0.2, None)  # a float mask, not bool
    with pytest.raises(ValueError, match="dual_clip"):
        clip_cov(x, x, m, sel, 0.2, 0.2, 0.5)
    with pytest.raises(ValueError, match="advantages"):
        gpg(x, t([[0.0, 1.0]]), m)
    with pytest.raises(ValueError, match="unknown covariance selection mode"):
        covariance_selection("top", x, x, m, 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fraction"):
        covariance_selection("kl", x, x, m, 0.0)
    with pytest.raises(ValueError, match="bounds"):
        covariance_selection("clip", x, x, m, 0.1, bounds=(5.0, 1.0))
