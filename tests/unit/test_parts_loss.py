"""Loss parts: ratio levels, PPO-clip, aggregation, KL estimators and controllers (the sampler/learner
corrections are in test_parts_correction)."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.algorithms.parts import advantages as adv
from rlvr.algorithms.parts.aggregation import AGG_MODES, AggNorm, aggregate
from rlvr.algorithms.parts.clip import ppo_clip
from rlvr.algorithms.parts.kl import AdaptiveKLController, FixedKLController, kl_penalty
from rlvr.algorithms.parts.ratio import importance_ratio, log_ratio

NAN, INF, BIG = float("nan"), float("inf"), 1e30
F64 = torch.float64


def t(rows: object, grad: bool = False) -> torch.Tensor:
    return torch.tensor(rows, dtype=F64, requires_grad=grad)


def close(a: torch.Tensor, b: object, tol: float = 1e-9) -> None:
    b = b if isinstance(b, torch.Tensor) else torch.tensor(b, dtype=a.dtype)
    torch.testing.assert_close(a.detach(), b.to(a.dtype), rtol=tol, atol=tol)


def grad_of(out: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(out, leaf)
    return g


def ragged_batch(rows: int = 8, width: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """logprobs (leaf, with grad), old logprobs and a ragged mask; padding holds NaN / inf / 1e30."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (rows,), generator=g)
    lengths[min(2, rows - 1)] = width  # at least one full row
    mask = (torch.arange(width)[None, :] < lengths[:, None]).to(F64)  # [B, T]
    logp = -torch.rand(rows, width, generator=g, dtype=F64) * 3
    old = logp + 0.3 * torch.randn(rows, width, generator=g, dtype=F64)
    garbage = torch.tensor([NAN, INF, -INF, BIG], dtype=F64)
    pad = garbage[torch.arange(rows * width) % 4].view(rows, width)
    logp = torch.where(mask > 0, logp, pad).requires_grad_(True)
    old = torch.where(mask > 0, old, pad.flip(0))
    return logp, old, mask


# ------------------------------------------------------------------ ratio levels

LOGP = [[-1.0, -2.0, -0.5, NAN], [-0.7, INF, -INF, BIG]]
OLD = [[-1.2, -1.5, -0.5, INF], [-0.2, NAN, 0.0, 0.0]]
MASK = [[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]]


def test_token_log_ratio() -> None:
    logp, mask = t(LOGP, grad=True), t(MASK)
    out = log_ratio(logp, t(OLD), mask, "token")
    # deltas: row 1 [0.2, -0.5, 0.0]; row 2 [-0.5]
    close(out, [[0.2, -0.5, 0.0, 0.0], [-0.5, 0.0, 0.0, 0.0]])
    close(grad_of(out.sum(), logp), MASK)  # identity on valid tokens, exactly 0 (not NaN) on padding
    close(importance_ratio(logp, t(OLD), mask)[0, :2], [math.exp(0.2), math.exp(-0.5)])


def test_sequence_log_ratio_gspo() -> None:
    logp, mask = t(LOGP, grad=True), t(MASK)
    out = log_ratio(logp, t(OLD), mask, "sequence")
    # row 1: (0.2 - 0.5 + 0.0)/3 = -0.1 on every token; row 2: -0.5/1
    close(out, [[-0.1, -0.1, -0.1, 0.0], [-0.5, 0.0, 0.0, 0.0]])
    # d out[0,0] / d logp = 1/|o_1| on every token of sequence 1
    close(grad_of(out[0, 0], logp), [[1 / 3, 1 / 3, 1 / 3, 0.0], [0.0] * 4])


def test_sequence_token_log_ratio_gspo_token() -> None:
    logp, mask = t(LOGP, grad=True), t(MASK)
    out = log_ratio(logp, t(OLD), mask, "sequence_token")
    close(out, [[-0.1, -0.1, -0.1, 0.0], [-0.5, 0.0, 0.0, 0.0]])  # same value as "sequence"
    close(grad_of(out[0, 0], logp), [[1.0, 0.0, 0.0, 0.0], [0.0] * 4])  # gradient per token


def test_log_ratio_clamps_and_errors() -> None:
    logp, mask = t([[15.0, -30.0, 0.0]]), t([[1.0, 1.0, 1.0]])
    close(log_ratio(logp, t([[0.0, 0.0, 0.0]]), mask, clamp_max=10.0), [[10.0, -30.0, 0.0]])
    close(log_ratio(logp, t([[0.0, 0.0, 0.0]]), mask, clamp_min=-20.0, clamp_max=20.0), [[15.0, -20.0, 0.0]])
    with pytest.raises(ValueError, match="valid: token, sequence, sequence_token"):
        log_ratio(logp, logp, mask, "seq")  # type: ignore[arg-type]


# ------------------------------------------------------------------ PPO-clip


def clip_case(r: list[float], a: list[float], low: float, high: float, dual: float | None = None):
    ratio = t([r], grad=True)
    out = ppo_clip(ratio, t([a]), low, high, dual_clip=dual)
    return out, grad_of(out.loss.sum(), ratio)[0]


def test_ppo_clip_symmetric() -> None:
    # (r, A) -> loss = max(-A r, -A clip(r, 0.8, 1.2)):
    # (1.5, +1): max(-1.5, -1.2) = -1.2 clipped_high, grad 0
    # (0.5, +1): max(-0.5, -0.8) = -0.5 unclipped, grad -A = -1
    # (0.5, -1): max( 0.5,  0.8) =  0.8 clipped_low, grad 0
    # (1.5, -1): max( 1.5,  1.2) =  1.5 unclipped, grad +1
    # (1.1, +2): inside the range, -2.2, grad -2;  (1.0, 0): 0, never clipped
    out, g = clip_case([1.5, 0.5, 0.5, 1.5, 1.1, 1.0], [1, 1, -1, -1, 2, 0], 0.2, 0.2)
    close(out.loss, [[-1.2, -0.5, 0.8, 1.5, -2.2, 0.0]])
    close(g, [0.0, -1.0, 0.0, 1.0, -2.0, 0.0])
    assert out.clipped_high.tolist() == [[True, False, False, False, False, False]]
    assert out.clipped_low.tolist() == [[False, False, True, False, False, False]]
    assert not out.dual_clipped.any()


def test_ppo_clip_decoupled_clip_higher() -> None:
    # DAPO bounds [0.8, 1.28]: (1.25, +1) is no longer clipped (-1.25, grad -1);
    # (1.3, +1) -> -1.28 clipped_high; (0.75, -1) -> max(0.75, 0.8) = 0.8 clipped_low
    out, g = clip_case([1.25, 1.3, 0.75], [1, 1, -1], 0.2, 0.28)
    close(out.loss, [[-1.25, -1.28, 0.8]])
    close(g, [-1.0, 0.0, 0.0])
    assert out.clipped_high.tolist() == [[False, True, False]]
    assert out.clipped_low.tolist() == [[False, False, True]]


def test_ppo_clip_dual_clip() -> None:
    # c = 3, only for A < 0: (4, -1): max(4, 1.2) = 4 -> min(4, -A·c = 3) = 3, dual_clipped, grad 0
    # (2, -1): 2 < 3 -> unchanged, grad +1; (4, +1): -1.2 clipped_high (dual-clip ignores A > 0)
    # (0.5, -1): 0.8 clipped_low, not dual
    out, g = clip_case([4.0, 2.0, 4.0, 0.5], [-1, -1, 1, -1], 0.2, 0.2, dual=3.0)
    close(out.loss, [[3.0, 2.0, -1.2, 0.8]])
    close(g, [0.0, 1.0, 0.0, 0.0])
    assert out.dual_clipped.tolist() == [[True, False, False, False]]
    assert out.clipped_high.tolist() == [[False, False, True, False]]
    assert out.clipped_low.tolist() == [[False, False, False, True]]
    with pytest.raises(ValueError, match="must be > 1"):
        ppo_clip(t([[1.0]]), t([[1.0]]), 0.2, 0.2, dual_clip=1.0)


def _verl_vanilla(ratio: torch.Tensor, a: torch.Tensor, low: float, high: float, c: float):
    """verl ``compute_policy_loss_vanilla`` (core_algos.py), the per-token part, for comparison."""
    pg_losses1 = -a * ratio
    pg_losses2 = -a * torch.clamp(ratio, 1 - low, 1 + high)
    clip_pg_losses1 = torch.maximum(pg_losses1, pg_losses2)
    pg_clipfrac = torch.gt(pg_losses2, pg_losses1).float()
    pg_losses3 = -a * c
    clip_pg_losses2 = torch.min(pg_losses3, clip_pg_losses1)
    pg_clipfrac_lower = torch.gt(clip_pg_losses1, pg_losses3) * (a < 0).float()
    return torch.where(a < 0, clip_pg_losses2, clip_pg_losses1), pg_clipfrac, pg_clipfrac_lower


def test_ppo_clip_matches_verl_and_its_clip_fractions() -> None:
    g = torch.Generator().manual_seed(3)
    ratio = torch.exp(0.6 * torch.randn(64, 32, generator=g, dtype=F64)).requires_grad_(True)
    a = torch.randn(64, 32, generator=g, dtype=F64)
    a[0, :4] = 0.0
    out = ppo_clip(ratio, a, 0.2, 0.28, dual_clip=3.0)
    ref, clipfrac, clipfrac_lower = _verl_vanilla(ratio, a, 0.2, 0.28, 3.0)
    close(out.loss, ref, tol=0)
    close(grad_of(out.loss.sum(), ratio), grad_of(ref.sum(), ratio), tol=0)
    assert torch.equal((out.clipped_low | out.clipped_high).to(F64), clipfrac.to(F64))  # verl pg_clipfrac
    assert torch.equal(out.dual_clipped.to(F64), clipfrac_lower.to(F64))  # verl pg_clipfrac_lower
    assert not (out.clipped_low & out.clipped_high).any() and not (out.clipped_low & out.dual_clipped).any()
    assert out.clipped_low.any() and out.clipped_high.any() and out.dual_clipped.any()


def test_ppo_clip_mask_neutralises_garbage() -> None:
    ratio = t([[1.5, NAN, INF]], grad=True)
    out = ppo_clip(ratio, t([[1.0, INF, NAN]]), 0.2, 0.2, dual_clip=3.0, mask=t([[1.0, 0.0, 0.0]]))
    close(out.loss, [[-1.2, 0.0, 0.0]])
    assert out.clipped_high.tolist() == [[True, False, False]] and not out.clipped_low.any()
    close(grad_of(out.loss.sum(), ratio), [[0.0, 0.0, 0.0]])


# ------------------------------------------------------------------ aggregation

PER_TOKEN = [[1.0, 2.0, 3.0, NAN], [4.0, 5.0, INF, BIG]]
AGG_MASK = [[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]]


@pytest.mark.parametrize(
    ("mode", "value", "grad_rows"),
    [
        ("token-mean", 15 / 5, (1 / 5, 1 / 5)),  # (1+2+3+4+5) / 5 tokens
        ("seq-mean-token-mean", (6 / 3 + 9 / 2) / 2, (1 / 6, 1 / 4)),  # (2 + 4.5) / 2 sequences
        ("seq-mean-token-sum", (6 + 9) / 2, (1 / 2, 1 / 2)),
        ("seq-mean-token-sum-norm", (6 / 10 + 9 / 10) / 2, (1 / 20, 1 / 20)),  # C = 10
        ("token-sum-constant", 15 / 10, (1 / 10, 1 / 10)),  # C = 10
    ],
)
def test_aggregate_hand_values(mode: str, value: float, grad_rows: tuple[float, float]) -> None:
    x, mask = t(PER_TOKEN, grad=True), t(AGG_MASK)
    out = aggregate(x, mask, mode, AggNorm.of(mask, constant=10.0))
    close(out, value)
    g0, g1 = grad_rows
    close(grad_of(out, x), [[g0, g0, g0, 0.0], [g1, g1, 0.0, 0.0]])


def test_aggregate_errors_and_empty_batches() -> None:
    x, mask = t(PER_TOKEN), t(AGG_MASK)
    with pytest.raises(ValueError, match="valid: token-mean, seq-mean-token-mean"):
        aggregate(x, mask, "sum", AggNorm.of(mask))
    for mode in ("seq-mean-token-sum-norm", "token-sum-constant"):
        with pytest.raises(ValueError, match="positive AggNorm.constant"):
            aggregate(x, mask, mode, AggNorm.of(mask))
    with pytest.raises(ValueError, match="num_tokens is 0"):
        aggregate(x, mask, "token-mean", AggNorm(num_tokens=0, num_sequences=2))
    empty = torch.zeros_like(mask)  # an all-masked mini-batch: zero loss, zero gradient
    xg = t(PER_TOKEN, grad=True)
    out = aggregate(xg, empty, "token-mean", AggNorm.of(empty))
    close(out, 0.0)
    close(grad_of(out, xg), torch.zeros_like(mask))


def test_seq_mean_norm_counts_only_rows_with_a_token_like_verl() -> None:
    """verl's agg_loss excludes fully masked rows from its seq-mean denominator; so does AggNorm.of, and an
    empty row neither adds to nor dilutes the mean (the learner's active_sequences counts the same rows)."""
    from rlvr.learner.batch import TrainRows

    x = t([[1.0, 2.0, 3.0, 9.0], [4.0, 5.0, 9.0, 9.0], [7.0, 7.0, 7.0, 7.0]], grad=True)
    mask = t([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    norm = AggNorm.of(mask)
    assert (norm.num_tokens, norm.num_sequences) == (5.0, 2.0)
    close(aggregate(x, mask, "seq-mean-token-mean", norm), (6 / 3 + 9 / 2) / 2)  # as without the empty row
    close(aggregate(x, mask, "seq-mean-token-sum", norm), (6 + 9) / 2)
    rows = TrainRows(input_ids=[[1, 2, 3], [1, 2, 3, 4], [1, 2, 3, 4]], prompt_lens=[3, 2, 2],
                     active=[True, True, False])  # row 0: no response token; row 2: masked out
    assert rows.active_sequences() == 1 and rows.response_tokens() == 2


@pytest.mark.parametrize("mode", AGG_MODES)
def test_aggregate_split_invariance(mode: str) -> None:
    """Summing `aggregate` over 8 single-row micro-batches equals the 8-row batch (value and gradient)."""
    logp, old, mask = ragged_batch()
    adv_seq = torch.randn(8, generator=torch.Generator().manual_seed(1), dtype=F64)
    advantages = adv.broadcast(adv_seq, mask)

    def per_token(lp: torch.Tensor, o: torch.Tensor, a: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        ratio = importance_ratio(lp, o, m)
        return ppo_clip(ratio, a, 0.2, 0.28, dual_clip=3.0).loss + 0.1 * kl_penalty(lp, o, "k3", mask=m)

    norm = AggNorm.of(mask, constant=7.0)
    whole = aggregate(per_token(logp, old, advantages, mask), mask, mode, norm)
    g_whole = grad_of(whole, logp)
    split = sum(
        aggregate(per_token(logp[i : i + 1], old[i : i + 1], advantages[i : i + 1], mask[i : i + 1]),
                  mask[i : i + 1], mode, norm)
        for i in range(8)
    )
    g_split = grad_of(split, logp)
    assert torch.isfinite(whole) and torch.isfinite(g_whole).all()
    torch.testing.assert_close(split, whole, rtol=1e-6, atol=0)
    torch.testing.assert_close(g_split, g_whole, rtol=1e-6, atol=1e-12)
    assert (g_whole[mask == 0] == 0).all()


@pytest.mark.parametrize("level", ["token", "sequence", "sequence_token"])
def test_garbage_padding_changes_nothing(level: str) -> None:
    """The same batch with clean and with NaN/inf/1e30 padding: identical loss and gradient."""
    logp, old, mask = ragged_batch(seed=5)
    clean_logp = torch.where(mask > 0, logp.detach(), 0.0).requires_grad_(True)
    clean_old = torch.where(mask > 0, old, 0.0)
    advantages = torch.where(mask > 0, torch.randn_like(old), torch.full_like(old, NAN))
    results = []
    for lp, o in ((logp, old), (clean_logp, clean_old)):
        ratio = importance_ratio(lp, o, mask, level)
        loss = ppo_clip(ratio, advantages, 0.2, 0.2, mask=mask).loss + kl_penalty(lp, o, "k3+", mask=mask)
        value = aggregate(loss, mask, "seq-mean-token-mean", AggNorm.of(mask))
        results.append((value, grad_of(value, lp)))
    (v1, g1), (v2, g2) = results
    assert torch.isfinite(v1) and torch.isfinite(g1).all()
    close(v1, v2, tol=0)
    close(g1, g2, tol=0)


# ------------------------------------------------------------------ GSPO-token == GSPO


@pytest.mark.parametrize(("clip_low", "clip_high"), [(3e-4, 4e-4), (0.05, 0.05)])
def test_gspo_token_equals_gspo_with_sequence_advantages(clip_low: float, clip_high: float) -> None:
    logp, old, mask = ragged_batch(rows=16, width=12, seed=7)
    old = torch.where(mask > 0, logp.detach() + 0.02 * torch.randn_like(old), old)  # some rows in, some clipped
    a = adv.broadcast(torch.randn(16, generator=torch.Generator().manual_seed(2), dtype=F64), mask)
    norm = AggNorm.of(mask)
    out = {}
    for level in ("sequence", "sequence_token"):
        clip = ppo_clip(importance_ratio(logp, old, mask, level), a, clip_low, clip_high, mask=mask)
        value = aggregate(clip.loss, mask, "seq-mean-token-mean", norm)
        out[level] = (value, grad_of(value, logp), clip.clipped_low | clip.clipped_high)
    (v_seq, g_seq, c_seq), (v_tok, g_tok, c_tok) = out["sequence"], out["sequence_token"]
    close(v_tok, v_seq, tol=1e-12)
    close(g_tok, g_seq, tol=1e-12)
    assert torch.equal(c_seq, c_tok)
    # GSPO's gradient: -(1/N) · A_i · s_i / |o_i| on each token of an unclipped sequence i, 0 if clipped
    lengths = mask.sum(-1)
    s = torch.exp(torch.where(mask > 0, logp.detach() - old, 0.0).sum(-1) / lengths)  # [B]
    unclipped = ~c_seq.any(-1)
    expected = -(a[:, 0] * s / lengths / 16 * unclipped)[:, None] * mask
    close(g_seq, expected, tol=1e-12)
    if clip_low < 0.01:
        assert unclipped.any() and (~unclipped).any()


# ------------------------------------------------------------------ KL estimators

KL_LOGP, KL_REF = [[-1.0, -2.0]], [[-1.5, -1.0]]  # δ = logp - ref = [0.5, -1.0]


@pytest.mark.parametrize(
    ("estimator", "value", "grad"),
    [
        ("k1", [0.5, -1.0], [1.0, 1.0]),
        ("k2", [0.125, 0.5], [0.5, -1.0]),  # δ²/2, gradient δ
        # exp(-δ) - 1 + δ, gradient 1 - exp(-δ)
        ("k3", [math.exp(-0.5) - 0.5, math.e - 2.0], [1 - math.exp(-0.5), 1 - math.e]),
        ("k3+", [math.exp(-0.5) - 0.5, math.e - 2.0], [0.5, -1.0]),  # k3's value, k2's gradient
        ("abs", [0.5, 1.0], [1.0, -1.0]),  # |δ|, gradient sgn(δ)
        ("k1+", [0.5, -1.0], [0.5, -1.0]),  # k1's value, k2's gradient δ
        ("abs+", [0.5, 1.0], [0.5, -1.0]),  # |δ|'s value, k2's gradient δ
    ],
)
def test_kl_estimators(estimator: str, value: list[float], grad: list[float]) -> None:
    logp = t(KL_LOGP, grad=True)
    out = kl_penalty(logp, t(KL_REF), estimator)  # type: ignore[arg-type]
    close(out, [value], tol=1e-12)
    close(grad_of(out.sum(), logp), [grad], tol=1e-12)


def test_k3_clamps_like_verl_low_var_kl() -> None:
    logp = t([[-30.0, 30.0, 5.0]], grad=True)  # δ = -30, 30, 5 against ref 0
    out = kl_penalty(logp, t([[0.0, 0.0, 0.0]]), "k3")
    # δ=-30: x = clamp(30, ±20) = 20, exp(20) - 21 -> clamped to 10 (no gradient)
    # δ=+30: x = -20, exp(-20) + 19 -> 10;  δ=5: exp(-5) + 5 - 1 = 4.0067...
    close(out, [[10.0, 10.0, math.exp(-5) + 4.0]], tol=1e-12)
    close(grad_of(out.sum(), logp), [[0.0, 0.0, 1 - math.exp(-5)]], tol=1e-12)


def test_kl_mask_and_unknown_estimator() -> None:
    logp = t([[-1.0, NAN, INF]], grad=True)
    for est in ("k1", "k2", "k3", "k3+", "abs", "k1+", "abs+"):
        out = kl_penalty(logp, t([[-1.5, 0.0, NAN]]), est, mask=t([[1.0, 0.0, 0.0]]))  # type: ignore[arg-type]
        assert out[0, 1:].tolist() == [0.0, 0.0]
        g = grad_of(out.sum(), logp)
        assert torch.isfinite(g).all() and g[0, 1:].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="valid: k1, k2, k3, k3\\+, abs, k1\\+, abs\\+"):
        kl_penalty(logp, logp, "low_var_kl")  # type: ignore[arg-type]


def test_kl_controllers() -> None:
    fixed = FixedKLController(0.05)
    fixed.update(100.0, 512)
    assert fixed.value == 0.05
    ctl = AdaptiveKLController(0.2, target_kl=6.0, horizon=10000)
    ctl.update(9.0, 256)  # error 9/6 - 1 = 0.5 -> clipped to 0.2: 0.2·(1 + 0.2·256/10000) = 0.201024
    assert ctl.value == pytest.approx(0.201024, rel=1e-12)
    ctl.update(6.0, 256)  # on target: unchanged
    assert ctl.value == pytest.approx(0.201024, rel=1e-12)
    ctl.update(3.0, 256)  # error -0.5 -> -0.2: ·(1 - 0.00512)
    assert ctl.value == pytest.approx(0.201024 * 0.99488, rel=1e-12)
    with pytest.raises(ValueError):
        AdaptiveKLController(0.2, target_kl=0.0, horizon=10)
