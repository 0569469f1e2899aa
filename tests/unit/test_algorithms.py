"""Presets, the registry, and the assembled loss modules (the parts have their own tests)."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.algorithms import ALGORITHM_NAMES, get_algorithm
from rlvr.algorithms.base import AdvantageInput, AggNorm, LossInput
from rlvr.algorithms.registry import preset_defaults
from rlvr.config.schema import AlgorithmConfig


def test_every_preset_builds_and_names_only_real_fields() -> None:
    assert set(ALGORITHM_NAMES) >= {"grpo", "drgrpo", "dapo", "gspo", "lite_ppo", "reinforce_pp",
                                    "reinforce_pp_baseline", "rloo", "nft"}
    for name in ALGORITHM_NAMES:
        preset = preset_defaults(name)
        assert set(preset) <= set(AlgorithmConfig.model_fields), name
        cfg = AlgorithmConfig(name=name)
        for key, value in preset.items():
            assert getattr(cfg, key) == value, (name, key)
        algo = get_algorithm(cfg, max_new_tokens=16)
        assert hasattr(algo, "loss") and hasattr(algo, "advantages")


def test_recipe_fields_override_the_preset() -> None:
    cfg = AlgorithmConfig(name="dapo", clip_high=0.5)
    assert cfg.clip_high == 0.5 and cfg.clip_low == 0.2 and cfg.dual_clip == 10.0 and cfg.dynamic_sampling


def test_unknown_algorithm_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="valid: cispo, clip_cov, dapo, dppo_kl"):
        AlgorithmConfig(name="grpp")


def test_inconsistent_parts_are_rejected() -> None:
    with pytest.raises(ValueError, match="needs kl_coef > 0"):
        AlgorithmConfig(name="grpo", kl_coef=0.0)
    with pytest.raises(ValueError, match="nft go together"):
        AlgorithmConfig(name="grpo", advantage="nft", kl_placement="none")
    with pytest.raises(ValueError, match="uses the k1 estimator"):
        AlgorithmConfig(name="reinforce_pp", kl_estimator="k3")


def test_grpo_on_policy_gradient_is_minus_advantage_over_tokens() -> None:
    """On-policy (ratio 1) the token-mean PPO-clip gradient w.r.t. each log-prob is -A / num_tokens."""
    algo = get_algorithm(AlgorithmConfig(name="grpo", kl_placement="none", kl_coef=0.0, loss_agg="token-mean"))
    lp = torch.tensor([[-1.0, -2.0], [-0.5, -0.1]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([[0.7, 0.7], [-0.3, -0.3]]) * mask
    loss, sums = algo.loss(LossInput(lp, lp.detach(), adv, mask), AggNorm(num_tokens=3, num_sequences=2, constant=None))
    loss.backward()
    assert lp.grad.flatten().tolist() == pytest.approx([-0.7 / 3, -0.7 / 3, 0.3 / 3, 0.0])
    assert sums["actor/pg_clipfrac"].item() == 0


def test_grpo_kl_in_loss() -> None:
    algo = get_algorithm(AlgorithmConfig(name="grpo", kl_coef=0.5, kl_estimator="k1"))
    assert algo.kl_coef == 0.5  # the driver's KL controller may change it each step
    assert algo.needs_reference
    lp = torch.tensor([[-1.0]], requires_grad=True)
    ref = torch.tensor([[-1.5]])
    loss, sums = algo.loss(LossInput(lp, lp.detach(), torch.zeros(1, 1), torch.ones(1, 1), ref_logprobs=ref),
                           AggNorm(1, 1, None))
    assert loss.item() == pytest.approx(0.5 * 0.5)
    assert sums["actor/kl"].item() == pytest.approx(0.5)


def test_advantages_dispatch_hand_computed() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    out = get_algorithm(AlgorithmConfig(name="grpo")).advantages(AdvantageInput(rewards, 2, mask))
    exp = 0.5 / (math.sqrt(0.5) + 1e-6)  # groups of 2: {1,0} -> unbiased std sqrt(0.5)
    assert out.advantages.flatten().tolist() == pytest.approx([exp, exp, -exp, 0.0, -exp, -exp, exp, exp], rel=1e-5)
    out = get_algorithm(AlgorithmConfig(name="drgrpo")).advantages(AdvantageInput(rewards, 2, mask))
    assert out.advantages.tolist() == [[0.5, 0.5], [-0.5, 0.0], [-0.5, -0.5], [0.5, 0.5]]
    out = get_algorithm(AlgorithmConfig(name="rloo")).advantages(AdvantageInput(rewards, 2, mask))
    assert out.advantages[:, 0].tolist() == [1.0, -1.0, -1.0, 1.0]
    out = get_algorithm(AlgorithmConfig(name="nft")).advantages(AdvantageInput(rewards, 2, mask))
    assert out.row_values["r_hat"].tolist() == pytest.approx([0.5] * 4)
    assert out.row_values["correct"].tolist() == [1.0, 0.0, 0.0, 1.0]


def test_custom_loss_from_a_file_with_kwargs(tmp_path) -> None:
    (tmp_path / "my_loss.py").write_text(
        "from rlvr.algorithms.losses import PolicyGradientLoss\n"
        "class Scaled(PolicyGradientLoss):\n"
        "    def __init__(self, cfg, scale):\n"
        "        super().__init__(cfg)\n"
        "        self.scale = scale\n"
        "    def loss(self, batch, norm):\n"
        "        loss, sums = super().loss(batch, norm)\n"
        "        return loss * self.scale, sums\n"
    )
    cfg = AlgorithmConfig(name=f"{tmp_path / 'my_loss.py'}:Scaled", kwargs={"scale": 3.0})
    algo = get_algorithm(cfg)
    lp = torch.tensor([[-1.0]], requires_grad=True)
    loss, _ = algo.loss(LossInput(lp, lp.detach(), torch.ones(1, 1), torch.ones(1, 1)), AggNorm(1, 1, None))
    assert loss.item() == pytest.approx(-3.0)
    with pytest.raises(ValueError, match="kwargs are for a custom loss factory"):
        AlgorithmConfig(name="grpo", kwargs={"scale": 3.0})
