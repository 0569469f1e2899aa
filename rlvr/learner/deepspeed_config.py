"""The DeepSpeed config rlvr builds from a recipe; ``learner.deepspeed`` is merged over it."""

from __future__ import annotations

from typing import Any

from rlvr.config.loader import deep_merge
from rlvr.config.schema import RecipeConfig


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
    if a.warmup_steps > 0:
        ds["scheduler"] = {
            "type": "WarmupLR",
            "params": {"warmup_min_lr": 0.0, "warmup_max_lr": a.lr, "warmup_num_steps": a.warmup_steps,
                       "warmup_type": "linear"},
        }
    return deep_merge(ds, cfg.learner.deepspeed)


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
