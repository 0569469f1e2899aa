"""The DeepSpeed configs rlvr builds: the recipe's optimizer settings reach them, ``learner.deepspeed`` is
merged over them key by key, and DeepSpeed itself reads them back as meant (its own config parser and
its WarmupLR schedule, no engine needed)."""

from __future__ import annotations

import pytest
import torch

from rlvr.config import load_recipe
from rlvr.learner.deepspeed_config import critic_config, inference_config, train_config, warmup_scheduler
from tests.conftest import DEFAULT_RECIPE

OVERRIDES = [
    "algorithm.lr=2e-4", "algorithm.warmup_steps=4", "algorithm.weight_decay=0.01", "algorithm.grad_clip=0.5",
    "algorithm.critic_lr=1e-3", "learner.zero_stage=3",
    "learner.deepspeed={zero_optimization: {reduce_bucket_size: 1000}, optimizer: {params: {betas: [0.9, 0.95]}}}",
]


def test_recipe_settings_reach_deepspeed_and_overrides_merge() -> None:
    from deepspeed.runtime.config import DeepSpeedConfig

    cfg = load_recipe(DEFAULT_RECIPE, OVERRIDES)
    ds = DeepSpeedConfig(train_config(cfg, world_size=1))
    assert ds.gradient_clipping == 0.5
    assert ds.optimizer_name == "adamw"
    assert ds.optimizer_params == {"lr": 2e-4, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.01,
                                   "torch_adam": True}  # the override replaced betas and kept the rest
    assert ds.zero_config.stage == 3 and ds.zero_config.reduce_bucket_size == 1000  # merged, not replaced
    assert ds.scheduler_name is None  # the warm-up is rlvr's own schedule (`warmup_scheduler`)
    assert not ds.bfloat16_config.enabled and not ds.float16_config.enabled  # the default recipe runs float32
    assert train_config(cfg, world_size=4)["train_batch_size"] == 4


def test_no_warmup_means_no_scheduler_and_bf16_follows_the_model_dtype() -> None:
    cfg = load_recipe(DEFAULT_RECIPE, ["model.dtype=bfloat16"])
    ds = train_config(cfg, world_size=1)
    assert warmup_scheduler(cfg) is None and "scheduler" not in ds
    assert ds["bf16"] == {"enabled": True} and ds["fp16"] == {"enabled": False}
    assert inference_config(cfg, 1)["bf16"] == {"enabled": True}


def test_a_deepspeed_scheduler_and_warmup_steps_together_are_refused() -> None:
    from rlvr.config.loader import RecipeError

    with pytest.raises(RecipeError, match="warmup_steps and learner.deepspeed.scheduler"):
        load_recipe(DEFAULT_RECIPE, ["algorithm.warmup_steps=3", "learner.deepspeed={scheduler: {type: WarmupLR}}"])


def test_critic_gets_its_own_lr_and_no_policy_warmup() -> None:
    cfg = load_recipe(DEFAULT_RECIPE, OVERRIDES)
    ds = critic_config(cfg, world_size=1)
    assert ds["optimizer"]["params"]["lr"] == 1e-3 and "scheduler" not in ds
    assert ds["optimizer"]["params"]["weight_decay"] == 0.01 and ds["gradient_clipping"] == 0.5
    assert train_config(cfg, 1)["optimizer"]["params"]["lr"] == 2e-4  # the policy's config is untouched


def test_reference_is_frozen_and_sharded_only_under_zero3() -> None:
    cfg = load_recipe(DEFAULT_RECIPE, OVERRIDES)
    assert inference_config(cfg, 1)["zero_optimization"] == {"stage": 3} and "optimizer" not in inference_config(cfg, 1)
    stage2 = load_recipe(DEFAULT_RECIPE, ["learner.zero_stage=2"])
    assert inference_config(stage2, 1)["zero_optimization"] == {"stage": 0}


def test_warmup_update_k_uses_k_over_warmup_of_the_rate() -> None:
    """The optimizer's rate at each of the first six updates, with 4 warm-up steps: 1/4, 2/4, 3/4, 1, 1, 1
    of the recipe's rate (DeepSpeed's WarmupLR would give 0, 0, 1/4, 2/4, 3/4, 1)."""
    cfg = load_recipe(DEFAULT_RECIPE, OVERRIDES)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    sched = warmup_scheduler(cfg)(opt)
    used = []
    for _ in range(6):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert used == pytest.approx([0.5e-4, 1.0e-4, 1.5e-4, 2e-4, 2e-4, 2e-4])
