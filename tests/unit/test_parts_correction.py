"""Sampler/learner importance-sampling corrections (`rlvr.algorithms.parts.correction`) against values
computed here by hand from the formulas, alone and through `PolicyGradientLoss`; and the mismatch stats."""

from __future__ import annotations

import math
from typing import get_args

import pytest
import torch

from rlvr.algorithms import get_algorithm
from rlvr.algorithms.base import AggNorm, LossInput
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
from rlvr.config.schema import AlgorithmConfig

NAN, INF = float("nan"), float("inf")
F64 = torch.float64
e = math.exp

# Five responses; delta = log pi_old - log pi_sampler on the valid tokens. Padding holds garbage.
DELTAS = [
    [0.5, -0.5, 0.4],  # sum 0.4: rho = 1.49, inside [0.5, 2]
    [0.6, 0.3],  # sum 0.9: rho = 2.46 > 2 (every token inside the band on its own)
    [-1.0, -0.5, 0.2, -0.2],  # sum -1.5: rho = 0.22 < 0.5; first token 0.37 < 0.5
    [2.0],  # rho = 7.39 > 2
    [0.1, -0.3],  # sum -0.2: rho = 0.82, inside
]
LENGTHS = [len(d) for d in DELTAS]
T = max(LENGTHS)
CAP, LOW = 2.0, 0.5


def _batch(grad: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(old ``[5, 4]``, sampler ``[5, 4]``, mask ``[5, 4]``): old = sampler + delta on the valid tokens; the
    padding of old holds NaN and of sampler inf, which must reach nothing."""
    mask = torch.zeros(len(DELTAS), T, dtype=F64)
    sampler = torch.full((len(DELTAS), T), INF, dtype=F64)
    old = torch.full((len(DELTAS), T), NAN, dtype=F64)
    for i, row in enumerate(DELTAS):
        n = len(row)
        mask[i, :n] = 1.0
        sampler[i, :n] = -1.0 - 0.25 * torch.arange(n, dtype=F64)
        old[i, :n] = sampler[i, :n] + torch.tensor(row, dtype=F64)
    return old.requires_grad_(grad), sampler, mask


def _pad(rows: list[list[float]]) -> list[list[float]]:
    return [row + [0.0] * (T - len(row)) for row in rows]


def _seq(values: list[float]) -> list[list[float]]:
    """One value per response, on each of its tokens."""
    return [[v] * n for v, n in zip(values, LENGTHS)]


def _flags(rows: list[list[bool]]) -> list[list[bool]]:
    return [row + [False] * (T - len(row)) for row in rows]


# The hand-computed weights and flags (truncated for the tis modes, masked for mis/icepop) of every mode.
EXPECTED: dict[str, tuple[list[list[float]], list[list[bool]]]] = {
    # min(e^delta, 2): only e^2 is over the cap
    "token_tis": (
        [[e(0.5), e(-0.5), e(0.4)], [e(0.6), e(0.3)], [e(-1.0), e(-0.5), e(0.2), e(-0.2)], [2.0], [e(0.1), e(-0.3)]],
        [[False] * 3, [False] * 2, [False] * 4, [True], [False] * 2],
    ),
    # min(e^sum, 2) on every token: responses 1 (e^0.9) and 3 (e^2) truncated
    "seq_tis": (
        _seq([e(0.4), 2.0, e(-1.5), 2.0, e(-0.2)]),
        [[False] * 3, [True] * 2, [False] * 4, [True], [False] * 2],
    ),
    # e^sum inside [0.5, 2], else 0: response 1 and 3 rejected above the cap, response 2 below low
    "mis": (
        _seq([e(0.4), 0.0, 0.0, 0.0, e(-0.2)]),
        [[False] * 3, [True] * 2, [True] * 4, [True], [False] * 2],
    ),
    # e^delta inside [0.5, 2], else 0: e^-1 (below low) and e^2 (above the cap) masked
    "icepop": (
        [[e(0.5), e(-0.5), e(0.4)], [e(0.6), e(0.3)], [0.0, e(-0.5), e(0.2), e(-0.2)], [0.0], [e(0.1), e(-0.3)]],
        [[False] * 3, [False] * 2, [True, False, False, False], [True], [False] * 2],
    ),
}


def _low(kind: str) -> float | None:
    return LOW if kind in BANDED_CORRECTIONS else None


def test_the_schema_offers_exactly_the_implemented_corrections() -> None:
    assert get_args(AlgorithmConfig.model_fields["is_correction"].annotation) == IS_CORRECTIONS
    assert set(BANDED_CORRECTIONS) < set(IS_CORRECTIONS)


@pytest.mark.parametrize("kind", IS_CORRECTIONS)
def test_weights_match_the_hand_computed_values(kind: str) -> None:
    old, sampler, mask = _batch(grad=True)
    weights, flags = is_weights(kind, old, sampler, mask, CAP, _low(kind))
    want_w, want_flags = EXPECTED[kind]
    torch.testing.assert_close(weights, torch.tensor(_pad(want_w), dtype=F64), rtol=1e-12, atol=1e-12)
    assert flags.dtype == torch.bool and flags.tolist() == _flags(want_flags)
    assert not weights.requires_grad  # stop-gradient even when old carries a graph
    assert torch.isfinite(weights).all() and (weights[mask == 0] == 0).all()


@pytest.mark.parametrize("kind", IS_CORRECTIONS)
def test_each_named_part_equals_the_dispatcher(kind: str) -> None:
    old, sampler, mask = _batch()
    part = {"token_tis": token_tis, "seq_tis": seq_tis, "mis": mis, "icepop": icepop}[kind]
    args = (old, sampler, mask, CAP) + ((LOW,) if kind in BANDED_CORRECTIONS else ())
    direct, via = part(*args), is_weights(kind, old, sampler, mask, CAP, _low(kind))
    assert torch.equal(direct[0], via[0]) and torch.equal(direct[1], via[1])


def test_without_a_lower_bound_only_the_cap_rejects() -> None:
    old, sampler, mask = _batch()
    w, masked = mis(old, sampler, mask, CAP)  # response 2 (rho = e^-1.5) is kept now
    torch.testing.assert_close(w, torch.tensor(_pad(_seq([e(0.4), 0.0, e(-1.5), 0.0, e(-0.2)])), dtype=F64))
    assert masked.sum().item() == 2 + 1
    w, masked = icepop(old, sampler, mask, CAP)  # e^-1 is kept now
    assert w[2, 0].item() == pytest.approx(e(-1.0), rel=1e-12) and masked.sum().item() == 1


def test_bad_arguments_are_refused() -> None:
    old, sampler, mask = _batch()
    with pytest.raises(ValueError, match="valid: token_tis, seq_tis, mis, icepop"):
        is_weights("seq_mis", old, sampler, mask, CAP)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a lower bound is for mis and icepop, not seq_tis"):
        is_weights("seq_tis", old, sampler, mask, CAP, LOW)
    with pytest.raises(ValueError, match="must be positive"):
        is_weights("token_tis", old, sampler, mask, 0.0)
    for low in (CAP, 3.0, 0.0):
        with pytest.raises(ValueError, match="lower bound must lie in"):
            is_weights("icepop", old, sampler, mask, CAP, low)
    with pytest.raises(ValueError, match="same"):
        is_weights("mis", old[:, :2], sampler, mask, CAP)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, F64])
def test_long_sequences_with_large_log_ratio_sums_stay_finite(dtype: torch.dtype) -> None:
    """4096 tokens of delta +-0.05 sum to +-204.8 (e^204.8 overflows float32/bfloat16, and float64's exp of
    one 800 token overflows too); single tokens of +-800; padding holds inf and NaN."""
    n = 4096
    mask = torch.ones(4, n + 2)
    mask[:, n:] = 0.0
    delta = torch.zeros(4, n + 2)
    delta[0, :n], delta[1, :n] = 0.05, -0.05
    delta[2, 0], delta[3, 0] = 800.0, -800.0
    sampler = torch.full((4, n + 2), -2.0)
    sampler[:, n] = INF
    old = sampler + delta
    old[:, n + 1] = NAN
    old, sampler = old.to(dtype), sampler.to(dtype)
    for kind in IS_CORRECTIONS:
        weights, flags = is_weights(kind, old, sampler, mask, CAP, _low(kind))
        assert torch.isfinite(weights).all(), (kind, dtype)
        assert (weights[:, n:] == 0).all() and not flags[:, n:].any(), (kind, dtype)
    w, truncated = seq_tis(old, sampler, mask, CAP)
    assert (w[0, :n] == CAP).all() and truncated[0, :n].all()  # min(e^204.8, 2) = 2 exactly
    assert (w[1, :n].double() < 1e-80).all() and not truncated[1].any()  # e^-204.8: 0 in float32, tiny in float64
    assert (w[2, :n] == CAP).all() and (w[3, :n] == 0).all()  # e^800 / e^-800: 2 and 0
    w, masked = mis(old, sampler, mask, CAP, LOW)
    assert (w[:, :n] == 0).all() and masked[:, :n].all()  # all four out of the band
    w, _ = mis(old, sampler, mask, CAP)  # no lower bound: the small ones are kept with their (tiny) weight
    assert (w[1, :n].double() < 1e-80).all() and (w[3, :n] == 0).all() and (w[0, :n] == 0).all()
    w, truncated = token_tis(old, sampler, mask, CAP)
    assert w[2, 0].item() == CAP and truncated[2, 0] and w[3, 0].item() == 0.0


def test_float64_sequence_sums_are_exact() -> None:
    """The sum is kept unclamped for the band test: e^-30 is a valid weight above low = 1e-14, and is not
    turned into verl's e^-20 floor."""
    mask = torch.ones(1, 3, dtype=F64)
    sampler = torch.zeros(1, 3, dtype=F64)
    old = torch.tensor([[-10.0, -10.0, -10.0]], dtype=F64)
    w, masked = mis(old, sampler, mask, CAP, 1e-14)
    assert w[0, 0].item() == pytest.approx(e(-30.0), rel=1e-12) and not masked.any()
    w, masked = mis(old, sampler, mask, CAP, 1e-12)  # e^-30 = 9.4e-14 < 1e-12: rejected
    assert (w == 0).all() and masked.all()


# ------------------------------------------------------------------ through PolicyGradientLoss


def _algo(kind: str, cap: float | None = CAP):
    cfg = AlgorithmConfig(name="grpo", kl_placement="none", kl_coef=0.0, loss_agg="token-mean", tis_cap=cap,
                          is_correction=kind, is_low=_low(kind) if cap is not None else None)
    return get_algorithm(cfg)


ADVANTAGES = [0.7, -0.4, 1.1, -0.9, 0.3]  # per response


def _loss_input() -> tuple[LossInput, torch.Tensor, torch.Tensor]:
    """On-policy (pi = pi_old, ratio 1) rows with the module's sampler log-probs; both the policy log-probs
    and the sampler log-probs are leaves with grad, to see where the gradient goes."""
    old, sampler, mask = _batch()
    logprobs = torch.where(mask > 0, old, -1.0).detach().requires_grad_()
    sampler = sampler.clone().requires_grad_()
    advantages = torch.tensor(_pad(_seq(ADVANTAGES)), dtype=F64)
    batch = LossInput(logprobs=logprobs, old_logprobs=logprobs.detach(), advantages=advantages, mask=mask,
                      sampler_logprobs=sampler)
    return batch, logprobs, sampler


@pytest.mark.parametrize("kind", IS_CORRECTIONS)
def test_policy_gradient_loss_is_the_hand_weighted_loss(kind: str) -> None:
    """On-policy PPO-clip per-token loss is -A, so token-mean gives sum(-A w) / n and d/d logprob = -A w / n."""
    batch, logprobs, sampler = _loss_input()
    n = sum(LENGTHS)
    loss, sums = _algo(kind).loss(batch, AggNorm(num_tokens=n, num_sequences=len(LENGTHS), constant=None))
    loss.backward()
    want_w, want_flags = EXPECTED[kind]
    want_grad = [[-a * w / n for w in row] for a, row in zip(ADVANTAGES, want_w)]
    assert loss.item() == pytest.approx(sum(sum(row) for row in want_grad), rel=1e-12)
    torch.testing.assert_close(logprobs.grad, torch.tensor(_pad(want_grad), dtype=F64), rtol=1e-12, atol=1e-15)
    assert sampler.grad is None  # the weights are constants: nothing reaches the sampler's log-probs
    hits = float(sum(sum(row) for row in want_flags))
    hit_key, other = ("actor/is_masked_frac", "actor/tis_clipfrac")
    if kind not in BANDED_CORRECTIONS:
        hit_key, other = other, hit_key
    assert sums[hit_key].item() == hits and other not in sums
    assert sums["actor/is_weight_mean"].item() == pytest.approx(sum(sum(row) for row in want_w), rel=1e-12)


def test_every_correction_changes_the_gradient_and_none_without_a_cap() -> None:
    """Each setting reaches the loss: on these rows the four corrections give four different gradients, all
    different from the uncorrected one (tis_cap unset: plain -A / n, and no correction metrics)."""
    norm = AggNorm(num_tokens=sum(LENGTHS), num_sequences=len(LENGTHS), constant=None)
    grads = {}
    for kind in (*IS_CORRECTIONS, None):
        batch, logprobs, _ = _loss_input()
        loss, sums = _algo(kind or "token_tis", cap=None if kind is None else CAP).loss(batch, norm)
        loss.backward()
        grads[kind] = logprobs.grad
        if kind is None:
            assert not any(k.startswith(("actor/is_", "actor/tis_")) for k in sums)
    for a in grads:
        for b in grads:
            if a != b:
                assert not torch.allclose(grads[a], grads[b]), (a, b)
    want = [[-a / sum(LENGTHS)] * n for a, n in zip(ADVANTAGES, LENGTHS)]
    torch.testing.assert_close(grads[None], torch.tensor(_pad(want), dtype=F64), rtol=1e-12, atol=1e-15)


def test_no_sampler_logprobs_no_correction() -> None:
    batch, logprobs, _ = _loss_input()
    batch.sampler_logprobs = None
    norm = AggNorm(num_tokens=sum(LENGTHS), num_sequences=len(LENGTHS), constant=None)
    loss, sums = _algo("mis").loss(batch, norm)
    assert loss.item() == pytest.approx(sum(-a * n for a, n in zip(ADVANTAGES, LENGTHS)) / sum(LENGTHS), rel=1e-12)
    assert "actor/is_weight_mean" not in sums


# ------------------------------------------------------------------ mismatch stats


def test_mismatch_stats() -> None:
    stats = mismatch_stats(torch.tensor([[-1.0, -1.0, -3.0, NAN]], dtype=F64),
                           torch.tensor([[-1.5, -0.5, -0.5, INF]], dtype=F64),
                           torch.tensor([[1.0, 1.0, 1.0, 0.0]], dtype=F64))
    deltas = [0.5, -0.5, -2.5]  # old - sampler
    assert stats["abs_logprob_diff"] == pytest.approx(3.5 / 3, rel=1e-12)
    assert stats["kl_k3"] == pytest.approx(sum(math.exp(d) - 1 - d for d in deltas) / 3, rel=1e-12)
    assert stats["ratio_max"] == pytest.approx(math.exp(0.5), rel=1e-12)
    assert stats["ratio_min"] == pytest.approx(math.exp(-2.5), rel=1e-12)
    assert stats["num_tokens"] == 3.0 and all(isinstance(v, float) for v in stats.values())
    empty = mismatch_stats(torch.tensor([[NAN]]), torch.tensor([[0.0]]), torch.tensor([[0.0]]))
    assert empty == {"abs_logprob_diff": 0.0, "kl_k3": 0.0, "ratio_max": 1.0, "ratio_min": 1.0, "num_tokens": 0.0}
