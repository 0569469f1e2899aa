"""Learning-rate schedules: warm-up in updates or in training steps, then constant, linear or cosine decay
(values at given updates, computed by hand), and the factor the DeepSpeed engine really applies."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.config import load_recipe
from rlvr.config.loader import RecipeError
from rlvr.learner.deepspeed_config import critic_schedule, policy_schedule
from rlvr.learner.schedule import Schedule
from tests.conftest import DEFAULT_RECIPE


def test_warmup_in_updates_then_constant() -> None:
    s = Schedule(warmup=4, unit="updates", decay="constant", min_ratio=0.0, total_steps=10, updates_per_step=2)
    assert [s.factor(u) for u in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_warmup_in_training_steps_counts_every_update_of_a_step_alike() -> None:
    # DAPO/NFT as verl runs them: "10 warm-up steps" with 16 mini-batches are 160 updates
    s = Schedule(warmup=10, unit="steps", decay="constant", min_ratio=0.0, total_steps=100, updates_per_step=16)
    assert s.factor(0) == s.factor(15) == 0.1
    assert s.factor(16) == 0.2 and s.factor(159) == 1.0 and s.factor(160) == 1.0


def test_verl_steps_reproduce_verls_first_step_at_zero() -> None:
    # DAPO's script: lr_warmup_steps=10, stepped after each training step of 16 updates
    s = Schedule(warmup=10, unit="verl_steps", decay="constant", min_ratio=0.0, total_steps=100, updates_per_step=16)
    assert [s.factor(16 * t) for t in (0, 1, 9, 10, 11)] == [0.0, 0.1, 0.9, 1.0, 1.0]
    assert s.factor(15) == 0.0  # the whole first step
    # SimpleRL-Zoo: no warm-up, yet verl's constant schedule gives its first step a rate of 0
    flat = Schedule(warmup=0, unit="verl_steps", decay="constant", min_ratio=0.0, total_steps=10, updates_per_step=4)
    assert [flat.factor(u) for u in (0, 3, 4)] == [0.0, 0.0, 1.0] and flat.builder() is not None
    # verl's cosine schedule has no such step: without warm-up it starts at the full rate
    cos = Schedule(warmup=0, unit="verl_steps", decay="cosine", min_ratio=0.0, total_steps=10, updates_per_step=1)
    assert cos.factor(0) == 1.0 and cos.factor(5) == pytest.approx(0.5)


def test_linear_decay_to_the_floor_over_the_run() -> None:
    # Tulu 3's PPO: linear from the peak to 0 over the run; here with a floor of 0.1 and 2 warm-up steps
    s = Schedule(warmup=2, unit="steps", decay="linear", min_ratio=0.1, total_steps=12, updates_per_step=1)
    assert s.factor(0) == 0.5 and s.factor(1) == 1.0
    assert s.factor(2) == 1.0  # first update after warm-up: progress 0
    assert s.factor(7) == pytest.approx(1 - 0.9 * 5 / 10)
    assert s.factor(12) == pytest.approx(0.1) and s.factor(50) == pytest.approx(0.1)  # held at the floor


def test_cosine_decay_half_period() -> None:
    s = Schedule(warmup=0, unit="updates", decay="cosine", min_ratio=0.0, total_steps=5, updates_per_step=2)
    assert [round(s.factor(u), 12) for u in (0, 5, 10)] == [1.0, 0.5, 0.0]
    assert s.factor(3) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.3)))


def test_constant_schedule_has_no_scheduler() -> None:
    assert Schedule(0, "updates", "constant", 0.0, 10, 1).builder() is None


def test_the_torch_scheduler_applies_the_factors_in_order() -> None:
    s = Schedule(warmup=2, unit="updates", decay="linear", min_ratio=0.0, total_steps=4, updates_per_step=1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = s.builder()(opt)
    seen = []
    for _ in range(4):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.5, 1.0, 1.0, 0.5])


def test_recipe_fields_reach_the_policy_and_critic_schedules() -> None:
    cfg = load_recipe(DEFAULT_RECIPE, ["run.steps=20", "algorithm.mini_batches=2", "algorithm.warmup_steps=3",
                                       "algorithm.warmup_unit=steps", "algorithm.lr_decay=cosine",
                                       "algorithm.min_lr_ratio=0.1", "algorithm.critic_lr_decay=linear"])
    p, c = policy_schedule(cfg), critic_schedule(cfg)
    assert (p.warmup, p.unit, p.decay, p.min_ratio, p.total_steps, p.updates_per_step) == (3, "steps", "cosine", 0.1,
                                                                                          20, 2)
    assert (c.warmup, c.decay) == (0, "linear") and c.factor(0) == 1.0


@pytest.mark.parametrize("override", ["algorithm.lr_decay=step", "algorithm.warmup_unit=epochs",
                                      "algorithm.min_lr_ratio=1.5", "algorithm.value_loss_coef=0",
                                      "algorithm.generation_batch_multiplier=0.5",
                                      "algorithm.when_rounds_run_out=retry", "eval.top_p=0"])
def test_bad_values_are_refused(override: str) -> None:
    with pytest.raises(RecipeError, match=override.split("=")[0].split(".")[1]):
        load_recipe(DEFAULT_RECIPE, [override])
