"""The assembled policy-gradient loss with every per-token policy loss and the new presets: the log-ratio
clamp (the NaN case), split invariance of the whole module, the advantage dispatch of the new estimators,
the driver-side covariance selection, and the settings each loss refuses. The parts have their own tests
(test_parts_policy, test_parts_estimators)."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.algorithms import get_algorithm
from rlvr.algorithms.base import AdvantageInput, AggNorm, LossInput
from rlvr.algorithms.parts.aggregation import aggregate
from rlvr.config.schema import AlgorithmConfig
from rlvr.learner.critic import clipped_value_loss

F64 = torch.float64
POLICY_LOSSES = ["ppo_clip", "cispo", "sapo", "gmpo", "gpg", "dppo_tv", "dppo_kl", "clip_cov", "kl_cov", "reinforce"]
NEW_PRESETS = ["cispo", "sapo", "gmpo", "gpg", "dppo_tv", "dppo_kl", "clip_cov", "kl_cov", "opo", "passk", "remax",
               "gdpo"]


def _cfg(policy_loss: str, **fields: object) -> AlgorithmConfig:
    base: dict[str, object] = {"name": "grpo", "kl_placement": "none", "kl_coef": 0.0, "loss_agg": "token-mean",
                               "policy_loss": policy_loss}
    if policy_loss == "dppo_tv" or policy_loss == "dppo_kl":
        base |= {"clip_low": 0.1, "clip_high": 0.1, "ratio_cap": 3.0}
    if policy_loss == "reinforce":
        base |= {"ratio_cap": 2.0}
    return AlgorithmConfig(**(base | fields))


def _batch(rows: int = 8, width: int = 5, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A ragged batch off-policy enough to clip: logprobs (leaf), old, advantages, mask, a fixed selection."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (rows,), generator=g)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).to(F64)  # [B, T]
    logp = (-torch.rand(rows, width, generator=g, dtype=F64) * 2 - 0.05).requires_grad_(True)
    old = logp.detach() + 0.4 * torch.randn(rows, width, generator=g, dtype=F64)
    adv = torch.randn(rows, generator=g, dtype=F64)[:, None].expand(rows, width) * mask
    selected = (torch.rand(rows, width, generator=g, dtype=F64) < 0.3).to(F64) * mask
    return logp, old, adv, mask, selected


@pytest.mark.parametrize("policy_loss", POLICY_LOSSES)
@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
def test_the_loss_does_not_depend_on_how_the_mini_batch_is_split(policy_loss: str, agg: str) -> None:
    """Summing the module's loss over micro-batches (each with the mini-batch's normaliser, as the learner
    does) gives the whole mini-batch's loss and gradient, for every policy loss."""
    algo = get_algorithm(_cfg(policy_loss, loss_agg=agg))
    logp, old, adv, mask, selected = _batch()
    norm = AggNorm.of(mask)

    def loss_of(rows: slice) -> torch.Tensor:
        batch = LossInput(logp[rows], old[rows], adv[rows], mask[rows],
                          token_values={"cov_selected": selected[rows]})
        return algo.loss(batch, norm)[0]

    whole = loss_of(slice(0, 8))
    (g_whole,) = torch.autograd.grad(whole, logp)
    split = loss_of(slice(0, 3)) + loss_of(slice(3, 4)) + loss_of(slice(4, 8))
    (g_split,) = torch.autograd.grad(split, logp)
    assert torch.isfinite(whole) and g_whole.abs().sum() > 0
    torch.testing.assert_close(split, whole, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_split, g_whole, rtol=1e-10, atol=1e-12)
    assert (g_whole[mask == 0] == 0).all()


def test_a_log_ratio_of_100_gives_a_finite_loss_and_gradient_and_is_counted() -> None:
    """float32, as the learner computes: exp(100) overflows, and without the clamp the PPO clip's zero
    gradient times the overflowed ratio is NaN; with it the loss and gradient are finite and the token is
    counted. A log-ratio of 25 with A < 0 and no dual clip would give a loss of 0.5 * e^25 = 3.6e10."""
    logp = torch.tensor([[-0.5, -1.0, -2.0]], requires_grad=True)  # float32
    old = torch.tensor([[-100.5, -1.0, -27.0]])  # log-ratios 100, 0, 25
    adv = torch.tensor([[1.0, 1.0, -0.5]])
    mask = torch.ones(1, 3)
    norm = AggNorm.of(mask)

    unclamped = get_algorithm(_cfg("ppo_clip", log_ratio_clamp=None))
    loss, _ = unclamped.loss(LossInput(logp, old, adv, mask), norm)
    (g,) = torch.autograd.grad(loss, logp)
    assert torch.isnan(g).any()  # the failure the clamp exists for
    assert loss.item() == pytest.approx((-1.2 - 1.0 + 0.5 * math.exp(25)) / 3, rel=1e-5)

    clamped = get_algorithm(_cfg("ppo_clip"))  # log_ratio_clamp: 20 by default
    assert clamped.cfg.log_ratio_clamp == 20.0
    loss, sums = clamped.loss(LossInput(logp, old, adv, mask), norm)
    (g,) = torch.autograd.grad(loss, logp)
    assert torch.isfinite(loss) and torch.isfinite(g).all()
    # token 0: clipped at 1.2 (no gradient); token 1: ratio 1, gradient -1/3; token 2: clamped at e^20
    assert loss.item() == pytest.approx((-1.2 - 1.0 + 0.5 * math.exp(20)) / 3, rel=1e-5)
    assert g[0].tolist() == pytest.approx([0.0, -1.0 / 3, 0.0])
    assert sums["actor/log_ratio_clampfrac"].item() == 2.0  # tokens 0 and 2
    for policy_loss in POLICY_LOSSES:  # every loss stays finite on the same tokens
        algo = get_algorithm(_cfg(policy_loss))
        loss, sums = algo.loss(LossInput(logp, old, adv, mask, token_values={"cov_selected": torch.zeros(1, 3)}),
                               norm)
        (g,) = torch.autograd.grad(loss, logp)
        assert torch.isfinite(loss) and torch.isfinite(g).all(), policy_loss
        assert sums["actor/log_ratio_clampfrac"].item() == 2.0, policy_loss


def test_gspo_clamps_its_sequence_log_ratio_at_10() -> None:
    algo = get_algorithm(AlgorithmConfig(name="gspo"))
    logp = torch.tensor([[-0.1, -0.1]], dtype=F64, requires_grad=True)
    old = torch.tensor([[-30.1, -0.1]], dtype=F64)  # sequence log-ratio 15
    _, sums = algo.loss(LossInput(logp, old, torch.tensor([[1.0, 1.0]], dtype=F64), torch.ones(1, 2, dtype=F64)),
                        AggNorm.of(torch.ones(1, 2)))
    assert sums["actor/log_ratio_clampfrac"].item() == 2.0
    assert sums["actor/ratio_mean"].item() == pytest.approx(2 * math.exp(10))


def test_new_advantages_are_dispatched_with_the_group_ids() -> None:
    """The dispatch hands each estimator the prompt ids, so ragged groups are grouped by prompt."""
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])
    ids = torch.tensor([0, 0, 1, 1, 1])  # groups of 2 and 3

    def seq_adv(name: str, **extra: object) -> list[float]:
        algo = get_algorithm(AlgorithmConfig(name=name))
        out = algo.advantages(AdvantageInput(rewards, 8, mask, correct=rewards > 0, group_ids=ids, **extra))
        return out.advantages[:, 0].tolist()

    # OPO: group 0 baseline (2*1 + 1*0)/3 = 2/3; group 1 (2*0 + 1 + 2)/5 = 3/5
    assert seq_adv("opo") == pytest.approx([1 / 3, -2 / 3, -3 / 5, 2 / 5, 2 / 5])
    # GRPO on ragged groups: group 0 mean 0.5, std 0.7071; group 1 mean 2/3, std 0.5774
    s0, s1 = math.sqrt(0.5), math.sqrt(1 / 3)
    assert seq_adv("grpo") == pytest.approx([0.5 / s0, -0.5 / s0, -2 / 3 / s1, 1 / 3 / s1, 1 / 3 / s1], rel=1e-5)
    # ReMax: return-to-go minus the greedy reward of the sample's prompt (baseline 1 for group 0, 0 for group 1)
    algo = get_algorithm(AlgorithmConfig(name="remax", kl_placement="none", kl_coef=0.0))
    out = algo.advantages(AdvantageInput(rewards, 8, mask, group_ids=ids,
                                         baseline=torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0])))
    assert out.advantages.flatten().tolist() == pytest.approx([0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="greedy baseline"):
        algo.advantages(AdvantageInput(rewards, 8, mask, group_ids=ids))


def test_gdpo_reads_the_composed_reward_terms() -> None:
    mask = torch.ones(4, 1)
    terms = {"correct": torch.tensor([1.0, 0.0, 1.0, 0.0]), "length": torch.tensor([0.0, 0.0, -1.0, -1.0])}
    algo = get_algorithm(AlgorithmConfig(name="gdpo"))
    out = algo.advantages(AdvantageInput(terms["correct"] + terms["length"], 4, mask, reward_terms=terms))
    assert torch.isfinite(out.advantages).all() and out.advantages.abs().sum() > 0
    with pytest.raises(ValueError, match="reported no terms"):
        algo.advantages(AdvantageInput(terms["correct"], 4, mask))
    picky = get_algorithm(AlgorithmConfig(name="gdpo", gdpo_terms=["format"]))
    with pytest.raises(ValueError, match=r"names \['format'\].*reported only \['correct', 'length'\]"):
        picky.advantages(AdvantageInput(terms["correct"], 4, mask, reward_terms=terms))


def test_cov_losses_select_tokens_on_the_driver_over_the_whole_batch() -> None:
    """The selection travels as a per-token value; it is repeatable for a seed and needs the log-probs."""
    mask = torch.ones(4, 3)
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0])
    logprobs = -torch.arange(12, dtype=torch.float32).reshape(4, 3) / 10
    algo = get_algorithm(AlgorithmConfig(name="kl_cov", cov_fraction=0.25))
    assert algo.needs_old_logprobs
    out = algo.advantages(AdvantageInput(rewards, 2, mask, logprobs=logprobs, seed=3))
    selected = out.token_values["cov_selected"]
    assert selected.shape == (4, 3) and selected.sum().item() == 3  # floor(0.25 * 12)
    assert out.metrics["advantage/cov_selected_tokens"] == 3
    clip = get_algorithm(AlgorithmConfig(name="clip_cov", cov_fraction=0.25, clip_cov_bounds=(-10.0, 10.0)))
    a = clip.advantages(AdvantageInput(rewards, 2, mask, logprobs=logprobs, seed=3)).token_values["cov_selected"]
    b = clip.advantages(AdvantageInput(rewards, 2, mask, logprobs=logprobs, seed=3)).token_values["cov_selected"]
    assert torch.equal(a, b) and a.sum().item() == 3
    with pytest.raises(ValueError, match="needs the rollouts' log-probs"):
        algo.advantages(AdvantageInput(rewards, 2, mask))
    lp = logprobs.clone().requires_grad_(True)
    with pytest.raises(ValueError, match="carries no token selection"):
        algo.loss(LossInput(lp, lp.detach(), torch.ones(4, 3), mask), AggNorm.of(mask))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"policy_loss": "cispo", "ratio_level": "sequence"}, "takes the token ratio"),
        ({"policy_loss": "sapo", "dual_clip": 3.0}, "has no such clip"),
        ({"policy_loss": "cispo", "ratio_cap": 2.0}, "ratio_cap caps"),
        ({"policy_loss": "gpg", "mini_batches": 2}, "no importance ratio"),
        ({"policy_loss": "clip_cov", "clip_cov_bounds": (5.0, 1.0)}, "is empty"),
        ({"gdpo_terms": ["correct"]}, "belong to the gdpo advantage"),
        ({"advantage": "gdpo", "gdpo_terms": ["a"], "gdpo_weights": {"b": 2.0}}, r"names \['b'\]"),
        ({"name": "nft", "policy_loss": "cispo"}, "belongs to the policy-gradient loss"),
    ],
)
def test_settings_a_loss_would_ignore_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlgorithmConfig(**({"name": "grpo", "kl_placement": "none", "kl_coef": 0.0} | fields))


def test_every_new_preset_names_its_parts() -> None:
    expected = {"cispo": "cispo", "sapo": "sapo", "gmpo": "gmpo", "gpg": "gpg", "dppo_tv": "dppo_tv",
                "dppo_kl": "dppo_kl", "clip_cov": "clip_cov", "kl_cov": "kl_cov"}
    for name in NEW_PRESETS:
        cfg = AlgorithmConfig(name=name)
        assert cfg.policy_loss == expected.get(name, "ppo_clip"), name
        assert cfg.advantage == {"opo": "opo", "passk": "passk", "remax": "remax", "gdpo": "gdpo", "gpg": "gpg",
                                 "dppo_tv": "drgrpo", "dppo_kl": "drgrpo"}.get(name, "grpo"), name
    assert get_algorithm(AlgorithmConfig(name="remax")).needs_greedy
    assert not get_algorithm(AlgorithmConfig(name="grpo")).needs_greedy


@pytest.mark.parametrize(
    ("mode", "value"),
    [
        ("token-mean", (0.5 + 2.0 + 4.5) / 3),  # three tokens
        ("seq-mean-token-mean", ((0.5 + 2.0) / 2 + 4.5) / 2),  # two sequences, each its token mean
        ("seq-mean-token-sum", ((0.5 + 2.0) + 4.5) / 2),
    ],
)
def test_the_critic_value_loss_aggregation_modes(mode: str, value: float) -> None:
    """0.5 (V - Ret)^2 per token (no clip): 0.5, 2.0 on row 0 and 4.5 on row 1 (a padded position holds junk)."""
    values = torch.tensor([[1.0, 2.0, 7.0], [3.0, 9.0, 9.0]], dtype=F64, requires_grad=True)
    returns = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=F64)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=F64)
    per_token, _ = clipped_value_loss(values, values.detach(), returns, mask, None)
    out = aggregate(per_token, mask, mode, AggNorm.of(mask))
    assert out.item() == pytest.approx(value)
    assert AlgorithmConfig(name="ppo", value_loss_agg=mode).value_loss_agg == mode
