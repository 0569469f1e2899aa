"""Every preset's loss module, built as a run builds it (the resolved recipe, through `get_algorithm`),
against values computed here by hand from the papers' formulas, not by rlvr's parts:

* the advantages of a fixed batch of two groups (group statistics, leave-one-out, token whitening, GAE);
* the on-policy gradient of the loss with respect to each token's log-prob (``-A_t`` times the
  aggregation weight; NFT: ``-(1 - r_hat)`` on positives and ``r_hat`` on negatives, over 1000);
* with every token's ratio beyond the clip range in its advantage's direction, a zero gradient;
* on-policy against pi_old but with sampler log-probs elsewhere, each sampler/learner correction
  (``tis_cap`` with every ``is_correction``, ``is_low`` for the banded ones) weighing that gradient by hand.

These run under ``pytest --control NAME`` (tests/controls.py) with the control applied, and must fail then.
"""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.algorithms import ALGORITHM_NAMES, get_algorithm
from rlvr.algorithms.base import AdvantageInput, AggNorm, LossInput
from rlvr.config import RecipeConfig, load_recipe
from rlvr.config.schema import AlgorithmConfig
from tests.conftest import DEFAULT_RECIPE
from tests.controls import with_control

pytestmark = pytest.mark.controlled

G = 4
REWARDS = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0]  # two groups of four
LENGTHS = [2, 1, 2, 3, 1, 2, 2, 1]
VALUES = [[0.5, 0.8], [0.2], [0.1, 0.3], [0.4, 0.4, 0.6], [0.7], [0.6, 0.9], [0.5, 0.5], [0.3]]  # critic, PPO
MAX_NEW_TOKENS = 6
GREEDY = [1.0, 0.0]  # ReMax: the greedy response's reward, per prompt
TERMS = {"correct": REWARDS, "format": [1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0]}  # GDPO: a composed reward's terms
# pass@k's preset k = 4 equals the group size here, which makes every group with a correct answer certain to
# pass (advantage 0): the contract uses k = 2
CONTRACT_FIELDS: dict[str, dict] = {"passk": {"pass_k": 2}}


def _cfg(preset: str, control: str | None, algorithm: dict | None = None) -> RecipeConfig:
    base = load_recipe(DEFAULT_RECIPE, [f"rollout.max_new_tokens={MAX_NEW_TOKENS}", f"rollout.n={G}"])
    fields = {"name": preset, "lr": 3e-4, **CONTRACT_FIELDS.get(preset, {}), **(algorithm or {})}
    cfg = RecipeConfig.model_validate({**base.model_dump(), "algorithm": fields})
    return with_control(cfg, control) if control and preset in _applies(control) else cfg


def _applies(control: str) -> tuple[str, ...]:
    from tests.controls import CONTROLS

    return CONTROLS[control].presets


def _mask() -> torch.Tensor:
    mask = torch.zeros(len(LENGTHS), max(LENGTHS))
    for i, n in enumerate(LENGTHS):
        mask[i, :n] = 1.0
    return mask


def _groups(xs: list[float]) -> list[list[float]]:
    return [xs[k : k + G] for k in range(0, len(xs), G)]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _std(xs: list[float], unbiased: bool = True) -> float:
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - (1 if unbiased else 0)))


def _whiten(per_token: list[list[float]]) -> list[list[float]]:
    """Token-weighted whitening, unbiased variance + 1e-8 (verl's masked_whiten)."""
    flat = [x for row in per_token for x in row]
    m, var = _mean(flat), _std(flat) ** 2
    return [[(x - m) / math.sqrt(var + 1e-8) for x in row] for row in per_token]


def _broadcast(seq: list[float]) -> list[list[float]]:
    return [[a] * n for a, n in zip(seq, LENGTHS)]


def _pass_at_k(group: list[float], k: int) -> list[float]:
    """Chen et al. 2508.10751: R = 1 - C(neg, k)/C(N, k), sigma = sqrt(R(1 - R)); correct (1 - R)/sigma, wrong
    (1 - R - C(neg - 1, k - 1)/C(N - 1, k - 1))/sigma; a group certain to pass (or fail) gets 0."""
    n, neg = len(group), sum(1 for r in group if r == 0)
    rate = 1 - math.comb(neg, k) / math.comb(n, k)
    sigma = math.sqrt(rate * (1 - rate))
    if sigma == 0:
        return [0.0] * n
    wrong = (1 - rate - math.comb(neg - 1, k - 1) / math.comb(n - 1, k - 1)) / (sigma + 1e-6)
    return [(1 - rate) / (sigma + 1e-6) if r > 0 else wrong for r in group]


def expected_advantages(preset: str) -> list[list[float]]:
    """Per-token advantages of the fixed batch, by hand (ALGORITHMS.md)."""
    by_group = _groups(REWARDS)
    if preset in ("grpo", "dapo", "gspo", "cispo", "sapo", "gmpo", "clip_cov", "kl_cov"):  # (R - mean)/(std + 1e-6)
        return _broadcast([(r - _mean(g)) / (_std(g) + 1e-6) for g in by_group for r in g])
    if preset in ("drgrpo", "dppo_tv", "dppo_kl"):  # R - mean
        return _broadcast([r - _mean(g) for g in by_group for r in g])
    if preset == "gpg":  # alpha (R - mean), alpha = B / (B - samples in all-equal groups) = 8 / 8 here
        return _broadcast([r - _mean(g) for g in by_group for r in g])
    if preset == "opo":  # R - length-weighted group mean
        lengths = _groups([float(n) for n in LENGTHS])
        base = [sum(n * r for n, r in zip(ls, g)) / sum(ls) for ls, g in zip(lengths, by_group)]
        return _broadcast([r - base[k] for k, g in enumerate(by_group) for r in g])
    if preset == "passk":
        return _broadcast([a for g in by_group for a in _pass_at_k(g, CONTRACT_FIELDS["passk"]["pass_k"])])
    if preset == "remax":  # return-to-go (the outcome, gamma 1, no KL here) minus the prompt's greedy reward
        return _broadcast([r - GREEDY[k] for k, g in enumerate(by_group) for r in g])
    if preset == "gdpo":  # each term normalised within its group, summed, then token-whitened
        summed = [0.0] * len(REWARDS)
        for values in TERMS.values():
            normed = [(r - _mean(g)) / (_std(g) + 1e-6) for g in _groups(values) for r in g]
            summed = [a + b for a, b in zip(summed, normed)]
        return _whiten(_broadcast(summed))
    if preset == "lite_ppo":  # (R - group mean) / (batch std + 1e-6)
        return _broadcast([(r - _mean(g)) / (_std(REWARDS) + 1e-6) for g in by_group for r in g])
    if preset == "rloo":  # R - mean of the others
        return _broadcast([r - (sum(g) - r) / (G - 1) for g in by_group for r in g])
    if preset == "reinforce_pp_baseline":  # R - mean, then token whitening
        return _whiten(_broadcast([r - _mean(g) for g in by_group for r in g]))
    if preset == "reinforce_pp":  # outcome at the last token, return-to-go (gamma 1, no KL here), whitened
        return _whiten(_broadcast(REWARDS))
    if preset == "ppo":  # GAE (gamma 1, lambda 0.95) from VALUES, outcome at the last token, whitened
        out = []
        for r, vals in zip(REWARDS, VALUES):
            adv, nxt, last = [0.0] * len(vals), 0.0, 0.0
            for t in reversed(range(len(vals))):
                delta = (r if t == len(vals) - 1 else 0.0) + nxt - vals[t]
                last = delta + 0.95 * last
                adv[t], nxt = last, vals[t]
            out.append(adv)
        return _whiten(out)
    raise AssertionError(f"no hand-computed advantages for {preset}")


def _logprob(i: int, t: int) -> float:
    """The log-prob of token t of row i in every loss test (and the rollouts' log-probs of Clip-/KL-Cov)."""
    return -0.3 - 0.1 * (i * max(LENGTHS) + t)


def clip_cov_removed(preset: str) -> set[tuple[int, int]]:
    """Clip-Cov's tokens without gradient, by hand (Cui et al. 2505.22617): Cov = (A - mean A)(log pi - mean
    log pi) over the batch's tokens; k = max(1, floor(2e-4 * 15)) = 1 drawn among 1 < Cov < 5, of which this
    batch has exactly one, so the draw is determined."""
    if AlgorithmConfig(name=preset).policy_loss != "clip_cov":
        return set()
    tokens = [(i, t, a, _logprob(i, t)) for i, row in enumerate(expected_advantages(preset)) for t, a in enumerate(row)]
    mean_a, mean_lp = _mean([a for _, _, a, _ in tokens]), _mean([lp for *_, lp in tokens])
    inside = {(i, t) for i, t, a, lp in tokens if 1.0 < (a - mean_a) * (lp - mean_lp) < 5.0}
    assert len(inside) == 1, inside
    return inside


def _advantage_input() -> AdvantageInput:
    mask = _mask()
    values = torch.zeros_like(mask)
    for i, vals in enumerate(VALUES):
        values[i, : len(vals)] = torch.tensor(vals)
    logprobs = torch.tensor([[_logprob(i, t) for t in range(mask.shape[1])] for i in range(mask.shape[0])])
    return AdvantageInput(torch.tensor(REWARDS), G, mask, kl=torch.zeros_like(mask), kl_coef=0.05, values=values,
                          correct=torch.tensor([r > 0 for r in REWARDS]),
                          baseline=torch.tensor([GREEDY[i // G] for i in range(len(REWARDS))]),
                          reward_terms={k: torch.tensor(v) for k, v in TERMS.items()}, logprobs=logprobs * mask)


PG_PRESETS = sorted(set(ALGORITHM_NAMES) - {"nft"})
# losses whose gradient a ratio beyond the clip range removes (CISPO, SAPO, GPG, DPPO and KL-Cov keep or shape
# it by design: tests/unit/test_parts_policy.py pins each of those down)
HARD_CLIP = [p for p in PG_PRESETS if AlgorithmConfig(name=p).policy_loss in ("ppo_clip", "gmpo", "clip_cov")]


@pytest.mark.parametrize("preset", PG_PRESETS)
def test_advantages_match_the_hand_computed_estimator(preset: str, control: str | None) -> None:
    algo = get_algorithm(_cfg(preset, control).algorithm, max_new_tokens=MAX_NEW_TOKENS)
    got = algo.advantages(_advantage_input()).advantages
    for i, row in enumerate(expected_advantages(preset)):
        assert got[i, : len(row)].tolist() == pytest.approx(row, rel=1e-5, abs=1e-6), (preset, i)
        assert got[i, len(row) :].abs().sum() == 0, (preset, i)  # nothing past the response


def _aggregation_weights(preset: str, cfg: RecipeConfig) -> list[list[float]]:
    """d(loss)/d(per-token loss) for each token, by the preset's aggregation mode."""
    a, n_tok, n_seq = cfg.algorithm, sum(LENGTHS), len(LENGTHS)
    mode = a.loss_agg
    if mode == "token-mean":
        return _broadcast([1.0 / n_tok] * n_seq)
    if mode == "seq-mean-token-mean":
        return _broadcast([1.0 / (n_seq * n) for n in LENGTHS])
    if mode == "seq-mean-token-sum-norm":
        return _broadcast([1.0 / (n_seq * (a.loss_agg_constant or MAX_NEW_TOKENS))] * n_seq)
    if mode == "token-sum-constant":
        return _broadcast([1.0 / a.loss_agg_constant] * n_seq)
    raise AssertionError(f"{preset}: no hand weights for {mode}")


def _ragged(rows: list[list[float]] | None, mask: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(mask)
    for i, row in enumerate(rows or []):
        out[i, : len(row)] = torch.tensor(row)
    return out


def _loss_grad(preset: str, control: str | None, shift: list[list[float]] | None = None,
               sampler_shift: list[list[float]] | None = None, algorithm: dict | None = None) -> torch.Tensor:
    """Gradient of the micro-batch loss w.r.t. the log-probs; ``old = logprobs - shift`` (0: on-policy) and,
    given ``sampler_shift``, sampler log-probs ``old - sampler_shift``; ``algorithm`` fields override the
    preset's. The reference is the policy itself, so a KL term adds neither value nor gradient."""
    cfg = _cfg(preset, control, algorithm)
    algo = get_algorithm(cfg.algorithm, max_new_tokens=MAX_NEW_TOKENS)
    out = algo.advantages(_advantage_input())
    mask = _mask()
    logprobs = (-0.3 - 0.1 * torch.arange(mask.numel(), dtype=torch.float32).reshape(mask.shape)).requires_grad_()
    old = (logprobs - _ragged(shift, mask)).detach()
    sampler = None if sampler_shift is None else old - _ragged(sampler_shift, mask)
    batch = LossInput(logprobs=logprobs, old_logprobs=old, advantages=out.advantages, mask=mask,
                      ref_logprobs=logprobs.detach(), sampler_logprobs=sampler, row_values=out.row_values,
                      token_values=out.token_values)
    loss, _ = algo.loss(batch, AggNorm(num_tokens=sum(LENGTHS), num_sequences=len(LENGTHS),
                                       constant=algo.agg_constant))
    loss.backward()
    return logprobs.grad


@pytest.mark.parametrize("preset", PG_PRESETS)
def test_on_policy_gradient_is_minus_advantage_times_aggregation_weight(preset: str, control: str | None) -> None:
    cfg = _cfg(preset, None)  # the hand values are the preset's own
    adv, weights = expected_advantages(preset), _aggregation_weights(preset, cfg)
    removed = clip_cov_removed(preset)
    grad = _loss_grad(preset, control)
    for i, (a_row, w_row) in enumerate(zip(adv, weights)):
        want = [0.0 if (i, t) in removed else -a * w for t, (a, w) in enumerate(zip(a_row, w_row))]
        assert grad[i, : len(want)].tolist() == pytest.approx(want, rel=1e-4, abs=1e-9), (preset, i)


@pytest.mark.parametrize("preset", ["nft"])
def test_nft_on_policy_gradient_pulls_positives_up_and_negatives_down(preset: str, control: str | None) -> None:
    """NFT on-policy: positives -(1 - r_hat), negatives +r_hat (the implicit negative policy's gradient
    r_hat / (1 - r_hat) times the prompt weight 1 - r_hat), token sum over 1000."""
    grad = _loss_grad(preset, control)
    for i, (r, n) in enumerate(zip(REWARDS, LENGTHS)):
        rate = _mean(_groups(REWARDS)[i // G])
        want = -(1 - rate) / 1000 if r > 0 else rate / 1000
        assert grad[i, :n].tolist() == pytest.approx([want] * n, rel=1e-5), (i, r)


@pytest.mark.parametrize("preset", HARD_CLIP)
def test_ratios_beyond_the_clip_get_no_gradient(preset: str, control: str | None) -> None:
    """Old log-probs set so every token's ratio is 1.65 where its advantage is positive and 0.61 where it
    is negative: beyond every preset's clip range (GSPO's length-normalised sequence ratio too), so the
    clipped objective is flat and the gradient is exactly zero. Zero-advantage tokens have none anyway."""
    adv = expected_advantages(preset)
    shift = [[0.5 if a > 0 else -0.5 for a in row] for row in adv]
    grad = _loss_grad(preset, control, shift)
    assert any(a != 0 for row in adv for a in row)
    assert grad.abs().max().item() == 0.0, grad


# log pi_old - log pi_sampler per token, chosen so each correction does something different: sums 0.3, 0.9
# (over the cap 2), -0.9 (under the band's 0.5), 0.9, -0.8 (under), 0.2, 0 (one token over, one under), 0
SAMPLER_SHIFT = [[0.5, -0.2], [0.9], [-0.5, -0.4], [0.3, 0.3, 0.3], [-0.8], [0.1, 0.1], [1.0, -1.0], [0.0]]
IS_CAP, IS_LOW = 2.0, 0.5


def _is_weights(kind: str) -> list[list[float]]:
    """The correction's weight on each token, by hand from the formulas (``rho = pi_old / pi_sampler``)."""
    def band(rho: float) -> float:
        return rho if IS_LOW <= rho <= IS_CAP else 0.0

    out = []
    for row in SAMPLER_SHIFT:
        seq = math.exp(sum(row))
        out.append({
            "token_tis": [min(math.exp(d), IS_CAP) for d in row],  # Yao et al. 2025
            "seq_tis": [min(seq, IS_CAP)] * len(row),
            "mis": [band(seq)] * len(row),  # sequence-level masked IS
            "icepop": [band(math.exp(d)) for d in row],
        }[kind])
    return out


@pytest.mark.parametrize("kind", ["token_tis", "seq_tis", "mis", "icepop"])
@pytest.mark.parametrize("preset", PG_PRESETS)
def test_on_policy_gradient_with_an_is_correction_is_weighted_by_hand(preset: str, kind: str,
                                                                       control: str | None) -> None:
    """On-policy against pi_old, off-policy against the sampler: the gradient is the on-policy one times the
    correction's weight per token. GSPO's sequence-level ratio spreads each sequence's loss over its tokens
    (d s_i / d log pi_t = 1 / |o_i| on-policy), so there each token gets the sequence's mean weight."""
    cfg = _cfg(preset, None)
    adv, agg = expected_advantages(preset), _aggregation_weights(preset, cfg)
    weights = _is_weights(kind)
    if cfg.algorithm.ratio_level == "sequence" or cfg.algorithm.policy_loss == "gmpo":  # one objective per sequence
        weights = [[sum(row) / len(row)] * len(row) for row in weights]
    settings = {"tis_cap": IS_CAP, "is_correction": kind, "is_low": IS_LOW if kind in ("mis", "icepop") else None}
    grad = _loss_grad(preset, control, sampler_shift=SAMPLER_SHIFT, algorithm=settings)
    removed = clip_cov_removed(preset)
    for i, (a_row, g_row, w_row) in enumerate(zip(adv, agg, weights)):
        want = [0.0 if (i, t) in removed else -a * g * w for t, (a, g, w) in enumerate(zip(a_row, g_row, w_row))]
        assert grad[i, : len(want)].tolist() == pytest.approx(want, rel=1e-4, abs=1e-9), (preset, kind, i)
