"""Negative controls: trainers broken on purpose, to show that the learning tests catch each of them.

A control is one named defect of the kind a refactor could introduce. `with_control(cfg, name)` turns a
loaded recipe into the broken variant, keeping every other resolved setting:

* defects of the loss module go through rlvr's own escape hatch, a custom loss factory:
  ``algorithm.name: <this file>:broken`` with ``algorithm.kwargs: {preset, control}``. `broken` builds the
  loss module of the recipe's resolved parts (exactly what the preset would run) and breaks it;
* defects that a setting can express (no clipping, no negative term, a frozen critic, dynamic sampling
  off) are those settings.

``pytest --control NAME`` runs the learning tests with the control applied (see tests/conftest.py); they
must fail. tests/integration/test_learning.py also runs each control once in every suite run and asserts
that its preset's learning check rejects it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rlvr.algorithms.base import AdvantageInput, AdvantageOutput, AggNorm, LossInput
from rlvr.config import RecipeConfig
from rlvr.config.schema import AlgorithmConfig

GROUP_BASELINE = ("dapo", "drgrpo", "grpo", "gspo", "lite_ppo", "reinforce_pp_baseline", "rloo")
ALL = (*GROUP_BASELINE, "nft", "ppo", "reinforce_pp")


@dataclass(frozen=True)
class Control:
    what: str  # the defect, in words
    presets: tuple[str, ...]  # the presets it can break
    settings: dict[str, Any] | None = None  # algorithm fields that express it; None: the `broken` factory


CONTROLS: dict[str, Control] = {
    "sign_flip": Control("the loss's sign flipped (gradient ascent on the loss)", ALL),
    "zero_advantage": Control("every advantage zeroed", tuple(p for p in ALL if p != "nft")),
    "no_baseline": Control("no group baseline: the raw reward is the advantage", GROUP_BASELINE),
    "no_clip": Control("PPO clipping removed (ratio bounds and dual clip so wide nothing is clipped)",
                       tuple(p for p in ALL if p != "nft"), {"clip_low": 1e6, "clip_high": 1e6, "dual_clip": None}),
    "nft_no_negative": Control("NFT's negative (implicit negative policy) term dropped", ("nft",),
                               {"nft_neg_weight": 0.0}),
    "frozen_critic": Control("the critic never learns (learning rate 1e-30)", ("ppo",), {"critic_lr": 1e-30}),
    "no_dynamic_sampling": Control("DAPO's dynamic sampling off", ("dapo",), {"dynamic_sampling": False}),
    "nan_loss": Control("the policy loss is NaN on every micro-batch (a diverged policy)", ALL),
}


def with_control(cfg: RecipeConfig, name: str | None) -> RecipeConfig:
    """``cfg`` with control ``name`` applied (unchanged for None)."""
    if name is None:
        return cfg
    control = CONTROLS[name]
    preset = cfg.algorithm.name
    if preset not in control.presets:
        raise ValueError(f"control {name!r} does not apply to {preset!r} (it breaks {', '.join(control.presets)})")
    algo = cfg.algorithm.model_dump()
    if control.settings is not None:
        algo.update(control.settings)
    else:
        if algo["loss_agg"] == "seq-mean-token-sum-norm" and algo["loss_agg_constant"] is None:
            algo["loss_agg_constant"] = float(cfg.rollout.max_new_tokens)  # what get_algorithm would default to
        algo.update(name=f"{Path(__file__).resolve()}:broken", kwargs={"preset": preset, "control": name})
    return RecipeConfig.model_validate({**cfg.model_dump(), "algorithm": algo})


def broken(cfg: AlgorithmConfig, preset: str, control: str) -> _Broken:
    """The loss module of ``cfg``'s parts under ``preset``'s name, with ``control``'s defect."""
    from rlvr.algorithms import get_algorithm

    inner = get_algorithm(cfg.model_copy(update={"name": preset, "kwargs": {}}))
    return _Broken(inner, control)


def _raw_reward(inp: AdvantageInput, out: AdvantageOutput) -> torch.Tensor:
    return inp.rewards.float()[:, None] * inp.mask  # [N, T]


_ADVANTAGE_DEFECTS: dict[str, Callable[[AdvantageInput, AdvantageOutput], torch.Tensor]] = {
    "zero_advantage": lambda inp, out: torch.zeros_like(out.advantages),
    "no_baseline": _raw_reward,
}


class _Broken:
    """Delegates to the real loss module, then breaks its advantages or its loss."""

    def __init__(self, inner: Any, control: str) -> None:
        if control not in ("sign_flip", "nan_loss", *_ADVANTAGE_DEFECTS):
            raise ValueError(f"{control!r} is not a loss-module control")
        self.inner, self.control = inner, control
        self.needs_reference = inner.needs_reference
        self.needs_old_logprobs = inner.needs_old_logprobs
        self.needs_critic = inner.needs_critic
        self.agg_constant = inner.agg_constant

    @property
    def kl_coef(self) -> float:
        return self.inner.kl_coef

    @kl_coef.setter
    def kl_coef(self, value: float) -> None:  # the learner sets it each step (adaptive KL)
        self.inner.kl_coef = value

    def advantages(self, inp: AdvantageInput) -> AdvantageOutput:
        out = self.inner.advantages(inp)
        defect = _ADVANTAGE_DEFECTS.get(self.control)
        if defect is not None:
            out.advantages = defect(inp, out)
        return out

    def loss(self, batch: LossInput, norm: AggNorm) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss, sums = self.inner.loss(batch, norm)
        if self.control == "nan_loss":
            return loss * float("nan"), sums
        return (-loss if self.control == "sign_flip" else loss), sums
