"""The DeepSpeed config rlvr builds from a recipe; ``learner.deepspeed`` is merged over it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from rlvr.config.loader import deep_merge
from rlvr.config.schema import RecipeConfig
from rlvr.learner.schedule import Schedule


def train_config(cfg: RecipeConfig, world_size: int) -> dict[str, Any]:
    """Config for the trained policy. Micro-batching and accumulation are rlvr's (token-budget
    micro-batches, boundary set by hand), so DeepSpeed's own batch fields are nominal."""
    a = cfg.algorithm
    ds: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "train_batch_size": world_size,
        "gradient_clipping": a.grad_clip,
        "zero_optimization": {"stage": cfg.learner.zero_stage},
        "bf16": {"enabled": cfg.model.dtype == "bfloat16"},  # its check_grad_overflow (default on) skips NaN steps
        "fp16": {"enabled": cfg.model.dtype == "float16"},
        # torch's AdamW: no JIT compile of DeepSpeed's CPU Adam op on first use.
        "optimizer": {
            "type": "AdamW",
            "params": {"lr": a.lr, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": a.weight_decay,
                       "torch_adam": True},
        },
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    return deep_merge(ds, cfg.learner.deepspeed)


def policy_schedule(cfg: RecipeConfig) -> Schedule:
    """The policy's learning-rate schedule (``algorithm.warmup_steps``, ``warmup_unit``, ``lr_decay``,
    ``min_lr_ratio``; `rlvr.learner.schedule`)."""
    return _schedule(cfg, cfg.algorithm.warmup_steps, cfg.algorithm.lr_decay)


def critic_schedule(cfg: RecipeConfig) -> Schedule:
    """The value model's own schedule: ``critic_warmup_steps`` and ``critic_lr_decay`` in the same unit."""
    return _schedule(cfg, cfg.algorithm.critic_warmup_steps, cfg.algorithm.critic_lr_decay)


def _schedule(cfg: RecipeConfig, warmup: int, decay: Literal["constant", "linear", "cosine"]) -> Schedule:
    a = cfg.algorithm
    return Schedule(warmup, a.warmup_unit, decay, a.min_lr_ratio, cfg.run.steps, a.mini_batches * a.epochs)


def warmup_scheduler(cfg: RecipeConfig) -> Callable[[Any], Any] | None:
    """The policy's schedule for ``deepspeed.initialize(lr_scheduler=...)`` (a ``LambdaLR`` stepped per
    optimizer update); None when the rate is constant.

    Not DeepSpeed's own ``WarmupLR``: its schedule starts at step -1 and its linear ramp at 0, so its first
    two updates run at a learning rate of 0 and the full rate comes two updates late (measured with
    deepspeed 0.19: 0, 0, 1/4, 2/4, 3/4, 1 for four warm-up steps)."""
    return policy_schedule(cfg).builder()


def critic_config(cfg: RecipeConfig, world_size: int) -> dict[str, Any]:
    """Config for PPO's value model: the policy's, at ``algorithm.critic_lr`` and ``critic_weight_decay``
    (its schedule is `critic_schedule`, passed to ``deepspeed.initialize`` by the critic)."""
    ds = train_config(cfg, world_size)
    ds["optimizer"]["params"]["lr"] = cfg.algorithm.critic_lr
    if cfg.algorithm.critic_weight_decay is not None:
        ds["optimizer"]["params"]["weight_decay"] = cfg.algorithm.critic_weight_decay
    return ds


def inference_config(cfg: RecipeConfig, world_size: int) -> dict[str, Any]:
    """Config for the frozen reference model: same ZeRO stage (shards it under stage 3), no optimizer."""
    return {
        "train_micro_batch_size_per_gpu": 1,
        "train_batch_size": world_size,
        "zero_optimization": {"stage": 3 if cfg.learner.zero_stage == 3 else 0},
        "bf16": {"enabled": cfg.model.dtype == "bfloat16"},
        "fp16": {"enabled": cfg.model.dtype == "float16"},
        "steps_per_print": 10**9,
    }
